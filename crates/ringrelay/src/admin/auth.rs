//! Admin authentication: `Authorization: Bearer <admin_token>` for the API, or the session
//! cookie the status page's login form sets. Both compare in constant time; the cookie holds
//! a digest of the token, never the token itself.

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::config::Secret;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "ringrelay_admin";

/// The configured admin token, or none (the admin API and status page are then off).
#[derive(Clone, Debug)]
pub struct AdminAuth {
    token: Option<Secret>,
    secure_cookie: bool,
}

/// What a request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The right token (header or cookie).
    Allowed,
    /// Nothing presented.
    Missing,
    /// Something presented, and it is wrong.
    Wrong,
    /// No admin token is configured: admin access is off.
    Disabled,
}

impl AdminAuth {
    /// From `server.admin_token` (empty = off); `secure_cookie` marks the cookie `Secure`
    /// (set it when the public URL is HTTPS).
    pub fn new(token: Option<Secret>, secure_cookie: bool) -> Self {
        Self {
            token: token.filter(|t| !t.is_empty()),
            secure_cookie,
        }
    }

    /// Whether admin access is configured.
    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    fn session_value(token: &str) -> String {
        let digest = Sha256::digest(format!("ringrelay-admin-session:{token}").as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Checks a presented token in constant time.
    pub fn check_token(&self, presented: &str) -> AuthOutcome {
        let Some(token) = &self.token else {
            return AuthOutcome::Disabled;
        };
        if bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
            AuthOutcome::Allowed
        } else {
            AuthOutcome::Wrong
        }
    }

    /// Checks a request's bearer header, then its session cookie.
    pub fn check(&self, headers: &HeaderMap) -> AuthOutcome {
        let Some(token) = &self.token else {
            return AuthOutcome::Disabled;
        };
        if let Some(value) = headers.get(AUTHORIZATION) {
            let presented = value.to_str().ok().and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
            return presented.map_or(AuthOutcome::Wrong, |p| self.check_token(p.trim()));
        }
        let expected = Self::session_value(token.expose());
        let mut presented_any = false;
        for cookie in headers.get_all(COOKIE) {
            let Ok(cookie) = cookie.to_str() else {
                continue;
            };
            for pair in cookie.split(';') {
                if let Some(value) = pair.trim().strip_prefix(&format!("{COOKIE_NAME}=")) {
                    presented_any = true;
                    if bool::from(value.as_bytes().ct_eq(expected.as_bytes())) {
                        return AuthOutcome::Allowed;
                    }
                }
            }
        }
        if presented_any {
            AuthOutcome::Wrong
        } else {
            AuthOutcome::Missing
        }
    }

    /// The `Set-Cookie` value that logs a browser in (call only after `check_token`).
    pub fn login_cookie(&self) -> Option<String> {
        let token = self.token.as_ref()?;
        Some(format!(
            "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200{}",
            Self::session_value(token.expose()),
            if self.secure_cookie { "; Secure" } else { "" }
        ))
    }

    /// The `Set-Cookie` value that logs a browser out.
    pub fn logout_cookie(&self) -> String {
        format!(
            "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.secure_cookie { "; Secure" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn auth() -> AdminAuth {
        AdminAuth::new(Some(Secret::new("s3cret")), true)
    }

    fn headers(name: axum::http::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).expect("header"));
        h
    }

    #[test]
    fn bearer_right_wrong_missing() {
        let a = auth();
        assert_eq!(a.check(&HeaderMap::new()), AuthOutcome::Missing);
        assert_eq!(
            a.check(&headers(AUTHORIZATION, "Bearer s3cret")),
            AuthOutcome::Allowed
        );
        assert_eq!(
            a.check(&headers(AUTHORIZATION, "Bearer s3cre")),
            AuthOutcome::Wrong
        );
        assert_eq!(
            a.check(&headers(AUTHORIZATION, "Basic s3cret")),
            AuthOutcome::Wrong
        );
    }

    #[test]
    fn cookie_holds_a_digest_not_the_token() {
        let a = auth();
        let set = a.login_cookie().expect("enabled");
        assert!(!set.contains("s3cret"));
        assert!(set.contains("Secure") && set.contains("HttpOnly"));
        let value = set.split(';').next().expect("pair");
        assert_eq!(
            a.check(&headers(COOKIE, &format!("x=1; {value}"))),
            AuthOutcome::Allowed
        );
        assert_eq!(
            a.check(&headers(COOKIE, &format!("{COOKIE_NAME}=abc"))),
            AuthOutcome::Wrong
        );
    }

    #[test]
    fn empty_token_disables() {
        let a = AdminAuth::new(Some(Secret::new("")), false);
        assert!(!a.enabled());
        assert_eq!(
            a.check(&headers(AUTHORIZATION, "Bearer ")),
            AuthOutcome::Disabled
        );
    }
}
