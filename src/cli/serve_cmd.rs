//! `ratesim serve`: a live emulator of one plan (see [`crate::serve`]).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::limiter::KeyedLimiter;
use crate::policy::{self, Policy};
use crate::report::group;
use crate::serve::identity::Keys;
use crate::serve::log::DecisionLog;
use crate::serve::routes::{Handler, Routes};
use crate::serve::service_time::ServiceTime;
use crate::serve::{self, Backend, LocalBackend, ServeOptions, ServeReport};
use crate::time::{parse_duration, Nanos};

/// Arguments of `ratesim serve`.
#[derive(Args, Debug)]
pub(super) struct ServeArgs {
    /// Policy file.
    #[arg(long, value_name = "FILE", default_value = "policies/runinfra.toml")]
    policy: PathBuf,
    /// Plan of the policy to enforce.
    #[arg(long, value_name = "NAME", default_value = "pro")]
    plan: String,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Keys file (TOML): users and workspaces of API keys, revoked keys.
    /// Without it every Bearer key is accepted as its own user.
    #[arg(long, value_name = "FILE.toml")]
    keys: Option<PathBuf>,
    /// Service time of admitted requests: a duration (250ms), exp:MEAN,
    /// uniform:MIN:MAX or lognormal:MEDIAN:SIGMA. Concurrency permits are
    /// held for it; a prediction runs for it.
    #[arg(long, value_name = "DIST", default_value = "0")]
    service_time: String,
    /// Write every decision to this JSON Lines file (the schema of
    /// `ratesim run --decisions`, plus each arrival's details).
    #[arg(long, value_name = "FILE.jsonl")]
    log: Option<PathBuf>,
    /// Map a path to an endpoint name: `METHOD /path=NAME` renames a
    /// built-in route's endpoint (`POST /v1/chat/completions=invoke`) or
    /// adds a route (`GET /v1/models=models.list`). Repeatable.
    #[arg(long, value_name = "SPEC")]
    route: Vec<String>,
    /// Money each chat completion and prediction costs, in minor units of
    /// the policy's budget currency (paise, cents), for money budgets.
    #[arg(long, value_name = "MINOR_UNITS", default_value_t = 0)]
    price: u64,
    /// Largest request body accepted, bytes (larger: 413).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_body: usize,
    /// Seed of the service-time draws.
    #[arg(long, value_name = "N", default_value_t = 42)]
    seed: u64,
    /// Longest wait for a request's headers (then the connection is closed)
    /// and for its body (then 408).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    read_timeout: String,
    /// How long after its service time a response may take to be sent
    /// before its permits are released anyway (a client that stopped
    /// reading).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    write_timeout: String,
    /// At Ctrl-C or SIGTERM, how long requests in flight and running
    /// predictions get to finish; the rest are cut short (and logged).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    grace: String,
    /// Answer every request as admitted without asking the limiter (a
    /// baseline for measuring what the limiter adds); nothing is logged.
    #[arg(long, conflicts_with = "log")]
    no_limiter: bool,
    /// Worker threads (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    1
}

fn duration(flag: &str, text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(ns) if ns > 0 => Ok(Duration::from_nanos(ns)),
        Ok(_) => Err(format!("{flag}: expected a duration above zero, such as 10s")),
        Err(e) => Err(format!("{flag}: {e}")),
    }
}

/// Endpoint patterns of the plan's selectors that no route's endpoint name
/// matches: limits that can never apply in the emulator.
fn unreachable_patterns(policy: &Policy, plan: &str, routes: &Routes) -> Vec<(String, String)> {
    let Some(plan) = policy.plan(plan) else { return Vec::new() };
    let names: Vec<&str> =
        routes.iter().filter(|r| r.handler != Handler::Health).map(|r| r.endpoint.as_str()).collect();
    let matches = |p: &str, name: &str| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    };
    let mut out = Vec::new();
    for limit in &plan.limits {
        for p in &limit.selector.endpoints {
            if !names.iter().any(|n| matches(p, n)) {
                out.push((limit.id.clone(), p.clone()));
            }
        }
    }
    out
}

