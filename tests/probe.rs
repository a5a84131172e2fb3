//! `ratesim probe` against live limiters: `ratesim serve` (the production
//! `KeyedLimiter` on the system clock) and nginx `limit_req` on loopback
//! (Debian's nginx, installed by `.ci/install-peers`), each started and
//! stopped by the test. A plan that says what nginx does agrees with it; a plan
//! that claims half nginx's rate does not, and the report names the
//! over-admissions. Targets other than loopback are refused before anything
//! is sent.

#[path = "common/peer.rs"]
mod peer;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use peer::{free_port, require, Peer};
use serde_json::Value;

fn ratesim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ratesim")).args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ratesim-probe-{}-{name}", std::process::id()));
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// nginx with one `limit_req` zone keyed by the Authorization header:
/// `rate` per second, `burst`, `nodelay`, refusals answered 429; admitted
/// requests get a static file.
fn start_nginx(dir: &Path, port: u16, rate: u32, burst: u32) -> Peer {
    let nginx = require("nginx");
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid nginx.pid;
error_log logs/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    limit_req_zone $http_authorization zone=z:1m rate={rate}r/s;
    server {{
        listen 127.0.0.1:{port};
        location /v1/ {{ limit_req zone=z burst={burst} nodelay; limit_req_status 429; alias {www}/; }}
    }}
}}
"#,
        www = dir.join("www").display()
    );
    std::fs::write(dir.join("www/index.html"), "ok\n").unwrap();
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut peer = Peer::spawn(
        "nginx",
        Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("logs/error.log")),
        Some(&dir.join("nginx.out")),
    );
    peer.wait_for_port(port, Duration::from_secs(10));
    peer
}

/// Bursts on three keys, then trickles: about 3 s, with refusals.
fn trace() -> String {
    let mut rows = String::from("t,key\n");
    let mut t = 0u64; // ms
    for round in 0..6u64 {
        for k in 0..3 {
            for _ in 0..(4 + (round + k) % 5) {
                rows.push_str(&format!("{}.{:03},key-{k}\n", t / 1000, t % 1000));
            }
        }
        for i in 0..8u64 {
            t += [30, 70, 100, 120][((round + i) % 4) as usize];
            rows.push_str(&format!("{}.{:03},key-{}\n", t / 1000, t % 1000, (round + i) % 3));
        }
        t += 150;
    }
    rows
}

const POLICY: &str = r#"
provider = "nginx on loopback"

[[plan]]
name = "api"
[[plan.limit]]
id = "rps"
dialect = "nginx"
rate = "10/s"
burst = 4
nodelay = true
status = 429

[[plan]]
name = "claimed"
description = "what the limit's documentation might claim: half nginx's rate"
[[plan.limit]]
id = "rps"
dialect = "nginx"
rate = "5/s"
burst = 4
nodelay = true
status = 429
"#;

fn probe(dir: &TempDir, port: u16, plan: &str) -> (i32, Value, String) {
    let policy = dir.write("policy.toml", POLICY);
    let trace = dir.write("trace.csv", &trace());
    let log = dir.0.join(format!("{plan}.jsonl")).display().to_string();
    let url = format!("http://127.0.0.1:{port}/v1/");
    let (code, out, err) =
        ratesim(&["probe", &url, "--policy", &policy, "--plan", plan, "--trace", &trace, "--log", &log, "--json"]);
    let json_start = out.find('{').unwrap_or_else(|| panic!("no report:\n{out}\n{err}"));
    let report: Value = serde_json::from_str(&out[json_start..]).unwrap_or_else(|e| panic!("{e}: {out}"));
    (code, report, format!("{out}\n{err}"))
}

const SERVE_POLICY: &str = r#"
provider = "ratesim serve on loopback"

[[plan]]
name = "api"
[[plan.limit]]
id = "rps"
algorithm = "gcra"
rate = "10/s"
burst = 4
status = 429

[[plan]]
name = "claimed"
description = "what the limit's documentation might claim: half the served rate"
[[plan.limit]]
id = "rps"
algorithm = "gcra"
rate = "5/s"
burst = 4
status = 429
"#;

/// `ratesim serve` enforcing plan `api` of [`SERVE_POLICY`] on `GET /v1/ping`.
fn start_serve(dir: &TempDir, port: u16) -> Peer {
    let policy = dir.write("serve-policy.toml", SERVE_POLICY);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ratesim"));
    cmd.args(["serve", "--policy", &policy, "--plan", "api", "--addr", &format!("127.0.0.1:{port}")]);
    cmd.args(["--route", "GET /v1/ping=ping"]);
    let mut serve = Peer::spawn("ratesim serve", &mut cmd, Some(&dir.0.join("serve.out")));
    serve.wait_for_port(port, Duration::from_secs(10));
    serve
}

