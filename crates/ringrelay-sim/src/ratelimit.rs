//! Per-(user, group) request limits with RingCentral's penalty rule: once a user exceeds
//! a group's limit, every request in that group gets 429 until the penalty has passed
//! with no request, and each request sent during the penalty restarts it (fact sheet §6).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::config::RateLimits;

/// RingCentral's usage-plan groups (`x-throttling-group` in the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// Light: reads such as list/get/renew subscription, message store.
    Light,
    /// Medium: create/update/delete subscription, message content.
    Medium,
    /// Heavy: call log, call-log sync, active calls.
    Heavy,
    /// Auth: the token and revoke endpoints.
    Auth,
}

impl Group {
    /// The `X-Rate-Limit-Group` value (lowercase, as RingCentral's example shows).
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Light => "light",
            Self::Medium => "medium",
            Self::Heavy => "heavy",
            Self::Auth => "auth",
        }
    }

    /// The group of an API operation, from its method and path (the spec's table).
    pub fn of(method: &str, path: &str) -> Option<Self> {
        if path.starts_with("/sim/") || path == "/sim" {
            return None;
        }
        if path.starts_with("/restapi/oauth/") {
            return Some(Self::Auth);
        }
        if path.contains("/call-log") || path.contains("/active-calls") {
            return Some(Self::Heavy);
        }
        if path.contains("/message-store/") && path.contains("/content/") {
            return Some(Self::Medium);
        }
        if let Some(group) = Self::of_extension_path(path) {
            return Some(group);
        }
        if path.starts_with("/restapi/v1.0/subscription") {
            let renew = path.ends_with("/renew");
            return Some(match method {
                "GET" => Self::Light,
                "POST" if renew => Self::Light,
                _ => Self::Medium,
            });
        }
        Some(Self::Light)
    }

    /// The extension list and authorization profile are Medium; one extension and the
    /// permission check are Light (the spec's `x-throttling-group`).
    fn of_extension_path(path: &str) -> Option<Self> {
        let rest = path
            .trim_end_matches('/')
            .strip_prefix("/restapi/v1.0/account/")?;
        let segs: Vec<&str> = rest.split('/').skip(1).collect();
        match segs.as_slice() {
            ["extension"] | ["extension", _, "authz-profile"] => Some(Self::Medium),
            ["extension", _] | ["extension", _, "authz-profile", "check"] => Some(Self::Light),
            _ => None,
        }
    }

    fn limit(self, limits: &RateLimits) -> u32 {
        match self {
            Self::Light => limits.light,
            Self::Medium => limits.medium,
            Self::Heavy => limits.heavy,
            Self::Auth => limits.auth,
        }
    }
}

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; `remaining` requests are left in the window.
    Allowed {
        /// The group's limit.
        limit: u32,
        /// Requests left in the current window.
        remaining: u32,
    },
    /// 429: wait `retry_after_secs`.
    Limited {
        /// The group's limit.
        limit: u32,
        /// Seconds until the penalty ends if nothing else is sent.
        retry_after_secs: u64,
    },
}

#[derive(Debug, Clone)]
struct Bucket {
    window_start: DateTime<Utc>,
    count: u32,
    penalty_until: Option<DateTime<Utc>>,
}

/// The counters of every (user, group).
#[derive(Debug, Default)]
pub struct Limiter {
    buckets: HashMap<(String, Group), Bucket>,
}

