//! `ratesim solve`: the smallest (or largest) value of one limit parameter
//! for which targets hold. The search is [`crate::whatif::solve`]; this
//! module reads the arguments and prints the search and its answer.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use super::chart_args::SolveChartArgs;
use super::interrupt;
use crate::client::ClientSpec;
use crate::report::{self, RunInfo};
use crate::time::{format_rfc3339, parse_duration, parse_rfc3339, MILLISECOND};
use crate::trace::scale::Factor;
use crate::whatif::axes::{seeds_from, SetAxis};
use crate::whatif::solve::{solve, Direction, Evaluation, Require, Solution, SolveSpec};
use crate::whatif::sweep::SweepSpec;
use crate::whatif::table::compact_duration;

/// Arguments of `ratesim solve`.
#[derive(Args, Debug)]
pub(super) struct SolveArgs {
    /// Policy file.
    #[arg(long, value_name = "FILE", default_value = "policies/runinfra.toml")]
    policy: PathBuf,
    /// The limit parameter to vary: PLAN.LIMIT.FIELD, a whole-number field
    /// (limit, burst, max, cost, reserve; a budget in minor units) or `rate`
    /// (its count per period).
    #[arg(long, value_name = "PLAN.LIMIT.FIELD")]
    vary: String,
    /// A target, METRIC OP VALUE: e.g. 'success_ratio >= 0.99',
    /// 'p99_wait <= 2s', 'denied_402 == 0'; METRIC is any results.csv
    /// column, p50_wait…max_wait or denied_STATUS. Repeat for several.
    #[arg(long = "target", value_name = "EXPR", required = true)]
    targets: Vec<String>,
    /// Plan to run (default: the plan --vary names).
    #[arg(long, value_name = "NAME")]
    plan: Option<String>,
    /// Recorded trace (.csv, .jsonl) or synthetic spec (.toml).
    #[arg(long, value_name = "FILE_OR_SPEC", default_value = "traces/steady-over.toml")]
    trace: PathBuf,
    /// Client behaviour (a preset, optionally with overrides).
    #[arg(long, value_name = "PRESET", default_value = "openai-python")]
    client: String,
    /// Find the largest value that meets the targets (default: the smallest).
    #[arg(long)]
    largest: bool,
    /// Search only LO..HI (default: from 1, upward from the policy's value).
    #[arg(long, value_name = "LO..HI")]
    range: Option<String>,
    /// Whether a value must meet the targets on every seed or on their mean.
    #[arg(long, value_name = "every|mean", default_value = "every")]
    require: String,
    /// Values evaluated evenly over the range before bisecting, to catch a
    /// non-monotone parameter.
    #[arg(long, value_name = "N", default_value_t = 8)]
    scan: u64,
    /// Seeds: comma-separated or ranges such as 1..10 (default: the spec's
    /// seed, else 42).
    #[arg(long, value_name = "N,A..B", conflicts_with = "replications")]
    seeds: Option<String>,
    /// Use N seeds (the default seed and the N − 1 after it).
    #[arg(long, value_name = "N")]
    replications: Option<u64>,
    /// Fixed overrides, PLAN.LIMIT.FIELD=VALUE (repeatable).
    #[arg(long = "set", value_name = "PLAN.LIMIT.FIELD=VALUE")]
    set: Vec<String>,
    /// Offered-load factor of the trace.
    #[arg(long, value_name = "F", default_value = "1")]
    scale: String,
    /// Key multiplier of the trace.
    #[arg(long, value_name = "N", default_value_t = 1)]
    scale_keys: u32,
    /// Virtual instant of trace offset 0 (RFC 3339). Default:
    /// 2026-01-01T00:00:00Z. A trace of RFC 3339 times starts at its first
    /// row; --start is refused with it.
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Stop each run after this much virtual time.
    #[arg(long, value_name = "DURATION")]
    until: Option<String>,
    /// Worker threads (0: one per core; at most 256).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Print the search and its answer as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    outputs: SolveChartArgs,
}

/// Prints a line and keeps it in `$buf` (for the report).
macro_rules! say {
    ($buf:expr, $($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        $buf.push_str(&line);
        $buf.push('\n');
    }};
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    1
}

