//! The account's extensions and what the JWT's user may do with them:
//! [`RingCentral::list_extensions`] (`GET /restapi/v1.0/account/~/extension`, Medium
//! group, app permission `ReadAccounts`, every page),
//! [`RingCentral::current_extension`] (`…/extension/~`, Light) and
//! [`RingCentral::permissions`] (`GET …/extension/~/authz-profile`, Medium), which says
//! whether the user may read the company call log and every extension's messages.

use reqwest::Method;
use serde::Deserialize;

use super::RingCentral;
use super::error::ApiError;
use super::governor::{ApiGroup, Priority};
use super::http::{ApiRequest, decode};
use super::lenient::{self, lenient_enum};

/// Extensions per page when listing (RingCentral's maximum; the default is 100).
pub const EXTENSIONS_PER_PAGE: u32 = 1000;

lenient_enum! {
    /// An extension's `type` (`AllExtensionTypesEnum`; rarer types are `Other`).
    ExtensionKind {
        /// A person.
        User => "User",
        /// A call queue (the API's legacy name).
        Department => "Department",
        /// An announcement-only extension.
        Announcement => "Announcement",
        /// A voicemail-only extension (shared mailbox).
        Voicemail => "Voicemail",
        /// A digital user.
        DigitalUser => "DigitalUser",
        /// A virtual user.
        VirtualUser => "VirtualUser",
        /// A fax user.
        FaxUser => "FaxUser",
        /// Paging only.
        PagingOnly => "PagingOnly",
        /// Shared lines group.
        SharedLinesGroup => "SharedLinesGroup",
        /// Delegated lines group.
        DelegatedLinesGroup => "DelegatedLinesGroup",
        /// Group call pickup.
        GroupCallPickup => "GroupCallPickup",
        /// IVR menu.
        IvrMenu => "IvrMenu",
        /// Application extension.
        ApplicationExtension => "ApplicationExtension",
        /// Proxy admin.
        ProxyAdmin => "ProxyAdmin",
        /// Room connector.
        RoomConnector => "RoomConnector",
        /// Park location.
        ParkLocation => "ParkLocation",
        /// Limited extension (common-area phone).
        Limited => "Limited",
        /// Bot.
        Bot => "Bot",
        /// Site.
        Site => "Site",
        /// Room.
        Room => "Room",
        /// Flexible user.
        FlexibleUser => "FlexibleUser",
        /// Tie line.
        TieLine => "TieLine",
        /// RingCentral's own "unknown".
        Unknown => "Unknown",
    }
}

lenient_enum! {
    /// An extension's `status` (`ExtensionStatusEnumFull`).
    ExtensionStatus {
        /// In service.
        Enabled => "Enabled",
        /// Switched off.
        Disabled => "Disabled",
        /// Suspended.
        Frozen => "Frozen",
        /// Never activated.
        NotActivated => "NotActivated",
        /// Without an extension number.
        Unassigned => "Unassigned",
    }
}

/// One extension of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Internal id (an int64 in the spec, kept as text).
    pub id: String,
    /// Short extension number (absent when unassigned).
    pub number: Option<String>,
    /// Display name.
    pub name: String,
    /// Type.
    pub kind: ExtensionKind,
    /// Status (`Unknown`-free: a missing status is `Other("")`).
    pub status: ExtensionStatus,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireExtension {
    #[serde(deserialize_with = "lenient::id")]
    id: String,
    #[serde(default, deserialize_with = "lenient::opt_id")]
    extension_number: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<ExtensionKind>,
    #[serde(default)]
    status: Option<ExtensionStatus>,
}

/// Parses one `GetExtensionListInfoResponse` record.
///
/// # Errors
/// [`ApiError::Decode`] when it has no id.
pub fn parse_extension(raw: serde_json::Value) -> Result<Extension, ApiError> {
    let w: WireExtension = serde_json::from_value(raw).map_err(|e| ApiError::Decode {
        what: "extension record",
        message: e.to_string(),
    })?;
    Ok(Extension {
        id: w.id,
        number: w.extension_number,
        name: w.name.unwrap_or_default(),
        kind: w.kind.unwrap_or(ExtensionKind::Unknown),
        status: w
            .status
            .unwrap_or_else(|| ExtensionStatus::Other(String::new())),
    })
}

/// One granted permission of the authorization profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedPermission {
    /// The permission id, e.g. `FullCompanyCallLog`, `ReadMessages`.
    pub id: String,
    /// Its scopes, e.g. `Self`, `Account`, `AllExtensions`.
    pub scopes: Vec<String>,
}

impl GrantedPermission {
    /// True when a scope reaches beyond the user's own extension (`Account`,
    /// `AllExtensions`, `UserExtensions`, `NonUserExtensions`, `RoleBased`, `Federation`).
    pub fn beyond_self(&self) -> bool {
        self.scopes.iter().any(|s| s != "Self")
    }
}

/// What the JWT's user may do, from its authorization profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// The account-level call log is readable: `FullCompanyCallLog` (the spec's user
    /// permission of `readCompanyCallLog`) or `ReadCompanyCallLog` is granted.
    pub company_call_log: bool,
    /// Every extension's messages (voicemail filters and message store) are readable:
    /// `ReadMessages` with a scope beyond `Self`.
    pub company_messages: bool,
    /// Every permission the profile lists.
    pub granted: Vec<GrantedPermission>,
}

