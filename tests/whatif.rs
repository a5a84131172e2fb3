//! What-if planning: `--set` overrides, traffic scaling, replications with
//! confidence intervals, the solver, and sweeps that shard and merge.
//!
//! Library tests drive `ratesim::whatif` directly; the rest run the binary
//! from the crate root as a user would, with scratch files in temporary
//! directories removed at the end of each test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use serde_json::Value;

use ratesim::sim::sweep::run_ordered;
use ratesim::trace::scale::{Factor, Scaling};
use ratesim::trace::synth::load_spec;
use ratesim::trace::{self, TraceRow, TraceSource};
use ratesim::whatif::solve::{solve, Direction, Require, SolveSpec};
use ratesim::whatif::sweep::{Sweep, SweepSpec};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ratesim(args: &[&str]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_ratesim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the ratesim binary runs");
    let out = Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    };
    assert!(!out.stderr.contains("panicked"), "panic: ratesim {}\n{}", args.join(" "), out.stderr);
    out
}

fn ok(args: &[&str]) -> Out {
    let out = ratesim(args);
    assert_eq!(out.code, 0, "ratesim {} failed:\n{}\n{}", args.join(" "), out.stdout, out.stderr);
    out
}

fn fails(args: &[&str]) -> String {
    let out = ratesim(args);
    assert_eq!(out.code, 1, "ratesim {} should fail with 1:\n{}\n{}", args.join(" "), out.stdout, out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    out.stderr
}

/// A scratch directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ratesim-whatif-{}-{name}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

fn summary_of(dir: &str) -> Value {
    let v: Value = serde_json::from_str(&read(Path::new(dir).join("summary.json"))).unwrap();
    v["summary"].clone()
}

fn root(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

// ---------------------------------------------------------------------------
// Overrides.

#[test]
fn overrides_give_the_results_of_an_edited_policy_file() {
    let dir = TempDir::new("overrides");
    let edited = read(root("policies/runinfra.toml"))
        .replace("rate = \"500/min\"      # line 28", "rate = \"600/min\"      # line 28")
        .replace("burst = 50            # line 52", "burst = 100           # line 52");
    assert_ne!(edited, read(root("policies/runinfra.toml")));
    let edited = dir.write("edited.toml", &edited);
    let (a, b) = (dir.path("a"), dir.path("b"));
    let sets = ["--set", "pro.rpm.rate=600/min", "--set", "pro.rpm.burst=100"];
    ok(&[&["run", "--trace", "traces/sample.csv", "--quiet", "--out", &a][..], &sets].concat());
    ok(&["run", "--trace", "traces/sample.csv", "--quiet", "--out", &b, "--policy", &edited]);
    assert_eq!(summary_of(&a), summary_of(&b));
    let run: Value = serde_json::from_str(&read(Path::new(&a).join("summary.json"))).unwrap();
    assert_eq!(run["run"]["overrides"], serde_json::json!(["pro.rpm.rate=600/min", "pro.rpm.burst=100"]));
    assert_eq!(run["run"]["effective_plan"][0]["rate"], "600/min");
    assert_eq!(run["run"]["effective_plan"][0]["burst"], 100);
    // The default trace too, through a sweep: the same numbers.
    let sweep_a = ok(&[&["sweep", "--plans", "pro", "--clients", "openai-python", "--json"][..], &sets].concat());
    let sweep_b = ok(&["sweep", "--plans", "pro", "--clients", "openai-python", "--json", "--policy", &edited]);
    let (ja, jb): (Value, Value) =
        (serde_json::from_str(&sweep_a.stdout).unwrap(), serde_json::from_str(&sweep_b.stdout).unwrap());
    assert_eq!(ja["scenarios"][0]["summary"], jb["scenarios"][0]["summary"]);
    assert_eq!(ja["scenarios"][0]["effective_plan"][0]["burst"], 100);
}

#[test]
fn a_bad_override_gets_the_files_message_naming_the_argument() {
    let err = fails(&["run", "--set", "pro.rpm.burst=0"]);
    assert_eq!(
        err.trim(),
        "error: --set pro.rpm.burst=0: plan \"pro\" > limit \"rpm\" > burst: expected a burst (in cost units; at least one request) of at least 1, found 0"
    );
    // The same message as the edited file gives, apart from the location.
    let dir = TempDir::new("bad-override");
    let file = dir.write("p.toml", &read(root("policies/runinfra.toml")).replace("burst = 50 ", "burst = 0  "));
    let check = ratesim(&["policy", "check", &file]);
    let text = format!("{}{}", check.stdout, check.stderr);
    assert!(text.contains("plan \"pro\" > limit \"rpm\" > burst: expected a burst (in cost units; at least one request) of at least 1, found 0"), "{text}");
    assert!(fails(&["sweep", "--set", "pro.rpm.rate=500/min,5/fortnight"]).contains("--set pro.rpm.rate=5/fortnight: "));
    assert!(fails(&["run", "--set", "pro.rpm"]).contains("PLAN.LIMIT.FIELD=VALUE"));
}

// ---------------------------------------------------------------------------
// Scaling.

fn count_rows(mut source: Box<dyn TraceSource>) -> (u64, std::collections::BTreeSet<String>) {
    let mut row = TraceRow::default();
    let mut n = 0;
    let mut keys = std::collections::BTreeSet::new();
    while source.next_row(&mut row).unwrap() {
        n += 1;
        keys.insert(row.key.clone());
    }
    (n, keys)
}

fn scaling(f: &str, keys: u32) -> Scaling {
    Scaling { factor: Factor::parse(f).unwrap(), key_copies: keys, window: None }
}

#[test]
fn scaling_by_one_changes_nothing() {
    let dir = TempDir::new("scale-one");
    for trace in ["traces/steady-over.toml", "traces/sample.csv"] {
        let (a, b) = (dir.path("a"), dir.path("b"));
        ok(&["run", "--trace", trace, "--quiet", "--out", &a]);
        ok(&["run", "--trace", trace, "--quiet", "--out", &b, "--scale", "1", "--scale-keys", "1"]);
        assert_eq!(read(Path::new(&a).join("summary.json")), read(Path::new(&b).join("summary.json")), "{trace}");
        assert_eq!(read(Path::new(&a).join("timeseries.csv")), read(Path::new(&b).join("timeseries.csv")));
    }
}

#[test]
fn scaling_a_poisson_spec_by_two_doubles_its_expected_rows() {
    // steady-over: one key, Poisson 12/s for 1 h: 43,200 expected rows.
    let spec = load_spec(&root("traces/steady-over.toml")).unwrap();
    for seed in [1, 2, 3] {
        let (n, keys) = count_rows(Box::new(spec.scaled(Factor::parse("2").unwrap()).unwrap().generate(seed)));
        // Poisson(86,400): four standard deviations is 1,176.
        assert!((n as f64 - 86_400.0).abs() < 4.0 * 86_400f64.sqrt(), "seed {seed}: {n}");
        assert_eq!(keys.len(), 1, "the same key, twice the rate");
        let (half, _) = count_rows(Box::new(spec.scaled(Factor::parse("0.5").unwrap()).unwrap().generate(seed)));
        assert!((half as f64 - 21_600.0).abs() < 4.0 * 21_600f64.sqrt(), "seed {seed}: {half}");
    }
    // Keys: 10 times the keys, each with the original per-key rate.
    let (n, keys) = count_rows(Box::new(spec.with_key_copies(10).unwrap().generate(2)));
    assert_eq!(keys.len(), 10);
    assert!((n as f64 - 432_000.0).abs() < 4.0 * 432_000f64.sqrt(), "{n}");
    // The original client keeps its rows exactly.
    let first = |s: Box<dyn TraceSource>| -> Vec<u64> {
        let mut s = s;
        let mut row = TraceRow::default();
        let mut out = Vec::new();
        while s.next_row(&mut row).unwrap() {
            if row.key == "app-k0" {
                if let trace::TraceTime::Offset(t) = row.t {
                    out.push(t);
                }
            }
        }
        out
    };
    assert_eq!(first(Box::new(spec.generate(2))), first(Box::new(spec.with_key_copies(3).unwrap().generate(2))));
}

#[test]
fn scaling_a_recorded_trace_superposes_thins_and_copies_keys() {
    // sample.csv: 40 rows, 2 keys.
    let path = root("traces/sample.csv");
    let open = |s: &Scaling, seed| trace::open_scaled(&path, Some(seed), s, None).unwrap();
    assert_eq!(count_rows(open(&scaling("3", 1), 1)).0, 120);
    let (n, keys) = count_rows(open(&scaling("1", 4), 1));
    assert_eq!((n, keys.len()), (160, 8));
    // A day-long recorded trace: thinning to a quarter.
    let dir = TempDir::new("recorded");
    let csv = dir.path("steady.csv");
    ok(&["trace", "gen", "traces/steady-over.toml", "-o", &csv]);
    let (full, _) = count_rows(trace::open(Path::new(&csv), None).unwrap());
    let (quarter, _) = count_rows(trace::open_scaled(Path::new(&csv), Some(5), &scaling("0.25", 1), None).unwrap());
    let expected = full as f64 * 0.25;
    assert!((quarter as f64 - expected).abs() < 4.0 * (full as f64 * 0.25 * 0.75).sqrt(), "{quarter} of {full}");
    let (more, _) = count_rows(trace::open_scaled(Path::new(&csv), Some(5), &scaling("2.5", 1), None).unwrap());
    assert!((more as f64 - full as f64 * 2.5).abs() < 4.0 * (full as f64 * 0.25).sqrt(), "{more} of {full}");
    // Through the CLI: a run at 2× on the recorded trace sees twice the rows.
    let out = ok(&["run", "--trace", &csv, "--client", "none", "--scale", "2", "--quiet"]);
    assert!(out.stdout.contains("what if load ×2"), "{}", out.stdout);
    let requests = out.stdout.lines().find(|l| l.trim_start().starts_with("requests")).unwrap();
    assert_eq!(requests.split_whitespace().nth(1), Some(group(2 * full).as_str()), "{}", out.stdout);
}

fn group(n: u64) -> String {
    ratesim::report::group(n)
}

// ---------------------------------------------------------------------------
// Replications.

fn spec(policy: &str, trace: &str, plans: &[&str], clients: &[&str], seeds: Vec<u64>) -> SweepSpec {
    SweepSpec {
        policy: root(policy),
        trace: root(trace),
        plans: plans.iter().map(|s| s.to_string()).collect(),
        set: vec![],
        scale: vec![Factor::ONE],
        scale_keys: vec![1],
        scale_window: None,
        clients: clients.iter().map(|s| s.to_string()).collect(),
        seeds,
        start: None,
        until: None,
        bucket: 1_000_000_000,
    }
}

#[test]
fn the_confidence_interval_of_a_seeded_replication_covers_the_known_mean() {
    // 30 replications of steady-over (Poisson 12/s for an hour) against
    // Team, which admits everything: requests per seed are Poisson with mean
    // exactly 43,200 and standard deviation sqrt(43,200) = 207.8.
    let dir = TempDir::new("ci");
    let out = dir.path("out");
    let table = ok(&["sweep", "--plans", "team", "--clients", "none", "--seeds", "1..30", "--out", &out]).stdout;
    assert!(table.contains("1 point × 30 seeds (mean ± 95% CI)"), "{table}");
    assert!(table.contains("100.0% ± 0.0"), "{table}");
    let results: Value = serde_json::from_str(&read(Path::new(&out).join("results.json"))).unwrap();
    let stats = &results["statistics"][0]["metrics"];
    let (mean, ci, n) = (
        stats["requests"]["mean"].as_f64().unwrap(),
        stats["requests"]["ci95"].as_f64().unwrap(),
        stats["requests"]["n"].as_u64().unwrap(),
    );
    assert_eq!(n, 30);
    assert!((mean - 43_200.0).abs() <= ci, "the 95% interval {mean} ± {ci} covers 43,200");
    // Its width is what the t quantile and sigma/sqrt(n) give, within sampling error.
    let expected = 2.0452 * 43_200f64.sqrt() / 30f64.sqrt();
    assert!(ci > 0.6 * expected && ci < 1.4 * expected, "{ci} vs {expected}");
    // statistics.csv carries the same.
    let stats_csv = read(Path::new(&out).join("statistics.csv"));
    let header: Vec<&str> = stats_csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = stats_csv.lines().nth(1).unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "requests_mean").unwrap();
    assert_eq!(row[col].parse::<f64>().unwrap(), mean);
    // --replications 30 is the same sweep as --seeds 1..30 for a default seed of 1.
    let sweep =
        Sweep::prepare(spec("policies/runinfra.toml", "traces/sample.csv", &["pro"], &["none"], (1..=30).collect()))
            .unwrap();
    assert_eq!(sweep.len(), 30);
}

// ---------------------------------------------------------------------------
// The solver.

fn solve_spec(base: SweepSpec, vary: &str, targets: &[&str]) -> SolveSpec {
    SolveSpec {
        base,
        vary: vary.into(),
        targets: targets.iter().map(|s| s.to_string()).collect(),
        direction: Direction::Smallest,
        require: Require::Every,
        range: None,
        scan: 8,
        threads: 2,
    }
}

#[test]
fn the_solver_finds_the_smallest_pro_rate_for_12_requests_per_second() {
    // README: the smallest RunInfra Pro rate at which 99% of the default
    // trace's requests succeed with a p99 wait of at most 2 s.
    let base = spec("policies/runinfra.toml", "traces/steady-over.toml", &["pro"], &["openai-python"], vec![2]);
    let s = solve_spec(base, "pro.rpm.rate", &["success_ratio >= 0.99", "p99_wait <= 2s"]);
    let never = AtomicBool::new(false);
    let sol = solve(&s, &never, &mut |_| {}).unwrap();
    assert_eq!(sol.answer, Some(717), "{:?}", sol.failure);
    assert_eq!(sol.answer_setting.as_deref(), Some("717/min"));
    let below = sol.evaluations.iter().find(|e| e.value == 716).expect("the value below is evaluated");
    assert!(!below.holds);
    assert_eq!(sol.verification.len(), 1);
    let v = sol.verification[0].summary.as_ref().unwrap();
    assert!(v.success_ratio >= 0.99 && v.time_to_success.p99_ns.unwrap() <= 2_000_000_000);
    assert!(sol.failure.is_none());
}

#[test]
fn the_documented_aicredits_budget_is_the_smallest_without_402s() {
    // README: `ratesim solve --policy policies/aicredits.toml --vary
    // budget.budget.limit --target 'denied_402 == 0' --trace
    // traces/diurnal-day.toml --client aicredits-jitter` answers 546,100.
    // Check the answer and its neighbour directly (a full search of the
    // day-long trace takes a minute); the search itself is checked on the
    // first hours of the day below.
    let run = |budget: u64| -> u64 {
        let dir = TempDir::new("budget");
        let out = dir.path("o");
        let set = format!("budget.budget.limit={budget}");
        ok(&[
            "run",
            "--policy",
            "policies/aicredits.toml",
            "--plan",
            "budget",
            "--trace",
            "traces/diurnal-day.toml",
            "--client",
            "aicredits-jitter",
            "--set",
            &set,
            "--quiet",
            "--out",
            &out,
        ]);
        summary_of(&out)["denied_by_status"]["402"].as_u64().unwrap_or(0)
    };
    assert_eq!(run(AICREDITS_BUDGET), 0);
    assert!(run(AICREDITS_BUDGET - 1) > 0);
    // The search on the first 6 hours.
    let mut base =
        spec("policies/aicredits.toml", "traces/diurnal-day.toml", &["budget"], &["aicredits-jitter"], vec![4]);
    base.until = Some(6 * 3600 * 1_000_000_000);
    let s = solve_spec(base, "budget.budget.limit", &["denied_402 == 0"]);
    let sol = solve(&s, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let a = sol.answer.expect("an answer");
    let at = |v: u64| sol.evaluations.iter().find(|e| e.value == v).map(|e| e.holds);
    assert_eq!((at(a), at(a - 1)), (Some(true), Some(false)));
    assert!(a < AICREDITS_BUDGET, "six hours need less than the day: {a}");
}

/// The answer README documents for the AICredits budget question.
const AICREDITS_BUDGET: u64 = 546_100;

#[test]
fn the_solver_reports_a_non_monotone_parameter_instead_of_answering() {
    // A bucket of one request per 3600/c seconds and a key sending one
    // request every 20 s whose client waits out a Retry-After of at most
    // 5 s and gives up above. A request is admitted at once, or waits
    // (3600/c mod 20) s when that is at most 5 s, or gives up: the p99 wait
    // of the successes rises and falls as c grows (survivorship).
    let dir = TempDir::new("non-monotone");
    let policy = dir.write(
        "p.toml",
        "provider = \"Constructed\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"rph\"\nalgorithm = \"gcra\"\nrate = \"90/h\"\nburst = 1\n",
    );
    let trace = dir.write(
        "t.toml",
        "horizon = \"1h\"\nseed = 1\n[[population]]\nname = \"app\"\nclients = 1\narrival = { kind = \"constant\", rate = \"3/min\", phase = \"zero\" }\n",
    );
    let solve = |target: &str| {
        ratesim(&[
            "solve",
            "--policy",
            &policy,
            "--trace",
            &trace,
            "--client",
            "openai-python,retry_after=honour:5s:give-up",
            "--vary",
            "p.rph.rate",
            "--range",
            "1..180",
            "--target",
            target,
        ])
    };
    let out = solve("p99_wait <= 1s");
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("not monotone: the targets hold at 1/h but fail at 154/h"), "{}", out.stderr);
    assert!(!out.stdout.contains("answer:"), "{}", out.stdout);
    assert!(out.stdout.contains("note: time_to_success_p99_ns is not monotone"), "{}", out.stdout);
    // The success ratio is monotone here: the same search on it answers.
    let out = solve("success_ratio >= 0.5");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("answer: p.rph.rate = 90/h"), "{}", out.stdout);
}

