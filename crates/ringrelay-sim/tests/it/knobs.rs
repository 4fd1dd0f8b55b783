//! Delivery knobs: duplicates, delivery delay, and timeouts counting as failures.

use std::time::Duration;

use ringrelay_sim::{CallScenario, SimConfig};
use serde_json::{Value, json};

use crate::helpers::{Answer, Receiver, TELEPHONY, TestSim, unlimited, webhook};

async fn subscribed(config: SimConfig, answer: Answer) -> (TestSim, Receiver) {
    let t = TestSim::start(config).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let r = t.create(&token, &webhook(&rx.url, &[TELEPHONY])).await;
    assert_eq!(r.status(), 200);
    rx.set(answer);
    (t, rx)
}

fn event(t: &TestSim) -> (String, String) {
    let a = &t.sim.accounts()[0];
    (
        a.id.clone(),
        format!("/restapi/v1.0/account/{}/telephony/sessions", a.id),
    )
}

#[tokio::test]
async fn with_duplicate_rate_one_every_notification_arrives_twice_with_one_uuid() {
    let config = SimConfig {
        duplicate_rate: 1.0,
        ..unlimited()
    };
    let (t, rx) = subscribed(config, Answer::Good).await;
    let (account, path) = event(&t);
    let sent = t.sim.inject(&account, &path, json!({})).await.unwrap();
    assert_eq!(sent.len(), 2);
    let got = rx.received();
    assert_eq!(got.len(), 2);
    // A duplicate is the same notification again: its own envelope, same body.
    assert_eq!(got[0].body["body"], got[1].body["body"]);
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn a_slow_endpoint_counts_as_failing_and_is_blacklisted_with_a_timeout_reason() {
    let (t, rx) = subscribed(unlimited(), Answer::Slow(1000)).await;
    let (account, path) = event(&t);
    let first = t.sim.inject(&account, &path, json!({})).await.unwrap();
    assert_eq!(first[0].error.as_deref(), Some("Read timed out"));
    t.sim.advance(Duration::from_secs(601)).await;
    t.sim.inject(&account, &path, json!({})).await.unwrap();
    let s: &Value = &t.sim.subscriptions()[0];
    assert_eq!(s["status"], "Blacklisted");
    assert_eq!(
        s["blacklistedData"]["reason"],
        "I/O operation is failed. Details: [Read timed out]"
    );
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn the_delivery_delay_holds_call_events_back_on_the_simulated_clock() {
    let config = SimConfig {
        delivery_delay: Duration::from_secs(3600),
        ..unlimited()
    };
    let (t, rx) = subscribed(config, Answer::Good).await;
    let (account, _) = event(&t);
    let call = t
        .sim
        .run_call(&account, CallScenario::InboundMissed)
        .await
        .unwrap();
    assert!(rx.received().is_empty(), "nothing before the delay");
    let to_end = (call.ended_at - t.sim.clock().now())
        .to_std()
        .unwrap_or_default();
    t.sim.advance(to_end + Duration::from_secs(1)).await;
    assert!(
        rx.received().is_empty(),
        "the call ended but the delay has not passed"
    );
    t.sim.advance(Duration::from_secs(3600)).await;
    assert_eq!(rx.received().len(), call.events.len());
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn reordering_keeps_every_event_of_the_call() {
    let config = SimConfig {
        reorder_rate: 1.0,
        ..unlimited()
    };
    let (t, rx) = subscribed(config, Answer::Good).await;
    let (account, _) = event(&t);
    let call = t
        .sim
        .run_call(&account, CallScenario::HoldResume)
        .await
        .unwrap();
    t.sim.complete_calls().await;
    let got = rx.received();
    assert_eq!(got.len(), call.events.len());
    let sequences: Vec<i64> = got
        .iter()
        .map(|r| r.body["body"]["sequence"].as_i64().unwrap())
        .collect();
    let mut sorted = sequences.clone();
    sorted.sort_unstable();
    assert_ne!(
        sequences, sorted,
        "with reorder_rate 1 some events arrive out of order"
    );
    t.shutdown().await;
    rx.stop().await;
}
