//! `ratesim run`: one trace, one plan, one client behaviour.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::ClientSpec;
use crate::metrics::NoBuckets;
use crate::policy::Override;
use crate::report::chart::Tee;
use crate::report::{self, RunInfo, TimeseriesCsv};
use crate::sim::{self, DecisionSink, JsonlDecisions, NoDecisions, SimConfig, Simulation, TeeDecisions, DEFAULT_START};

use super::chart_args::{ChartArgs, RunOutputs};
use crate::time::{format_rfc3339, parse_duration, parse_rfc3339, MILLISECOND, SECOND};
use crate::trace::scale::{Factor, Scaling};
use crate::trace::{TraceError, TraceRow, TraceSource, TraceTime};

use super::inputs::{self, TraceInput};
use super::outputs::{self, Named};

/// Arguments of `ratesim run`.
#[derive(Args, Debug)]
pub(super) struct RunArgs {
    /// Policy file. The default is also built in: it works from any
    /// directory.
    #[arg(long, value_name = "FILE", default_value = inputs::DEFAULT_POLICY)]
    policy: PathBuf,
    /// Plan of the policy.
    #[arg(long, value_name = "NAME", default_value = "pro")]
    plan: String,
    /// Recorded trace (.csv, .jsonl) or synthetic spec (.toml). The default
    /// is also built in: it works from any directory.
    #[arg(long, value_name = "FILE_OR_SPEC", default_value = inputs::DEFAULT_TRACE)]
    trace: PathBuf,
    /// Client behaviour: a preset, optionally with overrides
    /// (`openai-python,max_retries=5`). Presets: none, openai-python,
    /// openai-python-2.51, openai-node, anthropic-python,
    /// anthropic-python-1.5, google-genai, google-genai-retry, aws-legacy,
    /// aws-standard, aws-standard-1.35, aws-adaptive, urllib3-default,
    /// urllib3-backoff, runagent-backoff, runagent-js, predictions-node,
    /// aicredits-jitter, naive-immediate, fixed-1s, exp-full-jitter
    /// (`ratesim client list` says where each comes from).
    #[arg(long, value_name = "PRESET", default_value = "openai-python")]
    client: String,
    /// Seed of every random stream (client jitter; a synthetic spec's
    /// arrivals, overriding the spec's own `seed`), from 0 to 2^64 - 1.
    /// Default: the spec's seed, else 42.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = inputs::seed_value)]
    seed: Option<u64>,
    /// Virtual instant of trace offset 0 (RFC 3339). Default:
    /// 2026-01-01T00:00:00Z. A trace of RFC 3339 times starts at its first
    /// row; --start is refused with it.
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Stop after this much virtual time (e.g. 24h); requests still waiting
    /// to retry then count as unresolved. Default: run until every retry,
    /// poll and completion has happened.
    #[arg(long, value_name = "DURATION")]
    until: Option<String>,
    /// Time-series bucket width.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    bucket: String,
    /// Directory for summary.json, timeseries.csv and the charts (SVG,
    /// or --chart-format png).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write every attempt's decision as JSON lines.
    #[arg(long, value_name = "FILE.jsonl")]
    decisions: Option<PathBuf>,
    /// Print only the summary table (no progress line).
    #[arg(long)]
    quiet: bool,
    /// Run a synthetic spec expected to produce more than a billion rows
    /// (refused without this flag or a shorter --until).
    #[arg(long)]
    allow_huge: bool,
    /// Override a limit field: PLAN.LIMIT.FIELD=VALUE, e.g.
    /// pro.rpm.rate=600/min (`*` for every plan with that limit); checked
    /// as the policy file is. Repeatable; recorded in summary.json.
    #[arg(long = "set", value_name = "PLAN.LIMIT.FIELD=VALUE")]
    set: Vec<String>,
    /// Offered-load factor: a spec's arrival rates multiplied; a recorded
    /// trace thinned (below 1) or superposed with shifted copies (above 1).
    #[arg(long, value_name = "F", default_value = "1")]
    scale: String,
    /// The same per-key traffic over N times as many keys (users, workspaces).
    #[arg(long, value_name = "N", default_value_t = 1)]
    scale_keys: u32,
    /// Recorded traces: shift each superposed copy by a random offset below
    /// this (default: the whole trace).
    #[arg(long, value_name = "DURATION")]
    scale_window: Option<String>,
    #[command(flatten)]
    charts: Box<ChartArgs>,
}

/// A trace whose first row was read ahead: gives that row again, then the rest.
struct FirstRowAgain {
    first: Option<TraceRow>,
    rest: Box<dyn TraceSource>,
}

impl TraceSource for FirstRowAgain {
    fn next_row(&mut self, row: &mut TraceRow) -> Result<bool, TraceError> {
        match self.first.take() {
            Some(first) => {
                *row = first;
                Ok(true)
            }
            None => self.rest.next_row(row),
        }
    }
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    1
}

