//! Assembly: the router, [`Sim::start`] and the [`SimHandle`] tests drive the simulator with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::delivery;
use crate::directory::{ExtensionKind, ExtensionStatus, SimAccount, SimExtension, SimPermissions};
use crate::state::{
    DeliveryRecord, DropDeliveries, DropRule, Fault, RequestRecord, SimState, TokenRequest,
};
use crate::telephony::{CallScenario, GeneratedCall};
use crate::{calls, control, extensions, gate, oauth, subscriptions};

/// The HTTP surface: RingCentral's API behind the rate-limit/fault gate, plus `/sim/…`.
pub(crate) fn router(state: Arc<SimState>) -> Router {
    let api = Router::new()
        .route("/restapi/oauth/token", post(oauth::token))
        .route("/restapi/oauth/revoke", post(oauth::revoke))
        .route(
            "/restapi/v1.0/subscription",
            post(subscriptions::create).get(subscriptions::list),
        )
        .route(
            "/restapi/v1.0/subscription/{id}",
            get(subscriptions::read)
                .put(subscriptions::update)
                .delete(subscriptions::delete),
        )
        .route(
            "/restapi/v1.0/subscription/{id}/renew",
            post(subscriptions::renew),
        )
        .route("/restapi/v1.0/account/{*rest}", get(calls::telephony_get));
    api.merge(control::routes())
        .fallback(|| async { crate::error::ApiError::new(404, "CMN-102", "Resource not found") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::gate,
        ))
        .with_state(state)
}

/// Starts simulators.
#[derive(Debug, Clone, Copy)]
pub struct Sim;

impl Sim {
    /// Binds 127.0.0.1 (the configured port or an ephemeral one) and serves the simulator
    /// in the background until [`SimHandle::shutdown`].
    ///
    /// # Errors
    /// When the port cannot be bound or the config has no account.
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        anyhow::ensure!(
            !config.accounts.is_empty(),
            "the simulator needs an account"
        );
        anyhow::ensure!(
            config.accounts.iter().all(|a| !a.extensions.is_empty()),
            "every simulated account needs an extension"
        );
        let port = config.port.unwrap_or(0);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| anyhow::anyhow!("binding 127.0.0.1:{port}: {e}"))?;
        let addr = listener.local_addr()?;
        let state = SimState::new(config, &format!("http://{addr}"))?;
        let shutdown = CancellationToken::new();
        let app = router(state.clone());
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "simulator server failed");
            }
        });
        Ok(SimHandle {
            state,
            addr,
            shutdown,
            tasks: vec![task],
        })
    }

    /// Like [`Sim::start`] with `clock` replacing the config's clock.
    ///
    /// # Errors
    /// As [`Sim::start`].
    pub async fn start_with_clock(config: SimConfig, clock: SimClock) -> anyhow::Result<SimHandle> {
        Self::start(config.with_clock(clock)).await
    }
}

/// A running simulator: its address, its clock, and the controls and logs tests use.
#[derive(Debug)]
pub struct SimHandle {
    state: Arc<SimState>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The simulated clock (shared: advancing a clone advances the simulator).
    pub fn clock(&self) -> SimClock {
        self.state.clock.clone()
    }

    /// The configuration it runs with (client id/secret, accounts and their JWTs).
    pub fn config(&self) -> &SimConfig {
        &self.state.config
    }

    /// The simulated accounts as configured at start (see [`SimHandle::account`] for the
    /// live state after runtime changes).
    pub fn accounts(&self) -> &[SimAccount] {
        &self.state.config.accounts
    }

    /// The live state of account `account_id` (extensions added, disabled or removed,
    /// permissions changed at runtime), or `None` when there is no such account.
    pub fn account(&self, account_id: &str) -> Option<SimAccount> {
        let index = self.account_index(account_id).ok()?;
        Some(self.state.account(index))
    }

    /// Adds a new enabled extension of `kind` named `name` (next free number, fresh id)
    /// to the account and delivers the extension-list `Create` event; returns it.
    ///
    /// # Errors
    /// When the account does not exist.
    pub async fn add_extension(
        &self,
        account_id: &str,
        kind: ExtensionKind,
        name: &str,
    ) -> anyhow::Result<SimExtension> {
        let index = self.account_index(account_id)?;
        let ext = self.state.account(index).next_extension(kind, name);
        Ok(extensions::add(&self.state, account_id, ext).await?)
    }

    /// Sets an extension's status (e.g. `Disabled`) and delivers the `Update` event.
    ///
    /// # Errors
    /// When the account or extension does not exist, or it is the owner.
    pub async fn set_extension_status(
        &self,
        account_id: &str,
        extension_id: &str,
        status: ExtensionStatus,
    ) -> anyhow::Result<()> {
        Ok(extensions::set_status(&self.state, account_id, extension_id, status).await?)
    }

    /// Disables an extension (see [`SimHandle::set_extension_status`]).
    ///
    /// # Errors
    /// As [`SimHandle::set_extension_status`].
    pub async fn disable_extension(
        &self,
        account_id: &str,
        extension_id: &str,
    ) -> anyhow::Result<()> {
        self.set_extension_status(account_id, extension_id, ExtensionStatus::Disabled)
            .await
    }

    /// Removes an extension and delivers the `Delete` event.
    ///
    /// # Errors
    /// When the account or extension does not exist, or it is the owner.
    pub async fn remove_extension(
        &self,
        account_id: &str,
        extension_id: &str,
    ) -> anyhow::Result<()> {
        Ok(extensions::remove(&self.state, account_id, extension_id).await?)
    }

