//! ringrelay keeps RingCentral webhook subscriptions alive for many customer accounts,
//! stores every event RingCentral pushes exactly once, fills every gap from the call log
//! and message store, and delivers clean, signed, retried call activities to CRM sinks.
//!
//! The map (see `ARCHITECTURE.md` for the data flow and the invariants):
//! - [`cli`]: the command line (`serve`, `demo`, `check`, `status`, …).
//! - [`config`]: the typed, layered configuration (embedded defaults, file, environment).
//! - [`app`]: the one assembly point, `Application::build` / `run_until_stopped`.
//! - [`shutdown`]: the one shutdown signal every server and loop watches.
//! - [`telemetry`]: logging setup with secrets kept out.
//! - [`account`]: the validated account slug.
//! - [`activity`]: the activity schema sinks receive, and deterministic activity ids.
//! - [`ringcentral`]: the only code that talks to RingCentral (auth, typed calls, limits).
//! - [`store`]: the one persistence trait, with SQLite and PostgreSQL backends.
//! - [`receiver`]: the webhook endpoint RingCentral calls.
//! - [`processor`]: inbox → activities (telephony state machine, voicemail).
//! - [`delivery`]: sinks, signing, retry policy, replay.
//! - [`keeper`]: one Active subscription per account, renewals, the coverage ledger.
//! - [`cluster`]: several replicas on one database: leases, shared OAuth tokens, owners.
//! - [`demo`]: `ringrelay demo`, the whole system against the simulator and a demo CRM.

pub mod account;
pub mod activity;
pub mod admin;
pub mod app;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod keeper;
pub mod pipeline;
pub mod processor;
pub mod receiver;
pub mod ringcentral;
pub mod shutdown;
pub mod store;
pub mod telemetry;
