//! `ratesim verify` on the decision logs of a limiter ratesim did not write:
//! the Python `limits` package (5.8.0, from PyPI, installed by
//! `.ci/install-peers`), driven by `tests/peers/python_limits_driver.py` on
//! a virtual clock. Its answers and `remaining` counts, written as a CSV
//! decision log, are checked with the `ratesim verify` binary as a user
//! runs it:
//!
//! - on `limits`' own arithmetic (an exact clock) every strategy verifies
//!   against the plan read in the `python-limits` dialect; the only
//!   disagreements are the moving window's `remaining` exactly one period
//!   after an entry, `limits`' documented inconsistency, which verify
//!   reports as wrong remaining (and nothing else);
//! - read as the textbook plan (no `--dialect`), `limits`' fixed window
//!   (aligned to its first hit) fails;
//! - on a float clock, as in production, `limits`' sliding window counter
//!   admits a request its own algorithm refuses (float rounding of the
//!   previous window's weight): verify fails and names that over-admission
//!   at its row.

#[path = "common/peer.rs"]
mod peer;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use peer::require;
use ratesim::time::{format_decimal_seconds, Nanos, MILLISECOND, SECOND};

/// 2026-01-01T00:00:00Z, the `--start` of the logs (windows of whole
/// seconds up to 10 s are aligned on it).
const START: &str = "2026-01-01T00:00:00Z";
const Y2026: Nanos = 1_767_225_600 * SECOND;

/// One plan per `limits` strategy.
const POLICY: &str = r#"
provider = "Python limits"

[[plan]]
name = "fixed"
[[plan.limit]]
id = "w"
algorithm = "fixed-window"
rate = "5/10s"

[[plan]]
name = "moving"
[[plan.limit]]
id = "w"
algorithm = "sliding-log"
rate = "4/5s"

[[plan]]
name = "counter"
[[plan.limit]]
id = "w"
algorithm = "sliding-counter"
rate = "3/3s"
"#;

/// (plan, `limits` strategy, limit, period in seconds)
const CASES: [(&str, &str, u64, u64); 3] =
    [("fixed", "fixed-window", 5, 10), ("moving", "moving-window", 4, 5), ("counter", "sliding-window-counter", 3, 3)];

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ratesim-verify-peers-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
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

/// Offsets from `Y2026` and keys of a boundary-finding trace for `limit`
/// per `period`: ties, gaps of 1 ns to 1 ms, gaps of about one request's
/// share, instants exactly on an aligned window's start and exactly one
/// period after an earlier request, long idle gaps.
fn boundary_trace(seed: u64, limit: u64, period: Nanos, len: usize) -> Vec<(Nanos, &'static str)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t: Nanos = rng.random_range(0..period);
    let mut out: Vec<(Nanos, &'static str)> = Vec::with_capacity(len);
    for _ in 0..len {
        t = match rng.random_range(0..100) {
            0..25 => t,
            25..40 => t + rng.random_range(1..=MILLISECOND),
            40..65 => t + rng.random_range(0..2 * period / limit),
            65..75 => (t / period + 1) * period,
            75..92 => out.iter().map(|r| r.0 + period).filter(|&b| b >= t).min().unwrap_or(t),
            _ => t + rng.random_range(0..3 * period),
        };
        out.push((t, ["k0", "k1"][rng.random_range(0..2)]));
    }
    out
}

/// A `limits` strategy, its limit, its period in seconds and a trace.
type Case<'a> = (&'a str, u64, u64, &'a [(Nanos, &'a str)]);

