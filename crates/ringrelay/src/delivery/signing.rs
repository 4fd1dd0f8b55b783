//! Standard Webhooks signing (standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` headers, `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed
//! with the base64 bytes of a `whsec_…` secret. While a secret rotates, every configured
//! secret signs and the signatures are space-separated; a receiver accepts any one.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// The header carrying the message id (the activity id, stable across retries and replays).
pub const HEADER_ID: &str = "webhook-id";
/// The header carrying the Unix time (seconds) the attempt was signed.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying the space-separated `v1,…` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// The default tolerance of [`Verifier`]: five minutes either side, as the spec suggests.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Why a secret or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The secret is not `whsec_` followed by base64.
    #[error("invalid secret: {0}")]
    InvalidSecret(String),
    /// No secret was given.
    #[error("no signing secret configured")]
    NoSecret,
    /// The timestamp header is not an integer.
    #[error("invalid webhook-timestamp {0:?}")]
    InvalidTimestamp(String),
    /// The timestamp is outside the tolerance window (replayed or badly skewed).
    #[error("webhook-timestamp {timestamp} is more than {tolerance}s away from now ({now})")]
    OutsideTolerance {
        /// The header's value.
        timestamp: i64,
        /// The verifier's clock.
        now: i64,
        /// The window, in seconds.
        tolerance: i64,
    },
    /// No `v1` signature matched.
    #[error("no matching v1 signature")]
    NoMatch,
}

/// A decoded `whsec_` key.
#[derive(Clone)]
struct Key(Vec<u8>);

impl Key {
    fn parse(secret: &str) -> Result<Self, SignatureError> {
        let raw = secret
            .strip_prefix("whsec_")
            .ok_or_else(|| SignatureError::InvalidSecret("must start with whsec_".to_owned()))?;
        let bytes = STANDARD
            .decode(raw)
            .map_err(|e| SignatureError::InvalidSecret(format!("not base64 after whsec_ ({e})")))?;
        if bytes.is_empty() {
            return Err(SignatureError::InvalidSecret("empty key".to_owned()));
        }
        Ok(Self(bytes))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

/// Signs outgoing messages with every configured secret.
#[derive(Debug, Clone)]
pub struct Signer {
    keys: Vec<Key>,
}

impl Signer {
    /// A signer for `secrets` (newest first by convention; all of them sign).
    ///
    /// # Errors
    /// [`SignatureError::NoSecret`] for an empty list; [`SignatureError::InvalidSecret`]
    /// when a secret is not `whsec_` + base64.
    pub fn new(secrets: &[Secret]) -> Result<Self, SignatureError> {
        Self::from_strs(secrets.iter().map(Secret::expose))
    }

    /// As [`Signer::new`], from plain strings.
    ///
    /// # Errors
    /// As [`Signer::new`].
    pub fn from_strs<'a>(
        secrets: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, SignatureError> {
        let keys = secrets
            .into_iter()
            .map(Key::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SignatureError::NoSecret);
        }
        Ok(Self { keys })
    }

    /// The `webhook-signature` value for a message: one `v1,<base64>` per secret, separated
    /// by single spaces.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.keys
            .iter()
            .map(|k| format!("v1,{}", STANDARD.encode(k.mac(id, timestamp, body))))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Checks Standard Webhooks signatures (used by the demo CRM and by tests; CRM-side code in
/// `docs/consuming.md` does the same).
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<Key>,
    tolerance: i64,
}

impl Verifier {
    /// A verifier accepting a signature made with any of `secrets`, with the default
    /// five-minute tolerance.
    ///
    /// # Errors
    /// As [`Signer::from_strs`].
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Result<Self, SignatureError> {
        let Signer { keys } = Signer::from_strs(secrets)?;
        Ok(Self {
            keys,
            tolerance: DEFAULT_TOLERANCE_SECS,
        })
    }

    /// Sets the tolerance window, in seconds either side of `now`.
    #[must_use]
    pub fn with_tolerance(mut self, seconds: i64) -> Self {
        self.tolerance = seconds.max(0);
        self
    }

    /// Verifies the three header values against `body` at Unix time `now`.
    ///
    /// # Errors
    /// [`SignatureError::InvalidTimestamp`], [`SignatureError::OutsideTolerance`] or
    /// [`SignatureError::NoMatch`].
    pub fn verify(
        &self,
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::InvalidTimestamp(timestamp.to_owned()))?;
        if (now - ts).abs() > self.tolerance {
            return Err(SignatureError::OutsideTolerance {
                timestamp: ts,
                now,
                tolerance: self.tolerance,
            });
        }
        let candidates: Vec<Vec<u8>> = signature
            .split(' ')
            .filter_map(|s| s.split_once(','))
            .filter(|(v, _)| *v == "v1")
            .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
            .collect();
        let mut matched = subtle::Choice::from(0);
        for key in &self.keys {
            let expected = key.mac(id, ts, body);
            for c in &candidates {
                matched |= expected.as_slice().ct_eq(c.as_slice());
            }
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(SignatureError::NoMatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The reference vector of the Standard Webhooks spec test suite
    // (standard-webhooks/standard-webhooks, libraries/*/tests).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_spec_reference_vector() {
        let s = Signer::from_strs([SECRET]).unwrap();
        assert_eq!(s.sign(ID, TS, BODY), EXPECTED);
    }

    #[test]
    fn verifies_the_reference_vector_and_rejects_tampering() {
        let v = Verifier::new([SECRET]).unwrap();
        let ts = TS.to_string();
        v.verify(ID, &ts, EXPECTED, BODY, TS + 10).unwrap();
        assert_eq!(
            v.verify(ID, &ts, EXPECTED, br#"{"test": 2432232315}"#, TS),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            v.verify("msg_other", &ts, EXPECTED, BODY, TS),
            Err(SignatureError::NoMatch)
        );
        assert!(matches!(
            v.verify(ID, &ts, EXPECTED, BODY, TS + 301),
            Err(SignatureError::OutsideTolerance { .. })
        ));
        assert!(matches!(
            v.verify(ID, "soon", EXPECTED, BODY, TS),
            Err(SignatureError::InvalidTimestamp(_))
        ));
        assert_eq!(
            v.verify(
                ID,
                &ts,
                "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                BODY,
                TS
            ),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn rotation_signs_with_every_secret_and_either_verifies() {
        let new = "whsec_dGhlIG5ldyBzZWNyZXQga2V5IGJ5dGVz";
        let s = Signer::from_strs([new, SECRET]).unwrap();
        let header = s.sign(ID, TS, BODY);
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], EXPECTED);
        let ts = TS.to_string();
        Verifier::new([SECRET])
            .unwrap()
            .verify(ID, &ts, &header, BODY, TS)
            .unwrap();
        Verifier::new([new])
            .unwrap()
            .verify(ID, &ts, &header, BODY, TS)
            .unwrap();
        assert_eq!(
            Verifier::new(["whsec_b3RoZXI="])
                .unwrap()
                .verify(ID, &ts, &header, BODY, TS),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert!(matches!(
            Signer::from_strs(["nope"]),
            Err(SignatureError::InvalidSecret(_))
        ));
        assert!(matches!(
            Signer::from_strs(["whsec_!!!"]),
            Err(SignatureError::InvalidSecret(_))
        ));
        assert!(matches!(
            Signer::from_strs(["whsec_"]),
            Err(SignatureError::InvalidSecret(_))
        ));
        assert_eq!(Signer::from_strs([]).unwrap_err(), SignatureError::NoSecret);
    }
}
