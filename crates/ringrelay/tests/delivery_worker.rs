//! The delivery worker end to end on the SQLite store, with simulated time: ordering per
//! call while another call proceeds, the retry schedule, dead-letter, retry and replay,
//! 410 disabling the sink, continuous failure disabling it, Retry-After over real HTTP, and
//! a hanging sink not delaying a healthy one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::response::IntoResponse;
use chrono::{DateTime, TimeDelta, Utc};
use ringrelay::account::AccountId;
use ringrelay::activity::{Activity, ActivityKind, ActivitySource};
use ringrelay::config::StoreUrl;
use ringrelay::delivery::signing::Signer;
use ringrelay::delivery::worker::{self, Clock, Worker, WorkerOptions};
use ringrelay::delivery::{AttemptOutcome, ConfiguredSink, Matcher, RetryPolicy, Sink};
use ringrelay::store::{self, DeliveryFilter, DeliveryState, NewActivity, OpenOptions, Store};
use tokio_util::sync::CancellationToken;

/// A sink answering from a script (the last answer repeats), recording what it got.
struct Scripted {
    script: Mutex<VecDeque<AttemptOutcome>>,
    got: Mutex<Vec<String>>,
    hang: Option<CancellationToken>,
}

impl Scripted {
    fn new(script: Vec<AttemptOutcome>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into()),
            got: Mutex::new(Vec::new()),
            hang: None,
        })
    }
    fn got(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }
}

#[async_trait]
impl Sink for Scripted {
    async fn send(&self, activity: &Activity) -> AttemptOutcome {
        if let Some(release) = &self.hang {
            release.cancelled().await;
            return AttemptOutcome::error("hung up");
        }
        self.got.lock().unwrap().push(activity.key.clone());
        let mut s = self.script.lock().unwrap();
        if s.len() > 1 {
            s.pop_front().unwrap()
        } else {
            s[0].clone()
        }
    }
}

fn fail() -> AttemptOutcome {
    AttemptOutcome::Failed {
        status: Some(500),
        retry_after: None,
        error: "boom".into(),
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
        .unwrap()
        .to_utc()
}

/// A settable clock.
#[derive(Clone)]
struct SimClock(Arc<Mutex<DateTime<Utc>>>);

impl SimClock {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(t0())))
    }
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
    fn advance(&self, d: TimeDelta) {
        *self.0.lock().unwrap() += d;
    }
    fn clock(&self) -> Clock {
        let me = self.clone();
        Arc::new(move || me.now())
    }
}

fn policy(schedule: &[u64]) -> RetryPolicy {
    RetryPolicy {
        schedule: schedule.iter().map(|s| Duration::from_secs(*s)).collect(),
        jitter: 0.0,
        disable_after: Duration::from_secs(5 * 86_400),
        max_retry_after: Duration::from_secs(3600),
    }
}

fn configured(name: &str, sink: Arc<dyn Sink>, policy: RetryPolicy) -> ConfiguredSink {
    ConfiguredSink {
        name: name.into(),
        sink,
        matcher: Matcher::new(&[], &["*".into()]).unwrap(),
        policy,
    }
}

fn options() -> WorkerOptions {
    WorkerOptions {
        owner: "test".into(),
        batch: 16,
        lease: Duration::from_secs(60),
        idle_poll: Duration::from_millis(10),
    }
}

fn act(key: &str, call: &str, offset_s: i64) -> Activity {
    Activity::new(
        key.into(),
        ActivityKind::CallAnswered,
        AccountId::parse("acme").unwrap(),
        call.into(),
        ActivitySource::Webhook,
        t0() + TimeDelta::seconds(offset_s),
        serde_json::Map::new(),
    )
}

async fn open() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::Sqlite(dir.path().join("d.db"));
    let s = store::open(&url, &OpenOptions::default()).await.unwrap();
    (dir, s)
}

