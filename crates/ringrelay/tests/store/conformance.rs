//! The conformance suite: every `Store` method, written once against `Arc<dyn Store>`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ringrelay::account::AccountId;
use ringrelay::activity::{Activity, ActivityKind, ActivitySource};
use ringrelay::config::Secret;
use ringrelay::store::{
    AppendOutcome, BackfillState, CursorUpdate, DeliveryFilter, DeliveryResult, DeliveryState,
    DisabledFilter, GapCause, NewActivity, NewNotification, PROCESSOR_CURSOR, Store, StoreError,
    SubscriptionRecord,
};

pub use super::cluster::*;
pub use crate::extensions::*;

type S = Arc<dyn Store>;

const SECOND: Duration = Duration::from_secs(1);

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::TimeDelta::seconds(secs)
}

fn acme() -> AccountId {
    AccountId::parse("acme").unwrap()
}

fn note(uuid: &str, received: DateTime<Utc>) -> NewNotification {
    NewNotification {
        account: acme(),
        subscription_id: Some("sub-1".into()),
        uuid: uuid.into(),
        event: "/restapi/v1.0/account/~/telephony/sessions".into(),
        timestamp: Some(received - chrono::TimeDelta::milliseconds(250)),
        received_at: received,
        body: format!(r#"{{"uuid":"{uuid}"}}"#).into(),
        unknown_subscription: false,
    }
}

fn activity(key: &str, call: &str, at: i64) -> Activity {
    let mut data = serde_json::Map::new();
    data.insert("call_key".into(), call.into());
    Activity::new(
        key.into(),
        ActivityKind::ALL[0],
        acme(),
        call.into(),
        ActivitySource::Webhook,
        t(at),
        data,
    )
}

fn new(key: &str, call: &str, at: i64, sinks: &[&str]) -> NewActivity {
    NewActivity {
        activity: activity(key, call, at),
        sinks: sinks.iter().map(|s| (*s).to_owned()).collect(),
    }
}

async fn claim_keys(s: &S, sink: &str, now: DateTime<Utc>) -> Vec<String> {
    s.claim_deliveries(sink, "w", now, 100, 30 * SECOND)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.activity.key)
        .collect()
}

pub async fn appends_are_stored_once_and_read_back_in_order(s: S) {
    for (i, u) in ["u1", "u2", "u3"].iter().enumerate() {
        let o = s.append_inbox(note(u, t(i as i64))).await.unwrap();
        assert_eq!(o, AppendOutcome::Stored);
    }
    let dup = s.append_inbox(note("u2", t(9))).await.unwrap();
    assert_eq!(dup, AppendOutcome::Duplicate);

    let rows = s.inbox_after(0, 10).await.unwrap();
    let uuids: Vec<_> = rows.iter().map(|r| r.uuid.as_str()).collect();
    assert_eq!(uuids, ["u1", "u2", "u3"]);
    assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq));
    let first = &rows[0];
    let expected = note("u1", t(0));
    assert_eq!(first.account, expected.account);
    assert_eq!(first.subscription_id, expected.subscription_id);
    assert_eq!(first.event, expected.event);
    assert_eq!(first.timestamp, expected.timestamp);
    assert_eq!(first.received_at, expected.received_at);
    assert_eq!(first.body, *expected.body);

    let rest = s.inbox_after(rows[0].seq, 1).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].uuid, "u2");

    let stats = s.inbox_stats().await.unwrap();
    assert_eq!(stats.rows, 3);
    assert_eq!(stats.duplicates, 1);
    assert_eq!(stats.max_seq, rows[2].seq);
}