pub(super) fn run(args: ServeArgs) -> u8 {
    let policy = match policy::load(&args.policy) {
        Ok(p) => Arc::new(p),
        Err(e) => return fail(e),
    };
    let mut routes = Routes::builtin();
    for spec in &args.route {
        if let Err(e) = routes.add(spec) {
            return fail(format!("--route {spec:?}: {e}"));
        }
    }
    let service_time = match ServiceTime::parse(&args.service_time) {
        Ok(s) => s,
        Err(e) => return fail(format!("--service-time: {e}")),
    };
    let keys = match args.keys.as_deref().map(Keys::load) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => return fail(e),
    };
    let (read_timeout, write_timeout, grace) = match (
        duration("--read-timeout", &args.read_timeout),
        duration("--write-timeout", &args.write_timeout),
        duration("--grace", &args.grace),
    ) {
        (Ok(r), Ok(w), Ok(g)) => (r, w, g),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return fail(e),
    };
    let limiter = match KeyedLimiter::new(policy.clone(), &args.plan) {
        Ok(l) => l,
        Err(e) => return fail(format!("{}: {e}", args.policy.display())),
    };
    let backend: Option<Arc<dyn Backend>> =
        if args.no_limiter { None } else { Some(Arc::new(LocalBackend::new(limiter))) };
    let log = match &args.log {
        Some(path) => match DecisionLog::create(path) {
            Ok(l) => Some(Arc::new(l)),
            Err(e) => return fail(e),
        },
        None => None,
    };
    for (limit, pattern) in unreachable_patterns(&policy, &args.plan, &routes) {
        eprintln!(
            "warning: limit {limit:?} applies to endpoint {pattern:?}, which no route is named, so it never applies \
             here; name a route with --route 'METHOD /path={pattern}'"
        );
    }
    let mut options = ServeOptions::new(backend, args.addr);
    options.keys = keys;
    options.routes = routes.clone();
    options.service_time = service_time;
    options.seed = args.seed;
    options.log = log;
    options.max_body = args.max_body;
    options.price = args.price;
    options.header_timeout = read_timeout;
    options.body_timeout = read_timeout;
    options.write_timeout = write_timeout;
    options.grace = grace;
    options.threads = args.threads;
    let banner = banner(&args, &policy, &routes);
    let result = serve::run(options, |addr| {
        println!("ratesim serve: {} / {} on http://{addr}", policy.provider, args.plan);
        print!("{banner}");
        let _ = std::io::stdout().flush();
    });
    match result {
        Ok(report) => {
            print!("{}", closing(&report, args.log.as_deref()));
            let _ = std::io::stdout().flush();
            0
        }
        Err(e) => fail(e),
    }
}

/// What the server prints once it listens.
fn banner(args: &ServeArgs, policy: &Policy, routes: &Routes) -> String {
    let keys = match &args.keys {
        Some(k) => k.display().to_string(),
        None => "none (every Bearer key accepted)".into(),
    };
    let log = match &args.log {
        Some(l) => l.display().to_string(),
        None if args.no_limiter => "none (--no-limiter: no decisions)".into(),
        None => "none".into(),
    };
    let mut out = format!(
        "  policy {} ({})  ·  keys {keys}  ·  service time {}  ·  log {log}\n",
        args.policy.display(),
        policy.source.as_deref().unwrap_or("no source"),
        args.service_time.trim()
    );
    for r in routes.iter() {
        let name = match r.handler {
            Handler::Health => "(never limited)".to_string(),
            _ => format!("→ {}", r.endpoint),
        };
        out.push_str(&format!("  {:<6} {:<24} {name}\n", r.method, r.path));
    }
    out.push_str("Ctrl-C or SIGTERM stops it.\n");
    out
}

fn micros(ns: Option<Nanos>) -> String {
    ns.map_or("-".into(), |n| format!("{:.1} µs", n as f64 / 1000.0))
}

/// What the server prints when it stops.
fn closing(r: &ServeReport, log: Option<&std::path::Path>) -> String {
    let secs = r.elapsed.as_secs_f64();
    let rate = if secs > 0.0 { r.decided as f64 / secs } else { 0.0 };
    let mut out = format!(
        "stopped after {secs:.1} s: {} decisions ({} admitted, {} denied; {}/s), {} answered without the limiter, {} refused before it\n",
        group(r.decided),
        group(r.admitted),
        group(r.denied),
        group(rate.round() as u64),
        group(r.unlimited),
        group(r.rejected),
    );
    if let (Some(path), Some(lines)) = (log, r.log_lines) {
        out.push_str(&format!("  log {}: {} lines\n", path.display(), group(lines)));
    }
    if r.cut_short > 0 {
        out.push_str(&format!("  {} requests cut short at the end of the grace period\n", group(r.cut_short)));
    }
    out.push_str(&format!(
        "  server time p50 {}  p99 {}  ·  decision p50 {}  p99 {}\n",
        micros(r.server_time.p50_ns),
        micros(r.server_time.p99_ns),
        micros(r.decide_time.p50_ns),
        micros(r.decide_time.p99_ns),
    ));
    out
}
