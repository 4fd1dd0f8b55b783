//! The processor: inbox notifications → activities (telephony state machine, voicemail).
//!
//! This is the pure core (no I/O), DESIGN §3:
//! - [`envelope`]: the notification envelope and what its `event` path is about;
//! - [`interpret`]: a notification → the typed work it asks for;
//! - [`lenient`]: readers for the shapes RingCentral really sends;
//! - [`telephony`]: the typed telephony session event;
//! - [`state`]: per-session state, tolerant of out-of-order and duplicated events;
//! - [`derive`]: state → call activities, each emitted once;
//! - [`messages`]: voicemail events and message-store records → `voicemail.received`;
//! - [`calllog`]: call-log records → `call.logged`, `call.recording_ready`, backfilled
//!   `call.missed`.
//!
//! Activity keys are deterministic (see `docs/activities.md`), so an activity derived live
//! and again from a backfill has the same key and id and the store keeps it once.

pub mod calllog;
pub mod derive;
pub mod envelope;
pub mod interpret;
pub mod lenient;
pub mod messages;
pub mod state;
pub mod telephony;

#[cfg(test)]
mod tests;
