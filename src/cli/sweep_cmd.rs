//! `ratesim sweep`: every combination of plans, overrides, traffic scales,
//! clients and seeds, in parallel; `ratesim sweep merge`: shards put back
//! together. The sweep itself is [`crate::whatif`]; this module reads the
//! arguments, checks every one before anything runs, and chooses outputs.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::chart_args::{SweepChartArgs, SweepCharting};
use super::interrupt;
use super::outputs::{self, Named};
use crate::time::{parse_duration, parse_rfc3339, MILLISECOND};
use crate::whatif::axes::{parse_key_copies, parse_scales, seeds_from, SetAxis, Shard, SweepDefinition};
use crate::whatif::merge::read_parts;
use crate::whatif::results::{Columns, Destinations, ResultsFiles, ScenarioResult};
use crate::whatif::sweep::{Sweep, SweepSpec};
use crate::whatif::table::{plural, Table};

/// `ratesim sweep [ARGS]` or `ratesim sweep merge PARTS`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(super) struct SweepCommand {
    #[command(subcommand)]
    merge: Option<MergeCommand>,
    #[command(flatten)]
    args: SweepArgs,
}

#[derive(Subcommand, Debug)]
enum MergeCommand {
    /// Put the parts of a sharded sweep (`--shard K/N --out part-K`) back
    /// together: checks they are parts of one sweep, none missing or given
    /// twice, and writes the files the unsharded sweep writes, byte for byte.
    Merge(MergeArgs),
}

#[derive(Args, Debug)]
struct MergeArgs {
    /// The parts: their --out directories (or results.json files).
    #[arg(value_name = "PART", required = true)]
    parts: Vec<PathBuf>,
    #[command(flatten)]
    outputs: Outputs,
}

/// Where results go (shared by a sweep and a merge).
#[derive(Args, Debug)]
struct Outputs {
    /// Write results.csv, results.json and (with several seeds)
    /// statistics.csv to this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write results.csv to this file.
    #[arg(long, value_name = "FILE.csv")]
    csv: Option<PathBuf>,
    /// Print results.json to standard output instead of the table.
    #[arg(long, conflicts_with = "out")]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    charts: SweepChartArgs,
}

/// Arguments of `ratesim sweep`.
#[derive(Args, Debug)]
pub(super) struct SweepArgs {
    /// Policy file.
    #[arg(long, value_name = "FILE", default_value = "policies/runinfra.toml")]
    policy: PathBuf,
    /// Plans to compare, comma-separated (default: the plans the --set
    /// options name, else every plan of the policy).
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    plans: Vec<String>,
    /// Recorded trace (.csv, .jsonl) or synthetic spec (.toml).
    #[arg(long, value_name = "FILE_OR_SPEC", default_value = "traces/steady-over.toml")]
    trace: PathBuf,
    /// Client behaviours to compare, separated by `;` (a preset may carry
    /// `,key=value` overrides).
    #[arg(long, value_name = "A;B;...", value_delimiter = ';', default_value = "none;openai-python;naive-immediate")]
    clients: Vec<String>,
    /// An axis of limit values: PLAN.LIMIT.FIELD=V1,V2,... (`*` for every
    /// plan with that limit; A..B:STEP for a range, e.g.
    /// budget.budget.limit=100000..600000:50000 or pro.rpm.rate=400..600:100/min).
    /// Repeat for more axes.
    #[arg(long = "set", value_name = "PLAN.LIMIT.FIELD=VALUES")]
    set: Vec<String>,
    /// Offered-load factors, comma-separated (e.g. 0.5,1,2,4): a spec's
    /// arrival rates multiplied; a recorded trace thinned or superposed.
    #[arg(long, value_name = "F,...", default_value = "1")]
    scale: String,
    /// Key multipliers, comma-separated: the same per-key traffic over N
    /// times as many keys (users and workspaces).
    #[arg(long, value_name = "N,...", default_value = "1")]
    scale_keys: String,
    /// Recorded traces: shift each superposed copy by a random offset below
    /// this (default: the whole trace).
    #[arg(long, value_name = "DURATION")]
    scale_window: Option<String>,
    /// Seeds: comma-separated, or ranges such as 1..30. Default: the
    /// spec's own seed, else 42 (as `ratesim run`).
    #[arg(long, value_name = "N,A..B", conflicts_with = "replications")]
    seeds: Option<String>,
    /// Run every scenario with N seeds (the default seed and the N − 1
    /// after it) and report means with 95% confidence intervals.
    #[arg(long, value_name = "N")]
    replications: Option<u64>,
    /// Virtual instant of trace offset 0 (RFC 3339). Default:
    /// 2026-01-01T00:00:00Z. A trace of RFC 3339 times starts at its first
    /// row; --start is refused with it.
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Stop each run after this much virtual time (e.g. 24h); requests
    /// still waiting then count as unresolved.
    #[arg(long, value_name = "DURATION")]
    until: Option<String>,
    /// Bucket width for the peak attempts per bucket.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    bucket: String,
    /// Worker threads (0: one per core; at most 256).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Run only part K of N of the scenario list (every N-th scenario),
    /// e.g. for a job array; put the parts together with `sweep merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    #[command(flatten)]
    outputs: Outputs,
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    1
}

