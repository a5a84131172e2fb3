//! The chart and report options of `ratesim run`, checked before the run
//! starts, and the files they write after it.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::metrics::Summary;
use crate::policy::{Plan, Policy};
use crate::report::chart::headroom::{self, Headroom};
use crate::report::chart::solve as solve_chart;
use crate::report::chart::sweep::SweepCharts;
use crate::report::chart::{self, Clock, Format, RunContext, RunSeries};
use crate::report::pages::{
    describe_trace, run_page, solve_page, sweep_page, Captioned, RunPage, SolvePage, SweepPage,
};
use crate::report::{html, RunInfo};
use crate::time::{parse_duration, parse_rfc3339, Nanos};
use crate::whatif::axes::SweepDefinition;
use crate::whatif::results::{PointStatistics, ScenarioResult};
use crate::whatif::solve::{Solution, SolveSpec};

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

impl ChartPlan {
    /// The single files it writes, with their options (`--chart`,
    /// `--report`), for the check that no output is an input or written
    /// twice.
    pub(super) fn files(&self) -> Vec<(&'static str, &Path)> {
        let mut files: Vec<(&'static str, &Path)> = Vec::new();
        if let Some((p, _)) = &self.timeline {
            files.push(("--chart", p));
        }
        if let Some(p) = &self.report {
            files.push(("--report", p));
        }
        files
    }
}

impl ChartArgs {
    /// Whether anything is to be drawn or reported.
    pub(super) fn wanted(&self, out: Option<&Path>) -> bool {
        self.chart.is_some() || self.charts.is_some() || self.report.is_some() || out.is_some()
    }

    /// Checks every option before the run (`out`: the `--out` directory,
    /// which gets the charts too; `origin`: the instant the trace starts,
    /// its first row's for RFC 3339 times).
    pub(super) fn check(&self, out: Option<&Path>, origin: Nanos) -> Result<ChartPlan, String> {
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

/// Chart and report options of `ratesim sweep` (and `sweep merge`).
#[derive(Args, Debug, Default)]
pub(super) struct SweepChartArgs {
    /// Draw the sweep's charts into this directory: load (success, denials
    /// and retry amplification against offered load or another numeric
    /// axis), heatmap (a metric over two swept axes) and time-to-success.
    #[arg(long, value_name = "DIR")]
    charts: Option<PathBuf>,
    /// Format of the charts: svg or png.
    #[arg(long, value_name = "svg|png", default_value = "svg")]
    chart_format: String,
    /// Write a self-contained HTML report of the sweep (results, charts,
    /// the sweep's definition, the command line).
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
}

/// Checks a `--report` path: `.html`, in a directory that exists.
fn check_report(path: &Path) -> Result<(), String> {
    if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm")) {
        return Err(format!("--report {}: a report file must end in .html", path.display()));
    }
    check_writable(path, "--report")
}

/// Checks a `--charts` directory: absent (it is created) or a directory.
fn check_charts_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!("--charts {}: exists and is not a directory", dir.display()));
    }
    Ok(())
}

/// The command line as given, with the program named `ratesim`.
fn command_line() -> Vec<String> {
    std::iter::once("ratesim".to_string()).chain(std::env::args().skip(1)).collect()
}

impl SweepChartArgs {
    /// Whether charts or a report are wanted.
    pub(super) fn wanted(&self) -> bool {
        self.charts.is_some() || self.report.is_some()
    }

    /// Checks the options before the sweep runs.
    pub(super) fn check(&self) -> Result<(), String> {
        Format::parse(&self.chart_format).map_err(|e| format!("--chart-format: {e}"))?;
        if let Some(d) = &self.charts {
            check_charts_dir(d)?;
        }
        if let Some(r) = &self.report {
            check_report(r)?;
        }
        Ok(())
    }

    /// The collector for a sweep of `def`, if anything is wanted.
    pub(super) fn start<'a>(
        &'a self,
        def: &'a SweepDefinition,
        statuses: &[u16],
        replicated: bool,
    ) -> Option<SweepCharting<'a>> {
        self.wanted().then(|| SweepCharting {
            args: self,
            def,
            charts: SweepCharts::new(def, statuses, replicated),
            table: Vec::new(),
            table_cut: 0,
        })
    }
}

/// Lines of the terminal table a report keeps (the rest are counted).
const MAX_TABLE_LINES: usize = 2_000;

/// A sweep's charts and report, collected as results arrive.
pub(super) struct SweepCharting<'a> {
    args: &'a SweepChartArgs,
    def: &'a SweepDefinition,
    charts: SweepCharts,
    table: Vec<String>,
    table_cut: u64,
}

