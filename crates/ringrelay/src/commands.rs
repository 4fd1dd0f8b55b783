//! The operator commands that work on the store and RingCentral directly, without the
//! running service: `status`, `migrate`, `deliveries …`, `backfill`, `subscriptions …`.
//! They share one output style ([`crate::admin::render`]) with the admin API and the status
//! page, and every failure says what to fix.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use chrono::Utc;

use crate::admin::render::{self, Table};
use crate::admin::{AdminSource as _, DeliveryQuery, StoreAdminSource, parse_time};
use crate::app::sink_router;
use crate::config::{AccountSettings, Settings};
use crate::keeper::extensions::{Discovery, DiscoveryContext};
use crate::pipeline::sync::{AccountSync, SyncScope};
use crate::ringcentral::{ClientSettings, RingCentral, SubscriptionStatus};
use crate::store::{self, OpenOptions, Store};

async fn open(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    store::open(&settings.store.url, &OpenOptions::default())
        .await
        .with_context(|| {
            format!(
                "cannot open the store {} (check [store] url, and that the database is reachable)",
                settings.store.url.redacted()
            )
        })
}

fn source(store: Arc<dyn Store>, settings: &Settings) -> StoreAdminSource {
    StoreAdminSource::new(store, Arc::new(settings.clone()))
}

fn account<'a>(settings: &'a Settings, id: &str) -> anyhow::Result<&'a AccountSettings> {
    settings
        .accounts
        .iter()
        .find(|a| a.id.as_str() == id)
        .ok_or_else(|| {
            let known: Vec<&str> = settings.accounts.iter().map(|a| a.id.as_str()).collect();
            anyhow!(
                "no account {id:?} in the config (configured: {})",
                known.join(", ")
            )
        })
}

/// `ringrelay status [--json]`: the text (or JSON) and whether all is healthy.
///
/// # Errors
/// When the store cannot be read.
pub async fn status(settings: &Settings, json: bool) -> anyhow::Result<(String, bool)> {
    let store = open(settings).await?;
    let report = source(store, settings)
        .status()
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let healthy = report.healthy();
    let text = if json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render::status_text(&report)
    };
    Ok((text, healthy))
}

/// `ringrelay migrate`.
///
/// # Errors
/// When the store cannot be reached or a migration fails.
pub async fn migrate(settings: &Settings) -> anyhow::Result<String> {
    let version = store::migrate(&settings.store.url)
        .await
        .with_context(|| format!("cannot migrate {}", settings.store.url.redacted()))?;
    Ok(format!(
        "{}: schema at version {version}\n",
        settings.store.url.redacted()
    ))
}

/// `ringrelay deliveries list [--failed]`.
///
/// # Errors
/// When the store cannot be read.
pub async fn deliveries_list(settings: &Settings, failed: bool) -> anyhow::Result<String> {
    let store = open(settings).await?;
    let list = source(store, settings)
        .deliveries(DeliveryQuery {
            state: failed.then(|| "failed".to_owned()),
            limit: Some(200),
            ..DeliveryQuery::default()
        })
        .await
        .map_err(|e| anyhow!("{e}"))?;
    Ok(render::deliveries_text(Utc::now(), &list))
}

/// `ringrelay deliveries retry ID`.
///
/// # Errors
/// A bad id, an unknown delivery, or a store failure.
pub async fn deliveries_retry(settings: &Settings, id: &str) -> anyhow::Result<String> {
    let n: i64 = id.parse().map_err(|_| {
        anyhow!("{id:?} is not a delivery id: use the ID column of `ringrelay deliveries list`")
    })?;
    let store = open(settings).await?;
    source(store, settings)
        .retry_delivery(n)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    Ok(format!(
        "delivery {n} is due now; the worker of its sink sends it within a second\n"
    ))
}

/// `ringrelay deliveries replay --sink NAME --since T`.
///
/// # Errors
/// A bad time, an unknown sink, or a store failure.
pub async fn deliveries_replay(
    settings: &Settings,
    sink: &str,
    since: &str,
) -> anyhow::Result<String> {
    let since = parse_time(since, Utc::now()).map_err(|e| anyhow!("--since: {e}"))?;
    let store = open(settings).await?;
    let n = source(store, settings)
        .replay(sink, since)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    Ok(format!(
        "{n} deliveries to {sink} since {since} are due again\n"
    ))
}

fn client(account: &AccountSettings) -> anyhow::Result<RingCentral> {
    RingCentral::new(ClientSettings::from_account(account))
        .with_context(|| format!("account {}: cannot build its client", account.id))
}

