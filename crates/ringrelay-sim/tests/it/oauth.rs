//! OAuth: the JWT and refresh grants, client auth, expiry, session limit, revoke.

use std::time::Duration;

use ringrelay_sim::JWT_GRANT;
use serde_json::Value;

use crate::helpers::{TestSim, unlimited};

#[tokio::test]
async fn the_jwt_grant_issues_a_bearer_token_that_opens_the_api() {
    let t = TestSim::start(unlimited()).await;
    let body = t.login().await;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["owner_id"], t.sim.accounts()[0].owner().id.as_str());
    assert!(body["refresh_token"].is_string() && body["session_id"].is_string());
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        t.get(token, "/restapi/v1.0/subscription").await.status(),
        200
    );
    assert_eq!(
        t.get("bogus", "/restapi/v1.0/subscription").await.status(),
        401
    );
    t.shutdown().await;
}

#[tokio::test]
async fn wrong_credentials_get_the_oauth_error_shape() {
    let t = TestSim::start(unlimited()).await;
    let jwt = t.sim.accounts()[0].jwt.clone();
    let url = t.url("/restapi/oauth/token");
    let none = t
        .http
        .post(&url)
        .form(&[("grant_type", JWT_GRANT), ("assertion", &jwt)]);
    let r = none.send().await.unwrap();
    assert_eq!(r.status(), 401);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"], "invalid_client");
    assert_eq!(b["errors"][0]["errorCode"], "OAU-123");

    let wrong = t.http.post(&url).basic_auth("sim-client-id", Some("nope"));
    let r = wrong
        .form(&[("grant_type", JWT_GRANT), ("assertion", &jwt)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");

    let c = t.sim.config();
    let bad_jwt = t
        .http
        .post(&url)
        .basic_auth(&c.client_id, Some(&c.client_secret));
    let r = bad_jwt
        .form(&[("grant_type", JWT_GRANT), ("assertion", "x.y.z")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");

    let bad_grant = t
        .http
        .post(&url)
        .basic_auth(&c.client_id, Some(&c.client_secret));
    let r = bad_grant
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    assert_eq!(t.sim.token_requests().len(), 4);
    t.shutdown().await;
}

async fn refresh(t: &TestSim, refresh_token: &str) -> reqwest::Response {
    let c = t.sim.config();
    t.http
        .post(t.url("/restapi/oauth/token"))
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_refresh_token_is_single_use_and_kills_the_previous_access_token() {
    let t = TestSim::start(unlimited()).await;
    let first = t.login().await;
    let rt = first["refresh_token"].as_str().unwrap();
    let r = refresh(&t, rt).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["access_token"], first["access_token"]);
    let old = first["access_token"].as_str().unwrap();
    assert_eq!(t.get(old, "/restapi/v1.0/subscription").await.status(), 401);
    let new = second["access_token"].as_str().unwrap();
    assert_eq!(t.get(new, "/restapi/v1.0/subscription").await.status(), 200);
    let again = refresh(&t, rt).await;
    assert_eq!(again.status(), 400);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn access_tokens_expire_on_the_simulated_clock() {
    let t = TestSim::start(unlimited().with_access_token_ttl(Duration::from_secs(600))).await;
    let token = t.access_token().await;
    t.sim.advance(Duration::from_secs(601)).await;
    let r = t.get(&token, "/restapi/v1.0/subscription").await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["errorCode"],
        "OAU-128"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn a_sixth_session_ends_the_oldest_one() {
    let t = TestSim::start(unlimited()).await;
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(t.access_token().await);
    }
    assert_eq!(
        t.get(&tokens[0], "/restapi/v1.0/subscription")
            .await
            .status(),
        401
    );
    for token in &tokens[1..] {
        assert_eq!(
            t.get(token, "/restapi/v1.0/subscription").await.status(),
            200
        );
    }
    t.shutdown().await;
}

#[tokio::test]
async fn revoke_ends_the_whole_session() {
    let t = TestSim::start(unlimited()).await;
    let body = t.login().await;
    let c = t.sim.config();
    let r = t
        .http
        .post(t.url("/restapi/oauth/revoke"))
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[("token", body["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        t.get(token, "/restapi/v1.0/subscription").await.status(),
        401
    );
    assert_eq!(
        refresh(&t, body["refresh_token"].as_str().unwrap())
            .await
            .status(),
        400
    );
    t.shutdown().await;
}
