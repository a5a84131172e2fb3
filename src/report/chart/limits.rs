//! Denials by limit: which limit binds when. Denials per second stacked by
//! the limit that denied them (the binding limit of each denial), each
//! labelled with its status.

use super::axis::{time_axis, Axis};
use super::figure::{colour, Figure, Key, Mark, Panel};
use super::series::RunSeries;
use super::timeline::{rates, stack, xs};
use super::{RunContext, DRAW_POINTS};
use crate::report::group;

/// The denials-by-limit figure.
pub fn figure(ctx: &RunContext<'_>, series: &RunSeries) -> Figure {
    let s = series.coarse.coarsened(DRAW_POINTS);
    let x = xs(&s);
    let (from, to) = s.span();
    let (x_axis, x_desc) = time_axis(from, to, ctx.clock, 8.0);
    let mut slices = Vec::new();
    let mut legend = Vec::new();
    let mut quiet = Vec::new();
    for (i, (id, status)) in ctx.limits.iter().enumerate() {
        let total: u64 = s.points.iter().map(|p| p.denied_by_limit.get(i).copied().unwrap_or(0)).sum();
        if total == 0 {
            quiet.push(id.clone());
            continue;
        }
        let c = colour::SERIES[i % colour::SERIES.len()];
        slices.push((rates(&s, |p| p.denied_by_limit.get(i).copied().unwrap_or(0) as f64), (colour::tint(c, 0.35), c)));
        legend.push(Key::new(format!("{id} ({status}): {}", group(total)), Mark::Fill(colour::tint(c, 0.35))));
    }
    let (layers, total) = stack(&x, slices);
    let top = total.iter().copied().fold(0.0, f64::max);
    let mut notes = ctx.notes();
    notes.push(ctx.resolution(s.width(), s.factor));
    if legend.is_empty() {
        notes.push("no limit denied anything in the window".to_string());
    } else if !quiet.is_empty() {
        notes.push(format!("no denials from {}", quiet.join(", ")));
    }
    Figure {
        title: ctx.title("Denials by limit"),
        notes,
        legend,
        panels: vec![Panel {
            title: String::new(),
            height: 400,
            x: x_axis,
            y: Axis::from_zero(top * 1.05, 6.0, ""),
            x_desc,
            y_desc: "denials per second".to_string(),
            layers,
        }],
    }
}
