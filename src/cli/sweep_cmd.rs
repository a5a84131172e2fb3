//! `ratesim sweep`: every combination of plans, clients and seeds, in parallel.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::client::ClientSpec;
use crate::policy;
use crate::report::{group, human_duration};
use crate::sim::sweep::{run_sweep, Scenario};
use crate::sim::SimConfig;
use crate::time::parse_rfc3339;

/// Arguments of `ratesim sweep`.
#[derive(Args, Debug)]
pub(super) struct SweepArgs {
    /// Policy file.
    #[arg(long, value_name = "FILE", default_value = "policies/runinfra.toml")]
    policy: PathBuf,
    /// Plans to compare, comma-separated (default: every plan of the policy).
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    plans: Vec<String>,
    /// Recorded trace (.csv, .jsonl) or synthetic spec (.toml).
    #[arg(long, value_name = "FILE_OR_SPEC", default_value = "traces/steady-over.toml")]
    trace: PathBuf,
    /// Client behaviours to compare, separated by `;` (a preset may carry
    /// `,key=value` overrides).
    #[arg(long, value_name = "A;B;...", value_delimiter = ';', default_value = "none;openai-python;naive-immediate")]
    clients: Vec<String>,
    /// Seeds, comma-separated. Default: the spec's own seed, else 42 (as
    /// `ratesim run`).
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    seeds: Vec<u64>,
    /// Virtual instant of trace offset 0 (RFC 3339).
    #[arg(long, value_name = "TIME", default_value = "2026-01-01T00:00:00Z")]
    start: String,
    /// Worker threads (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Write the table as CSV to this file.
    #[arg(long, value_name = "FILE.csv")]
    csv: Option<PathBuf>,
}

fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    1
}

pub(super) fn run(args: SweepArgs) -> u8 {
    let policy = match policy::load(&args.policy) {
        Ok(p) => Arc::new(p),
        Err(e) => return fail(e),
    };
    let plans: Vec<String> =
        if args.plans.is_empty() { policy.plans.iter().map(|p| p.name.clone()).collect() } else { args.plans.clone() };
    for p in &plans {
        if policy.plan(p).is_none() {
            return fail(format!(
                "--plans: no plan named {p:?} in {}; its plans are: {}",
                args.policy.display(),
                policy.plan_names().join(", ")
            ));
        }
    }
    let mut clients = Vec::new();
    for c in &args.clients {
        match ClientSpec::parse(c) {
            Ok(spec) => clients.push(spec),
            Err(e) => return fail(format!("--clients: {e}")),
        }
    }
    let start = match parse_rfc3339(&args.start) {
        Ok(t) => t,
        Err(e) => return fail(format!("--start: {e}")),
    };
    let seeds =
        if args.seeds.is_empty() { vec![super::spec_seed(&args.trace).unwrap_or(42)] } else { args.seeds.clone() };
    let mut scenarios = Vec::new();
    for plan in &plans {
        for client in &clients {
            for &seed in &seeds {
                scenarios.push(Scenario {
                    policy: policy.clone(),
                    plan: plan.clone(),
                    trace: args.trace.clone(),
                    config: SimConfig { start, seed, client: client.clone(), ..SimConfig::default() },
                });
            }
        }
    }
    let results = match run_sweep(&scenarios, args.threads) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut table = String::new();
    let mut csv = String::from("plan,client,seed,requests,attempts,retry_amplification,success_ratio,first_attempt_denial_rate,rate_429,give_up_ratio,p50_ns,p99_ns,max_ns\n");
    let _ = writeln!(
        table,
        "{} · trace {} · {} scenarios\n\n{:<12} {:<22} {:>6} {:>10} {:>10} {:>7} {:>9} {:>9} {:>9} {:>11}",
        policy.provider,
        args.trace.display(),
        scenarios.len(),
        "plan",
        "client",
        "seed",
        "requests",
        "attempts",
        "ampl.",
        "success",
        "429 rate",
        "gave up",
        "p99 wait"
    );
    let mut failed = false;
    for (sc, r) in scenarios.iter().zip(&results) {
        match r {
            Ok(s) => {
                let p99 = s.time_to_success.p99_ns;
                let _ = writeln!(
                    table,
                    "{:<12} {:<22} {:>6} {:>10} {:>10} {:>6.2}× {:>8.1}% {:>8.1}% {:>8.1}% {:>11}",
                    sc.plan,
                    sc.config.client.name,
                    sc.config.seed,
                    group(s.requests),
                    group(s.attempts),
                    s.retry_amplification,
                    s.success_ratio * 100.0,
                    s.rate_429 * 100.0,
                    s.give_up_ratio * 100.0,
                    p99.map_or("-".into(), human_duration)
                );
                let opt = |v: Option<u64>| v.map_or(String::new(), |x| x.to_string());
                let _ = writeln!(
                    csv,
                    "{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{},{},{}",
                    sc.plan,
                    sc.config.client.name.replace(',', ";"),
                    sc.config.seed,
                    s.requests,
                    s.attempts,
                    s.retry_amplification,
                    s.success_ratio,
                    s.first_attempt_denial_rate,
                    s.rate_429,
                    s.give_up_ratio,
                    opt(s.time_to_success.p50_ns),
                    opt(p99),
                    opt(s.time_to_success.max_ns)
                );
            }
            Err(e) => {
                failed = true;
                let _ =
                    writeln!(table, "{:<12} {:<22} {:>6} error: {e}", sc.plan, sc.config.client.name, sc.config.seed);
            }
        }
    }
    print!("{table}");
    if let Some(path) = &args.csv {
        if let Err(e) = std::fs::write(path, csv) {
            return fail(format!("cannot write {}: {e}", path.display()));
        }
        println!("\nwrote {}", path.display());
    }
    u8::from(failed)
}
