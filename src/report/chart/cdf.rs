//! Time-to-success CDFs: the share of requests that succeeded within each
//! wait.
//!
//! The share is of *all* requests, so a curve levels off at the success
//! ratio and the gap above it is the requests that gave up (or were still
//! waiting when the run stopped). The wait axis is logarithmic when waits
//! span more than two orders of magnitude; requests admitted at once (a
//! wait of 0) then start the curve at its left edge, and the notes say how
//! many. A run's CDF marks p50, p90 and p99; a sweep's draws one line per
//! scenario, up to [`MAX_LINES`], and says which were left out.

use plotters::style::RGBColor;

use super::axis::{duration_axis, log_duration_axis, Axis};
use super::figure::{colour, Figure, Key, Layer, Mark, Panel};
use super::series::RunSeries;
use super::RunContext;
use crate::time::Nanos;

/// Most lines one CDF chart draws.
pub const MAX_LINES: usize = 8;

/// Samples along the wait axis.
const SAMPLES: usize = 300;

/// One distribution to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct CdfLine {
    /// Legend label.
    pub label: String,
    /// Smallest value and cumulative count per step (see
    /// [`crate::metrics::Histogram::steps`]).
    pub steps: Vec<(Nanos, u64)>,
    /// Requests in all (the denominator: successes and the rest).
    pub requests: u64,
    /// Labels of other distributions equal to this one (drawn once, named
    /// in a note), the first few of them.
    pub same: Vec<String>,
    /// How many distributions equal this one in all (`same` names the
    /// first [`MAX_NAMED`]).
    pub same_count: usize,
}

impl CdfLine {
    /// The share (0–1) of requests that succeeded within `v` ns.
    fn at(&self, v: f64) -> f64 {
        let i = self.steps.partition_point(|s| s.0 as f64 <= v);
        let count = if i == 0 { 0 } else { self.steps[i - 1].1 };
        if self.requests == 0 {
            0.0
        } else {
            count as f64 / self.requests as f64
        }
    }
}

/// The x axis for these lines, and the value a wait of 0 is drawn at.
fn wait_axis(lines: &[CdfLine]) -> (Axis, String, Option<f64>) {
    let max = lines.iter().filter_map(|l| l.steps.last()).map(|s| s.0).max().unwrap_or(0) as f64;
    let min_pos = lines.iter().flat_map(|l| l.steps.iter()).map(|s| s.0).filter(|v| *v > 0).min();
    match min_pos {
        Some(m) if max / m as f64 >= 100.0 => {
            let a = log_duration_axis(m as f64, max);
            let lo = a.lo;
            (a, "time to success (log scale)".to_string(), Some(lo))
        }
        _ => {
            let (a, unit) = duration_axis(max.max(1.0) * 1.05, 6.0);
            // Values are drawn in ns: rescale the axis to match.
            let k = unit.ns as f64;
            let ticks = a.ticks.iter().map(|(v, l)| (v * k, format!("{l} {}", unit.name))).collect();
            (Axis::with_ticks(a.lo * k, a.hi * k, ticks), "time to success".to_string(), None)
        }
    }
}

/// Where `v` sits along `axis`, 0 to 1.
fn fraction(axis: &Axis, v: f64) -> f64 {
    if axis.log {
        (v.max(axis.lo).log10() - axis.lo.log10()) / (axis.hi.log10() - axis.lo.log10())
    } else {
        (v - axis.lo) / (axis.hi - axis.lo)
    }
}

/// Samples of a line's CDF over `axis`, in % of requests.
fn sampled(line: &CdfLine, axis: &Axis) -> Vec<(f64, f64)> {
    (0..=SAMPLES)
        .map(|i| {
            let f = i as f64 / SAMPLES as f64;
            let v = if axis.log {
                10f64.powf(axis.lo.log10() + f * (axis.hi.log10() - axis.lo.log10()))
            } else {
                axis.lo + f * (axis.hi - axis.lo)
            };
            (v, 100.0 * line.at(v))
        })
        .collect()
}

/// Names listed in a note at most; the rest are counted.
pub const MAX_NAMED: usize = 12;

/// `a, b, c` or `a, b, … and 7 more`.
fn named(names: &[String], total: usize) -> String {
    let mut s = names.iter().take(MAX_NAMED).cloned().collect::<Vec<_>>().join(", ");
    if total > MAX_NAMED.min(names.len()) {
        s.push_str(&format!(" and {} more", total - MAX_NAMED.min(names.len())));
    }
    s
}