// ---------------------------------------------------------------------------
// Sharding and merging.

#[test]
fn merging_shards_gives_the_unsharded_sweep_byte_for_byte() {
    let dir = TempDir::new("shards");
    let args = [
        "sweep",
        "--plans",
        "pro,pro-max",
        "--clients",
        "none;openai-python",
        "--seeds",
        "1..3",
        "--set",
        "*.rpm.burst=50,100",
        "--trace",
        "traces/sample.csv",
        "--quiet",
    ];
    let full = dir.path("full");
    let table = ok(&[&args[..], &["--out", &full, "--threads", "2"]].concat()).stdout;
    let mut parts = Vec::new();
    for k in 1..=3 {
        let part = dir.path(&format!("part-{k}"));
        let shard = format!("{k}/3");
        ok(&[&args[..], &["--out", &part, "--shard", &shard, "--threads", "1"]].concat());
        parts.push(part);
    }
    let merged = dir.path("merged");
    let merged_table =
        ok(&[&["sweep", "merge"][..], &parts.iter().map(String::as_str).collect::<Vec<_>>(), &["--out", &merged]]
            .concat())
        .stdout;
    for f in ["results.csv", "results.json", "statistics.csv"] {
        assert_eq!(read(Path::new(&full).join(f)), read(Path::new(&merged).join(f)), "{f}");
    }
    assert_eq!(table.replace(&full, "DIR"), merged_table.replace(&merged, "DIR"));
    // A missing shard, a shard twice, a part of another sweep: clear errors.
    let err = fails(&["sweep", "merge", &parts[0], &parts[2], "--out", &dir.path("m2")]);
    assert!(err.contains("missing shard 2/3 (given: 1/3, 3/3)"), "{err}");
    let err = fails(&["sweep", "merge", &parts[0], &parts[1], &parts[1], &parts[2], "--out", &dir.path("m3")]);
    assert!(err.contains("shard 2/3 is given twice"), "{err}");
    let other = dir.path("other");
    ok(&[
        "sweep",
        "--plans",
        "pro",
        "--clients",
        "none",
        "--trace",
        "traces/sample.csv",
        "--shard",
        "2/3",
        "--out",
        &other,
    ]);
    let err = fails(&["sweep", "merge", &parts[0], &other, &parts[2], "--out", &dir.path("m4")]);
    assert!(err.contains("is not a part of the same sweep") && err.contains("`plans` differ"), "{err}");
    // A part cut short is not a part.
    let cut = read(Path::new(&parts[1]).join("results.json"));
    std::fs::write(Path::new(&parts[1]).join("results.json"), &cut[..cut.len() / 2]).unwrap();
    let err = fails(&["sweep", "merge", &parts[0], &parts[1], &parts[2], "--out", &dir.path("m5")]);
    assert!(err.contains("cut short"), "{err}");
}

