//! The chart and report options of `ratesim run`, checked before the run
//! starts, and the files they write after it.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::metrics::Summary;
use crate::policy::{Plan, Policy};
use crate::report::chart::headroom::{self, Headroom};
use crate::report::chart::{self, Clock, Format, RunContext, RunSeries};
use crate::report::pages::{run_page, Captioned, RunPage};
use crate::report::{html, RunInfo};
use crate::time::{parse_duration, parse_rfc3339, Nanos};
use crate::trace::{self, TraceRow, TraceTime};

/// Chart and report options of `ratesim run`.
#[derive(Args, Debug, Default)]
pub(super) struct ChartArgs {
    /// Draw the timeline (attempts, admitted, denied by status, retries)
    /// to this file: .svg or .png.
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<PathBuf>,
    /// Draw every chart of the run into this directory: timeline, retries,
    /// denials-by-limit, waiting, time-to-success (and headroom with --key).
    #[arg(long, value_name = "DIR")]
    charts: Option<PathBuf>,
    /// Format of the charts --charts and --out write: svg or png.
    #[arg(long, value_name = "svg|png", default_value = "svg")]
    chart_format: String,
    /// Draw the run from this point: an offset from the trace start (e.g.
    /// 2h, 90min) or an RFC 3339 instant.
    #[arg(long, value_name = "OFFSET|TIME")]
    from: Option<String>,
    /// Draw the run up to this point (an offset or an RFC 3339 instant).
    #[arg(long, value_name = "OFFSET|TIME")]
    to: Option<String>,
    /// Label the time axes with wall-clock times (UTC) instead of offsets
    /// from the trace start.
    #[arg(long)]
    clock: bool,
    /// Also chart the headroom of this API key: what its X-RateLimit-Remaining
    /// header showed over time.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// Write a self-contained HTML report of the run (summary, charts,
    /// policy, trace, client, the command line).
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
}

/// The chart outputs of a run, checked.
pub(super) struct ChartPlan {
    /// Single-chart file (`--chart`).
    timeline: Option<(PathBuf, Format)>,
    /// Directories that get every chart, and their format.
    dirs: Vec<(PathBuf, Format)>,
    report: Option<PathBuf>,
    /// The window, ns after the trace start.
    pub window: Option<(Nanos, Option<Nanos>)>,
    clock: Clock,
    key: Option<String>,
}

/// Checks that `path` can be written: its directory exists.
fn check_writable(path: &Path, option: &str) -> Result<(), String> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(format!(
            "{option} {}: cannot create it: the directory {} does not exist",
            path.display(),
            parent.display()
        ));
    }
    if path.is_dir() {
        return Err(format!("{option} {}: is a directory; expected a file", path.display()));
    }
    Ok(())
}

/// The instant the trace starts: its first row's for RFC 3339 times, else
/// `start` (the instant of offset 0).
fn trace_origin(trace: &Path, seed: u64, start: Nanos) -> Result<Nanos, String> {
    let mut source = trace::open(trace, Some(seed)).map_err(|e| e.to_string())?;
    let mut row = TraceRow::default();
    Ok(match source.next_row(&mut row) {
        Ok(true) => match row.t {
            TraceTime::Absolute(a) => a,
            TraceTime::Offset(_) => start,
        },
        _ => start,
    })
}

/// Whether `t` is written as an RFC 3339 instant (`2026-01-01T10:00:00Z`).
fn is_instant(t: &str) -> bool {
    t.len() >= 11 && t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-'
}

/// `--from`/`--to`: an offset, or an instant at or after the trace start.
fn point(option: &str, text: &str, origin: Nanos) -> Result<Nanos, String> {
    let t = text.trim();
    if is_instant(t) {
        let at = parse_rfc3339(t).map_err(|e| format!("{option}: {e}"))?;
        return at.checked_sub(origin).ok_or_else(|| {
            format!(
                "{option}: {t} is before the trace starts ({}); give an instant after it or an offset such as 2h",
                crate::time::format_rfc3339(origin)
            )
        });
    }
    parse_duration(t).map_err(|e| {
        format!("{option}: expected an offset from the trace start (e.g. 2h, 90min) or an RFC 3339 instant: {e}")
    })
}

