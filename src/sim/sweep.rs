//! Many scenarios in parallel.
//!
//! Each scenario is one single-threaded, deterministic [`Simulation`]; a
//! sweep runs them on a rayon pool of a chosen size and returns the results
//! in scenario order. A scenario never shares state with another, so the
//! results are identical whatever the thread count.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};

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
        .map_err(|e| e.about_trace(&s.trace))
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

/// Most worker threads a sweep may ask for. Each thread costs a stack and an
/// allocator arena, and a simulation is single-threaded, so threads beyond
/// the cores only add memory: thousands of them exhausted it.
pub const MAX_THREADS: usize = 256;

/// Runs `job(0) … job(count − 1)` on `threads` threads (0: one per core) and
/// hands each result to `sink` **in index order**, as soon as it and all
/// before it are done: results stream out, and memory holds at most a
/// window of finished results (four per thread, at least 16) waiting for
/// a slower one before them, however many jobs there are.
///
/// Once `stop` is set no new job starts; those already started finish and
/// are handed over, so the results handed over are always jobs `0..n`.
/// Returns `n`. A `sink` error stops the run the same way and is returned.
pub fn run_ordered<T, E>(
    count: usize,
    threads: usize,
    stop: &AtomicBool,
    job: impl Fn(usize) -> T + Sync,
    mut sink: impl FnMut(usize, T) -> Result<(), E>,
) -> Result<Result<usize, E>, String>
where
    T: Send,
{
    let pool = pool(threads)?;
    let workers = pool.current_num_threads().clamp(1, count.max(1));
    let window = (workers * 4).max(16);
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    // Jobs handed over so far, and a signal for workers waiting on the window.
    let emitted = (Mutex::new(0usize), Condvar::new());
    let (tx, rx) = mpsc::channel::<(usize, T)>();
    let (job, next, abort, emitted) = (&job, &next, &abort, &emitted);
    std::thread::scope(|s| {
        s.spawn(move || {
            pool.scope(|ps| {
                for _ in 0..workers {
                    let tx = tx.clone();
                    ps.spawn(move |_| loop {
                        if stop.load(Ordering::Relaxed) || abort.load(Ordering::Relaxed) {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break;
                        }
                        // A started job always finishes (the handed-over
                        // results stay a prefix); the lowest unfinished one
                        // is never held back, so this cannot deadlock.
                        let mut done = emitted.0.lock().unwrap_or_else(|e| e.into_inner());
                        while i >= *done + window {
                            done = emitted.1.wait(done).unwrap_or_else(|e| e.into_inner());
                        }
                        drop(done);
                        if tx.send((i, job(i))).is_err() {
                            break;
                        }
                    });
                }
                drop(tx);
            });
        });
        let mut pending = BTreeMap::new();
        let mut handed = 0usize;
        let mut failure = None;
        for (i, r) in rx {
            if failure.is_some() {
                continue;
            }
            pending.insert(i, r);
            while let Some(r) = pending.remove(&handed) {
                if let Err(e) = sink(handed, r) {
                    failure = Some(e);
                    abort.store(true, Ordering::Relaxed);
                    break;
                }
                handed += 1;
            }
            *emitted.0.lock().unwrap_or_else(|e| e.into_inner()) =
                if failure.is_some() { usize::MAX / 2 } else { handed };
            emitted.1.notify_all();
        }
        Ok(match failure {
            Some(e) => Err(e),
            None => Ok(handed),
        })
    })
}

/// The process's pool of `threads` threads (0: one per core), started on
/// first use and kept until the process ends.
fn pool(threads: usize) -> Result<Arc<rayon::ThreadPool>, String> {
    if threads > MAX_THREADS {
        return Err(format!(
            "at most {MAX_THREADS} threads (a simulation is single-threaded; this machine has {} cores), found {threads}",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ));
    }
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
