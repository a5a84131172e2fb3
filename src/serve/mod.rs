//! `ratesim serve`: a live provider emulator.
//!
//! A local HTTP server that answers like one plan of a policy, so a team can
//! watch its own client meet "RunInfra Pro" or "AICredits" without burning
//! real quota. Every request that reaches the limiter is decided by the
//! production [`KeyedLimiter`](crate::limiter::KeyedLimiter) on the system
//! clock, and its status, rate-limit headers and JSON error body are rendered
//! by [`policy::render`](crate::policy::render): the very code the simulator's
//! clients see. One engine, two clocks.
//!
//! ## The pieces
//!
//! - [`routes`]: which method and path answer what, and the endpoint name
//!   each one gives the policy's selectors (`POST /v1/chat/completions` →
//!   `chat.completions`; `--route` adds or renames).
//! - [`identity`]: who is calling: `Authorization: Bearer KEY`, resolved to
//!   a user and workspace by an optional keys file; no header means an
//!   unauthenticated caller keyed by its address.
//! - [`backend`]: the seam to the limiter. [`LocalBackend`] runs a
//!   `KeyedLimiter` in process and gives every decision and completion its
//!   own instant, in order, so that the log replays exactly; another backend
//!   (a Redis-held limiter) plugs in behind the same [`Backend`] trait.
//! - [`endpoints`]: the bodies: an OpenAI-compatible chat completion (JSON
//!   or server-sent events), predictions with a status to poll, RunAgent's
//!   usage report, and the JSON errors of malformed requests.
//! - [`log`]: the decision log (`--log FILE.jsonl`), one line per decision
//!   in the schema of `ratesim run --decisions`, and its conversion back into
//!   a trace ([`log::to_trace`]) for replay with `ratesim run --client none`.
//! - [`server`]: hyper on tokio: connections, timeouts, the request pipeline,
//!   permits held by the response body, graceful shutdown on Ctrl-C/SIGTERM.
//!
//! ## Exact replay
//!
//! Decisions and completions are taken one at a time, each at its own
//! instant (`max(wall clock, previous instant + 1 ns)`), and arrivals are
//! numbered in that order. The log records each arrival's instant, identity,
//! endpoint, tokens, money and how long it held its permits, so replaying its
//! arrivals through the simulator with `--client none` meets the same limiter
//! states in the same order: the decisions file it writes is the log's
//! decision columns, byte for byte (`tests/serve.rs` checks this).

pub mod backend;
pub mod endpoints;
pub mod identity;
mod inflight;
pub mod log;
pub mod routes;
pub mod server;
pub mod service_time;

pub use backend::{Backend, Checked, LocalBackend};
pub use server::{run, ServeOptions, ServeReport};
