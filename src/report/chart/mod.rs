//! Charts: SVG by default, PNG on request, byte-deterministic.
//!
//! Each chart is built as plain data, a [`Figure`] (title, notes, legend,
//! panels of layers), by a function of the results, and drawn with plotters
//! by [`render`]: to SVG by this module's own backend (`svg`: text as
//! outlines of the bundled DejaVu Sans, so every viewer shows the same
//! picture), or to PNG (`png`: plotters' bitmap backend, with the same
//! text). Every chart has an opaque white background, a title saying what
//! was simulated, axes with units and a legend above the panels, where it
//! covers no data.
//!
//! Charts of one run (`ratesim run --charts DIR`, [`run_figures`]):
//!
//! | file | module | what it shows |
//! |---|---|---|
//! | `timeline` | [`timeline`] | attempts per second, admitted and denied by status (429, 402, 503) stacked; new requests, retries and polls as lines; the busiest single bucket of each point as a band clipped to the scale; below, the share of attempts denied, per status |
//! | `retries` | [`storm`] | first attempts, retries and polls per second stacked (a retry storm reads as orange over blue), admitted attempts as a line |
//! | `denials-by-limit` | [`limits`] | denials per second stacked by the limit that denied them (which limit binds when) |
//! | `waiting` | [`waiting`] | requests outstanding and in flight over time; the mean and longest time to success of the requests that succeeded at each time |
//! | `time-to-success` | [`cdf`] | the share of requests that succeeded within each wait (a CDF, ending at the success ratio), p50, p90 and p99 marked |
//! | `headroom` | [`headroom`] | with `--key K`: what the remaining header (`X-RateLimit-Remaining`) showed that key over time, the limit header, and its denials |
//!
//! Charts of a sweep ([`sweep::SweepCharts`]): `load` (success, each
//! denial status and retry amplification against offered load or another
//! numeric axis, one line per plan or client, 95% bands with
//! replications), `heatmap` (a metric over two swept axes, cells
//! annotated), `time-to-success` (a CDF per scenario, [`cdf`]). Of a solve
//! ([`solve`]): each target metric against the varied parameter, the
//! values evaluated, the target and the answer.

pub mod axis;
pub mod cdf;
pub mod figure;
pub mod headroom;
pub mod limits;
mod png;
pub mod render;
pub mod series;
pub mod solve;
pub mod storm;
mod svg;
pub mod sweep;
pub mod text;
pub mod timeline;
pub mod waiting;

use std::path::Path;

use plotters::backend::BitMapBackend;
use plotters::prelude::IntoDrawingArea;

pub use axis::Clock;
pub use figure::Figure;
pub use series::{RunSeries, Tee};

use crate::metrics::Summary;
use crate::report::{human_duration, RunInfo};
use crate::time::Nanos;

/// A chart file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// SVG (the default).
    Svg,
    /// PNG.
    Png,
}

impl Format {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Png => "png",
        }
    }

    /// The format a path's extension names.
    pub fn of(path: &Path) -> Result<Format, String> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(format!("{}: a chart file must end in .png or .svg", path.display())),
        }
    }

    /// Parses `svg` or `png`.
    pub fn parse(text: &str) -> Result<Format, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "svg" => Ok(Format::Svg),
            "png" => Ok(Format::Png),
            other => Err(format!("expected svg or png, found {other:?}")),
        }
    }
}

/// The figure as an SVG document; `id_prefix` starts every id in it (use
/// distinct prefixes for charts sharing an HTML page).
pub fn to_svg(f: &Figure, id_prefix: &str) -> Result<String, String> {
    text::register_with_plotters();
    let size = render::size(f);
    let mut out = String::new();
    let canvas = svg::SvgCanvas::new(&mut out, size, id_prefix, &f.title, &f.notes.join(" · "));
    render::draw(&canvas.into_drawing_area(), f)?;
    Ok(out)
}

/// Writes the figure to `path` in `format`.
pub fn write(f: &Figure, path: &Path, format: Format) -> Result<(), String> {
    match format {
        Format::Svg => {
            let svg = to_svg(f, "")?;
            std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        Format::Png => {
            text::register_with_plotters();
            let size = render::size(f);
            let root = png::PngCanvas(BitMapBackend::new(path, size)).into_drawing_area();
            render::draw(&root, f).map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}

/// What a run's charts say about it: names, the window drawn, the clock.
#[derive(Clone, Debug)]
pub struct RunContext<'a> {
    /// The run.
    pub info: &'a RunInfo,
    /// Its summary.
    pub summary: &'a Summary,
    /// The plan's limits: id and denial status, in plan order.
    pub limits: Vec<(String, u16)>,
    /// Whether the plan can delay admissions (nginx `limit_req`).
    pub can_delay: bool,
    /// How the time axis is labelled.
    pub clock: Clock,
    /// The window drawn (`--from`/`--to`), if any, ns since the trace start.
    pub window: Option<(Nanos, Option<Nanos>)>,
}

impl RunContext<'_> {
    /// A chart title: `what` for this run.
    pub fn title(&self, what: &str) -> String {
        format!("{what}: {} {} · client {}", self.info.provider, self.info.plan, self.info.client)
    }

    /// The notes every run chart carries: trace, seed, start, window.
    pub fn notes(&self) -> Vec<String> {
        let mut n = vec![format!("trace {}", self.info.trace), format!("seed {}", self.info.seed)];
        n.push(format!("start {}", self.info.start));
        if let Some((from, to)) = self.window {
            let to = to.map_or("the end".to_string(), human_duration);
            n.push(format!("window {} to {to} after the start", human_duration(from)));
        }
        n
    }

    /// Notes on the points of `series`: how many buckets each covers.
    pub fn resolution(&self, width_ns: Nanos, factor: u64) -> String {
        if factor == 1 {
            format!("{} buckets", human_duration(width_ns))
        } else {
            format!(
                "each point covers {factor} buckets of {} ({})",
                human_duration(width_ns / factor),
                human_duration(width_ns)
            )
        }
    }
}

/// Points a chart draws at most (more is noise at 900 pixels).
pub const DRAW_POINTS: usize = 300;

/// Every chart of a run, with its file stem: the timeline, retries,
/// denials by limit, waiting, and time to success.
pub fn run_figures(ctx: &RunContext<'_>, series: &RunSeries) -> Vec<(&'static str, Figure)> {
    vec![
        ("timeline", timeline::figure(ctx, series)),
        ("retries", storm::figure(ctx, series)),
        ("denials-by-limit", limits::figure(ctx, series)),
        ("waiting", waiting::figure(ctx, series)),
        ("time-to-success", cdf::run_figure(ctx, series)),
    ]
}
