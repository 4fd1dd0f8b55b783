//! The account's extensions as the API shows them, and their changes at runtime:
//!
//! - `GET /restapi/v1.0/account/{a}/extension` (`listExtensions`, Medium group, app
//!   permission `ReadAccounts`): paged (`page`, `perPage`), filtered by `status` and
//!   `type` (repeatable), `extensionNumber`; `GetExtensionListResponse` with `paging` and
//!   `navigation`.
//! - `GET /restapi/v1.0/account/{a}/extension/{e}` (`readExtension`, Light).
//! - `GET …/extension/{e}/authz-profile` (`readAuthorizationProfile`, Medium) and
//!   `…/authz-profile/check?permissionId=` (`checkUserPermission`, Light): what the JWT's
//!   user may do, from the account's [`SimPermissions`].
//! - Adding, changing and removing extensions (the control API and `SimHandle`), each
//!   notified to subscriptions with the extension-list filter
//!   (`/restapi/v1.0/account/{a}/extension`, `ExtensionListEvent`: `extensionId`,
//!   `eventType` `Create` | `Update` | `Delete`, `ownerId`, and `hints` on `Update`).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::delivery;
use crate::directory::{ExtensionKind, ExtensionStatus, SimAccount, SimExtension, SimPermissions};
use crate::error::ApiError;
use crate::filters::missing_app_permission;
use crate::state::{DeliveryRecord, SimState};
use crate::telephony::query::{Paging, Params};
use crate::telephony::render::page;

/// Answers the extension and authorization-profile `GET`s for `account`; `None` when
/// `path` is not one of them.
pub(crate) fn handle_get(
    base_url: &str,
    account: &SimAccount,
    path: &str,
    raw_query: Option<&str>,
) -> Option<Result<Value, ApiError>> {
    let rest = path
        .trim_end_matches('/')
        .strip_prefix("/restapi/v1.0/account/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    let (acct, tail) = segs.split_first()?;
    let known = matches!(
        tail,
        ["extension"]
            | ["extension", _]
            | ["extension", _, "authz-profile"]
            | ["extension", _, "authz-profile", "check"]
    );
    if !known {
        return None;
    }
    Some(answer(base_url, account, acct, tail, raw_query))
}

fn answer(
    base_url: &str,
    account: &SimAccount,
    acct: &str,
    tail: &[&str],
    raw_query: Option<&str>,
) -> Result<Value, ApiError> {
    if acct != "~" && acct != account.id {
        return Err(ApiError::not_found("accountId"));
    }
    let params = Params::parse(raw_query)?;
    let extension = |segment: &str| -> Result<&SimExtension, ApiError> {
        let id = if segment == "~" {
            account.owner().id.as_str()
        } else {
            segment
        };
        account
            .extension(id)
            .ok_or_else(|| ApiError::not_found("extensionId"))
    };
    match tail {
        ["extension"] => list(base_url, account, &params),
        ["extension", e] => {
            if !account.permissions.read_accounts {
                return Err(missing_app_permission("ReadAccounts"));
            }
            Ok(info(base_url, &account.id, extension(e)?))
        }
        ["extension", e, "authz-profile"] => {
            let ext = extension(e)?;
            Ok(json!({
                "uri": format!("{base_url}/restapi/v1.0/account/{}/extension/{}/authz-profile", account.id, ext.id),
                "permissions": profile(base_url, account.permissions),
            }))
        }
        ["extension", e, "authz-profile", "check"] => {
            let ext = extension(e)?;
            let permission = params.get("permissionId").ok_or_else(|| {
                ApiError::new(400, "CMN-100", "Parameter [permissionId] is missing")
                    .with_parameter("permissionId")
            })?;
            let target = params.get("targetExtensionId").unwrap_or(&ext.id);
            let granted = profile(base_url, account.permissions)
                .into_iter()
                .find(|p| p["permission"]["id"] == permission);
            let successful = granted.as_ref().is_some_and(|p| {
                target == ext.id
                    || p["scopes"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|s| s == "Account" || s == "AllExtensions"))
            });
            let mut body = json!({
                "uri": format!(
                    "{base_url}/restapi/v1.0/account/{}/extension/{}/authz-profile/check?permissionId={permission}&targetExtensionId={target}",
                    account.id, ext.id
                ),
                "successful": successful,
            });
            if let Some(details) = granted {
                body["details"] = details;
            }
            Ok(body)
        }
        _ => Err(ApiError::new(404, "CMN-102", "Resource not found")),
    }
}

