//! `ratesim solve`: the smallest (or largest) value of one whole-number
//! parameter for which targets hold.
//!
//! The parameter is a limit field (`PLAN.LIMIT.FIELD`): the count of a
//! `rate` (its period kept: the answer is a count per period), or a field
//! that is a whole number (`limit`, `burst`, `max`, `cost`, `reserve`, a
//! budget's amount in minor units…). Targets compare a metric (any
//! `results.csv` column, or `p50_wait`…`max_wait`, `denied_402`) with a
//! number, a percentage (`99%`) or a duration (`2s`):
//! `success_ratio >= 0.99`, `p99_wait <= 2s`, `denied_402 == 0`.
//!
//! # Search
//!
//! A value *holds* when every target holds on every seed (`--require
//! every`, the default) or on the mean over the seeds (`--require mean`);
//! a percentile that is undefined (nothing succeeded) fails its target.
//! Without `--range`, the bounds are found from the policy's own value:
//! `1` (0 for `reserve`) below, and doubling until the targets hold (for
//! the smallest; until they fail, for the largest) above. The solver then
//! evaluates `--scan` values spread evenly over the bounds, bisects the
//! bracket the scan leaves, and answers with an exact whole number whose
//! neighbour (one below for the smallest, one above for the largest) fails.
//!
//! # Monotonicity
//!
//! Bisection is only right when the targets fail on one side of the answer
//! and hold on the other. The solver checks this over **every value it
//! evaluated** (scan and bisection): if a value holds while one beyond it
//! (larger for the smallest, smaller for the largest) fails, it reports the
//! two values and gives no answer. A reversal narrower than the scan step
//! can go unseen; a larger `--scan` looks closer. Each target metric that
//! moves against its overall direction between evaluated values is noted.
//!
//! Which metrics are monotone in which parameters:
//!
//! | parameter grows | monotone (open loop, one limit) | not monotone |
//! |---|---|---|
//! | capacity: `rate` count, `burst`, window `limit`, concurrency `max`, budget `limit` | admitted, `success_ratio` up; `denied_*`, `give_up_ratio` down | with retrying clients these usually follow, but retries move load in time; with several limits, raising one can raise another's denials (a higher rate lets more requests reach a budget: more 402s) |
//! | consumption: `cost`, `reserve` | the reverse | as above |
//! | any | | time-to-success percentiles (`p99_wait`): clients that give up (attempts spent, `Retry-After` above their cap) leave the percentile, so a tighter limit can show *shorter* waits; pair them with `success_ratio` |
//!
//! The status of a limit, its `period` (a duration) and fields that are
//! not numbers are not solver parameters: sweep them instead.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use super::axes::SetAxis;
use super::results::{metric_value, Columns, ScenarioResult};
use super::sweep::{Sweep, SweepSpec};
use crate::policy::overrides::{parse_target, PlanSelector};
use crate::policy::PolicyDocument;
use crate::time::{parse_duration, Rate};

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `>`
    Gt,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Le => a <= b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Gt => a > b,
        }
    }
}

/// One target: `METRIC OP VALUE`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Target {
    /// As written.
    pub text: String,
    /// The `results.csv` column it reads.
    pub metric: String,
    /// The comparison.
    pub op: Op,
    /// The bound (ratios as fractions, durations in nanoseconds).
    pub value: f64,
}