fn probe_serve(dir: &TempDir, port: u16, plan: &str) -> (i32, Value, String) {
    let policy = dir.write("serve-policy.toml", SERVE_POLICY);
    let trace = dir.write("trace.csv", &trace());
    let url = format!("http://127.0.0.1:{port}/v1/ping");
    let log = dir.0.join(format!("serve-{plan}.jsonl")).display().to_string();
    let (code, out, err) =
        ratesim(&["probe", &url, "--policy", &policy, "--plan", plan, "--trace", &trace, "--log", &log, "--json"]);
    let json_start = out.find('{').unwrap_or_else(|| panic!("no report:\n{out}\n{err}"));
    let report: Value = serde_json::from_str(&out[json_start..]).unwrap_or_else(|e| panic!("{e}: {out}"));
    (code, report, format!("{out}\n{err}"))
}

#[test]
fn probing_ratesim_serve_agrees_with_its_plan() {
    let dir = TempDir::new("serve");
    let port = free_port();
    let _serve = start_serve(&dir, port);
    let (code, r, shown) = probe_serve(&dir, port, "api");
    let decisions = r["decisions"].as_u64().unwrap();
    let (agree, excused) = (r["agree"].as_u64().unwrap(), r["excused"].as_u64().unwrap());
    println!(
        "ratesim serve vs its plan: {agree} of {decisions} agree exactly, {excused} within the tolerance of {} ns",
        r["tolerance_ns"]
    );
    assert_eq!(code, 0, "{shown}");
    assert_eq!(agree + excused, decisions, "{shown}");
    let admitted = r["limiter_admitted"].as_u64().unwrap();
    assert!(admitted < decisions && admitted > decisions / 3, "refusals and admissions: {shown}");
    assert!(r["guarantees"][0]["holds"].as_bool().unwrap(), "{shown}");
}

#[test]
fn probing_ratesim_serve_against_a_plan_it_does_not_enforce_fails() {
    let dir = TempDir::new("serve-claimed");
    let port = free_port();
    let _serve = start_serve(&dir, port);
    let (code, r, shown) = probe_serve(&dir, port, "claimed");
    assert_eq!(code, 1, "{shown}");
    assert!(r["classes"]["over_admission"]["count"].as_u64().unwrap() > 0, "{shown}");
}

#[test]
fn probing_nginx_limit_req_agrees_with_its_dialect() {
    let dir = TempDir::new("agree");
    let port = free_port();
    let _nginx = start_nginx(&dir.0, port, 10, 4);
    let (code, r, shown) = probe(&dir, port, "api");
    let decisions = r["decisions"].as_u64().unwrap();
    let (agree, excused) = (r["agree"].as_u64().unwrap(), r["excused"].as_u64().unwrap());
    println!(
        "nginx limit_req vs the nginx dialect: {agree} of {decisions} agree exactly, {excused} within the tolerance of {} ns",
        r["tolerance_ns"]
    );
    assert_eq!(code, 0, "{shown}");
    assert_eq!(agree + excused, decisions, "{shown}");
    let admitted = r["limiter_admitted"].as_u64().unwrap();
    assert!(admitted < decisions && admitted > decisions / 3, "refusals and admissions: {shown}");
    assert_eq!(r["compared"]["status"].as_u64().unwrap(), decisions - admitted);
    assert!(r["guarantees"][0]["holds"].as_bool().unwrap());
    // The log is a decision log `ratesim verify` reads on its own.
    let log = std::fs::read_to_string(dir.0.join("api.jsonl")).unwrap();
    assert_eq!(log.lines().count() as u64, decisions);
    let first: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert!(first["t_ns"].is_u64() && first["received_ns"].is_u64() && first["status"].is_u64(), "{first}");
}

#[test]
fn probing_nginx_against_a_plan_it_does_not_enforce_fails() {
    let dir = TempDir::new("claimed");
    let port = free_port();
    let _nginx = start_nginx(&dir.0, port, 10, 4);
    let (code, r, shown) = probe(&dir, port, "claimed");
    assert_eq!(code, 1, "{shown}");
    assert!(r["classes"]["over_admission"]["count"].as_u64().unwrap() > 0, "{shown}");
    assert_eq!(r["guarantees"][0]["holds"], false, "nginx admits twice the claimed rate: {shown}");
}

#[test]
fn only_loopback_http_targets_are_probed() {
    let dir = TempDir::new("targets");
    let policy = dir.write("policy.toml", POLICY);
    let trace = dir.write("trace.csv", "t,key\n0,k\n");
    let log = dir.0.join("x.jsonl").display().to_string();
    for (url, expected) in [
        ("http://192.0.2.1:8080/v1/", "192.0.2.1 is not a loopback address"),
        ("http://example.com/", "example.com is not a loopback address"),
        ("https://127.0.0.1/", "expected an http:// URL"),
    ] {
        let (code, _, err) =
            ratesim(&["probe", url, "--policy", &policy, "--plan", "api", "--trace", &trace, "--log", &log]);
        assert_eq!(code, 2, "{url}");
        assert!(err.contains(expected), "{url}: {err}");
        assert!(!Path::new(&log).exists(), "{url}: nothing is written or sent");
    }
    let (code, _, err) = ratesim(&[
        "probe",
        "http://[::1]:9/",
        "--policy",
        &policy,
        "--plan",
        "api",
        "--trace",
        &trace,
        "--log",
        &log,
        "--identity",
        "Bearer {key}",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--identity: expected NAME: VALUE"), "{err}");
}
