//! Every telephony response body and notification body the simulator produces validates
//! against the official spec's schema (extracted into
//! `fixtures/ringcentral/schemas/telephony.json` by `extract_telephony.py`).

use chrono::Duration;
use serde_json::{Value, json};

use super::generator::{CallScenario, generate_call};
use super::{TelephonyState, handle_get};
use crate::clock::SimClock;
use crate::directory::SimAccount;

const BUNDLE: &str = include_str!("../../../../fixtures/ringcentral/schemas/telephony.json");

fn check(schema: &str, instance: &Value) {
    let mut bundle: Value = serde_json::from_str(BUNDLE).expect("the bundle is JSON");
    bundle["$ref"] = json!(format!("#/$defs/{schema}"));
    let validator = jsonschema::validator_for(&bundle).expect("the bundle compiles");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{schema}: {errors:#?}\n{instance:#}");
}

/// The real voicemail event differs from the spec in exactly two documented ways
/// (`API.md` §4.4, `voicemail-event.json`): ids are strings, not int64, and `type` is
/// `VoiceMail`, not `Voicemail`. The simulator sends the real spelling; this undoes only
/// those two so that everything else is checked against the spec.
fn spec_spelling(body: &Value) -> Value {
    let mut b = body.clone();
    assert_eq!(b["type"], "VoiceMail", "the real spelling");
    b["type"] = json!("Voicemail");
    let as_int = |v: &Value| {
        v.as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .map(Value::from)
    };
    b["id"] = as_int(&b["id"]).expect("a numeric string id");
    for a in b["attachments"].as_array_mut().into_iter().flatten() {
        a["id"] = as_int(&a["id"]).expect("a numeric string id");
    }
    b
}

#[test]
fn every_telephony_body_validates_against_the_spec() {
    let account = SimAccount::generated(0, 3);
    let mut state = TelephonyState::new("http://127.0.0.1:9", 3);
    let clock = SimClock::new();
    let mut vm_ext = None;
    for scenario in CallScenario::ALL {
        let call = generate_call(&mut state, &account, scenario, clock.now()).expect("users exist");
        for ev in &call.events {
            check("TelephonySessionsEventBody", &ev.body);
        }
        for rec in &call.call_log {
            check("CallLogRecord", rec);
        }
        if let Some(vm) = &call.voicemail {
            check(
                "VoicemailMessageEventBody",
                &spec_spelling(&vm.voicemail_event.body),
            );
            check("MessageEventBody", &vm.message_store_event.body);
            check("GetMessageInfoResponse", &vm.message);
            vm_ext = Some((vm.extension_id.clone(), vm.message_id));
        }
        let wait = call.call_log_visible_at - clock.now() + Duration::seconds(1);
        clock.advance(wait.to_std().expect("positive"));
    }
    let get = |path: &str, query: &str| {
        handle_get(&state, clock.now(), &account, path, Some(query))
            .expect("a telephony path")
            .expect("a 200 answer")
    };
    for view in ["Simple", "Detailed"] {
        let list = get(
            "/restapi/v1.0/account/~/call-log",
            &format!("view={view}&perPage=2"),
        );
        assert_eq!(list["records"].as_array().map(Vec::len), Some(2));
        check("CallLogResponse", &list);
        let id = list["records"][0]["id"].as_str().expect("an id").to_owned();
        check(
            "CallLogRecord",
            &get(
                &format!("/restapi/v1.0/account/~/call-log/{id}"),
                &format!("view={view}"),
            ),
        );
    }
    let sync = get(
        "/restapi/v1.0/account/~/call-log-sync",
        "syncType=FSync&recordCount=250",
    );
    check("CallLogSyncResponse", &sync);
    let token = sync["syncInfo"]["syncToken"]
        .as_str()
        .expect("a token")
        .to_owned();
    let isync = get(
        "/restapi/v1.0/account/~/call-log-sync",
        &format!("syncType=ISync&syncToken={token}"),
    );
    check("CallLogSyncResponse", &isync);

    let (ext, message_id) = vm_ext.expect("a voicemail scenario ran");
    let store = format!("/restapi/v1.0/account/~/extension/{ext}/message-store");
    let list = get(&store, "messageType=VoiceMail");
    assert_eq!(list["records"].as_array().map(Vec::len), Some(1));
    check("GetMessageList", &list);
    check(
        "GetMessageInfoResponse",
        &get(&format!("{store}/{message_id}"), ""),
    );
    let msync = get(
        &format!("/restapi/v1.0/account/~/extension/{ext}/message-sync"),
        "syncType=FSync",
    );
    check("GetMessageSyncResponse", &msync);
}
