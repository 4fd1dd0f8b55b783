//! The one assembly point: [`Application::build`] opens the store, loads the verification
//! tokens it remembers, builds one RingCentral client per account, binds the listener
//! (port 0 allowed), and [`Application::run_until_stopped`] runs every part until the
//! shutdown token fires:
//!
//! - the HTTP surface (webhook receiver, health, readiness, metrics, admin API, status page);
//! - the processor (inbox → activities + deliveries) and one delivery worker per sink;
//! - per account: the keeper (subscription, tokens, coverage ledger) and the call-log /
//!   voicemail sync;
//! - the gap backfill and the retention pruning.
//!
//! Several replicas may share one PostgreSQL store: the processor, each account's keeper
//! and sync, and each account's token refresh then run on the replica holding the lease
//! (see [`crate::cluster`] and `docs/scaling.md`); the receiver and the delivery workers
//! run on every replica.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::account::AccountId;
use crate::activity::Activity;
use crate::admin::{self, AdminAuth, AdminState, Runtime, StoreAdminSource};
use crate::cluster::{FairShare, HeldLease, LeaseTiming, PROCESSOR_LEASE, StoreTokens, share};
use crate::config::{self, Settings};
use crate::delivery::matcher::{Matcher, sinks_for};
use crate::delivery::{self, ConfiguredSink};
use crate::keeper::extensions::{self, DiscoveryContext, DiscoveryHandle};
use crate::keeper::{self, Command, KeeperContext, KeeperHandle, SubscriptionApi, TokenSink};
use crate::pipeline::process::Processor;
use crate::pipeline::sync::{AccountSync, SyncScope, SyncTrigger, backfill_loop};
use crate::pipeline::{PipelineEvent, SinkRouter};
use crate::receiver::{self, ReceiverLimits, ReceiverState, StrayReport, TokenRegistry};
use crate::ringcentral::{ClientSettings, Clock, RingCentral, SharedTokens, SystemClock};
use crate::shutdown::CancellationToken;
use crate::store::{self, CursorUpdate, OpenOptions, Store};
use crate::telemetry;

/// How the application is built beyond its settings (tests and the demo).
pub struct AppOptions {
    /// A listener bound already (so `public_url` can name its port); `None` binds
    /// `server.listen`.
    pub listener: Option<TcpListener>,
    /// The clock RingCentral calls are timed by (the simulator's in the demo).
    pub clock: Option<Arc<dyn Clock>>,
    /// How long after a call ends the call-log sync looks for its record (the call log
    /// lags calls by 15–30 s).
    pub call_log_lag: Duration,
    /// This replica's name for leases (default: `server.replica_id`, else host name and
    /// process id).
    pub owner: Option<String>,
    /// The clock leases are timed by (default: the wall clock, which every replica
    /// shares; never the simulator's, which jumps).
    pub lease_clock: Option<Arc<dyn Clock>>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            listener: None,
            clock: None,
            call_log_lag: Duration::from_secs(20),
            owner: None,
            lease_clock: None,
        }
    }
}

/// A built, bound, not yet running ringrelay.
pub struct Application {
    listener: TcpListener,
    settings: Settings,
    store: Arc<dyn Store>,
    tokens: TokenRegistry,
    clients: Vec<RingCentral>,
    router: SinkRouter,
    options: AppOptions,
    owner: String,
    clock: Arc<dyn Clock>,
    sinks: Vec<ConfiguredSink>,
    leases: LeaseTiming,
}

fn default_owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ringrelay".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The sink router of the configured sinks: each sink's `accounts` (empty = all) and
/// `types` globs (`*`, `call.*`, exact names).
///
/// # Errors
/// A type pattern that is not a valid glob.
pub fn sink_router(settings: &Settings) -> anyhow::Result<SinkRouter> {
    let mut rules = Vec::new();
    for sink in &settings.sinks {
        let matcher = Matcher::new(&sink.accounts, &sink.types)
            .map_err(|e| anyhow::anyhow!("sinks.{}.types: {e}", sink.name))?;
        rules.push((sink.name.clone(), matcher));
    }
    Ok(Arc::new(move |activity: &Activity| {
        sinks_for(rules.iter().map(|(n, m)| (n.as_str(), m)), activity)
    }))
}

