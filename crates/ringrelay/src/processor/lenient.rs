//! Lenient readers for what RingCentral really sends: ids as strings or numbers, offsets
//! without a colon, `VoiceMail` vs `Voicemail` (API.md §4.1 "parse leniently").

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

/// An id that RingCentral sends as a string in one place and a number in another
/// (`ownerId`, voicemail `body.id`); `None` for null, empty or any other type.
pub fn id_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A non-empty string field.
pub fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A timestamp: RFC 3339, or the `2014-04-29T14:29:27.408+0000` form with no colon in the
/// offset seen in a message-store sample; a bare `…Z`-less time is read as UTC.
pub fn timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.to_utc());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.to_utc());
        }
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// A timestamp field, if present and readable.
pub fn timestamp_field(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str).and_then(timestamp)
}

/// An integer that may come as a number or a numeric string.
pub fn integer(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean that may come as `true`, `"true"` or is absent (false).
pub fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Case- and separator-insensitive comparison of enum spellings (`VoiceMail`, `Voicemail`,
/// `voice_mail`).
pub fn same_word(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>()
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_read_from_strings_and_numbers() {
        assert_eq!(
            id_string(Some(&json!("82063400004"))).as_deref(),
            Some("82063400004")
        );
        assert_eq!(
            id_string(Some(&json!(402_406_985_008_i64))).as_deref(),
            Some("402406985008")
        );
        assert_eq!(id_string(Some(&json!(null))), None);
        assert_eq!(id_string(Some(&json!(""))), None);
        assert_eq!(id_string(None), None);
    }

    #[test]
    fn timestamps_with_and_without_a_colon_in_the_offset_are_read() {
        let a = timestamp("2014-04-29T14:29:27.408+0000").unwrap();
        let b = timestamp("2014-04-29T14:29:27.408Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(timestamp("2014-04-29T16:29:27.408+02:00"), Some(b));
        assert!(timestamp("yesterday").is_none());
    }

    #[test]
    fn spellings_compare_without_case_or_separators() {
        assert!(same_word("VoiceMail", "Voicemail"));
        assert!(same_word("VMScreening", "vmscreening"));
        assert!(!same_word("Hold", "Held"));
        assert_eq!(integer(Some(&json!("42"))), Some(42));
        assert!(flag(Some(&json!(true))));
        assert!(!flag(None));
    }
}