/// `--scale`, `--scale-keys`, `--scale-window`.
fn scaling(args: &RunArgs) -> Result<Scaling, String> {
    let factor = Factor::parse(&args.scale).map_err(|e| format!("--scale: {e}"))?;
    if args.scale_keys == 0 {
        return Err("--scale-keys: expected a whole number of key copies, at least 1, found 0".into());
    }
    let window = match args.scale_window.as_deref().map(parse_duration) {
        None => None,
        Some(Ok(d)) if d > 0 => Some(d),
        Some(Ok(_)) => return Err("--scale-window: expected a duration above zero, such as 5min".into()),
        Some(Err(e)) => return Err(format!("--scale-window: {e}")),
    };
    Ok(Scaling { factor, key_copies: args.scale_keys, window })
}

/// A progress bar over virtual time: with a known horizon (synthetic
/// specs) a bar, else a spinner.
fn progress_bar(trace: &TraceInput) -> ProgressBar {
    match trace.spec().map(|s| s.horizon() / SECOND) {
        Some(h) => ProgressBar::new(h).with_style(
            ProgressStyle::with_template("{spinner} virtual {pos}/{len} s [{bar:30}] {msg} ({elapsed})")
                .expect("valid template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} virtual {pos} s  {msg} ({elapsed})").expect("valid template"),
        ),
    }
}

