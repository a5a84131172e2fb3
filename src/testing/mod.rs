//! Property tests for *your* limiter, with ratesim's exact model as the
//! oracle (feature `testing`).
//!
//! You have a limiter in Rust — a middleware, a gateway plugin, a port of a
//! Redis script — and a plan it is meant to enforce, written as a ratesim
//! policy. [`check`] generates traces that go where limiters break
//! ([`trace`]: same-instant ties, arrivals exactly on window edges and one
//! nanosecond before, exactly at retry instants, long quiet spells, costs at
//! the capacity and one either side, permits held and never released),
//! feeds each to a fresh limiter of yours and to the exact model
//! ([`Oracle`], i.e. [`Plan::check`]) side by side, and stops at the first
//! request they answer differently. proptest then shrinks the trace to a
//! minimal one that still fails, and [`Failure`] prints it.
//!
//! Your limiter is anything implementing [`Limiter`], including a closure
//! `(now, &request) -> admitted`; [`Limiter::complete`] hears when an
//! admitted request finishes (for concurrency caps and budgets). `now` is
//! nanoseconds since the Unix epoch; traces start at [`Config::start`]
//! (2026-01-01T00:00:00Z by default), so epoch-aligned windows and
//! calendar budgets are real.
//!
//! Runs are deterministic: the same configuration (and [`Config::seed`])
//! generates the same cases and the same minimal failure.
//!
//! ## Example: a token bucket in floating point
//!
//! A common way to write a token bucket keeps the tokens and the last
//! refill time as `f64` seconds. It looks right, and it is right almost
//! everywhere; but an `f64` holds a Unix time in seconds only to about
//! 0.24 µs, so near the instant a token becomes due the refill comes out a
//! hair short or long, and the bucket answers the wrong way:
//!
//! ```
//! use ratesim::policy::{self, Request};
//! use ratesim::testing::{check, Config};
//!
//! let policy = policy::parse(
//!     r#"
//! provider = "Example"
//! [[plan]]
//! name = "p"
//! [[plan.limit]]
//! id = "rps"
//! algorithm = "gcra"
//! rate = "7/s"
//! burst = 1
//! "#,
//!     "example.toml",
//! )?;
//!
//! /// One bucket per key: `(tokens, last refill in seconds)`.
//! struct FloatBucket(std::collections::HashMap<String, (f64, f64)>);
//!
//! let failure = check(&policy.plans[0], &Config::default(), || {
//!     let mut buckets = FloatBucket(Default::default());
//!     move |now: u64, req: &Request<'_>| {
//!         let now = now as f64 / 1e9;
//!         let (tokens, last) = buckets.0.entry(req.key.to_string()).or_insert((1.0, now));
//!         *tokens = (*tokens + (now - *last) * 7.0).min(1.0);
//!         *last = now;
//!         if *tokens >= 1.0 {
//!             *tokens -= 1.0;
//!             true
//!         } else {
//!             false
//!         }
//!     }
//! })
//! .unwrap_err();
//! // The shrunk trace: a request, a denied one (the model announces when
//! // the next token is due: 1/7 s later, rounded up to the nanosecond),
//! // and the retry exactly then, which the float bucket refuses.
//! assert_eq!(failure.arrivals.len(), 3);
//! assert_eq!(failure.arrivals[2].at - failure.arrivals[0].at, 142_857_143);
//! assert!(failure.policy.allowed && !failure.limiter);
//! println!("{failure}");
//! # Ok::<(), ratesim::policy::PolicyError>(())
//! ```
//!
//! which prints
//!
//! ```text
//! the limiter disagrees with the plan at arrival #2 (minimal trace of 3, after 772 cases)
//!    #  t (since 2026-01-01T00:00:00Z)  key  limiter   policy
//!    0  0.5154016 s                     k0   admitted  admitted
//!    1  0.5154016 s                     k0   denied    denied (rps)
//!  > 2  0.658258743 s                   k0   denied    admitted
//! ```
//!
//! (At the trace's very start the same three requests pass: whether the
//! float rounds the refill up or down depends on the instant, which is why
//! such bugs hide from hand-written tests.)
//!
//! `tests/testing_api.rs` and `examples/check_limiter.rs` also catch a
//! fixed window that counts denied requests (with token costs: 1 of 10
//! admitted, 10 denied but counted, then 0 more refused).
//!
//! ## Using the pieces
//!
//! [`trace::steps`] is the proptest strategy, [`materialize`] places a
//! generated trace for a plan, and [`Oracle`] answers requests one at a time:
//! use them in your own `proptest!` blocks to assert more than admission
//! (headers, retry instants, the figures your limiter reports).

