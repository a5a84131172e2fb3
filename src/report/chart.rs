//! Charts of a run: attempts, admissions, denials and retries over time, and
//! the 429 rate, as PNG (with the bundled DejaVu Sans font, so text renders
//! the same on every machine) or SVG.
//!
//! The series is collected while the simulation runs by [`ChartSeries`], a
//! [`BucketSink`] that keeps at most [`MAX_POINTS`] points by merging
//! neighbouring buckets, so memory stays bounded however long the run.
//! Rendering is deterministic: the same run gives the same bytes.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::metrics::{Bucket, BucketSink};
use crate::time::{Nanos, SECOND};

/// Most points a series keeps while collecting.
pub const MAX_POINTS: usize = 2048;
/// Most points a chart draws (more is noise at 1400 pixels).
const DRAW_POINTS: usize = 300;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The bundled font is valid; a failure here is a build defect.
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            panic!("the bundled DejaVu Sans font does not parse: the build is broken");
        }
    });
}

/// One chart point: the sums of several consecutive buckets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Point {
    requests: u64,
    attempts: u64,
    retries: u64,
    admitted: u64,
    denied: u64,
    denied_429: u64,
    /// Attempts in the busiest single bucket of the point.
    peak_attempts: u64,
}

/// Collects the time series for a chart, downsampling as it grows.
#[derive(Clone, Debug)]
pub struct ChartSeries {
    bucket: Nanos,
    /// Buckets per point (a power of two).
    factor: u64,
    points: Vec<Point>,
    seen: u64,
}

impl ChartSeries {
    /// A series of buckets `bucket` nanoseconds wide.
    pub fn new(bucket: Nanos) -> ChartSeries {
        ChartSeries { bucket, factor: 1, points: Vec::new(), seen: 0 }
    }

    fn width(&self) -> Nanos {
        self.bucket * self.factor
    }
}

impl BucketSink for ChartSeries {
    fn bucket(&mut self, b: &Bucket) -> std::io::Result<()> {
        let slot = (self.seen / self.factor) as usize;
        self.seen += 1;
        if slot >= self.points.len() {
            if self.points.len() == MAX_POINTS {
                // Halve the resolution: merge neighbours.
                let merged = self.coarsened(MAX_POINTS / 2);
                self.points = merged.points;
                self.factor = merged.factor;
                return self.bucket_again(b);
            }
            self.points.push(Point::default());
        }
        let p = self.points.last_mut().expect("pushed");
        p.requests += b.requests;
        p.attempts += b.attempts;
        p.retries += b.retries;
        p.admitted += b.admitted;
        p.denied += b.denied_429 + b.denied_402 + b.denied_503 + b.denied_other;
        p.denied_429 += b.denied_429;
        p.peak_attempts = p.peak_attempts.max(b.attempts);
        Ok(())
    }

    /// A quiet stretch adds nothing to any point: only the position moves
    /// on (empty points are appended, and merged as the series grows), in
    /// steps of whole points rather than of buckets.
    fn idle(&mut self, _: &Bucket, count: u64, _: Nanos) -> std::io::Result<()> {
        let mut left = count;
        while left > 0 {
            let slot = (self.seen / self.factor) as usize;
            if slot >= self.points.len() {
                if self.points.len() == MAX_POINTS {
                    let merged = self.coarsened(MAX_POINTS / 2);
                    self.points = merged.points;
                    self.factor = merged.factor;
                    continue;
                }
                self.points.push(Point::default());
            }
            let take = (self.factor - self.seen % self.factor).min(left);
            self.seen += take;
            left -= take;
        }
        Ok(())
    }
}

impl ChartSeries {
    /// Re-adds a bucket after a merge changed the slot arithmetic.
    fn bucket_again(&mut self, b: &Bucket) -> std::io::Result<()> {
        self.seen -= 1;
        self.bucket(b)
    }
}

/// Sends each bucket to two sinks.
pub struct Tee<'a>(pub &'a mut dyn BucketSink, pub &'a mut dyn BucketSink);

impl BucketSink for Tee<'_> {
    fn bucket(&mut self, b: &Bucket) -> std::io::Result<()> {
        self.0.bucket(b)?;
        self.1.bucket(b)
    }

    fn idle(&mut self, first: &Bucket, count: u64, width: Nanos) -> std::io::Result<()> {
        self.0.idle(first, count, width)?;
        self.1.idle(first, count, width)
    }
}

/// Texts of a chart.
#[derive(Clone, Debug)]
pub struct ChartLabels {
    /// Title line, e.g. `RunInfra · pro · client openai-python`.
    pub title: String,
    /// Second line, e.g. the trace.
    pub subtitle: String,
}