impl Application {
    /// Opens the store, loads the tokens and binds `server.listen`.
    ///
    /// # Errors
    /// When the store cannot be opened or the listen address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, AppOptions::default()).await
    }

    /// [`Application::build`] with options.
    ///
    /// # Errors
    /// When the store cannot be opened, a client cannot be built, or the listen address
    /// cannot be bound.
    pub async fn build_with(settings: Settings, mut options: AppOptions) -> anyhow::Result<Self> {
        // Install the Prometheus recorder before anything records a metric.
        let _ = admin::metrics::handle();
        let store = store::open(&settings.store.url, &OpenOptions::from_settings(&settings))
            .await
            .context("cannot open the store")?;
        let tokens = TokenRegistry::new(settings.keeper.token_grace);
        let now = chrono::Utc::now();
        for record in store
            .subscriptions()
            .await
            .context("cannot read stored subscriptions")?
        {
            // Every subscription of the account (several when many extensions are covered).
            for (id, token) in keeper::stored_tokens(store.as_ref(), &record)
                .await
                .context("cannot read stored subscriptions")?
            {
                tokens.set(&record.account, &id, token, now);
            }
        }
        let clock: Arc<dyn Clock> = options
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(SystemClock));
        let owner = options
            .owner
            .clone()
            .or_else(|| settings.server.replica_id.clone())
            .unwrap_or_else(default_owner);
        let mut leases = LeaseTiming::from_settings(&settings.cluster);
        if let Some(c) = &options.lease_clock {
            leases = leases.with_clock(c.clone());
        }
        let leases = leases.with_share(Arc::new(FairShare::new(
            owner.clone(),
            settings.accounts.len(),
        )));
        let clients = settings
            .accounts
            .iter()
            .map(|a| {
                let shared: Arc<dyn SharedTokens> = Arc::new(StoreTokens::new(
                    store.clone(),
                    a,
                    owner.clone(),
                    leases.clone(),
                ));
                RingCentral::with_shared_tokens(
                    ClientSettings::from_account(a),
                    clock.clone(),
                    Some(shared),
                )
                .with_context(|| format!("account {}: cannot build its client", a.id))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let router = sink_router(&settings)?;
        let mut sinks = Vec::new();
        for sink in &settings.sinks {
            sinks.push(
                delivery::build(sink)
                    .await
                    .with_context(|| format!("sink {:?}", sink.name))?,
            );
        }
        let listener = match options.listener.take() {
            Some(l) => l,
            None => TcpListener::bind(settings.server.listen)
                .await
                .with_context(|| format!("cannot listen on {}", settings.server.listen))?,
        };
        Ok(Self {
            listener,
            settings,
            store,
            tokens,
            clients,
            router,
            options,
            owner,
            clock,
            sinks,
            leases,
        })
    }

    /// This replica's name in leases.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The store (shared with every part).
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The receiver's token registry (the keepers fill it).
    pub fn tokens(&self) -> TokenRegistry {
        self.tokens.clone()
    }

    /// Runs every part until `shutdown` is cancelled, then stops them in order: the HTTP
    /// server drains in-flight requests (each acknowledged one is committed), then the
    /// loops finish their current step.
    ///
    /// # Errors
    /// When the HTTP server fails.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            listener,
            settings,
            store,
            tokens,
            clients,
            router,
            options,
            owner,
            clock,
            sinks,
            leases,
        } = self;
        tracing::info!(
            owner,
            accounts = clients.len(),
            sinks = settings.sinks.len(),
            "ringrelay starting"
        );
        let stop_parts = CancellationToken::new();
        let mut parts = JoinSet::new();

        // Processor, and the events it raises.
        let wake = Arc::new(Notify::new());
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<PipelineEvent>();
        let delivery_wakeup = Arc::new(Notify::new());
        let processor = Processor::new(store.clone(), router.clone())
            .with_events(events_tx)
            .with_delivery_wakeup(delivery_wakeup.clone())
            .with_lease(HeldLease::new(
                store.clone(),
                PROCESSOR_LEASE,
                owner.clone(),
                leases.clone(),
            ));
        parts.spawn(processor.run(stop_parts.clone(), wake.clone(), Duration::from_millis(200)));

        // One delivery worker per sink.
        let workers = tokio_util::task::TaskTracker::new();
        delivery::worker::spawn_all(
            &store,
            sinks,
            &delivery::worker::WorkerOptions {
                owner: owner.clone(),
                ..delivery::worker::WorkerOptions::default()
            },
            &delivery::worker::system_clock(),
            &delivery_wakeup,
            &stop_parts,
            &workers,
        );
        workers.close();

        // Membership (fair shares of accounts), registered before the keepers start.
        if let Some(fair) = leases.share.clone() {
            let mut member = share::member(store.clone(), &owner, leases.clone());
            share::join(&mut member, &fair, store.as_ref()).await;
            parts.spawn(share::membership_loop(
                store.clone(),
                member,
                fair,
                leases.clone(),
                stop_parts.clone(),
            ));
        }

        // Extension discovery per account: which extensions are covered (scope, permissions,
        // status, kind), followed by the keeper's voicemail filters and by the sync.
        let mut discoveries: std::collections::HashMap<AccountId, DiscoveryHandle> =
            std::collections::HashMap::new();
        // Each moves into the task that follows the keeper's lease (discovery stops when
        // its `active` sender is gone).
        let mut discovery_active = Vec::new();
        for (account, client) in settings.accounts.iter().zip(&clients) {
            let ctx = DiscoveryContext {
                account: account.id.clone(),
                scope: account.scope.clone(),
                api: Arc::new(client.clone()),
                store: store.clone(),
                clock: clock.clone(),
                refresh: settings.keeper.extension_refresh,
                retry_base: Duration::from_secs(5),
            };
            // Active while this replica holds the account's keeper lease (set below).
            let (active_tx, active) = tokio::sync::watch::channel(false);
            discovery_active.push((account.id.clone(), active_tx));
            discoveries.insert(
                account.id.clone(),
                extensions::spawn(ctx, active, stop_parts.clone()),
            );
        }

        // One keeper per account (leased in the store, so one across replicas).
        let mut keepers: std::collections::HashMap<AccountId, KeeperHandle> =
            std::collections::HashMap::new();
        for (account, client) in settings.accounts.iter().zip(&clients) {
            let api: Arc<dyn SubscriptionApi> = Arc::new(client.clone());
            let token_sink: Arc<dyn TokenSink> = Arc::new(tokens.clone());
            let ctx = KeeperContext::new(
                &settings,
                account,
                api,
                store.clone(),
                token_sink,
                owner.clone(),
            )
            .with_clock(clock.clone())
            .with_lease_timing(leases.clone());
            let ctx = match discoveries.get(&account.id) {
                Some(d) => ctx.with_extensions(keeper::follow_coverage(d.subscribe()).0),
                None => ctx,
            };
            keepers.insert(account.id.clone(), keeper::spawn(ctx));
        }
        let keepers = Arc::new(keepers);
        // Discovery calls RingCentral only where the account's keeper holds its lease.
        for (account, active) in discovery_active {
            if let Some(k) = keepers.get(&account) {
                let mut lease = k.lease();
                let stop = stop_parts.clone();
                parts.spawn(async move {
                    loop {
                        let held = lease.borrow_and_update().is_some();
                        active.send_if_modified(|a| std::mem::replace(a, held) != held);
                        tokio::select! {
                            () = stop.cancelled() => return,
                            changed = lease.changed() => if changed.is_err() { return },
                        }
                    }
                });
            }
        }

        // Sync per account, and the gap backfill: only where the account's keeper runs.
        let mut triggers = std::collections::HashMap::new();
        let mut syncs = Vec::new();
        let mut sync_map = std::collections::HashMap::new();
        for client in &clients {
            let mut sync = AccountSync::new(
                client.clone(),
                store.clone(),
                router.clone(),
                settings.sync.backfill_margin,
            );
            if let Some(k) = keepers.get(client.account()) {
                sync = sync.with_lease(k.lease(), leases.clock.clone());
            }
            if let Some(d) = discoveries.get(client.account()) {
                sync = sync.with_scope(follow_watch(d.subscribe(), |c| SyncScope::from(c)));
            }
            let (tx, rx) = mpsc::unbounded_channel();
            triggers.insert(client.account().clone(), tx);
            syncs.push(sync.clone());
            sync_map.insert(client.account().clone(), sync.clone());
            parts.spawn(sync.run(
                stop_parts.clone(),
                rx,
                settings.sync.interval,
                options.call_log_lag,
            ));
        }
        parts.spawn(backfill_loop(
            store.clone(),
            syncs,
            stop_parts.clone(),
            Duration::from_secs(5),
        ));

        // Route what the processor reports.
        {
            let keepers_for_events = keepers.clone();
            let events_store = store.clone();
            let stop = stop_parts.clone();
            parts.spawn(async move {
                loop {
                    let event = tokio::select! {
                        () = stop.cancelled() => return,
                        e = events_rx.recv() => match e { Some(e) => e, None => return },
                    };
                    match event {
                        PipelineEvent::CallFinished {
                            account,
                            extension_ids,
                            ..
                        } => {
                            if let Some(t) = triggers.get(&account) {
                                let _ = t.send(SyncTrigger::CallFinished { extension_ids });
                            }
                        }
                        PipelineEvent::VoicemailChanged {
                            account,
                            extension_id,
                        } => {
                            if let Some(t) = triggers.get(&account) {
                                let _ = t.send(SyncTrigger::Voicemail { extension_id });
                            }
                        }
                        PipelineEvent::ExtensionsChanged { account } => {
                            tracing::info!(%account, "extension list changed: refreshing coverage");
                            if let Some(d) = discoveries.get(&account) {
                                d.trigger();
                            }
                            // For the replica running the account's discovery, if it is
                            // another one.
                            if let Err(e) = events_store
                                .set_cursor(&CursorUpdate {
                                    account: Some(account.clone()),
                                    name: extensions::EXTENSIONS_CHANGED_CURSOR.to_owned(),
                                    value: chrono::Utc::now().to_rfc3339(),
                                })
                                .await
                            {
                                tracing::warn!(%account, error = %e, "cannot note the extension-list change");
                            }
                        }
                        PipelineEvent::RenewalReminder { account } => {
                            tracing::info!(%account, "renewal reminder received");
                            if let Some(k) = keepers_for_events.get(&account) {
                                k.send(Command::Reminder);
                            }
                        }
                    }
                }
            });
        }

        // Retention.
        {
            let store = store.clone();
            let stop = stop_parts.clone();
            let s = settings.store.clone();
            parts.spawn(async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(s.prune_interval) => {}
                    }
                    match store
                        .prune(chrono::Utc::now(), s.inbox_retention, s.delivered_retention)
                        .await
                    {
                        Ok(c) => {
                            tracing::debug!(inbox = c.inbox, deliveries = c.deliveries, "pruned");
                        }
                        Err(e) => tracing::warn!(error = %e, "pruning failed"),
                    }
                }
            });
        }

        // The HTTP surface: the receiver wakes the processor after each stored notification.
        let (stray_tx, mut stray_rx) = mpsc::channel::<StrayReport>(256);
        {
            let keepers = keepers.clone();
            let stop = stop_parts.clone();
            parts.spawn(async move {
                loop {
                    let report = tokio::select! {
                        () = stop.cancelled() => return,
                        r = stray_rx.recv() => match r { Some(r) => r, None => return },
                    };
                    if let Some(k) = keepers.get(&report.account) {
                        k.send(Command::Stray(report));
                    }
                }
            });
        }
        let accounts: Vec<AccountId> = settings.accounts.iter().map(|a| a.id.clone()).collect();
        let receiver_state = ReceiverState::new(
            store.clone(),
            accounts,
            tokens,
            ReceiverLimits::from_settings(&settings.server),
        )
        .with_stray_reports(stray_tx);
        let admin_source = StoreAdminSource::new(store.clone(), Arc::new(settings.clone()))
            .with_runtime(
                Runtime {
                    keepers: keepers.clone(),
                    clients: clients
                        .iter()
                        .map(|c| (c.account().clone(), c.clone()))
                        .collect(),
                    syncs: sync_map,
                },
                clock.clone(),
            );
        let admin = admin::router(AdminState {
            source: Arc::new(admin_source),
            auth: AdminAuth::new(
                settings.server.admin_token.clone(),
                settings.server.public_url.scheme() == "https",
            ),
        });
        let app = http_router(
            receiver::router(receiver_state).merge(admin),
            wake,
            keepers.clone(),
            clock.clone(),
            &settings,
        );
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown({
            let shutdown = shutdown.clone();
            async move { shutdown.cancelled().await }
        })
        .await
        .context("HTTP server failed");

        stop_parts.cancel();
        while let Some(r) = parts.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "a part of ringrelay panicked");
            }
        }
        workers.wait().await;
        if let Ok(keepers) = Arc::try_unwrap(keepers) {
            for (_, k) in keepers {
                k.shutdown().await;
            }
        }
        for client in &clients {
            if let Err(e) = client.revoke().await {
                tracing::debug!(account = %client.account(), error = %e, "token revoke failed");
            }
        }
        tracing::info!("ringrelay stopped");
        served
    }
}