impl Target {
    /// Parses `METRIC OP VALUE` against the metrics of `columns`.
    pub fn parse(text: &str, columns: &Columns) -> Result<Target, String> {
        let t = text.trim();
        let ops = [("==", Op::Eq), ("!=", Op::Ne), ("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)];
        let (at, sym, op) = ops
            .iter()
            .filter_map(|(sym, op)| t.find(sym).map(|i| (i, *sym, *op)))
            .min_by_key(|(i, sym, _)| (*i, std::cmp::Reverse(sym.len())))
            .ok_or_else(|| format!("expected METRIC OP VALUE with OP one of == != <= >= < >, e.g. 'success_ratio >= 0.99', found {t:?}"))?;
        let name = t[..at].trim();
        let raw = t[at + sym.len()..].trim();
        let metric = match name {
            "p50_wait" | "p90_wait" | "p99_wait" | "max_wait" => {
                format!("time_to_success_{}_ns", name.trim_end_matches("_wait"))
            }
            n => match n.strip_prefix("denied_").and_then(|s| s.parse::<u16>().ok()) {
                Some(status) => format!("denied_by_status_{status}"),
                None => n.to_string(),
            },
        };
        let known = columns.metrics.contains(&metric)
            || metric.strip_prefix("denied_by_status_").is_some_and(|s| s.parse::<u16>().is_ok())
            || metric.strip_prefix("rate_").is_some_and(|s| s.parse::<u16>().is_ok());
        if !known {
            return Err(format!(
                "target {t:?}: unknown metric {name:?}; expected p50_wait, p90_wait, p99_wait, max_wait, denied_STATUS or a results column: {}",
                columns.metrics.join(", ")
            ));
        }
        let value = if let Some(p) = raw.strip_suffix('%') {
            p.trim().parse::<f64>().map(|x| x / 100.0).ok()
        } else if metric.ends_with("_ns") && raw.ends_with(|c: char| c.is_ascii_alphabetic()) {
            parse_duration(raw).ok().map(|d| d as f64)
        } else {
            raw.parse::<f64>().ok()
        }
        .filter(|x| x.is_finite())
        .ok_or_else(|| {
            format!(
                "target {t:?}: expected a number, a percentage (99%) or, for a wait, a duration (2s), found {raw:?}"
            )
        })?;
        Ok(Target { text: t.to_string(), metric, op, value })
    }
}

/// Which end of the range is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Direction {
    /// The smallest value that holds (targets fail below it).
    Smallest,
    /// The largest value that holds (targets fail above it).
    Largest,
}

/// Over which replications a value must meet the targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Require {
    /// On every seed.
    Every,
    /// On the mean over the seeds.
    Mean,
}

/// A solve request.
#[derive(Clone, Debug)]
pub struct SolveSpec {
    /// The sweep of one point (one plan, client, scale; the fixed `--set`
    /// values as one-value axes) whose seeds are run for each value.
    pub base: SweepSpec,
    /// `PLAN.LIMIT.FIELD` to vary.
    pub vary: String,
    /// Targets, as written (parsed against the sweep's columns).
    pub targets: Vec<String>,
    /// Smallest or largest.
    pub direction: Direction,
    /// Every seed or the mean.
    pub require: Require,
    /// Bounds, if given.
    pub range: Option<(u64, u64)>,
    /// Values evaluated evenly over the bounds before bisecting.
    pub scan: u64,
    /// Worker threads.
    pub threads: usize,
}

/// How a target fared at one value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetOutcome {
    /// Mean over the seeds where the metric is defined (`None`: nowhere).
    pub mean: Option<f64>,
    /// Smallest and largest per-seed value.
    pub min: Option<f64>,
    /// Largest per-seed value.
    pub max: Option<f64>,
    /// Whether the target holds (as `require` says).
    pub holds: bool,
}

/// One evaluated value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// The parameter's value.
    pub value: u64,
    /// As set (`600/min` for a rate).
    pub setting: String,
    /// Whether every target holds.
    pub holds: bool,
    /// Per target, in order.
    pub targets: Vec<TargetOutcome>,
    /// Scenarios that failed to run.
    pub errors: Vec<String>,
}

/// What the solver found.
#[derive(Clone, Debug, Serialize)]
pub struct Solution {
    /// `PLAN.LIMIT.FIELD`.
    pub parameter: String,
    /// What one unit of the value is (`count per 1min`, `whole number`).
    pub unit: String,
    /// Smallest or largest.
    pub direction: Direction,
    /// Every seed or the mean.
    pub require: Require,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// The targets.
    pub targets: Vec<Target>,
    /// Every value evaluated, ascending.
    pub evaluations: Vec<Evaluation>,
    /// The answer, if the targets are met somewhere and monotone.
    pub answer: Option<u64>,
    /// The answer as set (`733/min`).
    pub answer_setting: Option<String>,
    /// Why there is no answer (non-monotone, or no value meets them).
    pub failure: Option<String>,
    /// Target metrics that moved against their overall direction.
    pub notes: Vec<String>,
    /// The verification runs at the answer, one per seed.
    pub verification: Vec<ScenarioResult>,
}

