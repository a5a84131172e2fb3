//! The chart of a solve: every value the solver evaluated, each target
//! metric against the varied parameter (one panel per target), the target
//! as a dashed line, each value green where every target held and red where
//! one missed, the range over the seeds as a band, and the answer marked.

use plotters::style::RGBColor;

use super::axis::{number_label, Axis};
use super::figure::{colour, Figure, Key, Layer, Mark, Panel};
use crate::whatif::solve::{Direction, Require, Solution};

const HOLDS: RGBColor = RGBColor(44, 160, 44);
const MISSES: RGBColor = RGBColor(214, 39, 40);

/// How a metric's values are shown: a scale factor and a tick suffix.
fn presentation(metric: &str) -> (f64, &'static str, bool) {
    if metric.ends_with("_ns") {
        (1.0, "", true)
    } else if metric.ends_with("ratio") || metric.ends_with("_rate") || metric.starts_with("rate_") {
        (100.0, "%", false)
    } else {
        (1.0, "", false)
    }
}

/// A linear value axis over `[lo, hi]` (not from 0): the solver scans
/// evenly over its range, then bisects.
fn value_axis(lo: f64, hi: f64) -> Axis {
    let span = (hi - lo).max(1.0);
    let a = Axis::from_zero(span, 6.0, "");
    let step = a.ticks.get(1).map_or(1.0, |t| t.0);
    let first = (lo / step).floor() * step;
    let last = ((hi / step).ceil() * step).max(first + step);
    let n = ((last - first) / step).round() as u64;
    let ticks = (0..=n).map(|k| first + k as f64 * step).map(|v| (v, number_label(v, 0))).collect();
    Axis::with_ticks(first, last, ticks)
}

/// The solve figure; `provider` and `trace` name what was simulated.
pub fn figure(s: &Solution, provider: &str, plan: &str, client: &str, trace: &str) -> Figure {
    let values: Vec<f64> = s.evaluations.iter().map(|e| e.value as f64).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let x = if lo.is_finite() { value_axis(lo, hi.max(lo + 1.0)) } else { Axis::from_zero(1.0, 5.0, "") };
    let mut panels = Vec::new();
    let mut clipped = Vec::new();
    for (t_index, target) in s.targets.iter().enumerate() {
        let (scale, suffix, duration) = presentation(&target.metric);
        // (value, mean, lowest, highest over the seeds, every target met)
        type Evaluated = (f64, Option<f64>, Option<f64>, Option<f64>, bool);
        let pts: Vec<Evaluated> = s
            .evaluations
            .iter()
            .map(|e| {
                let o = &e.targets[t_index];
                (e.value as f64, o.mean.map(|v| v * scale), o.min.map(|v| v * scale), o.max.map(|v| v * scale), e.holds)
            })
            .collect();
        // Values far beyond the target (a p99 of minutes against a target
        // of seconds) would flatten the part that matters: the axis stops
        // at four times the target and such values sit on its top edge.
        let highest = pts.iter().filter_map(|p| p.3.or(p.1)).fold(0.0, f64::max);
        let cap = target.value * scale * 4.0;
        let capped = suffix != "%" && cap > 0.0 && highest > cap;
        let top = if capped { cap } else { highest.max(target.value * scale) };
        if capped {
            clipped.push(target.text.clone());
        }
        let (y, y_unit) = if duration {
            let (a, unit) = super::axis::duration_axis(top * 1.1, 5.0);
            let k = unit.ns as f64;
            let ticks = a.ticks.iter().map(|(v, l)| (v * k, format!("{l} {}", unit.name))).collect();
            (Axis::with_ticks(0.0, a.hi * k, ticks), String::new())
        } else if suffix == "%" {
            (Axis::percent_upto(top * 1.1), " (%)".to_string())
        } else {
            (Axis::from_zero(top * 1.1, 5.0, ""), String::new())
        };
        let mut layers = Vec::new();
        if s.seeds.len() > 1 {
            let band: Vec<&Evaluated> = pts.iter().filter(|p| p.2.is_some() && p.3.is_some()).collect();
            if band.len() > 1 {
                layers.push(Layer::Band {
                    x: band.iter().map(|p| p.0).collect(),
                    lower: band.iter().map(|p| p.2.unwrap_or(0.0)).collect(),
                    upper: band.iter().map(|p| p.3.unwrap_or(0.0)).collect(),
                    fill: colour::tint(colour::REQUESTS, 0.75),
                    edge: None,
                });
            }
        }
        let line: Vec<(f64, f64)> = pts.iter().filter_map(|p| p.1.map(|m| (p.0, m))).collect();
        layers.push(Layer::Line { points: line, colour: colour::GREY, width: 1, dashed: false });
        for (holds, c) in [(true, HOLDS), (false, MISSES)] {
            let dots: Vec<(f64, f64)> =
                pts.iter().filter(|p| p.4 == holds).filter_map(|p| p.1.map(|m| (p.0, m))).collect();
            if !dots.is_empty() {
                layers.push(Layer::Points { points: dots, colour: c, radius: 4 });
            }
        }
        layers.push(Layer::HRule { y: target.value * scale, colour: colour::INK, label: String::new() });
        if let Some(a) = s.answer {
            let label = if t_index == 0 {
                format!("answer {}", s.answer_setting.clone().unwrap_or_default())
            } else {
                String::new()
            };
            layers.push(Layer::VRule { x: a as f64, colour: HOLDS, label });
        }
        let name = if duration {
            target.metric.trim_end_matches("_ns").replace('_', " ")
        } else {
            target.metric.replace('_', " ")
        };
        panels.push(Panel {
            title: String::new(),
            height: 230,
            x: x.clone(),
            y,
            x_desc: String::new(),
            y_desc: format!("{name}{y_unit}"),
            layers,
        });
    }
    if let Some(last) = panels.last_mut() {
        last.x_desc = format!("{} ({})", s.parameter, s.unit);
        last.height += 24;
    }
    let want = match s.direction {
        Direction::Smallest => "smallest",
        Direction::Largest => "largest",
    };
    let over = match (s.require, s.seeds.len()) {
        (_, 1) => format!("seed {}", s.seeds[0]),
        (Require::Every, n) => format!("every one of {n} seeds (band: their range)"),
        (Require::Mean, n) => format!("the mean of {n} seeds (band: their range)"),
    };
    let mut notes = vec![format!("plan {plan}"), format!("client {client}"), format!("trace {trace}"), over];
    match (&s.answer_setting, &s.failure) {
        (Some(a), _) => notes.push(format!("answer: {} = {a}", s.parameter)),
        (None, Some(f)) => notes.push(format!("no answer: {f}")),
        _ => {}
    }
    notes.push(format!("targets: {}", s.targets.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join(", ")));
    notes.push(format!("{} values evaluated", s.evaluations.len()));
    if !clipped.is_empty() {
        notes.push(format!("values above 4 × the target of {} sit on the top edge", clipped.join(", ")));
    }
    Figure {
        title: format!("{provider}: the {want} {} that meets the targets", s.parameter),
        notes,
        legend: vec![
            Key::new("every target met", Mark::Dot(HOLDS)),
            Key::new("a target missed", Mark::Dot(MISSES)),
            Key::new("target", Mark::Dashed(colour::INK)),
        ],
        panels,
    }
}
