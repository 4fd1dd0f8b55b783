//! `ringrelay-sim`: a faithful fake RingCentral for ringrelay's tests, demo and local
//! development. It behaves like RingCentral as `docs/ringcentral.md` and the official
//! OpenAPI spec describe it, quirks included.
//!
//! Modules:
//! - [`clock`]: the injectable simulated clock every time rule asks.
//! - [`directory`]: the simulated accounts, extensions and JWT credentials.
//! - [`error`]: RingCentral's error body.
//! - [`telephony`]: calls, call log, voicemail and their generator.

pub mod clock;
pub mod directory;
pub mod error;
pub mod telephony;

pub use clock::SimClock;
pub use directory::{ExtensionKind, SimAccount, SimExtension};
pub use error::ApiError;