pub(super) fn run(cmd: SweepCommand) -> u8 {
    match cmd.merge {
        Some(MergeCommand::Merge(m)) => merge(m),
        None => sweep(cmd.args),
    }
}

/// Reads a positive duration option.
fn duration(name: &str, text: &str, min: u64, what: &str) -> Result<u64, String> {
    match parse_duration(text) {
        Ok(d) if d >= min => Ok(d),
        Ok(_) => Err(format!("{name}: expected {what}, found {}", text.trim())),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

/// The sweep the arguments describe, every argument checked.
fn spec(args: &SweepArgs) -> Result<SweepSpec, String> {
    let set =
        args.set.iter().map(|s| SetAxis::parse(s).map_err(|e| format!("--set: {e}"))).collect::<Result<_, _>>()?;
    let scale = parse_scales(&args.scale).map_err(|e| format!("--scale: {e}"))?;
    let scale_keys = parse_key_copies(&args.scale_keys).map_err(|e| format!("--scale-keys: {e}"))?;
    let scale_window = match &args.scale_window {
        Some(w) => Some(duration("--scale-window", w, 1, "a duration above zero, such as 5min")?),
        None => None,
    };
    let start = args.start.as_deref().map(parse_rfc3339).transpose().map_err(|e| format!("--start: {e}"))?;
    let until = match &args.until {
        Some(u) => Some(duration("--until", u, 1, "a duration above zero, such as 24h")?),
        None => None,
    };
    let bucket = duration("--bucket", &args.bucket, MILLISECOND, "a width of at least 1ms, such as 1s or 1min")?;
    let default_seed = super::spec_seed(&args.trace).unwrap_or(42);
    let seeds = seeds_from(args.seeds.as_deref(), args.replications, default_seed)?;
    if args.clients.iter().any(|c| c.trim().is_empty()) {
        return Err("--clients: empty client in the list (clients are separated by `;`)".into());
    }
    Ok(SweepSpec {
        policy: args.policy.clone(),
        trace: args.trace.clone(),
        plans: args.plans.clone(),
        set,
        scale,
        scale_keys,
        scale_window,
        clients: args.clients.clone(),
        seeds,
        start,
        until,
        bucket,
    })
}

/// Checks the outputs before any scenario runs: each writable, none an
/// input (`inputs`: flag and path), no two the same file (see
/// [`outputs::check`]); the chart and report options. Creates the `--out`
/// directory.
fn check_outputs(outputs: &Outputs, inputs: &[Named<'_>]) -> Result<Destinations, String> {
    outputs.charts.check()?;
    if let Some(dir) = &outputs.out {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("--out {}: cannot create the directory: {e}", dir.display()))?;
    }
    let files: Vec<PathBuf> = match &outputs.out {
        Some(dir) => ["results.csv", "results.json", "statistics.csv"].iter().map(|f| dir.join(f)).collect(),
        None => Vec::new(),
    };
    let mut written: Vec<Named<'_>> = files.iter().map(|p| Named { flag: "--out", path: p }).collect();
    written.extend(outputs.csv.iter().map(|p| Named { flag: "--csv", path: p }));
    outputs::check(inputs, &written)?;
    Ok(Destinations { dir: outputs.out.clone(), csv: outputs.csv.clone(), json_stdout: outputs.json })
}

/// Writes results as they arrive and prints the table; shared by a sweep
/// and a merge.
struct Report<'a> {
    files: ResultsFiles<'a>,
    table: Option<Table>,
    def: &'a SweepDefinition,
    bar: Option<ProgressBar>,
    failed: u64,
    /// Charts and the HTML report, when asked for.
    charts: Option<SweepCharting<'a>>,
}

impl Report<'_> {
    fn print(&mut self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
        if let Some(c) = &mut self.charts {
            c.record(line);
        }
    }

    fn add(&mut self, r: ScenarioResult) -> std::io::Result<()> {
        if r.error.is_some() {
            self.failed += 1;
        }
        let closed = self.files.add(&r)?;
        if let Some(c) = &mut self.charts {
            c.collect(&r, &closed);
        }
        if let Some(table) = self.table.clone() {
            for p in &closed {
                self.print(&table.point(self.def, p));
            }
            if !self.is_replicated() {
                self.print(&table.scenario(self.def, &r));
            } else if let Some(e) = &r.error {
                self.print(&format!("  seed {}: error: {e}", r.seed));
            }
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        Ok(())
    }

    fn is_replicated(&self) -> bool {
        self.files.keeps_statistics()
    }
}

fn progress_bar(len: u64, quiet: bool) -> Option<ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} scenarios · {elapsed} elapsed · ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    Some(bar)
}

