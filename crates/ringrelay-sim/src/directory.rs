//! The simulated accounts: who exists at the fake RingCentral (accounts, their extensions,
//! and the JWT credential that logs in as one user of an account).

use serde::{Deserialize, Serialize};

/// What kind of extension (RingCentral's `AllExtensionTypesEnum` values the simulator
/// knows; the spec lists more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExtensionKind {
    /// A person.
    User,
    /// A call queue ("Department" in the API).
    Department,
    /// An IVR menu.
    IvrMenu,
    /// A voicemail-only extension (a shared mailbox).
    Voicemail,
    /// An announcement-only extension.
    Announcement,
    /// A park location.
    ParkLocation,
    /// A shared-lines group.
    SharedLinesGroup,
    /// A limited extension (e.g. a common-area phone).
    Limited,
    /// An application extension (bots, integrations).
    ApplicationExtension,
}

impl ExtensionKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 9] = [
        Self::User,
        Self::Department,
        Self::IvrMenu,
        Self::Voicemail,
        Self::Announcement,
        Self::ParkLocation,
        Self::SharedLinesGroup,
        Self::Limited,
        Self::ApplicationExtension,
    ];

    /// The API spelling (`type` in `ExtensionInfo`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Department => "Department",
            Self::IvrMenu => "IvrMenu",
            Self::Voicemail => "Voicemail",
            Self::Announcement => "Announcement",
            Self::ParkLocation => "ParkLocation",
            Self::SharedLinesGroup => "SharedLinesGroup",
            Self::Limited => "Limited",
            Self::ApplicationExtension => "ApplicationExtension",
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the simulator's call generator leaves voicemail in this kind's mailbox
    /// (users, call queues and voicemail-only extensions). RingCentral's exact rule is
    /// not documented (see `docs/simulator.md`).
    pub fn takes_voicemail(self) -> bool {
        matches!(self, Self::User | Self::Department | Self::Voicemail)
    }
}

/// An extension's `status` (`ExtensionStatusEnumFull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ExtensionStatus {
    /// In service.
    #[default]
    Enabled,
    /// Switched off by an administrator.
    Disabled,
    /// Frozen (suspended).
    Frozen,
    /// Created but never activated.
    NotActivated,
    /// Without an extension number.
    Unassigned,
}

impl ExtensionStatus {
    /// Every status.
    pub const ALL: [Self; 5] = [
        Self::Enabled,
        Self::Disabled,
        Self::Frozen,
        Self::NotActivated,
        Self::Unassigned,
    ];

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Disabled => "Disabled",
            Self::Frozen => "Frozen",
            Self::NotActivated => "NotActivated",
            Self::Unassigned => "Unassigned",
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What the JWT's user may do beyond its own extension. RingCentral grants these through
/// the user's role (`authz-profile` lists them); the defaults are an administrator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SimPermissions {
    /// The app has `ReadAccounts` (extension list and info, the extension-list event).
    pub read_accounts: bool,
    /// The user has `FullCompanyCallLog`: the account-level call log and every
    /// extension's call log. Without it those answer 403 `CMN-408`.
    pub company_call_log: bool,
    /// The user may read every extension's messages (`ReadMessages` with an account-wide
    /// scope): other extensions' message store, and their voicemail/message-store event
    /// filters. Without it those answer 403 `CMN-408` / `SUB-405`.
    pub company_messages: bool,
}

impl Default for SimPermissions {
    fn default() -> Self {
        Self::ADMIN
    }
}

