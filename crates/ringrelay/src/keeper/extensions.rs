//! Extension discovery for company-wide coverage: which of an account's extensions
//! ringrelay covers (one voicemail filter each, message-store backfill each) and why the
//! others are not covered.
//!
//! - [`decide`]: the pure rule, from the configured [`Scope`], the JWT user's extension,
//!   the extension list and the user's [`Permissions`].
//! - [`Discovery`]: one account's discovery step ([`Discovery::refresh`]): list, decide,
//!   store (`Store::replace_extensions`), return the [`Coverage`].
//! - [`spawn`]: the background task: refreshes at start, every
//!   `keeper.extension_refresh` and at once on [`DiscoveryHandle::trigger`] (call it when an
//!   extension-list notification arrives), and publishes the result on a
//!   `tokio::sync::watch` channel the keeper (voicemail filters) and the sync consume.
//!
//! Only the replica holding the account's keeper lease should call RingCentral: the task
//! takes an `active: watch::Receiver<bool>` and refreshes only while it is `true` (pass a
//! channel that stays `true` for a single replica).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::account::AccountId;
use crate::config::Scope;
use crate::ringcentral::{
    ApiError, Clock, Extension, ExtensionKind, ExtensionStatus, Permissions, RingCentral,
};
use crate::store::{ExtensionRecord, Store, StoreError};

use super::backoff::Backoff;

/// The extension id RingCentral resolves to the JWT's user, used when its real id is
/// unknown (the extension calls are not permitted).
pub const OWN_EXTENSION: &str = "~";

/// What discovery asks RingCentral (implemented for [`RingCentral`]; tests may fake it).
#[async_trait]
pub trait ExtensionApi: Send + Sync + 'static {
    /// The JWT user's own extension.
    ///
    /// # Errors
    /// Any [`ApiError`].
    async fn own_extension(&self) -> Result<Extension, ApiError>;
    /// Every extension of the account.
    ///
    /// # Errors
    /// Any [`ApiError`].
    async fn extensions(&self) -> Result<Vec<Extension>, ApiError>;
    /// What the JWT user may do.
    ///
    /// # Errors
    /// Any [`ApiError`].
    async fn permissions(&self) -> Result<Permissions, ApiError>;
}

#[async_trait]
impl ExtensionApi for RingCentral {
    async fn own_extension(&self) -> Result<Extension, ApiError> {
        self.current_extension().await
    }
    async fn extensions(&self) -> Result<Vec<Extension>, ApiError> {
        self.list_extensions().await
    }
    async fn permissions(&self) -> Result<Permissions, ApiError> {
        RingCentral::permissions(self).await
    }
}

/// The scope actually applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectiveScope {
    /// Every eligible extension.
    Company,
    /// Only the JWT user's extension (configured, or the fallback).
    SelfOnly,
    /// The configured extension ids.
    Extensions,
}

impl fmt::Display for EffectiveScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Company => "company",
            Self::SelfOnly => "self",
            Self::Extensions => "extension list",
        })
    }
}

/// Why an extension is not covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The scope leaves it out (`self`, or not in the configured list).
    NotInScope(EffectiveScope),
    /// The user may not read other extensions' messages.
    NotPermitted,
    /// Its status is not `Enabled`.
    Status(String),
    /// Its kind takes no voicemail.
    Kind(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInScope(EffectiveScope::Extensions) => {
                f.write_str("not in the configured extension list")
            }
            Self::NotInScope(s) => write!(f, "scope is {s}"),
            Self::NotPermitted => {
                f.write_str("not permitted: the JWT user may not read other extensions' messages")
            }
            Self::Status(s) => write!(f, "status {s}"),
            Self::Kind(k) => write!(f, "type {k} takes no voicemail"),
        }
    }
}

/// One extension that is not covered, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCovered {
    /// The extension id.
    pub extension_id: String,
    /// Why.
    pub reason: Reason,
}

