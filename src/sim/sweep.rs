//! Many scenarios in parallel.
//!
//! Each scenario is one single-threaded, deterministic [`Simulation`]; a
//! sweep runs them on a rayon pool of a chosen size and returns the results
//! in scenario order. A scenario never shares state with another, so the
//! results are identical whatever the thread count.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::{NoDecisions, SimConfig, SimError, Simulation};
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
    Simulation::new(&s.policy, plan, s.config.clone()).run(&mut source, &mut NoBuckets, &mut NoDecisions).map_err(|e| {
        match e {
            SimError::EmptyTrace => trace::TraceError::no_rows(&s.trace).to_string(),
            e => e.to_string(),
        }
    })
}

/// Runs every scenario on `threads` threads (0: one per core); results in
/// scenario order.
///
/// The threads are kept for the next sweep of the same size: one pool per
/// thread count asked for, for the life of the process, shared by sweeps
/// run at the same time. Starting fresh threads for every sweep cost 4–8 ms
/// a sweep here (thread start, and each new thread's allocator arena
/// faulting its pages in again), a tenth of a sweep of 8 one-key scenarios.
pub fn run_sweep(scenarios: &[Scenario], threads: usize) -> Result<Vec<Result<Summary, String>>, String> {
    let pool = pool(threads)?;
    Ok(pool.install(|| scenarios.par_iter().map(run_scenario).collect()))
}

/// The process's pool of `threads` threads (0: one per core), started on
/// first use and kept until the process ends.
fn pool(threads: usize) -> Result<Arc<rayon::ThreadPool>, String> {
    static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = pools.iter().find(|(n, _)| *n == threads) {
        return Ok(p.clone());
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| format!("cannot start {threads} threads: {e}"))?,
    );
    pools.push((threads, p.clone()));
    Ok(p)
}
