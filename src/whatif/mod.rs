//! What-if planning: many variations of one simulation, run in parallel,
//! summarized with statistics, split across machines and searched.
//!
//! - [`axes`]: the sweep's axes (plans, `--set` overrides, traffic scale,
//!   key multiplier, clients, seeds) and its deterministic scenario list,
//!   shards included;
//! - [`sweep`]: a sweep made ready (policies validated, trace measured)
//!   and run, results streamed in scenario order;
//! - [`results`]: plain data per scenario and per point, and the CSV and
//!   JSON files;
//! - [`stats`]: means and Student-t confidence intervals over seeds;
//! - [`table`]: the terminal table;
//! - [`merge`]: shards put back together, byte for byte;
//! - [`solve`]: the smallest (or largest) value of one parameter that meets
//!   targets, by bisection, with monotonicity checked.
//!
//! The command line (`ratesim sweep`, `ratesim solve`) only parses
//! arguments and chooses outputs; everything here is a library, so charts
//! and notebooks can read the same [`results::ScenarioResult`]s.

pub mod axes;
pub mod merge;
pub mod results;
pub mod solve;
pub mod stats;
pub mod sweep;
pub mod table;
