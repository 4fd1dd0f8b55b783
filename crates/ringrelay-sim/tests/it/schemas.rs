//! The simulator's response bodies validate against the official spec's schemas
//! (extracted into `fixtures/openapi/` by `scripts/extract-schemas.py`).

use std::time::Duration;

use ringrelay_sim::{CallScenario, JWT_GRANT};
use serde_json::{Value, json};

use crate::helpers::{Answer, Receiver, TELEPHONY, TestSim, unlimited, webhook};

fn schema(name: &str) -> Value {
    let path = format!(
        "{}/../../fixtures/openapi/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn assert_valid(name: &str, instance: &Value) {
    let validator = jsonschema::validator_for(&schema(name)).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}\n{instance:#}");
}

#[test]
fn the_schemas_reject_a_wrong_shape() {
    let validator = jsonschema::validator_for(&schema("SubscriptionInfo")).unwrap();
    assert!(!validator.is_valid(&json!({"id": 1})));
}

#[tokio::test]
async fn every_simulated_response_validates_against_the_spec() {
    let t = TestSim::start(unlimited()).await;
    let rx = Receiver::start(Answer::Good).await;
    let token_body = t.login().await;
    assert_valid("TokenInfo", &token_body);
    let token = token_body["access_token"].as_str().unwrap();

    let c = t.sim.config();
    let r = t
        .http
        .post(t.url("/restapi/oauth/token"))
        .basic_auth(&c.client_id, Some("x"));
    let oauth_error: Value = r
        .form(&[("grant_type", JWT_GRANT), ("assertion", "x")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_valid("OauthInvalidRequest", &oauth_error);

    let reminder = "/restapi/v1.0/subscription/~?threshold=600&interval=300";
    let call_log = "/restapi/v1.0/account/~/extension/~/call-log";
    let created: Value = t
        .create(token, &webhook(&rx.url, &[TELEPHONY, reminder, call_log]))
        .await
        .json()
        .await
        .unwrap();
    assert_valid("SubscriptionInfo", &created);
    let id = created["id"].as_str().unwrap();
    let path = format!("/restapi/v1.0/subscription/{id}");
    assert_valid(
        "SubscriptionInfo",
        &t.get(token, &path).await.json().await.unwrap(),
    );
    let renew = t
        .http
        .post(t.url(&format!("{path}/renew")))
        .bearer_auth(token);
    assert_valid(
        "SubscriptionInfo",
        &renew.send().await.unwrap().json().await.unwrap(),
    );
    let put = t
        .http
        .put(t.url(&path))
        .bearer_auth(token)
        .json(&json!({"eventFilters": [TELEPHONY]}));
    assert_valid(
        "SubscriptionInfo",
        &put.send().await.unwrap().json().await.unwrap(),
    );
    t.sim.blacklist(id);
    assert_valid(
        "SubscriptionInfo",
        &t.get(token, &path).await.json().await.unwrap(),
    );
    let list: Value = t
        .get(token, "/restapi/v1.0/subscription")
        .await
        .json()
        .await
        .unwrap();
    assert_valid("SubscriptionListResource", &list);

    let not_found: Value = t
        .get(token, "/restapi/v1.0/subscription/nope")
        .await
        .json()
        .await
        .unwrap();
    assert_valid("ApiErrorResponseModel", &not_found);

    let account = t.sim.accounts()[0].id.clone();
    t.sim
        .run_call(&account, CallScenario::InboundVoicemail)
        .await
        .unwrap();
    t.sim
        .run_call(&account, CallScenario::Transferred)
        .await
        .unwrap();
    t.sim.complete_calls().await;
    t.sim.advance(Duration::from_secs(60)).await;
    let from = "dateFrom=2000-01-01T00:00:00Z";
    for view in ["Simple", "Detailed"] {
        let log: Value = t
            .get(
                token,
                &format!("/restapi/v1.0/account/~/call-log?view={view}&{from}"),
            )
            .await
            .json()
            .await
            .unwrap();
        assert!(!log["records"].as_array().unwrap().is_empty());
        assert_valid("CallLogResponse", &log);
    }
    let sync: Value = t
        .get(
            token,
            "/restapi/v1.0/account/~/extension/~/call-log-sync?syncType=FSync&recordCount=250",
        )
        .await
        .json()
        .await
        .unwrap();
    assert_valid("CallLogSyncResponse", &sync);
    let owner = t.sim.accounts()[0].owner().id.clone();
    let messages: Value = t
        .get(token, &format!("/restapi/v1.0/account/~/extension/{owner}/message-store?messageType=VoiceMail&{from}"))
        .await
        .json()
        .await
        .unwrap();
    assert_valid("GetMessageList", &messages);
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn extension_answers_and_the_extension_list_event_validate_against_the_spec() {
    let t =
        TestSim::start(unlimited().with_accounts(vec![ringrelay_sim::SimAccount::company(0, 30)]))
            .await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let get = |path: &'static str| {
        let t = &t;
        let token = token.clone();
        async move {
            let r = t.get(&token, path).await;
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().await.unwrap()
        }
    };
    let list = get("/restapi/v1.0/account/~/extension?perPage=10&page=2").await;
    assert_valid("GetExtensionListResponse", &list);
    assert_valid(
        "GetExtensionInfoResponse",
        &get("/restapi/v1.0/account/~/extension/~").await,
    );
    assert_valid(
        "AuthProfileResource",
        &get("/restapi/v1.0/account/~/extension/~/authz-profile").await,
    );
    assert_valid(
        "AuthProfileCheckResource",
        &get("/restapi/v1.0/account/~/extension/~/authz-profile/check?permissionId=ReadMessages")
            .await,
    );
    let filter = "/restapi/v1.0/account/~/extension";
    assert_eq!(
        t.create(&token, &webhook(&rx.url, &[filter]))
            .await
            .status(),
        200
    );
    let account = t.sim.accounts()[0].id.clone();
    t.sim
        .add_extension(&account, ringrelay_sim::ExtensionKind::User, "Schema Check")
        .await
        .unwrap();
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_valid("ExtensionListEvent", &got[0].body);
    rx.stop().await;
    t.shutdown().await;
}