/// What `limits` answers (allowed, remaining) for each request of each
/// case, on the `exact` or `float` clock.
fn python_limits(clock: &str, cases: &[Case<'_>]) -> Vec<Vec<(bool, u64)>> {
    let python = require("python3");
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/python_limits_driver.py");
    let doc = json!({
        "clock": clock,
        "cases": cases.iter().map(|(strategy, limit, period_s, trace)| json!({
            "strategy": strategy,
            "limit": limit,
            "period_s": period_s,
            "requests": trace.iter().map(|(t, key)| json!({
                "t": format_decimal_seconds(Y2026 + t), "key": key, "cost": 1,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let mut child = Command::new(&python)
        .arg(driver)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    child.stdin.take().unwrap().write_all(doc.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the limits driver failed ({}); is `limits==5.8.0` installed? run `bash .ci/install-peers`\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("the driver writes JSON");
    assert_eq!(answer["version"], "5.8.0", "run `bash .ci/install-peers`");
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let rows = case.as_array().unwrap().iter();
            rows.map(|r| (r["allowed"].as_bool().unwrap(), r["remaining"].as_u64().unwrap())).collect()
        })
        .collect()
}

/// `limits`' answers as a CSV decision log (`t` in decimal seconds since
/// `START`).
fn decision_log(trace: &[(Nanos, &str)], answers: &[(bool, u64)]) -> String {
    let mut csv = String::from("t,key,allowed,remaining\n");
    for ((t, key), (allowed, remaining)) in trace.iter().zip(answers) {
        csv.push_str(&format!("{},{key},{allowed},{remaining}\n", format_decimal_seconds(*t)));
    }
    csv
}

/// `ratesim verify --json` on `log`: the exit status and the report.
fn verify(policy: &str, plan: &str, log: &str, dialect: Option<&str>) -> (i32, Value) {
    let mut args = vec!["verify", "--policy", policy, "--plan", plan, "--start", START, "--json", log];
    if let Some(d) = dialect {
        args.extend(["--dialect", d]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ratesim")).args(&args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {args:?}\n{stdout}\n{stderr}"));
    (out.status.code().unwrap(), report)
}

fn count(report: &Value, class: &str) -> u64 {
    report["classes"][class]["count"].as_u64().unwrap()
}

#[test]
fn limits_verifies_against_its_dialect_and_not_against_the_textbook() {
    let dir = TempDir::new("exact");
    let policy = dir.write("limits.toml", POLICY);
    let traces: Vec<_> =
        CASES.iter().enumerate().map(|(i, &(_, _, l, p))| boundary_trace(17 + i as u64, l, p * SECOND, 300)).collect();
    let cases: Vec<_> = CASES.iter().zip(&traces).map(|(&(_, s, l, p), t)| (s, l, p, t.as_slice())).collect();
    let answers = python_limits("exact", &cases);
    for ((&(plan, strategy, ..), trace), answers) in CASES.iter().zip(&traces).zip(&answers) {
        let log = dir.write(&format!("{plan}.csv"), &decision_log(trace, answers));
        let (code, r) = verify(&policy, plan, &log, Some("python-limits"));
        let (decisions, agree) = (r["decisions"].as_u64().unwrap(), r["agree"].as_u64().unwrap());
        let admitted = r["limiter_admitted"].as_u64().unwrap();
        println!("limits {strategy} vs plan {plan:?} as python-limits: {agree} of {decisions} agree exactly");
        assert!(admitted > decisions / 5 && admitted < decisions, "{strategy}: admissions and refusals: {r:#}");
        assert_eq!(r["compared"]["remaining"].as_u64().unwrap(), decisions, "{strategy}: remaining compared");
        for class in ["over_admission", "under_admission", "wrong_retry_after"] {
            assert_eq!(count(&r, class), 0, "{strategy}: {class}: {r:#}");
        }
        if strategy == "moving-window" {
            // limits' get_window_stats leaves out an entry exactly one
            // period old that its hit still counts: it reports one more.
            assert_eq!(code, 1, "{r:#}");
            let wrong = count(&r, "wrong_remaining");
            assert!(wrong > 0 && agree + wrong == decisions, "{r:#}");
            let detail = r["classes"]["wrong_remaining"]["first"]["detail"].as_str().unwrap();
            println!("  {wrong} wrong remaining, the first: {detail}");
        } else {
            assert_eq!((code, agree), (0, decisions), "{strategy}: {r:#}");
        }
        assert!(r["guarantees"].as_array().unwrap().iter().all(|g| g["holds"] == true), "{r:#}");
    }
    // limits' fixed window starts at a key's first hit, not on the clock's
    // aligned windows: the textbook plan disagrees.
    let (code, r) = verify(&policy, "fixed", &dir.0.join("fixed.csv").display().to_string(), None);
    println!("limits fixed-window vs the textbook fixed window: {} disagreements", r["disagree"]);
    assert_eq!(code, 1);
    assert!(r["disagree"].as_u64().unwrap() > 0, "{r:#}");
}

/// 3 per 3 s: three requests at a window's start, then two 1 s into the
/// next window, where the previous window weighs exactly 3·2/3 = 2, so the
/// fifth is refused. On a float clock `limits` computes the weight as
/// 1.99999988..., floors it to 1 and admits it.
#[test]
fn limits_on_a_float_clock_over_admits_and_verify_names_the_row() {
    let dir = TempDir::new("float");
    let policy = dir.write("limits.toml", POLICY);
    let trace = [(0, "k"), (0, "k"), (0, "k"), (4 * SECOND, "k"), (4 * SECOND, "k")];
    let answers = python_limits("float", &[("sliding-window-counter", 3, 3, &trace)]);
    assert_eq!(answers[0].iter().filter(|a| a.0).count(), 5, "limits admits all five on a float clock");
    let log = dir.write("float.csv", &decision_log(&trace, &answers[0]));
    let (code, r) = verify(&policy, "counter", &log, Some("python-limits"));
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(count(&r, "over_admission"), 1, "{r:#}");
    let first = &r["classes"]["over_admission"]["first"];
    assert_eq!((first["line"].as_u64(), first["t_ns"].as_u64()), (Some(6), Some(4 * SECOND)), "{r:#}");
    println!("limits (float clock) vs python-limits: {}", first["detail"]);
}
