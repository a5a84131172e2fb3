//! The `ratesim` binary as a new user meets it: help texts, the default run,
//! output files and their determinism, trace generation and replay, sweeps,
//! policy and trace checks, and clear errors (never a panic) on bad input.
//!
//! Every command runs from the crate root, so the shipped `policies/` and
//! `traces/` resolve as in the README; scratch files go to unique temporary
//! directories that are removed at the end of each test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

/// What one invocation printed and returned.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
    cmd: String,
}

impl Out {
    fn context(&self) -> String {
        format!("`{}` exited {}\n--- stdout\n{}\n--- stderr\n{}", self.cmd, self.code, self.stdout, self.stderr)
    }
}

fn ratesim(args: &[&str]) -> Out {
    ratesim_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// Runs `ratesim` in `dir`.
fn ratesim_in(dir: &Path, args: &[&str]) -> Out {
    let output = Command::new(env!("CARGO_BIN_EXE_ratesim"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the ratesim binary runs");
    let out = Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        cmd: format!("(in {}) ratesim {}", dir.display(), args.join(" ")),
    };
    assert!(!out.stderr.contains("panicked"), "panic in {}", out.context());
    out
}

/// Runs a command that must succeed.
fn ok(args: &[&str]) -> Out {
    let out = ratesim(args);
    assert_eq!(out.code, 0, "expected success: {}", out.context());
    out
}

/// Runs a command that must fail with exit code 1 and an `error: ...` line
/// on stderr; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = ratesim(args);
    assert_eq!(out.code, 1, "expected exit code 1: {}", out.context());
    assert!(out.stderr.starts_with("error: "), "expected `error: ...` on stderr: {}", out.context());
    out.stderr
}

fn assert_mentions(text: &str, parts: &[&str], what: &str) {
    for part in parts {
        assert!(text.contains(part), "{what} should mention {part:?}:\n{text}");
    }
}

/// A scratch directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ratesim-cli-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    /// `name` inside the directory, as a string for the command line.
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().expect("temporary paths are UTF-8").to_string()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write a scratch file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn json(path: impl AsRef<Path>) -> Value {
    let text = read(path.as_ref());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.as_ref().display()))
}

/// Every file of a directory (recursively), by relative path.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("list a directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let bytes = std::fs::read(&path).expect("read an output file");
                files.insert(path.strip_prefix(root).expect("inside").to_path_buf(), bytes);
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// Collapses the line wrapping of a help text so that option lists can be
/// searched (clap may break a line at a space or after a hyphen).
fn unwrap_help(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace("- ", "-")
}

/// Exact decimal seconds to nanoseconds (`1.5` → 1_500_000_000).
fn decimal_ns(text: &str) -> u64 {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac = format!("{frac:0<9}");
    int.parse::<u64>().unwrap() * 1_000_000_000 + frac.parse::<u64>().unwrap()
}

/// The (t in ns, key) of each row of a simple CSV trace with `t` and `key`
/// as its first two columns and no quoted fields.
fn csv_rows(path: &str) -> Vec<(u64, String)> {
    let text = read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path));
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("t,key,"), "{path}: header starts with t,key");
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split(',');
            (decimal_ns(f.next().unwrap()), f.next().unwrap().to_string())
        })
        .collect()
}

/// The names after the last `: ` of a message, split at `, `.
fn listed_after_colon(message: &str) -> Vec<String> {
    let list = message.trim().rsplit_once(": ").expect("a list after a colon").1;
    list.split(", ").map(str::to_string).collect()
}

// ---------------------------------------------------------------------------
// Help and version.

#[test]
fn help_lists_every_subcommand_and_option() {
    let top = ok(&["--help"]).stdout;
    assert_mentions(
        &top,
        &["Usage: ratesim", "policy", "run", "sweep", "trace", "--version", "--help"],
        "ratesim --help",
    );

    let run = unwrap_help(&ok(&["run", "--help"]).stdout);
    assert_mentions(
        &run,
        &[
            "--policy",
            "--plan",
            "--trace",
            "--client",
            "--seed",
            "--start",
            "--bucket",
            "--out",
            "--decisions",
            "--quiet",
            "--allow-huge",
            "policies/runinfra.toml",
            "traces/steady-over.toml",
            "openai-python",
        ],
        "ratesim run --help",
    );
    // Every preset the CLI accepts is named in the help of --client.
    let err = fails(&["run", "--client", "no-such-preset", "--trace", "traces/sample.csv"]);
    for preset in listed_after_colon(&err) {
        assert!(run.contains(&preset), "ratesim run --help should name the preset {preset:?}:\n{run}");
    }

    let policy = ok(&["policy", "--help"]).stdout;
    assert_mentions(&policy, &["check", "explain"], "ratesim policy --help");
    let sweep = unwrap_help(&ok(&["sweep", "--help"]).stdout);
    assert_mentions(
        &sweep,
        &["--policy", "--plans", "--trace", "--clients", "--seeds", "--start", "--threads", "--csv"],
        "ratesim sweep --help",
    );
    let trace = ok(&["trace", "--help"]).stdout;
    assert_mentions(&trace, &["gen", "check"], "ratesim trace --help");
    let gen = unwrap_help(&ok(&["trace", "gen", "--help"]).stdout);
    assert_mentions(
        &gen,
        &["<SPEC>", "-o, --out", "--seed", ".csv", "ratesim run --trace"],
        "ratesim trace gen --help",
    );
    let check = ok(&["trace", "check", "--help"]).stdout;
    assert_mentions(&check, &["<FILE>...", ".csv", ".jsonl", ".toml", "--seed"], "ratesim trace check --help");

    let version = ok(&["--version"]).stdout;
    assert_eq!(version.trim(), format!("ratesim {}", env!("CARGO_PKG_VERSION")));
    let sub = ok(&["run", "--version"]).stdout;
    assert!(sub.trim().ends_with(env!("CARGO_PKG_VERSION")), "the version propagates to subcommands: {sub}");
}

