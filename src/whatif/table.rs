//! The terminal table of a sweep: one line per scenario, or with several
//! seeds one line per point showing `mean ± half-width` of the 95%
//! confidence interval (`69.8% ± 0.3`: percentage points).
//!
//! Every column's width is fixed from the sweep's definition before the
//! first line, so lines print as scenarios finish. Durations use a compact
//! form whose width is bounded (`850 ms`, `1.95 s`, `12.4 min`, `5.2 h`,
//! `30.6 d`), so a p99 of a month stays in its column. Every denial status
//! the swept plans can answer has its own column (share of attempts).

use std::fmt::Write as _;

use super::axes::{Shard, SweepDefinition};
use super::results::{Columns, Point, PointStatistics, ScenarioResult};
use super::stats::Estimate;
use crate::metrics::ratio;
use crate::report::group;
use crate::time::{DAY, HOUR, MINUTE, SECOND};

#[derive(Clone, Debug)]
enum Col {
    Plan,
    Set(usize),
    Scale,
    Keys,
    Client,
    Seed,
    Requests,
    Attempts,
    Amplification,
    Success,
    Status(u16),
    GaveUp,
    Unresolved,
    P99,
}

/// The table's layout for one sweep.
#[derive(Clone, Debug)]
pub struct Table {
    cols: Vec<(Col, usize)>,
    replicated: bool,
}

/// `n thing` or `n things`.
pub fn plural(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{} {thing}s", group(n))
    }
}

/// A duration in a compact, bounded form (at most 9 characters for any
/// value up to 100 years): `0 ms`, `850 ms`, `1.95 s`, `12.4 min`, `5.2 h`,
/// `30.6 d`.
pub fn compact_duration(ns: f64) -> String {
    let (v, unit) = unit_of(ns);
    format!("{} {unit}", digits(ns / v, unit))
}

fn unit_of(ns: f64) -> (f64, &'static str) {
    if ns < SECOND as f64 {
        (1e6, "ms")
    } else if ns < MINUTE as f64 {
        (SECOND as f64, "s")
    } else if ns < HOUR as f64 {
        (MINUTE as f64, "min")
    } else if ns < 2.0 * DAY as f64 {
        (HOUR as f64, "h")
    } else {
        (DAY as f64, "d")
    }
}

