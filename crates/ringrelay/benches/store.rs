//! Store benchmarks (`cargo bench -p ringrelay --bench store`), printed as figures:
//!
//! 1. Inbox append throughput with group commit (batches of up to 512) vs one transaction
//!    per append, 64 concurrent appenders of 1 KB notifications.
//! 2. Dedup: append throughput of new uuids with 10 k notifications stored vs with a large
//!    number stored (`RINGRELAY_BENCH_DEDUP_ROWS`, default 1 000 000; DESIGN §10 asks for
//!    5 M: set it to 5000000 for that, it takes a few minutes more).
//!
//! Both run on SQLite and, when `RINGRELAY_TEST_POSTGRES_URL` is set, on PostgreSQL (in a
//! fresh schema, dropped afterwards).

use std::sync::Arc;
use std::time::Instant;

use ringrelay::account::AccountId;
use ringrelay::config::StoreUrl;
use ringrelay::store::{self, AppendOutcome, NewNotification, OpenOptions, Store};

const CLIENTS: usize = 64;
/// New notifications appended per dedup measurement.
const DEDUP_SAMPLE: usize = 40_000;

fn note(uuid: String, body: &str) -> NewNotification {
    NewNotification {
        account: AccountId::parse("acme").expect("slug"),
        subscription_id: Some("sub-1".into()),
        uuid,
        event: "/restapi/v1.0/account/~/telephony/sessions".into(),
        timestamp: None,
        received_at: chrono::Utc::now(),
        body: body.into(),
        unknown_subscription: false,
    }
}

/// Appends `total` new notifications from `CLIENTS` tasks; returns appends per second.
async fn append_rate(s: &Arc<dyn Store>, total: usize) -> anyhow::Result<f64> {
    let body = Arc::new("x".repeat(1024));
    let per = total / CLIENTS;
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (s, body) = (Arc::clone(s), Arc::clone(&body));
            tokio::spawn(async move {
                for _ in 0..per {
                    let uuid = uuid::Uuid::new_v4().to_string();
                    let o = s.append_inbox(note(uuid, &body)).await?;
                    anyhow::ensure!(o == AppendOutcome::Stored, "unexpected duplicate");
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok((per * CLIENTS) as f64 / start.elapsed().as_secs_f64())
}

/// This process's resident memory in KiB (Linux `/proc/self/status`; 0 elsewhere).
fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Fills the inbox of the SQLite file at `path` with `rows` random uuids, directly.
fn prefill_sqlite(path: &std::path::Path, rows: usize) -> anyhow::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO inbox (account, uuid, event, received_at, body, unknown_subscription)
             VALUES ('acme', ?1, '/e', 0, '{}', 0)",
        )?;
        for _ in 0..rows {
            stmt.execute([uuid::Uuid::new_v4().to_string()])?;
        }
    }
    tx.commit()?;
    // Leave the prefill in the main file, not in a WAL the measured run would checkpoint.
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(())
}

async fn sqlite_store(
    dir: &tempfile::TempDir,
    name: &str,
    o: &OpenOptions,
) -> anyhow::Result<Arc<dyn Store>> {
    Ok(store::open(&StoreUrl::Sqlite(dir.path().join(name)), o).await?)
}

async fn sqlite(dedup_rows: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let group = OpenOptions::default();
    let single = OpenOptions {
        max_batch: 1,
        ..OpenOptions::default()
    };
    let g = append_rate(&sqlite_store(&dir, "group.db", &group).await?, 20_000).await?;
    let one = append_rate(&sqlite_store(&dir, "single.db", &single).await?, 2_000).await?;
    println!("sqlite  group commit (64 clients, 1 KB)      {g:>10.0} appends/s");
    println!(
        "sqlite  one transaction per append           {one:>10.0} appends/s  (group/single = {:.1}x)",
        g / one
    );

    let mut rates = Vec::new();
    for rows in [10_000, dedup_rows] {
        let name = format!("dedup-{rows}.db");
        store::migrate(&StoreUrl::Sqlite(dir.path().join(&name))).await?;
        let fill = Instant::now();
        let path = dir.path().join(&name);
        tokio::task::spawn_blocking(move || prefill_sqlite(&path, rows)).await??;
        let filled = fill.elapsed();
        let s = sqlite_store(&dir, &name, &group).await?;
        // The first append loads the writer's in-memory dedup from the inbox: timed, and
        // its memory measured, apart from the steady rate.
        let (rss_before, load) = (rss_kib(), Instant::now());
        s.append_inbox(note(uuid::Uuid::new_v4().to_string(), "{}"))
            .await?;
        let (load, grown) = (load.elapsed(), rss_kib() - rss_before);
        let rate = append_rate(&s, DEDUP_SAMPLE).await?;
        println!(
            "sqlite  dedup insert at {rows:>9} stored       {rate:>10.0} appends/s  (prefill {filled:.1?}; dedup loaded in {load:.1?}, +{} MiB resident, {:.0} bytes per uuid)",
            grown / 1024,
            grown as f64 * 1024.0 / rows as f64
        );
        rates.push(rate);
    }
    println!(
        "sqlite  dedup ratio large/10k                {:>10.2}",
        rates[1] / rates[0]
    );
    Ok(())
}

async fn postgres(base: &str, dedup_rows: usize) -> anyhow::Result<()> {
    let (admin, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let sep = if base.contains('?') { '&' } else { '?' };
    let run =
        async |label: &str, o: OpenOptions, prefill: usize, total: usize| -> anyhow::Result<f64> {
            let schema = format!("rr_bench_{}", uuid::Uuid::new_v4().simple());
            admin
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await?;
            let url = StoreUrl::Postgres(format!("{base}{sep}options=-csearch_path%3D{schema}"));
            let result = async {
                let s = store::open(&url, &o).await?;
                if prefill > 0 {
                    admin
                        .batch_execute(&format!(
                            "INSERT INTO {schema}.inbox (account, uuid, event, received_at, body,
                            unknown_subscription)
                         SELECT 'acme', md5(random()::text || g::text), '/e', 0, '{{}}', false
                         FROM generate_series(1, {prefill}) g; ANALYZE {schema}.inbox"
                        ))
                        .await?;
                }
                append_rate(&s, total).await
            }
            .await;
            admin
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await?;
            let rate = result?;
            println!("postgres {label:<44}{rate:>10.0} appends/s");
            Ok(rate)
        };
    let g = run(
        "group commit (64 clients, 1 KB)",
        OpenOptions::default(),
        0,
        20_000,
    )
    .await?;
    let single = OpenOptions {
        max_batch: 1,
        ..OpenOptions::default()
    };
    let one = run("one transaction per append", single, 0, 4_000).await?;
    println!(
        "postgres group/single                               {:>10.1}x",
        g / one
    );
    let small = run(
        "dedup insert at 10000 stored",
        OpenOptions::default(),
        10_000,
        DEDUP_SAMPLE,
    )
    .await?;
    let label = format!("dedup insert at {dedup_rows} stored");
    let large = run(&label, OpenOptions::default(), dedup_rows, DEDUP_SAMPLE).await?;
    println!(
        "postgres dedup ratio large/10k                      {:>10.2}",
        large / small
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let dedup_rows = std::env::var("RINGRELAY_BENCH_DEDUP_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    sqlite(dedup_rows).await?;
    match std::env::var("RINGRELAY_TEST_POSTGRES_URL") {
        Ok(url) => postgres(&url, dedup_rows).await?,
        Err(_) => println!("postgres: RINGRELAY_TEST_POSTGRES_URL unset, skipped"),
    }
    Ok(())
}
