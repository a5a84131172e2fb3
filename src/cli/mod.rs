//! The `ratesim` command line.
//!
//! Each subcommand lives in its own module and returns an exit code; errors
//! are printed for people (file, line, field, what was expected), never as a
//! panic or a debug dump.

mod chart_args;
mod client_cmd;
mod gallery_cmd;
mod inputs;
mod interrupt;
mod outputs;
mod policy_cmd;
mod run_cmd;
mod serve_cmd;
mod solve_cmd;
mod sweep_cmd;

/// The `seed` a synthetic spec fixes, if the trace is one.
fn spec_seed(path: &std::path::Path) -> Option<u64> {
    if path.extension().is_some_and(|e| e == "toml") {
        crate::trace::synth::load_spec(path).ok().and_then(|s| s.seed())
    } else {
        None
    }
}
mod probe_cmd;
mod trace_cmd;
mod verify_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Model API rate-limit plans and the clients that meet them.
///
/// ratesim runs the same limiter engines as a production service (GCRA,
/// fixed, sliding-log and sliding-counter windows, concurrency, budgets)
/// against request traces on a virtual clock, deterministically.
#[derive(Parser, Debug)]
#[command(name = "ratesim", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Validate and summarize policy files.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Simulate a trace against a plan and report acceptance, 429s and retries.
    ///
    /// With no arguments: RunInfra Pro, one key sending 12 req/s (Poisson)
    /// for an hour, with the OpenAI Python SDK's retry behaviour.
    Run(run_cmd::RunArgs),
    /// Run every combination of plans, limit values (--set), traffic scales,
    /// clients and seeds in parallel and compare them in one table; results
    /// files, replication statistics, shards (--shard, `sweep merge`).
    Sweep(sweep_cmd::SweepCommand),
    /// Find the smallest (or largest) value of one limit parameter for which
    /// targets hold, e.g. --vary pro.rpm.rate --target 'success_ratio >= 0.99'.
    Solve(solve_cmd::SolveArgs),
    /// Emulate a provider's plan live: an HTTP server answering like the
    /// policy (OpenAI-compatible chat completions, predictions, usage),
    /// driven by the production limiter on the system clock.
    ///
    /// Point your client at it (base URL http://127.0.0.1:8080/v1) and watch
    /// it meet the plan's limits: the status, rate-limit headers and JSON
    /// error bodies are rendered from the policy exactly as the simulator's
    /// clients see them. --log records every decision; `ratesim trace
    /// from-log` turns the log into a trace that `ratesim run --client none`
    /// replays with the same decisions.
    #[command(after_help = "Example:\n  \
        ratesim serve --policy policies/runinfra.toml --plan pro --log serve.jsonl\n  \
        curl -s http://127.0.0.1:8080/v1/chat/completions -H 'Authorization: Bearer sk-test' \\\n       \
        -d '{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'")]
    Serve(serve_cmd::ServeArgs),
    /// Generate CSV traces from synthetic specs and check trace files.
    #[command(subcommand)]
    Trace(trace_cmd::TraceCommand),
    /// Check another limiter's decision log against a plan: exact
    /// agreement, classified disagreements and guarantees per limit.
    Verify(verify_cmd::VerifyArgs),
    /// Send a trace to a live limiter over HTTP at its real times, log its
    /// answers and verify them against a plan.
    Probe(probe_cmd::ProbeArgs),
    /// List client presets and explain a client's retry schedule.
    #[command(subcommand)]
    Client(client_cmd::ClientCommand),
    /// Redraw the documentation gallery (docs/gallery) by running the
    /// command of each chart, or --check that it is up to date.
    Gallery(gallery_cmd::GalleryArgs),
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Policy(cmd) => policy_cmd::run(cmd),
        Command::Run(args) => run_cmd::run(args),
        Command::Sweep(args) => sweep_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Solve(args) => solve_cmd::run(args),
        Command::Trace(cmd) => trace_cmd::run(cmd),
        Command::Verify(args) => verify_cmd::run(args),
        Command::Probe(args) => probe_cmd::run(args),
        Command::Client(cmd) => client_cmd::run(cmd),
        Command::Gallery(args) => gallery_cmd::run(args),
    };
    ExitCode::from(code)
}

/// Output piped into `head` and closed early ends the process quietly, as
/// for any Unix tool, instead of a "failed printing to stdout" panic: Rust
/// ignores SIGPIPE by default, so restore the default action.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any thread is spawned; setting
    // a signal's disposition to SIG_DFL installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
