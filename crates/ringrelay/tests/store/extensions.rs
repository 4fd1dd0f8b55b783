//! Conformance tests of the extension list (`replace_extensions`, `extensions`), run on
//! every backend through `conformance.rs`.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use ringrelay::account::AccountId;
use ringrelay::store::{ExtensionRecord, Store};

type S = Arc<dyn Store>;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::TimeDelta::seconds(secs)
}

fn ext(id: &str, covered: bool) -> ExtensionRecord {
    ExtensionRecord {
        extension_id: id.into(),
        number: Some(format!("1{id}")),
        name: format!("Ext {id}"),
        kind: "User".into(),
        status: "Enabled".into(),
        covered,
        reason: (!covered).then(|| "disabled".to_owned()),
    }
}

pub async fn extension_lists_are_replaced_per_account_keeping_unchanged_times(s: S) {
    let acme = AccountId::parse("acme").unwrap();
    let beta = AccountId::parse("beta").unwrap();
    assert!(s.extensions(&acme).await.unwrap().is_empty());
    let first = vec![ext("3", true), ext("1", true), ext("2", false)];
    s.replace_extensions(&acme, &first, t(0)).await.unwrap();
    s.replace_extensions(&beta, &[ext("9", true)], t(0))
        .await
        .unwrap();
    let got = s.extensions(&acme).await.unwrap();
    let ids: Vec<_> = got.iter().map(|e| e.record.extension_id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3"], "ordered by id");
    assert_eq!(got[1].record, ext("2", false));
    assert!(got.iter().all(|e| e.updated_at == t(0)));

    // Later: 1 unchanged, 2 now covered, 3 removed, 4 new; a null number round-trips.
    let mut four = ext("4", true);
    four.number = None;
    let second = vec![ext("1", true), ext("2", true), four.clone()];
    s.replace_extensions(&acme, &second, t(60)).await.unwrap();
    let got = s.extensions(&acme).await.unwrap();
    let summary: Vec<_> = got
        .iter()
        .map(|e| (e.record.extension_id.as_str(), e.updated_at))
        .collect();
    assert_eq!(summary, [("1", t(0)), ("2", t(60)), ("4", t(60))]);
    assert_eq!(got[2].record, four);
    assert_eq!(got[1].record.reason, None);
    // Other accounts are untouched; an empty list clears the account.
    assert_eq!(s.extensions(&beta).await.unwrap().len(), 1);
    s.replace_extensions(&acme, &[], t(120)).await.unwrap();
    assert!(s.extensions(&acme).await.unwrap().is_empty());
    assert_eq!(s.extensions(&beta).await.unwrap().len(), 1);
}

pub async fn a_repeated_extension_id_keeps_its_last_values(s: S) {
    let acme = AccountId::parse("acme").unwrap();
    s.replace_extensions(&acme, &[ext("1", true)], t(0))
        .await
        .unwrap();
    let dup = vec![ext("2", true), ext("2", false)];
    // A duplicate in one list: the second row updates the first (upsert), so the result
    // is one row with the last values; nothing else is lost.
    s.replace_extensions(&acme, &dup, t(5)).await.unwrap();
    let got = s.extensions(&acme).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].record, ext("2", false));
}