/// `ringrelay backfill --account ID --since T [--until T]`.
///
/// # Errors
/// Bad arguments, an unreachable store or RingCentral.
pub async fn backfill(
    settings: &Settings,
    account_id: &str,
    since: &str,
    until: Option<&str>,
) -> anyhow::Result<String> {
    let now = Utc::now();
    let since = parse_time(since, now).map_err(|e| anyhow!("--since: {e}"))?;
    let until = match until {
        Some(u) => parse_time(u, now).map_err(|e| anyhow!("--until: {e}"))?,
        None => now,
    };
    if since >= until {
        bail!("--since ({since}) must be before --until ({until})");
    }
    let account = account(settings, account_id)?;
    let store = open(settings).await?;
    let client = client(account)?;
    // The same coverage `serve` uses: every covered extension's message store, and the
    // call log at account level only when the token may read it.
    let coverage = Discovery::new(DiscoveryContext {
        account: account.id.clone(),
        scope: account.scope.clone(),
        api: Arc::new(client.clone()),
        store: store.clone(),
        clock: client.clock().clone(),
        refresh: settings.keeper.extension_refresh,
        retry_base: Duration::from_secs(5),
    })
    .refresh()
    .await
    .with_context(|| format!("cannot tell which extensions of {account_id} are covered"))?;
    let scope = tokio::sync::watch::channel(SyncScope::from(&coverage)).1;
    let sync = AccountSync::new(
        client,
        store,
        sink_router(settings)?,
        settings.sync.backfill_margin,
    )
    .with_scope(scope);
    let r = sync
        .backfill(since, until)
        .await
        .with_context(|| format!("backfill of {account_id} failed"))?;
    Ok(format!(
        "{account_id}: {since} to {until} (± {} margin), {}: {} call-log records, {} voicemails read; {} new activities emitted (already known ones are not sent again)\n",
        humantime::format_duration(settings.sync.backfill_margin),
        coverage.summary(),
        r.call_log_records,
        r.voicemails,
        r.activities_emitted
    ))
}

/// What `ringrelay subscriptions …` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionsAction {
    /// List the account's subscriptions at RingCentral.
    List,
    /// Renew ours now.
    Renew,
    /// Delete ours so the keeper creates a new one.
    Recreate,
    /// Delete strays (at our address, not ours) and non-Active ones.
    Cleanup,
}

/// `ringrelay subscriptions list|renew|recreate|cleanup --account ID`.
///
/// # Errors
/// An unknown account, or RingCentral refusing.
pub async fn subscriptions(
    settings: &Settings,
    account_id: &str,
    action: SubscriptionsAction,
) -> anyhow::Result<String> {
    let account = account(settings, account_id)?;
    let client = client(account)?;
    let store = open(settings).await?;
    let record = store
        .subscription(&account.id)
        .await
        .context("cannot read the stored subscription")?;
    // Every subscription the keeper holds (several when extensions are covered).
    let held: Vec<String> = match &record {
        Some(r) => crate::keeper::stored_tokens(store.as_ref(), r)
            .await
            .context("cannot read the stored subscriptions")?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
        None => Vec::new(),
    };
    let ours_id = record.map(|r| r.id);
    let address = settings.server.webhook_url(&account.id).to_string();
    let list = client
        .list_subscriptions()
        .await
        .with_context(|| format!("cannot list {account_id}'s subscriptions"))?;
    let mut out = String::new();
    match action {
        SubscriptionsAction::List => {
            let mut t = Table::new(&["ID", "STATUS", "EXPIRES", "ADDRESS", "OURS"]);
            for s in &list {
                let at_ours = s.address.as_deref() == Some(address.as_str());
                let ours = if held.contains(&s.id) {
                    "current"
                } else if at_ours {
                    "stray"
                } else {
                    "-"
                };
                t.row(vec![
                    s.id.clone(),
                    format!("{:?}", s.status),
                    s.expires_at.to_rfc3339(),
                    s.address.clone().unwrap_or_default(),
                    ours.to_owned(),
                ]);
            }
            out.push_str(&t.render());
        }
        SubscriptionsAction::Renew => {
            let Some(first) = ours_id else {
                return Err(anyhow!(
                    "{account_id} has no subscription yet: `ringrelay serve` creates one"
                ));
            };
            let ids = if held.is_empty() { vec![first] } else { held };
            for id in &ids {
                let s = client
                    .renew_subscription(id)
                    .await
                    .with_context(|| format!("RingCentral refused to renew {id}; `ringrelay subscriptions recreate --account {account_id}` replaces it"))?;
                let _ = writeln!(
                    out,
                    "renewed {id}: {:?}, expires {}",
                    s.status, s.expires_at
                );
            }
        }
        SubscriptionsAction::Recreate => {
            match &ours_id {
                Some(id) => match client.delete_subscription(id).await {
                    Ok(()) | Err(crate::ringcentral::ApiError::NotFound { .. }) => {
                        let _ = writeln!(out, "deleted {id}");
                    }
                    Err(e) => return Err(anyhow!("RingCentral refused to delete {id}: {e}")),
                },
                None => {
                    let _ = writeln!(out, "{account_id} has no current subscription");
                }
            }
            let _ = writeln!(
                out,
                "the keeper of `ringrelay serve` creates a new one at its next reconcile (at once with the admin API: POST /api/v1/accounts/{account_id}/subscription/recreate); the gap is recorded and backfilled"
            );
        }
        SubscriptionsAction::Cleanup => {
            let mut deleted = 0;
            for s in &list {
                let at_ours = s.address.as_deref() == Some(address.as_str());
                let current = held.contains(&s.id);
                let dead = s.status != SubscriptionStatus::Active;
                if at_ours && (!current || dead) {
                    client
                        .delete_subscription(&s.id)
                        .await
                        .with_context(|| format!("cannot delete {}", s.id))?;
                    deleted += 1;
                    let _ = writeln!(
                        out,
                        "deleted {} ({:?}{})",
                        s.id,
                        s.status,
                        if current { "" } else { ", stray" }
                    );
                }
            }
            let _ = writeln!(
                out,
                "{deleted} deleted; subscriptions at other addresses were left alone"
            );
        }
    }
    Ok(out)
}
