//! Query-string parsing for the telephony endpoints: repeated keys (`type[]=Voice` or
//! `type=Voice`), RingCentral's date-times, and paging parameters, each failing with the
//! `CMN-101` body that names the bad parameter.

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::ApiError;

/// A request's parsed query string, keeping order and repeated keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string (without `?`); `None` is an empty query.
    ///
    /// # Errors
    /// `CMN-101` when the string is not valid `application/x-www-form-urlencoded`.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let raw = raw.unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
            .map(Self)
            .map_err(|_| ApiError::new(400, "CMN-101", "Query string is invalid"))
    }

    /// From already-split pairs.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// The pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The first value of `key` (or `key[]`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.all(key).into_iter().next()
    }

    /// Every value of `key` and `key[]`, comma-separated values split.
    pub fn all(&self, key: &str) -> Vec<&str> {
        let bracketed = format!("{key}[]");
        self.0
            .iter()
            .filter(|(k, _)| *k == key || *k == bracketed)
            .flat_map(|(_, v)| v.split(','))
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// An optional date-time parameter.
    ///
    /// # Errors
    /// `CMN-101` naming `key` when the value is not a date-time RingCentral accepts.
    pub fn date(&self, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(key)
            .map(|v| parse_time(v).ok_or_else(|| ApiError::invalid_parameter(key)))
            .transpose()
    }

    /// An optional integer in `min..=max`.
    ///
    /// # Errors
    /// `CMN-101` naming `key` when the value is not an integer in range.
    pub fn int(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| ApiError::invalid_parameter(key))
            })
            .transpose()
    }

    /// One of `allowed`, or `default` when absent.
    ///
    /// # Errors
    /// `CMN-101` naming `key` for any other value.
    pub fn choice<'a>(
        &'a self,
        key: &str,
        allowed: &[&str],
        default: &'a str,
    ) -> Result<&'a str, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) if allowed.contains(&v) => Ok(v),
            Some(_) => Err(ApiError::invalid_parameter(key)),
        }
    }

    /// The same query with `key` set to `value` (replacing earlier values), encoded.
    pub fn with(&self, key: &str, value: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .0
            .iter()
            .filter(|(k, _)| k != key)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.push((key, value));
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// Parses RingCentral's date-time forms: RFC 3339 (`Z` or `+00:00`), an offset without a
/// colon (`+0000`, as real payloads carry), and a bare date (midnight UTC).
pub fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// Validated `page` / `perPage` (`perPage` 1–1000 or `max`, default 100; `page` ≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based page.
    pub page: usize,
    /// Records per page.
    pub per_page: usize,
}

impl Paging {
    /// Reads `page` and `perPage` from the query.
    ///
    /// # Errors
    /// `CMN-101` naming the bad parameter.
    pub fn from_params(params: &Params) -> Result<Self, ApiError> {
        let per_page = match params.get("perPage") {
            Some("max") => 1000,
            _ => params.int("perPage", 1, 1000)?.unwrap_or(100),
        };
        let page = params.int("page", 1, u64::from(u32::MAX))?.unwrap_or(1);
        Ok(Self {
            page: usize::try_from(page).unwrap_or(usize::MAX),
            per_page: usize::try_from(per_page).unwrap_or(1000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_bracketed_keys_are_all_read() {
        let p = Params::parse(Some("type[]=Voice&type=Fax&direction=Inbound,Outbound")).unwrap();
        assert_eq!(p.all("type"), vec!["Voice", "Fax"]);
        assert_eq!(p.all("direction"), vec!["Inbound", "Outbound"]);
    }

    #[test]
    fn the_time_forms_ringcentral_uses_are_accepted() {
        let z = parse_time("2014-04-29T14:29:20.531Z").unwrap();
        assert_eq!(parse_time("2014-04-29T14:29:20.531+0000"), Some(z));
        assert!(parse_time("2014-04-29").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn paging_rejects_out_of_range_values_naming_the_parameter() {
        let p = Params::parse(Some("perPage=1001")).unwrap();
        assert_eq!(
            Paging::from_params(&p)
                .unwrap_err()
                .parameter_name
                .as_deref(),
            Some("perPage")
        );
        let p = Params::parse(Some("page=0")).unwrap();
        assert_eq!(
            Paging::from_params(&p)
                .unwrap_err()
                .parameter_name
                .as_deref(),
            Some("page")
        );
        let p = Params::parse(Some("perPage=max")).unwrap();
        assert_eq!(Paging::from_params(&p).unwrap().per_page, 1000);
    }
}