/// How the varied field is written.
#[derive(Clone, Copy, Debug)]
enum Form {
    /// The count of a rate with this period.
    RateCount(u64),
    Integer,
}

/// Largest value the solver tries.
const CEILING: u64 = 1 << 53;

/// Runs the search (see the module docs). `progress` hears of each value
/// as it is evaluated; `stop` ends the search early (an error).
pub fn solve(spec: &SolveSpec, stop: &AtomicBool, progress: &mut dyn FnMut(&Evaluation)) -> Result<Solution, String> {
    let (plan_sel, limit, field) =
        parse_target(&spec.vary).map_err(|e| format!("--vary: {e}, found {:?}", spec.vary))?;
    let PlanSelector::Named(plan) = plan_sel else {
        return Err(format!("--vary {}: name one plan (not `*`)", spec.vary));
    };
    let document = PolicyDocument::load(&spec.base.policy).map_err(|e| e.to_string())?;
    let table = document
        .effective_limits(&plan)
        .into_iter()
        .find(|l| l.get("id").and_then(|v| v.as_str()) == Some(limit.as_str()));
    let current = table.as_ref().and_then(|l| l.get(&field).cloned());
    let measured_in = table
        .as_ref()
        .and_then(|l| l.get("unit").and_then(|u| u.as_str()).map(str::to_string))
        .filter(|_| field == "limit" || field == "reserve");
    let (form, current) = match (&current, field.as_str()) {
        (Some(serde_json::Value::String(r)), "rate") => {
            let rate = Rate::parse(r).map_err(|e| format!("--vary {}: {e}", spec.vary))?;
            (Form::RateCount(rate.period()), Some(rate.count()))
        }
        (Some(v), _) if v.as_u64().is_some() => (Form::Integer, v.as_u64()),
        (None, _) => (Form::Integer, None),
        (Some(v), _) => {
            return Err(format!(
                "--vary {}: solve varies whole numbers (a rate's count, or a field such as limit, burst, max, cost, reserve), but {field} is {v}; sweep it with --set instead",
                spec.vary
            ))
        }
    };
    let setting = |v: u64| match form {
        Form::RateCount(period) => Rate::new(v, period).map_or(format!("{v}/0s"), |r| r.to_string()),
        Form::Integer => v.to_string(),
    };
    let unit = match form {
        Form::RateCount(period) => format!("count per {}", crate::time::format_duration(period)),
        Form::Integer => match measured_in.as_deref() {
            Some("tokens") => "tokens".into(),
            Some("requests") | None => "whole number".into(),
            Some(currency) => format!("{currency} minor units"),
        },
    };

    let mut targets: Option<Vec<Target>> = None;
    let mut seen: BTreeMap<u64, Evaluation> = BTreeMap::new();
    let mut last_results: BTreeMap<u64, Vec<ScenarioResult>> = BTreeMap::new();
    let mut evaluate = |v: u64,
                        seen: &mut BTreeMap<u64, Evaluation>,
                        targets: &mut Option<Vec<Target>>|
     -> Result<bool, String> {
        if let Some(e) = seen.get(&v) {
            return Ok(e.holds);
        }
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        let mut base = spec.base.clone();
        base.plans = vec![plan.clone()];
        base.set.push(SetAxis { target: spec.vary.clone(), values: vec![setting(v)] });
        let sweep = Sweep::prepare(base)?;
        let t = match targets {
            Some(t) => t.clone(),
            None => {
                let parsed =
                    spec.targets.iter().map(|t| Target::parse(t, sweep.columns())).collect::<Result<Vec<_>, _>>()?;
                *targets = Some(parsed.clone());
                parsed
            }
        };
        let mut results = Vec::new();
        let never = AtomicBool::new(false);
        sweep
            .run(None, spec.threads, &never, |r| {
                results.push(r);
                Ok::<(), ()>(())
            })?
            .map_err(|_| "cannot collect results".to_string())?;
        let e = judge(v, setting(v), &t, &results, spec.require);
        progress(&e);
        let holds = e.holds;
        seen.insert(v, e);
        last_results.insert(v, results);
        Ok(holds)
    };

    let want = |holds: bool| holds; // readability: "holds" is the good side
    let lo = spec.range.map_or(u64::from(field != "reserve"), |r| r.0);
    let (lo, hi) = match (spec.range, spec.direction) {
        (Some((lo, hi)), _) => {
            if lo > hi {
                return Err(format!("--range {lo}..{hi}: the lower bound is above the upper one"));
            }
            (lo, hi)
        }
        (None, Direction::Smallest) => {
            let mut hi = current.unwrap_or(lo).max(lo);
            while !evaluate(hi, &mut seen, &mut targets)? {
                if hi >= CEILING {
                    break;
                }
                hi = (hi.max(1) * 2).min(CEILING);
            }
            (lo, hi)
        }
        (None, Direction::Largest) => {
            let mut hi = current.unwrap_or(lo).max(lo).max(1);
            while evaluate(hi, &mut seen, &mut targets)? {
                if hi >= CEILING {
                    break;
                }
                hi = (hi * 2).min(CEILING);
            }
            (lo, hi)
        }
    };
    // The scan: evenly spread values, bounds included.
    let n = spec.scan.max(2);
    for k in 0..n {
        let v = lo + ((hi - lo) as u128 * k as u128 / (n - 1) as u128) as u64;
        evaluate(v, &mut seen, &mut targets)?;
    }
    let targets = targets.unwrap_or_default();
    let mut failure = monotone_failure(&seen, spec.direction);
    let mut answer = None;
    if failure.is_none() {
        // Bracket: (last failing, first holding) for the smallest; mirrored for the largest.
        match spec.direction {
            Direction::Smallest => match seen.iter().find(|(_, e)| want(e.holds)).map(|(v, _)| *v) {
                None => failure = Some(format!("no value from {} to {} meets the targets", setting(lo), setting(hi))),
                Some(mut good) => {
                    let mut bad = seen.range(..good).next_back().map(|(v, _)| *v);
                    while let Some(b) = bad.filter(|b| good - b > 1) {
                        let mid = b + (good - b) / 2;
                        if evaluate(mid, &mut seen, &mut targets.clone().into())? {
                            good = mid;
                        } else {
                            bad = Some(mid);
                        }
                    }
                    answer = Some(good);
                }
            },
            Direction::Largest => match seen.iter().rev().find(|(_, e)| want(e.holds)).map(|(v, _)| *v) {
                None => failure = Some(format!("no value from {} to {} meets the targets", setting(lo), setting(hi))),
                Some(mut good) => {
                    let mut bad = seen.range(good + 1..).next().map(|(v, _)| *v);
                    while let Some(b) = bad.filter(|b| b - good > 1) {
                        let mid = good + (b - good) / 2;
                        if evaluate(mid, &mut seen, &mut targets.clone().into())? {
                            good = mid;
                        } else {
                            bad = Some(mid);
                        }
                    }
                    answer = Some(good);
                }
            },
        }
        if let Some(f) = monotone_failure(&seen, spec.direction) {
            failure = Some(f);
            answer = None;
        }
    }
    let notes = metric_notes(&seen, &targets);
    let mut verification = Vec::new();
    if let Some(a) = answer {
        // A fresh run at the answer: what is printed is what was checked.
        let mut base = spec.base.clone();
        base.plans = vec![plan.clone()];
        base.set.push(SetAxis { target: spec.vary.clone(), values: vec![setting(a)] });
        let sweep = Sweep::prepare(base)?;
        let never = AtomicBool::new(false);
        sweep
            .run(None, spec.threads, &never, |r| {
                verification.push(r);
                Ok::<(), ()>(())
            })?
            .map_err(|_| "cannot collect results".to_string())?;
        if last_results.get(&a).is_some_and(|r| *r != verification) {
            return Err(format!(
                "the verification run at {} differs from the search's run: not deterministic",
                setting(a)
            ));
        }
    }
    Ok(Solution {
        parameter: spec.vary.clone(),
        unit,
        direction: spec.direction,
        require: spec.require,
        seeds: spec.base.seeds.clone(),
        targets,
        evaluations: seen.into_values().collect(),
        answer_setting: answer.map(setting),
        answer,
        failure,
        notes,
        verification,
    })
}