fn spec(args: &SolveArgs) -> Result<SolveSpec, String> {
    let plan = match &args.plan {
        Some(p) => p.clone(),
        None => args.vary.rsplitn(3, '.').nth(2).unwrap_or("").to_string(),
    };
    let mut set = Vec::new();
    for s in &args.set {
        let axis = SetAxis::parse(s).map_err(|e| format!("--set: {e}"))?;
        if axis.values.len() != 1 {
            return Err(format!("--set {s}: solve takes one value per --set (sweep takes lists)"));
        }
        set.push(axis);
    }
    let until = match &args.until {
        Some(u) => match parse_duration(u) {
            Ok(d) if d > 0 => Some(d),
            Ok(_) => return Err("--until: expected a duration above zero, such as 24h".into()),
            Err(e) => return Err(format!("--until: {e}")),
        },
        None => None,
    };
    let default_seed = super::spec_seed(&args.trace).unwrap_or(42);
    let seeds = seeds_from(args.seeds.as_deref(), args.replications, default_seed)?;
    let range = match &args.range {
        None => None,
        Some(r) => {
            let bad = || format!("--range: expected LO..HI with whole numbers, e.g. 100..2000, found {r:?}");
            let (lo, hi) = r.split_once("..").ok_or_else(bad)?;
            Some((lo.trim().parse().map_err(|_| bad())?, hi.trim().parse().map_err(|_| bad())?))
        }
    };
    let require = match args.require.as_str() {
        "every" => Require::Every,
        "mean" => Require::Mean,
        other => return Err(format!("--require: expected every or mean, found {other:?}")),
    };
    if args.threads > crate::sim::sweep::MAX_THREADS {
        return Err(format!(
            "--threads: at most {} worker threads, found {}",
            crate::sim::sweep::MAX_THREADS,
            args.threads
        ));
    }
    ClientSpec::parse(&args.client).map_err(|e| format!("--client: {e}"))?;
    Ok(SolveSpec {
        base: SweepSpec {
            policy: args.policy.clone(),
            trace: args.trace.clone(),
            plans: vec![plan],
            set,
            scale: vec![Factor::parse(&args.scale).map_err(|e| format!("--scale: {e}"))?],
            scale_keys: vec![match args.scale_keys {
                0 => return Err("--scale-keys: expected a whole number of key copies, at least 1, found 0".into()),
                n => n,
            }],
            scale_window: None,
            clients: vec![args.client.clone()],
            seeds,
            start: args.start.as_deref().map(parse_rfc3339).transpose().map_err(|e| format!("--start: {e}"))?,
            until,
            bucket: MILLISECOND * 1000,
        },
        vary: args.vary.clone(),
        targets: args.targets.clone(),
        direction: if args.largest { Direction::Largest } else { Direction::Smallest },
        require,
        range,
        scan: args.scan,
        threads: args.threads,
    })
}

/// A metric value for people: ratios as percentages, waits as durations.
fn show(metric: &str, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if metric.ends_with("_ns") => compact_duration(x),
        Some(x) if metric.ends_with("ratio") || metric.ends_with("_rate") || metric.starts_with("rate_") => {
            format!("{:.2}%", x * 100.0)
        }
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => report::group(x as u64),
        Some(x) => format!("{x:.4}"),
    }
}

fn line(s: &Solution, e: &Evaluation, width: usize) -> String {
    let mut out = format!("  {:<width$}  {}", e.setting, if e.holds { "✓" } else { "✗" });
    for (t, o) in s.targets.iter().zip(&e.targets) {
        out.push_str(&format!("  {:>16}", show(&t.metric, o.mean)));
    }
    if !e.errors.is_empty() {
        out.push_str(&format!("  error: {}", e.errors[0]));
    }
    out
}

