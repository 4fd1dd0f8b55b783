//! The crash test: a child process appends under load and prints each acknowledged uuid;
//! the parent kills it with SIGKILL and checks every acknowledged uuid is in the file.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use ringrelay::account::AccountId;
use ringrelay::config::StoreUrl;
use ringrelay::store::{self, NewNotification, OpenOptions};

const CHILD_ENV: &str = "RINGRELAY_STORE_CRASH_DB";

fn note(uuid: &str, body: String) -> NewNotification {
    NewNotification {
        account: AccountId::parse("acme").expect("slug"),
        subscription_id: None,
        uuid: uuid.to_owned(),
        event: "/e".into(),
        timestamp: None,
        received_at: chrono::Utc::now(),
        body: body.into(),
        unknown_subscription: false,
    }
}

/// The child side: run by the parent test with `--ignored`; appends until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of every_acknowledged_append_survives_sigkill"]
async fn crash_child_appends_until_killed() {
    let path = std::env::var(CHILD_ENV).expect("run by the crash test");
    let s = store::open(&StoreUrl::Sqlite(path.into()), &OpenOptions::default())
        .await
        .expect("open");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for w in 0..32 {
        let s = Arc::clone(&s);
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0..1_000_000_u64 {
                let uuid = format!("w{w}-{i}");
                let n = note(&uuid, "x".repeat(1024));
                if s.append_inbox(n).await.is_ok() && tx.send(uuid).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut out = std::io::stdout().lock();
    while let Some(uuid) = rx.recv().await {
        use std::io::Write;
        writeln!(out, "ACK {uuid}").expect("stdout");
        out.flush().expect("flush");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_append_survives_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "crash::crash_child_appends_until_killed",
            "--nocapture",
        ])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child");
        if let Some(uuid) = line.strip_prefix("ACK ") {
            acked.push(uuid.to_owned());
            if acked.len() >= 3000 {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    assert!(
        acked.len() >= 3000,
        "the child acknowledged only {}",
        acked.len()
    );

    let s = store::open(&StoreUrl::Sqlite(db), &OpenOptions::default())
        .await
        .expect("reopen");
    let mut stored = std::collections::HashSet::new();
    let mut after = 0;
    for _ in 0..10_000 {
        let rows = s.inbox_after(after, 1000).await.expect("read");
        let Some(last) = rows.last() else { break };
        after = last.seq;
        stored.extend(rows.into_iter().map(|r| r.uuid));
    }
    let missing: Vec<_> = acked.iter().filter(|u| !stored.contains(*u)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged appends lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    // The dedup is rebuilt from what survived: every acknowledged uuid sent again is a
    // duplicate, and nothing is stored twice.
    let rows_before = s.inbox_stats().await.expect("stats").rows;
    for uuid in acked.iter().step_by(10) {
        assert_eq!(
            s.append_inbox(note(uuid, "{}".into()))
                .await
                .expect("append"),
            store::AppendOutcome::Duplicate,
            "{uuid}"
        );
    }
    assert_eq!(s.inbox_stats().await.expect("stats").rows, rows_before);
}