impl ChartArgs {
    /// Whether anything is to be drawn or reported.
    pub(super) fn wanted(&self, out: Option<&Path>) -> bool {
        self.chart.is_some() || self.charts.is_some() || self.report.is_some() || out.is_some()
    }

    /// Checks every option before the run (`out`: the `--out` directory,
    /// which gets the charts too).
    pub(super) fn check(&self, out: Option<&Path>, trace: &Path, seed: u64, start: Nanos) -> Result<ChartPlan, String> {
        let format = Format::parse(&self.chart_format).map_err(|e| format!("--chart-format: {e}"))?;
        let timeline = match &self.chart {
            Some(p) => {
                let f = Format::of(p).map_err(|e| format!("--chart {e}"))?;
                check_writable(p, "--chart")?;
                Some((p.clone(), f))
            }
            None => None,
        };
        if let Some(r) = &self.report {
            if !r.extension().is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm")) {
                return Err(format!("--report {}: a report file must end in .html", r.display()));
            }
            check_writable(r, "--report")?;
        }
        let mut dirs = Vec::new();
        if let Some(d) = &self.charts {
            if d.exists() && !d.is_dir() {
                return Err(format!("--charts {}: exists and is not a directory", d.display()));
            }
            dirs.push((d.clone(), format));
        }
        if let Some(d) = out {
            dirs.push((d.to_path_buf(), format));
        }
        let needs_origin = self.clock || [&self.from, &self.to].iter().any(|o| o.as_deref().is_some_and(is_instant));
        let origin = if needs_origin { trace_origin(trace, seed, start)? } else { start };
        let from = self.from.as_deref().map(|t| point("--from", t, origin)).transpose()?;
        let to = self.to.as_deref().map(|t| point("--to", t, origin)).transpose()?;
        if let (Some(a), Some(b)) = (from, to) {
            if b <= a {
                return Err(format!(
                    "--to must come after --from: the window would be {} to {}",
                    crate::report::human_duration(a),
                    crate::report::human_duration(b)
                ));
            }
        }
        let window = (from.is_some() || to.is_some()).then(|| (from.unwrap_or(0), to));
        let clock = if self.clock { Clock::Wall { origin_ns: origin } } else { Clock::Offset };
        if let Some(k) = &self.key {
            if k.is_empty() {
                return Err("--key: expected an API key as it appears in the trace".into());
            }
        }
        Ok(ChartPlan { timeline, dirs, report: self.report.clone(), window, clock, key: self.key.clone() })
    }
}

impl ChartPlan {
    /// The run's series collector for this plan.
    pub(super) fn series(&self, bucket: Nanos) -> RunSeries {
        let (from, to) = self.window.unwrap_or((0, None));
        RunSeries::new(bucket, from, to)
    }

    /// The headroom collector, with `--key`.
    pub(super) fn headroom<'p>(&self, policy: &'p Policy, plan: &'p Plan, bucket: Nanos) -> Option<Headroom<'p>> {
        let (from, to) = self.window.unwrap_or((0, None));
        self.key.as_deref().map(|k| Headroom::new(policy, plan, k, bucket, from, to))
    }

