//! Axes: ranges, ticks chosen by ratesim (not plotters), labels with their
//! units, linear or logarithmic.
//!
//! An [`Axis`] is a plotters coordinate ([`Ranged`]) whose key points are
//! exactly its ticks, so the grid lines and labels are the ones computed
//! here: "nice" steps for counts and percentages, whole time units for
//! durations, and for time since the trace start either offsets (`0`,
//! `10`, `20` min) or wall-clock instants (`10:00`, `Jan 02`) aligned to
//! the UTC clock. Labels are formatted with fixed rules, so the same data
//! always gives the same text.

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, KeyPointWeight, NoDefaultFormatting, Ranged, ValueFormatter};

use crate::report::group;
use crate::time::{civil, DAY, HOUR, MINUTE, SECOND};

/// One axis: its range, scale, and ticks with their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// Low end of the range (a value, not its logarithm).
    pub lo: f64,
    /// High end.
    pub hi: f64,
    /// Logarithmic (base 10) mapping; the range is then positive.
    pub log: bool,
    /// Tick values and labels.
    pub ticks: Vec<(f64, String)>,
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let (a, b, x) = if self.log {
            (self.lo.log10(), self.hi.log10(), v.max(self.lo * 1e-3).log10())
        } else {
            (self.lo, self.hi, *v)
        };
        let span = if b > a { b - a } else { 1.0 };
        let f = (x - a) / span;
        limit.0 + ((limit.1 - limit.0) as f64 * f).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Ticks are the bold grid; there are no light lines between them.
        match hint.weight() {
            KeyPointWeight::Bold => self.ticks.iter().map(|t| t.0).collect(),
            KeyPointWeight::Any => Vec::new(),
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, v: &f64) -> String {
        self.ticks.iter().find(|t| t.0 == *v).map_or_else(String::new, |t| t.1.clone())
    }
}

/// The step of about `target` ticks over `span`: 1, 2, 2.5 or 5 times a
/// power of ten.
fn nice_step(span: f64, target: f64) -> f64 {
    let raw = (span / target).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw * 0.999).unwrap_or(10.0 * mag)
}

/// Decimals that show every multiple of `step` exactly.
fn decimals(step: f64) -> usize {
    let mut d = 0;
    while d < 6 && ((step * 10f64.powi(d as i32)).round() - step * 10f64.powi(d as i32)).abs() > 1e-6 {
        d += 1;
    }
    d
}

/// A number as an axis label: thousands separators for whole numbers,
/// `decimals` decimals otherwise.
pub fn number_label(v: f64, decimals: usize) -> String {
    if decimals == 0 {
        let r = v.round();
        if r < 0.0 {
            format!("-{}", group((-r) as u64))
        } else {
            group(r as u64)
        }
    } else {
        // Trailing zeros go: 12.5 and 15, not 12.5 and 15.0.
        let s = format!("{v:.decimals$}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".to_string()
        } else {
            s.to_string()
        }
    }
}

impl Axis {
    /// From 0 to at least `max` (at least 1), about `target` ticks, labels
    /// as numbers followed by `suffix` (e.g. `%`).
    pub fn from_zero(max: f64, target: f64, suffix: &str) -> Axis {
        let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
        let step = nice_step(max, target);
        let n = (max / step - 1e-9).ceil().max(1.0) as u64;
        let d = decimals(step);
        let ticks = (0..=n).map(|i| i as f64 * step).map(|v| (v, format!("{}{suffix}", number_label(v, d)))).collect();
        Axis { lo: 0.0, hi: n as f64 * step, log: false, ticks }
    }

    /// A percentage axis from 0 to 100.
    pub fn percent() -> Axis {
        let ticks = (0..=4).map(|i| (i as f64 * 25.0, format!("{}%", i * 25))).collect();
        Axis { lo: 0.0, hi: 100.0, log: false, ticks }
    }

    /// A percentage axis from 0 to at least `max` (at most 100).
    pub fn percent_upto(max: f64) -> Axis {
        if max > 50.0 || !max.is_finite() {
            return Axis::percent();
        }
        Axis::from_zero(max, 5.0, "%")
    }

    /// An axis given its range and ticks.
    pub fn with_ticks(lo: f64, hi: f64, ticks: Vec<(f64, String)>) -> Axis {
        Axis { lo, hi, log: false, ticks }
    }
}

/// A unit of time for labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeUnit {
    /// Nanoseconds in one unit.
    pub ns: u64,
    /// Its symbol: `ms`, `s`, `min`, `h`, `day`.
    pub name: &'static str,
}