/// Judges one value's runs against the targets.
fn judge(value: u64, setting: String, targets: &[Target], results: &[ScenarioResult], require: Require) -> Evaluation {
    let errors: Vec<String> = results.iter().filter_map(|r| r.error.clone()).collect();
    let outcomes: Vec<TargetOutcome> = targets
        .iter()
        .map(|t| {
            let per_seed: Vec<Option<f64>> = results
                .iter()
                .map(|r| r.summary.as_ref().and_then(|s| metric_value(s, &t.metric).ok().flatten()))
                .collect();
            let defined: Vec<f64> = per_seed.iter().flatten().copied().collect();
            let mean = (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
            let holds = match require {
                Require::Every => per_seed.iter().all(|x| x.is_some_and(|x| t.op.holds(x, t.value))),
                Require::Mean => mean.is_some_and(|m| t.op.holds(m, t.value)),
            } && errors.is_empty();
            TargetOutcome {
                mean,
                min: defined.iter().copied().reduce(f64::min),
                max: defined.iter().copied().reduce(f64::max),
                holds,
            }
        })
        .collect();
    let holds = outcomes.iter().all(|o| o.holds);
    Evaluation { value, setting, holds, targets: outcomes, errors }
}

/// A value that holds beyond one that fails (on the side where all should
/// fail), if any.
fn monotone_failure(seen: &BTreeMap<u64, Evaluation>, direction: Direction) -> Option<String> {
    let list: Vec<&Evaluation> = match direction {
        Direction::Smallest => seen.values().collect(),
        Direction::Largest => seen.values().rev().collect(),
    };
    // Good side first in `list` order means: once holding, every later one holds.
    let first_good = list.iter().position(|e| e.holds)?;
    let bad_after = list[first_good..].iter().find(|e| !e.holds)?;
    let good = list[first_good];
    let beyond = match direction {
        Direction::Smallest => "larger",
        Direction::Largest => "smaller",
    };
    Some(format!(
        "not monotone: the targets hold at {} but fail at {}, a {beyond} value; bisection would answer wrongly (the values evaluated are listed); search a narrower --range or sweep the parameter with --set",
        good.setting, bad_after.setting
    ))
}

/// Notes on target metrics that move against their overall direction.
fn metric_notes(seen: &BTreeMap<u64, Evaluation>, targets: &[Target]) -> Vec<String> {
    let mut notes = Vec::new();
    for (k, t) in targets.iter().enumerate() {
        let values: Vec<(&str, f64)> =
            seen.values().filter_map(|e| e.targets[k].mean.map(|m| (e.setting.as_str(), m))).collect();
        let (Some(first), Some(last)) = (values.first(), values.last()) else { continue };
        let rising = last.1 >= first.1;
        if let Some(w) = values.windows(2).find(|w| if rising { w[1].1 < w[0].1 } else { w[1].1 > w[0].1 }) {
            notes.push(format!(
                "{} is not monotone in the values evaluated: {} at {} but {} at {}",
                t.metric, w[0].1, w[0].0, w[1].1, w[1].0
            ));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_units_and_aliases() {
        let cols = Columns::new(vec![], vec![402, 429], vec!["rpm".into()], false);
        let t = Target::parse("p99_wait <= 2s", &cols).unwrap();
        assert_eq!((t.metric.as_str(), t.op, t.value), ("time_to_success_p99_ns", Op::Le, 2e9));
        let t = Target::parse("success_ratio>=99%", &cols).unwrap();
        assert_eq!((t.op, t.value), (Op::Ge, 0.99));
        let t = Target::parse("denied_402 == 0", &cols).unwrap();
        assert_eq!(t.metric, "denied_by_status_402");
        assert!(Target::parse("sucess_ratio >= 1", &cols).unwrap_err().contains("unknown metric"));
        assert!(Target::parse("success_ratio 1", &cols).is_err());
        assert!(Target::parse("success_ratio >= lots", &cols).is_err());
    }
}