fn sweep(args: SweepArgs) -> u8 {
    let spec = match spec(&args) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let shard = match args.shard.as_deref().map(Shard::parse) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return fail(format!("--shard: {e}")),
    };
    if args.threads > crate::sim::sweep::MAX_THREADS {
        return fail(format!(
            "--threads: at most {} worker threads (a simulation runs on one; this machine has {} cores), found {}",
            crate::sim::sweep::MAX_THREADS,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            args.threads
        ));
    }
    let inputs = [Named { flag: "--policy", path: &args.policy }, Named { flag: "--trace", path: &args.trace }];
    let to = match check_outputs(&args.outputs, &inputs) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let mut sweep = match Sweep::prepare(spec) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    sweep.keep_series(args.outputs.charts.wanted());
    let def = sweep.definition();
    let statistics = shard.is_none() && def.seeds.len() > 1;
    let files = match ResultsFiles::create(&to, def, sweep.columns(), shard, statistics) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let total = shard.map_or(sweep.len(), |s| s.len(sweep.len()));
    let table = (!args.outputs.json).then(|| Table::new(def, sweep.columns(), statistics));
    let mut charts = args.outputs.charts.start(def, &sweep.columns().statuses, statistics);
    if let Some(t) = &table {
        let head = format!("{}\n\n{}", t.title(def, shard), t.header(def));
        println!("{head}");
        if let Some(c) = &mut charts {
            c.record(&head);
        }
    }
    let mut report = Report { files, table, def, bar: progress_bar(total, args.outputs.quiet), failed: 0, charts };
    let stop = interrupt::catch();
    let outcome = match sweep.run(shard, args.threads, stop, |r| report.add(r)) {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return fail(e),
        Err(e) => return fail(e),
    };
    finish(report, outcome.complete(), outcome.ran, outcome.total)
}

/// Closes the outputs and reports how the sweep ended.
fn finish(report: Report<'_>, complete: bool, ran: u64, total: u64) -> u8 {
    if let Some(bar) = &report.bar {
        bar.finish_and_clear();
    }
    let Report { files, table, def, failed, mut charts, .. } = report;
    let (open, mut written) = match files.finish(complete) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    if let (Some(t), Some(p)) = (&table, &open) {
        let line = t.point(def, p);
        println!("{line}");
        if let Some(c) = &mut charts {
            c.record(&line);
            c.collect_point(p);
        }
    }
    if let Some(c) = charts {
        match c.write() {
            Ok(files) => written.extend(files),
            Err(e) => return fail(e),
        }
    }
    if table.is_some() && !written.is_empty() {
        println!("\nwrote {}", written.join(", "));
    }
    let _ = std::io::stdout().flush();
    if !complete {
        eprintln!(
            "interrupted: the first {} of {} finished and are written (results.json says \"complete\": false)",
            plural(ran, "scenario"),
            crate::report::group(total)
        );
        return 130;
    }
    if failed > 0 {
        eprintln!("error: {} failed (see the table)", plural(failed, "scenario"));
        return 1;
    }
    0
}

fn merge(args: MergeArgs) -> u8 {
    if args.outputs.out.is_none() && args.outputs.csv.is_none() && !args.outputs.json {
        return fail("sweep merge: expected --out DIR (or --csv FILE, or --json) for the merged results");
    }
    let merged = match read_parts(&args.parts) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let inputs: Vec<PathBuf> =
        args.parts.iter().map(|p| if p.is_dir() { p.join("results.json") } else { p.clone() }).collect();
    let input_refs: Vec<Named<'_>> = inputs.iter().map(|p| Named { flag: "part", path: p }).collect();
    let to = match check_outputs(&args.outputs, &input_refs) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let def = &merged.definition;
    let columns = Columns::new(
        def.set.iter().map(|a| a.target.clone()).collect(),
        merged.columns.statuses.clone(),
        merged.columns.limits.clone(),
        merged.columns.delayed,
    );
    let statistics = def.seeds.len() > 1;
    let files = match ResultsFiles::create(&to, def, &columns, None, statistics) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let table = (!args.outputs.json).then(|| Table::new(def, &columns, statistics));
    let mut charts = args.outputs.charts.start(def, &columns.statuses, statistics);
    if let Some(t) = &table {
        let head = format!("{}\n\n{}", t.title(def, None), t.header(def));
        println!("{head}");
        if let Some(c) = &mut charts {
            c.record(&head);
        }
    }
    let total = merged.scenarios.len() as u64;
    let mut report = Report { files, table, def, bar: None, failed: 0, charts };
    for r in merged.scenarios {
        if let Err(e) = report.add(r) {
            return fail(e);
        }
    }
    finish(report, true, total, total)
}
