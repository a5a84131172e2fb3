//! The timeline of a run: what was sent and what was answered.
//!
//! Upper panel: attempts per second stacked as admitted (split into served
//! at once and delayed by the server, for plans that delay) and denied by
//! status, each status its own colour (429 red, 402 purple, 503 brown);
//! new requests, retries and polls as lines over them. When a point sums
//! several buckets, the busiest single bucket of each point is a grey band
//! above the stack: it shows the retry waves that the average smooths
//! away, but it does not set the scale; where it runs off the top it is
//! clipped, and the legend says by how much.
//!
//! Lower panel: the share of attempts denied in each point, one line per
//! status that occurred.

use super::axis::{time_axis, Axis};
use super::figure::{colour, Figure, Key, Layer, Mark, Panel};
use super::series::{RunPoint, RunSeries, STATUSES};
use super::waiting::broken_line;
use super::{RunContext, DRAW_POINTS};
use crate::report::{group, human_duration};

/// Time series are drawn as steps: each point's value holds over the time
/// it covers. [`xs`] gives two x values per point (its start and end),
/// [`twice`] and [`rates`] two y values.
pub(super) fn xs<P: super::series::Merge>(s: &super::series::Coarse<P>) -> Vec<f64> {
    let bucket_s = s.bucket as f64 / 1e9;
    (0..s.points.len()).flat_map(|i| [s.x(i), s.x(i) + s.buckets_in(i) as f64 * bucket_s]).collect()
}

/// Each value twice, to go with [`xs`].
pub(super) fn twice<T: Clone>(values: impl IntoIterator<Item = T>) -> Vec<T> {
    values.into_iter().flat_map(|v| [v.clone(), v]).collect()
}

/// Per-second rates of the points of `s` (`f(point)` divided by the time
/// the point covers), stepped as [`xs`].
pub(super) fn rates(s: &super::series::Coarse<RunPoint>, f: impl Fn(&RunPoint) -> f64) -> Vec<f64> {
    let bucket_s = s.bucket as f64 / 1e9;
    twice(s.points.iter().enumerate().map(|(i, p)| f(p) / (s.buckets_in(i) as f64 * bucket_s)))
}

/// Stacks `layers` (bottom first): each slice is a band from the running
/// total to the total plus its own values.
pub(super) fn stack(x: &[f64], layers: Vec<(Vec<f64>, colour_pair::Pair)>) -> (Vec<Layer>, Vec<f64>) {
    let mut base = vec![0.0; x.len()];
    let mut out = Vec::new();
    for (values, (fill, edge)) in layers {
        let upper: Vec<f64> = base.iter().zip(&values).map(|(b, v)| b + v).collect();
        out.push(Layer::Band { x: x.to_vec(), lower: base.clone(), upper: upper.clone(), fill, edge: Some(edge) });
        base = upper;
    }
    (out, base)
}

/// A fill and its edge colour.
pub(super) mod colour_pair {
    use plotters::style::RGBColor;

    /// `(fill, edge)`.
    pub type Pair = (RGBColor, RGBColor);

    /// A light fill of `c` with `c` as its edge.
    pub fn of(c: RGBColor) -> Pair {
        (super::colour::tint(c, 0.55), c)
    }
}

/// The status of column `i` of [`RunPoint::denied`], for labels.
pub(super) fn status_name(i: usize) -> String {
    match STATUSES[i] {
        0 => "other statuses".to_string(),
        s => s.to_string(),
    }
}

