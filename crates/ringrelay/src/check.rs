//! `ringrelay check`: validates the config, then for each account asks RingCentral the
//! questions an operator would (token, credential expiry, permissions, the extensions the
//! scope covers (warning when `company` falls back to `self`), subscriptions and
//! refused filters) and tests that our own webhook URL answers the validation handshake.
//! Prints a plain-language verdict per account; the exit status is non-zero when anything
//! is wrong.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::Utc;

use crate::config::{AccountSettings, Scope, Settings};
use crate::keeper::{explain, extensions};
use crate::ringcentral::{
    ApiError, CallLogQuery, CallLogScope, ClientSettings, Permissions, Priority, RingCentral,
    SubscriptionStatus, VoicemailQuery,
};
use crate::store::{self, OpenOptions};

/// One finding: fine, or a problem with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// True when this is a problem.
    pub problem: bool,
    /// What was found, in plain words.
    pub text: String,
}

impl Finding {
    fn ok(text: impl Into<String>) -> Self {
        Self {
            problem: false,
            text: text.into(),
        }
    }
    fn bad(text: impl Into<String>) -> Self {
        Self {
            problem: true,
            text: text.into(),
        }
    }
}

/// An account's findings.
#[derive(Debug, Clone)]
pub struct AccountReport {
    /// The account slug.
    pub account: String,
    /// What was found, in the order checked.
    pub findings: Vec<Finding>,
}

impl AccountReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|f| !f.problem)
    }
}

/// Sends a validation handshake to `url` the way RingCentral does and checks the answer.
async fn handshake(http: &reqwest::Client, url: &str) -> Finding {
    let token = uuid::Uuid::new_v4().to_string();
    match http
        .post(url)
        .header("Validation-Token", &token)
        .send()
        .await
    {
        Err(e) => Finding::bad(format!(
            "our webhook URL {url} did not answer the handshake ({e}); RingCentral must be able to reach it"
        )),
        Ok(r) => {
            let echoed = r
                .headers()
                .get("validation-token")
                .and_then(|v| v.to_str().ok())
                == Some(token.as_str());
            let json = r
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            if r.status().is_success() && echoed && json {
                Finding::ok(format!("our webhook URL {url} answers the handshake"))
            } else {
                Finding::bad(format!(
                    "our webhook URL {url} answered the handshake with HTTP {} (token echoed: {echoed}, JSON: {json}); is `ringrelay serve` running behind it?",
                    r.status().as_u16()
                ))
            }
        }
    }
}