const MS: TimeUnit = TimeUnit { ns: 1_000_000, name: "ms" };
const S: TimeUnit = TimeUnit { ns: SECOND, name: "s" };
const MIN: TimeUnit = TimeUnit { ns: MINUTE, name: "min" };
const H: TimeUnit = TimeUnit { ns: HOUR, name: "h" };
const D: TimeUnit = TimeUnit { ns: DAY, name: "day" };

/// The unit to show a span of `span_ns` in: the largest that leaves more
/// than about two of it.
pub fn unit_for(span_ns: f64) -> TimeUnit {
    [D, H, MIN, S].into_iter().find(|u| span_ns > 2.5 * u.ns as f64).unwrap_or(MS)
}

/// A duration axis from 0 to at least `max_ns`, in the unit that suits it
/// (returned too, for the axis description).
pub fn duration_axis(max_ns: f64, target: f64) -> (Axis, TimeUnit) {
    let unit = [D, H, MIN, S].into_iter().find(|u| max_ns >= 1.5 * u.ns as f64).unwrap_or(MS);
    let a = Axis::from_zero(max_ns / unit.ns as f64, target, "");
    (a, unit)
}

/// Candidate steps of a time axis, in seconds.
const TIME_STEPS: [f64; 30] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0, 43200.0, 86400.0, 172800.0, 604800.0, 2419200.0,
];

/// How a time axis labels its ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Offsets since the trace start, in one unit (`0`, `10`, `20` min).
    Offset,
    /// Wall-clock instants in UTC (`10:00`, `10:30`, `Jan 02`), with the
    /// trace start at `origin_ns` since the Unix epoch.
    Wall {
        /// The trace start, ns since the Unix epoch.
        origin_ns: u64,
    },
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// A time axis over `[from_s, to_s]` seconds since the trace start, with
/// about `target` ticks; returns the axis and its description.
pub fn time_axis(from_s: f64, to_s: f64, clock: Clock, target: f64) -> (Axis, String) {
    let to_s = if to_s > from_s { to_s } else { from_s + 1.0 };
    let span = to_s - from_s;
    let step = TIME_STEPS.iter().copied().find(|s| span / s <= target).unwrap_or(span / target);
    match clock {
        Clock::Offset => {
            let unit = unit_for(span * 1e9);
            let in_unit = step * 1e9 / unit.ns as f64;
            let d = decimals(in_unit);
            let first = (from_s / step - 1e-9).ceil() as i64;
            let last = (to_s / step + 1e-9).floor() as i64;
            let ticks = (first..=last)
                .map(|i| i as f64 * step)
                .map(|v| (v, number_label(v * 1e9 / unit.ns as f64, d)))
                .collect();
            (Axis { lo: from_s, hi: to_s, log: false, ticks }, format!("time since the trace start ({})", unit.name))
        }
        Clock::Wall { origin_ns } => {
            let origin = origin_ns as f64 / 1e9;
            let first = ((origin + from_s) / step - 1e-9).ceil() as i64;
            let last = ((origin + to_s) / step + 1e-9).floor() as i64;
            let mut ticks = Vec::new();
            for i in first..=last {
                let abs_ns = (i as f64 * step * 1e9).round() as u64;
                let c = civil(abs_ns);
                let secs = c.nanos_of_day / SECOND;
                let label = if c.nanos_of_day == 0 && step >= 3600.0 {
                    format!("{} {:02}", MONTHS[c.month as usize - 1], c.day)
                } else if step < 60.0 {
                    let frac = c.nanos_of_day % SECOND;
                    let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
                    if step < 1.0 {
                        format!("{base}.{:03}", frac / 1_000_000)
                    } else {
                        base
                    }
                } else {
                    format!("{:02}:{:02}", secs / 3600, secs / 60 % 60)
                };
                ticks.push((abs_ns as f64 / 1e9 - origin, label));
            }
            let day = |s: f64| {
                let c = civil(((origin + s) * 1e9).max(0.0) as u64);
                format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
            };
            let (a, b) = (day(from_s), day(to_s));
            let desc = if a == b { format!("time (UTC, {a})") } else { format!("time (UTC, {a} to {b})") };
            (Axis { lo: from_s, hi: to_s, log: false, ticks }, desc)
        }
    }
}

/// A duration as a tick label: `500 ms`, `2 s`, `10 min`, `1 h`, `3 day`.
pub fn duration_label(ns: f64) -> String {
    let unit = [D, H, MIN, S, MS].into_iter().find(|u| ns >= u.ns as f64 * 0.999).unwrap_or(MS);
    let v = ns / unit.ns as f64;
    let d = if (v - v.round()).abs() < 1e-6 { 0 } else { decimals(v).min(3) };
    format!("{} {}", number_label(v, d), unit.name)
}

