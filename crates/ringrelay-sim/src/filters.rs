//! Event filters: `~` expansion, validation against the filters the simulator knows
//! (fact sheet §4.2), and matching a notification's event path against a filter.

use std::collections::HashMap;

use crate::directory::SimAccount;
use crate::error::ApiError;

/// What the simulator makes of one requested filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterOutcome {
    /// Applied; the filter with `~` expanded to ids.
    Active(String),
    /// Accepted but not applied (`disabledFilters`): the expanded filter and the reason.
    Disabled(String, String),
    /// The renewal reminder (`/restapi/v1.0/subscription/~?threshold=&interval=`), kept verbatim.
    Reminder {
        /// The filter as sent.
        filter: String,
        /// Seconds before expiry when reminders start.
        threshold: i64,
        /// Seconds between reminders.
        interval: i64,
    },
}

const PREFIX: &str = "/restapi/v1.0/";

/// Classifies `filter` for a subscription of `account`.
///
/// # Errors
/// 400 SUB-508 for unknown filters or extensions, 403 SUB-406 for another account's events.
pub fn classify(
    filter: &str,
    account: &SimAccount,
    call_log_disabled: bool,
) -> Result<FilterOutcome, ApiError> {
    let invalid = || {
        ApiError::new(400, "SUB-508", format!("Invalid event filters: [{filter}]"))
            .with_parameter("eventFilters")
    };
    let (path, query) = filter.split_once('?').unwrap_or((filter, ""));
    if path == "/restapi/v1.0/subscription/~" {
        let params: HashMap<String, String> =
            serde_urlencoded::from_str(query).map_err(|_| invalid())?;
        let number = |k: &str| params.get(k).and_then(|v| v.parse::<i64>().ok());
        return match (number("threshold"), number("interval")) {
            (Some(threshold), Some(interval)) if threshold > 0 && interval > 0 => {
                Ok(FilterOutcome::Reminder {
                    filter: filter.to_owned(),
                    threshold,
                    interval,
                })
            }
            _ => Err(invalid()),
        };
    }
    let rest = path.strip_prefix(PREFIX).ok_or_else(invalid)?;
    let segments: Vec<&str> = rest.split('/').collect();
    let ["account", acct, tail @ ..] = segments.as_slice() else {
        return Err(invalid());
    };
    let acct = if *acct == "~" {
        account.id.as_str()
    } else {
        acct
    };
    if acct != account.id {
        return Err(ApiError::new(
            403,
            "SUB-406",
            "Not allowed subscribe for events to extensions of other account",
        ));
    }
    let expanded_query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    match tail {
        ["telephony", "sessions"] => Ok(FilterOutcome::Active(format!(
            "{PREFIX}account/{acct}/telephony/sessions{expanded_query}"
        ))),
        ["extension"] if !account.permissions.read_accounts => {
            Err(missing_app_permission("ReadAccounts"))
        }
        ["extension"] => Ok(FilterOutcome::Active(format!(
            "{PREFIX}account/{acct}/extension{expanded_query}"
        ))),
        ["extension", ext, what @ ..] => {
            let ext = if *ext == "~" {
                account.owner().id.as_str()
            } else {
                ext
            };
            if !account.extensions.iter().any(|e| e.id == ext) {
                return Err(invalid());
            }
            let what = what.join("/");
            if matches!(what.as_str(), "voicemail" | "message-store")
                && ext != account.owner().id
                && !account.permissions.company_messages
            {
                return Err(ApiError::new(
                    403,
                    "SUB-405",
                    "Not allowed subscribe for messages to other extensions",
                ));
            }
            let expanded = format!("{PREFIX}account/{acct}/extension/{ext}/{what}{expanded_query}");
            match what.as_str() {
                "telephony/sessions" | "voicemail" | "message-store" | "presence" => {
                    Ok(FilterOutcome::Active(expanded))
                }
                "call-log" if call_log_disabled => {
                    Ok(FilterOutcome::Disabled(expanded, "NotSupported".to_owned()))
                }
                _ => Err(invalid()),
            }
        }
        _ => Err(invalid()),
    }
}

/// RingCentral's 403 for a permission the app lacks (`CMN-401`), with `permissionName`.
pub fn missing_app_permission(permission: &str) -> ApiError {
    ApiError::new(
        403,
        "CMN-401",
        format!(
            "In order to call this API endpoint, application needs to have [{permission}] permission"
        ),
    )
    .with_permission(permission)
}

/// True when a notification with event path `event` is covered by the expanded `filter`.
/// An account-level telephony filter also covers the extension paths of that account,
/// since RingCentral sends extension parties' events with the extension path (§4.1).
/// Filter query parameters are not applied here; see [`accepts`].
pub fn matches(filter: &str, event: &str) -> bool {
    let filter_path = filter.split_once('?').map_or(filter, |(p, _)| p);
    let event_path = event.split_once('?').map_or(event, |(p, _)| p);
    if filter_path == event_path {
        return true;
    }
    if let Some(account_prefix) = filter_path.strip_suffix("/telephony/sessions")
        && !account_prefix.contains("/extension/")
    {
        return event_path.starts_with(&format!("{account_prefix}/extension/"))
            && event_path.ends_with("/telephony/sessions");
    }
    false
}