    /// Writes the charts and the report; returns the files written.
    pub(super) fn write(&self, run: RunOutputs<'_>) -> Result<Vec<String>, String> {
        let limits = run.plan.limits.iter().map(|l| (l.id.clone(), l.status)).collect();
        let ctx = RunContext {
            info: run.info,
            summary: run.summary,
            limits,
            can_delay: run.plan.limits.iter().any(|l| l.engine.can_delay()),
            clock: self.clock,
            window: self.window,
        };
        let mut figures = chart::run_figures(&ctx, run.series);
        if let Some(h) = run.headroom {
            if h.coarse.points.iter().all(|p| p.attempts == 0) && self.window.is_none() {
                return Err(format!("--key {}: the key made no attempt in this run", h.key));
            }
            figures.push(("headroom", headroom::figure(&ctx, h, run.series.coarse.end)));
        }
        let mut written = Vec::new();
        if let Some((path, format)) = &self.timeline {
            chart::write(&figures[0].1, path, *format)?;
            written.push(path.display().to_string());
        }
        for (dir, format) in &self.dirs {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the directory {}: {e}", dir.display()))?;
            for (stem, f) in &figures {
                let path = dir.join(format!("{stem}.{}", format.extension()));
                chart::write(f, &path, *format)?;
                written.push(path.display().to_string());
            }
        }
        if let Some(path) = &self.report {
            let page = run_page(RunPage {
                info: run.info,
                summary_text: run.summary_text,
                policy_text: run.policy_text,
                trace_text: run.trace_text,
                command: run.command,
                charts: figures
                    .into_iter()
                    .map(|(stem, figure)| Captioned { caption: caption(stem), figure })
                    .collect(),
            });
            let html = html::render(&page)?;
            std::fs::write(path, html).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            written.push(path.display().to_string());
        }
        Ok(written)
    }
}

/// What each run chart shows, for its caption.
fn caption(stem: &str) -> String {
    match stem {
        "timeline" => "Attempts per second, admitted and denied by status, with new requests, retries and polls; below, the share of attempts denied per status.",
        "retries" => "First attempts, retries and polls stacked: how much of the traffic the clients' retries make.",
        "denials-by-limit" => "Denials per second by the limit that denied them: which limit binds when.",
        "waiting" => "Requests outstanding and in flight, and how long the requests that succeeded at each time had waited.",
        "time-to-success" => "Share of all requests that succeeded within each wait; the curve levels off at the success ratio.",
        "headroom" => "What the remaining header showed the chosen key, with the limit header and its denials.",
        _ => "",
    }
    .to_string()
}

/// What a finished run hands to [`ChartPlan::write`].
pub(super) struct RunOutputs<'a> {
    pub info: &'a RunInfo,
    pub summary: &'a Summary,
    pub plan: &'a Plan,
    pub series: &'a RunSeries,
    pub headroom: Option<&'a Headroom<'a>>,
    pub summary_text: &'a str,
    pub policy_text: &'a str,
    pub trace_text: &'a str,
    pub command: &'a [String],
}

/// The trace in words for the report: a spec's own text (it says what
/// traffic was generated), or a recorded trace's row count and first lines.
pub(super) fn describe_trace(path: &Path, summary: &Summary) -> String {
    const MAX: usize = 16 * 1024;
    use std::io::{BufRead, Read};
    let is_spec = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let Ok(file) = std::fs::File::open(path) else { return format!("{} (no longer readable)", path.display()) };
    if is_spec {
        let mut bytes = Vec::new();
        let _ = file.take(MAX as u64 + 1).read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes);
        let mut t = format!(
            "synthetic spec {} ({} requests generated):\n\n",
            path.display(),
            crate::report::group(summary.requests)
        );
        if text.len() > MAX {
            let cut = (0..=MAX).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            t.push_str(&text[..cut]);
            t.push_str("\n[… the rest of the spec is not shown]");
        } else {
            t.push_str(&text);
        }
        t
    } else {
        let mut t = format!(
            "recorded trace {}: {} requests; its first lines:\n\n",
            path.display(),
            crate::report::group(summary.requests)
        );
        let mut lines = std::io::BufReader::new(file.take(MAX as u64));
        for _ in 0..8 {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            t.push_str(&line.trim_end().chars().take(200).collect::<String>());
            t.push('\n');
        }
        t
    }
}
