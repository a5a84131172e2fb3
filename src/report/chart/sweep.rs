//! Charts of a sweep: how plans and clients fare as a parameter moves.
//!
//! [`SweepCharts`] collects, as results stream in, one value per point
//! (every axis but the seed) of the metrics the charts draw: the mean and
//! the 95% half-width when there are replications
//! ([`crate::whatif::results::PointStatistics`]), the scenario's own value
//! otherwise; and the time-to-success distribution of the first seed of
//! the first points. It then draws:
//!
//! - [`SweepCharts::load`]: success, the denial rate of each status the plans answer,
//!   and retry amplification against the swept numeric axis (the offered
//!   load of `--scale`, else a numeric `--set` axis, else `--scale-keys`),
//!   one line per plan, client or other combination, with 95% bands;
//! - [`SweepCharts::heatmap`]: a metric over two swept axes, each cell annotated;
//! - with 2 to [`MAX_STORMS`] points, their retry storms side by side
//!   ([`super::storm::comparison`]);
//! - the time-to-success CDF, one line per point ([`super::cdf`]).

use std::collections::BTreeMap;

use plotters::style::RGBColor;

use super::axis::{number_label, Axis};
use super::cdf::{self, CdfLine};
use super::figure::{colour, Figure, Key, Layer, Mark, Panel};
use crate::time::Rate;
use crate::whatif::axes::SweepDefinition;
use crate::whatif::results::{metric_value, Point, PointStatistics, ScenarioResult};

/// Points kept for charts (a sweep may have more; the notes say so).
pub const MAX_POINTS: usize = 20_000;
/// Lines one load chart draws.
pub const MAX_SERIES: usize = 10;
/// Points whose retries over time are compared (one panel each).
pub const MAX_STORMS: usize = 4;

/// One point's values: metric name → (mean, 95% half-width).
#[derive(Clone, Debug, PartialEq)]
pub struct PointValues {
    /// The point's index.
    pub point: u64,
    /// Its axis values.
    pub at: Point,
    /// Metric values.
    pub values: BTreeMap<String, (f64, Option<f64>)>,
}

/// An axis of the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepAxis {
    /// `--set` axis `i`.
    Set(usize),
    /// `--scale`.
    Scale,
    /// `--scale-keys`.
    Keys,
    /// `--clients`.
    Client,
    /// `--plans`.
    Plan,
}

impl SweepAxis {
    /// Its values in the sweep, as written.
    fn values(self, def: &SweepDefinition) -> Vec<String> {
        match self {
            SweepAxis::Set(i) => def.set[i].values.clone(),
            SweepAxis::Scale => def.scale.clone(),
            SweepAxis::Keys => def.scale_keys.iter().map(u32::to_string).collect(),
            SweepAxis::Client => def.clients.clone(),
            SweepAxis::Plan => def.plans.clone(),
        }
    }

    /// The value of a point on it, as written.
    fn of(self, at: &Point, def: &SweepDefinition) -> String {
        match self {
            SweepAxis::Set(i) => at.set.get(&def.set[i].target).and_then(|v| v.as_str()).unwrap_or("").to_string(),
            SweepAxis::Scale => number_label(at.scale, 4),
            SweepAxis::Keys => at.scale_keys.to_string(),
            SweepAxis::Client => at.client.clone(),
            SweepAxis::Plan => at.plan.clone(),
        }
    }

    /// Its name for labels.
    fn name(self, def: &SweepDefinition) -> String {
        match self {
            SweepAxis::Set(i) => def.set[i].target.clone(),
            SweepAxis::Scale => "offered load (×)".to_string(),
            SweepAxis::Keys => "keys ×".to_string(),
            SweepAxis::Client => "client".to_string(),
            SweepAxis::Plan => "plan".to_string(),
        }
    }

    /// A value as a number, if it is one (a rate's count per its period).
    fn number(self, value: &str) -> Option<f64> {
        let v = value.trim();
        v.parse::<f64>().ok().filter(|x| x.is_finite()).or_else(|| Rate::parse(v).ok().map(|r| r.count() as f64))
    }

    /// All of the sweep's axes with two values or more, set axes first.
    fn varying(def: &SweepDefinition) -> Vec<SweepAxis> {
        let mut all: Vec<SweepAxis> = (0..def.set.len()).map(SweepAxis::Set).collect();
        all.extend([SweepAxis::Scale, SweepAxis::Keys, SweepAxis::Client, SweepAxis::Plan]);
        all.into_iter().filter(|a| a.values(def).len() > 1).collect()
    }
}

