//! One entry point for the platform's router: [`handle_get`] takes a request path under
//! `/restapi/v1.0/account/…` and answers the telephony `GET`s, or says the path is not
//! one of them.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::query::Params;
use super::{Scope, TelephonyState, call_log, messages};
use crate::directory::SimAccount;
use crate::error::ApiError;

/// Answers `GET path?raw_query` for `account` (already authenticated by the platform)
/// when `path` is a call-log, call-log-sync, message-store or message-sync path:
///
/// - `/restapi/v1.0/account/{a}/call-log[/{id}]`, `/restapi/v1.0/account/{a}/call-log-sync`
/// - `/restapi/v1.0/account/{a}/extension/{e}/call-log[/{id}]`, `…/call-log-sync`
/// - `/restapi/v1.0/account/{a}/extension/{e}/message-store[/{id}]`, `…/message-sync`
///
/// `{a}` and `{e}` may be `~`. Returns `None` for any other path.
///
/// # Errors
/// (inside the `Some`) `CMN-102` (404) for another account or an unknown extension, the
/// query errors of the handlers, and `CMN-102` for a `message-store` path at account level.
pub fn handle_get(
    state: &TelephonyState,
    now: DateTime<Utc>,
    account: &SimAccount,
    path: &str,
    raw_query: Option<&str>,
) -> Option<Result<Value, ApiError>> {
    let rest = path
        .trim_end_matches('/')
        .strip_prefix("/restapi/v1.0/account/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    let (account_seg, scope_seg, tail) = match segs.as_slice() {
        [a, "extension", e, tail @ ..] => (*a, Some(*e), tail),
        [a, tail @ ..] => (*a, None, tail),
        [] => return None,
    };
    let resource = *tail.first()?;
    if !matches!(
        resource,
        "call-log" | "call-log-sync" | "message-store" | "message-sync"
    ) || tail.len() > 2
        || (tail.len() == 2 && !matches!(resource, "call-log" | "message-store"))
    {
        return None;
    }
    Some(dispatch(
        state,
        now,
        account,
        account_seg,
        scope_seg,
        tail,
        raw_query,
    ))
}

fn dispatch(
    state: &TelephonyState,
    now: DateTime<Utc>,
    account: &SimAccount,
    account_seg: &str,
    scope_seg: Option<&str>,
    tail: &[&str],
    raw_query: Option<&str>,
) -> Result<Value, ApiError> {
    if account_seg != "~" && account_seg != account.id {
        return Err(ApiError::not_found("accountId"));
    }
    let params = Params::parse(raw_query)?;
    let scope = match scope_seg {
        Some(e) => Scope::extension(account, e)?,
        None => Scope::Account,
    };
    check_permission(account, &scope, tail[0])?;
    match (tail, &scope) {
        (["call-log"], _) => call_log::list(state, now, account, &scope, &params),
        (["call-log", id], _) => call_log::get(state, now, account, &scope, id, &params),
        (["call-log-sync"], _) => call_log::sync(state, now, account, &scope, &params),
        (["message-store"], Scope::Extension(e)) => {
            messages::list(state, now, &account.id, e, &params)
        }
        (["message-store", id], Scope::Extension(e)) => {
            messages::get(state, now, &account.id, e, id)
        }
        (["message-sync"], Scope::Extension(e)) => {
            messages::sync(state, now, &account.id, e, &params)
        }
        _ => Err(ApiError::not_found("extensionId")),
    }
}

/// RingCentral's 403 for a missing user permission (`CMN-408`), with `permissionName`.
pub fn missing_permission(permission: &str) -> ApiError {
    ApiError::new(
        403,
        "CMN-408",
        format!(
            "In order to call this API endpoint, user needs to have [{permission}] permission for requested resource."
        ),
    )
    .with_permission(permission)
}

/// The account-level call log and other extensions' call logs need `FullCompanyCallLog`;
/// other extensions' messages need an account-wide `ReadMessages`.
fn check_permission(account: &SimAccount, scope: &Scope, resource: &str) -> Result<(), ApiError> {
    let own = matches!(scope, Scope::Extension(e) if *e == account.owner().id);
    if own {
        return Ok(());
    }
    if resource.starts_with("call-log") {
        if !account.permissions.company_call_log {
            return Err(missing_permission("FullCompanyCallLog"));
        }
    } else if !account.permissions.company_messages {
        return Err(missing_permission("ReadMessages"));
    }
    Ok(())
}
