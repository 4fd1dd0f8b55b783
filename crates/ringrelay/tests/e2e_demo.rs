//! The demo scenario as a test (issue 10): the simulator with two accounts, the demo CRM
//! and ringrelay run the scripted day (calls of every scenario with duplicated and
//! reordered webhooks, a renewal, a blacklisting the keeper repairs, a restart with calls
//! while ringrelay is down, an operator replay), and the CRM's counts are checked exactly.
//! SQLite always; PostgreSQL too (a fresh schema) when `RINGRELAY_TEST_POSTGRES_URL` is set.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ringrelay::demo::{ACCOUNTS, Demo, DemoOptions, RESENT};
use ringrelay_sim::CallScenario;

/// Plays the demo on `store_url` (`None` = SQLite in a temporary directory) and checks
/// every count.
async fn play_and_check(store_url: Option<String>) {
    let options = DemoOptions {
        store_url,
        ..DemoOptions::default()
    };
    let crm_failures = options.crm_failures;
    let mut demo = Demo::start(options).await.expect("demo starts");
    let lines = Mutex::new(Vec::new());
    let say = |l: String| lines.lock().expect("lines").push(l);
    let report = demo.play(&say).await.expect("demo plays");
    let table = report.table();
    let log = lines.lock().expect("lines").join("\n");
    eprintln!("{log}\n{table}");
    for account in ACCOUNTS {
        assert!(
            log.lines().any(|l| l.starts_with("[coverage  ]")
                && l.contains(account)
                && l.contains("extensions covered")),
            "the demo shows {account}'s extension coverage:\n{log}"
        );
    }

    // Expected per account and type, from the calls the simulator generated.
    let mut expected: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut calls_per_account: BTreeMap<&str, usize> = BTreeMap::new();
    for (account, call, voicemail) in demo.calls() {
        *calls_per_account.entry(account).or_default() += 1;
        let mut add = |kind: &str, n: usize| {
            if n > 0 {
                *expected
                    .entry((account.to_owned(), kind.to_owned()))
                    .or_default() += n;
            }
        };
        add("call.logged", call.call_log.len());
        if matches!(
            call.scenario,
            CallScenario::InboundMissed | CallScenario::InboundVoicemail
        ) {
            add("call.missed", 1);
        }
        if voicemail {
            add("voicemail.received", 1);
        }
    }
    // Four rounds (before and after the renewal, while ringrelay is down, after the
    // restart) of the six scenarios on each account.
    for account in ACCOUNTS {
        assert_eq!(calls_per_account.get(account), Some(&24), "{table}");
    }
    for (key, n) in &expected {
        assert_eq!(report.by_type.get(key), Some(n), "{key:?}\n{table}");
    }
    for kind in ["call.voicemail", "call.unknown"] {
        assert!(report.by_type.keys().all(|(_, k)| k != kind));
    }

    for a in &report.accounts {
        assert!(a.ok(), "{table}");
        assert_eq!(a.expected, a.received, "{table}");
        // The replay resends every activity once; the CRM drops each by webhook-id.
        assert_eq!(a.duplicates_dropped, a.received, "{table}");
        assert_eq!(a.calls_incomplete, 0, "{table}");
        assert_eq!(a.unexpected, 0, "{table}");
        assert_eq!(a.voicemails_missing, 0, "{table}");
    }
    let delivered: usize = report.accounts.iter().map(|a| a.received).sum();
    assert_eq!(report.replayed, delivered as u64, "{table}");
    assert_eq!(report.by_type.values().sum::<usize>(), delivered, "{table}");
    assert_eq!(report.crm_refused, crm_failures, "{table}");
    // Notifications posted again with the same uuid are stored once; the simulator's own
    // duplicates (a new uuid) derive nothing new.
    assert_eq!(report.events_resent_same_uuid, RESENT as u64, "{table}");
    assert_eq!(report.events_duplicated, RESENT as u64, "{table}");
    assert_eq!(report.bad_signatures, 0, "{table}");
    assert_eq!(report.undelivered, 0, "{table}");
    assert!(report.renewed, "{table}");
    assert!(report.repaired, "{table}");
    // The blacklisting and the restart leave gaps; every one is backfilled.
    assert!(report.gaps >= 2, "{table}");
    assert_eq!(report.backfilled, report.gaps, "{table}");
    assert!(log.contains("Downtime"), "{log}");
    assert!(log.contains("Blacklisted"), "{log}");
    assert!(report.ok(), "{table}");
    assert!(table.contains("RESULT: ok"), "{table}");
    assert!(
        log.contains("[restart   ] a new ringrelay started"),
        "{log}"
    );
    demo.shutdown().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_on_sqlite_delivers_every_activity_exactly_once() {
    play_and_check(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_on_postgres_delivers_every_activity_exactly_once() {
    let Ok(base) = std::env::var("RINGRELAY_TEST_POSTGRES_URL") else {
        eprintln!("RINGRELAY_TEST_POSTGRES_URL unset: skipping the Postgres run");
        return;
    };
    let schema = format!("rr_demo_{}", uuid::Uuid::new_v4().simple());
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("connect to RINGRELAY_TEST_POSTGRES_URL");
    let conn = tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let result = tokio::spawn(play_and_check(Some(url))).await;
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop schema");
    drop(admin);
    let _ = conn.await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
