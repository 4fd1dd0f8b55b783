//! The Subscriptions API: create with handshake, list, read, update, renew, delete,
//! limits, filters and expiry.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Answer, Receiver, TELEPHONY, TestSim, unlimited, webhook};

#[tokio::test]
async fn create_performs_the_handshake_and_returns_subscription_info() {
    let t = TestSim::start(unlimited()).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let r = t.create(&token, &webhook(&rx.url, &[TELEPHONY])).await;
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.unwrap();
    let account = &t.sim.accounts()[0];
    assert_eq!(
        s["eventFilters"][0],
        format!("/restapi/v1.0/account/{}/telephony/sessions", account.id)
    );
    assert_eq!(s["status"], "Active");
    assert_eq!(s["expiresIn"], 604_800);
    assert_eq!(s["deliveryMode"]["address"], rx.url.as_str());
    assert!(s["deliveryMode"].get("verificationToken").is_none());
    assert!(s.get("blacklistedData").is_none());
    // The handshake is not a delivery: the receiver logged nothing.
    assert!(rx.received().is_empty());
    t.shutdown().await;
    rx.stop().await;
}

async fn create_error(answer: Answer) -> (u16, Value) {
    let t = TestSim::start(unlimited()).await;
    let rx = Receiver::start(answer).await;
    let token = t.access_token().await;
    let r = t.create(&token, &webhook(&rx.url, &[TELEPHONY])).await;
    let status = r.status().as_u16();
    let body = r.json().await.unwrap();
    assert!(t.sim.subscriptions().is_empty());
    t.shutdown().await;
    rx.stop().await;
    (status, body)
}

#[tokio::test]
async fn the_handshake_fails_for_a_wrong_slow_oversized_or_non_json_answer() {
    for (answer, code) in [
        (Answer::WrongToken, "SUB-520"),
        (Answer::Slow(1000), "SUB-520"),
        (Answer::Status(500), "SUB-520"),
        (Answer::Oversized, "SUB-525"),
        (Answer::NotJson, "SUB-525"),
    ] {
        let (status, body) = create_error(answer).await;
        assert_eq!(status, 400, "{answer:?}");
        assert_eq!(body["errors"][0]["errorCode"], code, "{answer:?}");
    }
}

