//! The simulated accounts: who exists at the fake RingCentral (accounts, their extensions,
//! and the JWT credential that logs in as one user of an account).

use serde::{Deserialize, Serialize};

/// What kind of extension (RingCentral's `ExtensionInfo.type` values we simulate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExtensionKind {
    /// A person.
    User,
    /// A call queue / department.
    Department,
    /// An IVR menu.
    IvrMenu,
}

/// One extension of a simulated account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimExtension {
    /// Numeric extension id, e.g. `"62295327016"`.
    pub id: String,
    /// Short extension number, e.g. `"101"`.
    pub number: String,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: ExtensionKind,
    /// Direct phone number in E.164, e.g. `"+16505550101"`.
    pub phone_number: String,
}

/// One simulated RingCentral account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimAccount {
    /// Numeric account id, e.g. `"37439510"`.
    pub id: String,
    /// The extensions; the first one is the user the JWT logs in as (the "owner").
    pub extensions: Vec<SimExtension>,
    /// The JWT credential that authenticates as the owner extension.
    pub jwt: String,
}

impl SimAccount {
    /// A deterministic account `n` (0-based) with `extensions` extensions (at least 1):
    /// users, with the last one a department when there are three or more.
    pub fn generated(n: u32, extensions: u32) -> Self {
        let id = format!("{}", 37_439_510 + u64::from(n) * 1000);
        let count = extensions.max(1);
        let exts = (0..count)
            .map(|i| {
                let kind = if count >= 3 && i == count - 1 {
                    ExtensionKind::Department
                } else {
                    ExtensionKind::User
                };
                SimExtension {
                    id: format!("{}{:03}", 62_295_327, u64::from(n) * 1000 + u64::from(i)),
                    number: format!("{}", 101 + i),
                    name: match kind {
                        ExtensionKind::Department => format!("Support Queue {n}"),
                        _ => format!("User {n}-{}", 101 + i),
                    },
                    kind,
                    phone_number: format!("+1650{:03}{:04}", n % 1000, 101 + i),
                }
            })
            .collect();
        Self {
            id,
            extensions: exts,
            jwt: sim_jwt(&format!("acct-{n}"), 4_102_444_800),
        }
    }

    /// The owner extension (the JWT's user).
    pub fn owner(&self) -> &SimExtension {
        &self.extensions[0]
    }
}

/// A JWT-shaped credential (`header.payload.signature`, base64url) whose payload carries
/// `sub` and `exp`, like the ones RingCentral's developer console issues. The simulator
/// compares the whole string; clients may decode `exp` without verifying.
pub fn sim_jwt(subject: &str, exp_unix: i64) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = b64.encode(
        serde_json::json!({"sub": subject, "aud": "https://platform.ringcentral.com/restapi/oauth/token", "exp": exp_unix, "iss": "https://platform.ringcentral.com"})
            .to_string(),
    );
    let sig = b64.encode(format!("sim-signature-{subject}"));
    format!("{header}.{payload}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_accounts_are_deterministic_and_distinct() {
        let a = SimAccount::generated(0, 5);
        assert_eq!(a, SimAccount::generated(0, 5));
        assert_ne!(a.id, SimAccount::generated(1, 5).id);
        assert_eq!(a.extensions.len(), 5);
        assert_eq!(a.extensions[4].kind, ExtensionKind::Department);
        assert_eq!(a.owner().kind, ExtensionKind::User);
        assert_eq!(a.jwt.split('.').count(), 3);
    }
}
