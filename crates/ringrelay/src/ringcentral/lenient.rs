//! Lenient parsing of what RingCentral really sends (API.md "Parsing gotchas"): ids as
//! strings or numbers, timestamps with `+0000` offsets or none, `VoiceMail` vs
//! `Voicemail`, and enum values this version does not know, kept as `Other(String)`.
//! Extra fields are ignored everywhere (no wire type denies unknown fields).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};

/// Parses a RingCentral timestamp: RFC 3339 (`2023-04-10T23:58:47.594Z`), an offset
/// without a colon (`2020-03-05T13:43:18.153+0000`), or no offset at all (taken as UTC).
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(d.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdOrNumber {
    Text(String),
    Signed(i64),
    Unsigned(u64),
    Float(f64),
}

impl IdOrNumber {
    fn into_string(self) -> String {
        match self {
            Self::Text(s) => s,
            Self::Signed(n) => n.to_string(),
            Self::Unsigned(n) => n.to_string(),
            Self::Float(f) => format!("{f}"),
        }
    }
}

/// `deserialize_with` for an id sent as a string or a number.
///
/// # Errors
/// When the value is neither.
pub fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    IdOrNumber::deserialize(d).map(IdOrNumber::into_string)
}

/// `deserialize_with` for an optional id sent as a string, a number or null.
///
/// # Errors
/// When the value is none of those.
pub fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<IdOrNumber>::deserialize(d)?.map(IdOrNumber::into_string))
}

/// `deserialize_with` for a timestamp in any form [`parse_timestamp`] accepts.
///
/// # Errors
/// When the text is not a timestamp.
pub fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    parse_timestamp(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {text:?}")))
}

/// `deserialize_with` for an optional timestamp (null or absent is `None`).
///
/// # Errors
/// When the text is present but not a timestamp.
pub fn opt_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) => parse_timestamp(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {text:?}"))),
    }
}

/// `deserialize_with` for a count or duration sent as a number (possibly fractional) or a
/// numeric string; fractions are rounded down, negatives become 0.
///
/// # Errors
/// When the value is not numeric.
pub fn opt_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(v) = Option::<IdOrNumber>::deserialize(d)? else {
        return Ok(None);
    };
    let n = match v {
        IdOrNumber::Unsigned(n) => n,
        IdOrNumber::Signed(n) => u64::try_from(n).unwrap_or(0),
        IdOrNumber::Float(f) => seconds_from_f64(f),
        IdOrNumber::Text(s) => {
            let f: f64 = s
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("not a number: {s:?}")))?;
            seconds_from_f64(f)
        }
    };
    Ok(Some(n))
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "clamped to the u64 range first"
)]
fn seconds_from_f64(f: f64) -> u64 {
    if f.is_finite() && f > 0.0 {
        f.min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// Declares a string enum that matches known values case-insensitively (so `VoiceMail`
/// and `Voicemail` are one value) and keeps any other value as `Other(String)`.
macro_rules! lenient_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal $(| $alt:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// Parses RingCentral's text, case-insensitively; unknown text is `Other`.
            pub fn parse(text: &str) -> Self {
                $(
                    if text.eq_ignore_ascii_case($text) $(|| text.eq_ignore_ascii_case($alt))* {
                        return Self::$variant;
                    }
                )+
                Self::Other(text.to_owned())
            }

            /// The canonical text (the spec's spelling), or the kept unknown value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Other(s) => s,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Ok(Self::parse(&text))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}
pub(crate) use lenient_enum;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    lenient_enum! {
        /// Test enum.
        Kind { VoiceMail => "VoiceMail", Fax => "Fax" }
    }

    #[derive(Deserialize)]
    struct Sample {
        #[serde(deserialize_with = "id")]
        id: String,
        #[serde(default, deserialize_with = "opt_timestamp")]
        at: Option<DateTime<Utc>>,
        #[serde(default, deserialize_with = "opt_seconds")]
        secs: Option<u64>,
        kind: Kind,
    }

    #[test]
    fn timestamps_parse_with_z_with_a_colonless_offset_and_without_an_offset() {
        let want = Utc.with_ymd_and_hms(2020, 3, 5, 13, 43, 18).unwrap();
        for text in [
            "2020-03-05T13:43:18Z",
            "2020-03-05T13:43:18.000+0000",
            "2020-03-05T14:43:18+01:00",
            "2020-03-05T15:43:18+0200",
            "2020-03-05T13:43:18",
        ] {
            let got = parse_timestamp(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(got.timestamp(), want.timestamp(), "{text}");
        }
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn ids_may_be_strings_or_numbers_and_unknown_enum_values_are_kept() {
        let a: Sample = serde_json::from_str(
            r#"{"id":402406985008,"at":"2018-09-18T09:24:03.000+0000","secs":"25","kind":"Voicemail","extra":1}"#,
        )
        .unwrap();
        assert_eq!(a.id, "402406985008");
        assert!(a.at.is_some());
        assert_eq!(a.secs, Some(25));
        assert_eq!(a.kind, Kind::VoiceMail);
        let b: Sample = serde_json::from_str(r#"{"id":"abc","secs":2.7,"kind":"Pager"}"#).unwrap();
        assert_eq!(b.id, "abc");
        assert_eq!(b.at, None);
        assert_eq!(b.secs, Some(2));
        assert_eq!(b.kind, Kind::Other("Pager".into()));
        assert_eq!(b.kind.as_str(), "Pager");
    }

    #[test]
    fn a_bad_timestamp_is_an_error_naming_the_text() {
        let err = serde_json::from_str::<Sample>(r#"{"id":"x","at":"soon","kind":"Fax"}"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("soon"), "{err}");
    }
}
