//! Waiting: the queue a run builds and how long requests wait.
//!
//! Upper panel: requests outstanding (in service, waiting to retry,
//! polling, or queued by the client, e.g. behind a pacer) and in flight,
//! the most at any bucket end within each point. Lower panel: the time to
//! success of the requests that succeeded at each time, the mean and the
//! longest (arrival to the admitted attempt, backoff and waits for
//! `Retry-After` included). A run that looks healthy by its denials (a
//! paced client, no 429s) shows its cost here.

use plotters::style::RGBColor;

use super::axis::{duration_axis, time_axis, Axis};
use super::figure::{colour, Figure, Key, Layer, Mark, Panel};
use super::series::RunSeries;
use super::timeline::{twice, xs};
use super::{RunContext, DRAW_POINTS};
use crate::report::{group, human_duration};

const OUTSTANDING: RGBColor = RGBColor(148, 103, 189);

/// Lines through the defined points, broken where a point is undefined.
pub(super) fn broken_line(points: &[Option<(f64, f64)>], c: RGBColor, width: u32) -> Vec<Layer> {
    let mut out = Vec::new();
    let mut run: Vec<(f64, f64)> = Vec::new();
    for p in points.iter().chain(std::iter::once(&None)) {
        match p {
            Some(p) => run.push(*p),
            None if run.len() == 1 => {
                out.push(Layer::Points { points: std::mem::take(&mut run), colour: c, radius: width + 1 });
            }
            None if !run.is_empty() => {
                out.push(Layer::Line { points: std::mem::take(&mut run), colour: c, width, dashed: false });
            }
            None => {}
        }
    }
    out
}

/// The waiting figure.
pub fn figure(ctx: &RunContext<'_>, series: &RunSeries) -> Figure {
    let s = series.coarse.coarsened(DRAW_POINTS);
    let x = xs(&s);
    let (from, to) = s.span();
    let (x_axis, x_desc) = time_axis(from, to, ctx.clock, 8.0);
    let points = twice(s.points.iter());
    let outstanding: Vec<(f64, f64)> = points.iter().zip(&x).map(|(p, x)| (*x, p.outstanding_max as f64)).collect();
    let in_flight: Vec<(f64, f64)> = points.iter().zip(&x).map(|(p, x)| (*x, p.in_flight_max as f64)).collect();
    let top = outstanding.iter().chain(&in_flight).map(|p| p.1).fold(0.0, f64::max);
    let upper = vec![
        Layer::Line { points: outstanding, colour: OUTSTANDING, width: 2, dashed: false },
        Layer::Line { points: in_flight, colour: colour::REQUESTS, width: 2, dashed: false },
    ];
    let longest = s.points.iter().map(|p| p.tts_max_ns).max().unwrap_or(0);
    let (y2, unit) = duration_axis(longest as f64 * 1.05, 6.0);
    let in_unit = |ns: f64| ns / unit.ns as f64;
    let mean: Vec<Option<(f64, f64)>> = points
        .iter()
        .zip(&x)
        .map(|(p, x)| (p.successes > 0).then(|| (*x, in_unit(p.tts_sum_ns as f64 / p.successes as f64))))
        .collect();
    let max: Vec<Option<(f64, f64)>> =
        points.iter().zip(&x).map(|(p, x)| (p.successes > 0).then(|| (*x, in_unit(p.tts_max_ns as f64)))).collect();
    let mut lower = broken_line(&max, colour::tint(colour::RETRIES, 0.3), 1);
    lower.extend(broken_line(&mean, colour::RETRIES, 2));
    let sm = ctx.summary;
    let mut notes = ctx.notes();
    notes.push(ctx.resolution(s.width(), s.factor));
    notes.push(format!("peak outstanding {} requests", group(sm.peak_outstanding)));
    let lat = &sm.time_to_success;
    if let (Some(p50), Some(p99), Some(max)) = (lat.p50_ns, lat.p99_ns, lat.max_ns) {
        notes.push(format!(
            "time to success p50 {}, p99 {}, max {}",
            human_duration(p50),
            human_duration(p99),
            human_duration(max)
        ));
    } else {
        notes.push("no request succeeded".to_string());
    }
    Figure {
        title: ctx.title("Queues and waits"),
        notes,
        legend: vec![
            Key::new("outstanding (most at a bucket end)", Mark::Line(OUTSTANDING, 2)),
            Key::new("in flight (most at a bucket end)", Mark::Line(colour::REQUESTS, 2)),
            Key::new("mean time to success", Mark::Line(colour::RETRIES, 2)),
            Key::new("longest time to success", Mark::Line(colour::tint(colour::RETRIES, 0.3), 1)),
        ],
        panels: vec![
            Panel {
                title: String::new(),
                height: 290,
                x: x_axis.clone(),
                y: Axis::from_zero(top * 1.05, 5.0, ""),
                x_desc: String::new(),
                y_desc: "requests".to_string(),
                layers: upper,
            },
            Panel {
                title: String::new(),
                height: 290,
                x: x_axis,
                y: y2,
                x_desc,
                y_desc: format!("time to success ({})", unit.name),
                layers: lower,
            },
        ],
    }
}