/// The `permissions` of an authorization profile (`ActivePermissionResource[]`): what the
/// simulator's permission knobs grant. Real profiles list many more permissions.
pub fn profile(base_url: &str, p: SimPermissions) -> Vec<Value> {
    let entry = |id: &str, scopes: &[&str]| {
        json!({
            "permission": {
                "uri": format!("{base_url}/restapi/v1.0/dictionary/permission/{id}"),
                "id": id,
                "siteCompatible": "Compatible",
                "readOnly": false,
            },
            "effectiveRole": { "uri": format!("{base_url}/restapi/v1.0/dictionary/user-role/1"), "id": "1" },
            "scopes": scopes,
        })
    };
    let mut out = Vec::new();
    if p.read_accounts {
        out.push(entry("ReadExtensions", &["Account"]));
    }
    out.push(entry(
        "ReadCallLog",
        if p.company_call_log {
            &["Self", "AllExtensions"]
        } else {
            &["Self"]
        },
    ));
    if p.company_call_log {
        out.push(entry("FullCompanyCallLog", &["Account"]));
    }
    out.push(entry(
        "ReadMessages",
        if p.company_messages {
            &["Self", "AllExtensions"]
        } else {
            &["Self"]
        },
    ));
    out
}

/// One extension as `GetExtensionListInfoResponse` / `GetExtensionInfoResponse` shape it
/// (the fields a client of this simulator needs; `id` is an int64 as in the spec).
pub fn info(base_url: &str, account_id: &str, e: &SimExtension) -> Value {
    let id: Value =
        e.id.parse::<u64>()
            .map_or_else(|_| Value::from(e.id.clone()), Value::from);
    let mut contact = json!({ "email": format!("ext{}@example.com", e.number) });
    if e.kind == ExtensionKind::User {
        let (first, last) = e.name.split_once(' ').unwrap_or((e.name.as_str(), ""));
        contact["firstName"] = json!(first);
        contact["lastName"] = json!(last);
    }
    let mut v = json!({
        "uri": format!("{base_url}/restapi/v1.0/account/{account_id}/extension/{}", e.id),
        "id": id,
        "name": e.name,
        "type": e.kind.as_str(),
        "status": e.status.as_str(),
        "contact": contact,
        "hidden": false,
    });
    if e.status != ExtensionStatus::Unassigned {
        v["extensionNumber"] = json!(e.number);
    }
    v
}

fn list(base_url: &str, account: &SimAccount, params: &Params) -> Result<Value, ApiError> {
    if !account.permissions.read_accounts {
        return Err(missing_app_permission("ReadAccounts"));
    }
    let statuses = params
        .all("status")
        .into_iter()
        .map(|s| ExtensionStatus::parse(s).ok_or_else(|| ApiError::invalid_parameter("status")))
        .collect::<Result<Vec<_>, _>>()?;
    let kinds = params
        .all("type")
        .into_iter()
        .map(|s| ExtensionKind::parse(s).ok_or_else(|| ApiError::invalid_parameter("type")))
        .collect::<Result<Vec<_>, _>>()?;
    let number = params.get("extensionNumber");
    let paging = Paging::from_params(params)?;
    let records: Vec<Value> = account
        .extensions
        .iter()
        .filter(|e| statuses.is_empty() || statuses.contains(&e.status))
        .filter(|e| kinds.is_empty() || kinds.contains(&e.kind))
        .filter(|e| number.is_none_or(|n| n == e.number))
        .map(|e| info(base_url, &account.id, e))
        .collect();
    let url = format!("{base_url}/restapi/v1.0/account/{}/extension", account.id);
    Ok(page(&url, params, paging, records))
}