// ---------------------------------------------------------------------------
// ratesim run.

#[test]
fn run_without_arguments_prints_a_summary() {
    let out = ok(&["run"]);
    assert_mentions(
        &out.stdout,
        &["requests", "attempts", "429", "RunInfra", "steady-over"],
        "the default run's summary",
    );
}

#[test]
fn run_writes_summary_timeseries_and_decisions() {
    let dir = TempDir::new("outputs");
    let out = dir.path("out");
    let decisions = dir.path("out/d.jsonl");
    ok(&["run", "--client", "none", "--trace", "traces/sample.csv", "--out", &out, "--decisions", &decisions]);
    let rows = csv_rows("traces/sample.csv");
    assert!(rows.len() >= 10, "the sample trace has rows");

    let summary = json(dir.0.join("out/summary.json"));
    let run = summary["run"].as_object().expect("summary.json has a `run` object");
    assert_eq!(run["trace"], "traces/sample.csv");
    assert_eq!(run["client"], "none");
    assert_eq!(run["plan"], "pro");
    let s = summary["summary"].as_object().expect("summary.json has a `summary` object");
    assert_eq!(s["requests"], rows.len() as u64);
    assert_eq!(s["attempts"], rows.len() as u64, "--client none never retries");
    assert_eq!(s["retries"], 0);

    let ts = read(dir.0.join("out/timeseries.csv"));
    let mut lines = ts.lines();
    let header = lines.next().expect("timeseries.csv has a header");
    assert!(header.starts_with("t_s,requests,attempts,"), "timeseries header: {header}");
    let width = header.split(',').count();
    let body: Vec<&str> = lines.collect();
    assert!(!body.is_empty(), "timeseries.csv has rows");
    for line in &body {
        assert_eq!(line.split(',').count(), width, "timeseries row {line:?} has as many fields as the header");
    }
    let requests: u64 = body.iter().map(|l| l.split(',').nth(1).unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(requests, rows.len() as u64, "the buckets' requests add up to the trace");

    let decisions = read(&decisions);
    let lines: Vec<&str> = decisions.lines().collect();
    assert_eq!(lines.len(), rows.len(), "one decision per trace row with --client none");
    for (i, (line, (t, key))) in lines.iter().zip(&rows).enumerate() {
        let d: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("decision {i} is not JSON: {e}: {line}"));
        let d = d.as_object().unwrap_or_else(|| panic!("decision {i} is not an object: {line}"));
        for field in [
            "t_ns",
            "request",
            "attempt",
            "key",
            "allowed",
            "status",
            "limit",
            "remaining",
            "reset_ns",
            "retry_after_ns",
        ] {
            assert!(d.contains_key(field), "decision {i} lacks `{field}`: {line}");
        }
        assert_eq!(d["request"], i as u64, "requests are numbered in trace order: {line}");
        assert_eq!(d["attempt"], 0, "{line}");
        assert_eq!(d["t_ns"], *t, "decision {i} happens at its row's time: {line}");
        assert_eq!(d["key"], key.as_str(), "{line}");
        assert!(d["allowed"].is_boolean() && d["status"].is_u64(), "{line}");
    }
}

/// A burst of 60 requests at once on one key: RunInfra Pro admits its burst
/// of 50 and refuses the rest with 429, naming the limit and a Retry-After.
#[test]
fn run_decisions_record_denials_and_retries() {
    let dir = TempDir::new("denials");
    let mut text = String::from("t,key\n");
    for _ in 0..60 {
        text.push_str("0,key-a\n");
    }
    let trace = dir.write("burst.csv", &text);

    let none = dir.path("none.jsonl");
    ok(&["run", "--client", "none", "--trace", &trace, "--decisions", &none]);
    let decisions: Vec<Value> = read(&none).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(decisions.len(), 60);
    let allowed = decisions.iter().filter(|d| d["allowed"] == true).count();
    assert_eq!(allowed, 50, "the GCRA burst of 50 is admitted");
    for d in &decisions {
        if d["allowed"] == true {
            assert_eq!(d["status"], 200, "{d}");
        } else {
            assert_eq!(d["status"], 429, "{d}");
            assert_eq!(d["limit"], "rpm", "a denial names its limit: {d}");
            assert!(d["retry_after_ns"].as_u64().is_some_and(|r| r > 0), "a 429 carries Retry-After: {d}");
        }
    }

    // A retrying client: each request's attempts are numbered 0, 1, 2, ...
    let retry = dir.path("retry.jsonl");
    ok(&["run", "--client", "openai-python", "--trace", &trace, "--decisions", &retry]);
    let mut next_attempt = vec![0u64; 60];
    let mut last_t = 0;
    for line in read(&retry).lines() {
        let d: Value = serde_json::from_str(line).unwrap();
        let request = d["request"].as_u64().unwrap() as usize;
        assert_eq!(d["attempt"], next_attempt[request], "attempts of request {request} in order: {line}");
        next_attempt[request] += 1;
        let t = d["t_ns"].as_u64().unwrap();
        assert!(t >= last_t, "decisions in time order: {line}");
        last_t = t;
    }
    assert!(next_attempt.iter().any(|&n| n > 1), "the refused requests are retried");
}

