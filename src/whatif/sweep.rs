//! A sweep made ready and run.
//!
//! [`Sweep::prepare`] checks everything before any scenario runs: the
//! policy, every plan, every combination of `--set` values (each validated
//! as a policy file is), every client, the trace (a recorded trace that is
//! scaled is read once to measure its span, which also checks every row),
//! and the scenario count. [`Sweep::run`] then runs the scenarios (all, or
//! one shard's) in parallel and hands each [`ScenarioResult`] over in
//! scenario order as soon as it and those before it are done.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::axes::{FileRef, SetAxis, Shard, SweepDefinition};
use super::results::{Columns, Point, ScenarioResult};
use crate::client::ClientSpec;
use crate::metrics::{BucketSink, NoBuckets};
use crate::policy::overrides::PlanSelector;
use crate::policy::{Override, Policy, PolicyDocument};
use crate::report::chart::RunSeries;
use crate::sim::sweep::run_ordered;
use crate::sim::{start_refused, NoDecisions, SimConfig, Simulation, DEFAULT_START};
use crate::time::{format_duration, format_rfc3339, Nanos};
use crate::trace::scale::{span_of, Factor, Scaling, Span};
use crate::trace::{self, synth};

/// Most combinations of `--set` values in one sweep (each is a policy
/// validated before the sweep starts).
pub const MAX_COMBINATIONS: u64 = 100_000;

/// What to sweep, as the command line gives it.
#[derive(Clone, Debug)]
pub struct SweepSpec {
    /// Policy file.
    pub policy: PathBuf,
    /// Trace file or spec.
    pub trace: PathBuf,
    /// Plans; empty: those the `--set` axes name, if they all name one
    /// plan, else every plan.
    pub plans: Vec<String>,
    /// `--set` axes.
    pub set: Vec<SetAxis>,
    /// Scale factors (at least one).
    pub scale: Vec<Factor>,
    /// Key multipliers (at least one).
    pub scale_keys: Vec<u32>,
    /// Shift window of recorded-trace copies.
    pub scale_window: Option<Nanos>,
    /// Client behaviours (at least one).
    pub clients: Vec<String>,
    /// Seeds (at least one).
    pub seeds: Vec<u64>,
    /// Virtual instant of trace offset 0, if given (else
    /// [`DEFAULT_START`]); refused with a trace of RFC 3339 times, which
    /// starts at its first row.
    pub start: Option<Nanos>,
    /// Stop after this much virtual time.
    pub until: Option<Nanos>,
    /// Bucket width.
    pub bucket: Nanos,
}

/// One combination of `--set` values: its policy.
struct Combination {
    policy: Arc<Policy>,
    document: PolicyDocument,
}

/// A sweep ready to run: every input checked.
pub struct Sweep {
    definition: SweepDefinition,
    columns: Columns,
    combinations: Vec<Combination>,
    clients: Vec<ClientSpec>,
    scales: Vec<Factor>,
    spec: SweepSpec,
    span: Option<Span>,
    keep_series: bool,
}

impl std::fmt::Debug for Sweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweep").field("definition", &self.definition).finish()
    }
}

/// How far a run got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Scenarios handed over (a prefix of the run's list).
    pub ran: u64,
    /// Scenarios the run had to do.
    pub total: u64,
}

impl Outcome {
    /// Whether every scenario ran.
    pub fn complete(&self) -> bool {
        self.ran == self.total
    }
}

