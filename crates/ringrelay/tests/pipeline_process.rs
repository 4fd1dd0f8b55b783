//! The processor loop over a real SQLite store: inbox rows in any order, duplicated, give
//! each activity once with its deliveries; the position survives a restart; re-processing
//! from the start stores nothing new; finished calls and reminders are reported.

use std::sync::Arc;

use chrono::Utc;
use ringrelay::account::AccountId;
use ringrelay::pipeline::process::{CURSOR, Processor};
use ringrelay::pipeline::{PipelineEvent, route_all};
use ringrelay::store::{self, CursorUpdate, DeliveryFilter, NewNotification, OpenOptions, Store};
use tokio::sync::mpsc;

fn acme() -> AccountId {
    AccountId::parse("acme").expect("slug")
}

fn scenario(name: &str) -> Vec<serde_json::Value> {
    let path = format!(
        "{}/../../fixtures/ringcentral/scenarios/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

async fn open() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = ringrelay::config::StoreUrl::parse(&format!(
        "sqlite://{}",
        dir.path().join("p.db").display()
    ))
    .expect("url");
    let store = store::open(&url, &OpenOptions::default())
        .await
        .expect("open");
    (dir, store)
}

async fn append(store: &Arc<dyn Store>, v: &serde_json::Value) {
    store
        .append_inbox(NewNotification {
            account: acme(),
            subscription_id: v["subscriptionId"].as_str().map(str::to_owned),
            uuid: v["uuid"].as_str().expect("uuid").to_owned(),
            event: v["event"].as_str().expect("event").to_owned(),
            timestamp: None,
            received_at: Utc::now(),
            body: v.to_string().into(),
            unknown_subscription: false,
        })
        .await
        .expect("append");
}

async fn kinds(store: &Arc<dyn Store>) -> Vec<String> {
    let mut k: Vec<String> = store
        .list_deliveries(&DeliveryFilter {
            limit: 1000,
            ..DeliveryFilter::default()
        })
        .await
        .expect("deliveries")
        .into_iter()
        .map(|d| d.kind)
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn reversed_and_duplicated_missed_call_gives_one_missed() {
    let (_dir, store) = open().await;
    let mut events = scenario("inbound-missed");
    events.reverse();
    for e in &events {
        append(&store, e).await;
    }
    // Same notifications under new uuids (a stray subscription's copies).
    for (i, e) in events.iter().enumerate() {
        let mut copy = e.clone();
        copy["uuid"] = format!("copy-{i}").into();
        append(&store, &copy).await;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let processor = Processor::new(store.clone(), route_all(vec!["crm".into()])).with_events(tx);
    let report = processor.drain().await.expect("drain");
    assert_eq!(report.rows, events.len() * 2);
    let got = kinds(&store).await;
    assert_eq!(
        got.iter().filter(|k| *k == "call.missed").count(),
        1,
        "{got:?}"
    );
    assert!(!got.iter().any(|k| k == "call.answered"), "{got:?}");
    let finished = rx.try_recv().expect("call finished reported");
    assert!(
        matches!(finished, PipelineEvent::CallFinished { ref account, .. } if *account == acme())
    );

    // A restart continues from the stored position: nothing new.
    let again = Processor::new(store.clone(), route_all(vec!["crm".into()]));
    assert_eq!(again.drain().await.expect("drain").rows, 0);
    // Re-processing everything from the start stores nothing twice.
    store
        .set_cursor(&CursorUpdate {
            account: None,
            name: CURSOR.into(),
            value: "0".into(),
        })
        .await
        .expect("reset");
    let r = again.drain().await.expect("drain");
    assert_eq!(r.activities, 0);
    assert_eq!(kinds(&store).await, got);
}

#[tokio::test]
async fn answered_call_is_not_missed_and_each_transition_once() {
    let (_dir, store) = open().await;
    for e in scenario("inbound-answered") {
        append(&store, &e).await;
    }
    let processor = Processor::new(store.clone(), route_all(vec!["crm".into(), "nats".into()]));
    processor.drain().await.expect("drain");
    let got = kinds(&store).await;
    assert!(!got.iter().any(|k| k == "call.missed"), "{got:?}");
    for kind in ["call.ringing", "call.answered", "call.ended"] {
        assert_eq!(
            got.iter().filter(|k| *k == kind).count(),
            2,
            "{kind} once per sink in {got:?}"
        );
    }
}

#[tokio::test]
async fn unknown_events_are_skipped_and_kept_and_reminders_reported() {
    let (_dir, store) = open().await;
    let odd = serde_json::json!({"uuid": "odd-1", "event": "/restapi/v1.0/account/1/presence", "body": {}});
    let reminder = serde_json::json!({
        "uuid": "rem-1",
        "event": "/restapi/v1.0/subscription/~?threshold=172800&interval=43200",
        "body": {"id": "sub-1", "expirationTime": "2026-11-30T00:00:00Z"}
    });
    append(&store, &odd).await;
    append(&store, &reminder).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let processor = Processor::new(store.clone(), route_all(vec!["crm".into()])).with_events(tx);
    let r = processor.drain().await.expect("drain");
    assert_eq!((r.rows, r.skipped, r.activities), (2, 1, 0));
    assert_eq!(
        rx.try_recv().expect("reminder"),
        PipelineEvent::RenewalReminder { account: acme() }
    );
    assert_eq!(
        store.inbox_after(0, 10).await.expect("inbox").len(),
        2,
        "kept in the inbox"
    );
}