// ---------------------------------------------------------------------------
// Sweep outputs (issue 9: points 4, 7, 8, 16).

#[test]
fn the_sweep_table_shows_every_denial_status() {
    let out = ok(&[
        "sweep",
        "--policy",
        "policies/aicredits.toml",
        "--plans",
        "default,budget",
        "--clients",
        "none",
        "--trace",
        "traces/diurnal-day.toml",
    ])
    .stdout;
    let header = out.lines().find(|l| l.starts_with("plan")).unwrap();
    assert!(header.contains("402 rate") && header.contains("429 rate"), "{out}");
    let budget = out.lines().find(|l| l.starts_with("budget ")).unwrap();
    let cells: Vec<&str> = budget.split_whitespace().collect();
    let h: Vec<&str> = header.split("  ").map(str::trim).filter(|s| !s.is_empty()).collect();
    let col = h.iter().position(|c| *c == "402 rate").unwrap();
    let rate: f64 = cells[col].trim_end_matches('%').parse().unwrap();
    assert!(rate > 10.0, "the budget plan's 402s show: {budget}\n{header}");
}

#[test]
fn sweep_outputs_are_checked_before_any_scenario_runs() {
    // A day-long trace: were the path checked afterwards, the table would
    // have been printed first.
    let out = ratesim(&["sweep", "--trace", "traces/diurnal-day.toml", "--csv", "/nonexistent/x.csv"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("cannot create /nonexistent/x.csv"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "nothing ran: {}", out.stdout);
    // A directory that cannot be made: under a file.
    let out = ratesim(&["sweep", "--trace", "traces/diurnal-day.toml", "--out", "traces/sample.csv/out"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty() && out.stderr.contains("traces/sample.csv/out"), "{}", out.stderr);
    let err = fails(&["sweep", "--trace", "traces/sample.csv", "--csv", "traces/sample.csv"]);
    assert!(
        err.contains("--csv traces/sample.csv: this is the --trace traces/sample.csv")
            && err.contains("would destroy it"),
        "{err}"
    );
    let err = fails(&["sweep", "--threads", "3000"]);
    assert!(err.contains("--threads: at most 256 worker threads") && err.contains("3000"), "{err}");
}

#[test]
fn a_sweep_of_one_says_one_scenario_and_long_waits_fit_their_column() {
    let out = ok(&["sweep", "--trace", "traces/sample.csv", "--plans", "pro", "--clients", "none"]).stdout;
    assert!(out.contains("· 1 scenario\n"), "{out}");
    // RunAgent's monthly token budget: a runagent-backoff client waits for
    // next month's reset, so p99 is weeks (734 h in issue 9).
    let dir = TempDir::new("long-wait");
    let trace =
        dir.write("t.csv", &format!("t,key,tokens\n{}", (0..60).map(|i| format!("{i},k,5000\n")).collect::<String>()));
    let out = ok(&[
        "sweep",
        "--policy",
        "policies/runagent.toml",
        "--plans",
        "free",
        "--clients",
        "runagent-backoff",
        "--trace",
        &trace,
    ])
    .stdout;
    let header = out.lines().find(|l| l.starts_with("plan")).unwrap();
    let row = out.lines().find(|l| l.starts_with("free")).unwrap();
    assert!(row.ends_with(" d"), "a wait of days: {row}");
    assert_eq!(row.chars().count(), header.chars().count(), "the p99 cell fits its column:\n{header}\n{row}");
}

#[test]
fn sweep_results_stream_with_a_bounded_window() {
    // Job 0 is slow; the others may run ahead by at most the window
    // (16 for two threads), never by the whole list: memory stays bounded
    // however many scenarios there are.
    let handed = AtomicUsize::new(0);
    let worst = AtomicUsize::new(0);
    let never = AtomicBool::new(false);
    let mut order = Vec::new();
    run_ordered(
        2_000,
        2,
        &never,
        |i| {
            if i == 0 {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let ahead = i.saturating_sub(handed.load(Ordering::SeqCst));
            worst.fetch_max(ahead, Ordering::SeqCst);
            i
        },
        |i, r| {
            assert_eq!(i, r);
            order.push(i);
            handed.store(i + 1, Ordering::SeqCst);
            Ok::<(), ()>(())
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(order, (0..2_000).collect::<Vec<_>>());
    assert!(worst.load(Ordering::SeqCst) < 16, "ran {} ahead", worst.load(Ordering::SeqCst));
    // Stopped: no new job starts, and what was handed over is a prefix.
    let stop = AtomicBool::new(false);
    let mut got = Vec::new();
    let n = run_ordered(
        1_000,
        2,
        &stop,
        |i| {
            if i == 10 {
                stop.store(true, Ordering::SeqCst);
            }
            i
        },
        |i, _| {
            got.push(i);
            Ok::<(), ()>(())
        },
    )
    .unwrap()
    .unwrap();
    assert!((11..1_000).contains(&n), "{n}");
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

#[test]
fn results_files_do_not_depend_on_the_thread_count() {
    let dir = TempDir::new("threads");
    let mut files = Vec::new();
    for t in ["1", "2"] {
        let out = dir.path(t);
        ok(&[
            "sweep",
            "--plans",
            "pro,team",
            "--clients",
            "none;exp-full-jitter",
            "--seeds",
            "1,2",
            "--scale",
            "0.5,2",
            "--trace",
            "traces/sample.csv",
            "--threads",
            t,
            "--out",
            &out,
            "--quiet",
        ]);
        files.push(["results.csv", "results.json", "statistics.csv"].map(|f| read(Path::new(&out).join(f))));
    }
    assert_eq!(files[0], files[1]);
    let csv = &files[0][0];
    assert!(csv.lines().next().unwrap().contains(",scale,scale_keys,"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 2 * 2 * 2 * 2);
}

#[test]
fn an_interrupted_sweep_keeps_what_finished() {
    let dir = TempDir::new("interrupt");
    let out = dir.path("out");
    let child = Command::new(env!("CARGO_BIN_EXE_ratesim"))
        .args([
            "sweep",
            "--plans",
            "pro",
            "--clients",
            "openai-python",
            "--seeds",
            "1..400",
            "--threads",
            "1",
            "--out",
            &out,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first rows reach the file (rows are buffered, so a
    // dozen scenarios have finished), then press Ctrl-C.
    let csv = Path::new(&out).join("results.csv");
    for _ in 0..600 {
        if std::fs::read_to_string(&csv).map_or(0, |t| t.lines().count()) >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("interrupted: the first"), "{stderr}");
    let results: Value = serde_json::from_str(&read(Path::new(&out).join("results.json"))).expect("valid JSON");
    assert_eq!(results["complete"], false);
    let n = results["scenarios"].as_array().unwrap().len();
    assert!((1..400).contains(&n), "{n}");
    for (i, r) in results["scenarios"].as_array().unwrap().iter().enumerate() {
        assert_eq!(r["index"], i as u64);
        assert!(r["summary"]["requests"].as_u64().unwrap() > 40_000);
    }
    assert_eq!(read(&csv).lines().count(), n + 1);
}
