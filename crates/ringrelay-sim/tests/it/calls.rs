//! Generated calls through the platform: events delivered on the simulated clock, the
//! call log served over HTTP after its lag.

use std::time::Duration;

use ringrelay_sim::CallScenario;
use serde_json::Value;

use crate::helpers::{Answer, Receiver, TELEPHONY, TestSim, unlimited, webhook};

#[tokio::test]
async fn a_call_delivers_its_events_and_reaches_the_call_log_after_the_lag() {
    let t = TestSim::start(unlimited()).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    assert_eq!(
        t.create(&token, &webhook(&rx.url, &[TELEPHONY]))
            .await
            .status(),
        200
    );
    let account = t.sim.accounts()[0].id.clone();
    let call = t
        .sim
        .run_call(&account, CallScenario::InboundAnswered)
        .await
        .unwrap();
    t.sim.complete_calls().await;
    let got = rx.received();
    assert_eq!(got.len(), call.events.len());
    for r in &got {
        assert_eq!(
            r.body["body"]["telephonySessionId"],
            call.telephony_session_id.as_str()
        );
    }
    // Not in the call log yet (the lag); visible after it.
    let path = "/restapi/v1.0/account/~/call-log?view=Detailed&dateFrom=2000-01-01T00:00:00Z";
    let before: Value = t.get(&token, path).await.json().await.unwrap();
    let visible = before["records"].as_array().unwrap().len();
    let lag = (call.call_log_visible_at - t.sim.clock().now())
        .to_std()
        .unwrap_or_default();
    t.sim.advance(lag + Duration::from_secs(1)).await;
    let r = t.get(&token, path).await;
    assert_eq!(r.headers()["x-rate-limit-group"], "heavy");
    let after: Value = r.json().await.unwrap();
    assert!(after["records"].as_array().unwrap().len() > visible);
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn random_calls_are_generated_and_unknown_accounts_are_refused() {
    let t = TestSim::start(unlimited()).await;
    assert_eq!(t.sim.run_random_calls(5).await.len(), 5);
    assert!(
        t.sim
            .run_call("nope", CallScenario::InboundMissed)
            .await
            .is_err()
    );
    t.shutdown().await;
}