/// What discovery decided for one account: the input of the keeper's voicemail filters
/// and of the sync's per-extension backfill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// The covered extension ids, sorted. Before the first successful discovery, and
    /// when the extension list cannot be read, this is the JWT user's extension only
    /// (its id, or [`OWN_EXTENSION`]).
    pub extension_ids: Vec<String>,
    /// The account-level call log may be read (`FullCompanyCallLog`); otherwise the
    /// call log must be read per covered extension.
    pub company_call_log: bool,
    /// Every extension's messages may be read.
    pub company_messages: bool,
    /// The configured scope.
    pub requested: Scope,
    /// The scope applied.
    pub effective: EffectiveScope,
    /// The extensions not covered, by id.
    pub not_covered: Vec<NotCovered>,
    /// How many extensions the account has (0 when unknown).
    pub total: usize,
    /// Operator-facing warnings (the company → self fallback, unknown ids in the list,
    /// an unreadable extension list).
    pub warnings: Vec<String>,
    /// When this was decided from RingCentral's answers; `None` before the first
    /// successful discovery.
    pub refreshed_at: Option<DateTime<Utc>>,
}

impl Coverage {
    /// The coverage before anything is known: the JWT user's extension only.
    pub fn initial(requested: Scope) -> Self {
        Self {
            extension_ids: vec![OWN_EXTENSION.to_owned()],
            company_call_log: false,
            company_messages: false,
            requested,
            effective: EffectiveScope::SelfOnly,
            not_covered: Vec::new(),
            total: 0,
            warnings: Vec::new(),
            refreshed_at: None,
        }
    }

    /// Whether `extension_id` is covered.
    pub fn covers(&self, extension_id: &str) -> bool {
        self.extension_ids.iter().any(|e| e == extension_id)
    }

    /// The not-covered extensions counted by reason, e.g. `"status Disabled" → 8`.
    pub fn reasons(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for n in &self.not_covered {
            *out.entry(n.reason.to_string()).or_insert(0) += 1;
        }
        out
    }

    /// One line for `check` and logs, e.g. `scope company: 146 of 200 extensions covered
    /// (20 type IvrMenu takes no voicemail, 8 status Disabled)`.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "scope {}: {} of {} extension(s) covered",
            self.effective,
            self.extension_ids.len(),
            self.total.max(self.extension_ids.len())
        );
        let reasons = self.reasons();
        if !reasons.is_empty() {
            let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            line.push_str(&format!(" (not covered: {})", parts.join(", ")));
        }
        line
    }
}

impl From<&Coverage> for crate::pipeline::sync::SyncScope {
    /// What the sync reads for this coverage: the covered extensions' message stores, and
    /// the call log at account level when permitted.
    fn from(c: &Coverage) -> Self {
        Self {
            extensions: c.extension_ids.clone(),
            company_call_log: c.company_call_log,
            settled: c.refreshed_at.is_some(),
        }
    }
}

/// Whether ringrelay treats an extension of this kind as having a mailbox: users (also
/// digital and flexible users), call queues (`Department`) and voicemail-only
/// extensions. RingCentral does not document which kinds take voicemail; this is the
/// conservative reading of the type names.
pub fn takes_voicemail(kind: &ExtensionKind) -> bool {
    matches!(
        kind,
        ExtensionKind::User
            | ExtensionKind::Department
            | ExtensionKind::Voicemail
            | ExtensionKind::DigitalUser
            | ExtensionKind::FlexibleUser
    )
}

/// The result of [`decide`]: the coverage (without `refreshed_at`) and the rows to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What is covered.
    pub coverage: Coverage,
    /// One row per listed extension, for `Store::replace_extensions`.
    pub records: Vec<ExtensionRecord>,
}