/// Checks one account.
pub async fn check_account(settings: &Settings, account: &AccountSettings) -> AccountReport {
    let mut findings = Vec::new();
    let address = settings.server.webhook_url(&account.id).to_string();
    let client = match RingCentral::new(ClientSettings::from_account(account)) {
        Ok(c) => c,
        Err(e) => {
            findings.push(Finding::bad(format!("cannot build the client: {e}")));
            return AccountReport {
                account: account.id.to_string(),
                findings,
            };
        }
    };
    let now = Utc::now();
    match client.credential_expires_at() {
        Some(at) if at <= now => findings.push(Finding::bad(format!(
            "the JWT credential expired on {at}: create a new one in the developer console"
        ))),
        Some(at) if at - now < chrono::Duration::days(14) => findings.push(Finding::bad(format!(
            "the JWT credential expires on {at} (in {} days): replace it soon",
            (at - now).num_days()
        ))),
        Some(at) => findings.push(Finding::ok(format!(
            "the JWT credential is valid until {at}"
        ))),
        None => findings.push(Finding::ok("the JWT credential has no expiry")),
    }
    if let Err(e) = client.authenticate().await {
        findings.push(Finding::bad(format!(
            "cannot get an access token: {}",
            explain::api_error(&e, &address)
        )));
        return AccountReport {
            account: account.id.to_string(),
            findings,
        };
    }
    findings.push(Finding::ok("got an access token"));

    let mut query = CallLogQuery::account(now - chrono::Duration::hours(1), None);
    query.per_page = 1;
    query.priority = Priority::Backfill;
    match client.call_log(&query).await {
        Ok(_) => findings.push(Finding::ok("may read the company call log (ReadCallLog)")),
        Err(ApiError::Forbidden { code, .. }) => {
            // No FullCompanyCallLog: the call log can still be read per extension.
            query.scope = CallLogScope::Extension("~".to_owned());
            match client.call_log(&query).await {
                Ok(_) => findings.push(Finding::ok(format!(
                    "may read the user's own call log (ReadCallLog); the company call log is refused ({code}), so calls are read per extension"
                ))),
                Err(e) => findings.push(Finding::bad(format!(
                    "cannot read the call log (needs ReadCallLog): {}",
                    explain::api_error(&e, &address)
                ))),
            }
        }
        Err(e) => findings.push(Finding::bad(format!(
            "cannot read the company call log (needs ReadCallLog and a user allowed to see the company's calls): {}",
            explain::api_error(&e, &address)
        ))),
    }
    match client
        .voicemails(&VoicemailQuery {
            extension_id: "~".to_owned(),
            date_from: now - chrono::Duration::hours(1),
            date_to: None,
            per_page: 1,
            priority: Priority::Backfill,
        })
        .await
    {
        Ok(_) => findings.push(Finding::ok("may read the message store (ReadMessages)")),
        Err(e) => findings.push(Finding::bad(format!(
            "cannot read voicemail (needs ReadMessages): {}",
            explain::api_error(&e, &address)
        ))),
    }

    findings.extend(coverage_findings(&client, &account.scope).await);

    match client.list_subscriptions().await {
        Err(e) => findings.push(Finding::bad(format!(
            "cannot list subscriptions: {}",
            explain::api_error(&e, &address)
        ))),
        Ok(subs) => {
            let ours: Vec<_> = subs
                .iter()
                .filter(|s| s.address.as_deref() == Some(address.as_str()))
                .collect();
            let others = subs.len() - ours.len();
            if ours.is_empty() {
                findings.push(Finding::bad(format!(
                    "no subscription points at {address}: start `ringrelay serve` (its keeper creates one)"
                )));
            }
            for s in &ours {
                let expires = s.expires_at.to_rfc3339();
                let line = format!("subscription {} is {:?}, expires {expires}", s.id, s.status);
                if s.status == SubscriptionStatus::Active {
                    findings.push(Finding::ok(line));
                } else {
                    findings.push(Finding::bad(format!(
                        "{line}: the keeper of a running `ringrelay serve` recreates it; `ringrelay subscriptions recreate --account {}` forces it",
                        account.id
                    )));
                }
                for f in &s.disabled_filters {
                    findings.push(Finding::ok(explain::refused_filter(
                        &crate::store::DisabledFilter {
                            filter: f.filter.clone(),
                            reason: f.reason.clone(),
                        },
                    )));
                }
            }
            // Several subscriptions are expected when extensions' voicemail filters are
            // spread over them; sharing a filter is not.
            let times = crate::keeper::pack::overlap(&ours);
            if times > 1 {
                findings.push(Finding::bad(format!(
                    "{} subscriptions point at {address}: some events arrive {times} times; the keeper deletes the strays",
                    ours.len(),
                )));
            } else if ours.len() > 1 {
                findings.push(Finding::ok(format!(
                    "{} subscriptions point at {address}, sharing no filter (extensions' voicemail filters spread over them)",
                    ours.len()
                )));
            }
            if others > 0 {
                findings.push(Finding::ok(format!(
                    "{others} other subscription(s) of this app point elsewhere (left alone)"
                )));
            }
        }
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build();
    match http {
        Ok(http) => findings.push(handshake(&http, &address).await),
        Err(e) => findings.push(Finding::bad(format!("cannot build an HTTP client: {e}"))),
    }
    AccountReport {
        account: account.id.to_string(),
        findings,
    }
}

/// What the token's permissions allow and which extensions the configured scope covers:
/// the same probe and rule as extension discovery ([`extensions::decide`]), without
/// writing the store. A `company` scope that falls back to `self` is a problem, with
/// what to do.
pub async fn coverage_findings(client: &RingCentral, scope: &Scope) -> Vec<Finding> {
    let mut findings = Vec::new();
    let permissions = match client.permissions().await {
        Ok(p) => p,
        Err(e) => {
            findings.push(Finding::bad(format!(
                "cannot read the user's permissions (authz-profile): {e}; assuming no company-wide access"
            )));
            Permissions {
                company_call_log: false,
                company_messages: false,
                granted: Vec::new(),
            }
        }
    };
    findings.push(if permissions.company_call_log {
        Finding::ok("the user may read the company call log (FullCompanyCallLog)")
    } else {
        Finding::ok(
            "the user may not read the company call log (no FullCompanyCallLog): calls are read per extension",
        )
    });
    findings.push(if permissions.company_messages {
        Finding::ok("the user may read every extension's messages (voicemail of every extension)")
    } else {
        Finding::ok("the user may read only its own extension's messages")
    });
    let own = match client.current_extension().await {
        Ok(e) => e.id,
        Err(_) => extensions::OWN_EXTENSION.to_owned(),
    };
    match client.list_extensions().await {
        Ok(list) => {
            let decision = extensions::decide(scope, &own, &list, &permissions);
            let c = decision.coverage;
            let line = format!("scope {scope} configured; {}", c.summary());
            findings.push(if c.extension_ids.is_empty() {
                Finding::bad(format!("{line}: nothing is covered"))
            } else {
                Finding::ok(line)
            });
            for w in c.warnings {
                findings.push(Finding::bad(format!("WARNING: {w}")));
            }
        }
        Err(e) => findings.push(Finding::bad(format!(
            "cannot list the account's extensions (needs ReadAccounts): {e}; only the JWT's own extension can be covered"
        ))),
    }
    findings
}

/// Runs every check and renders the verdicts, with `true` when all is well.
pub async fn run(settings: &Settings) -> (String, bool) {
    let mut out = String::new();
    let mut all_ok = true;
    let _ = writeln!(
        out,
        "config: ok ({} account(s), {} sink(s))",
        settings.accounts.len(),
        settings.sinks.len()
    );
    match store::open(&settings.store.url, &OpenOptions::default()).await {
        Ok(s) => match s.ping().await {
            Ok(()) => {
                let _ = writeln!(out, "store: ok ({})", settings.store.url.redacted());
            }
            Err(e) => {
                all_ok = false;
                let _ = writeln!(out, "store: PROBLEM: {e}");
            }
        },
        Err(e) => {
            all_ok = false;
            let _ = writeln!(
                out,
                "store: PROBLEM: cannot open {}: {e}",
                settings.store.url.redacted()
            );
        }
    }
    if settings.accounts.is_empty() {
        all_ok = false;
        let _ = writeln!(
            out,
            "accounts: PROBLEM: none configured; add an [[accounts]] table"
        );
    }
    for account in &settings.accounts {
        let report = check_account(settings, account).await;
        let verdict = if report.ok() { "OK" } else { "PROBLEMS" };
        all_ok &= report.ok();
        let _ = writeln!(out, "\naccount {}: {verdict}", report.account);
        for f in &report.findings {
            let mark = if f.problem { "✗" } else { "✓" };
            let _ = writeln!(out, "  {mark} {}", f.text);
        }
    }
    (out, all_ok)
}