pub async fn concurrent_appends_with_overlapping_uuids_store_each_uuid_once(s: S) {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let uuid = format!("c{}", i % 16);
                (
                    uuid.clone(),
                    s.append_inbox(note(&uuid, t(i))).await.unwrap(),
                )
            })
        })
        .collect();
    let mut stored: HashMap<String, usize> = HashMap::new();
    let mut duplicates = 0;
    for task in tasks {
        let (uuid, outcome) = task.await.unwrap();
        match outcome {
            AppendOutcome::Stored => *stored.entry(uuid).or_default() += 1,
            AppendOutcome::Duplicate => duplicates += 1,
        }
    }
    assert_eq!(
        stored.len(),
        16,
        "every uuid is new exactly once: {stored:?}"
    );
    assert!(stored.values().all(|n| *n == 1));
    assert_eq!(duplicates, 48);
    let rows = s.inbox_after(0, 1000).await.unwrap();
    let distinct: HashSet<_> = rows.iter().map(|r| r.uuid.clone()).collect();
    assert_eq!((rows.len(), distinct.len()), (16, 16));
    assert_eq!(s.inbox_stats().await.unwrap().duplicates, 48);
}

pub async fn activities_are_unique_by_key_and_move_the_cursor_in_the_same_transaction(s: S) {
    let cursor = |v: &str| CursorUpdate {
        account: None,
        name: PROCESSOR_CURSOR.into(),
        value: v.into(),
    };
    let out = s
        .insert_activities(
            vec![
                new("k1", "call-a", 1, &["crm", "log"]),
                new("k2", "call-a", 2, &["crm"]),
            ],
            Some(cursor("7")),
        )
        .await
        .unwrap();
    assert_eq!(out, [AppendOutcome::Stored, AppendOutcome::Stored]);
    assert_eq!(
        s.cursor(None, PROCESSOR_CURSOR).await.unwrap().as_deref(),
        Some("7")
    );

    let again = s
        .insert_activities(
            vec![
                new("k1", "call-a", 1, &["crm", "other"]),
                new("k3", "call-b", 3, &["crm"]),
            ],
            Some(cursor("9")),
        )
        .await
        .unwrap();
    assert_eq!(again, [AppendOutcome::Duplicate, AppendOutcome::Stored]);
    assert_eq!(
        s.cursor(None, PROCESSOR_CURSOR).await.unwrap().as_deref(),
        Some("9")
    );

    let all = s.list_deliveries(&DeliveryFilter::default()).await.unwrap();
    let mut pairs: Vec<_> = all
        .iter()
        .map(|d| (d.activity_key.as_str(), d.sink.as_str()))
        .collect();
    pairs.sort_unstable();
    assert_eq!(
        pairs,
        [("k1", "crm"), ("k1", "log"), ("k2", "crm"), ("k3", "crm")]
    );
    assert!(
        all.iter()
            .all(|d| d.state == DeliveryState::Pending && d.attempts == 0)
    );

    let claimed = s
        .claim_deliveries("log", "w", t(10), 10, SECOND)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].activity, activity("k1", "call-a", 1));
    assert_eq!(claimed[0].attempt, 1);
}

pub async fn claims_give_each_call_its_deliveries_in_order(s: S) {
    s.insert_activities(
        vec![
            new("a1", "call-a", 1, &["crm"]),
            new("b1", "call-b", 2, &["crm"]),
            new("a2", "call-a", 3, &["crm"]),
            new("a3", "call-a", 4, &["crm"]),
        ],
        None,
    )
    .await
    .unwrap();
    let first = s
        .claim_deliveries("crm", "w", t(10), 10, 30 * SECOND)
        .await
        .unwrap();
    let keys: Vec<_> = first.iter().map(|c| c.activity.key.as_str()).collect();
    assert_eq!(keys, ["a1", "b1"], "a2 waits for a1");
    assert!(
        claim_keys(&s, "crm", t(11)).await.is_empty(),
        "in flight holds the call"
    );

    let a1 = &first[0];
    s.complete_delivery(a1.id, a1.attempt, t(12), DeliveryResult::Delivered)
        .await
        .unwrap();
    assert_eq!(claim_keys(&s, "crm", t(12)).await, ["a2"]);
}