async fn add(store: &Arc<dyn Store>, acts: Vec<Activity>, sinks: &[&str]) {
    let new = acts
        .into_iter()
        .map(|activity| NewActivity {
            activity,
            sinks: sinks.iter().map(|s| (*s).to_owned()).collect(),
        })
        .collect();
    store.insert_activities(new, None).await.unwrap();
}

async fn states(store: &Arc<dyn Store>, sink: &str) -> Vec<(String, DeliveryState)> {
    let mut v: Vec<_> = store
        .list_deliveries(&DeliveryFilter {
            sink: Some(sink.into()),
            ..DeliveryFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.activity_key, d.state))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_calls_activities_wait_for_its_failed_one_while_another_call_proceeds() {
    let (_dir, store) = open().await;
    ordering_per_call(store).await;
}

/// The same on PostgreSQL, in a fresh schema dropped afterwards; skipped when
/// `RINGRELAY_TEST_POSTGRES_URL` is unset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_per_call_on_postgres() {
    let Ok(base) = std::env::var("RINGRELAY_TEST_POSTGRES_URL") else {
        eprintln!("RINGRELAY_TEST_POSTGRES_URL unset: skipping");
        return;
    };
    let schema = format!("rr_delivery_{}", uuid::Uuid::new_v4().simple());
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = StoreUrl::Postgres(format!("{base}{sep}options=-csearch_path%3D{schema}"));
    let result = match store::open(&url, &OpenOptions::default()).await {
        Ok(s) => tokio::spawn(ordering_per_call(s)).await,
        Err(e) => panic!("open postgres: {e}"),
    };
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    drop(admin);
    let _ = conn.await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn ordering_per_call(store: Arc<dyn Store>) {
    let clock = SimClock::new();
    add(
        &store,
        vec![
            act("a1", "A", 0),
            act("a2", "A", 1),
            act("b1", "B", 2),
            act("a3", "A", 3),
        ],
        &["crm"],
    )
    .await;
    let sink = Scripted::new(vec![fail(), AttemptOutcome::Delivered]);
    let mut w = Worker::new(
        Arc::clone(&store),
        configured("crm", sink.clone(), policy(&[5])),
        options(),
        clock.clock(),
    );

    let r = w.run_once().await.unwrap();
    assert_eq!((r.claimed, r.delivered, r.retried), (2, 1, 1));
    assert_eq!(sink.got(), ["a1", "b1"]);
    // a1 failed and is due in 5 s: a2 and a3 are held back even though the sink is free.
    assert_eq!(w.run_once().await.unwrap().claimed, 0);
    clock.advance(TimeDelta::seconds(4));
    assert_eq!(w.run_once().await.unwrap().claimed, 0);
    clock.advance(TimeDelta::seconds(1));
    for _ in 0..10 {
        if w.run_once().await.unwrap().claimed == 0 {
            break;
        }
    }
    assert_eq!(sink.got(), ["a1", "b1", "a1", "a2", "a3"]);
    assert!(
        states(&store, "crm")
            .await
            .iter()
            .all(|(_, s)| *s == DeliveryState::Delivered)
    );
}

#[tokio::test]
async fn the_schedule_then_dead_letter_then_retry_and_replay() {
    let (_dir, store) = open().await;
    let clock = SimClock::new();
    add(&store, vec![act("a1", "A", 0), act("a2", "A", 1)], &["crm"]).await;
    let sink = Scripted::new(vec![fail(), fail(), fail(), AttemptOutcome::Delivered]);
    let mut w = Worker::new(
        Arc::clone(&store),
        configured("crm", sink.clone(), policy(&[5, 60])),
        options(),
        clock.clock(),
    );

    let due = |store: Arc<dyn Store>| async move {
        let d = store
            .list_deliveries(&DeliveryFilter {
                state: Some(DeliveryState::Failed),
                ..DeliveryFilter::default()
            })
            .await
            .unwrap();
        d.first().and_then(|d| d.due_at)
    };
    assert_eq!(w.run_once().await.unwrap().retried, 1);
    assert_eq!(
        due(Arc::clone(&store)).await,
        Some(t0() + TimeDelta::seconds(5))
    );
    clock.advance(TimeDelta::seconds(5));
    assert_eq!(w.run_once().await.unwrap().retried, 1);
    assert_eq!(
        due(Arc::clone(&store)).await,
        Some(t0() + TimeDelta::seconds(65))
    );
    clock.advance(TimeDelta::seconds(59));
    assert_eq!(
        w.run_once().await.unwrap().claimed,
        0,
        "not due before the schedule says"
    );
    clock.advance(TimeDelta::seconds(1));
    let r = w.run_once().await.unwrap();
    assert_eq!(r.dead, 1);
    // Dead-lettered: a2 is no longer held back and goes out.
    let r = w.run_once().await.unwrap();
    assert_eq!(r.delivered, 1);
    assert_eq!(
        states(&store, "crm").await,
        [
            ("a1".into(), DeliveryState::Dead),
            ("a2".into(), DeliveryState::Delivered)
        ]
    );
    let dead = store
        .list_deliveries(&DeliveryFilter {
            state: Some(DeliveryState::Dead),
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].last_status, Some(500));

    // Operator: retry all dead, then replay since t0.
    assert_eq!(
        worker::retry_dead(store.as_ref(), "crm", clock.now())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        worker::retry_dead(store.as_ref(), "crm", clock.now())
            .await
            .unwrap(),
        0
    );
    assert_eq!(w.run_once().await.unwrap().delivered, 1);
    assert_eq!(
        worker::replay(
            store.as_ref(),
            "crm",
            t0() + TimeDelta::seconds(1),
            clock.now()
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(w.run_once().await.unwrap().delivered, 1);
    assert_eq!(sink.got(), ["a1", "a1", "a1", "a2", "a1", "a2"]);
    assert!(
        worker::retry_one(store.as_ref(), 999_999, clock.now())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn gone_disables_the_sink_until_resumed_and_pause_holds_deliveries() {
    let (_dir, store) = open().await;
    let clock = SimClock::new();
    add(&store, vec![act("a1", "A", 0), act("b1", "B", 0)], &["crm"]).await;
    let sink = Scripted::new(vec![AttemptOutcome::Gone, AttemptOutcome::Delivered]);
    let mut opts = options();
    opts.batch = 1;
    let mut w = Worker::new(
        Arc::clone(&store),
        configured("crm", sink.clone(), policy(&[5])),
        opts,
        clock.clock(),
    );
    let r = w.run_once().await.unwrap();
    assert!(r.disabled);
    let st = store.sink_states().await.unwrap();
    assert!(
        st[0].disabled_reason.as_deref().unwrap().contains("410"),
        "{st:?}"
    );
    clock.advance(TimeDelta::hours(1));
    assert_eq!(
        w.run_once().await.unwrap().claimed,
        0,
        "a disabled sink gets nothing"
    );
    worker::resume(store.as_ref(), "crm", clock.now())
        .await
        .unwrap();
    for _ in 0..5 {
        w.run_once().await.unwrap();
    }
    assert!(
        states(&store, "crm")
            .await
            .iter()
            .all(|(_, s)| *s == DeliveryState::Delivered)
    );

    add(&store, vec![act("c1", "C", 0)], &["crm"]).await;
    worker::pause(store.as_ref(), "crm", clock.now())
        .await
        .unwrap();
    assert_eq!(w.run_once().await.unwrap().claimed, 0);
    worker::resume(store.as_ref(), "crm", clock.now())
        .await
        .unwrap();
    assert_eq!(w.run_once().await.unwrap().delivered, 1);
}

#[tokio::test]
async fn a_sink_failing_continuously_for_disable_after_is_disabled() {
    let (_dir, store) = open().await;
    let clock = SimClock::new();
    add(&store, vec![act("a1", "A", 0)], &["crm"]).await;
    let mut p = policy(&[60, 60, 60, 60]);
    p.disable_after = Duration::from_secs(120);
    let mut w = Worker::new(
        Arc::clone(&store),
        configured("crm", Scripted::new(vec![fail()]), p),
        options(),
        clock.clock(),
    );
    for _ in 0..2 {
        assert!(!w.run_once().await.unwrap().disabled);
        clock.advance(TimeDelta::seconds(60));
    }
    assert!(w.run_once().await.unwrap().disabled);
    assert!(
        store.sink_states().await.unwrap()[0]
            .disabled_reason
            .is_some()
    );
}

#[tokio::test]
async fn retry_after_from_a_real_http_endpoint_sets_the_next_attempt() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(Mutex::new(0u32));
    let h = Arc::clone(&hits);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let h = Arc::clone(&h);
            async move {
                let mut n = h.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    (
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "120")],
                    )
                        .into_response()
                } else {
                    (axum::http::StatusCode::OK, [("retry-after", "0")]).into_response()
                }
            }
        }),
    );
    let stop = CancellationToken::new();
    let s = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await
            .unwrap();
    });
    let (_dir, store) = open().await;
    let clock = SimClock::new();
    add(&store, vec![act("a1", "A", 0)], &["crm"]).await;
    let url = url::Url::parse(&format!("http://{addr}/hook")).unwrap();
    let sink = ringrelay::delivery::http::HttpSink::new(
        url,
        Signer::from_strs(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap(),
        Duration::from_secs(10),
        true,
    )
    .unwrap();
    let mut w = Worker::new(
        Arc::clone(&store),
        configured("crm", Arc::new(sink), policy(&[5])),
        options(),
        clock.clock(),
    );
    assert_eq!(w.run_once().await.unwrap().retried, 1);
    let d = store
        .list_deliveries(&DeliveryFilter::default())
        .await
        .unwrap();
    assert_eq!(d[0].due_at, Some(t0() + TimeDelta::seconds(120)));
    assert_eq!(d[0].last_status, Some(429));
    clock.advance(TimeDelta::seconds(119));
    assert_eq!(w.run_once().await.unwrap().claimed, 0);
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(w.run_once().await.unwrap().delivered, 1);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_sink_does_not_delay_a_healthy_one() {
    let (_dir, store) = open().await;
    let acts: Vec<Activity> = (0..20)
        .map(|i| act(&format!("k{i}"), &format!("call{i}"), i))
        .collect();
    add(&store, acts, &["slow", "fast"]).await;
    let release = CancellationToken::new();
    let slow = Arc::new(Scripted {
        script: Mutex::new(VecDeque::from([AttemptOutcome::Delivered])),
        got: Mutex::new(Vec::new()),
        hang: Some(release.clone()),
    });
    let fast = Scripted::new(vec![AttemptOutcome::Delivered]);
    let shutdown = CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    worker::spawn_all(
        &store,
        vec![
            configured("slow", slow, policy(&[5])),
            configured("fast", fast.clone(), policy(&[5])),
        ],
        &options(),
        &worker::system_clock(),
        &Arc::new(tokio::sync::Notify::new()),
        &shutdown,
        &tracker,
    );
    let mut done = false;
    for _ in 0..500 {
        if fast.got().len() == 20 {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(done, "the healthy sink got {} of 20", fast.got().len());
    let slow_states = states(&store, "slow").await;
    assert!(
        slow_states
            .iter()
            .all(|(_, s)| *s != DeliveryState::Delivered)
    );
    // Graceful shutdown: the hung attempt is released, the round finishes, workers stop.
    shutdown.cancel();
    release.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .unwrap();
    let counts = store.delivery_counts().await.unwrap();
    assert!(
        counts
            .iter()
            .any(|c| c.sink == "fast" && c.state == DeliveryState::Delivered && c.count == 20)
    );
    worker::record_backlog(store.as_ref()).await.unwrap();
}