/// The x-axis unit for a run of `span` nanoseconds.
fn time_unit(span: Nanos) -> (f64, &'static str) {
    if span > 3 * 3600 * SECOND {
        (3600.0 * 1e9, "h")
    } else if span > 3 * 60 * SECOND {
        (60.0 * 1e9, "min")
    } else {
        (1e9, "s")
    }
}

impl ChartSeries {
    /// The series merged down to at most `max` points.
    fn coarsened(&self, max: usize) -> ChartSeries {
        let mut s = self.clone();
        while s.points.len() > max {
            s.points = s
                .points
                .chunks(2)
                .map(|c| {
                    c.iter().fold(Point::default(), |a, p| Point {
                        requests: a.requests + p.requests,
                        attempts: a.attempts + p.attempts,
                        retries: a.retries + p.retries,
                        admitted: a.admitted + p.admitted,
                        denied: a.denied + p.denied,
                        denied_429: a.denied_429 + p.denied_429,
                        peak_attempts: a.peak_attempts.max(p.peak_attempts),
                    })
                })
                .collect();
            s.factor *= 2;
        }
        s
    }
}

type Panel<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// A tick value as written on an axis: whole numbers plainly, others with
/// up to two decimals (`0.5`, `1.25`), never rounded to a neighbour's label.
fn tick_label(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// One panel: axes from 0 to `x_max` and `y_max`, described, with a light grid.
fn panel<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    x_max: f64,
    y_max: f64,
    x_desc: &str,
    y_desc: &str,
) -> Result<Panel<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .margin_left(20)
        .margin_right(30)
        .margin_top(10)
        .margin_bottom(10)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    Ok(chart)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    series: &ChartSeries,
    labels: &ChartLabels,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("cannot draw the chart: {e}");
    let series = &series.coarsened(DRAW_POINTS);
    root.fill(&WHITE).map_err(err)?;
    let width_ns = series.width();
    let per_second = SECOND as f64 / width_ns as f64;
    let span = width_ns * series.points.len().max(1) as u64;
    let (unit, unit_name) = time_unit(span);
    let x_of = |i: usize| (i as f64 * width_ns as f64) / unit;
    let x_max = x_of(series.points.len().max(1));

    let (head, body) = root.split_vertically(70);
    head.draw(&Text::new(labels.title.clone(), (24, 12), ("sans-serif", 26).into_font().color(&BLACK))).map_err(err)?;
    let subtitle = format!("{} · each point averages {}", labels.subtitle, crate::report::human_duration(width_ns));
    head.draw(&Text::new(subtitle, (24, 44), ("sans-serif", 16).into_font().color(&RGBColor(90, 90, 90))))
        .map_err(err)?;
    let (top, bottom) = body.split_vertically((body.dim_in_pixel().1 as f64 * 0.66) as u32);

    // The last point may cover fewer buckets than the others (the run ended).
    let n = series.points.len();
    let last_buckets = series.seen - (n.max(1) as u64 - 1) * series.factor;
    let scale =
        |i: usize| if i + 1 == n { per_second * series.factor as f64 / last_buckets.max(1) as f64 } else { per_second };
    let rate = |f: fn(&Point) -> u64| -> Vec<(f64, f64)> {
        series.points.iter().enumerate().map(|(i, p)| (x_of(i), f(p) as f64 * scale(i))).collect()
    };
    let attempts = rate(|p| p.attempts);
    let admitted = rate(|p| p.admitted);
    let requests = rate(|p| p.requests);
    let retries = rate(|p| p.retries);
    // When a point averages several buckets, the busiest bucket in it shows
    // what the average hides: synchronized retry waves.
    let bucket_rate = SECOND as f64 / series.bucket as f64;
    let peaks: Vec<(f64, f64)> = if series.factor > 1 {
        series.points.iter().enumerate().map(|(i, p)| (x_of(i), p.peak_attempts as f64 * bucket_rate)).collect()
    } else {
        Vec::new()
    };
    // Headroom above the data for the legend box in the upper right.
    let y_max = attempts.iter().chain(&requests).chain(&peaks).map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.3;

    let x_desc = format!("time since trace start ({unit_name})");
    let red = RGBColor(214, 39, 40);
    let green = RGBColor(44, 160, 44);
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    // Opaque fills, so the legend swatches are exactly the colours drawn.
    let denied_fill = RGBColor(246, 190, 190);
    let admitted_fill = RGBColor(178, 222, 178);
    let mut chart = panel(&top, x_max, y_max, &x_desc, "attempts per second").map_err(err)?;
    chart
        .draw_series(AreaSeries::new(attempts.iter().copied(), 0.0, denied_fill).border_style(red.mix(0.6)))
        .map_err(err)?
        .label("denied attempts")
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], denied_fill.filled()));
    chart
        .draw_series(AreaSeries::new(admitted.iter().copied(), 0.0, admitted_fill).border_style(green))
        .map_err(err)?
        .label("admitted attempts")
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], admitted_fill.filled()));
    chart
        .draw_series(LineSeries::new(requests.iter().copied(), blue.stroke_width(2)))
        .map_err(err)?
        .label("new requests")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], blue.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(retries.iter().copied(), orange.stroke_width(2)))
        .map_err(err)?
        .label("retries")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], orange.stroke_width(2)));
    if !peaks.is_empty() {
        let grey = RGBColor(110, 110, 110);
        let label = format!("attempts in the busiest {} bucket", crate::report::human_duration(series.bucket));
        chart
            .draw_series(LineSeries::new(peaks.iter().copied(), grey.stroke_width(1)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], grey.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(err)?;

    let share: Vec<(f64, f64)> = series
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| (x_of(i), if p.attempts == 0 { 0.0 } else { 100.0 * p.denied_429 as f64 / p.attempts as f64 }))
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    let mut lower = panel(&bottom, x_max, 100.0, &x_desc, "429s, % of attempts").map_err(err)?;
    lower.draw_series(LineSeries::new(share, red.stroke_width(2))).map_err(err)?;
    root.present().map_err(err)
}

