//! `ratesim serve` under load from wrk (Debian), on loopback, bounded in
//! time (2 s; `RATESIM_SOAK=1` for 30 s): every decision reaches the log,
//! and the log's arrivals replayed through the simulator give the same
//! decisions, so the admitted count is exactly what the policy allows for
//! them. The run's figures (decisions per second, server time with and
//! without the limiter) are printed; docs/PERFORMANCE.md records them from
//! a longer run. Nothing here is timed: only counts are asserted.

#[allow(dead_code)] // the property-test helpers of `common` are not used here
mod common;

use std::path::Path;
use std::process::Command;

use common::peer::require;
use common::serve::{replay, schema_lines, scratch, Server};

/// Runs wrk against `server` and returns its report and request count.
fn wrk(server: &Server, seconds: u64) -> (String, u64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/wrk/chat.lua");
    let out = Command::new(require("wrk"))
        .args(["-t2", "-c64", &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(server.url())
        .env("RATESIM_KEYS", "300")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "wrk: {report}{}", String::from_utf8_lossy(&out.stderr));
    let requests = report
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").and_then(|(n, _)| n.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no request count in {report}"));
    (report, requests)
}

/// The number before `word` in the server's closing line.
fn figure(out: &str, word: &str) -> u64 {
    let line = out.lines().find(|l| l.starts_with("stopped after")).unwrap_or_else(|| panic!("{out}"));
    let before = &line[..line.find(word).unwrap_or_else(|| panic!("{word} in {line}"))];
    let n = before.trim_end().rsplit([' ', '(']).next().unwrap();
    n.replace(',', "").parse().unwrap_or_else(|_| panic!("{word} in {line}"))
}

#[test]
fn under_load_every_decision_is_logged_and_replays_exactly() {
    let seconds = if std::env::var_os("RATESIM_SOAK").is_some() { 30 } else { 2 };
    let dir = scratch("load");
    // WriftAI: 3 requests/s per key with a burst of 9, so 300 keys at a few
    // thousand requests per second see both answers.
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/wriftai.toml");
    let server = Server::start(&dir, "load", &policy, "default", &[]);
    let (report, sent) = wrk(&server, seconds);
    let (out, log) = server.stop();
    println!("wrk, 2 threads, 64 connections, 300 keys, WriftAI default:\n{report}\nratesim serve:\n{out}");
    let decided = figure(&out, "decisions");
    assert_eq!(log.len() as u64, decided, "one log line per decision");
    // wrk stops counting with requests still in flight; the server decided them.
    assert!(decided >= sent && decided - sent <= 64, "wrk sent {sent}, the server decided {decided}");
    let admitted = log.iter().filter(|l| l["allowed"] == true).count() as u64;
    assert_eq!(admitted, figure(&out, "admitted"));
    assert!(admitted > 0 && admitted < decided, "the load is above the plan's allowance: some pass, some do not");
    let replayed = replay(&dir, &dir.join("load.jsonl"), &policy, "default");
    let logged = schema_lines(&log);
    assert_eq!(logged.len(), replayed.len());
    let differing = logged.iter().zip(&replayed).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "decisions differing between the server and the simulator's replay");
    let replay_admitted = replayed.iter().filter(|l| l.contains("\"allowed\":true")).count() as u64;
    assert_eq!(replay_admitted, admitted, "the policy allows exactly what the server admitted");

    // The same load without the limiter: the baseline of the server time.
    let baseline = Server::start(&dir, "baseline", &policy, "default", &["--no-limiter"]);
    let (report, _) = wrk(&baseline, seconds);
    let (out, _) = baseline.stop_with(libc::SIGTERM);
    println!("the same without the limiter (--no-limiter):\n{report}\nratesim serve:\n{out}");
}
