//! The client's extension list and permission probe against the simulator: every page
//! of a large account, paced in the Medium group, and the authorization profile of an
//! administrator and of a plain user.

#[path = "support/sim_client.rs"]
mod sim_client;

use std::sync::Arc;

use ringrelay::ringcentral::{ApiError, ExtensionKind, ExtensionStatus, RingCentral};
use ringrelay_sim::{RateLimits, Sim, SimAccount, SimConfig, SimHandle, SimPermissions};

fn client(sim: &SimHandle) -> RingCentral {
    let settings = sim_client::settings(sim);
    RingCentral::with_clock(settings, Arc::new(sim.clock())).unwrap()
}

async fn start(account: SimAccount, limits: RateLimits) -> SimHandle {
    Sim::start(
        SimConfig::default()
            .with_accounts(vec![account])
            .with_rate_limits(limits),
    )
    .await
    .expect("simulator starts")
}

#[tokio::test]
async fn every_page_of_a_large_account_is_listed_and_paced_in_the_medium_group() {
    let limits = RateLimits {
        medium: 2,
        ..RateLimits::default()
    };
    let sim = start(SimAccount::company(0, 3500), limits).await;
    let rc = client(&sim);
    let got = rc.list_extensions().await.unwrap();
    let want = &sim.accounts()[0].extensions;
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.id, w.id);
        assert_eq!(g.number.as_deref(), Some(w.number.as_str()));
        assert_eq!(g.name, w.name);
        assert_eq!(g.kind.as_str(), w.kind.as_str());
        assert_eq!(g.status.as_str(), w.status.as_str());
    }
    assert!(got.iter().any(|e| e.kind == ExtensionKind::Department));
    assert!(got.iter().any(|e| e.status == ExtensionStatus::Disabled));
    let pages: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| {
            r.path
                .split('?')
                .next()
                .is_some_and(|p| p.ends_with("/extension"))
        })
        .collect();
    assert_eq!(pages.iter().filter(|r| r.status == 200).count(), 4);
    // The client learns the limit from the headers; after a 429 it waits out the penalty.
    for pair in pages.windows(2).filter(|p| p[0].status == 429) {
        assert!(pair[1].at - pair[0].at >= chrono::Duration::seconds(30));
    }
    assert!(sim.too_many_requests() <= 1, "{}", sim.too_many_requests());
    sim.shutdown().await;
}

#[tokio::test]
async fn the_permission_probe_tells_an_administrator_from_a_plain_user() {
    let sim = start(SimAccount::company(0, 5), RateLimits::default()).await;
    let rc = client(&sim);
    let admin = rc.permissions().await.unwrap();
    assert!(admin.company_call_log && admin.company_messages);
    let account = sim.accounts()[0].id.clone();
    sim.set_permissions(&account, SimPermissions::SELF_ONLY)
        .unwrap();
    let user = rc.permissions().await.unwrap();
    assert!(!user.company_call_log && !user.company_messages);
    assert!(user.granted.iter().any(|g| g.id == "ReadMessages"));
    sim.set_permissions(
        &account,
        SimPermissions {
            read_accounts: false,
            ..SimPermissions::ADMIN
        },
    )
    .unwrap();
    match rc.list_extensions().await {
        Err(ApiError::Forbidden { code, .. }) => assert_eq!(code, "CMN-401"),
        other => panic!("expected 403 CMN-401, got {other:?}"),
    }
    sim.shutdown().await;
}