pub async fn two_workers_never_claim_the_same_delivery_and_calls_stay_ordered(s: S) {
    let mut batch = Vec::new();
    for call in 0..8 {
        for step in 0..6 {
            batch.push(new(
                &format!("c{call}-{step}"),
                &format!("call-{call}"),
                step,
                &["crm"],
            ));
        }
    }
    s.insert_activities(batch, None).await.unwrap();
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut idle = 0;
                for _ in 0..500 {
                    let claimed = s
                        .claim_deliveries("crm", &format!("w{w}"), t(100), 3, 30 * SECOND)
                        .await
                        .unwrap();
                    if claimed.is_empty() {
                        idle += 1;
                        if idle > 50 {
                            break;
                        }
                        tokio::task::yield_now().await;
                        continue;
                    }
                    idle = 0;
                    for c in claimed {
                        got.push((c.id, c.activity.key.clone()));
                        s.complete_delivery(c.id, c.attempt, t(100), DeliveryResult::Delivered)
                            .await
                            .unwrap();
                    }
                }
                got
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut per_call: BTreeMap<String, Vec<(i64, u32)>> = BTreeMap::new();
    for w in workers {
        for (id, key) in w.await.unwrap() {
            assert!(seen.insert(id), "delivery {id} was claimed twice");
            let (call, step) = key.split_once('-').unwrap();
            per_call
                .entry(call.into())
                .or_default()
                .push((id, step.parse().unwrap()));
        }
    }
    assert_eq!(seen.len(), 48, "every delivery was claimed");
    // Each call's deliveries were claimed only after the previous one completed, so
    // ordering by id (creation order) must also be step order.
    for (call, mut steps) in per_call {
        steps.sort_unstable();
        let order: Vec<_> = steps.iter().map(|(_, s)| *s).collect();
        assert_eq!(order, (0..6).collect::<Vec<_>>(), "call {call}");
    }
    let delivered = s
        .list_deliveries(&DeliveryFilter {
            state: Some(DeliveryState::Delivered),
            limit: 1000,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(delivered.len(), 48);
}

pub async fn a_stale_worker_cannot_complete_a_reclaimed_delivery(s: S) {
    s.insert_activities(vec![new("k", "call", 1, &["crm"])], None)
        .await
        .unwrap();
    let old = s
        .claim_deliveries("crm", "slow", t(0), 1, 5 * SECOND)
        .await
        .unwrap();
    assert_eq!(old[0].attempt, 1);
    assert!(
        s.claim_deliveries("crm", "fast", t(4), 1, 5 * SECOND)
            .await
            .unwrap()
            .is_empty()
    );
    let new = s
        .claim_deliveries("crm", "fast", t(6), 1, 5 * SECOND)
        .await
        .unwrap();
    assert_eq!(
        (new[0].id, new[0].attempt),
        (old[0].id, 2),
        "expired lease is reclaimed"
    );

    let stale = s
        .complete_delivery(old[0].id, 1, t(7), DeliveryResult::Delivered)
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict(_)), "{stale}");
    s.complete_delivery(new[0].id, 2, t(7), DeliveryResult::Delivered)
        .await
        .unwrap();
    let twice = s
        .complete_delivery(new[0].id, 2, t(8), DeliveryResult::Delivered)
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))));
    let missing = s
        .complete_delivery(9_999_999, 1, t(8), DeliveryResult::Delivered)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
}