mod oracle;
pub mod trace;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

pub use oracle::Oracle;
pub use proptest;
pub use trace::{Amount, Arrival, Gap, Service, Step};

use crate::engines::Retry;
use crate::policy::{Plan, PlanDecision, Request, Tickets};
use crate::time::{format_decimal_seconds, format_rfc3339, Nanos};
use trace::Shape;

/// A limiter under test.
pub trait Limiter {
    /// Whether `req` is admitted at `now` (ns since the Unix epoch). An
    /// admission should consume what the limiter's policy says it consumes.
    fn check(&mut self, now: Nanos, req: &Request<'_>) -> bool;

    /// An admitted request finished at `now` (release its permits, settle
    /// its budgets); `arrival` is its number in the trace (0 for the first
    /// [`Limiter::check`] call, and so on). Called only for requests this
    /// limiter admitted, in time order with the checks (before a check at
    /// the same instant). Does nothing by default.
    fn complete(&mut self, now: Nanos, req: &Request<'_>, arrival: usize) {
        let _ = (now, req, arrival);
    }
}

impl<F: FnMut(Nanos, &Request<'_>) -> bool> Limiter for F {
    fn check(&mut self, now: Nanos, req: &Request<'_>) -> bool {
        self(now, req)
    }
}

/// How [`check`] runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Traces tried (before shrinking a failure).
    pub cases: u32,
    /// Longest trace generated.
    pub max_arrivals: usize,
    /// Keys sending (`k0`, `k1`, ...; pairs share a user).
    pub keys: usize,
    /// The first instant of every trace (ns since the Unix epoch).
    pub start: Nanos,
    /// Seed of the case generator.
    pub seed: u64,
    /// Most shrinking steps.
    pub max_shrink_iters: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cases: 512,
            max_arrivals: 40,
            keys: 2,
            start: crate::sim::DEFAULT_START,
            seed: 0,
            max_shrink_iters: 10_000,
        }
    }
}

/// One row of a failing trace: the arrival and both answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    /// The request.
    pub arrival: Arrival,
    /// Whether your limiter admitted it.
    pub limiter: bool,
    /// The plan's answer.
    pub policy: PlanDecision,
}

/// A minimal trace on which the limiter and the plan disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The arrivals up to and including the disagreement.
    pub arrivals: Vec<Arrival>,
    /// Every arrival with both answers (the last one disagrees).
    pub answered: Vec<Answered>,
    /// What your limiter answered for the last arrival.
    pub limiter: bool,
    /// What the plan answers for it.
    pub policy: PlanDecision,
    /// Cases run before the failure was found.
    pub cases: u32,
    /// The trace's first instant.
    pub start: Nanos,
    /// How the plan's answers read (limit ids of denials).
    limit_ids: Vec<String>,
}

/// What one run of a trace found.
struct Run {
    answered: Vec<Answered>,
    /// Index of the first disagreement.
    disagreement: Option<usize>,
}

/// Runs `steps` for `plan` against `limiter` and the model, in step; stops
/// at the first disagreement (if `stop`).
fn drive(plan: &Plan, shape: &Shape, start: Nanos, steps: &[Step], limiter: &mut impl Limiter, stop: bool) -> Run {
    let mut oracle = Oracle::new(plan);
    let mut now = start;
    let mut retry = None;
    // Completions: (instant, order) → arrival index, the model's tickets
    // (if it admitted), whether the limiter admitted.
    let mut pending: BinaryHeap<Reverse<(Nanos, usize)>> = BinaryHeap::new();
    let mut tickets: Vec<Option<Tickets>> = Vec::new();
    let mut answered: Vec<Answered> = Vec::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        now = shape.advance(now, s.gap, retry);
        while let Some(&Reverse((at, k))) = pending.peek() {
            if at > now {
                break;
            }
            pending.pop();
            let req = answered[k].arrival.request();
            if let Some(t) = &tickets[k] {
                oracle.complete(at, &req, t);
            }
            if answered[k].limiter {
                limiter.complete(at, &req, k);
            }
        }
        let arrival = shape.arrival(s, now);
        let req = arrival.request();
        let d = oracle.check(now, &req);
        let mine = limiter.check(now, &req);
        if let Retry::At(t) = d.retry {
            retry = Some(t);
        }
        tickets.push(d.allowed.then_some(d.tickets));
        if let (Some(service), true) = (arrival.service, d.allowed || mine) {
            pending.push(Reverse((now.saturating_add(service), i)));
        }
        answered.push(Answered { arrival, limiter: mine, policy: d });
        if mine != d.allowed && stop {
            return Run { answered, disagreement: Some(i) };
        }
    }
    Run { answered, disagreement: None }
}