#[test]
fn run_twice_gives_identical_files() {
    let dir = TempDir::new("determinism");
    for client in ["none", "openai-python"] {
        let out = dir.path(client);
        let decisions = dir.path(&format!("{client}/d.jsonl"));
        let args =
            ["run", "--client", client, "--trace", "traces/sample.csv", "--out", &out, "--decisions", &decisions];
        let first_stdout = ok(&args).stdout;
        let first = snapshot(&dir.0.join(client));
        assert!(first.len() >= 3, "summary.json, timeseries.csv and d.jsonl: {:?}", first.keys());
        let second_stdout = ok(&args).stdout;
        assert_eq!(first_stdout, second_stdout, "the terminal summary is deterministic");
        let second = snapshot(&dir.0.join(client));
        assert_eq!(first.keys().collect::<Vec<_>>(), second.keys().collect::<Vec<_>>());
        for (name, bytes) in &first {
            assert!(bytes == &second[name], "{} differs between two identical runs ({client})", name.display());
        }
    }
    // With retries and jitter on a trace that hits the limit.
    let a = dir.path("a.jsonl");
    let b = dir.path("b.jsonl");
    let common = ["run", "--trace", "traces/steady-over.toml", "--client", "exp-full-jitter", "--seed", "9"];
    ok(&[&common[..], &["--decisions", a.as_str()]].concat());
    ok(&[&common[..], &["--decisions", b.as_str()]].concat());
    assert!(read(&a) == read(&b), "jittered retries are reproducible from the seed");
}

// ---------------------------------------------------------------------------
// ratesim trace.

/// Runs `args` with `--out DIR` and returns summary.json.
fn run_summary(args: &[&str], dir: &str) -> Value {
    ok(&[args, &["--out", dir, "--quiet"]].concat());
    json(Path::new(dir).join("summary.json"))
}

#[test]
fn generated_csv_replays_like_the_spec() {
    let dir = TempDir::new("replay");
    let spec = "traces/steady-below.toml";

    // The spec's own seed (1 in steady-below.toml): `run` defaults to it.
    let csv = dir.path("steady-below.csv");
    let out = ok(&["trace", "gen", spec, "-o", &csv]);
    assert_mentions(&out.stdout, &[csv.as_str(), "21,600 rows", "1 key", "horizon 1h", "seed 1"], "the gen summary");
    assert_eq!(out.stdout.lines().count(), 1, "a one-line summary: {}", out.stdout);
    let header = read(&csv).lines().next().unwrap().to_string();
    assert_eq!(header, "t,key,user,workspace,endpoint,auth,tokens,cost,duration");

    let (da, db) = (dir.path("spec"), dir.path("csv"));
    let from_spec = run_summary(&["run", "--trace", spec, "--decisions", &dir.path("spec.jsonl")], &da);
    let from_csv = run_summary(&["run", "--trace", &csv, "--seed", "1", "--decisions", &dir.path("csv.jsonl")], &db);
    assert_eq!(from_spec["summary"], from_csv["summary"], "the CSV replays to the same summary");
    assert_eq!(from_spec["summary"]["requests"], 21_600);
    assert_eq!(from_csv["run"]["trace"], csv.as_str());
    assert!(read(dir.path("spec.jsonl")) == read(dir.path("csv.jsonl")), "... and the same decisions");
    assert!(
        read(dir.0.join("spec/timeseries.csv")) == read(dir.0.join("csv/timeseries.csv")),
        "... and the same time series"
    );

    // An explicit seed, on a trace that hits the limit with a retrying client.
    let csv = dir.path("steady-over-7.csv");
    assert_mentions(
        &ok(&["trace", "gen", "traces/steady-over.toml", "-o", &csv, "--seed", "7"]).stdout,
        &["seed 7"],
        "gen",
    );
    let common = ["run", "--client", "openai-python", "--seed", "7", "--trace"];
    let from_spec = run_summary(&[&common[..], &["traces/steady-over.toml"]].concat(), &dir.path("over-spec"));
    let from_csv = run_summary(&[&common[..], &[csv.as_str()]].concat(), &dir.path("over-csv"));
    assert_eq!(from_spec["summary"], from_csv["summary"]);
    assert!(from_spec["summary"]["retries"].as_u64().unwrap() > 0, "the comparison covers retries");

    // `trace check` sees the same rows, keys and span in the spec and the CSV.
    let out = ok(&["trace", "check", "traces/steady-over.toml", "--seed", "7", &csv]).stdout;
    let described: Vec<&str> =
        out.lines().map(|l| l.split_once(": ").unwrap().1.split(" (synthetic").next().unwrap()).collect();
    assert_eq!(described.len(), 2, "{out}");
    assert_eq!(described[0], described[1], "{out}");
}

#[test]
fn gen_warns_when_the_csv_cannot_carry_polling_jobs() {
    let dir = TempDir::new("polling");
    let out = ok(&["trace", "gen", "traces/async-jobs-polling.toml", "-o", &dir.path("jobs.csv")]);
    assert_mentions(&out.stderr, &["warning", "poll"], "gen of a polling spec");
    let out = ok(&["trace", "gen", "traces/steady-below.toml", "-o", &dir.path("plain.csv")]);
    assert_eq!(out.stderr, "", "no warning for a spec the CSV represents fully");
}

#[test]
fn gen_rejects_bad_arguments_and_leaves_no_file() {
    let dir = TempDir::new("gen-errors");
    let err = fails(&["trace", "gen", "traces/sample.csv", "-o", &dir.path("x.csv")]);
    assert_mentions(&err, &["traces/sample.csv", ".toml"], "gen of a recorded trace");
    let err = fails(&["trace", "gen", "traces/steady-below.toml", "-o", &dir.path("x.txt")]);
    assert_mentions(&err, &["x.txt", ".csv"], "gen to a non-CSV name");
    let err = fails(&["trace", "gen", "traces/no-such-spec.toml", "-o", &dir.path("x.csv")]);
    assert_mentions(&err, &["traces/no-such-spec.toml", "cannot read"], "gen of a missing spec");
    let bad = dir.write(
        "bad.toml",
        "horizon = \"1h\"\n[[population]]\nname = \"a\"\nclients = 0\narrival = { kind = \"poisson\", rate = \"1/s\" }\n",
    );
    let err = fails(&["trace", "gen", &bad, "-o", &dir.path("x.csv")]);
    assert_mentions(&err, &[&format!("{bad}:4:"), "clients"], "gen of an invalid spec");
    let err = fails(&["trace", "gen", "traces/steady-below.toml", "-o", &dir.path("no-such-dir/x.csv")]);
    assert_mentions(&err, &["no-such-dir/x.csv", "cannot create"], "gen into a missing directory");
    let left: Vec<_> = snapshot(&dir.0).into_keys().collect();
    assert_eq!(left, vec![PathBuf::from("bad.toml")], "failed runs leave no partial output");
}