/// The charts' view of a sweep, filled as results arrive.
#[derive(Clone, Debug)]
pub struct SweepCharts {
    def: SweepDefinition,
    statuses: Vec<u16>,
    replicated: bool,
    points: Vec<PointValues>,
    dropped_points: u64,
    cdfs: Vec<CdfLine>,
    /// Labels of the points whose distribution is not drawn (the first
    /// few), and how many there are.
    cdf_omitted: Vec<String>,
    cdf_omitted_count: usize,
    /// Time series of the first seed of the first points, and how many
    /// points had one.
    storms: Vec<(String, super::series::RunSeries)>,
    storm_points: usize,
    failed: u64,
}

/// The metrics the charts read, by `results.csv` column name.
fn metric_names(statuses: &[u16]) -> Vec<String> {
    let mut m: Vec<String> =
        ["success_ratio", "retry_amplification", "give_up_ratio", "time_to_success_p99_ns"].map(String::from).to_vec();
    m.extend(statuses.iter().map(|s| format!("rate_{s}")));
    m
}

impl SweepCharts {
    /// For a sweep of `def` whose plans deny with `statuses`; `replicated`:
    /// points come with statistics over several seeds.
    pub fn new(def: &SweepDefinition, statuses: &[u16], replicated: bool) -> SweepCharts {
        SweepCharts {
            def: def.clone(),
            statuses: statuses.to_vec(),
            replicated,
            points: Vec::new(),
            dropped_points: 0,
            cdfs: Vec::new(),
            cdf_omitted: Vec::new(),
            cdf_omitted_count: 0,
            storms: Vec::new(),
            storm_points: 0,
            failed: 0,
        }
    }

    fn keep(&mut self, p: PointValues) {
        if self.points.len() < MAX_POINTS {
            self.points.push(p);
        } else {
            self.dropped_points += 1;
        }
    }

    /// One scenario's result.
    pub fn scenario(&mut self, r: &ScenarioResult) {
        let Some(summary) = &r.summary else {
            self.failed += 1;
            return;
        };
        let first_seed = r.index % self.def.seeds.len().max(1) as u64 == 0;
        if let (true, Some(series)) = (first_seed, &r.series) {
            if self.storms.len() < MAX_STORMS {
                self.storms.push((self.label(&r.at), series.clone()));
            }
            self.storm_points += 1;
            let steps = &series.time_to_success;
            let label = self.label(&r.at);
            if let Some(same) = self.cdfs.iter_mut().find(|l| l.steps == *steps && l.requests == summary.requests) {
                if same.same.len() < cdf::MAX_NAMED {
                    same.same.push(label);
                }
                same.same_count += 1;
            } else if self.cdfs.len() < cdf::MAX_LINES {
                self.cdfs.push(CdfLine {
                    label,
                    steps: steps.clone(),
                    requests: summary.requests,
                    same: Vec::new(),
                    same_count: 0,
                });
            } else {
                if self.cdf_omitted.len() < 16 {
                    self.cdf_omitted.push(label);
                }
                self.cdf_omitted_count += 1;
            }
        }
        if !self.replicated {
            let values = metric_names(&self.statuses)
                .into_iter()
                .filter_map(|m| metric_value(summary, &m).ok().flatten().map(|v| (m, (v, None))))
                .collect();
            self.keep(PointValues { point: r.point, at: r.at.clone(), values });
        }
    }

    /// One point's statistics (sweeps with several seeds).
    pub fn point(&mut self, p: &PointStatistics) {
        let values = metric_names(&self.statuses)
            .into_iter()
            .filter_map(|m| p.metric(&m).map(|e| (m, (e.mean, e.ci95))))
            .collect();
        self.keep(PointValues { point: p.point, at: p.at.clone(), values });
    }

    /// A point's label: its values on the axes that vary, but `except`.
    fn label_except(&self, at: &Point, except: &[SweepAxis]) -> String {
        let parts: Vec<String> = SweepAxis::varying(&self.def)
            .into_iter()
            .filter(|a| !except.contains(a))
            .map(|a| match a {
                SweepAxis::Set(_) => format!("{}={}", short_target(&a.name(&self.def)), a.of(at, &self.def)),
                SweepAxis::Scale => format!("load ×{}", a.of(at, &self.def)),
                SweepAxis::Keys => format!("keys ×{}", a.of(at, &self.def)),
                _ => a.of(at, &self.def),
            })
            .collect();
        if parts.is_empty() {
            format!("{} · {}", at.plan, at.client)
        } else {
            parts.join(" · ")
        }
    }