impl SimPermissions {
    /// An administrator: everything.
    pub const ADMIN: Self = Self {
        read_accounts: true,
        company_call_log: true,
        company_messages: true,
    };
    /// A plain user: the extension list, but only its own call log and messages.
    pub const SELF_ONLY: Self = Self {
        read_accounts: true,
        company_call_log: false,
        company_messages: false,
    };
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
    /// Status (default `Enabled`).
    #[serde(default)]
    pub status: ExtensionStatus,
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
    /// What the JWT's user may do (default: an administrator's rights).
    #[serde(default)]
    pub permissions: SimPermissions,
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
                    status: ExtensionStatus::Enabled,
                }
            })
            .collect();
        Self {
            id,
            extensions: exts,
            jwt: sim_jwt(&format!("acct-{n}"), 4_102_444_800),
            permissions: SimPermissions::default(),
        }
    }

    /// A deterministic company account `n` with `extensions` extensions (at least 1) of
    /// mixed kinds and statuses, like a real mid-size account: the owner (index 0) is an
    /// enabled user; of the rest, index `i` is a `Department` when `i % 10 == 3`, an
    /// `IvrMenu` when `i % 10 == 6`, a `Voicemail` extension when `i % 20 == 9`, a
    /// `ParkLocation` when `i % 50 == 18`, else a `User`; users with `i % 25 == 7` are
    /// `Disabled` and with `i % 40 == 11` are `NotActivated`. With 200 extensions: 20
    /// departments, 20 IVR menus, 10 voicemail extensions, 4 park locations, 146 users of
    /// which 8 are disabled and 5 not activated.
    pub fn company(n: u32, extensions: u32) -> Self {
        let mut account = Self::generated(n, extensions);
        for (i, ext) in account.extensions.iter_mut().enumerate().skip(1) {
            let kind = match i {
                i if i % 10 == 3 => ExtensionKind::Department,
                i if i % 10 == 6 => ExtensionKind::IvrMenu,
                i if i % 20 == 9 => ExtensionKind::Voicemail,
                i if i % 50 == 18 => ExtensionKind::ParkLocation,
                _ => ExtensionKind::User,
            };
            ext.kind = kind;
            ext.status = match i {
                i if kind == ExtensionKind::User && i % 25 == 7 => ExtensionStatus::Disabled,
                i if kind == ExtensionKind::User && i % 40 == 11 => ExtensionStatus::NotActivated,
                _ => ExtensionStatus::Enabled,
            };
            ext.name = match kind {
                ExtensionKind::User => format!("User {n}-{}", ext.number),
                other => format!("{} {n}-{}", other.as_str(), ext.number),
            };
        }
        account
    }

    /// The same account with these permissions.
    #[must_use]
    pub fn with_permissions(mut self, permissions: SimPermissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// The extension with this id.
    pub fn extension(&self, id: &str) -> Option<&SimExtension> {
        self.extensions.iter().find(|e| e.id == id)
    }

    /// A new extension for this account: the next free short number (above every
    /// existing one), an id of the account id followed by that number (unique in the
    /// account), `Enabled`. It is not added; see `SimHandle::add_extension`.
    pub fn next_extension(&self, kind: ExtensionKind, name: &str) -> SimExtension {
        let number = self
            .extensions
            .iter()
            .filter_map(|e| e.number.parse::<u64>().ok())
            .max()
            .unwrap_or(100)
            + 1;
        let mut id = format!("{}{number}", self.id);
        while self.extension(&id).is_some() {
            id.push('0');
        }
        SimExtension {
            id,
            number: number.to_string(),
            name: name.to_owned(),
            kind,
            phone_number: format!("+1650{:07}", number % 10_000_000),
            status: ExtensionStatus::Enabled,
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

    #[test]
    fn a_company_account_mixes_kinds_and_statuses_as_documented() {
        let a = SimAccount::company(0, 200);
        let count = |k: ExtensionKind| a.extensions.iter().filter(|e| e.kind == k).count();
        assert_eq!(count(ExtensionKind::Department), 20);
        assert_eq!(count(ExtensionKind::IvrMenu), 20);
        assert_eq!(count(ExtensionKind::Voicemail), 10);
        assert_eq!(count(ExtensionKind::ParkLocation), 4);
        assert_eq!(count(ExtensionKind::User), 146);
        let status = |s: ExtensionStatus| a.extensions.iter().filter(|e| e.status == s).count();
        assert_eq!(status(ExtensionStatus::Disabled), 8);
        assert_eq!(status(ExtensionStatus::NotActivated), 5);
        assert_eq!(a.owner().kind, ExtensionKind::User);
        assert_eq!(a.owner().status, ExtensionStatus::Enabled);
        let mut ids: Vec<_> = a.extensions.iter().map(|e| e.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 200);
    }

    #[test]
    fn a_next_extension_gets_a_fresh_number_and_id() {
        let a = SimAccount::generated(0, 3);
        let e = a.next_extension(ExtensionKind::User, "New");
        assert_eq!(e.number, "104");
        assert!(a.extension(&e.id).is_none());
        assert_eq!(ExtensionKind::parse(e.kind.as_str()), Some(e.kind));
        assert_eq!(
            ExtensionStatus::parse("Disabled"),
            Some(ExtensionStatus::Disabled)
        );
        assert_eq!(ExtensionKind::parse("Bogus"), None);
    }
}