#[test]
fn trace_check_reports_each_file() {
    let dir = TempDir::new("check");
    let out = ok(&["trace", "check", "traces/sample.csv", "traces/sample.jsonl", "traces/steady-below.toml"]);
    let rows = csv_rows("traces/sample.csv").len();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("ok") && lines[0].contains("traces/sample.csv"), "{}", lines[0]);
    assert_mentions(lines[0], &[&format!("{rows} rows"), "2 keys", "0 s", "25 s"], "check of sample.csv");
    // The JSONL sample holds the same requests as the CSV one.
    assert_eq!(lines[0].split_once(": ").unwrap().1, lines[1].split_once(": ").unwrap().1);
    assert_mentions(lines[2], &["ok", "21,600 rows", "1 key", "seed 1"], "check of a spec");

    let mut text = read(Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/sample.csv"));
    text.push_str("1,key-a,alice,acme,/v1/chat,true,120,3,0.8\n");
    let late = dir.write("late.csv", &text);
    let out =
        ratesim(&["trace", "check", "traces/sample.csv", &late, &dir.path("missing.jsonl"), "traces/sample.jsonl"]);
    assert_eq!(out.code, 1, "{}", out.context());
    // Good files on stdout; errors and the tally on stderr.
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.context());
    assert!(lines.iter().all(|l| l.starts_with("ok")), "good files are still reported: {}", out.stdout);
    let errors: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(errors.len(), 3, "{}", out.context());
    assert_mentions(errors[0], &["error", &format!("{late}:{}:", rows + 2), "time order"], "check of an unordered CSV");
    assert_mentions(errors[1], &["error", "missing.jsonl"], "check of a missing file");
    assert_mentions(errors[2], &["2 of 4"], "the check's tally");
}

// ---------------------------------------------------------------------------
// Errors: stderr, exit code 1, file:line and field, never a panic.

#[test]
fn malformed_inputs_give_located_errors() {
    let dir = TempDir::new("errors");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));

    // A policy with a TOML syntax error.
    let syntax = dir.write("syntax.toml", "provider = \"x\"\n[[plan]\nname = \"a\"\n");
    let err = fails(&["run", "--policy", &syntax, "--trace", "traces/sample.csv"]);
    assert_mentions(&err, &[&format!("{syntax}:2:")], "a policy syntax error");

    // A policy whose limit has `burst = 0`: the error names the line and field.
    let policy = read(root.join("policies/runinfra.toml"));
    let line = policy.lines().position(|l| l.starts_with("burst = ")).expect("runinfra.toml has a burst") + 1;
    let zero: Vec<String> = policy
        .lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == line { "burst = 0".to_string() } else { l.to_string() })
        .collect();
    let burst0 = dir.write("burst0.toml", &(zero.join("\n") + "\n"));
    let err = fails(&["run", "--policy", &burst0, "--trace", "traces/sample.csv"]);
    assert_mentions(&err, &[&format!("{burst0}:{line}:"), "burst"], "a policy with burst = 0");

    // A CSV trace with a row out of time order.
    let csv = dir.write("late.csv", "t,key\n0,a\n2,a\n1,a\n");
    let err = fails(&["run", "--trace", &csv]);
    assert_mentions(&err, &[&format!("{csv}:4:"), "`t`", "time order"], "an unordered CSV row");

    // A JSONL trace with a bad value.
    let jsonl = dir.write("bad.jsonl", "{\"t\": 0, \"key\": \"a\"}\n{\"t\": 1, \"key\": \"a\", \"tokens\": -5}\n");
    let err = fails(&["run", "--trace", &jsonl]);
    assert_mentions(&err, &[&format!("{jsonl}:2:"), "tokens", "-5"], "a negative token count in JSONL");

    // An unknown plan: the error lists the policy's plans.
    let checked = ok(&["policy", "check", "policies/runinfra.toml"]).stdout;
    let plans = checked.split_once('(').unwrap().1.split_once(')').unwrap().0;
    let err = fails(&["run", "--plan", "gold", "--trace", "traces/sample.csv"]);
    assert_mentions(&err, &["\"gold\"", "policies/runinfra.toml", plans], "an unknown plan");
    let err = fails(&["sweep", "--plans", "pro,gold", "--trace", "traces/sample.csv"]);
    assert_mentions(&err, &["--plans", "\"gold\"", plans], "an unknown plan in a sweep");

    // An unknown client preset: the error lists the presets, each of which works.
    let err = fails(&["run", "--client", "fancy", "--trace", "traces/sample.csv"]);
    assert_mentions(&err, &["--client", "\"fancy\"", "none", "openai-python"], "an unknown preset");
    for preset in listed_after_colon(&err) {
        ok(&["run", "--quiet", "--client", &preset, "--trace", "traces/sample.csv"]);
    }
    let err = fails(&["run", "--client", "openai-python,max_retries=many", "--trace", "traces/sample.csv"]);
    assert_mentions(&err, &["max_retries", "many"], "a bad client override");
    let err = fails(&["sweep", "--clients", "none;fancy", "--trace", "traces/sample.csv"]);
    assert_mentions(&err, &["--clients", "fancy", "openai-python"], "an unknown preset in a sweep");

    // Files that do not exist.
    let missing = dir.path("missing.csv");
    assert_mentions(&fails(&["run", "--trace", &missing]), &[&missing, "cannot open"], "a missing trace");
    let missing = dir.path("missing.toml");
    assert_mentions(&fails(&["run", "--trace", &missing]), &[&missing], "a missing spec");
    assert_mentions(&fails(&["run", "--policy", &missing]), &[&missing, "policy"], "a missing policy");
    assert_mentions(&fails(&["policy", "explain", &missing]), &[&missing], "explaining a missing policy");
    let txt = dir.write("trace.txt", "t,key\n0,a\n");
    assert_mentions(&fails(&["run", "--trace", &txt]), &[&txt, ".csv", ".jsonl", ".toml"], "an unknown extension");

    // Bad option values.
    assert_mentions(&fails(&["run", "--bucket", "0s"]), &["--bucket", "at least 1ms"], "--bucket 0s");
    assert_mentions(&fails(&["run", "--bucket", "1ns"]), &["--bucket", "at least 1ms", "1ns"], "--bucket 1ns");
    assert_mentions(&fails(&["run", "--bucket", "fast"]), &["--bucket", "fast"], "--bucket fast");
    assert_mentions(
        &fails(&["run", "--start", "yesterday"]),
        &["--start", "yesterday", "RFC 3339"],
        "--start yesterday",
    );
    assert_mentions(&fails(&["sweep", "--start", "yesterday"]), &["--start", "yesterday"], "sweep --start yesterday");

    // Output that cannot be written.
    let blocker = dir.write("file", "");
    let err = fails(&["run", "--trace", "traces/sample.csv", "--out", &format!("{blocker}/sub")]);
    assert_mentions(&err, &["cannot create", &blocker], "an output directory under a file");
}