impl Permissions {
    /// Reads an `AuthProfileResource` body.
    ///
    /// # Errors
    /// [`ApiError::Decode`] when the body is not a profile.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        #[derive(Deserialize)]
        struct Profile {
            #[serde(default)]
            permissions: Vec<Active>,
        }
        #[derive(Deserialize)]
        struct Active {
            permission: PermissionId,
            #[serde(default)]
            scopes: Vec<String>,
        }
        #[derive(Deserialize)]
        struct PermissionId {
            id: String,
        }
        let p: Profile = decode(body, "authorization profile")?;
        let granted: Vec<GrantedPermission> = p
            .permissions
            .into_iter()
            .map(|a| GrantedPermission {
                id: a.permission.id,
                scopes: a.scopes,
            })
            .collect();
        let company_call_log = granted
            .iter()
            .any(|g| g.id == "FullCompanyCallLog" || g.id == "ReadCompanyCallLog");
        let company_messages = granted
            .iter()
            .any(|g| g.id == "ReadMessages" && g.beyond_self());
        Ok(Self {
            company_call_log,
            company_messages,
            granted,
        })
    }
}

impl RingCentral {
    /// Every extension of the account, all types and statuses, following
    /// `navigation.nextPage.uri` (Medium group, paced by the governor; backfill
    /// priority so live calls go first).
    ///
    /// # Errors
    /// Any [`ApiError`]: [`ApiError::Forbidden`] (CMN-401) when the app lacks
    /// `ReadAccounts`; [`ApiError::Decode`] when a record has no id or paging never ends.
    #[tracing::instrument(skip_all, fields(account = %self.account()))]
    pub async fn list_extensions(&self) -> Result<Vec<Extension>, ApiError> {
        let request = ApiRequest::new(
            Method::GET,
            "/restapi/v1.0/account/~/extension",
            ApiGroup::Medium,
        )
        .priority(Priority::Backfill)
        .query("perPage", EXTENSIONS_PER_PAGE);
        self.all_pages(
            request,
            ("extension list page", "extension list paging"),
            parse_extension,
        )
        .await
    }

    /// The JWT user's own extension (`GET /restapi/v1.0/account/~/extension/~`, Light).
    ///
    /// # Errors
    /// Any [`ApiError`].
    #[tracing::instrument(skip_all, fields(account = %self.account()))]
    pub async fn current_extension(&self) -> Result<Extension, ApiError> {
        let request = ApiRequest::new(
            Method::GET,
            "/restapi/v1.0/account/~/extension/~",
            ApiGroup::Light,
        );
        let body = self.execute(&request).await?;
        let raw: serde_json::Value = decode(&body, "extension")?;
        parse_extension(raw)
    }

    /// The JWT user's authorization profile (`GET
    /// /restapi/v1.0/account/~/extension/~/authz-profile`, Medium group).
    ///
    /// # Errors
    /// Any [`ApiError`].
    #[tracing::instrument(skip_all, fields(account = %self.account()))]
    pub async fn permissions(&self) -> Result<Permissions, ApiError> {
        let request = ApiRequest::new(
            Method::GET,
            "/restapi/v1.0/account/~/extension/~/authz-profile",
            ApiGroup::Medium,
        );
        let body = self.execute(&request).await?;
        Permissions::parse(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_with_numeric_ids_and_unknown_types_kept() {
        let e = parse_extension(serde_json::json!({
            "id": 62295327016_u64, "extensionNumber": "101", "name": "Ann Lee",
            "type": "User", "status": "Enabled"
        }))
        .unwrap();
        assert_eq!(e.id, "62295327016");
        assert_eq!(e.number.as_deref(), Some("101"));
        assert_eq!(e.kind, ExtensionKind::User);
        assert_eq!(e.status, ExtensionStatus::Enabled);
        let odd = parse_extension(serde_json::json!({"id": "7", "type": "Hologram"})).unwrap();
        assert_eq!(odd.kind, ExtensionKind::Other("Hologram".into()));
        assert_eq!(odd.number, None);
        assert!(parse_extension(serde_json::json!({"name": "no id"})).is_err());
    }

    #[test]
    fn the_profile_says_company_access_only_for_company_wide_grants() {
        let body = |perms: serde_json::Value| {
            Permissions::parse(
                serde_json::json!({ "permissions": perms })
                    .to_string()
                    .as_bytes(),
            )
            .unwrap()
        };
        let entry = |id: &str, scopes: &[&str]| serde_json::json!({"permission": {"id": id}, "scopes": scopes});
        let admin = body(serde_json::json!([
            entry("FullCompanyCallLog", &["Account"]),
            entry("ReadMessages", &["Self", "AllExtensions"]),
        ]));
        assert!(admin.company_call_log && admin.company_messages);
        let user = body(serde_json::json!([
            entry("ReadCallLog", &["Self"]),
            entry("ReadMessages", &["Self"]),
        ]));
        assert!(!user.company_call_log && !user.company_messages);
        assert_eq!(user.granted.len(), 2);
        let empty = Permissions::parse(b"{}").unwrap();
        assert!(!empty.company_call_log);
        assert!(Permissions::parse(b"[1]").is_err());
    }
}