/// The timeline figure.
pub fn figure(ctx: &RunContext<'_>, series: &RunSeries) -> Figure {
    let s = series.coarse.coarsened(DRAW_POINTS);
    let x = xs(&s);
    let (from, to) = s.span();
    let (x_axis, x_desc) = time_axis(from, to, ctx.clock, 8.0);
    let denied_any: Vec<bool> = (0..4).map(|k| s.points.iter().any(|p| p.denied[k] > 0)).collect();

    let mut slices = Vec::new();
    let mut legend = Vec::new();
    if ctx.can_delay {
        let now = rates(&s, |p| (p.admitted - p.delayed) as f64);
        let late = rates(&s, |p| p.delayed as f64);
        slices.push((now, colour_pair::of(colour::ADMITTED)));
        slices.push((late, colour_pair::of(colour::DELAYED)));
        legend.push(Key::new("admitted at once", Mark::Fill(colour::tint(colour::ADMITTED, 0.55))));
        legend.push(Key::new("admitted after a server delay", Mark::Fill(colour::tint(colour::DELAYED, 0.55))));
    } else {
        slices.push((rates(&s, |p| p.admitted as f64), colour_pair::of(colour::ADMITTED)));
        legend.push(Key::new("admitted", Mark::Fill(colour::tint(colour::ADMITTED, 0.55))));
    }
    for k in (0..4).filter(|&k| denied_any[k]) {
        let c = colour::of_status(STATUSES[k]);
        slices.push((rates(&s, |p| p.denied[k] as f64), colour_pair::of(c)));
        legend.push(Key::new(format!("denied {}", status_name(k)), Mark::Fill(colour::tint(c, 0.55))));
    }
    let (mut layers, total) = stack(&x, slices);
    let requests = rates(&s, |p| p.requests as f64);
    let retries = rates(&s, |p| p.retries as f64);
    let polls = rates(&s, |p| p.polls as f64);
    let any_polls = s.points.iter().any(|p| p.polls > 0);
    let top = total
        .iter()
        .chain(&requests)
        .chain(&retries)
        .chain(if any_polls { &polls[..] } else { &[] })
        .copied()
        .fold(0.0, f64::max);
    let y = Axis::from_zero(top * 1.05, 6.0, "");

    // The busiest bucket of each point, when points sum several buckets.
    let mut notes = ctx.notes();
    notes.push(ctx.resolution(s.width(), s.factor));
    if s.factor > 1 {
        let bucket_s = s.bucket as f64 / 1e9;
        let peaks: Vec<f64> = twice(s.points.iter().map(|p| p.peak_attempts as f64 / bucket_s));
        let highest = peaks.iter().copied().fold(0.0, f64::max);
        let bucket = crate::report::human_duration(s.bucket);
        let label = if highest > y.hi {
            format!(
                "busiest {bucket} bucket of each point, clipped at the top (up to {}/s)",
                group(highest.round() as u64)
            )
        } else {
            format!("busiest {bucket} bucket of each point")
        };
        let envelope = Layer::Band {
            x: x.clone(),
            lower: total.clone(),
            upper: peaks.iter().zip(&total).map(|(p, t)| p.max(*t)).collect(),
            fill: colour::tint(colour::GREY, 0.75),
            edge: None,
        };
        layers.insert(0, envelope);
        legend.push(Key::new(label, Mark::Fill(colour::tint(colour::GREY, 0.75))));
    }
    let line = |points: &[f64], c, w| Layer::Line {
        points: x.iter().copied().zip(points.iter().copied()).collect(),
        colour: c,
        width: w,
        dashed: false,
    };
    layers.push(line(&requests, colour::REQUESTS, 2));
    legend.push(Key::new("new requests", Mark::Line(colour::REQUESTS, 2)));
    layers.push(line(&retries, colour::RETRIES, 2));
    legend.push(Key::new("retries", Mark::Line(colour::RETRIES, 2)));
    if any_polls {
        layers.push(line(&polls, colour::POLLS, 2));
        legend.push(Key::new("polls", Mark::Line(colour::POLLS, 2)));
    }

    // The share of attempts denied, per status.
    let mut lower = Vec::new();
    let mut highest_share: f64 = 0.0;
    for k in (0..4).filter(|&k| denied_any[k]) {
        // No share where nothing was sent: the line breaks there.
        let share: Vec<Option<(f64, f64)>> =
            twice(s.points.iter().map(|p| (p.attempts > 0).then(|| 100.0 * p.denied[k] as f64 / p.attempts as f64)))
                .into_iter()
                .zip(&x)
                .map(|(v, x)| v.map(|v| (*x, v)))
                .collect();
        highest_share = share.iter().flatten().map(|p| p.1).fold(highest_share, f64::max);
        lower.extend(broken_line(&share, colour::of_status(STATUSES[k]), 2));
    }
    let sm = ctx.summary;
    notes.push(format!(
        "{}{} requests, {} attempts, {:.1}% succeeded",
        if ctx.window.is_some() { "whole run: " } else { "" },
        group(sm.requests),
        group(sm.attempts),
        sm.success_ratio * 100.0
    ));
    // Waits belong on the main chart too: a paced client is never denied,
    // yet its requests may queue for minutes.
    if let (Some(p99), Some(max)) = (sm.time_to_success.p99_ns, sm.time_to_success.max_ns) {
        notes.push(format!("time to success p99 {}, max {}", human_duration(p99), human_duration(max)));
    }
    notes.push(format!("peak outstanding {}", group(sm.peak_outstanding)));
    // With several keys, which ones were denied most (polling against
    // webhooks, a noisy neighbour).
    if sm.top_denied_keys.len() > 1 {
        let keys: Vec<String> = sm
            .top_denied_keys
            .iter()
            .take(3)
            .map(|k| format!("{} {} of {} attempts", k.key, group(k.denied), group(k.attempts)))
            .collect();
        notes.push(format!("denied most: {}", keys.join("; ")));
    }
    let upper = |x_desc: String| Panel {
        title: String::new(),
        height: 380,
        x: x_axis.clone(),
        y: y.clone(),
        x_desc,
        y_desc: "attempts per second".to_string(),
        layers: layers.clone(),
    };
    let panels = if lower.is_empty() {
        notes.push("no attempt was denied".to_string());
        vec![upper(x_desc)]
    } else {
        vec![
            upper(String::new()),
            Panel {
                title: String::new(),
                height: 190,
                x: x_axis.clone(),
                y: Axis::percent_upto(highest_share * 1.1),
                x_desc,
                y_desc: "denied, % of attempts".to_string(),
                layers: lower,
            },
        ]
    };
    Figure { title: ctx.title("Attempts over time"), notes, legend, panels }
}