// ---------------------------------------------------------------------------
// ratesim policy check.

#[test]
fn policy_check_lists_every_provider_and_reports_bad_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(root.join("policies"))
        .expect("policies/ exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".toml"))
        .map(|n| format!("policies/{n}"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 5, "five shipped providers: {files:?}");
    let providers: Vec<String> = files
        .iter()
        .map(|f| {
            let doc: toml::Table = toml::from_str(&read(root.join(f))).expect("shipped policies are TOML");
            doc["provider"].as_str().expect("a provider name").to_string()
        })
        .collect();

    let args: Vec<&str> = ["policy", "check"].into_iter().chain(files.iter().map(String::as_str)).collect();
    let out = ok(&args).stdout;
    for (file, provider) in files.iter().zip(&providers) {
        let line = out.lines().find(|l| l.contains(file.as_str())).unwrap_or_else(|| panic!("{file} listed:\n{out}"));
        assert!(line.starts_with("ok"), "{line}");
        assert!(line.contains(provider.as_str()), "{line} names {provider}");
    }

    let dir = TempDir::new("policy-check");
    let bad = dir.write("bad.toml", "provider = \"Broken\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"x\"\nalgorithm = \"gcra\"\nrate = \"10/s\"\nburst = 0\n");
    let mut args = args.clone();
    args.insert(4, &bad);
    let out = ratesim(&args);
    assert_eq!(out.code, 1, "{}", out.context());
    // Good files on stdout, and nothing else; errors and the tally on stderr.
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with("ok")).count(),
        5,
        "the good files still pass: {}",
        out.stdout
    );
    assert_eq!(out.stdout.lines().count(), 5, "no error on stdout: {}", out.context());
    let line = out.stderr.lines().find(|l| l.contains(bad.as_str())).expect("the bad file is reported on stderr");
    assert_mentions(line, &["error", &format!("{bad}:8:"), "burst"], "the bad policy's line");
    assert_mentions(&out.stderr, &["1 of 6"], "the check's tally");
}

// ---------------------------------------------------------------------------
// ratesim sweep.

#[test]
fn sweep_prints_a_table_and_a_csv_independent_of_threads() {
    let dir = TempDir::new("sweep");
    let mut csvs = Vec::new();
    for threads in ["2", "1"] {
        let csv = dir.path(&format!("sweep-{threads}.csv"));
        let args = [
            "sweep",
            "--plans",
            "pro,pro-max",
            "--clients",
            "none;openai-python",
            "--trace",
            "traces/sample.csv",
            "--threads",
            threads,
            "--csv",
            &csv,
        ];
        let out = ok(&args).stdout;
        assert_mentions(&out, &["4 scenarios", "plan", "client", "429 rate"], "the sweep table");
        let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("pro ") || l.starts_with("pro-max ")).collect();
        assert_eq!(rows.len(), 4, "four scenario rows:\n{out}");
        for (row, (plan, client)) in rows.iter().zip([
            ("pro", "none"),
            ("pro", "openai-python"),
            ("pro-max", "none"),
            ("pro-max", "openai-python"),
        ]) {
            let mut words = row.split_whitespace();
            assert_eq!((words.next(), words.next()), (Some(plan), Some(client)), "{row}");
        }
        csvs.push(read(&csv));
    }
    let lines: Vec<&str> = csvs[0].lines().collect();
    assert_eq!(lines.len(), 5, "a header and four rows:\n{}", csvs[0]);
    assert!(lines[0].starts_with("index,point,plan,scale,scale_keys,client,seed,error,requests,"), "{}", lines[0]);
    let requests = csv_rows("traces/sample.csv").len().to_string();
    for line in &lines[1..] {
        assert_eq!(line.split(',').nth(8), Some(requests.as_str()), "every scenario sees the whole trace: {line}");
    }
    assert_eq!(csvs[0], csvs[1], "the sweep CSV does not depend on the thread count");
}

// ---------------------------------------------------------------------------
// Issue 9: reports of the simulator (start, empty traces, denials, limits)
// ---------------------------------------------------------------------------

