//! Extensions over HTTP: the paged list and its rate group, runtime changes with their
//! extension-list events, voicemail per extension, and the permission knobs.

use ringrelay_sim::{
    CallScenario, ExtensionKind, ExtensionStatus, RateLimits, SimAccount, SimPermissions,
};
use serde_json::Value;

use crate::helpers::{Answer, Receiver, TestSim, test_config, unlimited, webhook};

const LIST: &str = "/restapi/v1.0/account/~/extension";

async fn company(extensions: u32, permissions: SimPermissions) -> TestSim {
    TestSim::start(unlimited().with_accounts(vec![
        SimAccount::company(0, extensions).with_permissions(permissions),
    ]))
    .await
}

#[tokio::test]
async fn the_list_follows_next_page_links_to_every_extension_in_the_medium_group() {
    let t = TestSim::start(test_config().with_accounts(vec![SimAccount::company(0, 230)])).await;
    let token = t.access_token().await;
    let mut url = t.url(&format!("{LIST}?perPage=100"));
    let mut ids = Vec::new();
    for _ in 0..10 {
        let r = t.http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-rate-limit-group"], "medium");
        let body: Value = r.json().await.unwrap();
        for rec in body["records"].as_array().unwrap() {
            ids.push(rec["id"].as_u64().unwrap().to_string());
        }
        match body["navigation"]["nextPage"]["uri"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    let want: Vec<String> = t.sim.accounts()[0]
        .extensions
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(ids, want);
    t.shutdown().await;
}

#[tokio::test]
async fn the_list_counts_in_the_medium_group_and_one_extension_in_light() {
    let limits = RateLimits {
        medium: 3,
        ..RateLimits::default()
    };
    let t = TestSim::start(test_config().with_rate_limits(limits)).await;
    let token = t.access_token().await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(t.get(&token, LIST).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    // One extension is Light: not limited by the Medium penalty.
    assert_eq!(t.get(&token, &format!("{LIST}/~")).await.status(), 200);
    t.shutdown().await;
}

#[tokio::test]
async fn runtime_changes_show_in_the_list_and_are_notified_to_the_extension_filter() {
    let t = company(20, SimPermissions::ADMIN).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let created = t.create(&token, &webhook(&rx.url, &[LIST])).await;
    assert_eq!(created.status(), 200);
    let account = t.sim.accounts()[0].id.clone();
    let added = t
        .sim
        .add_extension(&account, ExtensionKind::Department, "Sales Queue")
        .await
        .unwrap();
    let victim = t.sim.accounts()[0].extensions[1].id.clone();
    t.sim.disable_extension(&account, &victim).await.unwrap();
    let gone = t.sim.accounts()[0].extensions[2].id.clone();
    t.sim.remove_extension(&account, &gone).await.unwrap();
    let events: Vec<(String, String)> = rx
        .received()
        .iter()
        .map(|r| {
            assert_eq!(
                r.body["event"],
                format!("/restapi/v1.0/account/{account}/extension")
            );
            (
                r.body["body"]["extensionId"].as_str().unwrap().to_owned(),
                r.body["body"]["eventType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            (added.id.clone(), "Create".to_owned()),
            (victim.clone(), "Update".to_owned()),
            (gone.clone(), "Delete".to_owned()),
        ]
    );
    let list: Value = t
        .get(&token, &format!("{LIST}?perPage=1000"))
        .await
        .json()
        .await
        .unwrap();
    let find = |id: &str| {
        list["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
            .cloned()
    };
    assert_eq!(find(&added.id).unwrap()["type"], "Department");
    assert_eq!(find(&victim).unwrap()["status"], "Disabled");
    assert!(find(&gone).is_none());
    assert_eq!(t.get(&token, &format!("{LIST}/{gone}")).await.status(), 404);
    // The owner cannot be removed; the control API says so.
    let owner = t.sim.accounts()[0].owner().id.clone();
    assert!(t.sim.remove_extension(&account, &owner).await.is_err());
    let r = t
        .http
        .delete(t.url(&format!("/sim/accounts/{account}/extensions/{owner}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The control API adds and disables too.
    let r = t
        .http
        .post(t.url(&format!("/sim/accounts/{account}/extensions")))
        .json(&serde_json::json!({"kind": "User", "name": "Via Control"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let via: Value = r.json().await.unwrap();
    let r = t
        .http
        .patch(t.url(&format!(
            "/sim/accounts/{account}/extensions/{}",
            via["id"].as_str().unwrap()
        )))
        .json(&serde_json::json!({"status": "Disabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        t.sim
            .account(&account)
            .unwrap()
            .extensions
            .last()
            .unwrap()
            .status,
        ExtensionStatus::Disabled
    );
    assert_eq!(rx.received().len(), 5);
    rx.stop().await;
    t.shutdown().await;
}

#[tokio::test]
async fn voicemail_for_any_extension_lands_in_its_mailbox_and_its_filter_only() {
    let t = company(40, SimPermissions::ADMIN).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let a = t.sim.accounts()[0].clone();
    let dept = a
        .extensions
        .iter()
        .find(|e| e.kind == ExtensionKind::Department)
        .unwrap()
        .id
        .clone();
    let filter = format!("/restapi/v1.0/account/~/extension/{dept}/voicemail");
    assert_eq!(
        t.create(&token, &webhook(&rx.url, &[&filter]))
            .await
            .status(),
        200
    );
    let call = t
        .sim
        .run_call_to(&a.id, &dept, CallScenario::InboundVoicemail)
        .await
        .unwrap();
    t.sim.complete_calls().await;
    let vm = call.voicemail.unwrap();
    assert_eq!(vm.extension_id, dept);
    let got = rx.received();
    assert_eq!(got.len(), 1, "only the voicemail event of that extension");
    assert!(
        got[0].body["event"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/extension/{dept}/voicemail"))
    );
    let store: Value = t
        .get(
            &token,
            &format!("/restapi/v1.0/account/~/extension/{dept}/message-store"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(store["records"][0]["id"], vm.message_id);
    // A disabled extension, or an IVR menu, takes no generated voicemail.
    let ivr = a
        .extensions
        .iter()
        .find(|e| e.kind == ExtensionKind::IvrMenu)
        .unwrap();
    assert!(
        t.sim
            .run_call_to(&a.id, &ivr.id, CallScenario::InboundVoicemail)
            .await
            .is_err()
    );
    // Random calls on a large account spread over many extensions.
    let mut boxes = std::collections::HashSet::new();
    for _ in 0..30 {
        let call = t
            .sim
            .run_call(&a.id, CallScenario::InboundVoicemail)
            .await
            .unwrap();
        boxes.insert(call.voicemail.unwrap().extension_id);
    }
    assert!(boxes.len() >= 10, "{} mailboxes", boxes.len());
    rx.stop().await;
    t.shutdown().await;
}

#[tokio::test]
async fn without_company_permissions_other_extensions_are_refused() {
    let t = company(10, SimPermissions::SELF_ONLY).await;
    let rx = Receiver::start(Answer::Good).await;
    let token = t.access_token().await;
    let other = t.sim.accounts()[0].extensions[1].id.clone();
    let r = t.get(&token, "/restapi/v1.0/account/~/call-log").await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["errorCode"], "CMN-408");
    assert_eq!(body["errors"][0]["permissionName"], "FullCompanyCallLog");
    let r = t
        .get(
            &token,
            &format!("/restapi/v1.0/account/~/extension/{other}/message-store"),
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        t.get(&token, "/restapi/v1.0/account/~/extension/~/call-log")
            .await
            .status(),
        200
    );
    let filter = format!("/restapi/v1.0/account/~/extension/{other}/voicemail");
    let r = t.create(&token, &webhook(&rx.url, &[&filter])).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["errorCode"], "SUB-405");
    let profile: Value = t
        .get(&token, "/restapi/v1.0/account/~/extension/~/authz-profile")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !profile["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["permission"]["id"] == "FullCompanyCallLog")
    );
    // Granting the permission at runtime takes effect at once.
    let account = t.sim.accounts()[0].id.clone();
    t.sim
        .set_permissions(&account, SimPermissions::ADMIN)
        .unwrap();
    assert_eq!(
        t.get(&token, "/restapi/v1.0/account/~/call-log")
            .await
            .status(),
        200
    );
    assert_eq!(
        t.create(&token, &webhook(&rx.url, &[&filter]))
            .await
            .status(),
        200
    );
    rx.stop().await;
    t.shutdown().await;
}