impl Limiter {
    /// Counts one request by `user` in `group` at `now` and decides.
    pub fn check(
        &mut self,
        user: &str,
        group: Group,
        limits: &RateLimits,
        now: DateTime<Utc>,
    ) -> Decision {
        let limit = group.limit(limits);
        let window = chrono::Duration::from_std(limits.window).unwrap_or(chrono::Duration::MAX);
        let penalty = chrono::Duration::from_std(limits.penalty).unwrap_or(chrono::Duration::MAX);
        let retry_after_secs = limits.penalty.as_secs().max(1);
        let bucket = self
            .buckets
            .entry((user.to_owned(), group))
            .or_insert(Bucket {
                window_start: now,
                count: 0,
                penalty_until: None,
            });
        if !limits.enabled {
            return Decision::Allowed {
                limit,
                remaining: limit,
            };
        }
        if bucket.penalty_until.is_some_and(|until| now < until) {
            bucket.penalty_until = Some(now + penalty);
            return Decision::Limited {
                limit,
                retry_after_secs,
            };
        }
        if bucket.penalty_until.is_some() || now - bucket.window_start >= window {
            bucket.window_start = now;
            bucket.count = 0;
            bucket.penalty_until = None;
        }
        bucket.count += 1;
        if bucket.count > limit {
            bucket.penalty_until = Some(now + penalty);
            return Decision::Limited {
                limit,
                retry_after_secs,
            };
        }
        Decision::Allowed {
            limit,
            remaining: limit - bucket.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(auth: u32) -> RateLimits {
        RateLimits {
            auth,
            ..RateLimits::default()
        }
    }

    #[test]
    fn the_request_over_the_limit_is_refused_and_counts_down_remaining_before() {
        let mut l = Limiter::default();
        let now = Utc::now();
        let lim = limits(2);
        assert_eq!(
            l.check("u", Group::Auth, &lim, now),
            Decision::Allowed {
                limit: 2,
                remaining: 1
            }
        );
        assert_eq!(
            l.check("u", Group::Auth, &lim, now),
            Decision::Allowed {
                limit: 2,
                remaining: 0
            }
        );
        assert!(matches!(
            l.check("u", Group::Auth, &lim, now),
            Decision::Limited { .. }
        ));
        // Other users and groups are counted separately.
        assert!(matches!(
            l.check("v", Group::Auth, &lim, now),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            l.check("u", Group::Light, &lim, now),
            Decision::Allowed { .. }
        ));
    }

    #[test]
    fn a_request_during_the_penalty_restarts_it() {
        let mut l = Limiter::default();
        let t0 = Utc::now();
        let lim = limits(1);
        l.check("u", Group::Auth, &lim, t0);
        assert!(matches!(
            l.check("u", Group::Auth, &lim, t0),
            Decision::Limited { .. }
        ));
        let t1 = t0 + chrono::Duration::seconds(50);
        assert!(matches!(
            l.check("u", Group::Auth, &lim, t1),
            Decision::Limited { .. }
        ));
        // 70 s after the first 429 but only 20 s after the restart: still limited.
        let t2 = t0 + chrono::Duration::seconds(70);
        assert!(matches!(
            l.check("u", Group::Auth, &lim, t2),
            Decision::Limited { .. }
        ));
        // A full quiet penalty later, allowed again with a fresh window.
        let t3 = t2 + chrono::Duration::seconds(61);
        assert_eq!(
            l.check("u", Group::Auth, &lim, t3),
            Decision::Allowed {
                limit: 1,
                remaining: 0
            }
        );
    }

    #[test]
    fn groups_follow_the_spec_table() {
        assert_eq!(Group::of("POST", "/restapi/oauth/token"), Some(Group::Auth));
        assert_eq!(
            Group::of("POST", "/restapi/v1.0/subscription"),
            Some(Group::Medium)
        );
        assert_eq!(
            Group::of("GET", "/restapi/v1.0/subscription/x"),
            Some(Group::Light)
        );
        assert_eq!(
            Group::of("POST", "/restapi/v1.0/subscription/x/renew"),
            Some(Group::Light)
        );
        assert_eq!(
            Group::of("DELETE", "/restapi/v1.0/subscription/x"),
            Some(Group::Medium)
        );
        assert_eq!(
            Group::of("GET", "/restapi/v1.0/account/~/call-log"),
            Some(Group::Heavy)
        );
        assert_eq!(Group::of("POST", "/sim/advance"), None);
        assert_eq!(
            Group::of("GET", "/restapi/v1.0/account/~/extension"),
            Some(Group::Medium)
        );
        assert_eq!(
            Group::of("GET", "/restapi/v1.0/account/~/extension/~/authz-profile"),
            Some(Group::Medium)
        );
        assert_eq!(
            Group::of("GET", "/restapi/v1.0/account/~/extension/12"),
            Some(Group::Light)
        );
        assert_eq!(
            Group::of("GET", "/restapi/v1.0/account/~/extension/~/message-store"),
            Some(Group::Light)
        );
    }
}
