//! `ringrelay-sim`: a faithful fake RingCentral for ringrelay's tests, demo and local
//! development. It behaves like RingCentral as `docs/ringcentral.md` and the official
//! OpenAPI spec describe it, quirks included. `docs/simulator.md` is the user guide.
//!
//! Modules:
//! - [`clock`]: the injectable simulated clock every time rule asks.
//! - [`directory`]: the simulated accounts, extensions and JWT credentials.
//! - [`error`]: RingCentral's error body.
//! - [`config`]: [`SimConfig`], the limits and knobs.
//! - [`ratelimit`]: per-(user, group) limits with the penalty rule.
//! - [`filters`]: event-filter validation, `~` expansion and matching.
//! - [`extensions`]: the extension list and info, the authorization profile, and
//!   extension changes at runtime with their extension-list events.
//! - `state`: the shared state, [`Fault`], and the request/delivery logs.
//! - `oauth`: the token and revoke endpoints and OAuth sessions.
//! - `subscriptions`, `handshake`: the Subscriptions API and its validation handshake.
//! - `delivery`: webhook envelopes, blacklisting, reminders, expiry.
//! - `gate`: the middleware applying faults and rate limits and logging requests.
//! - `control`: the `/sim/…` control API.
//! - `calls`: scheduling generated calls' notifications; routing telephony `GET`s.
//! - `server`: [`Sim::start`] and [`SimHandle`].
//! - [`telephony`]: calls, call log, voicemail and their generator.

mod calls;
pub mod clock;
pub mod config;
mod control;
mod delivery;
pub mod directory;
pub mod error;
pub mod extensions;
pub mod filters;
mod gate;
mod handshake;
mod oauth;
pub mod ratelimit;
mod server;
mod state;
mod subscriptions;
pub mod telephony;

pub use clock::SimClock;
pub use config::{CallLogFilter, RateLimits, SimConfig};
pub use directory::{ExtensionKind, ExtensionStatus, SimAccount, SimExtension, SimPermissions};
pub use error::ApiError;
pub use oauth::{JWT_GRANT, OAuthError};
pub use server::{Sim, SimHandle};
pub use state::{
    BlacklistedData, DeliveryRecord, DisabledFilter, DropDeliveries, Fault, RequestRecord,
    TokenRequest,
};
pub use telephony::{CallScenario, GeneratedCall};