/// Places generated `steps` in time for `plan` (from [`Config::start`]),
/// with the exact model deciding along the way (retry instants come from
/// its denials, and completions happen as the steps' services say): the
/// trace a limiter is given.
pub fn materialize(plan: &Plan, config: &Config, steps: &[Step]) -> Vec<Arrival> {
    let shape = Shape::of(plan, config);
    let mut agree = |_: Nanos, _: &Request<'_>| true;
    drive(plan, &shape, config.start, steps, &mut agree, false).answered.into_iter().map(|a| a.arrival).collect()
}

/// Runs generated traces against fresh limiters from `new_limiter` and
/// against `plan`, and returns the minimal failing trace if they ever
/// disagree on an admission (see the [module docs](self)).
pub fn check<L: Limiter>(plan: &Plan, config: &Config, new_limiter: impl Fn() -> L) -> Result<(), Box<Failure>> {
    let shape = Shape::of(plan, config);
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&config.seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig {
            cases: config.cases,
            failure_persistence: None,
            max_shrink_iters: config.max_shrink_iters,
            ..ProptestConfig::default()
        },
        rng,
    );
    let cases = std::cell::Cell::new(0u32);
    let strategy = trace::steps(config);
    let result = runner.run(&strategy, |steps| {
        cases.set(cases.get() + 1);
        let run = drive(plan, &shape, config.start, &steps, &mut new_limiter(), true);
        match run.disagreement {
            None => Ok(()),
            Some(i) => Err(TestCaseError::fail(format!("disagreement at arrival {i}"))),
        }
    });
    match result {
        Ok(()) => Ok(()),
        Err(TestError::Fail(_, steps)) => {
            let disagreement =
                |steps: &[Step]| drive(plan, &shape, config.start, steps, &mut new_limiter(), true).disagreement;
            let steps = minimize(steps, disagreement);
            let run = drive(plan, &shape, config.start, &steps, &mut new_limiter(), true);
            let last = run.answered.last().expect("a failing trace has arrivals").clone();
            Err(Box::new(Failure {
                arrivals: run.answered.iter().map(|a| a.arrival.clone()).collect(),
                answered: run.answered,
                limiter: last.limiter,
                policy: last.policy,
                cases: cases.get(),
                start: config.start,
                limit_ids: plan.limits.iter().map(|l| l.id.clone()).collect(),
            }))
        }
        Err(TestError::Abort(why)) => panic!("proptest aborted: {why}"),
    }
}

/// Shrinks a failing trace further than proptest can: proptest removes
/// steps and simplifies each on its own, but a step whose gap is needed only
/// because an earlier one moved the clock (a float's rounding depends on the
/// instant) stays. Here, until nothing changes: drop what follows the
/// disagreement, try removing each step, and try each step's simplest form
/// field by field (gap `Same`, amounts 1 and 0, service `Instant`, key and
/// endpoint 0, authenticated); keep whatever still fails.
fn minimize(mut steps: Vec<Step>, disagreement: impl Fn(&[Step]) -> Option<usize>) -> Vec<Step> {
    let fails = |s: &[Step]| disagreement(s).is_some();
    loop {
        if let Some(i) = disagreement(&steps) {
            steps.truncate(i + 1);
        }
        let mut changed = false;
        let mut i = 0;
        while i < steps.len() && steps.len() > 1 {
            let mut c = steps.clone();
            c.remove(i);
            if fails(&c) {
                steps = c;
                changed = true;
            } else {
                i += 1;
            }
        }
        for i in 0..steps.len() {
            for c in simpler(steps[i]) {
                let mut candidate = steps.clone();
                candidate[i] = c;
                if fails(&candidate) {
                    steps = candidate;
                    changed = true;
                    break;
                }
            }
        }
        if !changed {
            return steps;
        }
    }
}