/// Decides coverage. An extension is covered when the scope includes it (company: all;
/// self: the JWT user's `own_id`; a list: those ids), the user may read its messages (its
/// own always; others need `company_messages`), it is `Enabled`, and its kind takes
/// voicemail ([`takes_voicemail`]). The first failing rule in that order is the reason.
/// `company` without company message access falls back to `self` with a warning; ids
/// of a configured list the account does not have are warned about.
pub fn decide(
    scope: &Scope,
    own_id: &str,
    extensions: &[Extension],
    permissions: &Permissions,
) -> Decision {
    let mut warnings = Vec::new();
    let effective = match scope {
        Scope::Company if permissions.company_messages => EffectiveScope::Company,
        Scope::Company => {
            warnings.push(format!(
                "scope \"company\" needs the JWT user to read every extension's messages \
                 (ReadMessages beyond its own extension, e.g. an administrator): covering only \
                 the JWT's own extension {own_id} (scope \"self\"); give the user that \
                 permission, or set scope = \"self\" to accept this"
            ));
            EffectiveScope::SelfOnly
        }
        Scope::SelfOnly => EffectiveScope::SelfOnly,
        Scope::Extensions(_) => EffectiveScope::Extensions,
    };
    let listed: HashSet<&str> = match scope {
        Scope::Extensions(ids) => ids.iter().map(String::as_str).collect(),
        _ => HashSet::new(),
    };
    if let Scope::Extensions(ids) = scope {
        let known: HashSet<&str> = extensions.iter().map(|e| e.id.as_str()).collect();
        for id in ids.iter().filter(|id| !known.contains(id.as_str())) {
            warnings.push(format!(
                "extension {id} in scope is not an extension of this account"
            ));
        }
    }
    let mut covered = Vec::new();
    let mut not_covered = Vec::new();
    let mut records = Vec::with_capacity(extensions.len());
    for e in extensions {
        let own = e.id == own_id;
        let reason = if match effective {
            EffectiveScope::Company => false,
            EffectiveScope::SelfOnly => !own,
            EffectiveScope::Extensions => !listed.contains(e.id.as_str()),
        } {
            Some(Reason::NotInScope(effective))
        } else if !own && !permissions.company_messages {
            Some(Reason::NotPermitted)
        } else if e.status != ExtensionStatus::Enabled {
            Some(Reason::Status(e.status.to_string()))
        } else if !takes_voicemail(&e.kind) {
            Some(Reason::Kind(e.kind.to_string()))
        } else {
            None
        };
        records.push(ExtensionRecord {
            extension_id: e.id.clone(),
            number: e.number.clone(),
            name: e.name.clone(),
            kind: e.kind.to_string(),
            status: e.status.to_string(),
            covered: reason.is_none(),
            reason: reason.as_ref().map(ToString::to_string),
        });
        match reason {
            None => covered.push(e.id.clone()),
            Some(reason) => not_covered.push(NotCovered {
                extension_id: e.id.clone(),
                reason,
            }),
        }
    }
    covered.sort();
    not_covered.sort_by(|a, b| a.extension_id.cmp(&b.extension_id));
    Decision {
        coverage: Coverage {
            extension_ids: covered,
            company_call_log: permissions.company_call_log,
            company_messages: permissions.company_messages,
            requested: scope.clone(),
            effective,
            not_covered,
            total: extensions.len(),
            warnings,
            refreshed_at: None,
        },
        records,
    }
}

