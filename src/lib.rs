//! # ratesim
//!
//! A deterministic discrete-event simulator and policy engine for API rate
//! limits. The same limiter engines answer production requests on a real
//! clock and simulated requests on a virtual one.
//!
//! The modules, in the order data flows through them:
//!
//! - [`time`]: integer nanoseconds, exact rational rates, calendar helpers;
//! - [`engines`]: the pure limiter state machines (GCRA, fixed window,
//!   sliding log, sliding counter, concurrency, budget);
//! - [`policy`]: the TOML policy format, plans, selectors, scopes, atomic
//!   composition of limits and rendering of HTTP responses;
//! - [`limiter`]: the thread-safe production limiter over a plan;
//! - [`trace`]: request traces, recorded (CSV, JSONL) or synthetic;
//! - [`client`]: how clients retry, back off and pace themselves;
//! - [`sim`]: the deterministic discrete-event simulator and sweeps;
//! - [`metrics`]: time buckets and run summaries;
//! - [`report`]: the terminal summary, JSON/CSV files and charts;
//! - [`verify`]: another limiter's decision log checked against a plan;
//! - [`probe`]: a live limiter sent a trace, its answers verified;
//! - [`serve`]: `ratesim serve`, a live HTTP emulator of a plan;
//! - [`cli`]: the `ratesim` command line.
//!
//! See ARCHITECTURE.md for the data path and the invariants.

#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod engines;
mod ident;
pub mod limiter;
pub mod metrics;
pub mod policy;
pub mod probe;
pub mod report;
pub mod serve;
pub mod sim;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod toml_input;
pub mod trace;
pub mod verify;
pub mod whatif;
