//! Faults and the `/sim/…` control API.

use std::time::Duration;

use ringrelay_sim::Fault;
use serde_json::{Value, json};

use crate::helpers::{Answer, Receiver, TELEPHONY, TestSim, unlimited, webhook};

#[tokio::test]
async fn a_fault_answers_its_status_the_given_number_of_times() {
    let t = TestSim::start(unlimited()).await;
    let token = t.access_token().await;
    t.sim
        .add_fault(Fault::status("/restapi/v1.0/subscription", 503, 2).with_method("GET"));
    for _ in 0..2 {
        let r = t.get(&token, "/restapi/v1.0/subscription").await;
        assert_eq!(r.status(), 503);
        assert_eq!(
            r.json::<Value>().await.unwrap()["errors"][0]["errorCode"],
            "CMN-201"
        );
    }
    assert_eq!(
        t.get(&token, "/restapi/v1.0/subscription").await.status(),
        200
    );
    let statuses: Vec<u16> = t.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 503, 503, 200]);
    t.shutdown().await;
}

#[tokio::test]
async fn a_delayed_fault_makes_a_client_time_out() {
    let t = TestSim::start(unlimited()).await;
    let token = t.access_token().await;
    t.sim.add_fault(
        Fault::status("/restapi/v1.0/subscription", 504, 1).with_delay(Duration::from_millis(500)),
    );
    let r = t
        .http
        .get(t.url("/restapi/v1.0/subscription"))
        .bearer_auth(&token)
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    t.shutdown().await;
}

#[tokio::test]
async fn the_control_api_advances_the_clock_blacklists_and_injects() {
    let t = TestSim::start(unlimited()).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let s: Value = t
        .create(&token, &webhook(&rx.url, &[TELEPHONY]))
        .await
        .json()
        .await
        .unwrap();
    let id = s["id"].as_str().unwrap();

    let before = t.sim.clock().now();
    let r = t
        .http
        .post(t.url("/sim/advance"))
        .json(&json!({"seconds": 3600}))
        .send()
        .await;
    assert_eq!(r.unwrap().status(), 200);
    assert!(t.sim.clock().now() - before >= chrono::Duration::seconds(3600));

    let a = &t.sim.accounts()[0];
    let event = format!("/restapi/v1.0/account/{}/telephony/sessions", a.id);
    let inject = json!({"accountId": a.id, "event": event, "body": {"x": 1}});
    let r: Value = t
        .http
        .post(t.url("/sim/inject"))
        .json(&inject)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(rx.received().len(), 1);

    let token = t.access_token().await;
    let r = t
        .http
        .post(t.url(&format!("/sim/subscriptions/{id}/blacklist")))
        .send()
        .await;
    assert_eq!(r.unwrap().status(), 204);
    let got: Value = t
        .get(&token, &format!("/restapi/v1.0/subscription/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["status"], "Blacklisted");
    assert!(got["blacklistedData"]["blacklistedAt"].is_string());
    assert!(
        t.sim
            .inject(&a.id, &event, json!({}))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!t.sim.blacklist("no-such-id"));

    let accounts: Value = t
        .http
        .get(t.url("/sim/accounts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts["clientId"], "sim-client-id");
    let fault = json!({"path": "/restapi/oauth/token", "status": 500, "errorCode": "CMN-203"});
    let r = t
        .http
        .post(t.url("/sim/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = t.token_response().await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["errorCode"],
        "CMN-203"
    );
    assert_eq!(t.token_response().await.status(), 200);
    t.shutdown().await;
    rx.stop().await;
}