    fn label(&self, at: &Point) -> String {
        self.label_except(at, &[])
    }

    fn notes(&self) -> Vec<String> {
        let d = &self.def;
        let mut n = vec![format!("trace {}", d.trace.path)];
        if self.replicated {
            n.push(format!("mean of {} seeds per point; bands: 95% confidence interval", d.seeds.len()));
        } else {
            n.push(format!("seed {}", d.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")));
        }
        let fixed: Vec<String> = [
            (d.plans.len() == 1).then(|| format!("plan {}", d.plans[0])),
            (d.clients.len() == 1).then(|| format!("client {}", d.clients[0])),
        ]
        .into_iter()
        .flatten()
        .collect();
        n.extend(fixed);
        if self.dropped_points > 0 {
            n.push(format!("{} points beyond the first {MAX_POINTS} not drawn", self.dropped_points));
        }
        if self.failed > 0 {
            n.push(format!("{} scenarios failed and are left out", self.failed));
        }
        n
    }

    /// Every chart the sweep supports, with its file stem.
    pub fn figures(&self) -> Vec<(&'static str, Figure)> {
        let mut out = Vec::new();
        if let Some(f) = self.load() {
            out.push(("load", f));
        }
        if let Some(f) = self.heatmap("success_ratio") {
            out.push(("heatmap", f));
        }
        if (2..=MAX_STORMS).contains(&self.storm_points) {
            let mut notes = vec![format!("trace {}", self.def.trace.path)];
            if self.def.seeds.len() > 1 {
                notes.push(format!("seed {} of each point", self.def.seeds[0]));
            } else {
                notes.push(format!("seed {}", self.def.seeds[0]));
            }
            let title = format!("{}: retries over time, compared", self.def.provider);
            out.push(("retries", super::storm::comparison(title, notes, &self.storms)));
        }
        if !self.cdfs.is_empty() {
            let mut notes = self.notes();
            notes.retain(|n| !n.starts_with("mean of"));
            if self.def.seeds.len() > 1 {
                notes.push(format!("seed {} of each point", self.def.seeds[0]));
            }
            let f = cdf::figure(
                format!("{}: time to success per scenario", self.def.provider),
                notes,
                &self.cdfs,
                &self.cdf_omitted,
                self.cdf_omitted_count,
            );
            out.push(("time-to-success", f));
        }
        out
    }

    /// The numeric axis the load chart runs along, if any.
    fn x_axis(&self) -> Option<SweepAxis> {
        let numeric = |a: SweepAxis| a.values(&self.def).iter().all(|v| a.number(v).is_some());
        let varying = SweepAxis::varying(&self.def);
        [SweepAxis::Scale]
            .into_iter()
            .chain((0..self.def.set.len()).map(SweepAxis::Set))
            .chain([SweepAxis::Keys])
            .find(|a| varying.contains(a) && numeric(*a))
    }

    /// Success, denial rates and retry amplification against the swept
    /// numeric axis, one line per combination of the other axes.
    pub fn load(&self) -> Option<Figure> {
        let xa = self.x_axis()?;
        // Lines: points grouped by their values on every other axis.
        let mut series: Vec<(String, Vec<&PointValues>)> = Vec::new();
        for p in &self.points {
            let key = self.label_except(&p.at, &[xa]);
            match series.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(p),
                None => series.push((key, vec![p])),
            }
        }
        let dropped = series.len().saturating_sub(MAX_SERIES);
        series.truncate(MAX_SERIES);
        let x_of = |p: &PointValues| xa.number(&xa.of(&p.at, &self.def)).unwrap_or(0.0);
        let xs: Vec<f64> = self.points.iter().map(x_of).collect();
        let (lo, hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        let x = linear_axis(lo, hi);
        let x_desc = match xa {
            SweepAxis::Scale => "offered load (× the trace's arrival rate)".to_string(),
            SweepAxis::Keys => "keys (× the trace's keys)".to_string(),
            SweepAxis::Set(i) => {
                let v = &self.def.set[i].values[0];
                match Rate::parse(v) {
                    Ok(r) => format!("{} (per {})", self.def.set[i].target, crate::time::format_duration(r.period())),
                    Err(_) => self.def.set[i].target.clone(),
                }
            }
            _ => String::new(),
        };
        let mut legend = Vec::new();
        let metric_panel = |metric: &str, y: Axis, y_desc: String, scale: f64| {
            let mut layers = Vec::new();
            for (i, (_, pts)) in series.iter().enumerate() {
                let c = colour::SERIES[i % colour::SERIES.len()];
                let mut line: Vec<(f64, f64, Option<f64>)> = pts
                    .iter()
                    .filter_map(|p| p.values.get(metric).map(|(m, ci)| (x_of(p), m * scale, ci.map(|c| c * scale))))
                    .collect();
                line.sort_by(|a, b| a.0.total_cmp(&b.0));
                if line.iter().any(|p| p.2.is_some()) {
                    layers.push(Layer::Band {
                        x: line.iter().map(|p| p.0).collect(),
                        lower: line.iter().map(|p| p.1 - p.2.unwrap_or(0.0)).collect(),
                        upper: line.iter().map(|p| p.1 + p.2.unwrap_or(0.0)).collect(),
                        fill: colour::tint(c, 0.75),
                        edge: None,
                    });
                }
                layers.push(Layer::Line {
                    points: line.iter().map(|p| (p.0, p.1)).collect(),
                    colour: c,
                    width: 2,
                    dashed: false,
                });
                layers.push(Layer::Points { points: line.iter().map(|p| (p.0, p.1)).collect(), colour: c, radius: 3 });
            }
            Panel { title: String::new(), height: 210, x: x.clone(), y, x_desc: String::new(), y_desc, layers }
        };
        for (i, (label, _)) in series.iter().enumerate() {
            legend.push(Key::new(label.clone(), Mark::Line(colour::SERIES[i % colour::SERIES.len()], 2)));
        }
        let max_of = |metric: &str, scale: f64| {
            self.points
                .iter()
                .filter_map(|p| p.values.get(metric).map(|(m, ci)| (m + ci.unwrap_or(0.0)) * scale))
                .fold(0.0, f64::max)
        };
        let mut panels = vec![metric_panel("success_ratio", Axis::percent(), "succeeded (%)".into(), 100.0)];
        let mut quiet = Vec::new();
        for s in &self.statuses {
            let m = format!("rate_{s}");
            let top = max_of(&m, 100.0);
            if top <= 0.0 {
                quiet.push(s.to_string());
                continue;
            }
            panels.push(metric_panel(&m, Axis::percent_upto(top * 1.1), format!("denied {s} (%)"), 100.0));
        }
        let amp = max_of("retry_amplification", 1.0).max(1.0);
        panels.push(metric_panel(
            "retry_amplification",
            Axis::from_zero(amp * 1.1, 5.0, "×"),
            "retry amplification".into(),
            1.0,
        ));
        if let Some(last) = panels.last_mut() {
            last.x_desc = x_desc;
            last.height += 24;
        }
        let mut notes = self.notes();
        notes.push("succeeded: % of requests; denied: % of attempts".to_string());
        if !quiet.is_empty() {
            notes.push(format!("no {} denials anywhere", quiet.join(" or ")));
        }
        if dropped > 0 {
            notes.push(format!("{dropped} more lines not drawn (at most {MAX_SERIES})"));
        }
        let what = match xa {
            SweepAxis::Scale => "against offered load".to_string(),
            a => format!("against {}", a.name(&self.def)),
        };
        Some(Figure { title: format!("{}: success and denials {what}", self.def.provider), notes, legend, panels })
    }

    /// `metric` over the first two swept axes, one cell per pair, each
    /// annotated with its value; other axes at their first combination.
    pub fn heatmap(&self, metric: &str) -> Option<Figure> {
        let varying = SweepAxis::varying(&self.def);
        let (&xa, &ya) = (varying.first()?, varying.get(1)?);
        let xv = xa.values(&self.def);
        let yv = ya.values(&self.def);
        let others: Vec<SweepAxis> = varying[2..].to_vec();
        let first = self.points.first()?;
        let fixed: Vec<(SweepAxis, String)> = others.iter().map(|a| (*a, a.of(&first.at, &self.def))).collect();
        let percent = metric.ends_with("ratio") || metric.starts_with("rate_");
        let mut rects = Vec::new();
        let mut labels = Vec::new();
        for p in &self.points {
            if fixed.iter().any(|(a, v)| a.of(&p.at, &self.def) != *v) {
                continue;
            }
            let (Some(i), Some(j)) = (
                xv.iter().position(|v| *v == xa.of(&p.at, &self.def)),
                yv.iter().position(|v| *v == ya.of(&p.at, &self.def)),
            ) else {
                continue;
            };
            let Some((m, ci)) = p.values.get(metric) else { continue };
            let shade = if percent { m.clamp(0.0, 1.0) } else { 0.5 };
            let fill = heat(shade);
            let text = if percent {
                match ci {
                    Some(c) => format!("{:.1}% ±{:.1}", m * 100.0, c * 100.0),
                    None => format!("{:.1}%", m * 100.0),
                }
            } else {
                number_label(*m, 2)
            };
            let ink = if shade > 0.55 { RGBColor(255, 255, 255) } else { colour::INK };
            rects.push((i as f64 - 0.5, j as f64 - 0.5, i as f64 + 0.5, j as f64 + 0.5, fill));
            labels.push((i as f64, j as f64, text, ink));
        }
        if rects.is_empty() {
            return None;
        }
        let ticks = |values: &[String]| values.iter().enumerate().map(|(i, v)| (i as f64, v.clone())).collect();
        let x = Axis::with_ticks(-0.5, xv.len() as f64 - 0.5, ticks(&xv));
        let y = Axis::with_ticks(-0.5, yv.len() as f64 - 0.5, ticks(&yv));
        let mut notes = self.notes();
        if self.replicated {
            for n in notes.iter_mut().filter(|n| n.starts_with("mean of")) {
                *n = format!("mean ± 95% confidence half-width over {} seeds", self.def.seeds.len());
            }
        }
        if !fixed.is_empty() {
            notes.push(format!(
                "at {}",
                fixed.iter().map(|(a, v)| format!("{} {v}", a.name(&self.def))).collect::<Vec<_>>().join(", ")
            ));
        }
        let legend = [0.0, 0.25, 0.5, 0.75, 1.0]
            .into_iter()
            .map(|v| Key::new(format!("{:.0}%", v * 100.0), Mark::Fill(heat(v))))
            .collect();
        let name = metric_title(metric);
        let height = (yv.len() as u32 * 46).clamp(200, 560) + 60;
        Some(Figure {
            title: format!("{}: {name} by {} and {}", self.def.provider, xa.name(&self.def), ya.name(&self.def)),
            notes,
            legend,
            panels: vec![Panel {
                title: String::new(),
                height,
                x,
                y,
                x_desc: xa.name(&self.def),
                y_desc: ya.name(&self.def),
                layers: vec![Layer::Rects { rects }, Layer::Labels { items: labels }],
            }],
        })
    }
}

/// `PLAN.LIMIT.FIELD` without the plan when it is `*`.
fn short_target(t: &str) -> String {
    t.strip_prefix("*.").unwrap_or(t).to_string()
}

/// A metric's name for a title.
fn metric_title(metric: &str) -> String {
    match metric {
        "success_ratio" => "requests succeeded".to_string(),
        "retry_amplification" => "retry amplification".to_string(),
        "give_up_ratio" => "requests that gave up".to_string(),
        m => match m.strip_prefix("rate_") {
            Some(s) => format!("attempts denied {s}"),
            None => m.to_string(),
        },
    }
}

/// A sequential shade for 0–1: light yellow-green to dark blue.
fn heat(v: f64) -> RGBColor {
    let stops = [(255.0, 255.0, 217.0), (127.0, 205.0, 187.0), (29.0, 145.0, 192.0), (37.0, 52.0, 148.0)];
    let t = v.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (t.floor() as usize).min(stops.len() - 2);
    let f = t - i as f64;
    let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    RGBColor(mix(stops[i].0, stops[i + 1].0), mix(stops[i].1, stops[i + 1].1), mix(stops[i].2, stops[i + 1].2))
}

/// A linear axis over `[lo, hi]` with nice ticks (not from 0).
fn linear_axis(lo: f64, hi: f64) -> Axis {
    let a = Axis::from_zero(hi - lo, 6.0, "");
    let step = a.ticks.get(1).map_or(1.0, |t| t.0);
    let first = (lo / step).floor() * step;
    let last = (hi / step).ceil() * step;
    let n = ((last - first) / step).round() as u64;
    let d =
        (0..6).find(|d| ((step * 10f64.powi(*d)).round() - step * 10f64.powi(*d)).abs() < 1e-6).unwrap_or(6) as usize;
    let ticks = (0..=n).map(|k| first + k as f64 * step).map(|v| (v, number_label(v, d))).collect();
    Axis::with_ticks(first, last, ticks)
}