impl Sweep {
    /// Checks every input (see the module docs) and fixes the scenario list.
    pub fn prepare(spec: SweepSpec) -> Result<Sweep, String> {
        let document = PolicyDocument::load(&spec.policy).map_err(|e| e.to_string())?;
        let names = document.plan_names();
        let plans = if !spec.plans.is_empty() {
            for p in &spec.plans {
                if !names.contains(p) {
                    return Err(format!(
                        "--plans: no plan named {p:?} in {}; its plans are: {}",
                        spec.policy.display(),
                        names.join(", ")
                    ));
                }
            }
            spec.plans.clone()
        } else {
            let named: Option<Vec<String>> = spec
                .set
                .iter()
                .map(|a| match crate::policy::overrides::parse_target(&a.target) {
                    Ok((PlanSelector::Named(p), ..)) => Some(p),
                    _ => None,
                })
                .collect();
            match named {
                Some(named) if !named.is_empty() => names.iter().filter(|n| named.contains(n)).cloned().collect(),
                _ => names.clone(),
            }
        };
        for axis in &spec.set {
            if let Ok((PlanSelector::Named(p), ..)) = crate::policy::overrides::parse_target(&axis.target) {
                if names.contains(&p) && !plans.contains(&p) {
                    return Err(format!(
                        "--set {}: plan {p:?} is not among the swept plans ({}); add it to --plans",
                        axis.target,
                        plans.join(", ")
                    ));
                }
            }
        }
        let mut definition = SweepDefinition {
            version: env!("CARGO_PKG_VERSION").to_string(),
            provider: document.with_overrides(&[]).map_err(|e| e.to_string())?.0.provider,
            policy: FileRef::of(&spec.policy)?,
            trace: FileRef::of(&spec.trace).map_err(|e| format!("--trace: {e}"))?,
            plans,
            set: spec.set.clone(),
            scale: spec.scale.iter().map(Factor::to_string).collect(),
            scale_keys: spec.scale_keys.clone(),
            scale_window: spec.scale_window.map(format_duration),
            clients: spec.clients.clone(),
            seeds: spec.seeds.clone(),
            start: String::new(),
            until: spec.until.map(format_duration),
            bucket: format_duration(spec.bucket),
        };
        if definition.seeds.is_empty() || definition.clients.is_empty() || definition.scale.is_empty() {
            return Err("a sweep needs at least one seed, client and scale".into());
        }
        let total = definition.scenarios().ok_or("the sweep has more scenarios than can be counted")?;
        let count = definition.combinations();
        if count > MAX_COMBINATIONS {
            return Err(format!(
                "the --set axes make {count} combinations of values; at most {MAX_COMBINATIONS} (each is a policy checked before the sweep starts)"
            ));
        }
        let mut combinations = Vec::with_capacity(count as usize);
        for c in 0..count as usize {
            let overrides = definition
                .set
                .iter()
                .zip(definition.combination_values(c))
                .map(|(axis, value)| Override::parse(&format!("{}={value}", axis.target)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--set: {e}"))?;
            let (policy, document) = document.with_overrides(&overrides).map_err(|e| e.to_string())?;
            combinations.push(Combination { policy: Arc::new(policy), document });
        }
        let mut statuses = Vec::new();
        let mut limits: Vec<String> = Vec::new();
        let mut delayed = false;
        for c in &combinations {
            for plan in definition.plans.iter().filter_map(|p| c.policy.plan(p)) {
                for l in &plan.limits {
                    delayed |= l.engine.can_delay();
                    statuses.push(l.status);
                    if !limits.contains(&l.id) {
                        limits.push(l.id.clone());
                    }
                }
            }
        }
        let columns =
            Columns::new(definition.set.iter().map(|a| a.target.clone()).collect(), statuses, limits, delayed);
        let clients = definition
            .clients
            .iter()
            .map(|c| ClientSpec::parse(c).map_err(|e| format!("--clients: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let (span, start) = check_trace(&spec)?;
        // The instant the runs start: a trace of RFC 3339 times starts at
        // its first row, whatever the default.
        definition.start = format_rfc3339(start);
        let _ = total;
        Ok(Sweep {
            definition,
            columns,
            combinations,
            clients,
            scales: spec.scale.clone(),
            spec,
            span,
            keep_series: false,
        })
    }

    /// Whether each [`ScenarioResult`] carries its time series and
    /// time-to-success distribution (`series`), for charts.
    pub fn keep_series(&mut self, keep: bool) {
        self.keep_series = keep;
    }

    /// The definition recorded with the results.
    pub fn definition(&self) -> &SweepDefinition {
        &self.definition
    }

    /// The result columns.
    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    /// Scenarios in the whole sweep.
    pub fn len(&self) -> u64 {
        self.definition.scenarios().unwrap_or(0)
    }

    /// Whether the sweep has no scenario (never: every axis has a value).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs scenario `index`.
    pub fn run_scenario(&self, index: u64) -> ScenarioResult {
        let d = &self.definition;
        let at = d.coordinates(index);
        let combination = &self.combinations[at.combination];
        let plan_name = &d.plans[at.plan];
        let seed = d.seeds[at.seed];
        let client = &self.clients[at.client];
        let scaling = Scaling {
            factor: self.scales[at.scale],
            key_copies: d.scale_keys[at.scale_keys],
            window: self.spec.scale_window,
        };
        let mut set = Map::new();
        for (axis, value) in d.set.iter().zip(d.combination_values(at.combination)) {
            set.insert(axis.target.clone(), Value::String(value.to_string()));
        }
        let mut series = self.keep_series.then(|| RunSeries::new(self.spec.bucket, 0, None));
        let outcome = (|| {
            let plan = combination.policy.plan(plan_name).ok_or_else(|| format!("no plan named {plan_name:?}"))?;
            let mut source =
                trace::open_scaled(&self.spec.trace, Some(seed), &scaling, self.span).map_err(|e| e.to_string())?;
            let config = SimConfig {
                start: self.spec.start.unwrap_or(DEFAULT_START),
                seed,
                bucket: self.spec.bucket,
                client: client.clone(),
                until: self.spec.until,
                ..SimConfig::default()
            };
            let buckets: &mut dyn BucketSink = match &mut series {
                Some(s) => s,
                None => &mut NoBuckets,
            };
            Simulation::new(&combination.policy, plan, config)
                .run(&mut source, buckets, &mut NoDecisions)
                .map_err(|e| e.about_trace(&self.spec.trace))
        })();
        let (summary, error) = match outcome {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        ScenarioResult {
            index,
            point: index / d.seeds.len() as u64,
            at: Point {
                plan: plan_name.clone(),
                set,
                scale: self.scales[at.scale].as_f64(),
                scale_keys: scaling.key_copies,
                client: client.name.clone(),
            },
            seed,
            error,
            summary,
            effective_plan: (!d.set.is_empty()).then(|| combination.document.effective_limits(plan_name)),
            series,
        }
    }

    /// Runs every scenario (or `shard`'s) on `threads` threads, handing each
    /// result to `sink` in scenario order. Stops starting scenarios once
    /// `stop` is set (those running finish and are handed over).
    pub fn run<E>(
        &self,
        shard: Option<Shard>,
        threads: usize,
        stop: &AtomicBool,
        mut sink: impl FnMut(ScenarioResult) -> Result<(), E>,
    ) -> Result<Result<Outcome, E>, String> {
        let total = self.len();
        let (count, pick): (u64, Box<dyn Fn(u64) -> u64 + Sync>) = match shard {
            Some(s) => (s.len(total), Box::new(move |k| s.scenario(k))),
            None => (total, Box::new(|k| k)),
        };
        let count_usize = usize::try_from(count).map_err(|_| "too many scenarios for this machine".to_string())?;
        let ran = run_ordered(count_usize, threads, stop, |k| self.run_scenario(pick(k as u64)), |_, r| sink(r))?;
        Ok(ran.map(|ran| Outcome { ran: ran as u64, total: count }))
    }
}

/// The instant the sweep's runs start: `--start` (or [`DEFAULT_START`])
/// for a trace of offsets, the first row's instant for a trace of RFC 3339
/// times (with which a given `--start` is refused, as by `ratesim run`). A
/// trace without rows is refused.
pub fn trace_start(spec: &SweepSpec) -> Result<Nanos, String> {
    let path = &spec.trace;
    let start = spec.start.unwrap_or(DEFAULT_START);
    if is_spec(path) {
        return Ok(start);
    }
    let mut first = trace::TraceRow::default();
    if !trace::open(path, None).and_then(|mut t| t.next_row(&mut first)).map_err(|e| e.to_string())? {
        return Err(trace::TraceError::no_rows(path).to_string());
    }
    if let (trace::TraceTime::Absolute(at), Some(given)) = (first.t, spec.start) {
        return Err(start_refused(&format_rfc3339(given), path, at));
    }
    Ok(crate::sim::trace_start(first.t, start))
}

/// Whether `path` is a synthetic-trace spec (`.toml`) rather than a
/// recorded trace.
fn is_spec(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"))
}

/// Checks the trace before any scenario runs; returns a recorded trace's
/// span when it is scaled, and the instant the runs start ([`trace_start`]).
fn check_trace(spec: &SweepSpec) -> Result<(Option<Span>, Nanos), String> {
    let path = &spec.trace;
    let start = trace_start(spec)?;
    if is_spec(path) {
        let s = synth::load_spec(path).map_err(|e| e.to_string())?;
        for f in &spec.scale {
            let scaled = s.scaled(*f).map_err(|e| format!("--scale {f}: {}: {e}", path.display()))?;
            for &k in &spec.scale_keys {
                scaled.with_key_copies(k).map_err(|e| format!("--scale-keys {k}: {}: {e}", path.display()))?;
            }
        }
        return Ok((None, start));
    }
    let scaled = spec.scale.iter().any(|f| *f != Factor::ONE) || spec.scale_keys.iter().any(|&k| k != 1);
    if !scaled {
        return Ok((None, start));
    }
    for f in &spec.scale {
        for &k in &spec.scale_keys {
            let s = Scaling { factor: *f, key_copies: k, window: spec.scale_window };
            if s.copies() > crate::trace::scale::MAX_COPIES {
                return Err(format!(
                    "--scale {f} with --scale-keys {k} on the recorded trace {} takes {} superposed copies of it; at most {}",
                    path.display(),
                    s.copies(),
                    crate::trace::scale::MAX_COPIES
                ));
            }
        }
    }
    let mut source = trace::open(path, None).map_err(|e| e.to_string())?;
    span_of(&mut *source).map(|span| (Some(span), start)).map_err(|e| e.to_string())
}
