//! Draws a [`Figure`] with plotters on any backend (the SVG and PNG
//! canvases of this module).
//!
//! Layout, top to bottom: an opaque white background (so a chart reads the
//! same in dark and light viewers), the title, the notes wrapped to the
//! width, the legend in rows (never over data), then the panels. Values
//! outside a panel's axes are clamped to its edge (charts that let a series
//! run off the scale say so in their legend).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::{colour, Figure, Key, Layer, Mark, Panel, WIDTH};
use super::text::text_width;

/// Space around the chart, px.
const PAD: i32 = 20;
/// Font sizes (plotters units; an em is 0.86 × size).
const TITLE: f64 = 25.0;
const NOTE: f64 = 17.0;
const LEGEND: f64 = 17.0;
const TICK: f64 = 16.0;
const AXIS: f64 = 17.0;
const CELL: f64 = 15.0;
const NOTE_LINE: i32 = 23;
const TITLE_LINE: i32 = 30;
const LEGEND_ROW: i32 = 26;

fn err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    format!("cannot draw the chart: {e}")
}

/// Splits `notes` into lines no wider than `width` px at font `size`,
/// joining short notes with ` · `; a note wider than a line is broken at
/// spaces onto lines of its own.
fn wrap(notes: &[String], width: f64, size: f64) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for n in notes {
        let candidate = if line.is_empty() { n.clone() } else { format!("{line} · {n}") };
        if text_width(&candidate, size) <= width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for word in n.split(' ') {
            let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
            if !line.is_empty() && text_width(&candidate, size) > width {
                lines.push(std::mem::replace(&mut line, word.to_string()));
            } else {
                line = candidate;
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Width of a legend entry, px.
fn key_width(k: &Key) -> i32 {
    30 + text_width(&k.label, LEGEND).ceil() as i32 + 24
}

/// The legend's rows: indices of the entries on each.
fn legend_rows(keys: &[Key], width: i32) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut used = 0;
    for (i, k) in keys.iter().enumerate() {
        let w = key_width(k);
        match rows.last_mut() {
            Some(row) if used + w <= width => {
                row.push(i);
                used += w;
            }
            _ => {
                rows.push(vec![i]);
                used = w;
            }
        }
    }
    rows
}

/// Height of the frame above the panels, px.
fn header_height(f: &Figure) -> i32 {
    let inner = WIDTH as i32 - 2 * PAD;
    let title = title_lines(&f.title).len() as i32;
    let notes = wrap(&f.notes, inner as f64, NOTE).len() as i32;
    let legend = legend_rows(&f.legend, inner).len() as i32;
    PAD + title * TITLE_LINE + 2 + notes * NOTE_LINE + if legend > 0 { 8 + legend * LEGEND_ROW } else { 0 }
}

/// The title in lines that fit the width, broken after `:` or at ` · `.
fn title_lines(title: &str) -> Vec<String> {
    let inner = (WIDTH as i32 - 2 * PAD) as f64;
    if text_width(title, TITLE) <= inner {
        return vec![title.to_string()];
    }
    let mut pieces: Vec<String> = Vec::new();
    for part in title.split(" · ") {
        match part.split_once(": ") {
            Some((a, b)) if pieces.is_empty() => {
                pieces.push(format!("{a}:"));
                pieces.push(b.to_string());
            }
            _ => pieces.push(part.to_string()),
        }
    }
    // Re-join greedily; a colon piece joins with a space, others with ` · `.
    let mut lines: Vec<String> = Vec::new();
    for p in pieces {
        match lines.last_mut() {
            Some(l) => {
                let sep = if l.ends_with(':') { " " } else { " · " };
                let candidate = format!("{l}{sep}{p}");
                if text_width(&candidate, TITLE) <= inner {
                    *l = candidate;
                } else {
                    lines.push(p);
                }
            }
            None => lines.push(p),
        }
    }
    lines
}

/// The canvas size of a figure.
pub fn size(f: &Figure) -> (u32, u32) {
    let panels: u32 = f.panels.iter().map(|p| p.height).sum();
    (WIDTH, header_height(f) as u32 + panels + PAD as u32 / 2)
}

fn font(size: f64, c: RGBColor) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&c)
}