fn digits(x: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{x:.0}"),
        "s" => format!("{x:.2}"),
        _ => format!("{x:.1}"),
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

impl Table {
    /// The layout for `def` (with `columns`); `replicated`: one line per
    /// point (several seeds, unsharded), else one per scenario.
    pub fn new(def: &SweepDefinition, columns: &Columns, replicated: bool) -> Table {
        let width =
            |header: &str, values: &mut dyn Iterator<Item = usize>| values.chain([header.len()]).max().unwrap_or(0);
        let mut cols = vec![(Col::Plan, width("plan", &mut def.plans.iter().map(|p| p.chars().count())))];
        for (i, axis) in def.set.iter().enumerate() {
            cols.push((Col::Set(i), width(&axis.target, &mut axis.values.iter().map(|v| v.chars().count()))));
        }
        if def.scale != ["1"] {
            cols.push((Col::Scale, width("scale", &mut def.scale.iter().map(|s| s.len() + 1))));
        }
        if def.scale_keys != [1] {
            cols.push((Col::Keys, width("keys", &mut def.scale_keys.iter().map(|k| k.to_string().len() + 1))));
        }
        cols.push((Col::Client, width("client", &mut def.clients.iter().map(|c| c.chars().count()))));
        if replicated {
            cols.push((Col::Seed, width("seeds", &mut [def.seeds.len().to_string().len()].into_iter())));
        } else {
            cols.push((Col::Seed, width("seed", &mut def.seeds.iter().map(|s| s.to_string().len()))));
        }
        let (num, rate, dur) = if replicated { (12, 13, 17) } else { (10, 8, 9) };
        cols.push((Col::Requests, num));
        cols.push((Col::Attempts, num));
        cols.push((Col::Amplification, if replicated { 14 } else { 7 }));
        cols.push((Col::Success, rate));
        for &s in &columns.statuses {
            cols.push((Col::Status(s), rate));
        }
        cols.push((Col::GaveUp, rate));
        if def.until.is_some() {
            cols.push((Col::Unresolved, num));
        }
        cols.push((Col::P99, dur));
        Table { cols, replicated }
    }

    /// The title line: provider, trace, scenario count, shard, seeds.
    pub fn title(&self, def: &SweepDefinition, shard: Option<Shard>) -> String {
        let total = def.scenarios().unwrap_or(0);
        let mut t = format!("{} · trace {} · {}", def.provider, def.trace.path, plural(total, "scenario"));
        if let Some(s) = shard {
            let _ = write!(t, " · shard {s}: {}", plural(s.len(total), "scenario"));
        }
        if self.replicated {
            let _ = write!(
                t,
                " · {} × {} (mean ± 95% CI)",
                plural(def.points(), "point"),
                plural(def.seeds.len() as u64, "seed")
            );
        }
        t
    }

    /// The header line.
    pub fn header(&self, def: &SweepDefinition) -> String {
        let cells: Vec<(String, bool)> = self
            .cols
            .iter()
            .map(|(c, _)| match c {
                Col::Plan => ("plan".into(), true),
                Col::Set(i) => (def.set[*i].target.clone(), true),
                Col::Scale => ("scale".into(), false),
                Col::Keys => ("keys".into(), false),
                Col::Client => ("client".into(), true),
                Col::Seed => ((if self.replicated { "seeds" } else { "seed" }).into(), false),
                Col::Requests => ("requests".into(), false),
                Col::Attempts => ("attempts".into(), false),
                Col::Amplification => ("ampl.".into(), false),
                Col::Success => ("success".into(), false),
                Col::Status(s) => (format!("{s} rate"), false),
                Col::GaveUp => ("gave up".into(), false),
                Col::Unresolved => ("unresolved".into(), false),
                Col::P99 => ("p99 wait".into(), false),
            })
            .collect();
        self.line(cells)
    }

    fn line(&self, cells: Vec<(String, bool)>) -> String {
        let mut out = String::new();
        for (i, ((text, left), (_, w))) in cells.into_iter().zip(&self.cols).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            if left {
                let _ = write!(out, "{text:<w$}");
            } else {
                let _ = write!(out, "{text:>w$}");
            }
        }
        out.trim_end().to_string()
    }

    fn axis_cells(&self, def: &SweepDefinition, r: &Point, seed: String) -> Vec<(String, bool)> {
        self.cols
            .iter()
            .filter_map(|(c, _)| {
                Some(match c {
                    Col::Plan => (r.plan.clone(), true),
                    Col::Set(i) => (r.set.get(&def.set[*i].target).and_then(|v| v.as_str()).unwrap_or("").into(), true),
                    Col::Scale => (format!("{}×", r.scale), false),
                    Col::Keys => (format!("{}×", r.scale_keys), false),
                    Col::Client => (r.client.clone(), true),
                    Col::Seed => (seed.clone(), false),
                    _ => return None,
                })
            })
            .collect()
    }

    /// The line of one scenario.
    pub fn scenario(&self, def: &SweepDefinition, r: &ScenarioResult) -> String {
        let mut cells = self.axis_cells(def, &r.at, r.seed.to_string());
        let Some(s) = &r.summary else {
            let mut line = self.line(cells);
            let _ = write!(line, "  error: {}", r.error.as_deref().unwrap_or("unknown"));
            return line;
        };
        for (c, _) in &self.cols {
            let cell = match c {
                Col::Requests => group(s.requests),
                Col::Attempts => group(s.attempts),
                Col::Amplification => format!("{:.2}×", s.retry_amplification),
                Col::Success => pct(s.success_ratio),
                Col::Status(st) => pct(ratio(s.denied_by_status.get(st).copied().unwrap_or(0), s.attempts)),
                Col::GaveUp => pct(s.give_up_ratio),
                Col::Unresolved => group(s.unresolved),
                Col::P99 => s.time_to_success.p99_ns.map_or("-".into(), |p| compact_duration(p as f64)),
                _ => continue,
            };
            cells.push((cell, false));
        }
        self.line(cells)
    }

    /// The line of one point (`mean ± half-width`).
    pub fn point(&self, def: &SweepDefinition, p: &PointStatistics) -> String {
        let mut cells = self.axis_cells(def, &p.at, p.seeds.to_string());
        let m = |name: &str| p.metric(name).copied();
        let rate = |e: Option<Estimate>| {
            e.map_or("-".into(), |e| match e.ci95 {
                Some(ci) => format!("{} ± {:.1}", pct(e.mean), ci * 100.0),
                None => pct(e.mean),
            })
        };
        for (c, _) in &self.cols {
            let cell = match c {
                Col::Requests => m("requests").map_or("-".into(), |e| group(e.mean.round() as u64)),
                Col::Attempts => m("attempts").map_or("-".into(), |e| group(e.mean.round() as u64)),
                Col::Amplification => m("retry_amplification").map_or("-".into(), |e| match e.ci95 {
                    Some(ci) => format!("{:.2}× ± {ci:.2}", e.mean),
                    None => format!("{:.2}×", e.mean),
                }),
                Col::Success => rate(m("success_ratio")),
                Col::Status(s) => rate(m(&format!("rate_{s}"))),
                Col::GaveUp => rate(m("give_up_ratio")),
                Col::Unresolved => m("unresolved").map_or("-".into(), |e| group(e.mean.round() as u64)),
                Col::P99 => m("time_to_success_p99_ns").map_or("-".into(), |e| {
                    let (v, unit) = unit_of(e.mean);
                    match e.ci95 {
                        Some(ci) => format!("{} ± {} {unit}", digits(e.mean / v, unit), digits(ci / v, unit)),
                        None => compact_duration(e.mean),
                    }
                }),
                _ => continue,
            };
            cells.push((cell, false));
        }
        let mut line = self.line(cells);
        if p.errors > 0 {
            let _ = write!(line, "  ({} failed)", plural(p.errors, "seed"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_durations_stay_narrow() {
        assert_eq!(compact_duration(0.0), "0 ms");
        assert_eq!(compact_duration(850e6), "850 ms");
        assert_eq!(compact_duration(1.95e9), "1.95 s");
        assert_eq!(compact_duration((734 * HOUR + 15 * MINUTE) as f64), "30.6 d");
        assert!(compact_duration((36525 * DAY) as f64).len() <= 9);
        assert_eq!(plural(1, "scenario"), "1 scenario");
        assert_eq!(plural(1200, "scenario"), "1,200 scenarios");
    }
}
