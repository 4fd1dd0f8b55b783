//! The command line (DESIGN §6). `main` parses it and calls [`run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;

/// ringrelay: RingCentral webhooks kept alive, every call activity delivered once.
#[derive(Debug, Parser)]
#[command(name = "ringrelay", version, about, long_about = None)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        global = true,
        env = "RINGRELAY_CONFIG",
        default_value = "ringrelay.toml"
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the middleware.
    Serve,
    /// Run everything against the built-in RingCentral simulator and show a summary.
    Demo(DemoArgs),
    /// Validate the config and each account's credentials and subscriptions.
    Check,
    /// Per account: subscription, expiry, last event, gaps, backlog, failed deliveries.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Apply the store's migrations and exit.
    Migrate,
    /// Manage subscriptions by hand.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCommand),
    /// Backfill a window of an account by hand.
    Backfill {
        /// The account slug.
        #[arg(long)]
        account: String,
        /// Start of the window (RFC 3339, or a duration ago such as "2h").
        #[arg(long)]
        since: String,
        /// End of the window (default: now).
        #[arg(long)]
        until: Option<String>,
    },
    /// Inspect and resend deliveries.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Config helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `ringrelay demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the data here instead of a temporary directory.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Keep running after the summary (the status page stays up).
    #[arg(long)]
    pub keep: bool,
}

/// `ringrelay subscriptions …`.
#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// List the account's subscriptions at RingCentral.
    List {
        /// The account slug.
        #[arg(long)]
        account: String,
    },
    /// Renew the account's subscription now.
    Renew {
        /// The account slug.
        #[arg(long)]
        account: String,
    },
    /// Delete and create the account's subscription.
    Recreate {
        /// The account slug.
        #[arg(long)]
        account: String,
    },
    /// Delete strays and non-Active subscriptions pointing at our URL.
    Cleanup {
        /// The account slug.
        #[arg(long)]
        account: String,
    },
}

/// `ringrelay deliveries …`.
#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries.
    List {
        /// Only failed and dead ones.
        #[arg(long)]
        failed: bool,
    },
    /// Retry one delivery now.
    Retry {
        /// The delivery id.
        id: String,
    },
    /// Resend every activity of a window to a sink.
    Replay {
        /// The sink name.
        #[arg(long)]
        sink: String,
        /// Start of the window.
        #[arg(long)]
        since: String,
    },
}

/// `ringrelay config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the commented default config.
    PrintDefault,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Config(ConfigCommand::PrintDefault) => {
            print!("{}", config::DEFAULT_CONFIG);
            ExitCode::SUCCESS
        }
        Command::Serve => match crate::app::serve_from_file(&cli.config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringrelay: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Demo(args) => match crate::demo::run(&args).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("ringrelay demo: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Check => match crate::config::load_file(&cli.config) {
            Err(e) => {
                eprint!("ringrelay check: {e}");
                ExitCode::from(2)
            }
            Ok(settings) => {
                let (text, ok) = crate::check::run(&settings).await;
                print!("{text}");
                if ok {
                    println!("\nall checks passed");
                    ExitCode::SUCCESS
                } else {
                    println!("\nsome checks failed: see the ✗ lines above");
                    ExitCode::FAILURE
                }
            }
        },
        Command::Status { json } => {
            with_settings(&cli.config, "status", |s| async move {
                let (text, healthy) = crate::commands::status(&s, json).await?;
                print!("{text}");
                Ok(if healthy {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            })
            .await
        }
        Command::Migrate => {
            with_settings(&cli.config, "migrate", |s| async move {
                print!("{}", crate::commands::migrate(&s).await?);
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
        Command::Deliveries(cmd) => {
            with_settings(&cli.config, "deliveries", |s| async move {
                let text = match cmd {
                    DeliveriesCommand::List { failed } => {
                        crate::commands::deliveries_list(&s, failed).await?
                    }
                    DeliveriesCommand::Retry { id } => {
                        crate::commands::deliveries_retry(&s, &id).await?
                    }
                    DeliveriesCommand::Replay { sink, since } => {
                        crate::commands::deliveries_replay(&s, &sink, &since).await?
                    }
                };
                print!("{text}");
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
        Command::Backfill {
            account,
            since,
            until,
        } => {
            with_settings(&cli.config, "backfill", |s| async move {
                print!(
                    "{}",
                    crate::commands::backfill(&s, &account, &since, until.as_deref()).await?
                );
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
        Command::Subscriptions(cmd) => {
            with_settings(&cli.config, "subscriptions", |s| async move {
                use crate::commands::SubscriptionsAction as A;
                let (account, action) = match cmd {
                    SubscriptionsCommand::List { account } => (account, A::List),
                    SubscriptionsCommand::Renew { account } => (account, A::Renew),
                    SubscriptionsCommand::Recreate { account } => (account, A::Recreate),
                    SubscriptionsCommand::Cleanup { account } => (account, A::Cleanup),
                };
                print!(
                    "{}",
                    crate::commands::subscriptions(&s, &account, action).await?
                );
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
    }
}

/// Loads the config, runs `f`, and turns its error into a message and exit status 1
/// (2 for config problems).
async fn with_settings<F, Fut>(path: &std::path::Path, name: &str, f: F) -> ExitCode
where
    F: FnOnce(crate::config::Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let settings = match crate::config::load_file(path) {
        Ok(s) => s,
        Err(e) => {
            eprint!("ringrelay {name}: {e}");
            return ExitCode::from(2);
        }
    };
    match f(settings).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringrelay {name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
