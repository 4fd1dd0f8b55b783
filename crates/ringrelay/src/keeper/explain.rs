//! Plain-words explanations of a keeper's state and errors, for `status` and `check`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::plan::SUBSCRIPTION_LIMIT;
use super::task::{CoverageState, ExtensionCoverage, KeeperStatus};
use crate::ringcentral::ApiError;
use crate::store::DisabledFilter;

/// Explains an API error from creating or renewing a subscription pointing at `address`.
pub fn api_error(err: &ApiError, address: &str) -> String {
    match err {
        ApiError::WebhookValidationFailed { code, message } => format!(
            "RingCentral could not validate {address} ({code}: {message}) — check that the \
             URL is reachable from the internet and answers the Validation-Token handshake \
             within 3 s"
        ),
        ApiError::SubscriptionLimit { message } => format!(
            "RingCentral's limit of subscriptions per user and app is reached (SUB-505: \
             {message})"
        ),
        ApiError::InvalidFilters { message } => {
            format!("RingCentral refused an event filter (SUB-508): {message}")
        }
        ApiError::AuthRejected { .. } | ApiError::Unauthorized { .. } => {
            format!("{err} — check the account's client_id, client_secret and jwt")
        }
        ApiError::Forbidden { .. } => format!(
            "{err} — the app or the JWT user lacks a permission (WebhookSubscriptions, \
             ReadCallLog, …)"
        ),
        ApiError::RateLimited { retry_after, .. } => format!(
            "RingCentral is rate limiting this app; retrying after {}",
            human(*retry_after)
        ),
        ApiError::Transport(e) => format!("RingCentral could not be reached: {e}"),
        other => other.to_string(),
    }
}

/// Explains why a filter was refused, and what covers for it.
pub fn refused_filter(f: &DisabledFilter) -> String {
    let covered = if f.filter.contains("call-log") {
        ": call-log sync covers completed calls"
    } else if f.filter.contains("/subscription/") {
        ": renewal runs on the keeper's own schedule"
    } else {
        ""
    };
    format!("filter {} refused ({}){covered}", f.filter, f.reason)
}

/// Explains how the extensions' voicemail filters are spread, and who is left out by
/// RingCentral's subscription limit.
pub fn extensions(c: &ExtensionCoverage) -> Vec<String> {
    let mut lines = vec![format!(
        "voicemail of {} of {} extensions covered by {} subscription(s) (at most {} filters \
         each)",
        c.covered, c.wanted, c.subscriptions, c.max_filters_per_subscription
    )];
    if let Some(over) = &c.over_limit {
        let shown: Vec<&str> = over.extensions.iter().take(5).map(String::as_str).collect();
        let more = over.extensions.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        lines.push(format!(
            "NOT covered: voicemail of {} extension(s) ({}{more}): the packing needs {} \
             subscriptions but RingCentral allows {} for this account's user and app ({} per \
             user and app, minus {} that are not ringrelay's) — raise \
             keeper.max_filters_per_subscription or remove other subscriptions of this user",
            over.extensions.len(),
            shown.join(", "),
            over.needed,
            over.allowed,
            SUBSCRIPTION_LIMIT,
            SUBSCRIPTION_LIMIT.saturating_sub(over.allowed)
        ));
    }
    lines
}

/// Formats a duration as e.g. `2h 5m` (seconds only under a minute).
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn since(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    human((now - t).to_std().unwrap_or_default())
}

/// Explains a keeper's status in a few lines, as of `now`.
pub fn status(s: &KeeperStatus, now: DateTime<Utc>) -> Vec<String> {
    let mut lines = Vec::new();
    match (&s.state, &s.subscription) {
        (CoverageState::Covered, Some(sub)) => {
            let more = match s.subscriptions.len() {
                0 | 1 => String::new(),
                n => format!(" (and {} more for extensions' voicemail)", n - 1),
            };
            lines.push(format!(
                "covered: subscription {} is Active{more}, expires in {}, renewal due in {}",
                sub.id,
                since(sub.expires_at, now),
                since(sub.renew_at, now)
            ));
        }
        (CoverageState::Covered, None) | (CoverageState::Uncovered, _) => {
            lines.push("NOT covered: no Active subscription".to_owned());
        }
        (CoverageState::Starting, _) => lines.push("starting".to_owned()),
        (CoverageState::Standby { holder }, _) => lines.push(format!(
            "standby: another replica ({holder}) keeps this account"
        )),
    }
    if let Some(gap) = &s.open_gap {
        lines.push(format!(
            "gap open since {} ({} ago, cause: {}): events in it will be backfilled",
            gap.from.to_rfc3339(),
            since(now, gap.from),
            gap.cause
        ));
    }
    if let Some(ext) = &s.extensions {
        lines.extend(extensions(ext));
    }
    for f in &s.refused_filters {
        lines.push(refused_filter(f));
    }
    if let Some(e) = &s.last_error {
        lines.push(format!("last error: {e}"));
    }
    if let Some(at) = s.next_attempt
        && s.failures > 0
    {
        lines.push(format!(
            "retrying in {} (failure {} in a row)",
            since(at, now),
            s.failures
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_failures_name_the_url() {
        let e = ApiError::WebhookValidationFailed {
            code: "SUB-520".into(),
            message: "WebHook responds with incorrect HTTP status".into(),
        };
        let s = api_error(&e, "https://r.example/webhooks/ringcentral/acme");
        assert!(s.contains("could not validate https://r.example/webhooks/ringcentral/acme"));
        assert!(s.contains("reachable from the internet"));
    }

    #[test]
    fn a_refused_call_log_filter_says_what_covers_it() {
        let f = DisabledFilter {
            filter: "/restapi/v1.0/account/~/extension/~/call-log".into(),
            reason: "SUB-508".into(),
        };
        assert_eq!(
            refused_filter(&f),
            "filter /restapi/v1.0/account/~/extension/~/call-log refused (SUB-508): call-log sync covers completed calls"
        );
    }

    #[test]
    fn extensions_left_out_by_the_limit_are_named_with_the_reason() {
        let c = ExtensionCoverage {
            wanted: 200,
            covered: 145,
            subscriptions: 3,
            max_filters_per_subscription: 50,
            over_limit: Some(crate::keeper::pack::OverLimit {
                needed: 5,
                allowed: 3,
                extensions: (0..55).map(|i| format!("{}", 1000 + i)).collect(),
            }),
        };
        let lines = extensions(&c);
        assert_eq!(
            lines[0],
            "voicemail of 145 of 200 extensions covered by 3 subscription(s) (at most 50 filters each)"
        );
        assert!(
            lines[1].starts_with(
                "NOT covered: voicemail of 55 extension(s) (1000, 1001, 1002, 1003, 1004 and 50 more): \
                 the packing needs 5 subscriptions but RingCentral allows 3"
            ),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("minus 27 that are not ringrelay's"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_secs(7_500)), "2h 5m");
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 3_600)), "3d 1h");
    }
}