/// Simpler forms of `s`, one field at a time, each strictly simpler than
/// the current value (so that minimizing ends): gap `Same`; amounts 0, or
/// 1 when not already 0; service `Instant`; key and endpoint 0;
/// authenticated.
fn simpler(s: Step) -> Vec<Step> {
    let amounts = |a: Amount| match a {
        Amount::Zero => vec![],
        Amount::One => vec![Amount::Zero],
        _ => vec![Amount::Zero, Amount::One],
    };
    let mut out = Vec::new();
    if s.gap != Gap::Same {
        out.push(Step { gap: Gap::Same, ..s });
    }
    out.extend(amounts(s.tokens).into_iter().map(|tokens| Step { tokens, ..s }));
    out.extend(amounts(s.money).into_iter().map(|money| Step { money, ..s }));
    if s.service != Service::Instant {
        out.push(Step { service: Service::Instant, ..s });
    }
    if s.key != 0 {
        out.push(Step { key: 0, ..s });
    }
    if s.endpoint != 0 {
        out.push(Step { endpoint: 0, ..s });
    }
    if s.unauthenticated {
        out.push(Step { unauthenticated: false, ..s });
    }
    out
}

impl Failure {
    fn policy_answer(&self, d: &PlanDecision) -> String {
        if d.allowed {
            return "admitted".into();
        }
        let by = d.denied_by.map_or("?", |i| self.limit_ids[i].as_str());
        match d.retry {
            Retry::At(_) | Retry::Now => format!("denied ({by})"),
            Retry::Unknown => format!("denied ({by}, retry unknown)"),
            Retry::Never => format!("denied ({by}, never)"),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.answered.len();
        writeln!(
            f,
            "the limiter disagrees with the plan at arrival #{} (minimal trace of {n}, after {} case{})",
            n - 1,
            self.cases,
            if self.cases == 1 { "" } else { "s" }
        )?;
        let any = |p: &dyn Fn(&Arrival) -> bool| self.arrivals.iter().any(p);
        let (users, endpoints, unauth) =
            (any(&|a| a.user.is_some()), any(&|a| !a.endpoint.is_empty()), any(&|a| !a.authenticated));
        let (tokens, money) = (any(&|a| a.tokens > 0), any(&|a| a.money > 0));
        let services = any(&|a| a.service != Some(0));
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut header = vec!["#".to_string(), format!("t (since {})", format_rfc3339(self.start)), "key".into()];
        let optional = [
            (users, "user"),
            (endpoints, "endpoint"),
            (unauth, "auth"),
            (tokens, "tokens"),
            (money, "money"),
            (services, "runs for"),
        ];
        header.extend(optional.iter().filter(|o| o.0).map(|o| o.1.to_string()));
        header.extend(["limiter".to_string(), "policy".to_string()]);
        rows.push(header);
        for (i, a) in self.answered.iter().enumerate() {
            let r = &a.arrival;
            let mut row =
                vec![i.to_string(), format!("{} s", format_decimal_seconds(r.at - self.start)), r.key.clone()];
            if users {
                row.push(r.user.clone().unwrap_or_default());
            }
            if endpoints {
                row.push(r.endpoint.clone());
            }
            if unauth {
                row.push(if r.authenticated { "yes" } else { "no" }.into());
            }
            if tokens {
                row.push(r.tokens.to_string());
            }
            if money {
                row.push(r.money.to_string());
            }
            if services {
                row.push(r.service.map_or("ever".into(), |s| format!("{} s", format_decimal_seconds(s))));
            }
            row.push(if a.limiter { "admitted" } else { "denied" }.into());
            row.push(self.policy_answer(&a.policy));
            rows.push(row);
        }
        let widths: Vec<usize> =
            (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        for (i, row) in rows.iter().enumerate() {
            let mark = if i == n { ">" } else { " " };
            let cells: Vec<String> =
                row.iter()
                    .enumerate()
                    .map(|(c, cell)| {
                        if c == 0 {
                            format!("{cell:>w$}", w = widths[c])
                        } else {
                            format!("{cell:<w$}", w = widths[c])
                        }
                    })
                    .collect();
            writeln!(f, " {mark} {}", cells.join("  ").trim_end())?;
        }
        Ok(())
    }
}