pub async fn failed_deliveries_wait_dead_ones_stop_and_retry_revives_them(s: S) {
    s.insert_activities(
        vec![
            new("f", "call-f", 1, &["crm"]),
            new("d", "call-d", 2, &["crm"]),
        ],
        None,
    )
    .await
    .unwrap();
    let claimed = s
        .claim_deliveries("crm", "w", t(0), 10, 30 * SECOND)
        .await
        .unwrap();
    let by_key: HashMap<_, _> = claimed
        .iter()
        .map(|c| (c.activity.key.as_str(), c))
        .collect();
    let (f, d) = (by_key["f"], by_key["d"]);
    let retry = DeliveryResult::RetryAt {
        at: t(60),
        error: "503 from sink".into(),
        status: Some(503),
    };
    s.complete_delivery(f.id, f.attempt, t(1), retry)
        .await
        .unwrap();
    let dead = DeliveryResult::Dead {
        error: "410 gone".into(),
        status: Some(410),
    };
    s.complete_delivery(d.id, d.attempt, t(1), dead)
        .await
        .unwrap();

    assert!(claim_keys(&s, "crm", t(59)).await.is_empty());
    let again = s
        .claim_deliveries("crm", "w", t(60), 10, 30 * SECOND)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].activity.key.as_str(), again[0].attempt), ("f", 2));

    let listed = s
        .list_deliveries(&DeliveryFilter {
            state: Some(DeliveryState::Dead),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_error.as_deref(), Some("410 gone"));
    assert_eq!(listed[0].last_status, Some(410));
    let counts = s.delivery_counts().await.unwrap();
    let counted: Vec<_> = counts
        .iter()
        .map(|c| (c.sink.as_str(), c.state, c.count))
        .collect();
    assert!(
        counted.contains(&("crm", DeliveryState::Dead, 1)),
        "{counted:?}"
    );
    assert!(
        counted.contains(&("crm", DeliveryState::InFlight, 1)),
        "{counted:?}"
    );

    s.retry_delivery(d.id, t(70)).await.unwrap();
    assert_eq!(claim_keys(&s, "crm", t(70)).await, ["d"]);
    let in_flight = s.retry_delivery(d.id, t(71)).await;
    assert!(matches!(in_flight, Err(StoreError::Conflict(_))));
    assert!(matches!(
        s.retry_delivery(9_999_999, t(71)).await,
        Err(StoreError::NotFound(_))
    ));

    let page = s
        .list_deliveries(&DeliveryFilter {
            sink: Some("crm".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let older = s
        .list_deliveries(&DeliveryFilter {
            before_id: Some(page[0].id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((page.len(), older.len()), (1, 1));
    assert!(older[0].id < page[0].id);
}

pub async fn replay_makes_delivered_deliveries_due_again(s: S) {
    s.insert_activities(
        vec![
            new("old", "c1", 10, &["crm"]),
            new("new", "c2", 100, &["crm"]),
        ],
        None,
    )
    .await
    .unwrap();
    for c in s
        .claim_deliveries("crm", "w", t(200), 10, SECOND)
        .await
        .unwrap()
    {
        s.complete_delivery(c.id, c.attempt, t(200), DeliveryResult::Delivered)
            .await
            .unwrap();
    }
    assert_eq!(s.replay("crm", t(50), t(300)).await.unwrap(), 1);
    assert_eq!(s.replay("other", t(0), t(300)).await.unwrap(), 0);
    let again = s
        .claim_deliveries("crm", "w", t(300), 10, SECOND)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].activity.key.as_str(), again[0].attempt),
        ("new", 2)
    );
}

pub async fn a_disabled_sink_gets_no_claims_until_enabled(s: S) {
    s.insert_activities(vec![new("k", "c", 1, &["crm"])], None)
        .await
        .unwrap();
    s.set_sink_disabled("crm", Some("401 from sink".into()), t(1))
        .await
        .unwrap();
    assert!(claim_keys(&s, "crm", t(2)).await.is_empty());
    let states = s.sink_states().await.unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].disabled_reason.as_deref(), Some("401 from sink"));
    assert_eq!(states[0].changed_at, t(1));
    s.set_sink_disabled("crm", None, t(3)).await.unwrap();
    assert_eq!(claim_keys(&s, "crm", t(3)).await, ["k"]);
    assert_eq!(s.sink_states().await.unwrap()[0].disabled_reason, None);
}

fn record(account: &AccountId, id: &str) -> SubscriptionRecord {
    SubscriptionRecord {
        account: account.clone(),
        id: id.into(),
        status: "Active".into(),
        expires_at: t(900),
        address: "https://relay.example.com/webhooks/ringcentral/acme".into(),
        verification_token: Some(Secret::new("vt-secret")),
        event_filters: vec!["/restapi/v1.0/account/~/telephony/sessions".into()],
        disabled_filters: vec![DisabledFilter {
            filter: "/x".into(),
            reason: "no permission".into(),
        }],
        created_at: t(0),
        renewed_at: None,
        last_error: None,
    }
}

pub async fn subscription_records_round_trip(s: S) {
    let other = AccountId::parse("beta").unwrap();
    assert!(s.subscription(&acme()).await.unwrap().is_none());
    s.upsert_subscription(&record(&acme(), "s1")).await.unwrap();
    s.upsert_subscription(&record(&other, "s2")).await.unwrap();
    assert_eq!(
        s.subscription(&acme()).await.unwrap(),
        Some(record(&acme(), "s1"))
    );

    let mut renewed = record(&acme(), "s1");
    renewed.renewed_at = Some(t(500));
    renewed.expires_at = t(1800);
    renewed.last_error = Some("timeout".into());
    renewed.verification_token = None;
    s.upsert_subscription(&renewed).await.unwrap();
    assert_eq!(
        s.subscription(&acme()).await.unwrap(),
        Some(renewed.clone())
    );
    let all = s.subscriptions().await.unwrap();
    assert_eq!(all, [renewed, record(&other, "s2")]);

    assert!(s.delete_subscription(&other).await.unwrap());
    assert!(!s.delete_subscription(&other).await.unwrap());
    assert_eq!(s.subscriptions().await.unwrap().len(), 1);
}

pub async fn the_coverage_ledger_tracks_gaps_and_backfills(s: S) {
    let a = acme();
    assert!(s.close_gap(&a, t(1)).await.unwrap().is_none());
    let g = s.open_gap(&a, t(10), GapCause::Expired).await.unwrap();
    let same = s.open_gap(&a, t(20), GapCause::Blacklisted).await.unwrap();
    assert_eq!(g, same, "open_gap is idempotent while a gap is open");
    assert_eq!((g.from, g.until, g.cause), (t(10), None, GapCause::Expired));
    assert_eq!(g.backfill, BackfillState::Pending);
    assert!(
        s.gaps_to_backfill(10).await.unwrap().is_empty(),
        "open gaps wait"
    );
    let open = s
        .mark_gap_backfilled(g.id, BackfillState::Pending, t(11))
        .await;
    assert!(matches!(open, Err(StoreError::Conflict(_))));

    let closed = s.close_gap(&a, t(30)).await.unwrap().unwrap();
    assert_eq!((closed.id, closed.until), (g.id, Some(t(30))));
    let second = s.open_gap(&a, t(40), GapCause::Downtime).await.unwrap();
    assert_ne!(second.id, g.id);

    assert_eq!(
        s.gaps_to_backfill(10).await.unwrap(),
        std::slice::from_ref(&closed)
    );
    let done = BackfillState::Done {
        records: 12,
        activities: 30,
    };
    s.mark_gap_backfilled(g.id, done.clone(), t(50))
        .await
        .unwrap();
    assert!(s.gaps_to_backfill(10).await.unwrap().is_empty());
    let all = s.gaps(Some(&a), None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].backfill.clone(), all[0].backfilled_at),
        (done, Some(t(50)))
    );
    assert_eq!(
        s.gaps(None, Some(t(31))).await.unwrap(),
        [second],
        "only open or recent"
    );
    let missing = s
        .mark_gap_backfilled(9_999_999, BackfillState::Pending, t(1))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));

    assert_eq!(s.last_liveness(&a).await.unwrap(), None);
    s.record_liveness(&a, t(100)).await.unwrap();
    s.record_liveness(&a, t(90)).await.unwrap();
    assert_eq!(
        s.last_liveness(&a).await.unwrap(),
        Some(t(100)),
        "never moves back"
    );
}

