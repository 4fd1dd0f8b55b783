//! Webhook delivery: envelope and headers, blacklisting, drops, reminders.

use std::time::Duration;

use ringrelay_sim::DropDeliveries;
use serde_json::{Value, json};

use crate::helpers::{Answer, Receiver, TELEPHONY, TestSim, unlimited, webhook};

async fn subscribed(filters: &[&str], expires_in: i64) -> (TestSim, Receiver, String) {
    let t = TestSim::start(unlimited()).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let mut body = webhook(&rx.url, filters);
    body["expiresIn"] = json!(expires_in);
    let s: Value = t.create(&token, &body).await.json().await.unwrap();
    (t, rx, s["id"].as_str().unwrap().to_owned())
}

fn extension_event(t: &TestSim) -> String {
    let a = &t.sim.accounts()[0];
    format!(
        "/restapi/v1.0/account/{}/extension/{}/telephony/sessions",
        a.id, a.extensions[1].id
    )
}

#[tokio::test]
async fn a_notification_arrives_in_an_envelope_with_ringcentral_headers() {
    let (t, rx, id) = subscribed(&[TELEPHONY], 3600).await;
    let event = extension_event(&t);
    let account = t.sim.accounts()[0].id.clone();
    let sent = t
        .sim
        .inject(&account, &event, json!({"sequence": 1}))
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].succeeded());
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let h = &got[0].headers;
    assert_eq!(h["verification-token"], "s3cret");
    assert_eq!(h["user-agent"], "RingCentral-Webhook/8.3");
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let b = &got[0].body;
    assert_eq!(b["event"], event.as_str());
    assert_eq!(b["subscriptionId"], id.as_str());
    assert_eq!(b["ownerId"], t.sim.accounts()[0].owner().id.as_str());
    assert_eq!(b["body"]["sequence"], 1);
    assert!(b["uuid"].is_string() && b["timestamp"].is_string());
    // An event the filters do not cover goes nowhere.
    let other = event.replace("telephony/sessions", "voicemail");
    assert!(
        t.sim
            .inject(&account, &other, json!({}))
            .await
            .unwrap()
            .is_empty()
    );
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn sustained_failure_blacklists_the_subscription_and_deliveries_stop() {
    let (t, rx, id) = subscribed(&[TELEPHONY], 86_400).await;
    let event = extension_event(&t);
    let account = t.sim.accounts()[0].id.clone();
    rx.set(Answer::Status(503));
    let first = t.sim.inject(&account, &event, json!({})).await.unwrap();
    assert_eq!(first[0].status, Some(503));
    t.sim.advance(Duration::from_secs(300)).await;
    t.sim.inject(&account, &event, json!({})).await.unwrap();
    assert_eq!(
        t.sim.subscriptions()[0]["status"],
        "Active",
        "5 minutes is not enough"
    );
    t.sim.advance(Duration::from_secs(301)).await;
    t.sim.inject(&account, &event, json!({})).await.unwrap();
    let s = &t.sim.subscriptions()[0];
    assert_eq!(s["status"], "Blacklisted");
    assert_eq!(
        s["blacklistedData"]["reason"],
        "Webhook responses with code: [503], reason: [Service Unavailable]"
    );
    rx.set(Answer::Good);
    assert!(
        t.sim
            .inject(&account, &event, json!({}))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(t.sim.deliveries().len(), 3);
    assert_eq!(t.sim.deliveries()[0].subscription_id, id);
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn a_success_resets_the_failure_period() {
    let (t, rx, _) = subscribed(&[TELEPHONY], 86_400).await;
    let event = extension_event(&t);
    let account = t.sim.accounts()[0].id.clone();
    rx.set(Answer::Status(500));
    t.sim.inject(&account, &event, json!({})).await.unwrap();
    t.sim.advance(Duration::from_secs(400)).await;
    rx.set(Answer::Good);
    t.sim.inject(&account, &event, json!({})).await.unwrap();
    rx.set(Answer::Status(500));
    t.sim.advance(Duration::from_secs(400)).await;
    t.sim.inject(&account, &event, json!({})).await.unwrap();
    assert_eq!(t.sim.subscriptions()[0]["status"], "Active");
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn dropped_deliveries_are_never_sent() {
    let (t, rx, _) = subscribed(&[TELEPHONY], 86_400).await;
    let event = extension_event(&t);
    let account = t.sim.accounts()[0].id.clone();
    t.sim.drop_deliveries(DropDeliveries::Count(2));
    for _ in 0..3 {
        t.sim.inject(&account, &event, json!({})).await.unwrap();
    }
    assert_eq!(rx.received().len(), 1);
    t.sim.drop_deliveries_for(Duration::from_secs(60));
    t.sim.inject(&account, &event, json!({})).await.unwrap();
    t.sim.advance(Duration::from_secs(61)).await;
    t.sim.inject(&account, &event, json!({})).await.unwrap();
    assert_eq!(rx.received().len(), 2);
    let dropped = t.sim.deliveries().iter().filter(|d| d.dropped).count();
    assert_eq!(dropped, 3);
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn renewal_reminders_start_at_the_threshold_and_repeat_every_interval() {
    let reminder = "/restapi/v1.0/subscription/~?threshold=600&interval=300";
    let (t, rx, id) = subscribed(&[TELEPHONY, reminder], 3600).await;
    assert!(t.sim.advance(Duration::from_secs(2000)).await.is_empty());
    let sent = t.sim.advance(Duration::from_secs(1000)).await;
    assert_eq!(sent.len(), 1, "600 s before expiry");
    assert!(
        t.sim.advance(Duration::from_secs(100)).await.is_empty(),
        "within the interval"
    );
    assert_eq!(t.sim.advance(Duration::from_secs(200)).await.len(), 1);
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body["event"], reminder);
    assert_eq!(got[0].body["subscriptionId"], id.as_str());
    assert!(got[0].body["body"]["expiresIn"].as_i64().unwrap() <= 600);
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn a_reminder_threshold_over_half_the_lifetime_is_disabled() {
    let t = TestSim::start(unlimited()).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let reminder = "/restapi/v1.0/subscription/~?threshold=3000&interval=300";
    let mut body = webhook(&rx.url, &[TELEPHONY, reminder]);
    body["expiresIn"] = json!(3600);
    let s: Value = t.create(&token, &body).await.json().await.unwrap();
    assert_eq!(s["disabledFilters"][0]["filter"], reminder);
    t.shutdown().await;
    rx.stop().await;
}
