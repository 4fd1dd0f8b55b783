//! Shared response pieces: RingCentral's timestamp spellings and the
//! `{uri, records, navigation, paging}` list envelope (`EnumeratedPagingModel`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::query::{Paging, Params};

/// `2020-06-23T01:19:21.627Z`: the form of telephony events and call-log records.
pub fn rc_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `2014-04-29T14:29:20.531+0000`: the form of message-store event bodies (offset
/// without a colon, as the real payload has it).
pub fn rc_time_offset(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// One page of `all` as a list response at `url` (base URL + path) with `params`.
pub fn page(url: &str, params: &Params, paging: Paging, all: Vec<Value>) -> Value {
    let total = all.len();
    let start = paging
        .page
        .saturating_sub(1)
        .saturating_mul(paging.per_page);
    let records: Vec<Value> = all.into_iter().skip(start).take(paging.per_page).collect();
    let link =
        |p: usize| json!({ "uri": format!("{url}?{}", params.with("page", &p.to_string())) });
    let total_pages = total.div_ceil(paging.per_page).max(1);
    let mut navigation = json!({ "firstPage": link(1), "lastPage": link(total_pages) });
    if paging.page < total_pages {
        navigation["nextPage"] = link(paging.page + 1);
    }
    if paging.page > 1 {
        navigation["previousPage"] = link((paging.page - 1).min(total_pages));
    }
    let mut paging_json = json!({
        "page": paging.page,
        "perPage": paging.per_page,
        "totalPages": total_pages,
        "totalElements": total,
    });
    if !records.is_empty() {
        paging_json["pageStart"] = json!(start);
        paging_json["pageEnd"] = json!(start + records.len() - 1);
    }
    json!({
        "uri": format!("{url}?{}", params.with("page", &paging.page.to_string())),
        "records": records,
        "paging": paging_json,
        "navigation": navigation,
    })
}
