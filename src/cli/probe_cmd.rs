//! `ratesim probe`: send a trace to a live limiter and verify its answers.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::Args;

use super::verify_cmd::{load_plan, options, plan_in, verify_and_print};
use crate::probe::{self, Probe, MAX_DURATION, MAX_REQUESTS, METHODS};
use crate::time::{format_rfc3339, parse_duration, MILLISECOND};
use crate::trace;
use crate::verify;

/// Arguments of `ratesim probe`.
#[derive(Args, Debug)]
#[command(after_help = "\
The trace's rows are sent at their times (bounded by --max-requests and --max-duration), each with \
the identity headers filled from its key, user and workspace; unauthenticated rows (auth = false) \
get none. `{endpoint}` in the URL is replaced by the row's endpoint. The answers (status and the \
rate-limit headers the policy names) are written to --log as a decision log, then verified as \
`ratesim verify` does, with the wall-clock instant the probe started as the log's start and, \
unless --tolerance is given, the longest round trip as the tolerance (the limiter decided \
somewhere between sending and the answer).

Only http:// URLs on a loopback host (127.0.0.0/8, ::1, localhost) are probed, unless \
--allow-remote is given; redirects are not followed and no proxy is used.

Exit status: 0 if the limiter agrees with the policy, 1 if it does not, 2 if the probe could not \
run (bad arguments, a trace error, a request without an answer).

Example:
  ratesim probe 'http://127.0.0.1:8080/v1/{endpoint}' --policy policies/runinfra.toml --plan pro \\
      --trace traces/sample.csv --log /tmp/probe.jsonl")]
pub(super) struct ProbeArgs {
    /// The endpoint: http://HOST:PORT/PATH, `{endpoint}` replaced by each
    /// row's endpoint.
    #[arg(value_name = "URL")]
    url: String,
    /// Policy file.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Plan of the policy that the limiter enforces.
    #[arg(long, value_name = "NAME")]
    plan: String,
    /// Recorded trace (.csv, .jsonl) or synthetic spec (.toml).
    #[arg(long, value_name = "FILE_OR_SPEC")]
    trace: PathBuf,
    /// Seed of a synthetic spec. Default: the spec's seed, else 42.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Trace time per real time (2: twice as fast).
    #[arg(long, value_name = "FACTOR", default_value = "1")]
    speed: f64,
    /// Identity header for authenticated rows, NAME: VALUE with {key},
    /// {user}, {workspace} (a row without a user or workspace gives its
    /// key). Repeat for several; `none` sends none.
    #[arg(long, value_name = "HEADER", default_value = "Authorization: Bearer {key}")]
    identity: Vec<String>,
    /// HTTP method: GET, HEAD, DELETE, or POST, PUT, PATCH with an empty body.
    #[arg(long, value_name = "METHOD", default_value = "GET")]
    method: String,
    /// Where to write the decision log (JSON Lines).
    #[arg(long, value_name = "FILE.jsonl", default_value = "probe.jsonl")]
    log: PathBuf,
    /// Send at most this many rows.
    #[arg(long, value_name = "N", default_value = "1000")]
    max_requests: usize,
    /// Send only rows within this much trace time of its start.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    max_duration: String,
    /// Parallel connections (requests due at once go out together).
    #[arg(long, value_name = "N", default_value = "32")]
    connections: usize,
    /// Tolerance of `verify` (default: the longest round trip, rounded up
    /// to a millisecond).
    #[arg(long, value_name = "DURATION")]
    tolerance: Option<String>,
    /// Verify against the plan as a known implementation enforces it
    /// (python-limits, redis-incr-expire, envoy-local, nginx).
    #[arg(long, value_name = "NAME")]
    dialect: Option<String>,
    /// Allow a URL whose host is not loopback (a host you run).
    #[arg(long)]
    allow_remote: bool,
    /// Print the verification report as JSON.
    #[arg(long)]
    json: bool,
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    2
}