/// Logarithmic duration ticks, ns.
const LOG_TICKS_NS: [f64; 22] = [
    1e6, 1e7, 1e8, 1e9, 2e9, 5e9, 1e10, 3e10, 6e10, 1.2e11, 3e11, 6e11, 1.8e12, 3.6e12, 1.08e13, 3.6e13, 8.64e13,
    2.592e14, 8.64e14, 2.592e15, 8.64e15, 3.1536e16,
];

/// Round durations a decade or so apart: 1 ms … 1 s, 10 s, 1 min, 10 min,
/// 1 h, 6 h, 1 day, 10 day, 100 day, 1,000 day.
const MAJOR_TICKS_NS: [f64; 14] =
    [1e6, 1e7, 1e8, 1e9, 1e10, 6e10, 6e11, 3.6e12, 2.16e13, 8.64e13, 8.64e14, 8.64e15, 8.64e16, 8.64e17];

/// A logarithmic duration axis (values in ns) over `[min_ns, max_ns]`
/// (`min_ns > 0`), widened to round durations, ticks at whole units.
pub fn log_duration_axis(min_ns: f64, max_ns: f64) -> Axis {
    let lo = LOG_TICKS_NS.iter().rev().copied().find(|t| *t <= min_ns).unwrap_or(1e6).min(min_ns.max(1.0));
    let hi = LOG_TICKS_NS.iter().copied().find(|t| *t >= max_ns).unwrap_or(max_ns);
    let within = |list: &[f64]| -> Vec<f64> { list.iter().copied().filter(|t| *t >= lo && *t <= hi).collect() };
    // All candidates when they fit, else round decades of time units,
    // else every other of those.
    let mut ticks = within(&LOG_TICKS_NS);
    if ticks.len() > 9 {
        ticks = within(&MAJOR_TICKS_NS);
    }
    if ticks.len() > 9 {
        ticks = ticks.into_iter().step_by(2).collect();
    }
    Axis { lo, hi, log: true, ticks: ticks.into_iter().map(|t| (t, duration_label(t))).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_axes_have_nice_ticks() {
        let a = Axis::from_zero(47.0, 5.0, "");
        assert_eq!(a.hi, 50.0);
        assert_eq!(a.ticks.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(), ["0", "10", "20", "30", "40", "50"]);
        let b = Axis::from_zero(12_500.0, 5.0, "");
        assert_eq!(b.ticks.last().unwrap().1, "12,500");
        assert_eq!(Axis::from_zero(12_600.0, 5.0, "").ticks.last().unwrap().1, "15,000");
        let c = Axis::from_zero(0.3, 5.0, "");
        assert_eq!(c.ticks[1].1, "0.1");
        assert_eq!(Axis::from_zero(0.0, 5.0, "").hi, 1.0);
    }

    #[test]
    fn time_axes_use_whole_units_and_the_clock() {
        let (a, desc) = time_axis(0.0, 3600.0, Clock::Offset, 8.0);
        assert_eq!(desc, "time since the trace start (min)");
        assert_eq!(a.ticks[1], (600.0, "10".to_string()));
        // 2026-01-01T07:00:00Z, a 3-hour window starting at 07:20.
        let origin = 1_767_250_800 * SECOND;
        let (w, desc) = time_axis(1200.0, 1200.0 + 3.0 * 3600.0, Clock::Wall { origin_ns: origin }, 8.0);
        assert_eq!(desc, "time (UTC, 2026-01-01)");
        assert_eq!(w.ticks[0].1, "07:30");
        assert_eq!(w.ticks[0].0, 1800.0);
        let (d, desc) = time_axis(0.0, 3.0 * 86400.0, Clock::Wall { origin_ns: origin }, 8.0);
        assert!(d.ticks.iter().any(|t| t.1 == "Jan 02"), "{:?}", d.ticks);
        assert_eq!(desc, "time (UTC, 2026-01-01 to 2026-01-04)");
    }

    #[test]
    fn duration_labels_name_their_unit() {
        assert_eq!(duration_label(1e9), "1 s");
        assert_eq!(duration_label(6e10), "1 min");
        assert_eq!(duration_label(1.5e9), "1.5 s");
        assert_eq!(duration_label(8.64e13), "1 day");
        let a = log_duration_axis(3e8, 2e12);
        assert_eq!(a.lo, 1e8);
        assert!(a.ticks.len() <= 10);
        assert!(a.ticks.iter().any(|t| t.1 == "1 s"));
    }
}