/// Draws `f` on `root`, which must be [`size`] big.
pub fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, f: &Figure) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let inner = WIDTH as i32 - 2 * PAD;
    let mut y = PAD;
    for line in title_lines(&f.title) {
        root.draw(&Text::new(line, (PAD, y), font(TITLE, colour::INK))).map_err(err)?;
        y += TITLE_LINE;
    }
    y += 2;
    for line in wrap(&f.notes, inner as f64, NOTE) {
        root.draw(&Text::new(line, (PAD, y), font(NOTE, colour::MUTED))).map_err(err)?;
        y += NOTE_LINE;
    }
    let rows = legend_rows(&f.legend, inner);
    if !rows.is_empty() {
        y += 8;
    }
    for row in rows {
        let mut x = PAD;
        for &i in &row {
            let k = &f.legend[i];
            draw_mark(root, k.mark, x, y + 9).map_err(err)?;
            root.draw(&Text::new(k.label.clone(), (x + 30, y), font(LEGEND, colour::INK))).map_err(err)?;
            x += key_width(k);
        }
        y += LEGEND_ROW;
    }
    let header = header_height(f);
    let mut top = header;
    // One y label width and right margin for all panels, so their plot
    // areas line up; the margin leaves room for the last x tick label.
    let y_labels = f.panels.iter().map(y_label_width).max().unwrap_or(56);
    let right = f
        .panels
        .iter()
        .filter_map(|p| p.x.ticks.last())
        .map(|t| (text_width(&t.1, TICK) / 2.0).ceil() as i32 + 6)
        .fold(PAD + 8, i32::max);
    for p in &f.panels {
        let area = root.clone().shrink((0, top), (WIDTH, p.height));
        draw_panel(root, &area, p, y_labels, right)?;
        top += p.height as i32;
    }
    root.present().map_err(err)
}

fn draw_mark<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    mark: Mark,
    x: i32,
    y: i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    match mark {
        Mark::Fill(c) => root.draw(&Rectangle::new([(x, y - 7), (x + 22, y + 7)], c.filled())),
        Mark::Line(c, w) => root.draw(&PathElement::new([(x, y), (x + 22, y)], c.stroke_width(w.max(2)))),
        Mark::Dashed(c) => {
            root.draw(&PathElement::new([(x, y), (x + 8, y)], c.stroke_width(2)))?;
            root.draw(&PathElement::new([(x + 14, y), (x + 22, y)], c.stroke_width(2)))
        }
        Mark::Dot(c) => root.draw(&Circle::new((x + 11, y), 5, c.filled())),
    }
}

/// Width of the y label area: the widest tick label, the rotated
/// description, and room between.
fn y_label_width(p: &Panel) -> i32 {
    let widest = p.y.ticks.iter().map(|t| text_width(&t.1, TICK)).fold(0.0, f64::max);
    (widest.ceil() as i32 + 14 + 30).max(56)
}

fn clamp(v: f64, lo: f64, hi: f64) -> f64 {
    if v.is_nan() {
        lo
    } else {
        v.clamp(lo.min(hi), hi.max(lo))
    }
}

