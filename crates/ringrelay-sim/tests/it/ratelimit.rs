//! Rate limits: headers, 429 with Retry-After, and the penalty restarting.

use std::time::Duration;

use ringrelay_sim::RateLimits;

use crate::helpers::{TestSim, test_config};

#[tokio::test]
async fn the_sixth_token_request_in_a_minute_gets_429_and_the_penalty_restarts() {
    let t = TestSim::start(test_config()).await;
    for i in 0..5 {
        let r = t.token_response().await;
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.headers()["x-rate-limit-group"], "auth");
        assert_eq!(r.headers()["x-rate-limit-limit"], "5");
        assert_eq!(
            r.headers()["x-rate-limit-remaining"],
            (4 - i).to_string().as_str()
        );
        assert_eq!(r.headers()["x-rate-limit-window"], "60");
    }
    let r = t.token_response().await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["errorCode"], "CMN-301");

    // A request 50 s into the penalty restarts it: 70 s after the first 429 still limited.
    t.sim.advance(Duration::from_secs(50)).await;
    assert_eq!(t.token_response().await.status(), 429);
    t.sim.advance(Duration::from_secs(20)).await;
    assert_eq!(t.token_response().await.status(), 429);
    t.sim.advance(Duration::from_secs(61)).await;
    assert_eq!(t.token_response().await.status(), 200);
    assert_eq!(t.sim.too_many_requests(), 3);
    t.shutdown().await;
}

#[tokio::test]
async fn groups_are_counted_separately() {
    let config = test_config().with_rate_limits(RateLimits {
        light: 2,
        ..RateLimits::default()
    });
    let t = TestSim::start(config).await;
    let token = t.access_token().await;
    for _ in 0..2 {
        assert_eq!(
            t.get(&token, "/restapi/v1.0/subscription").await.status(),
            200
        );
    }
    let r = t.get(&token, "/restapi/v1.0/subscription").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-rate-limit-group"], "light");
    // Auth is still open.
    assert_eq!(t.token_response().await.status(), 200);
    t.shutdown().await;
}