pub async fn cursors_are_named_per_account(s: S) {
    let a = acme();
    let b = AccountId::parse("beta").unwrap();
    let set = |acc: Option<&AccountId>, v: &str| CursorUpdate {
        account: acc.cloned(),
        name: "call_log.sync_token".into(),
        value: v.into(),
    };
    assert_eq!(
        s.cursor(Some(&a), "call_log.sync_token").await.unwrap(),
        None
    );
    s.set_cursor(&set(Some(&a), "tok-a")).await.unwrap();
    s.set_cursor(&set(Some(&b), "tok-b")).await.unwrap();
    s.set_cursor(&set(None, "global")).await.unwrap();
    s.set_cursor(&set(Some(&a), "tok-a2")).await.unwrap();
    assert_eq!(
        s.cursor(Some(&a), "call_log.sync_token")
            .await
            .unwrap()
            .as_deref(),
        Some("tok-a2")
    );
    assert_eq!(
        s.cursor(Some(&b), "call_log.sync_token")
            .await
            .unwrap()
            .as_deref(),
        Some("tok-b")
    );
    assert_eq!(
        s.cursor(None, "call_log.sync_token")
            .await
            .unwrap()
            .as_deref(),
        Some("global")
    );
}

pub async fn a_lease_has_one_holder_and_its_fence_grows_when_it_changes_hands(s: S) {
    let ttl = 10 * SECOND;
    let a = s
        .acquire_lease("keeper:acme", "r1", t(0), ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.expires_at, t(10));
    assert!(
        s.acquire_lease("keeper:acme", "r2", t(5), ttl)
            .await
            .unwrap()
            .is_none()
    );
    let again = s
        .acquire_lease("keeper:acme", "r1", t(5), ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.fence, again.expires_at), (a.fence, t(15)));
    let renewed = s.renew_lease(&again, t(8), ttl).await.unwrap();
    assert_eq!(renewed.expires_at, t(18));

    let b = s
        .acquire_lease("keeper:acme", "r2", t(19), ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(b.fence > a.fence, "a takeover gets a higher fence");
    let stale = s.renew_lease(&renewed, t(20), ttl).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))));
    s.release_lease(&renewed).await.unwrap();
    assert!(
        s.acquire_lease("keeper:acme", "r3", t(20), ttl)
            .await
            .unwrap()
            .is_none(),
        "stale release is a no-op"
    );

    s.release_lease(&b).await.unwrap();
    let c = s
        .acquire_lease("keeper:acme", "r3", t(21), ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(c.fence > b.fence);
    assert!(matches!(
        s.renew_lease(&b, t(22), ttl).await,
        Err(StoreError::Conflict(_))
    ));
    let other = s
        .acquire_lease("keeper:beta", "r1", t(21), ttl)
        .await
        .unwrap();
    assert!(other.is_some(), "leases are independent by name");
}