    /// Replaces what the account's JWT user may do (takes effect on the next request).
    ///
    /// # Errors
    /// When the account does not exist.
    pub fn set_permissions(
        &self,
        account_id: &str,
        permissions: SimPermissions,
    ) -> anyhow::Result<()> {
        Ok(extensions::set_permissions(
            &self.state,
            account_id,
            permissions,
        )?)
    }

    /// Moves simulated time forward and runs the due work (scheduled call events,
    /// expiry, reminders); returns the deliveries made.
    pub async fn advance(&self, by: Duration) -> Vec<DeliveryRecord> {
        self.state.clock.advance(by);
        delivery::tick(&self.state).await
    }

    /// Runs the due time-driven work without moving the clock.
    pub async fn tick(&self) -> Vec<DeliveryRecord> {
        delivery::tick(&self.state).await
    }

    /// Runs [`SimHandle::tick`] every `period` of real time until shutdown (the
    /// standalone binary does this so reminders and expiry happen by themselves).
    pub fn spawn_ticker(&mut self, period: Duration) {
        let state = self.state.clone();
        let stop = self.shutdown.clone();
        self.tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = every.tick() => { delivery::tick(&state).await; }
                }
            }
        }));
    }

    /// Scripts a failure (see [`Fault`]).
    pub fn add_fault(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    /// Removes every scripted failure not yet used.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Forces a subscription to Blacklisted; false if no such subscription.
    pub fn blacklist(&self, subscription_id: &str) -> bool {
        delivery::blacklist(
            &self.state,
            subscription_id,
            "Webhook responses with code: [503], reason: [Service Unavailable]",
        )
    }

    /// Drops (never sends) webhook deliveries: the next `n`, or all for a while.
    pub fn drop_deliveries(&self, what: DropDeliveries) {
        let rule = match what {
            DropDeliveries::Count(n) => DropRule::Count(n),
            DropDeliveries::For(d) => DropRule::Until(
                self.state.now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX),
            ),
        };
        self.state.lock().drop = Some(rule);
    }

    /// Drops every delivery for `duration` of simulated time.
    pub fn drop_deliveries_for(&self, duration: Duration) {
        self.drop_deliveries(DropDeliveries::For(duration));
    }

    /// Delivers a notification with event path `event` and `body` from account
    /// `account_id` to every matching subscription; returns the deliveries made.
    ///
    /// # Errors
    /// When the account does not exist.
    pub async fn inject(
        &self,
        account_id: &str,
        event: &str,
        body: Value,
    ) -> anyhow::Result<Vec<DeliveryRecord>> {
        let account = self.account_index(account_id)?;
        Ok(delivery::deliver(&self.state, account, event, &body).await)
    }

    /// Generates a call of `scenario` on account `account_id` starting now; its
    /// notifications are delivered as the clock reaches their times (the first ones at
    /// once). Use [`SimHandle::complete_calls`] or [`SimHandle::advance`] for the rest.
    ///
    /// # Errors
    /// When the account does not exist or lacks the extensions the scenario needs.
    pub async fn run_call(
        &self,
        account_id: &str,
        scenario: CallScenario,
    ) -> anyhow::Result<GeneratedCall> {
        let account = self.account_index(account_id)?;
        let call = calls::start_call(&self.state, account, scenario, self.state.now())
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
        delivery::tick(&self.state).await;
        Ok(call)
    }

    /// Like [`SimHandle::run_call`], with extension `extension_id` as the callee (the
    /// voicemail box for [`CallScenario::InboundVoicemail`]).
    ///
    /// # Errors
    /// When the account does not exist or the extension cannot take part (disabled, or a
    /// kind that does not fit the scenario).
    pub async fn run_call_to(
        &self,
        account_id: &str,
        extension_id: &str,
        scenario: CallScenario,
    ) -> anyhow::Result<GeneratedCall> {
        let account = self.account_index(account_id)?;
        let call = calls::start_call_to(
            &self.state,
            account,
            scenario,
            self.state.now(),
            Some(extension_id),
        )
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
        delivery::tick(&self.state).await;
        Ok(call)
    }

    /// Generates `n` calls of random scenarios on random accounts, a few simulated
    /// seconds apart, and delivers what is due now.
    pub async fn run_random_calls(&self, n: usize) -> Vec<GeneratedCall> {
        let out = calls::start_random_calls(&self.state, n);
        delivery::tick(&self.state).await;
        out
    }

    /// Advances the clock to the last scheduled call notification (if any is pending)
    /// and delivers everything due; returns the deliveries made.
    pub async fn complete_calls(&self) -> Vec<DeliveryRecord> {
        let now = self.state.now();
        if let Some(last) = calls::last_pending(&self.state)
            && let Ok(gap) = (last - now).to_std()
        {
            // The clock counts whole milliseconds: round up so the last event is due.
            self.state.clock.advance(gap + Duration::from_millis(1));
        }
        delivery::tick(&self.state).await
    }

    fn account_index(&self, account_id: &str) -> anyhow::Result<usize> {
        self.state
            .config
            .accounts
            .iter()
            .position(|a| a.id == account_id)
            .ok_or_else(|| anyhow::anyhow!("no simulated account {account_id}"))
    }

    /// Every API request answered so far (not the `/sim/…` ones).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.lock().requests.clone()
    }

    /// Every webhook POST made (or dropped) so far.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.state.lock().deliveries.clone()
    }

    /// Every live subscription, as `SubscriptionInfo` JSON.
    pub fn subscriptions(&self) -> Vec<Value> {
        subscriptions::snapshot(&self.state, &self.base_url())
    }

    /// Every call of the token endpoint.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.state.lock().token_requests.clone()
    }

    /// How many 429 answers the rate limiter gave.
    pub fn too_many_requests(&self) -> u64 {
        self.state.lock().too_many_requests
    }

    /// Stops the server and background work and waits for them.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "simulator task ended abnormally");
            }
        }
    }
}
