//! End-to-end tests of the simulator over HTTP: one test binary.

mod calls;
mod control;
mod delivery;
mod extensions;
mod helpers;
mod knobs;
mod oauth;
mod ratelimit;
mod schemas;
mod subscriptions;
