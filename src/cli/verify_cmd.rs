//! `ratesim verify`: check another limiter's decision log against a plan.

use std::path::PathBuf;

use clap::Args;

use crate::engines::Dialect;
use crate::policy::{self, Plan, Policy};
use crate::time::{parse_duration, parse_rfc3339};
use crate::verify::{self, LogReader, Options};

/// Arguments of `ratesim verify`.
#[derive(Args, Debug)]
#[command(after_help = "\
The log (.csv, .jsonl or .ndjson) has the columns of a recorded trace (t, key, user, workspace, \
endpoint, auth, tokens, cost, duration) plus what the limiter answered: `allowed` (true/false) or \
the HTTP `status`, and optionally `remaining`, `retry_after` (seconds, as the header) or \
`retry_after_ns`, `reset` (Unix seconds or RFC 3339), `reset_after` or `reset_ns`, and `limit`. \
The time is `t` (decimal seconds since the start, or RFC 3339) or `t_ns` (ns since the start). \
`ratesim run --decisions FILE.jsonl` writes such a log.

Exit status: 0 if the limiter agrees with the policy (every disagreement within the tolerance, \
every guarantee held), 1 if it does not, 2 if the log or the policy could not be read.

Example:
  ratesim run --trace traces/sample.csv --client none --decisions /tmp/d.jsonl --quiet
  ratesim verify --policy policies/runinfra.toml --plan pro /tmp/d.jsonl")]
pub(super) struct VerifyArgs {
    /// The decision log (.csv, .jsonl, .ndjson).
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// Policy file.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Plan of the policy that the limiter enforces.
    #[arg(long, value_name = "NAME")]
    plan: String,
    /// How far a logged instant may be from the limiter's own clock:
    /// disagreements that vanish when the request is moved this much
    /// earlier or later are excused (and counted apart), and guarantees
    /// count only certain violations. E.g. 5ms. Default 0 (exact).
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    tolerance: String,
    /// Instant of offset 0 for logs with offsets (t_ns, decimal t), as in
    /// `ratesim run --start`: aligned windows and calendar budgets depend
    /// on it.
    #[arg(long, value_name = "TIME", default_value = "2026-01-01T00:00:00Z")]
    start: String,
    /// Verify against the plan as a known implementation enforces it:
    /// python-limits, redis-incr-expire, envoy-local or nginx (see README,
    /// "Limiter dialects"). Statuses stay the policy's.
    #[arg(long, value_name = "NAME")]
    dialect: Option<String>,
    /// Print the report as JSON (every instant and span in ns).
    #[arg(long)]
    json: bool,
}

/// Exit status when the log could not be checked.
const CANNOT: u8 = 2;

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    CANNOT
}

/// Loads `path` and finds plan `name` in it; the error is for people.
pub(super) fn load_plan(path: &std::path::Path, name: &str) -> Result<(Policy, usize), String> {
    let policy = policy::load(path).map_err(|e| e.to_string())?;
    match policy.plans.iter().position(|p| p.name == name) {
        Some(i) => Ok((policy, i)),
        None => Err(format!(
            "{}: no plan named {name:?}; its plans are: {}",
            path.display(),
            policy.plan_names().join(", ")
        )),
    }
}

/// Plan `index` of `policy` (called `name` on the command line), read in
/// `dialect` if given.
pub(super) fn plan_in(policy: &Policy, index: usize, name: &str, dialect: Option<&str>) -> Result<Plan, String> {
    let plan = &policy.plans[index];
    let Some(d) = dialect else { return Ok(plan.clone()) };
    let dialect = Dialect::parse(d)
        .ok_or_else(|| format!("--dialect: unknown dialect {d:?}; expected one of {}", Dialect::names()))?;
    verify::in_dialect(plan, dialect).map_err(|e| format!("--dialect {d}: plan {name:?}, {e}"))
}

/// Verifies `log` against `plan` and prints the report (text or JSON);
/// the exit status: 0 pass, 1 fail, 2 cannot check.
pub(super) fn verify_and_print(
    policy: &Policy,
    plan: &Plan,
    log: &std::path::Path,
    options: &Options,
    dialect: Option<&str>,
    json: bool,
) -> u8 {
    let mut reader = match LogReader::open(log) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let mut report = match verify::verify(policy, plan, &mut reader, options) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    report.dialect = dialect.map(str::to_string);
    if json {
        println!("{}", serde_json::to_string_pretty(&verify::report::json(&report)).expect("JSON values serialize"));
    } else {
        print!("{}", verify::report::text(&report));
    }
    if report.pass() {
        0
    } else {
        1
    }
}

/// Parses `--tolerance` and `--start`.
pub(super) fn options(tolerance: &str, start: &str) -> Result<Options, String> {
    let tolerance = parse_duration(tolerance).map_err(|e| format!("--tolerance: {e}"))?;
    let start = parse_rfc3339(start).map_err(|e| format!("--start: {e}"))?;
    Ok(Options { start, tolerance })
}

pub(super) fn run(args: VerifyArgs) -> u8 {
    let (policy, index) = match load_plan(&args.policy, &args.plan) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let plan = match plan_in(&policy, index, &args.plan, args.dialect.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let options = match options(&args.tolerance, &args.start) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    verify_and_print(&policy, &plan, &args.log, &options, args.dialect.as_deref(), args.json)
}
