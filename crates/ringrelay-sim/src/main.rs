//! The standalone simulator: `ringrelay-sim --port 9000`. Parses the CLI, starts the
//! simulator with a background ticker, prints the credentials and waits for Ctrl-C.

use std::time::Duration;

use clap::Parser;
use ringrelay_sim::{RateLimits, Sim, SimAccount, SimConfig, SimPermissions};

/// A faithful fake RingCentral (OAuth, subscriptions, webhook delivery, rate limits).
///
/// It listens on 127.0.0.1 and serves RingCentral's paths under /restapi/… plus a control
/// API under /sim/… : GET /sim/accounts (credentials), GET /sim/clock, POST /sim/advance
/// {"seconds":N}, POST /sim/tick, POST|DELETE /sim/faults, GET /sim/subscriptions,
/// POST /sim/subscriptions/{id}/blacklist, POST /sim/drop-deliveries {"count":N} or
/// {"seconds":N}, POST /sim/inject {"accountId","event","body"}, POST /sim/calls
/// {"scenario":"InboundAnswered"} or {"random":N}, POST /sim/complete-calls, GET /sim/requests,
/// GET /sim/deliveries. See docs/simulator.md.
#[derive(Debug, Parser)]
#[command(name = "ringrelay-sim", version)]
struct Cli {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Number of simulated accounts.
    #[arg(long, default_value_t = 1)]
    accounts: u32,
    /// Extensions per account (the first is the JWT's user).
    #[arg(long, default_value_t = 4)]
    extensions: u32,
    /// Generate company accounts: mixed extension kinds and statuses
    /// (`SimAccount::company`; try `--extensions 200`).
    #[arg(long)]
    company: bool,
    /// The JWT users may read only their own extension's call log and messages.
    #[arg(long)]
    self_only: bool,
    /// The app's client id (Basic auth on /restapi/oauth/*).
    #[arg(long, default_value = "sim-client-id")]
    client_id: String,
    /// The app's client secret.
    #[arg(long, default_value = "sim-client-secret")]
    client_secret: String,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    access_token_ttl: u64,
    /// Subscriptions per user per app before 403 SUB-505.
    #[arg(long, default_value_t = 30)]
    max_subscriptions: usize,
    /// Seconds of sustained delivery failure before a subscription is blacklisted.
    #[arg(long, default_value_t = 600)]
    blacklist_after: u64,
    /// Turn rate limiting off (headers are still sent).
    #[arg(long)]
    no_rate_limits: bool,
    /// Milliseconds between background ticks (expiry, renewal reminders).
    #[arg(long, default_value_t = 1000)]
    tick_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let config = SimConfig {
        accounts: (0..cli.accounts.max(1))
            .map(|n| {
                let account = if cli.company {
                    SimAccount::company(n, cli.extensions)
                } else {
                    SimAccount::generated(n, cli.extensions)
                };
                if cli.self_only {
                    account.with_permissions(SimPermissions::SELF_ONLY)
                } else {
                    account
                }
            })
            .collect(),
        port: Some(cli.port),
        client_id: cli.client_id,
        client_secret: cli.client_secret,
        access_token_ttl: Duration::from_secs(cli.access_token_ttl),
        max_subscriptions: cli.max_subscriptions,
        blacklist_after: Duration::from_secs(cli.blacklist_after),
        rate_limits: RateLimits {
            enabled: !cli.no_rate_limits,
            ..RateLimits::default()
        },
        ..SimConfig::default()
    };
    let mut sim = Sim::start(config).await?;
    sim.spawn_ticker(Duration::from_millis(cli.tick_ms.max(10)));
    println!("ringrelay-sim listening on {}", sim.base_url());
    println!(
        "client id: {}  client secret: {}",
        sim.config().client_id,
        sim.config().client_secret
    );
    for a in sim.accounts() {
        println!(
            "account {} owner extension {} jwt: {}",
            a.id,
            a.owner().id,
            a.jwt
        );
    }
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
