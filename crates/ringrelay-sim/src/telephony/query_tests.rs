//! Unit tests of the call-log, call-log-sync, message-store and message-sync handlers,
//! driven through [`super::handle_get`] with explicit simulated times.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::generator::{CallScenario, GeneratedCall, generate_call};
use super::{TelephonyState, handle_get};
use crate::clock::SimClock;
use crate::directory::SimAccount;
use crate::error::ApiError;

const BASE: &str = "http://127.0.0.1:9";

struct Fixture {
    state: TelephonyState,
    account: SimAccount,
    clock: SimClock,
    calls: Vec<GeneratedCall>,
}

impl Fixture {
    fn new() -> Self {
        Self {
            state: TelephonyState::new(BASE, 11),
            account: SimAccount::generated(0, 3),
            clock: SimClock::new(),
            calls: Vec::new(),
        }
    }

    /// Generates a call starting now, then moves the clock past the call and its lag.
    fn call(&mut self, scenario: CallScenario) -> &GeneratedCall {
        let call = generate_call(&mut self.state, &self.account, scenario, self.clock.now())
            .expect("the account has users");
        let wait = call.call_log_visible_at - self.clock.now() + Duration::seconds(1);
        self.clock.advance(wait.to_std().expect("positive"));
        self.calls.push(call);
        self.calls.last().expect("just pushed")
    }

    fn get(&self, path: &str, query: &str) -> Result<Value, ApiError> {
        self.get_at(self.clock.now(), path, query)
    }

    fn get_at(&self, now: DateTime<Utc>, path: &str, query: &str) -> Result<Value, ApiError> {
        handle_get(&self.state, now, &self.account, path, Some(query)).expect("a telephony path")
    }

    fn follow(&self, uri: &str) -> Result<Value, ApiError> {
        let rest = uri.strip_prefix(BASE).expect("uri on the sim");
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        self.get(path, query)
    }
}

fn ids(v: &Value) -> Vec<String> {
    v["records"]
        .as_array()
        .map(|r| r.iter().map(|x| x["id"].to_string()).collect())
        .unwrap_or_default()
}

const ACCOUNT_LOG: &str = "/restapi/v1.0/account/~/call-log";
const MY_LOG: &str = "/restapi/v1.0/account/~/extension/~/call-log";
const ACCOUNT_SYNC: &str = "/restapi/v1.0/account/~/call-log-sync";

#[test]
fn a_record_appears_only_after_the_call_log_lag() {
    let mut f = Fixture::new();
    f.call(CallScenario::InboundAnswered);
    let call = &f.calls[0];
    let before = f
        .get_at(
            call.call_log_visible_at - Duration::milliseconds(1),
            ACCOUNT_LOG,
            "",
        )
        .unwrap();
    assert_eq!(
        ids(&before).len(),
        0,
        "not yet in the call log right after the call"
    );
    let after = f.get_at(call.call_log_visible_at, ACCOUNT_LOG, "").unwrap();
    assert_eq!(ids(&after).len(), 1);
    assert_eq!(
        after["records"][0]["telephonySessionId"],
        call.telephony_session_id.as_str()
    );
}

#[test]
fn paging_follows_next_page_uris_until_absent() {
    let mut f = Fixture::new();
    for _ in 0..5 {
        f.call(CallScenario::OutboundAnswered);
    }
    let mut page = f.get(ACCOUNT_LOG, "perPage=2").unwrap();
    assert_eq!(page["paging"]["page"], 1);
    assert_eq!(page["paging"]["perPage"], 2);
    assert!(page["navigation"].get("previousPage").is_none());
    let mut seen = ids(&page);
    let mut pages = 1;
    while let Some(next) = page["navigation"]["nextPage"]["uri"].as_str() {
        page = f.follow(next).unwrap();
        assert!(page["navigation"].get("previousPage").is_some());
        seen.extend(ids(&page));
        pages += 1;
        assert!(pages <= 3, "paging must end");
    }
    assert_eq!(pages, 3);
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!((seen.len(), distinct.len()), (5, 5));
    // Newest first.
    let all = f.get(ACCOUNT_LOG, "perPage=max").unwrap();
    let starts: Vec<&str> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["startTime"].as_str())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]));
}

#[test]
fn the_date_window_and_filters_select_records() {
    let mut f = Fixture::new();
    let t0 = f.clock.now();
    f.call(CallScenario::InboundAnswered);
    f.clock.advance(std::time::Duration::from_secs(3600));
    let t1 = f.clock.now();
    f.call(CallScenario::OutboundAnswered);
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let window = format!(
        "dateFrom={}&dateTo={}",
        iso(t0 - Duration::seconds(1)),
        iso(t1 - Duration::seconds(1))
    );
    let v = f.get(ACCOUNT_LOG, &window).unwrap();
    assert_eq!(ids(&v).len(), 1);
    assert_eq!(v["records"][0]["direction"], "Inbound");
    let v = f.get(ACCOUNT_LOG, "direction=Outbound").unwrap();
    assert_eq!(ids(&v).len(), 1);
    assert_eq!(v["records"][0]["direction"], "Outbound");
    // The default window is the last 24 hours.
    f.clock.advance(std::time::Duration::from_secs(25 * 3600));
    assert_eq!(ids(&f.get(ACCOUNT_LOG, "").unwrap()).len(), 0);
    let err = f.get(ACCOUNT_LOG, "dateFrom=yesterday").unwrap_err();
    assert_eq!(
        (err.status, err.code.as_str(), err.parameter_name.as_deref()),
        (400, "CMN-101", Some("dateFrom"))
    );
    let err = f.get(ACCOUNT_LOG, "view=Full").unwrap_err();
    assert_eq!(err.parameter_name.as_deref(), Some("view"));
}

