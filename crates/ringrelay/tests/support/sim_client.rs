//! The RingCentral client settings the tests use against the simulator: account `acme`
//! logging in as the simulator's first account, default retries and rate limits.

use std::time::Duration;

use ringrelay::account::AccountId;
use ringrelay::config::Secret;
use ringrelay::ringcentral::{ClientSettings, GovernorSettings, RetryPolicy};
use ringrelay_sim::SimHandle;

/// Settings for account `acme` as the simulator's first account.
pub fn settings(sim: &SimHandle) -> ClientSettings {
    ClientSettings {
        account: AccountId::parse("acme").expect("slug"),
        server: sim.base_url().parse().expect("the simulator's URL"),
        client_id: sim.config().client_id.clone(),
        client_secret: Secret::new(sim.config().client_secret.clone()),
        jwt: Secret::new(sim.accounts()[0].jwt.clone()),
        request_timeout: Duration::from_secs(10),
        refresh_before: Duration::from_secs(300),
        retry: RetryPolicy::default(),
        limits: GovernorSettings::default(),
    }
}