#[tokio::test]
async fn the_handshake_fails_for_an_unreachable_address() {
    let t = TestSim::start(unlimited()).await;
    let token = t.access_token().await;
    // Bind then drop a listener so the port is (very likely) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = t
        .create(
            &token,
            &webhook(&format!("http://127.0.0.1:{port}/x"), &[TELEPHONY]),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["errorCode"],
        "SUB-520"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn bad_filters_and_bad_bodies_are_rejected_and_call_log_is_disabled() {
    let t = TestSim::start(unlimited()).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let r = t
        .create(
            &token,
            &webhook(&rx.url, &["/restapi/v1.0/account/~/nonsense"]),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["errorCode"],
        "SUB-508"
    );

    let call_log = "/restapi/v1.0/account/~/extension/~/call-log";
    let r = t
        .create(&token, &webhook(&rx.url, &[TELEPHONY, call_log]))
        .await;
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["eventFilters"].as_array().unwrap().len(), 1);
    assert!(
        s["disabledFilters"][0]["filter"]
            .as_str()
            .unwrap()
            .ends_with("/call-log")
    );

    let mut zero = webhook(&rx.url, &[TELEPHONY]);
    zero["expiresIn"] = json!(0);
    let r = t.create(&token, &zero).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["errorCode"],
        "CMN-101"
    );

    let r = t
        .create(&token, &json!({"eventFilters": [TELEPHONY]}))
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["errorCode"],
        "CMN-100"
    );
    let raw = t
        .http
        .post(t.url("/restapi/v1.0/subscription"))
        .bearer_auth(&token);
    let r = raw.body("{not json").send().await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["errorCode"],
        "CMN-103"
    );
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn expires_in_above_the_maximum_is_capped() {
    let t = TestSim::start(unlimited()).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let mut body = webhook(&rx.url, &[TELEPHONY]);
    body["expiresIn"] = json!(630_720_000);
    let s: Value = t.create(&token, &body).await.json().await.unwrap();
    assert_eq!(s["expiresIn"], 315_360_000);
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn list_read_update_renew_and_delete_work_on_the_callers_subscriptions() {
    let t = TestSim::start(unlimited()).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let mut body = webhook(&rx.url, &[TELEPHONY]);
    body["expiresIn"] = json!(3600);
    let s: Value = t.create(&token, &body).await.json().await.unwrap();
    let id = s["id"].as_str().unwrap();
    let path = format!("/restapi/v1.0/subscription/{id}");

    let list: Value = t
        .get(&token, "/restapi/v1.0/subscription")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["records"].as_array().unwrap().len(), 1);
    let one: Value = t.get(&token, &path).await.json().await.unwrap();
    assert_eq!(one["id"], id);

    t.sim.advance(Duration::from_secs(1000)).await;
    let renew = t
        .http
        .post(t.url(&format!("{path}/renew")))
        .bearer_auth(&token);
    let renewed: Value = renew.send().await.unwrap().json().await.unwrap();
    assert_eq!(
        renewed["expiresIn"], 3600,
        "renew keeps the subscription's own lifetime"
    );

    // PUT without deliveryMode, with new filters and lifetime.
    let voicemail = "/restapi/v1.0/account/~/extension/~/voicemail";
    let put = t.http.put(t.url(&path)).bearer_auth(&token);
    let r = put
        .json(&json!({"eventFilters": [voicemail], "expiresIn": 7200}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert!(
        updated["eventFilters"][0]
            .as_str()
            .unwrap()
            .ends_with("/voicemail")
    );
    assert_eq!(updated["expiresIn"], 7200);
    // An empty PUT renews with the default lifetime.
    let empty: Value = t
        .http
        .put(t.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty["expiresIn"], 604_800);

    let del = t
        .http
        .delete(t.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    let gone = t.get(&token, &path).await;
    assert_eq!(gone.status(), 404);
    assert_eq!(
        gone.json::<Value>().await.unwrap()["errors"][0]["errorCode"],
        "CMN-102"
    );
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn the_thirty_first_subscription_gets_sub_505() {
    let t = TestSim::start(unlimited()).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    for i in 0..30 {
        let r = t.create(&token, &webhook(&rx.url, &[TELEPHONY])).await;
        assert_eq!(r.status(), 200, "subscription {i}");
    }
    let r = t.create(&token, &webhook(&rx.url, &[TELEPHONY])).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["errorCode"],
        "SUB-505"
    );
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn an_expired_subscription_disappears() {
    let t = TestSim::start(unlimited()).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let mut body = webhook(&rx.url, &[TELEPHONY]);
    body["expiresIn"] = json!(60);
    let s: Value = t.create(&token, &body).await.json().await.unwrap();
    let path = format!("/restapi/v1.0/subscription/{}", s["id"].as_str().unwrap());
    assert_eq!(t.get(&token, &path).await.status(), 200);
    t.sim.advance(Duration::from_secs(61)).await;
    let token = t.access_token().await;
    let r = t.get(&token, &path).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["errorCode"],
        "CMN-102"
    );
    assert!(t.sim.subscriptions().is_empty());
    t.shutdown().await;
    rx.stop().await;
}

#[tokio::test]
async fn a_put_replaces_a_long_filter_list_and_the_filter_limit_quirk_refuses_more() {
    let mut config = unlimited();
    config.accounts = vec![ringrelay_sim::SimAccount::generated(0, 12)];
    config.max_filters_per_subscription = Some(8);
    let t = TestSim::start(config).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let account = t.sim.accounts()[0].clone();
    let reminder = "/restapi/v1.0/subscription/~?threshold=3600&interval=900";
    let voicemail = |ext: &str| format!("/restapi/v1.0/account/~/extension/{ext}/voicemail");
    let ids: Vec<String> = account.extensions.iter().map(|e| e.id.clone()).collect();
    let mut filters: Vec<String> = ids[..7].iter().map(|e| voicemail(e)).collect();
    filters.push(reminder.to_owned());
    let refs: Vec<&str> = filters.iter().map(String::as_str).collect();
    let s: Value = t
        .create(&token, &webhook(&rx.url, &refs))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/restapi/v1.0/subscription/{}", s["id"].as_str().unwrap());
    let put = |body: Value| {
        let req = t.http.put(t.url(&path)).bearer_auth(&token).json(&body);
        async move { req.send().await.unwrap() }
    };

    // The full list with one extension swapped: expanded, reminder verbatim, renewed.
    t.sim.advance(Duration::from_secs(1000)).await;
    let mut swapped: Vec<String> = ids[1..8].iter().map(|e| voicemail(e)).collect();
    swapped.push(reminder.to_owned());
    let r = put(json!({"eventFilters": swapped, "expiresIn": 86_400})).await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    let listed: Vec<&str> = updated["eventFilters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 8);
    for (f, ext) in listed.iter().zip(&ids[1..8]) {
        assert_eq!(
            *f,
            format!(
                "/restapi/v1.0/account/{}/extension/{ext}/voicemail",
                account.id
            )
        );
    }
    assert_eq!(listed[7], reminder);
    assert_eq!(updated["expiresIn"], 86_400);

    // An unknown extension: SUB-508, nothing changes.
    let mut bad = swapped.clone();
    bad[0] = voicemail("999");
    let r = put(json!({"eventFilters": bad})).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["errors"][0]["errorCode"], "SUB-508");

    // Nine filters: over the quirk's limit, on a PUT and on a create.
    let mut nine = swapped.clone();
    nine.insert(0, voicemail(&ids[0]));
    let r = put(json!({"eventFilters": nine})).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["errors"][0]["errorCode"], "CMN-101");
    assert_eq!(e["errors"][0]["parameterName"], "eventFilters");
    let refs: Vec<&str> = nine.iter().map(String::as_str).collect();
    let r = t.create(&token, &webhook(&rx.url, &refs)).await;
    assert_eq!(r.status(), 400);
    let one: Value = t.get(&token, &path).await.json().await.unwrap();
    assert_eq!(
        one["eventFilters"].as_array().unwrap().len(),
        8,
        "unchanged"
    );
    assert_eq!(
        t.get(&token, "/restapi/v1.0/subscription")
            .await
            .json::<Value>()
            .await
            .unwrap()["records"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    t.shutdown().await;
    rx.stop().await;
}