pub(super) fn run(args: RunArgs) -> u8 {
    // Every argument and output is checked before the simulation starts.
    let overrides = match args.set.iter().map(|s| Override::parse(s)).collect::<Result<Vec<_>, _>>() {
        Ok(o) => o,
        Err(e) => return fail(format!("--set: {e}")),
    };
    let scaling = match scaling(&args) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let (policy, document, policy_name) = match inputs::load_policy_with(&args.policy, &overrides) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let Some(plan) = policy.plan(&args.plan) else {
        return fail(format!(
            "{policy_name}: no plan named {:?}; its plans are: {}",
            args.plan,
            policy.plan_names().join(", ")
        ));
    };
    let client = match ClientSpec::parse(&args.client) {
        Ok(c) => c,
        Err(e) => return fail(format!("--client: {e}")),
    };
    let start = match args.start.as_deref().map(parse_rfc3339) {
        None => DEFAULT_START,
        Some(Ok(t)) => t,
        Some(Err(e)) => return fail(format!("--start: {e}")),
    };
    let bucket = match parse_duration(&args.bucket) {
        Ok(b) if b >= MILLISECOND => b,
        Ok(_) => {
            return fail(format!(
            "--bucket: expected a width of at least 1ms, such as 1s or 1min, found {} (one time-series row per bucket)",
            args.bucket.trim()
        ))
        }
        Err(e) => return fail(format!("--bucket: {e}")),
    };
    let until = match args.until.as_deref().map(parse_duration) {
        None => None,
        Some(Ok(d)) if d > 0 => Some(d),
        Some(Ok(_)) => return fail("--until: expected a duration above zero, such as 24h"),
        Some(Err(e)) => return fail(format!("--until: {e}")),
    };
    let trace = match TraceInput::resolve(&args.trace).and_then(|t| t.scaled(scaling)) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let seed = args.seed.or_else(|| trace.spec().and_then(|s| s.seed())).unwrap_or(42);
    if let Some(spec) = trace.spec() {
        let remedy = "pass --until DURATION to simulate less of it, or --allow-huge to run it all";
        if let Err(e) = inputs::check_rows(&trace.name(), spec, until, args.allow_huge, remedy) {
            return fail(e);
        }
    }
    let mut source = match trace.open(seed) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    // The first row, read ahead: a trace without rows is refused and the
    // real start is known before any output is created.
    let mut first = TraceRow::default();
    match source.next_row(&mut first) {
        Ok(true) => {}
        Ok(false) => return fail(TraceError::no_rows(&args.trace)),
        Err(e) => return fail(e),
    }
    if let (TraceTime::Absolute(at), Some(given)) = (first.t, &args.start) {
        return fail(sim::start_refused(given, &args.trace, at));
    }
    let trace_start = sim::trace_start(first.t, start);
    let mut source = FirstRowAgain { first: Some(first), rest: source };
    let chart_plan = match args.charts.check(args.out.as_deref(), trace_start) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if let Some(dir) = &args.out {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return fail(format!("cannot create output directory {}: {e}", dir.display()));
        }
    }
    let out_files: Vec<PathBuf> = match &args.out {
        Some(dir) => ["summary.json", "timeseries.csv"].iter().map(|f| dir.join(f)).collect(),
        None => Vec::new(),
    };
    let mut read = Vec::new();
    if args.policy.exists() {
        read.push(Named { flag: "--policy", path: &args.policy });
    }
    if let Some(file) = trace.file() {
        read.push(Named { flag: "--trace", path: file });
    }
    let mut writes: Vec<Named<'_>> = out_files.iter().map(|p| Named { flag: "--out", path: p }).collect();
    writes.extend(chart_plan.files().into_iter().map(|(flag, path)| Named { flag, path }));
    writes.extend(args.decisions.iter().map(|p| Named { flag: "--decisions", path: p }));
    if let Err(e) = outputs::check(&read, &writes) {
        return fail(e);
    }
    let config = SimConfig { start, seed, bucket, client: client.clone(), until, ..SimConfig::default() };
    let info = RunInfo {
        provider: policy.provider.clone(),
        policy: policy_name,
        plan: plan.name.clone(),
        trace: trace.name(),
        client: client.name.clone(),
        client_behaviour: client.describe(),
        seed,
        start: format_rfc3339(trace_start),
        bucket_ns: bucket,
        version: env!("CARGO_PKG_VERSION").to_string(),
        overrides: overrides.iter().map(|o| o.text.clone()).collect(),
        effective_plan: document.as_ref().map(|d| d.effective_limits(&plan.name)),
        scale: (scaling.factor != Factor::ONE).then(|| scaling.factor.to_string()),
        scale_keys: (scaling.key_copies != 1).then_some(scaling.key_copies),
    };

    let create = |path: &Path| {
        File::create(path).map(BufWriter::new).map_err(|e| format!("cannot create {}: {e}", path.display()))
    };
    let mut jsonl = match &args.decisions {
        Some(p) => match create(p) {
            Ok(w) => Some(JsonlDecisions(w)),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let mut headroom = chart_plan.headroom(&policy, plan, bucket);
    let mut no_decisions = NoDecisions;
    let file_decisions: &mut dyn DecisionSink = match &mut jsonl {
        Some(j) => j,
        None => &mut no_decisions,
    };
    // With --key, the headroom chart reads every decision too.
    let mut both;
    let decisions: &mut dyn DecisionSink = match &mut headroom {
        Some(h) => {
            both = TeeDecisions(file_decisions, h);
            &mut both
        }
        None => file_decisions,
    };
    let limit_ids: Vec<String> = plan.limits.iter().map(|l| l.id.clone()).collect();
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let bar = show_progress.then(|| progress_bar(&trace));
    let mut sim = Simulation::new(&policy, plan, config);
    if let Some(bar) = bar.clone() {
        sim = sim.with_progress(move |p| {
            bar.set_position(p.elapsed / SECOND);
            bar.set_message(format!("{} requests, {} attempts", report::group(p.requests), report::group(p.attempts)));
        });
    }
    let charting = args.charts.wanted(args.out.as_deref());
    let mut series = chart_plan.series(bucket);
    let result = match &args.out {
        Some(dir) => {
            let path = dir.join("timeseries.csv");
            let w = match create(&path) {
                Ok(w) => w,
                Err(e) => return fail(e),
            };
            let mut ts =
                TimeseriesCsv::new(w, limit_ids).with_delayed_column(plan.limits.iter().any(|l| l.engine.can_delay()));
            let r = sim.run(&mut source, &mut Tee(&mut ts, &mut series), decisions);
            if let Err(e) = ts.into_inner() {
                return fail(format!("cannot write {}: {e}", path.display()));
            }
            r
        }
        None if charting => sim.run(&mut source, &mut series, decisions),
        None => sim.run(&mut source, &mut NoBuckets, decisions),
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = match result {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let (Some(j), Some(p)) = (&mut jsonl, &args.decisions) {
        if let Err(e) = j.0.flush() {
            return fail(format!("cannot write {}: {e}", p.display()));
        }
    }
    let summary_text = report::terminal_summary(&info, &summary, trace_start);
    print!("{summary_text}");
    if let Some(dir) = &args.out {
        let path = dir.join("summary.json");
        if let Err(e) = std::fs::write(&path, report::summary_json(&info, &summary)) {
            return fail(format!("cannot write {}: {e}", path.display()));
        }
    }
    let mut written: Vec<String> = Vec::new();
    if let Some(dir) = &args.out {
        written.push(dir.join("summary.json").display().to_string());
        written.push(dir.join("timeseries.csv").display().to_string());
    }
    if charting {
        let policy_text = policy.explain(Some(&plan.name)).unwrap_or_default();
        let trace_text = report::pages::describe_trace(&args.trace, Some(summary.requests));
        let command: Vec<String> = std::iter::once("ratesim".to_string()).chain(std::env::args().skip(1)).collect();
        let outputs = RunOutputs {
            info: &info,
            summary: &summary,
            plan,
            series: &series,
            headroom: headroom.as_ref(),
            summary_text: &summary_text,
            policy_text: &policy_text,
            trace_text: &trace_text,
            command: &command,
        };
        match chart_plan.write(outputs) {
            Ok(files) => written.extend(files),
            Err(e) => return fail(e),
        }
    }
    if let Some(d) = &args.decisions {
        written.push(d.display().to_string());
    }
    if !written.is_empty() {
        println!("\nwrote {}", written.join(", "));
    }
    let _ = std::io::stdout().flush();
    0
}