/// Draws panel `p` in `area`: `y_labels` px for the y tick labels and
/// description, `right` px of margin. A panel without an x description
/// (one above another sharing its time axis) keeps only its tick labels.
fn draw_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
    y_labels: i32,
    right: i32,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let rule_labels = p.layers.iter().any(|l| matches!(l, Layer::VRule { label, .. } if !label.is_empty()));
    let titled = !p.title.is_empty();
    if titled {
        let (x0, y0) = area.get_base_pixel();
        root.draw(&Text::new(p.title.clone(), (x0 + PAD, y0 + 6), font(LEGEND, colour::INK))).map_err(err)?;
    }
    let mut chart = ChartBuilder::on(area)
        .margin_left(PAD as u32 - 8)
        .margin_right(right as u32)
        .margin_top(if rule_labels || titled { 30 } else { 8 })
        .margin_bottom(4)
        .x_label_area_size(if p.x_desc.is_empty() { 28 } else { 52 })
        .y_label_area_size(y_labels as u32)
        .build_cartesian_2d(p.x.clone(), p.y.clone())
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    if !p.x_desc.is_empty() {
        mesh.x_desc(p.x_desc.clone());
    }
    mesh.y_desc(p.y_desc.clone())
        .x_labels(64)
        .y_labels(64)
        .label_style(font(TICK, colour::INK))
        .axis_desc_style(font(AXIS, colour::INK))
        .bold_line_style(RGBColor(226, 226, 226))
        .axis_style(RGBColor(150, 150, 150))
        .draw()
        .map_err(err)?;
    let (xl, xh, yl, yh) = (p.x.lo, p.x.hi, p.y.lo, p.y.hi);
    let pt = |x: f64, y: f64| (clamp(x, xl, xh), clamp(y, yl, yh));
    for layer in &p.layers {
        match layer {
            Layer::Band { x, lower, upper, fill, edge } => {
                let mut poly: Vec<(f64, f64)> = x.iter().zip(upper).map(|(&a, &b)| pt(a, b)).collect();
                poly.extend(x.iter().zip(lower).rev().map(|(&a, &b)| pt(a, b)));
                if poly.len() >= 3 {
                    chart.draw_series(std::iter::once(Polygon::new(poly, fill.filled()))).map_err(err)?;
                }
                if let Some(e) = edge {
                    let line: Vec<(f64, f64)> = x.iter().zip(upper).map(|(&a, &b)| pt(a, b)).collect();
                    chart.draw_series(LineSeries::new(line, e.stroke_width(1))).map_err(err)?;
                }
            }
            Layer::Line { points, colour: c, width, dashed } => {
                let pts: Vec<(f64, f64)> = points.iter().map(|&(a, b)| pt(a, b)).collect();
                if *dashed {
                    chart.draw_series(DashedLineSeries::new(pts, 8, 6, c.stroke_width(*width))).map_err(err)?;
                } else {
                    chart.draw_series(LineSeries::new(pts, c.stroke_width(*width))).map_err(err)?;
                }
            }
            Layer::Points { points, colour: c, radius } => {
                chart
                    .draw_series(points.iter().map(|&(a, b)| Circle::new(pt(a, b), *radius, c.filled())))
                    .map_err(err)?;
            }
            Layer::Rects { rects } => {
                chart
                    .draw_series(
                        rects.iter().map(|&(x0, y0, x1, y1, c)| Rectangle::new([pt(x0, y0), pt(x1, y1)], c.filled())),
                    )
                    .map_err(err)?;
            }
            Layer::Labels { items } => {
                let style = font(CELL, colour::INK).pos(Pos::new(HPos::Center, VPos::Center));
                chart
                    .draw_series(
                        items.iter().map(|(x, y, t, c)| Text::new(t.clone(), pt(*x, *y), style.clone().color(c))),
                    )
                    .map_err(err)?;
            }
            Layer::VRule { x, colour: c, label } => {
                let x = clamp(*x, xl, xh);
                chart.draw_series(LineSeries::new([(x, yl), (x, yh)], c.stroke_width(1))).map_err(err)?;
                if !label.is_empty() {
                    let (px, py) = chart.backend_coord(&(x, yh));
                    let style = font(TICK, *c).pos(Pos::new(HPos::Center, VPos::Bottom));
                    root.draw(&Text::new(label.clone(), (px, py - 4), style)).map_err(err)?;
                }
            }
            Layer::HRule { y, colour: c, label } => {
                let y = clamp(*y, yl, yh);
                chart.draw_series(DashedLineSeries::new([(xl, y), (xh, y)], 8, 6, c.stroke_width(1))).map_err(err)?;
                if !label.is_empty() {
                    let (px, py) = chart.backend_coord(&(xh, y));
                    let style = font(TICK, *c).pos(Pos::new(HPos::Right, VPos::Bottom));
                    root.draw(&Text::new(label.clone(), (px - 4, py - 3), style)).map_err(err)?;
                }
            }
        }
    }
    Ok(())
}
