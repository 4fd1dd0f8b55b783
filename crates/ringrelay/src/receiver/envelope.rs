//! The little the receiver reads of a notification before storing it raw: the envelope's
//! `uuid`, `event`, `subscriptionId` and `timestamp`, after a nesting-depth check that runs
//! before any parser allocates.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

/// Why a body is not a usable notification (each becomes a 400 with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Nested deeper than the configured limit.
    #[error("JSON nested deeper than {0} levels")]
    TooDeep(usize),
    /// Not JSON, or not a JSON object.
    #[error("body is not a JSON object: {0}")]
    Malformed(String),
    /// A required envelope field is missing or empty.
    #[error("notification has no {0}")]
    Missing(&'static str),
}

/// The envelope fields ringrelay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The de-duplication key.
    pub uuid: String,
    /// The event path.
    pub event: String,
    /// The subscription that sent it.
    pub subscription_id: Option<String>,
    /// The envelope's timestamp, when present and parseable.
    pub timestamp: Option<DateTime<Utc>>,
}

/// Returns an error when `body` nests arrays/objects deeper than `max` (strings are
/// skipped, escapes honoured). Linear, no allocation.
///
/// # Errors
/// [`EnvelopeError::TooDeep`].
pub fn check_depth(body: &[u8], max: usize) -> Result<(), EnvelopeError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(EnvelopeError::TooDeep(max));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The envelope fields, read straight from the body: every other value is skipped by the
/// parser without being built, so a large `body` costs no allocation.
#[derive(Deserialize)]
struct Raw {
    uuid: Option<Field>,
    event: Option<Field>,
    #[serde(rename = "subscriptionId")]
    subscription_id: Option<Field>,
    timestamp: Option<Field>,
}

/// One envelope field: its text when it is a non-blank string or a number (RingCentral
/// sends some ids as numbers), nothing for any other value.
struct Field(Option<String>);

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = Field;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E>(self, s: &str) -> Result<Field, E> {
                Ok(Field((!s.trim().is_empty()).then(|| s.to_owned())))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Field, E> {
                Ok(Field(Some(n.to_string())))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Field, E> {
                Ok(Field(Some(n.to_string())))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Field, E> {
                Ok(Field(
                    serde_json::Number::from_f64(n).map(|n| n.to_string()),
                ))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Field, E> {
                Ok(Field(None))
            }
            fn visit_unit<E>(self) -> Result<Field, E> {
                Ok(Field(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Field, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Field(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Field, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Field(None))
            }
        }
        d.deserialize_any(Text)
    }
}

fn text(v: Option<Field>) -> Option<String> {
    v.and_then(|Field(t)| t)
}

/// Parses RingCentral timestamps: RFC 3339 (`Z` or `+00:00`), or with a `+0000` offset.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// Reads the envelope of a notification body.
///
/// # Errors
/// When the body is too deep, not a JSON object, or lacks `uuid` or `event`.
pub fn parse(body: &[u8], max_depth: usize) -> Result<Envelope, EnvelopeError> {
    check_depth(body, max_depth)?;
    // A struct would also accept a JSON array of its fields: only an object is an envelope.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(EnvelopeError::Malformed("expected an object".to_owned()));
    }
    // The whole body is still parsed (and refused when it is not valid JSON); only the four
    // fields are kept.
    let raw: Raw =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    let uuid = text(raw.uuid).ok_or(EnvelopeError::Missing("uuid"))?;
    let event = text(raw.event).ok_or(EnvelopeError::Missing("event"))?;
    Ok(Envelope {
        uuid,
        event,
        subscription_id: text(raw.subscription_id),
        timestamp: text(raw.timestamp).as_deref().and_then(parse_timestamp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_only_structure() {
        assert!(check_depth(br#"{"a":[{"b":1}]}"#, 3).is_ok());
        assert_eq!(
            check_depth(br#"{"a":[{"b":[1]}]}"#, 3),
            Err(EnvelopeError::TooDeep(3))
        );
        assert!(check_depth(br#"{"a":"[[[[[[\"{{{{"}"#, 1).is_ok());
        let deep = "[".repeat(100_000);
        assert!(check_depth(deep.as_bytes(), 32).is_err());
    }

    #[test]
    fn envelope_fields() {
        let e = parse(
            br#"{"uuid":"u-1","event":"/restapi/v1.0/account/1/telephony/sessions","subscriptionId":"s-1","timestamp":"2026-11-28T09:00:00.123+0000","body":{}}"#,
            32,
        )
        .expect("valid");
        assert_eq!(e.uuid, "u-1");
        assert_eq!(e.subscription_id.as_deref(), Some("s-1"));
        assert_eq!(
            e.timestamp.map(|t| t.to_rfc3339()),
            Some("2026-11-28T09:00:00.123+00:00".to_owned())
        );
        assert_eq!(
            parse(br#"{"event":"x"}"#, 32),
            Err(EnvelopeError::Missing("uuid"))
        );
        assert_eq!(
            parse(br#"{"uuid":"","event":"x"}"#, 32),
            Err(EnvelopeError::Missing("uuid"))
        );
        assert_eq!(
            parse(br#"{"uuid":"u"}"#, 32),
            Err(EnvelopeError::Missing("event"))
        );
        assert!(matches!(
            parse(b"[1]", 32),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"{nope", 32),
            Err(EnvelopeError::Malformed(_))
        ));
        let bad_ts = parse(br#"{"uuid":"u","event":"e","timestamp":"yesterday"}"#, 32).expect("ok");
        assert_eq!(bad_ts.timestamp, None);
        assert!(matches!(
            parse(br#"["u","e",null,null]"#, 32),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(
            parse(br#"{"uuid":"u","event":"e","body":{"a":[1,2}}"#, 32),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(
            parse(br#"{"uuid":"u","event":"e"} trailing"#, 32),
            Err(EnvelopeError::Malformed(_))
        ));
        // An envelope field given twice is ambiguous: refused, not guessed.
        assert!(matches!(
            parse(br#"{"uuid":"a","event":"e","uuid":"b"}"#, 32),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn envelope_fields_of_any_json_type() {
        // Ids as numbers (API.md 4.1), other types ignored, the rest of the body skipped.
        let e = parse(
            br#"{"body":{"deep":[{"x":[1,2,{"y":null}]}],"s":"\u00e9\"q"},"uuid":9213733942374901991,
                "event":"/e","subscriptionId":{"odd":true},"timestamp":null,"ownerId":12}"#,
            32,
        )
        .expect("valid");
        assert_eq!(e.uuid, "9213733942374901991");
        assert_eq!(e.event, "/e");
        assert_eq!(e.subscription_id, None);
        assert_eq!(e.timestamp, None);
        assert_eq!(
            parse(br#"{"uuid":["u"],"event":"e"}"#, 32),
            Err(EnvelopeError::Missing("uuid"))
        );
        assert_eq!(
            parse(br#"{"uuid":-5,"event":true}"#, 32),
            Err(EnvelopeError::Missing("event"))
        );
        assert_eq!(
            parse(br#"  {"uuid":1.5,"event":"e"}"#, 32)
                .expect("ok")
                .uuid,
            "1.5"
        );
    }
}