/// Point 2: a trace of RFC 3339 times starts at its first row in every
/// report (the terminal header, summary.json `run.start`, the chart), and
/// `--start` is refused with it rather than silently ignored.
#[test]
fn rfc3339_traces_report_their_real_start() {
    let dir = TempDir::new("abs");
    let trace =
        dir.write("abs.csv", "t,key\n2026-03-05T10:00:30.000Z,k\n2026-03-05T10:00:31.000Z,k\n2026-03-05T10:01:05Z,k\n");
    let (out, svg) = (dir.path("out"), dir.path("chart.svg"));
    let stdout = ok(&["run", "--trace", &trace, "--client", "none", "--out", &out, "--chart", &svg]).stdout;
    assert_mentions(&stdout, &["virtual time 35 s  (2026-03-05T10:00:30Z → 2026-03-05T10:01:05Z)"], "the header");
    let summary = json(Path::new(&out).join("summary.json"));
    assert_eq!(summary["run"]["start"], "2026-03-05T10:00:30Z");
    assert_eq!(summary["summary"]["duration_ns"], 35_000_000_000u64);
    assert_mentions(&read(&svg), &["start 2026-03-05T10:00:30Z"], "the chart subtitle");

    let err = fails(&["run", "--trace", &trace, "--client", "none", "--start", "2026-01-01T00:00:00Z"]);
    assert_mentions(&err, &["--start", "RFC 3339 times", "2026-03-05T10:00:30Z", "leave it out"], "the refusal");
    // A trace of offsets still starts at --start.
    let offsets = dir.write("rel.csv", "t,key\n0.5,k\n");
    let stdout = ok(&["run", "--trace", &offsets, "--client", "none", "--start", "2026-02-01T00:00:00Z"]).stdout;
    assert_mentions(&stdout, &["(2026-02-01T00:00:00Z → 2026-02-01T00:00:00.5Z)"], "the header");
}

/// Point 2 in the what-if commands: a sweep records the trace's real start
/// (results.json `sweep.start`), `solve`'s verification run reports it, and
/// both refuse `--start` with such a trace as `run` does.
#[test]
fn sweeps_and_solves_of_rfc3339_traces_report_their_real_start() {
    let dir = TempDir::new("abs-whatif");
    let trace =
        dir.write("abs.csv", "t,key\n2026-03-05T10:00:30.000Z,k\n2026-03-05T10:00:31.000Z,k\n2026-03-05T10:01:05Z,k\n");
    let out = dir.path("sweep");
    ok(&["sweep", "--trace", &trace, "--plans", "pro", "--clients", "none", "--out", &out, "--quiet"]);
    assert_eq!(json(Path::new(&out).join("results.json"))["sweep"]["start"], "2026-03-05T10:00:30Z");
    let solve = ["solve", "--trace", &trace, "--client", "none", "--vary", "pro.rpm.rate", "--range", "1..10"];
    let target = ["--target", "success_ratio >= 0.5"];
    let stdout = ok(&[&solve[..], &target].concat()).stdout;
    assert_mentions(&stdout, &["(2026-03-05T10:00:30Z → 2026-03-05T10:01:05Z)"], "the verification run");
    for cmd in
        [&["sweep", "--trace", &trace, "--plans", "pro", "--clients", "none"][..], &[&solve[..], &target].concat()]
    {
        let err = fails(&[cmd, &["--start", "2026-01-01T00:00:00Z"]].concat());
        assert_mentions(&err, &["--start", "RFC 3339 times", "2026-03-05T10:00:30Z", "leave it out"], cmd[0]);
    }
}

/// Point 6: a header-only CSV, an empty or blank JSONL file and a 0-byte CSV
/// are all refused, by `run` (before any output is created), `sweep` and
/// `trace check` alike; none of them runs with all-zero results.
#[test]
fn traces_without_rows_are_refused_everywhere() {
    let dir = TempDir::new("empty");
    let cases = [
        (dir.write("header.csv", "t,key\n"), "no rows after the header"),
        (dir.write("empty.jsonl", ""), "no rows (the file is empty or blank)"),
        (dir.write("blank.jsonl", "\n\n"), "no rows (the file is empty or blank)"),
        (dir.write("zero.csv", ""), "the file is empty"),
    ];
    for (trace, reason) in &cases {
        let out = dir.path("out");
        let err = fails(&["run", "--trace", trace, "--client", "none", "--out", &out]);
        assert_mentions(&err, &[trace.as_str(), reason], "run");
        assert!(!Path::new(&out).exists(), "run created outputs for {trace}");
        let err = fails(&["sweep", "--trace", trace, "--plans", "pro", "--clients", "none"]);
        assert_mentions(&err, &[trace.as_str(), reason], "sweep");
        let check = ratesim(&["trace", "check", trace]);
        assert_eq!(check.code, 1, "{}", check.context());
        assert_mentions(&check.stderr, &["error", reason], "trace check");
    }
}

/// Point 15: a row far ahead (t = 9999999999.5 s in the issue; now just
/// under the readers' 100-year cap) before an out-of-order row made `run`
/// write one time-series row per empty second (hundreds of megabytes)
/// before it reported the order error. The quiet stretch is two
/// rows now, so the error comes at once with a few hundred bytes written.
#[test]
fn a_far_row_before_an_order_error_writes_almost_nothing() {
    let dir = TempDir::new("far");
    let trace = dir.write(
        "far.jsonl",
        "{\"t\": 0, \"key\": \"a\"}\n{\"t\": 3155759999.5, \"key\": \"a\"}\n{\"t\": 1, \"key\": \"a\"}\n",
    );
    let out = dir.path("out");
    let err = fails(&["run", "--trace", &trace, "--client", "none", "--out", &out]);
    assert_mentions(&err, &["far.jsonl:3", "order"], "the order error");
    let written = std::fs::metadata(Path::new(&out).join("timeseries.csv")).expect("timeseries.csv").len();
    assert!(written < 1_000, "{written} bytes of time series");
}