pub async fn concurrent_acquirers_get_the_lease_once(s: S) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                s.acquire_lease("keeper:acme", &format!("r{i}"), t(0), 30 * SECOND)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut holders = 0;
    for task in tasks {
        holders += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(holders, 1);
}

pub async fn telephony_state_is_saved_loaded_and_deleted(s: S) {
    let a = acme();
    assert_eq!(s.load_telephony(&a, "s-1").await.unwrap(), None);
    let v1 = serde_json::json!({"parties": {"p-1": {"seq": 3, "status": "Proceeding"}}});
    let v2 = serde_json::json!({"parties": {"p-1": {"seq": 5, "status": "Answered"}}});
    s.save_telephony(&a, "s-1", &v1, t(1)).await.unwrap();
    s.save_telephony(&a, "s-1", &v2, t(2)).await.unwrap();
    s.save_telephony(&a, "s-2", &v1, t(2)).await.unwrap();
    assert_eq!(s.load_telephony(&a, "s-1").await.unwrap(), Some(v2));
    let other = AccountId::parse("beta").unwrap();
    assert_eq!(s.load_telephony(&other, "s-1").await.unwrap(), None);
    assert!(s.delete_telephony(&a, "s-1").await.unwrap());
    assert!(!s.delete_telephony(&a, "s-1").await.unwrap());
    assert_eq!(s.load_telephony(&a, "s-2").await.unwrap(), Some(v1));
}

