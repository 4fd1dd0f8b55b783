//! Conformance of what several replicas share: the lease list, fenced activity writes,
//! and the shared OAuth tokens written only under their lease.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ringrelay::account::AccountId;
use ringrelay::activity::{Activity, ActivityKind, ActivitySource};
use ringrelay::config::Secret;
use ringrelay::store::{
    AppendOutcome, CursorUpdate, NewActivity, PROCESSOR_CURSOR, Store, StoreError, StoredTokens,
};

type S = Arc<dyn Store>;

const TTL: Duration = Duration::from_secs(10);

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::TimeDelta::seconds(secs)
}

fn acme() -> AccountId {
    AccountId::parse("acme").unwrap()
}

fn new(key: &str) -> NewActivity {
    NewActivity {
        activity: Activity::new(
            key.into(),
            ActivityKind::ALL[0],
            acme(),
            "call-1".into(),
            ActivitySource::Webhook,
            t(0),
            serde_json::Map::new(),
        ),
        sinks: vec!["crm".into()],
    }
}

fn cursor(v: i64) -> Option<CursorUpdate> {
    Some(CursorUpdate {
        account: None,
        name: PROCESSOR_CURSOR.to_owned(),
        value: v.to_string(),
    })
}

pub async fn a_fenced_write_lands_only_while_the_lease_is_held(s: S) {
    let a = s
        .acquire_lease("processor", "r1", t(0), TTL)
        .await
        .unwrap()
        .unwrap();
    let out = s
        .insert_activities_fenced(vec![new("k1")], cursor(5), &a)
        .await
        .unwrap();
    assert_eq!(out, vec![AppendOutcome::Stored]);
    // r1 pauses past its lease; r2 takes it (the fence grows).
    let b = s
        .acquire_lease("processor", "r2", t(11), TTL)
        .await
        .unwrap()
        .unwrap();
    assert!(b.fence > a.fence);
    let stale = s
        .insert_activities_fenced(vec![new("k2")], cursor(9), &a)
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    assert_eq!(
        s.cursor(None, PROCESSOR_CURSOR).await.unwrap().as_deref(),
        Some("5"),
        "the stale processor did not move the cursor"
    );
    assert!(s.activity_payload("k2").await.unwrap().is_none());
    s.insert_activities_fenced(vec![new("k2")], cursor(9), &b)
        .await
        .unwrap();
    assert_eq!(
        s.cursor(None, PROCESSOR_CURSOR).await.unwrap().as_deref(),
        Some("9")
    );
    // A released lease fences too.
    s.release_lease(&b).await.unwrap();
    let after = s.insert_activities_fenced(vec![new("k3")], None, &b).await;
    assert!(matches!(after, Err(StoreError::Conflict(_))));
}

pub async fn leases_list_their_holders(s: S) {
    assert!(s.leases().await.unwrap().is_empty());
    let p = s
        .acquire_lease("processor", "r1", t(0), TTL)
        .await
        .unwrap()
        .unwrap();
    s.acquire_lease("keeper:acme", "r2", t(0), TTL)
        .await
        .unwrap()
        .unwrap();
    let all = s.leases().await.unwrap();
    let names: Vec<(&str, &str)> = all
        .iter()
        .map(|l| (l.name.as_str(), l.owner.as_str()))
        .collect();
    assert_eq!(names, vec![("keeper:acme", "r2"), ("processor", "r1")]);
    assert_eq!(all[1].expires_at, t(10));
    s.release_lease(&p).await.unwrap();
    assert_eq!(
        s.leases().await.unwrap().len(),
        1,
        "released leases are not listed"
    );
}

pub async fn a_replica_renews_all_its_account_leases_at_once(s: S) {
    for name in ["keeper:a", "keeper:b"] {
        s.acquire_lease(name, "r1", t(0), TTL)
            .await
            .unwrap()
            .unwrap();
    }
    s.acquire_lease("keeper:c", "r2", t(0), TTL)
        .await
        .unwrap()
        .unwrap();
    s.acquire_lease("processor", "r1", t(0), TTL)
        .await
        .unwrap()
        .unwrap();
    // r2 takes keeper:b after it lapsed (r1 was paused): r1's batch no longer renews it.
    let b = s
        .acquire_lease("keeper:b", "r2", t(11), TTL)
        .await
        .unwrap()
        .unwrap();
    let renewed = s.renew_leases("r1", "keeper:", t(12), TTL).await.unwrap();
    let names: Vec<&str> = renewed.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, vec!["keeper:a"]);
    assert_eq!(renewed[0].expires_at, t(22));
    assert_eq!(renewed[0].owner, "r1");
    let all = s.leases().await.unwrap();
    let expiry = |n: &str| all.iter().find(|l| l.name == n).unwrap().expires_at;
    assert_eq!(expiry("keeper:a"), t(22));
    assert_eq!(expiry("keeper:b"), b.expires_at, "r2's lease untouched");
    assert_eq!(expiry("processor"), t(10), "other prefixes untouched");
}

fn tokens(access: &str, by: &str) -> StoredTokens {
    StoredTokens {
        account: acme(),
        credential: "cred-1".into(),
        access_token: Secret::new(access),
        access_expires_at: t(3600),
        refresh_token: Some(Secret::new(format!("refresh-of-{access}"))),
        refresh_expires_at: Some(t(7 * 86_400)),
        updated_at: t(0),
        updated_by: by.into(),
    }
}

pub async fn shared_tokens_are_written_only_under_their_lease(s: S) {
    assert!(s.oauth_tokens(&acme()).await.unwrap().is_none());
    let a = s
        .acquire_lease("token:acme", "r1", t(0), TTL)
        .await
        .unwrap()
        .unwrap();
    s.save_oauth_tokens(&tokens("A1", "r1"), &a).await.unwrap();
    let read = s.oauth_tokens(&acme()).await.unwrap().unwrap();
    assert_eq!(read.access_token.expose(), "A1");
    assert_eq!(
        read.refresh_token.as_ref().map(Secret::expose),
        Some("refresh-of-A1")
    );
    assert_eq!(read.access_expires_at, t(3600));
    assert_eq!(read.refresh_expires_at, Some(t(7 * 86_400)));
    assert_eq!(
        (read.credential.as_str(), read.updated_by.as_str()),
        ("cred-1", "r1")
    );
    let b = s
        .acquire_lease("token:acme", "r2", t(11), TTL)
        .await
        .unwrap()
        .unwrap();
    let stale = s.save_oauth_tokens(&tokens("A-stale", "r1"), &a).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))));
    s.save_oauth_tokens(&tokens("A2", "r2"), &b).await.unwrap();
    let read = s.oauth_tokens(&acme()).await.unwrap().unwrap();
    assert_eq!(read.access_token.expose(), "A2");
    assert_eq!(read.updated_by, "r2");
}