/// A CDF figure of several lines (a sweep's scenarios); at most
/// [`MAX_LINES`] are drawn, in order. `omitted` names the distributions
/// left out (`omitted_count` of them in all); the notes say which were
/// left out, and which lines coincide (drawn once).
pub fn figure(
    title: String,
    mut notes: Vec<String>,
    lines: &[CdfLine],
    omitted: &[String],
    omitted_count: usize,
) -> Figure {
    let shown = &lines[..lines.len().min(MAX_LINES)];
    let (x, x_desc, zero_at) = wait_axis(shown);
    let mut layers = Vec::new();
    let mut legend = Vec::new();
    // (samples, label, the first labels drawn with it, how many in all)
    type Drawn = (Vec<(f64, f64)>, String, Vec<String>, usize);
    let mut drawn: Vec<Drawn> = Vec::new();
    for l in shown {
        let samples = sampled(l, &x);
        match drawn.iter_mut().find(|d| d.0 == samples) {
            Some(d) => {
                d.2.push(l.label.clone());
                d.2.extend(l.same.iter().cloned());
                d.3 += 1 + l.same_count;
            }
            None => drawn.push((samples, l.label.clone(), l.same.clone(), l.same_count)),
        }
    }
    for (i, (samples, label, same, same_count)) in drawn.into_iter().enumerate() {
        let c = colour::SERIES[i % colour::SERIES.len()];
        layers.push(Layer::Line { points: samples, colour: c, width: 2, dashed: false });
        legend.push(Key::new(label.clone(), Mark::Line(c, 2)));
        if same_count > 0 {
            notes.push(format!("same curve as {label}: {}", named(&same, same_count)));
        }
    }
    let mut left_out: Vec<String> = lines[shown.len()..].iter().map(|l| l.label.clone()).collect();
    left_out.extend(omitted.iter().cloned());
    let total = lines.len() - shown.len() + omitted_count;
    if total > 0 {
        notes.push(format!("not drawn (at most {MAX_LINES} lines): {}", named(&left_out, total)));
    }
    if let Some(lo) = zero_at {
        notes.push(format!("waits of 0 and up to {} start at the left edge", super::axis::duration_label(lo)));
    }
    Figure {
        title,
        notes,
        legend,
        panels: vec![Panel {
            title: String::new(),
            height: 420,
            x,
            y: Axis::percent(),
            x_desc,
            y_desc: "requests succeeded within (%)".to_string(),
            layers,
        }],
    }
}

/// The run's time-to-success CDF, p50/p90/p99 marked.
pub fn run_figure(ctx: &RunContext<'_>, series: &RunSeries) -> Figure {
    let sm = ctx.summary;
    let line = CdfLine {
        label: "time to success".to_string(),
        steps: series.time_to_success.clone(),
        requests: sm.requests,
        same: Vec::new(),
        same_count: 0,
    };
    let (x, x_desc, zero_at) = wait_axis(std::slice::from_ref(&line));
    let curve = colour::REQUESTS;
    let mut layers = Vec::new();
    let mut notes = ctx.notes();
    let at_once = line.steps.first().filter(|s| s.0 == 0).map_or(0, |s| s.1);
    if line.steps.is_empty() {
        notes.push("no request succeeded".to_string());
    } else {
        layers.push(Layer::Line { points: sampled(&line, &x), colour: curve, width: 2, dashed: false });
        if let Some(lo) = zero_at {
            notes.push(format!(
                "{:.1}% succeeded with no wait; waits up to {} start at the left edge",
                100.0 * at_once as f64 / sm.requests.max(1) as f64,
                super::axis::duration_label(lo)
            ));
        }
    }
    let lat = &sm.time_to_success;
    let marks = [("p50", lat.p50_ns), ("p90", lat.p90_ns), ("p99", lat.p99_ns)];
    // Marks closer than a label's width share one label.
    let mut rules: Vec<(f64, String)> = Vec::new();
    let mut head: Option<usize> = None;
    for (name, v) in marks {
        let Some(v) = v else { continue };
        let v = (v as f64).max(x.lo);
        match head {
            Some(h) if (fraction(&x, v) - fraction(&x, rules[h].0)).abs() < 0.06 => {
                rules[h].1.push_str(&format!(", {name}"));
                rules.push((v, String::new()));
            }
            _ => {
                head = Some(rules.len());
                rules.push((v, name.to_string()));
            }
        }
    }
    for (v, label) in rules {
        layers.push(Layer::VRule { x: v, colour: RGBColor(60, 60, 60), label });
    }
    notes.push(format!(
        "{:.1}% of {} requests succeeded, {:.1}% gave up{}",
        sm.success_ratio * 100.0,
        crate::report::group(sm.requests),
        sm.give_up_ratio * 100.0,
        if sm.unresolved > 0 { format!(", {} unresolved", crate::report::group(sm.unresolved)) } else { String::new() }
    ));
    layers.push(Layer::HRule {
        y: sm.success_ratio * 100.0,
        colour: colour::GREY,
        label: format!("succeeded: {:.1}%", sm.success_ratio * 100.0),
    });
    Figure {
        title: ctx.title("Time to success"),
        notes,
        legend: vec![Key::new("requests succeeded within the wait", Mark::Line(curve, 2))],
        panels: vec![Panel {
            title: String::new(),
            height: 420,
            x,
            y: Axis::percent(),
            x_desc,
            y_desc: "% of requests".to_string(),
            layers,
        }],
    }
}