/// Point 12 (the simulator's side): 20,000 rows of 10^15 tokens (the most a
/// row may carry) total 2 × 10^19, past u64's 1.8 × 10^19: `run`'s summary
/// shows every digit, and a sweep's results the nearest float (no panic
/// turning the total into a JSON value, no wrapped sum).
#[test]
fn token_totals_beyond_u64_are_reported_not_wrapped() {
    let dir = TempDir::new("huge");
    let rows: String = (0..20_000).map(|i| format!("{}.{:03},k,1000000000000000\n", i / 1000, i % 1000)).collect();
    let trace = dir.write("huge.csv", &format!("t,key,tokens\n{rows}"));
    // A limit far above the load: every row is admitted and settles.
    let policy = dir.write(
        "p.toml",
        "provider = \"t\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"rps\"\nalgorithm = \"gcra\"\nrate = \"1000000/s\"\nburst = 1000000\n",
    );
    let out = dir.path("out");
    let run = ["run", "--policy", &policy, "--plan", "p", "--trace", &trace, "--client", "none"];
    let stdout = ok(&[&run[..], &["--out", &out, "--quiet"]].concat()).stdout;
    assert_mentions(&stdout, &["tokens                  20,000,000,000,000,000,000"], "the terminal");
    assert_mentions(
        &read(Path::new(&out).join("summary.json")),
        &["\"tokens\": 20000000000000000000,"],
        "summary.json",
    );
    let sweep = dir.path("sweep");
    ok(&[
        "sweep",
        "--policy",
        &policy,
        "--trace",
        &trace,
        "--plans",
        "p",
        "--clients",
        "none",
        "--out",
        &sweep,
        "--quiet",
    ]);
    let csv = read(Path::new(&sweep).join("results.csv"));
    let (header, row) = csv.split_once('\n').expect("a header and a row");
    let column = header.split(',').position(|c| c == "tokens").expect("a tokens column");
    let tokens = row.split(',').nth(column).and_then(|t| t.parse::<f64>().ok());
    assert_eq!(tokens, Some(2e19), "{csv}");
}

// ---------------------------------------------------------------------------
// Arguments and outputs checked before any work; inputs never overwritten (issue 9).

#[test]
fn run_checks_its_outputs_before_simulating() {
    let dir = TempDir::new("early");
    // The summary on stdout would show that the simulation ran before the error.
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec!["--chart".into(), dir.path("x.jpg")],
            vec![format!("--chart {}", dir.path("x.jpg")), ".png or .svg".into()],
        ),
        (
            vec!["--chart".into(), dir.path("no-such-dir/x.png")],
            vec!["--chart".into(), "no-such-dir/x.png".into(), "cannot create".into()],
        ),
        (vec!["--decisions".into(), dir.path("")], vec!["--decisions".into(), "is a directory".into()]),
        (
            vec!["--decisions".into(), dir.path("no-such-dir/d.jsonl")],
            vec!["--decisions".into(), "cannot create".into()],
        ),
    ];
    for (extra, says) in cases {
        let mut args = vec!["run", "--trace", "traces/steady-over.toml"];
        args.extend(extra.iter().map(String::as_str));
        let out = ratesim(&args);
        assert_eq!(out.code, 1, "{}", out.context());
        assert_eq!(out.stdout, "", "nothing simulated before the error: {}", out.context());
        let says: Vec<&str> = says.iter().map(String::as_str).collect();
        assert_mentions(&out.stderr, &says, "an unwritable output");
    }
    // Nothing is left behind by the checks.
    assert!(snapshot(&dir.0).is_empty(), "{:?}", snapshot(&dir.0).keys().collect::<Vec<_>>());
    // trace gen into a directory named like a CSV file: refused before generating.
    std::fs::create_dir(dir.0.join("dir.csv")).unwrap();
    let err = fails(&["trace", "gen", "traces/steady-below.toml", "-o", &dir.path("dir.csv")]);
    assert_mentions(&err, &["-o", "dir.csv", "is a directory"], "gen into a directory");
}