/// Why a discovery step failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// RingCentral refused or failed.
    #[error("RingCentral: {0}")]
    Api(#[from] ApiError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Everything one account's discovery needs.
#[derive(Clone)]
pub struct DiscoveryContext {
    /// The account.
    pub account: AccountId,
    /// The configured scope.
    pub scope: Scope,
    /// RingCentral.
    pub api: Arc<dyn ExtensionApi>,
    /// Where the extension list is kept.
    pub store: Arc<dyn Store>,
    /// Time (the simulator's in tests).
    pub clock: Arc<dyn Clock>,
    /// How often to refresh (`keeper.extension_refresh`).
    pub refresh: Duration,
    /// First retry delay after a failure (doubling up to `refresh`).
    pub retry_base: Duration,
}

impl fmt::Debug for DiscoveryContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveryContext")
            .field("account", &self.account)
            .field("scope", &self.scope)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

/// One account's discovery: a thin step the task loops around.
#[derive(Debug)]
pub struct Discovery {
    ctx: DiscoveryContext,
    own_id: Option<String>,
}

impl Discovery {
    /// A discovery for `ctx`.
    pub fn new(ctx: DiscoveryContext) -> Self {
        Self { ctx, own_id: None }
    }

    /// Asks RingCentral (the user's extension once, its permissions, the extension list),
    /// decides, stores the list, and returns the coverage. A user whose permissions
    /// cannot be read is treated as having no company access; an extension list that
    /// cannot be read (403: no `ReadAccounts`) gives the JWT's own extension only, with
    /// a warning, and stores nothing.
    ///
    /// # Errors
    /// [`DiscoveryError`] for failures worth retrying (429, 5xx, transport, the store).
    pub async fn refresh(&mut self) -> Result<Coverage, DiscoveryError> {
        let account = self.ctx.account.clone();
        let permissions = match self.ctx.api.permissions().await {
            Ok(p) => p,
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(%account, error = %e, "cannot read the user's permissions; assuming no company access");
                Permissions {
                    company_call_log: false,
                    company_messages: false,
                    granted: Vec::new(),
                }
            }
        };
        let own_id = match &self.own_id {
            Some(id) => Some(id.clone()),
            None => match self.ctx.api.own_extension().await {
                Ok(e) => {
                    self.own_id = Some(e.id.clone());
                    Some(e.id)
                }
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(%account, error = %e, "cannot read the user's own extension");
                    None
                }
            },
        };
        let now = self.ctx.clock.now();
        let extensions = match self.ctx.api.extensions().await {
            Ok(list) => list,
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(%account, error = %e, "cannot list the account's extensions");
                let mut coverage = Coverage::initial(self.ctx.scope.clone());
                if let Some(id) = &own_id {
                    coverage.extension_ids = vec![id.clone()];
                }
                coverage.company_call_log = permissions.company_call_log;
                coverage.company_messages = permissions.company_messages;
                coverage.warnings.push(format!(
                    "cannot list the account's extensions ({e}); covering only the JWT's own \
                     extension: give the app the ReadAccounts permission"
                ));
                coverage.refreshed_at = Some(now);
                return Ok(coverage);
            }
        };
        let own = own_id.unwrap_or_else(|| OWN_EXTENSION.to_owned());
        let decision = decide(&self.ctx.scope, &own, &extensions, &permissions);
        self.ctx
            .store
            .replace_extensions(&account, &decision.records, now)
            .await?;
        let mut coverage = decision.coverage;
        coverage.refreshed_at = Some(now);
        for w in &coverage.warnings {
            tracing::warn!(%account, "{w}");
        }
        tracing::info!(%account, "{}", coverage.summary());
        Ok(coverage)
    }
}

/// The running discovery task of one account.
#[derive(Debug)]
pub struct DiscoveryHandle {
    coverage: watch::Receiver<Coverage>,
    trigger: Arc<Notify>,
    stop: CancellationToken,
    join: tokio::task::JoinHandle<()>,
}

impl DiscoveryHandle {
    /// Asks for a refresh now (an extension-list notification arrived). Several triggers
    /// before the refresh runs make one refresh.
    pub fn trigger(&self) {
        self.trigger.notify_one();
    }

    /// A receiver of every published [`Coverage`].
    pub fn subscribe(&self) -> watch::Receiver<Coverage> {
        self.coverage.clone()
    }

    /// The latest coverage.
    pub fn current(&self) -> Coverage {
        self.coverage.borrow().clone()
    }

    /// Stops the task and waits for it.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.join.await {
            tracing::warn!(error = %e, "extension discovery task ended abnormally");
        }
    }
}