/// Why an extension change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// No account with that id.
    #[error("no simulated account {0}")]
    NoAccount(String),
    /// No extension with that id in the account.
    #[error("account {account} has no extension {extension}")]
    NoExtension {
        /// Account id.
        account: String,
        /// Extension id.
        extension: String,
    },
    /// The owner (the JWT's user) cannot be disabled or removed.
    #[error("extension {0} is the JWT's user and cannot be changed this way")]
    Owner(String),
    /// The id is taken.
    #[error("extension {0} already exists")]
    Duplicate(String),
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match &e {
            ChangeError::NoAccount(_) => ApiError::not_found("accountId"),
            ChangeError::NoExtension { .. } => ApiError::not_found("extensionId"),
            ChangeError::Owner(_) | ChangeError::Duplicate(_) => {
                ApiError::new(400, "CMN-101", e.to_string()).with_parameter("extensionId")
            }
        }
    }
}

/// The index of the account with this id.
pub(crate) fn account_index(state: &SimState, account_id: &str) -> Result<usize, ChangeError> {
    state
        .config
        .accounts
        .iter()
        .position(|a| a.id == account_id)
        .ok_or_else(|| ChangeError::NoAccount(account_id.to_owned()))
}

/// Delivers the extension-list event for `extension_id` of account `index`.
pub(crate) async fn notify(
    state: &Arc<SimState>,
    index: usize,
    extension_id: &str,
    event_type: &str,
) -> Vec<DeliveryRecord> {
    let account = state.account(index);
    let mut body = json!({
        "extensionId": extension_id,
        "eventType": event_type,
        "ownerId": account.owner().id,
    });
    if event_type == "Update" {
        body["hints"] = json!(["AccountStatus", "ExtensionInfo"]);
    }
    let event = format!("/restapi/v1.0/account/{}/extension", account.id);
    delivery::deliver(state, index, &event, &body).await
}

/// Adds `extension` (from [`SimAccount::next_extension`] or built by hand) to the account
/// and notifies `Create`.
pub(crate) async fn add(
    state: &Arc<SimState>,
    account_id: &str,
    extension: SimExtension,
) -> Result<SimExtension, ChangeError> {
    let index = account_index(state, account_id)?;
    let id = extension.id.clone();
    state.update_account(index, |a| {
        if a.extension(&id).is_some() {
            return Err(ChangeError::Duplicate(id.clone()));
        }
        a.extensions.push(extension.clone());
        Ok(())
    })?;
    notify(state, index, &id, "Create").await;
    Ok(extension)
}

/// Sets an extension's status (the owner's cannot change) and notifies `Update`.
pub(crate) async fn set_status(
    state: &Arc<SimState>,
    account_id: &str,
    extension_id: &str,
    status: ExtensionStatus,
) -> Result<(), ChangeError> {
    let index = account_index(state, account_id)?;
    state.update_account(index, |a| {
        if a.owner().id == extension_id {
            return Err(ChangeError::Owner(extension_id.to_owned()));
        }
        let e = a
            .extensions
            .iter_mut()
            .find(|e| e.id == extension_id)
            .ok_or_else(|| ChangeError::NoExtension {
                account: account_id.to_owned(),
                extension: extension_id.to_owned(),
            })?;
        e.status = status;
        Ok(())
    })?;
    notify(state, index, extension_id, "Update").await;
    Ok(())
}

/// Removes an extension (not the owner) and notifies `Delete`. Its filters in existing
/// subscriptions stay until the subscription is updated; a new create or update naming
/// it is refused with `SUB-508` like any unknown extension.
pub(crate) async fn remove(
    state: &Arc<SimState>,
    account_id: &str,
    extension_id: &str,
) -> Result<(), ChangeError> {
    let index = account_index(state, account_id)?;
    state.update_account(index, |a| {
        if a.owner().id == extension_id {
            return Err(ChangeError::Owner(extension_id.to_owned()));
        }
        let before = a.extensions.len();
        a.extensions.retain(|e| e.id != extension_id);
        if a.extensions.len() == before {
            return Err(ChangeError::NoExtension {
                account: account_id.to_owned(),
                extension: extension_id.to_owned(),
            });
        }
        Ok(())
    })?;
    notify(state, index, extension_id, "Delete").await;
    Ok(())
}

