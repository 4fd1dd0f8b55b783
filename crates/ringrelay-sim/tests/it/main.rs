//! End-to-end tests of the simulator over HTTP: one test binary.

mod control;
mod delivery;
mod helpers;
mod oauth;
mod ratelimit;
mod schemas;
mod subscriptions;