/// Starts the discovery task of one account. It refreshes while `*active.borrow()` is
/// true (this replica holds the account's keeper lease): at once, then every
/// `ctx.refresh`, at once after [`DiscoveryHandle::trigger`], and after a failure with
/// backoff from `ctx.retry_base`. It stops when `shutdown` is cancelled or the handle
/// is stopped.
pub fn spawn(
    ctx: DiscoveryContext,
    active: watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> DiscoveryHandle {
    let (tx, rx) = watch::channel(Coverage::initial(ctx.scope.clone()));
    let trigger = Arc::new(Notify::new());
    let stop = shutdown.child_token();
    let join = tokio::spawn(run(
        Discovery::new(ctx),
        active,
        tx,
        Arc::clone(&trigger),
        stop.clone(),
    ));
    DiscoveryHandle {
        coverage: rx,
        trigger,
        stop,
        join,
    }
}

/// The store cursor where the replica that processes an extension-list event notes when
/// it arrived, so the replica running the account's discovery (maybe another one) sees it.
pub const EXTENSIONS_CHANGED_CURSOR: &str = "extensions.changed_at";

/// How often discovery looks at [`EXTENSIONS_CHANGED_CURSOR`] (a local store read).
const CHANGE_POLL: Duration = Duration::from_secs(5);

async fn changed_mark(discovery: &Discovery) -> Option<String> {
    discovery
        .ctx
        .store
        .cursor(Some(&discovery.ctx.account), EXTENSIONS_CHANGED_CURSOR)
        .await
        .ok()
        .flatten()
}

async fn run(
    mut discovery: Discovery,
    mut active: watch::Receiver<bool>,
    coverage: watch::Sender<Coverage>,
    trigger: Arc<Notify>,
    stop: CancellationToken,
) {
    let refresh = discovery.ctx.refresh;
    let mut backoff = Backoff::new(discovery.ctx.retry_base, refresh);
    loop {
        while !*active.borrow_and_update() {
            tokio::select! {
                () = stop.cancelled() => return,
                changed = active.changed() => if changed.is_err() { return },
            }
        }
        let seen = changed_mark(&discovery).await;
        let wait = tokio::select! {
            () = stop.cancelled() => return,
            result = discovery.refresh() => match result {
                Ok(c) => {
                    backoff.reset();
                    coverage.send_replace(c);
                    refresh
                }
                Err(e) => {
                    let delay = backoff.fail();
                    tracing::warn!(account = %discovery.ctx.account, error = %e, retry_in = ?delay, "extension discovery failed");
                    delay
                }
            },
        };
        // Real time, not the RingCentral clock: the simulator's clock advances by whatever
        // its sleepers wait, and an hour-long refresh timer on it would make simulated time
        // run away.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(deadline) => break,
                () = trigger.notified() => break,
                changed = active.changed() => if changed.is_err() { return } else { break },
                // An extension-list event processed on another replica.
                () = tokio::time::sleep(CHANGE_POLL) => {
                    if changed_mark(&discovery).await != seen {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(id: &str, kind: ExtensionKind, status: ExtensionStatus) -> Extension {
        Extension {
            id: id.into(),
            number: Some(id.into()),
            name: format!("Ext {id}"),
            kind,
            status,
        }
    }

    fn company() -> Vec<Extension> {
        use ExtensionKind as K;
        use ExtensionStatus as S;
        vec![
            ext("1", K::User, S::Enabled),
            ext("2", K::User, S::Enabled),
            ext("3", K::Department, S::Enabled),
            ext("4", K::IvrMenu, S::Enabled),
            ext("5", K::User, S::Disabled),
            ext("6", K::Voicemail, S::Enabled),
            ext("7", K::Other("Hologram".into()), S::Enabled),
            ext("8", K::User, S::NotActivated),
        ]
    }

    fn perms(company: bool) -> Permissions {
        Permissions {
            company_call_log: company,
            company_messages: company,
            granted: Vec::new(),
        }
    }

    #[test]
    fn company_scope_covers_every_enabled_extension_with_a_mailbox() {
        let d = decide(&Scope::Company, "1", &company(), &perms(true));
        let c = &d.coverage;
        assert_eq!(c.extension_ids, ["1", "2", "3", "6"]);
        assert_eq!(c.effective, EffectiveScope::Company);
        assert!(c.warnings.is_empty());
        assert!(c.company_call_log);
        let why: Vec<_> = c
            .not_covered
            .iter()
            .map(|n| (n.extension_id.as_str(), n.reason.to_string()))
            .collect();
        assert_eq!(
            why,
            [
                ("4", "type IvrMenu takes no voicemail".to_owned()),
                ("5", "status Disabled".to_owned()),
                ("7", "type Hologram takes no voicemail".to_owned()),
                ("8", "status NotActivated".to_owned()),
            ]
        );
        assert_eq!(d.records.len(), 8);
        let r5 = d.records.iter().find(|r| r.extension_id == "5").unwrap();
        assert!(!r5.covered);
        assert_eq!(r5.reason.as_deref(), Some("status Disabled"));
        assert_eq!(r5.kind, "User");
        assert_eq!(c.total, 8);
        assert!(
            c.summary().starts_with("scope company: 4 of 8"),
            "{}",
            c.summary()
        );
    }

    #[test]
    fn company_scope_without_permission_falls_back_to_self_with_a_warning() {
        let d = decide(&Scope::Company, "2", &company(), &perms(false));
        let c = &d.coverage;
        assert_eq!(c.extension_ids, ["2"]);
        assert_eq!(c.effective, EffectiveScope::SelfOnly);
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].contains("scope \"self\""),
            "{}",
            c.warnings[0]
        );
        assert!(!c.company_call_log);
        assert!(
            c.not_covered
                .iter()
                .all(|n| n.reason == Reason::NotInScope(EffectiveScope::SelfOnly))
        );
    }

    #[test]
    fn self_scope_covers_only_the_jwt_user() {
        let d = decide(&Scope::SelfOnly, "1", &company(), &perms(true));
        assert_eq!(d.coverage.extension_ids, ["1"]);
        assert!(d.coverage.warnings.is_empty());
        assert_eq!(d.coverage.not_covered.len(), 7);
    }

    #[test]
    fn an_explicit_list_is_filtered_by_status_kind_and_permission() {
        let scope = Scope::Extensions(vec![
            "1".into(),
            "3".into(),
            "4".into(),
            "5".into(),
            "99".into(),
        ]);
        let d = decide(&scope, "1", &company(), &perms(true));
        let c = &d.coverage;
        assert_eq!(c.extension_ids, ["1", "3"]);
        assert_eq!(c.effective, EffectiveScope::Extensions);
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("99"));
        let reason = |id: &str| {
            c.not_covered
                .iter()
                .find(|n| n.extension_id == id)
                .map(|n| n.reason.to_string())
        };
        assert_eq!(
            reason("2").as_deref(),
            Some("not in the configured extension list")
        );
        assert_eq!(
            reason("4").as_deref(),
            Some("type IvrMenu takes no voicemail")
        );
        // Without company access only the user's own extension of the list is covered.
        let d = decide(&scope, "1", &company(), &perms(false));
        assert_eq!(d.coverage.extension_ids, ["1"]);
        let r3 = d
            .coverage
            .not_covered
            .iter()
            .find(|n| n.extension_id == "3")
            .unwrap();
        assert_eq!(r3.reason, Reason::NotPermitted);
    }

    #[test]
    fn the_initial_coverage_is_the_own_extension_and_reasons_are_counted() {
        let c = Coverage::initial(Scope::Company);
        assert_eq!(c.extension_ids, [OWN_EXTENSION]);
        assert!(c.refreshed_at.is_none());
        let d = decide(&Scope::Company, "1", &company(), &perms(true));
        assert_eq!(d.coverage.reasons().get("status Disabled"), Some(&1));
        assert!(d.coverage.covers("3") && !d.coverage.covers("4"));
        let sync = crate::pipeline::sync::SyncScope::from(&d.coverage);
        assert_eq!(sync.extensions, d.coverage.extension_ids);
        assert!(sync.company_call_log);
    }
}