impl SweepCharting<'_> {
    /// A line of the terminal table, for the report.
    pub(super) fn record(&mut self, line: &str) {
        if self.table.len() < MAX_TABLE_LINES {
            self.table.push(line.to_string());
        } else {
            self.table_cut += 1;
        }
    }

    /// A scenario's result and the points it closed.
    pub(super) fn collect(&mut self, r: &ScenarioResult, closed: &[PointStatistics]) {
        self.charts.scenario(r);
        for p in closed {
            self.charts.point(p);
        }
    }

    /// A point left open by an interruption.
    pub(super) fn collect_point(&mut self, p: &PointStatistics) {
        self.charts.point(p);
    }

    /// Writes the charts and the report; returns the files written.
    pub(super) fn write(self) -> Result<Vec<String>, String> {
        let format = Format::parse(&self.args.chart_format)?;
        let figures = self.charts.figures();
        if self.args.charts.is_some() && !figures.iter().any(|(stem, _)| *stem == "load") {
            eprintln!(
                "note: no load chart: the sweep has no numeric axis with two values or more (--scale, a --set of numbers or rates, --scale-keys)"
            );
        }
        let mut written = Vec::new();
        if let Some(dir) = &self.args.charts {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the directory {}: {e}", dir.display()))?;
            for (stem, f) in &figures {
                let path = dir.join(format!("{stem}.{}", format.extension()));
                chart::write(f, &path, format)?;
                written.push(path.display().to_string());
            }
        }
        if let Some(path) = &self.args.report {
            let mut table = self.table.join("\n");
            if self.table_cut > 0 {
                table.push_str(&format!("\n[… {} more lines as printed]", self.table_cut));
            }
            let policy_text = crate::policy::load(Path::new(&self.def.policy.path))
                .ok()
                .and_then(|p| p.explain(None).ok())
                .unwrap_or_default();
            let trace_text = describe_trace(Path::new(&self.def.trace.path), None);
            let command = command_line();
            let page = sweep_page(SweepPage {
                definition: self.def,
                table_text: &table,
                policy_text: &policy_text,
                trace_text: &trace_text,
                command: &command,
                charts: figures
                    .into_iter()
                    .map(|(stem, figure)| Captioned { caption: sweep_caption(stem), figure })
                    .collect(),
            });
            std::fs::write(path, html::render(&page)?).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            written.push(path.display().to_string());
        }
        Ok(written)
    }
}

/// What each sweep chart shows, for its caption.
fn sweep_caption(stem: &str) -> String {
    match stem {
        "load" => "Success, denials by status and retry amplification against the swept axis, one line per plan, client or setting (bands: 95% confidence interval over the seeds).",
        "heatmap" => "Share of requests that succeeded over two swept axes, each cell annotated with its value.",
        "time-to-success" => "Share of requests that succeeded within each wait, one line per point of the sweep.",
        _ => "",
    }
    .to_string()
}

/// Chart and report options of `ratesim solve`.
#[derive(Args, Debug, Default)]
pub(super) struct SolveChartArgs {
    /// Draw the search to this chart (.svg or .png): each target metric
    /// against the varied value, the target, and the answer.
    #[arg(long, value_name = "FILE.svg")]
    chart: Option<PathBuf>,
    /// Write a self-contained HTML report of the search (the values
    /// evaluated, the answer, its verification run, the chart, the command
    /// line).
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
}

impl SolveChartArgs {
    /// Checks the options before the search.
    pub(super) fn check(&self) -> Result<(), String> {
        if let Some(c) = &self.chart {
            Format::of(c).map_err(|e| format!("--chart {e}"))?;
            check_writable(c, "--chart")?;
        }
        if let Some(r) = &self.report {
            check_report(r)?;
        }
        Ok(())
    }

    /// Writes the chart and the report of `solution` (`shown`: what was
    /// printed); returns the files written.
    pub(super) fn write(&self, solution: &Solution, spec: &SolveSpec, shown: &str) -> Result<Vec<String>, String> {
        if self.chart.is_none() && self.report.is_none() {
            return Ok(Vec::new());
        }
        let base = &spec.base;
        let policy = crate::policy::load(&base.policy).map_err(|e| e.to_string())?;
        let plan = base.plans.first().cloned().unwrap_or_default();
        let client = base.clients.first().cloned().unwrap_or_default();
        let trace = base.trace.display().to_string();
        let figure = solve_chart::figure(solution, &policy.provider, &plan, &client, &trace);
        let mut written = Vec::new();
        if let Some(path) = &self.chart {
            chart::write(&figure, path, Format::of(path)?)?;
            written.push(path.display().to_string());
        }
        if let Some(path) = &self.report {
            let policy_text = policy.explain(Some(&plan)).unwrap_or_default();
            let trace_text = describe_trace(&base.trace, None);
            let client_text = crate::client::ClientSpec::parse(&client)
                .map(|c| format!("{}: {}", c.name, c.describe()))
                .unwrap_or(client.clone());
            let heading = format!("{} {plan} · {} · client {client}", policy.provider, solution.parameter);
            let command = command_line();
            let page = solve_page(SolvePage {
                heading: &heading,
                search_text: shown,
                policy_text: &policy_text,
                trace_text: &trace_text,
                client_text: &client_text,
                command: &command,
                charts: vec![Captioned {
                    figure,
                    caption: "Each target metric at every value the solver evaluated (green: every target met; red: one missed), the target as a dashed line, and the answer.".into(),
                }],
            });
            std::fs::write(path, html::render(&page)?).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            written.push(path.display().to_string());
        }
        Ok(written)
    }
}