#[test]
fn detailed_view_adds_legs_and_the_extension_log_is_scoped() {
    let mut f = Fixture::new();
    f.call(CallScenario::Transferred);
    let simple = f.get(ACCOUNT_LOG, "").unwrap();
    assert_eq!(ids(&simple).len(), 2, "one record per extension involved");
    assert!(simple["records"][0].get("legs").is_none());
    assert!(
        simple["records"][0]["uri"]
            .as_str()
            .unwrap()
            .ends_with("?view=Simple")
    );
    let detailed = f.get(ACCOUNT_LOG, "view=Detailed").unwrap();
    assert_eq!(detailed["records"][0]["legs"][0]["master"], true);
    let exts: Vec<String> = f.calls[0]
        .call_log
        .iter()
        .map(|r| r["to"]["extensionId"].to_string())
        .collect();
    let owner = format!("\"{}\"", f.account.owner().id);
    let mine = f.get(MY_LOG, "").unwrap();
    assert_eq!(
        ids(&mine).len(),
        exts.iter().filter(|e| **e == owner).count()
    );
    let id = simple["records"][0]["id"].as_str().unwrap().to_owned();
    let one = f
        .get(&format!("{ACCOUNT_LOG}/{id}"), "view=Detailed")
        .unwrap();
    assert_eq!(one["id"], id.as_str());
    assert!(one["legs"].is_array());
    let err = f.get(&format!("{ACCOUNT_LOG}/nope"), "").unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (404, "CMN-102"));
    let err = f
        .get("/restapi/v1.0/account/~/extension/999/call-log", "")
        .unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (404, "CMN-102"));
    let err = f.get("/restapi/v1.0/account/1/call-log", "").unwrap_err();
    assert_eq!(err.parameter_name.as_deref(), Some("accountId"));
}

#[test]
fn fsync_then_isync_returns_only_new_records() {
    let mut f = Fixture::new();
    f.call(CallScenario::InboundMissed);
    f.call(CallScenario::InboundAnswered);
    let err = f.get(ACCOUNT_SYNC, "syncType=FSync").unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.parameter_name.as_deref()),
        ("CMN-100", Some("recordCount"))
    );
    let err = f
        .get(ACCOUNT_SYNC, "syncType=FSync&recordCount=251")
        .unwrap_err();
    assert_eq!(err.code, "CMN-101");
    let full = f
        .get(ACCOUNT_SYNC, "syncType=FSync&recordCount=250")
        .unwrap();
    assert_eq!(ids(&full).len(), 2);
    assert_eq!(full["syncInfo"]["syncType"], "FSync");
    assert!(full.get("paging").is_none(), "sync has no paging");
    let missed = f
        .get(
            ACCOUNT_SYNC,
            "syncType=FSync&recordCount=10&statusGroup=Missed",
        )
        .unwrap();
    assert_eq!(ids(&missed).len(), 1);
    let token = full["syncInfo"]["syncToken"].as_str().unwrap().to_owned();
    let q = format!("syncType=ISync&syncToken={token}");
    assert_eq!(
        ids(&f.get(ACCOUNT_SYNC, &q).unwrap()).len(),
        0,
        "nothing new yet"
    );
    f.call(CallScenario::OutboundAnswered);
    let inc = f.get(ACCOUNT_SYNC, &q).unwrap();
    assert_eq!(ids(&inc).len(), 1);
    assert_eq!(inc["records"][0]["direction"], "Outbound");
    assert_eq!(inc["syncInfo"]["syncType"], "ISync");
    assert_ne!(inc["syncInfo"]["syncToken"], token.as_str());
    // recordCount on ISync extends the frame into the past, new records first.
    let wider = f.get(ACCOUNT_SYNC, &format!("{q}&recordCount=2")).unwrap();
    assert_eq!(ids(&wider).len(), 2);
    assert_eq!(wider["records"][0]["direction"], "Outbound");
}