/// True when `filter` covers the notification: its path (see [`matches`]) and, for
/// telephony filters, the query parameters the guide documents (`direction`,
/// `missedCall`, `statusCode`, `phoneNumber`), checked against any party of the body.
/// Other parameters (`sipData`, `withRecordings`) change payloads, not who gets them,
/// and are ignored.
pub fn accepts(filter: &str, event: &str, body: &serde_json::Value) -> bool {
    if !matches(filter, event) {
        return false;
    }
    let Some((path, query)) = filter.split_once('?') else {
        return true;
    };
    if !path.ends_with("/telephony/sessions") {
        return true;
    }
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let parties = body["parties"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    params.iter().all(|(key, want)| {
        parties.iter().any(|p| match key.as_str() {
            "direction" => p["direction"].as_str() == Some(want.as_str()),
            "missedCall" => {
                p["missedCall"].as_bool().map(|b| b.to_string()).as_deref() == Some(want)
            }
            "statusCode" => p["status"]["code"].as_str() == Some(want.as_str()),
            "phoneNumber" => {
                p["from"]["phoneNumber"].as_str() == Some(want.as_str())
                    || p["to"]["phoneNumber"].as_str() == Some(want.as_str())
            }
            _ => true,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tildes_expand_to_the_account_and_owner_ids() {
        let a = SimAccount::generated(0, 3);
        let got = classify("/restapi/v1.0/account/~/extension/~/voicemail", &a, true).unwrap();
        assert_eq!(
            got,
            FilterOutcome::Active(format!(
                "/restapi/v1.0/account/{}/extension/{}/voicemail",
                a.id,
                a.owner().id
            ))
        );
    }

    #[test]
    fn the_call_log_filter_is_disabled_or_rejected_and_unknown_filters_are_rejected() {
        let a = SimAccount::generated(0, 3);
        let f = "/restapi/v1.0/account/~/extension/~/call-log";
        assert!(matches!(
            classify(f, &a, true),
            Ok(FilterOutcome::Disabled(..))
        ));
        assert_eq!(classify(f, &a, false).unwrap_err().code, "SUB-508");
        assert_eq!(
            classify("/restapi/v1.0/account/~/bogus", &a, true)
                .unwrap_err()
                .code,
            "SUB-508"
        );
        assert_eq!(
            classify("/restapi/v1.0/account/1/telephony/sessions", &a, true)
                .unwrap_err()
                .code,
            "SUB-406"
        );
    }

    #[test]
    fn the_extension_list_filter_and_other_mailboxes_follow_the_permissions() {
        let admin = SimAccount::generated(0, 3);
        let other = admin.extensions[1].id.clone();
        let list = "/restapi/v1.0/account/~/extension";
        assert_eq!(
            classify(list, &admin, true).unwrap(),
            FilterOutcome::Active(format!("/restapi/v1.0/account/{}/extension", admin.id))
        );
        let vm = format!("/restapi/v1.0/account/~/extension/{other}/voicemail");
        assert!(matches!(
            classify(&vm, &admin, true),
            Ok(FilterOutcome::Active(_))
        ));
        let user = admin
            .clone()
            .with_permissions(crate::directory::SimPermissions::SELF_ONLY);
        assert_eq!(classify(&vm, &user, true).unwrap_err().code, "SUB-405");
        let own = "/restapi/v1.0/account/~/extension/~/voicemail";
        assert!(matches!(
            classify(own, &user, true),
            Ok(FilterOutcome::Active(_))
        ));
        let no_accounts = admin.with_permissions(crate::directory::SimPermissions {
            read_accounts: false,
            ..crate::directory::SimPermissions::ADMIN
        });
        assert_eq!(
            classify(list, &no_accounts, true).unwrap_err().code,
            "CMN-401"
        );
    }

    #[test]
    fn telephony_query_parameters_select_by_party() {
        let f = "/restapi/v1.0/account/1/telephony/sessions?direction=Inbound&statusCode=Setup";
        let e = "/restapi/v1.0/account/1/telephony/sessions";
        let party = |dir: &str, code: &str| serde_json::json!({"parties": [{"direction": dir, "status": {"code": code}, "missedCall": false}]});
        assert!(accepts(f, e, &party("Inbound", "Setup")));
        assert!(!accepts(f, e, &party("Outbound", "Setup")));
        assert!(!accepts(f, e, &party("Inbound", "Answered")));
        let missed = "/restapi/v1.0/account/1/telephony/sessions?missedCall=true";
        assert!(!accepts(missed, e, &party("Inbound", "Disconnected")));
        assert!(accepts(
            "/restapi/v1.0/account/1/telephony/sessions?sipData=true",
            e,
            &party("Inbound", "Setup")
        ));
    }

    #[test]
    fn the_account_telephony_filter_covers_extension_paths() {
        let f = "/restapi/v1.0/account/1/telephony/sessions";
        assert!(matches(f, "/restapi/v1.0/account/1/telephony/sessions"));
        assert!(matches(
            f,
            "/restapi/v1.0/account/1/extension/9/telephony/sessions"
        ));
        assert!(!matches(
            f,
            "/restapi/v1.0/account/2/extension/9/telephony/sessions"
        ));
        assert!(!matches(f, "/restapi/v1.0/account/1/extension/9/voicemail"));
    }
}