/// Writes the chart of `series` to `path`: PNG if it ends in `.png`, SVG if
/// in `.svg`.
pub fn write_chart(path: &Path, series: &ChartSeries, labels: &ChartLabels) -> Result<(), String> {
    check_chart_path(path)?;
    register_font();
    let size = (1400, 900);
    match path.extension().and_then(|e| e.to_str()) {
        Some("png") => draw(BitMapBackend::new(path, size).into_drawing_area(), series, labels),
        _ => draw(SVGBackend::new(path, size).into_drawing_area(), series, labels),
    }
}

/// Whether [`write_chart`] can draw to `path`: its name ends in `.png` or
/// `.svg`. For callers that check their arguments before a long run.
pub fn check_chart_path(path: &Path) -> Result<(), String> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("png" | "svg") => Ok(()),
        _ => Err(format!("{}: a chart file must end in .png or .svg", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_keep_their_fractions() {
        assert_eq!(super::tick_label(0.0), "0");
        assert_eq!(super::tick_label(2.0), "2");
        assert_eq!(super::tick_label(0.5), "0.5");
        assert_eq!(super::tick_label(1.25), "1.25");
        assert_eq!(super::tick_label(0.30000000000000004), "0.3");
        assert_eq!(super::tick_label(100.0), "100");
    }

    #[test]
    fn downsampling_keeps_totals_and_bounds_points() {
        let mut s = ChartSeries::new(SECOND);
        let n = 10_000u64;
        for i in 0..n {
            s.bucket(&Bucket { attempts: i % 7, requests: 1, ..Bucket::default() }).unwrap();
        }
        assert!(s.points.len() <= MAX_POINTS);
        assert_eq!(s.points.iter().map(|p| p.requests).sum::<u64>(), n);
        assert_eq!(s.points.iter().map(|p| p.attempts).sum::<u64>(), (0..n).map(|i| i % 7).sum::<u64>());
        assert_eq!(s.factor, 8);
    }

    /// A quiet stretch handed over at once leaves the series exactly as
    /// bucket-by-bucket calls do, however it falls across points and merges.
    #[test]
    fn a_quiet_stretch_at_once_equals_its_buckets_one_by_one() {
        let busy = |i: u64| Bucket { attempts: i % 5 + 1, requests: 1, ..Bucket::default() };
        for (before, gap, after) in [(3, 1, 3), (5, 4_000, 2), (2_040, 9, 100), (1, 70_000, 5_000), (700, 0, 1)] {
            let mut one_by_one = ChartSeries::new(SECOND);
            let mut at_once = ChartSeries::new(SECOND);
            for i in 0..before {
                one_by_one.bucket(&busy(i)).unwrap();
                at_once.bucket(&busy(i)).unwrap();
            }
            for _ in 0..gap {
                one_by_one.bucket(&Bucket::default()).unwrap();
            }
            at_once.idle(&Bucket::default(), gap, SECOND).unwrap();
            for i in 0..after {
                one_by_one.bucket(&busy(i)).unwrap();
                at_once.bucket(&busy(i)).unwrap();
            }
            assert_eq!(format!("{one_by_one:?}"), format!("{at_once:?}"), "{before} + {gap} quiet + {after}");
        }
        // A stretch of 2^40 buckets costs a few thousand steps, not 2^40.
        let mut s = ChartSeries::new(SECOND);
        s.bucket(&busy(0)).unwrap();
        s.idle(&Bucket::default(), 1 << 40, SECOND).unwrap();
        s.bucket(&busy(1)).unwrap();
        assert_eq!((s.seen, s.points.iter().map(|p| p.requests).sum::<u64>()), ((1 << 40) + 2, 2));
        assert!(s.points.len() <= MAX_POINTS);
    }
}