#[test]
fn isync_errors_tell_the_client_to_fsync_again() {
    let mut f = Fixture::new();
    let full = f.get(ACCOUNT_SYNC, "recordCount=5").unwrap();
    let token = full["syncInfo"]["syncToken"].as_str().unwrap().to_owned();
    let q = format!("syncType=ISync&syncToken={token}");
    for _ in 0..251 {
        let start = f.clock.now();
        generate_call(&mut f.state, &f.account, CallScenario::InboundMissed, start).unwrap();
        f.clock.advance(std::time::Duration::from_secs(1));
    }
    f.clock.advance(std::time::Duration::from_secs(120));
    let err = f.get(ACCOUNT_SYNC, &q).unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (400, "CLG-104"));
    assert!(
        err.message
            .contains("max sync record number limit is exceeded")
    );

    f.state.reset_call_log(&f.account.id);
    let err = f.get(ACCOUNT_SYNC, &q).unwrap_err();
    assert_eq!(err.code, "CLG-104");
    assert!(
        err.message
            .contains("Sync token expired, call log was reset")
    );

    let err = f
        .get(ACCOUNT_SYNC, "syncType=ISync&syncToken=garbage")
        .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.parameter_name.as_deref()),
        ("CMN-101", Some("syncToken"))
    );
    let err = f.get(ACCOUNT_SYNC, "syncType=ISync").unwrap_err();
    assert_eq!(err.code, "CMN-100");
    // A token of the account's log does not work on an extension's log.
    let fresh = f.get(ACCOUNT_SYNC, "recordCount=1").unwrap();
    let token = fresh["syncInfo"]["syncToken"].as_str().unwrap();
    let err = f
        .get(
            "/restapi/v1.0/account/~/extension/~/call-log-sync",
            &format!("syncType=ISync&syncToken={token}"),
        )
        .unwrap_err();
    assert_eq!(err.code, "CMN-101");
    let old = (f.clock.now() - Duration::days(31)).to_rfc3339();
    let err = f
        .get(
            ACCOUNT_SYNC,
            &format!("recordCount=5&dateFrom={}", urlenc(&old)),
        )
        .unwrap_err();
    assert_eq!(err.parameter_name.as_deref(), Some("dateFrom"));
}

fn urlenc(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)])
        .unwrap()
        .trim_start_matches("x=")
        .to_owned()
}

#[test]
fn the_message_store_lists_voicemail_and_message_sync_tracks_changes() {
    let mut f = Fixture::new();
    let vm_ext = f
        .call(CallScenario::InboundVoicemail)
        .voicemail
        .clone()
        .expect("voicemail");
    let store = format!(
        "/restapi/v1.0/account/~/extension/{}/message-store",
        vm_ext.extension_id
    );
    let sync = format!(
        "/restapi/v1.0/account/~/extension/{}/message-sync",
        vm_ext.extension_id
    );
    let list = f.get(&store, "messageType=VoiceMail&perPage=10").unwrap();
    assert_eq!(ids(&list), vec![vm_ext.message_id.to_string()]);
    assert_eq!(list["records"][0]["type"], "VoiceMail");
    assert!(list["records"][0]["id"].is_u64());
    assert_eq!(ids(&f.get(&store, "messageType=SMS").unwrap()).len(), 0);
    let err = f.get(&store, "messageType=Letter").unwrap_err();
    assert_eq!(err.parameter_name.as_deref(), Some("messageType"));
    let one = f
        .get(&format!("{store}/{}", vm_ext.message_id), "")
        .unwrap();
    assert_eq!(one["id"], vm_ext.message_id);
    assert!(f.get(&format!("{store}/1"), "").is_err());
    let before = f
        .get_at(vm_ext.at - Duration::milliseconds(1), &store, "")
        .unwrap();
    assert_eq!(ids(&before).len(), 0, "no message before it was left");

    let full = f
        .get(&sync, "syncType=FSync&messageType=VoiceMail")
        .unwrap();
    assert_eq!(ids(&full).len(), 1);
    let token = full["syncInfo"]["syncToken"].as_str().unwrap().to_owned();
    let q = format!("syncType=ISync&syncToken={token}");
    f.clock.advance(std::time::Duration::from_secs(60));
    assert_eq!(ids(&f.get(&sync, &q).unwrap()).len(), 0, "nothing changed");
    f.state
        .set_message_read(&f.account.id, vm_ext.message_id, true, f.clock.now())
        .unwrap();
    let inc = f.get(&sync, &q).unwrap();
    assert_eq!(ids(&inc).len(), 1);
    assert_eq!(inc["records"][0]["readStatus"], "Read");
    f.state.reset_message_store(&f.account.id);
    let err = f.get(&sync, &q).unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (400, "MSG-333"));
    let err = f
        .get("/restapi/v1.0/account/~/message-store", "")
        .unwrap_err();
    assert_eq!(err.code, "CMN-102");
}

#[test]
fn other_paths_are_not_telephony() {
    let f = Fixture::new();
    for path in [
        "/restapi/v1.0/subscription",
        "/restapi/v1.0/account/~/extension/~/telephony/sessions",
        "/restapi/v1.0/account/~/call-log/a/b",
        "/restapi/v1.0/account/~/call-log-sync/x",
        "/restapi/v1.0/account/~",
    ] {
        assert!(
            handle_get(&f.state, f.clock.now(), &f.account, path, None).is_none(),
            "{path}"
        );
    }
}
