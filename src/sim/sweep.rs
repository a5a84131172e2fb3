//! Many scenarios in parallel.
//!
//! Each scenario is one single-threaded, deterministic [`Simulation`]; a
//! sweep runs them on a rayon pool of a chosen size and returns the results
//! in scenario order. A scenario never shares state with another, so the
//! results are identical whatever the thread count.

use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;

use super::{NoDecisions, SimConfig, Simulation};
use crate::metrics::{NoBuckets, Summary};
use crate::policy::Policy;
use crate::trace;

/// One point of a sweep.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The policy.
    pub policy: Arc<Policy>,
    /// Plan name within the policy.
    pub plan: String,
    /// Trace file or synthetic spec.
    pub trace: PathBuf,
    /// Simulation settings (client, seed, start).
    pub config: SimConfig,
}

/// Runs one scenario to its summary.
pub fn run_scenario(s: &Scenario) -> Result<Summary, String> {
    let plan = s
        .policy
        .plan(&s.plan)
        .ok_or_else(|| format!("no plan named {:?}; plans: {}", s.plan, s.policy.plan_names().join(", ")))?;
    let mut source = trace::open(&s.trace, Some(s.config.seed)).map_err(|e| e.to_string())?;
    Simulation::new(&s.policy, plan, s.config.clone())
        .run(&mut source, &mut NoBuckets, &mut NoDecisions)
        .map_err(|e| e.to_string())
}

/// Runs every scenario on `threads` threads (0: one per core); results in
/// scenario order.
pub fn run_sweep(scenarios: &[Scenario], threads: usize) -> Result<Vec<Result<Summary, String>>, String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
    Ok(pool.install(|| scenarios.par_iter().map(run_scenario).collect()))
}