pub async fn pruning_removes_old_rows_and_keeps_recent_dedup_keys(s: S) {
    let day = Duration::from_secs(86_400);
    let now = Utc::now() + chrono::TimeDelta::days(40);
    s.append_inbox(note("ancient", now - chrono::TimeDelta::days(31)))
        .await
        .unwrap();
    s.append_inbox(note("recent", now - chrono::TimeDelta::days(1)))
        .await
        .unwrap();
    s.insert_activities(
        vec![
            new("done", "c1", 1, &["crm"]),
            new("waiting", "c2", 2, &["crm"]),
        ],
        None,
    )
    .await
    .unwrap();
    let claimed = s
        .claim_deliveries("crm", "w", t(0), 10, SECOND)
        .await
        .unwrap();
    let done = claimed.iter().find(|c| c.activity.key == "done").unwrap();
    let long_ago = now - chrono::TimeDelta::days(8);
    s.complete_delivery(done.id, done.attempt, long_ago, DeliveryResult::Delivered)
        .await
        .unwrap();

    let counts = s.prune(now, 30 * day, 7 * day).await.unwrap();
    assert_eq!(
        (counts.inbox, counts.deliveries, counts.activities),
        (1, 1, 1)
    );
    let left: Vec<_> = s
        .inbox_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uuid)
        .collect();
    assert_eq!(left, ["recent"]);
    assert_eq!(
        s.append_inbox(note("recent", now)).await.unwrap(),
        AppendOutcome::Duplicate
    );
    let deliveries = s.list_deliveries(&DeliveryFilter::default()).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].activity_key, "waiting");
    assert_eq!(s.prune(now, 30 * day, 7 * day).await.unwrap().inbox, 0);
}

pub async fn ping_answers(s: S) {
    s.ping().await.unwrap();
}

pub async fn account_summaries_count_one_accounts_recent_traffic(s: S) {
    let none = s.inbox_account_summary(&acme(), t(0)).await.unwrap();
    assert_eq!(none.last_received_at, None);
    assert_eq!(none.since_count, 0);
    for (i, at) in [10, 20, 30].into_iter().enumerate() {
        s.append_inbox(note(&format!("u-{i}"), t(at)))
            .await
            .unwrap();
    }
    let mut other = note("other-1", t(40));
    other.account = AccountId::parse("globex").unwrap();
    s.append_inbox(other).await.unwrap();
    let sum = s.inbox_account_summary(&acme(), t(20)).await.unwrap();
    assert_eq!(
        sum.last_received_at,
        Some(t(30)),
        "globex's later row does not count"
    );
    assert_eq!(sum.since_count, 2, "rows at or after the time asked");
}

pub async fn an_activity_payload_is_read_back_by_key(s: S) {
    assert_eq!(s.activity_payload("acme:calllog:1").await.unwrap(), None);
    let a = new("acme:calllog:1", "call-1", 5, &["crm"]);
    let payload = a.activity.payload.clone();
    s.insert_activities(vec![a], None).await.unwrap();
    assert_eq!(
        s.activity_payload("acme:calllog:1").await.unwrap(),
        Some(payload)
    );
}