/// Replaces the account's permissions (no event: RingCentral sends none we simulate).
pub(crate) fn set_permissions(
    state: &SimState,
    account_id: &str,
    permissions: SimPermissions,
) -> Result<(), ChangeError> {
    let index = account_index(state, account_id)?;
    state.update_account(index, |a| a.permissions = permissions);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(account: &SimAccount, path: &str, query: &str) -> Result<Value, ApiError> {
        handle_get("http://sim", account, path, Some(query)).expect("an extension path")
    }

    #[test]
    fn the_list_pages_and_filters_like_the_spec() {
        let a = SimAccount::company(0, 250);
        let path = "/restapi/v1.0/account/~/extension";
        let first = get(&a, path, "perPage=100").unwrap();
        assert_eq!(first["records"].as_array().unwrap().len(), 100);
        assert_eq!(first["paging"]["totalElements"], 250);
        assert_eq!(first["paging"]["totalPages"], 3);
        assert!(first["navigation"]["nextPage"]["uri"].is_string());
        let last = get(&a, path, "perPage=100&page=3").unwrap();
        assert_eq!(last["records"].as_array().unwrap().len(), 50);
        assert!(last["navigation"].get("nextPage").is_none());
        let users = get(&a, path, "type=User&status=Enabled&perPage=1000").unwrap();
        let n = a
            .extensions
            .iter()
            .filter(|e| e.kind == ExtensionKind::User && e.status == ExtensionStatus::Enabled)
            .count();
        assert_eq!(users["records"].as_array().unwrap().len(), n);
        let two = get(&a, path, "type=Department&type=IvrMenu&perPage=1000").unwrap();
        assert_eq!(two["paging"]["totalElements"], 50);
        assert!(first["records"][0]["id"].is_u64(), "int64 as in the spec");
        assert_eq!(
            get(&a, path, "status=Sleeping")
                .unwrap_err()
                .parameter_name
                .as_deref(),
            Some("status")
        );
        assert_eq!(get(&a, path, "perPage=0").unwrap_err().code, "CMN-101");
        assert!(handle_get("http://sim", &a, "/restapi/v1.0/account/~/call-log", None).is_none());
    }

    #[test]
    fn one_extension_and_the_profile_follow_the_permissions() {
        let a = SimAccount::generated(0, 3);
        let other = a.extensions[1].id.clone();
        let one = get(
            &a,
            &format!("/restapi/v1.0/account/~/extension/{other}"),
            "",
        )
        .unwrap();
        assert_eq!(one["extensionNumber"], "102");
        assert_eq!(
            get(&a, "/restapi/v1.0/account/~/extension/999", "")
                .unwrap_err()
                .code,
            "CMN-102"
        );
        let profile = get(&a, "/restapi/v1.0/account/~/extension/~/authz-profile", "").unwrap();
        let ids: Vec<_> = profile["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["permission"]["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(ids.contains(&"FullCompanyCallLog".to_owned()), "{ids:?}");
        let user = a.clone().with_permissions(SimPermissions::SELF_ONLY);
        let check = |acc: &SimAccount, q: &str| {
            get(
                acc,
                "/restapi/v1.0/account/~/extension/~/authz-profile/check",
                q,
            )
            .unwrap()["successful"]
                .as_bool()
                .unwrap()
        };
        assert!(check(&a, "permissionId=FullCompanyCallLog"));
        assert!(!check(&user, "permissionId=FullCompanyCallLog"));
        assert!(check(&user, "permissionId=ReadMessages"));
        assert!(!check(
            &user,
            &format!("permissionId=ReadMessages&targetExtensionId={other}")
        ));
        assert!(check(
            &a,
            &format!("permissionId=ReadMessages&targetExtensionId={other}")
        ));
        let blind = a.with_permissions(SimPermissions {
            read_accounts: false,
            ..SimPermissions::ADMIN
        });
        let e = get(&blind, "/restapi/v1.0/account/~/extension", "").unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (403, "CMN-401"));
        assert_eq!(e.permission_name.as_deref(), Some("ReadAccounts"));
    }
}