pub(super) fn run(args: ProbeArgs) -> u8 {
    let (policy, index) = match load_plan(&args.policy, &args.plan) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let plan = match plan_in(&policy, index, &args.plan, args.dialect.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return fail(format!("--speed: expected a factor above 0, such as 1 or 2.5, found {}", args.speed));
    }
    if args.max_requests == 0 || args.max_requests > MAX_REQUESTS {
        return fail(format!("--max-requests: expected 1 to {MAX_REQUESTS}, found {}", args.max_requests));
    }
    let max_duration = match parse_duration(&args.max_duration) {
        Ok(d) if d > 0 && d <= MAX_DURATION => d,
        Ok(_) => return fail("--max-duration: expected a duration above 0 and at most 1h"),
        Err(e) => return fail(format!("--max-duration: {e}")),
    };
    if args.connections == 0 || args.connections > 256 {
        return fail(format!("--connections: expected 1 to 256, found {}", args.connections));
    }
    let method = args.method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return fail(format!("--method: expected one of {}, found {:?}", METHODS.join(", "), args.method));
    }
    let mut identity = Vec::new();
    for h in &args.identity {
        if h == "none" {
            continue;
        }
        match h.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() && !name.contains(' ') => {
                identity.push((name.trim().to_string(), value.trim().to_string()))
            }
            _ => return fail(format!("--identity: expected NAME: VALUE, such as 'X-Api-Key: {{key}}', found {h:?}")),
        }
    }
    let tolerance = match args.tolerance.as_deref().map(parse_duration) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => return fail(format!("--tolerance: {e}")),
    };
    let same_file = |a: &PathBuf, b: &PathBuf| {
        std::fs::canonicalize(a).ok().zip(std::fs::canonicalize(b).ok()).is_some_and(|(a, b)| a == b)
    };
    if same_file(&args.log, &args.trace) {
        return fail(format!("--log {} is the trace; write the log elsewhere", args.log.display()));
    }
    let config = Probe {
        url: args.url.clone(),
        method,
        identity,
        speed: args.speed,
        max_requests: args.max_requests,
        max_duration,
        connections: args.connections,
        allow_remote: args.allow_remote,
        ..Probe::default()
    };
    if let Err(e) = probe::check_target(&config.url, config.allow_remote) {
        return fail(e);
    }
    let seed = args.seed.or_else(|| super::spec_seed(&args.trace)).unwrap_or(42);
    let (rows, left_out) = match trace::open(&args.trace, Some(seed)).and_then(|mut t| probe::rows(&mut t, &config)) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if rows.is_empty() {
        return fail(format!("{}: no rows to send within the bounds", args.trace.display()));
    }
    let mut log = match File::create(&args.log) {
        Ok(f) => BufWriter::new(f),
        Err(e) => return fail(format!("cannot create {}: {e}", args.log.display())),
    };
    let span = rows.last().map_or(0, |r| r.0);
    eprintln!(
        "probing {}: {} requests over {} s of trace at speed {}{}",
        config.url,
        rows.len(),
        crate::time::format_decimal_seconds(span),
        args.speed,
        if left_out > 0 { format!(" ({left_out} rows beyond the bounds left out)") } else { String::new() }
    );
    let probed = match probe::run(&config, &policy.response, rows, left_out) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if let Err(e) = probe::write_log(&mut log, &probed, &policy.response).and_then(|()| log.flush()) {
        return fail(format!("cannot write {}: {e}", args.log.display()));
    }
    let tolerance = tolerance.unwrap_or(probed.max_round_trip.div_ceil(MILLISECOND).max(1) * MILLISECOND);
    let start = format_rfc3339(probed.started);
    let mut options = match options("0s", &start) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    options.tolerance = tolerance;
    println!(
        "sent {} requests to {}: latest {} after its time, longest round trip {}; wrote {}",
        probed.exchanges.len(),
        config.url,
        verify::report::span(probed.max_late),
        verify::report::span(probed.max_round_trip),
        args.log.display()
    );
    println!(
        "verify again: ratesim verify --policy {} --plan {} --start {start} --tolerance {}ns{} {}\n",
        args.policy.display(),
        args.plan,
        tolerance,
        args.dialect.as_ref().map_or(String::new(), |d| format!(" --dialect {d}")),
        args.log.display()
    );
    verify_and_print(&policy, &plan, &args.log, &options, args.dialect.as_deref(), args.json)
}
