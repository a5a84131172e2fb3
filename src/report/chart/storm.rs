//! The retry-storm chart: first attempts, retries and polls per second
//! stacked, so that a storm (retries towering over the first attempts that
//! caused them) reads at a glance, with the admitted attempts as a line:
//! what got through, however much was sent.

use super::axis::{time_axis, Axis};
use super::figure::{colour, Figure, Key, Layer, Mark, Panel};
use super::series::RunSeries;
use super::timeline::{colour_pair, rates, stack, xs};
use super::{RunContext, DRAW_POINTS};
use crate::report::group;

/// The retry-storm figure.
pub fn figure(ctx: &RunContext<'_>, series: &RunSeries) -> Figure {
    let s = series.coarse.coarsened(DRAW_POINTS);
    let x = xs(&s);
    let (from, to) = s.span();
    let (x_axis, x_desc) = time_axis(from, to, ctx.clock, 8.0);
    let mut slices = vec![(rates(&s, |p| p.first_attempts() as f64), colour_pair::of(colour::REQUESTS))];
    let mut legend = vec![Key::new("first attempts", Mark::Fill(colour::tint(colour::REQUESTS, 0.55)))];
    slices.push((rates(&s, |p| p.retries as f64), colour_pair::of(colour::RETRIES)));
    legend.push(Key::new("retries", Mark::Fill(colour::tint(colour::RETRIES, 0.55))));
    if s.points.iter().any(|p| p.polls > 0) {
        slices.push((rates(&s, |p| p.polls as f64), colour_pair::of(colour::POLLS)));
        legend.push(Key::new("polls", Mark::Fill(colour::tint(colour::POLLS, 0.55))));
    }
    let (mut layers, total) = stack(&x, slices);
    let admitted = rates(&s, |p| p.admitted as f64);
    layers.push(Layer::Line {
        points: x.iter().copied().zip(admitted.iter().copied()).collect(),
        colour: colour::ADMITTED,
        width: 2,
        dashed: false,
    });
    legend.push(Key::new("admitted", Mark::Line(colour::ADMITTED, 2)));
    let top = total.iter().chain(&admitted).copied().fold(0.0, f64::max);
    let sm = ctx.summary;
    let mut notes = ctx.notes();
    notes.push(ctx.resolution(s.width(), s.factor));
    notes.push(format!(
        "{} retries for {} requests: {:.2}× retry amplification",
        group(sm.retries),
        group(sm.requests),
        sm.retry_amplification
    ));
    notes.push(format!(
        "busiest {} bucket: {} attempts",
        crate::report::human_duration(ctx.info.bucket_ns),
        group(sm.peak_bucket_attempts)
    ));
    Figure {
        title: ctx.title("Retry storm"),
        notes,
        legend,
        panels: vec![Panel {
            title: String::new(),
            height: 420,
            x: x_axis,
            y: Axis::from_zero(top * 1.05, 6.0, ""),
            x_desc,
            y_desc: "attempts per second".to_string(),
            layers,
        }],
    }
}

/// Retry storms side by side: one panel per run (a sweep's points, e.g.
/// one client each), first attempts and retries stacked, on one shared
/// scale, so the heights compare.
pub fn comparison(title: String, mut notes: Vec<String>, runs: &[(String, RunSeries)]) -> Figure {
    let prepared: Vec<(&String, super::series::Coarse<super::series::RunPoint>)> =
        runs.iter().map(|(label, s)| (label, s.coarse.coarsened(DRAW_POINTS))).collect();
    let (from, to) = prepared
        .iter()
        .map(|(_, s)| s.span())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (c, d)| (a.min(c), b.max(d)));
    let (x_axis, x_desc) = time_axis(from, to, super::Clock::Offset, 8.0);
    let mut top: f64 = 0.0;
    let mut panels = Vec::new();
    for (label, s) in &prepared {
        let x = xs(s);
        let mut slices = vec![(rates(s, |p| p.first_attempts() as f64), colour_pair::of(colour::REQUESTS))];
        slices.push((rates(s, |p| p.retries as f64), colour_pair::of(colour::RETRIES)));
        if s.points.iter().any(|p| p.polls > 0) {
            slices.push((rates(s, |p| p.polls as f64), colour_pair::of(colour::POLLS)));
        }
        let (mut layers, total) = stack(&x, slices);
        let admitted = rates(s, |p| p.admitted as f64);
        layers.push(Layer::Line {
            points: x.iter().copied().zip(admitted.iter().copied()).collect(),
            colour: colour::ADMITTED,
            width: 2,
            dashed: false,
        });
        top = total.iter().chain(&admitted).copied().fold(top, f64::max);
        let attempts: u64 = s.points.iter().map(|p| p.attempts).sum();
        let requests: u64 = s.points.iter().map(|p| p.requests).sum();
        let retries: u64 = s.points.iter().map(|p| p.retries).sum();
        let peak = s.points.iter().map(|p| p.peak_attempts).max().unwrap_or(0);
        panels.push(Panel {
            title: format!(
                "{label}: {} retries, {:.2}× amplification, busiest bucket {} attempts",
                group(retries),
                crate::metrics::ratio(attempts - s.points.iter().map(|p| p.polls).sum::<u64>(), requests),
                group(peak)
            ),
            height: 210,
            x: x_axis.clone(),
            y: Axis::from_zero(1.0, 4.0, ""),
            x_desc: String::new(),
            y_desc: "attempts / s".to_string(),
            layers,
        });
    }
    let y = Axis::from_zero(top * 1.05, 4.0, "");
    for p in &mut panels {
        p.y = y.clone();
    }
    if let Some(last) = panels.last_mut() {
        last.x_desc = x_desc;
        last.height += 24;
    }
    if let Some((_, s)) = prepared.first() {
        notes.push(format!("points of {}", crate::report::human_duration(s.width())));
    }
    Figure {
        title,
        notes,
        legend: vec![
            Key::new("first attempts", Mark::Fill(colour::tint(colour::REQUESTS, 0.55))),
            Key::new("retries", Mark::Fill(colour::tint(colour::RETRIES, 0.55))),
            Key::new("admitted", Mark::Line(colour::ADMITTED, 2)),
        ],
        panels,
    }
}