#[test]
fn outputs_that_are_inputs_are_refused() {
    let dir = TempDir::new("inputs");
    let trace_text = read(Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/sample.csv"));
    let trace = dir.write("trace.csv", &trace_text);
    let policy = dir.write("policy.toml", &read(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/runinfra.toml")));
    std::fs::hard_link(&trace, dir.path("hard.csv")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&trace, dir.path("soft.jsonl")).unwrap();
    // --decisions over the trace (by its name, a relative form, a hard link, a symbolic link) or the policy.
    let relative = format!("{}/../{}/trace.csv", dir.path(""), dir.0.file_name().unwrap().to_str().unwrap());
    let mut targets = vec![trace.clone(), relative, dir.path("hard.csv"), policy.clone()];
    if cfg!(unix) {
        targets.push(dir.path("soft.jsonl"));
    }
    for target in &targets {
        let err = fails(&["run", "--policy", &policy, "--trace", &trace, "--decisions", target]);
        assert_mentions(
            &err,
            &["--decisions", target, "which this command reads", "choose another file"],
            "an input as output",
        );
        assert_eq!(read(&trace), trace_text, "the trace is intact");
    }
    // --out DIR whose timeseries.csv is the trace being read.
    let out_dir = TempDir::new("inputs-out");
    let inside = out_dir.write("timeseries.csv", &trace_text);
    let err = fails(&["run", "--trace", &inside, "--out", out_dir.0.to_str().unwrap()]);
    assert_mentions(&err, &["--out", "timeseries.csv", "--trace"], "--out over the trace");
    assert_eq!(read(&inside), trace_text, "the trace is intact");
    // Two outputs in one file.
    let err = fails(&["run", "--trace", &trace, "--out", &dir.path("o"), "--decisions", &dir.path("o/summary.json")]);
    assert_mentions(&err, &["--decisions", "--out", "already writes this file"], "two outputs in one file");
    let err = fails(&["run", "--trace", &trace, "--chart", &dir.path("c.svg"), "--decisions", &dir.path("c.svg")]);
    assert_mentions(&err, &["--decisions", "--chart", "already writes this file"], "two outputs in one file");
    // trace gen onto a link to its own spec.
    #[cfg(unix)]
    {
        let spec =
            dir.write("spec.toml", &read(Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/steady-below.toml")));
        std::os::unix::fs::symlink(&spec, dir.path("spec.csv")).unwrap();
        let err = fails(&["trace", "gen", &spec, "-o", &dir.path("spec.csv")]);
        assert_mentions(&err, &["-o", "spec.csv", "this is the spec"], "gen over its spec");
    }
    assert_eq!(read(&trace), trace_text);
    // An ordinary run still writes where it is told.
    ok(&["run", "--quiet", "--policy", &policy, "--trace", &trace, "--decisions", &dir.path("d.jsonl")]);
}

#[test]
fn seeds_out_of_range_say_what_a_seed_is() {
    // `--seed -1` used to be taken for an unknown option.
    for args in [
        vec!["run", "--seed", "-1"],
        vec!["trace", "check", "--seed", "-1", "traces/sample.csv"],
        vec!["trace", "gen", "traces/steady-below.toml", "-o", "x.csv", "--seed", "-1"],
        vec!["run", "--seed", "18446744073709551616"],
        vec!["run", "--seed=-7"],
    ] {
        let out = ratesim(&args);
        assert_eq!(out.code, 2, "a usage error: {}", out.context());
        assert_mentions(
            &out.stderr,
            &["--seed <N>", "expected a seed, a whole number from 0 to 18446744073709551615"],
            "a seed out of range",
        );
        assert!(!out.stderr.contains("unexpected argument"), "{}", out.context());
    }
    let out = ok(&["run", "--quiet", "--trace", "traces/sample.csv", "--seed", "18446744073709551615"]);
    assert_mentions(&out.stdout, &["seed 18446744073709551615"], "the largest seed");
}

#[test]
fn run_works_outside_the_repository() {
    let dir = TempDir::new("elsewhere");
    // The defaults are built in: the same run as from the repository root.
    let here = ok(&["run", "--quiet"]).stdout;
    let there = ratesim_in(&dir.0, &["run", "--quiet", "--out", "out"]);
    assert_eq!(there.code, 0, "{}", there.context());
    assert_mentions(&there.stdout, &["trace traces/steady-over.toml (built in)"], "a run from elsewhere");
    let strip = |s: &str| {
        s.replace(" (built in)", "").lines().take_while(|l| !l.starts_with("wrote")).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(strip(&there.stdout).trim_end(), strip(&here).trim_end(), "the built-in defaults are the shipped files");
    let summary = json(dir.0.join("out/summary.json"));
    assert_eq!(summary["run"]["policy"], "policies/runinfra.toml (built in)");
    // Other relative paths say where they were looked for.
    let cwd = std::fs::canonicalize(&dir.0).unwrap();
    for args in [
        vec!["run", "--trace", "traces/sample.csv"],
        vec!["policy", "check", "policies/aicredits.toml"],
        vec!["trace", "check", "traces/flash-crowd.toml"],
        vec!["run", "--policy", "policies/aicredits.toml"],
    ] {
        let out = ratesim_in(&dir.0, &args);
        assert_eq!(out.code, 1, "{}", out.context());
        assert_mentions(
            &out.stderr,
            &[
                args.iter().find(|a| a.contains('/')).unwrap(),
                "a relative path is read from the current directory",
                &cwd.display().to_string(),
            ],
            "a missing relative path",
        );
    }
}

#[test]
fn huge_specs_need_a_confirmation() {
    let dir = TempDir::new("huge");
    // One client at a billion requests per second for a century: 3e18 rows.
    let spec = dir.write(
        "huge.toml",
        "horizon = \"36525day\"\n[[population]]\nname = \"all\"\nclients = 1\narrival = { kind = \"constant\", rate = \"1000000000/s\" }\n",
    );
    let says =
        ["huge.toml", "about 3.2e18 rows", "1 client over its horizon of 36525day", "more than 1,000,000,000 rows"];
    let err = fails(&["run", "--trace", &spec]);
    assert_mentions(&err, &says, "run of a huge spec");
    assert_mentions(&err, &["--until DURATION", "--allow-huge"], "run of a huge spec");
    let err = fails(&["run", "--trace", &spec, "--until", "1h"]);
    assert_mentions(
        &err,
        &["about 3,600,000,000,000 rows", "in the first 1h of its 36525day"],
        "--until still too long",
    );
    let out = ratesim(&["trace", "check", &spec]);
    assert_eq!(out.code, 1, "{}", out.context());
    assert_mentions(&out.stderr, &says, "check of a huge spec");
    assert_mentions(&out.stderr, &["--allow-huge to check it all"], "check of a huge spec");
    let err = fails(&["trace", "gen", &spec, "-o", &dir.path("huge.csv")]);
    assert_mentions(&err, &says, "gen of a huge spec");
    // A short --until runs it; --allow-huge is accepted everywhere.
    let out = ok(&["run", "--quiet", "--client", "none", "--trace", &spec, "--until", "1us", "--allow-huge"]);
    assert_mentions(&out.stdout, &["requests                         1,000"], "a microsecond of it");
    ok(&["trace", "check", "--allow-huge", "traces/steady-below.toml"]);
    ok(&["trace", "gen", "--allow-huge", "traces/steady-below.toml", "-o", &dir.path("below.csv")]);
}

#[test]
fn check_commands_keep_stdout_for_results() {
    let dir = TempDir::new("streams");
    let bad = dir.write("bad.toml", "provider = \"x\"\n");
    let out = ratesim(&["policy", "check", &bad]);
    assert_eq!(out.code, 1, "{}", out.context());
    assert_eq!(out.stdout, "", "{}", out.context());
    assert_mentions(&out.stderr, &["error", &format!("{bad}:2:"), "at least one [[plan]]", "1 of 1"], "policy check");
}