pub(super) fn run(args: SolveArgs) -> u8 {
    let spec = match spec(&args) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Err(e) = args.outputs.check() {
        return fail(e);
    }
    let stop = interrupt::catch();
    let quiet = args.json;
    // What is printed, kept for the report.
    let mut shown = String::new();
    if !quiet {
        let over = match (spec.require, spec.base.seeds.len()) {
            (_, 1) => format!("seed {}", spec.base.seeds[0]),
            (Require::Every, n) => format!("every one of {n} seeds"),
            (Require::Mean, n) => format!("the mean over {n} seeds"),
        };
        say!(
            shown,
            "solve: the {} {} for which {} hold{} ({over})",
            if args.largest { "largest" } else { "smallest" },
            spec.vary,
            spec.targets.join(" and "),
            if spec.targets.len() == 1 { "s" } else { "" },
        );
        say!(
            shown,
            "plan {} · client {} · trace {}\n",
            spec.base.plans[0],
            spec.base.clients[0],
            spec.base.trace.display()
        );
    }
    let width = 14;
    // Values as they are evaluated go to a terminal's stderr; the sorted
    // table below is the record.
    let live = !quiet && std::io::stderr().is_terminal();
    let mut progress = |e: &Evaluation| {
        if live {
            eprintln!("  evaluated {:<width$} {}", e.setting, if e.holds { "✓" } else { "✗" });
        }
    };
    let solution = match solve(&spec, stop, &mut progress) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if args.json {
        match serde_json::to_string_pretty(&solution) {
            Ok(j) => println!("{j}"),
            Err(e) => return fail(e),
        }
        if let Err(e) = args.outputs.write(&solution, &spec, "") {
            return fail(e);
        }
        return u8::from(solution.answer.is_none());
    }
    let mut header = format!("  {:<width$}   ", "value");
    for t in &solution.targets {
        let name = t.text.split(['<', '>', '=', '!']).next().unwrap_or(&t.text).trim();
        header.push_str(&format!("  {name:>16}"));
    }
    say!(shown, "{header}");
    for e in &solution.evaluations {
        say!(shown, "{}", line(&solution, e, width));
    }
    for n in &solution.notes {
        say!(shown, "note: {n}");
    }
    let Some(answer) = &solution.answer_setting else {
        if let Err(e) = args.outputs.write(&solution, &spec, &shown) {
            return fail(e);
        }
        return fail(solution.failure.as_deref().unwrap_or("no answer"));
    };
    let neighbour = solution.answer.and_then(|a| match solution.direction {
        Direction::Smallest => a.checked_sub(1),
        Direction::Largest => a.checked_add(1),
    });
    let neighbour = neighbour
        .and_then(|n| solution.evaluations.iter().find(|e| e.value == n))
        .map_or(String::new(), |e| format!("; {} fails", e.setting));
    say!(shown, "\nanswer: {} = {answer} ({}{neighbour})", solution.parameter, solution.unit);
    if let Some(first) = solution.verification.first() {
        say!(shown, "\nverification run at {}={answer}:", solution.parameter);
        let Some(summary) = &first.summary else {
            return fail(first.error.as_deref().unwrap_or("the verification run failed"));
        };
        let client = ClientSpec::parse(&args.client).expect("checked");
        // Checked by the solve: a trace of RFC 3339 times starts at its first row.
        let start = crate::whatif::sweep::trace_start(&spec.base).unwrap_or(crate::sim::DEFAULT_START);
        let info = RunInfo {
            provider: solution_provider(&spec),
            policy: spec.base.policy.display().to_string(),
            plan: first.at.plan.clone(),
            trace: spec.base.trace.display().to_string(),
            client: client.name.clone(),
            client_behaviour: client.describe(),
            seed: first.seed,
            start: format_rfc3339(start),
            bucket_ns: spec.base.bucket,
            version: env!("CARGO_PKG_VERSION").to_string(),
            overrides: first.at.set.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect(),
            effective_plan: first.effective_plan.clone(),
            scale: (first.at.scale != 1.0).then(|| args.scale.clone()),
            scale_keys: (first.at.scale_keys != 1).then_some(first.at.scale_keys),
        };
        let text = report::terminal_summary(&info, summary, start);
        print!("{text}");
        shown.push_str(&text);
        if solution.verification.len() > 1 {
            say!(
                shown,
                "  (the targets hold on the other {} seeds too: see the values above)",
                solution.verification.len() - 1
            );
        }
    }
    match args.outputs.write(&solution, &spec, &shown) {
        Ok(files) if !files.is_empty() => println!("\nwrote {}", files.join(", ")),
        Ok(_) => {}
        Err(e) => return fail(e),
    }
    0
}

fn solution_provider(spec: &SolveSpec) -> String {
    crate::policy::load(&spec.base.policy).map(|p| p.provider).unwrap_or_default()
}