/// A watch channel following `source` through `f` (the task ends with `source`).
fn follow_watch<T, U>(
    mut source: tokio::sync::watch::Receiver<T>,
    f: impl Fn(&T) -> U + Send + 'static,
) -> tokio::sync::watch::Receiver<U>
where
    T: Send + Sync + 'static,
    U: Send + Sync + 'static,
{
    let (tx, rx) = tokio::sync::watch::channel(f(&source.borrow_and_update()));
    tokio::spawn(async move {
        while source.changed().await.is_ok() {
            if tx.send(f(&source.borrow_and_update())).is_err() {
                return;
            }
        }
    });
    rx
}

/// The HTTP surface (receiver + admin) with the request time limit (503, so RingCentral
/// retries), a processor wake-up and a keeper heartbeat after each accepted webhook.
fn http_router(
    receiver: Router,
    wake: Arc<Notify>,
    keepers: Arc<std::collections::HashMap<AccountId, KeeperHandle>>,
    clock: Arc<dyn Clock>,
    settings: &Settings,
) -> Router {
    let timeout = settings.server.request_timeout;
    receiver
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let wake = wake.clone();
                let keepers = keepers.clone();
                let clock = clock.clone();
                async move {
                    let handshake = req.headers().contains_key("validation-token");
                    let account = req
                        .uri()
                        .path()
                        .strip_prefix("/webhooks/ringcentral/")
                        .and_then(|a| AccountId::parse(a).ok());
                    let resp = next.run(req).await;
                    if let Some(account) = account
                        && !handshake
                        && resp.status().is_success()
                    {
                        wake.notify_one();
                        if let Some(k) = keepers.get(&account) {
                            k.send(Command::Event { at: clock.now() });
                        }
                    }
                    resp
                }
            },
        ))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(resp) => resp,
                    Err(_) => {
                        use axum::response::IntoResponse as _;
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            [(axum::http::header::RETRY_AFTER, "1")],
                            "request took longer than server.request_timeout\n",
                        )
                            .into_response()
                    }
                }
            },
        ))
}

/// `ringrelay serve`: load the config, start telemetry, build and run until a signal.
///
/// # Errors
/// Config problems, or a failure to start.
pub async fn serve_from_file(path: &Path) -> anyhow::Result<()> {
    let settings = config::load_file(path)?;
    telemetry::init(settings.log.format, &settings.log.level);
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "ringrelay listening");
    app.run_until_stopped(crate::shutdown::on_signals()).await
}
