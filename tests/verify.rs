//! `ratesim verify`: the simulator's own decisions pass; logs with injected
//! faults fail and name the fault; the tolerance excuses only what is
//! within it; malformed logs give located errors; the CLI's exit status
//! says pass (0), fail (1) or could not check (2).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use ratesim::client::ClientSpec;
use ratesim::metrics::NoBuckets;
use ratesim::policy::{self, Policy};
use ratesim::sim::{JsonlDecisions, SimConfig, Simulation};
use ratesim::time::{parse_rfc3339, MILLISECOND, SECOND};
use ratesim::trace;
use ratesim::verify::{self, Class, LogReader, Options, Report};

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ratesim-verify-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn root(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The decisions file of `ratesim run` for this scenario.
fn decisions(policy: &Policy, plan: &str, trace_path: &Path, client: &str, start: &str) -> String {
    let plan = policy.plan(plan).unwrap();
    let config = SimConfig {
        start: parse_rfc3339(start).unwrap(),
        seed: 7,
        client: ClientSpec::parse(client).unwrap(),
        until: Some(2 * 3600 * SECOND),
        ..SimConfig::default()
    };
    let mut source = trace::open(trace_path, Some(7)).unwrap();
    let mut out = Vec::new();
    Simulation::new(policy, plan, config).run(&mut source, &mut NoBuckets, &mut JsonlDecisions(&mut out)).unwrap();
    String::from_utf8(out).unwrap()
}

fn check(policy: &Policy, plan: &str, log: &Path, options: Options) -> Report {
    let mut reader = LogReader::open(log).unwrap();
    verify::verify(policy, policy.plan(plan).unwrap(), &mut reader, &options).unwrap()
}

fn options(start: &str, tolerance: u64) -> Options {
    Options { start: parse_rfc3339(start).unwrap(), tolerance }
}

const JAN1: &str = "2026-01-01T00:00:00Z";

/// Sets `field` of JSON line `index` (0-based) of `log` with `f`.
fn edit(log: &str, index: usize, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut lines: Vec<String> = log.lines().map(str::to_string).collect();
    let mut v: Value = serde_json::from_str(&lines[index]).unwrap();
    f(v.as_object_mut().unwrap());
    lines[index] = v.to_string();
    lines.join("\n") + "\n"
}

fn rows(log: &str) -> Vec<Value> {
    log.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Every shipped policy with a trace meant for it, with retrying clients:
/// the simulator's decisions file verifies exactly, row for row, and every
/// guarantee holds.
#[test]
fn the_simulators_own_decisions_pass() {
    let dir = TempDir::new("own");
    let cases = [
        ("runinfra.toml", "pro", "traces/steady-over.toml", "openai-python", JAN1),
        ("runagent.toml", "pro", "traces/morning-burst.toml", "runagent-backoff", "2026-01-01T07:00:00Z"),
        ("runagent.toml", "free", "traces/sample.csv", "naive-immediate", JAN1),
        ("wriftai.toml", "default", "traces/flash-crowd.toml", "exp-full-jitter", JAN1),
        ("predictions-api.toml", "default", "traces/async-jobs-polling.toml", "predictions-node", JAN1),
        ("aicredits.toml", "budget", "traces/workspace-many-keys.toml", "aicredits-jitter", JAN1),
    ];
    for (file, plan, trace_path, client, start) in cases {
        let policy = policy::load(&root(&format!("policies/{file}"))).unwrap();
        let log = decisions(&policy, plan, &root(trace_path), client, start);
        let path = dir.write("own.jsonl", &log);
        let r = check(&policy, plan, &path, options(start, 0));
        let what = format!("{file} {plan} {trace_path} {client}");
        assert!(r.decisions > 1000 || trace_path.ends_with(".csv"), "{what}: {} decisions", r.decisions);
        assert_eq!(r.agree, r.decisions, "{what}:\n{}", verify::report::text(&r));
        assert!(r.pass(), "{what}:\n{}", verify::report::text(&r));
        assert!(r.compared.remaining > 0 && r.compared.reset > 0, "{what}: {:?}", r.compared);
    }
}

/// A trace with users, workspaces, unauthenticated rows, tokens, money and
/// service times: the decisions file carries those facts, so a plan with
/// per-user concurrency, token budgets and per-workspace spend verifies.
#[test]
fn request_facts_in_the_decisions_make_any_plan_verifiable() {
    let dir = TempDir::new("facts");
    let mut csv = String::from("t,key,user,workspace,endpoint,auth,tokens,cost,duration\n");
    for i in 0..400u64 {
        let key = format!("k{}", i % 5);
        let user = if i % 5 == 4 { String::new() } else { format!("u{}", i % 2) };
        let auth = if i % 7 == 3 { "false" } else { "true" };
        csv.push_str(&format!(
            "{}.{:03},{key},{user},w0,chat.completions,{auth},{},{},0.{:03}\n",
            i / 20,
            (i % 20) * 50,
            (i * 37) % 900,
            (i * 13) % 40,
            (i * 91) % 1000
        ));
    }
    let trace_path = dir.write("facts.csv", &csv);
    let toml = r#"
provider = "Facts"
[[plan]]
name = "p"
[[plan.limit]]
id = "rpm"
algorithm = "sliding-log"
rate = "6/10s"
[[plan.limit]]
id = "inflight"
algorithm = "concurrency"
max = 3
scope = "user"
[[plan.limit]]
id = "tokens"
algorithm = "budget"
unit = "tokens"
limit = 8000
period = "30s"
reserve = 100
scope = "user"
[[plan.limit]]
id = "spend"
algorithm = "budget"
unit = "USD"
limit = 2000
period = "day"
scope = "workspace"
status = 402
[[plan.limit]]
id = "anon"
algorithm = "fixed-window"
rate = "1/5s"
match.auth = "unauthenticated"
"#;
    let policy = policy::parse(toml, "facts.toml").unwrap();
    let log = decisions(&policy, "p", &trace_path, "openai-python", JAN1);
    assert!(log.contains("\"user\":\"u0\"") && log.contains("\"duration_ns\":") && log.contains("\"auth\":false"));
    let denied: Vec<String> =
        rows(&log).iter().filter(|r| r["allowed"] == false).map(|r| r["limit"].as_str().unwrap().to_string()).collect();
    for limit in ["rpm", "inflight", "tokens"] {
        assert!(denied.iter().any(|l| l == limit), "no denial by {limit}: the scenario does not exercise it");
    }
    let path = dir.write("facts.jsonl", &log);
    let r = check(&policy, "p", &path, options(JAN1, 0));
    assert_eq!(r.agree, r.decisions, "{}", verify::report::text(&r));
    assert!(r.pass());
    let inflight = r.guarantees.iter().find(|g| g.limit == "inflight").unwrap();
    assert!(inflight.note.is_none() && inflight.worst.as_ref().unwrap().requests == 3, "{inflight:?}");
}

/// 100 requests 10 ms apart on RunInfra Pro (the README's example).
fn first_second() -> (Policy, String) {
    let dir = TempDir::new("first-second");
    let mut csv = String::from("t,key\n");
    for i in 0..100 {
        csv.push_str(&format!("0.{i:02},key-1\n"));
    }
    let path = dir.write("fs.csv", &csv);
    let policy = policy::load(&root("policies/runinfra.toml")).unwrap();
    let log = decisions(&policy, "pro", &path, "none", JAN1);
    (policy, log)
}

#[test]
fn one_wrongful_admission_fails_and_is_named() {
    let dir = TempDir::new("admission");
    let (policy, log) = first_second();
    // Line 56 (0.55 s) is denied; the limiter admits it.
    assert_eq!(rows(&log)[55]["allowed"], false);
    let bad = edit(&log, 55, |r| {
        r.insert("allowed".into(), Value::Bool(true));
        r.insert("status".into(), 200.into());
    });
    let r = check(&policy, "pro", &dir.write("bad.jsonl", &bad), options(JAN1, 0));
    assert!(!r.pass());
    assert_eq!((r.disagree, r.count(Class::OverAdmission)), (1, 1), "{}", verify::report::text(&r));
    let d = r.first_divergence.as_ref().unwrap();
    assert_eq!((d.at.line, d.at.t, d.classes.as_slice()), (56, 550 * MILLISECOND, &[Class::OverAdmission][..]));
    assert!(d.at.detail.contains("until 0.6 s (50 ms later)"), "{}", d.at.detail);
    assert_eq!(d.context.len(), 7, "three rows either side");
    assert!(d.context[3].diverges && !d.context[2].diverges);
    // Model-independent: 56 admitted by 0.6 s where burst + d·rate allows 55.
    let g = &r.guarantees[0];
    let w = g.worst.as_ref().unwrap();
    assert!(!g.holds());
    assert_eq!((w.requests, w.from, w.to), (56, Some(r.origin), r.origin + 600 * MILLISECOND));
    assert!((w.excess_units() - 1.0).abs() < 1e-9, "{w:?}");
    let text = verify::report::text(&r);
    assert!(text.contains("FAIL: 1 disagreement; guarantee violated: rpm"), "{text}");
}

#[test]
fn a_retry_after_one_second_early_fails_and_is_named() {
    let dir = TempDir::new("retry");
    let toml = "provider = \"W\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"rpm\"\nalgorithm = \"fixed-window\"\nrate = \"5/min\"\n";
    let policy = policy::parse(toml, "w.toml").unwrap();
    let mut csv = String::from("t,key\n");
    for i in 0..20 {
        csv.push_str(&format!("{},k\n", i * 2));
    }
    let log = decisions(&policy, "p", &dir.write("t.csv", &csv), "none", JAN1);
    // The sixth request (10 s) is denied until the minute: retry 50 s.
    let row = &rows(&log)[5];
    assert_eq!((row["allowed"].clone(), row["retry_after_ns"].as_u64()), (Value::Bool(false), Some(50 * SECOND)));
    let bad = edit(&log, 5, |r| {
        r.insert("retry_after_ns".into(), (49 * SECOND).into());
    });
    let r = check(&policy, "p", &dir.write("bad.jsonl", &bad), options(JAN1, 0));
    assert_eq!((r.disagree, r.count(Class::WrongRetryAfter)), (1, 1), "{}", verify::report::text(&r));
    let first = r.classes.iter().find(|c| c.class == Class::WrongRetryAfter).unwrap().first.clone().unwrap();
    assert_eq!(first.line, 6);
    assert!(
        first.detail.contains("retry-after 49 s; the policy says 50 s (exactly 50 s): 1 s early"),
        "{}",
        first.detail
    );
    assert!(r.guarantees[0].holds(), "a wrong header breaks no window");
    assert!(!r.pass());
    // In whole seconds, as the Retry-After header: 49 is also 1 s early, 50 agrees.
    for (secs, ok) in [(50, true), (49, false)] {
        let header = edit(&log, 5, |r| {
            r.remove("retry_after_ns");
            r.insert("retry_after".into(), secs.into());
        });
        let r = check(&policy, "p", &dir.write("header.jsonl", &header), options(JAN1, 0));
        assert_eq!(r.pass(), ok, "Retry-After: {secs}\n{}", verify::report::text(&r));
    }
}

/// A fixed window whose boundary is one nanosecond late: the limiter counts
/// a request at `k·P − 1` in the new window. Exactly, it is an
/// over-admission one nanosecond early and a window over its limit; with a
/// tolerance of 1 ms both are excused.
#[test]
fn a_window_boundary_off_by_one_fails_and_is_named() {
    let dir = TempDir::new("boundary");
    let toml = "provider = \"W\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"rpm\"\nalgorithm = \"fixed-window\"\nrate = \"3/min\"\n";
    let policy = policy::parse(toml, "w.toml").unwrap();
    let csv = "t,key\n1,k\n2,k\n3,k\n4,k\n60,k\n61,k\n";
    let log = decisions(&policy, "p", &dir.write("t.csv", csv), "none", JAN1);
    let allowed: Vec<bool> = rows(&log).iter().map(|r| r["allowed"].as_bool().unwrap()).collect();
    assert_eq!(allowed, [true, true, true, false, true, true]);
    // The limiter's log: the request it saw "at the minute" really came 1 ns before.
    let bad = edit(&log, 4, |r| {
        r.insert("t_ns".into(), (60 * SECOND - 1).into());
    });
    let path = dir.write("bad.jsonl", &bad);
    let r = check(&policy, "p", &path, options(JAN1, 0));
    // The over-admission, and then the limiter's remaining at 61 s (its
    // window holds two, the policy's one): the replay follows its own
    // decisions.
    assert_eq!((r.disagree, r.count(Class::OverAdmission), r.count(Class::WrongRemaining)), (2, 1, 1));
    let d = r.first_divergence.as_ref().unwrap();
    assert_eq!(d.at.line, 5);
    assert!(d.at.detail.contains("until 60 s (1 ns later)"), "{}", d.at.detail);
    let g = &r.guarantees[0];
    assert!(!g.holds());
    let w = g.worst.as_ref().unwrap();
    assert_eq!((w.requests, w.from, w.to), (4, Some(r.origin), r.origin + 60 * SECOND));
    assert!(verify::report::text(&r).contains("k admitted 4 in [0 s, 60 s): exceeded by 1"));
    // Within a tolerance of 1 ms: excused, and the window is not certain;
    // the replay then follows the limiter (admitted at 60 s), so the next
    // row's remaining agrees.
    let r = check(&policy, "p", &path, options(JAN1, MILLISECOND));
    assert!(r.pass(), "{}", verify::report::text(&r));
    assert_eq!((r.excused, r.agree, r.classes[0].excused), (1, 5, 1));
}

/// A sliding log's guarantee is exact at its boundary: an admission exactly
/// one period after an entry is within `limit` per `(t − P, t]` (that entry
/// has left), one nanosecond earlier it is a window over its limit.
#[test]
fn a_rolling_window_guarantee_is_exact_at_its_boundary() {
    let dir = TempDir::new("rolling");
    let toml = "provider = \"W\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"w\"\nalgorithm = \"sliding-log\"\nrate = \"3/10s\"\n";
    let policy = policy::parse(toml, "w.toml").unwrap();
    let good = "t,key,allowed\n0,k,true\n1,k,true\n2,k,true\n3,k,false\n10,k,true\n10,k,false\n";
    let r = check(&policy, "p", &dir.write("good.csv", good), options(JAN1, 0));
    assert!(r.pass() && r.agree == 6, "{}", verify::report::text(&r));
    let w = r.guarantees[0].worst.as_ref().unwrap();
    assert_eq!((w.requests, w.excess), (3, 0), "{w:?}");
    // One nanosecond early: the window (−1 ns, 9.999999999 s] holds four
    // (shown from the log's start).
    let early = "t,key,allowed\n0,k,true\n1,k,true\n2,k,true\n9.999999999,k,true\n";
    let r = check(&policy, "p", &dir.write("early.csv", early), options(JAN1, 0));
    assert_eq!((r.disagree, r.count(Class::OverAdmission)), (1, 1));
    let g = &r.guarantees[0];
    let w = g.worst.as_ref().unwrap();
    assert!(!g.holds());
    assert_eq!((w.requests, w.excess, w.to), (4, 1, r.origin + 10 * SECOND - 1), "{w:?}");
    let text = verify::report::text(&r);
    println!("{text}");
    assert!(text.contains("k admitted 4 in [0 s, 9.999999999 s]: exceeded by 1"), "{text}");
}

/// A limiter that wrongly refuses a run of requests: under-admissions, and
/// the longest wrongful refusal names the key and the span.
#[test]
fn wrongful_refusals_are_reported_as_a_run() {
    let dir = TempDir::new("refusal");
    let (policy, log) = first_second();
    let mut bad = log.clone();
    for i in 10..15 {
        bad = edit(&bad, i, |r| {
            r.insert("allowed".into(), Value::Bool(false));
            r.insert("status".into(), 429.into());
        });
    }
    let r = check(&policy, "pro", &dir.write("bad.jsonl", &bad), options(JAN1, 0));
    assert!(r.count(Class::UnderAdmission) >= 5, "{}", verify::report::text(&r));
    let f = r.longest_refusal.as_ref().unwrap();
    assert_eq!(
        (f.key.as_str(), f.requests, f.from, f.to, f.lines),
        ("key-1", 5, 100 * MILLISECOND, 140 * MILLISECOND, (11, 15))
    );
    // Refusing is never a violation of the limits themselves.
    assert!(r.guarantees.iter().all(|g| g.holds()));
}

/// A log as an HTTP limiter writes it: CSV, status only, header values in
/// whole seconds, RFC 3339 times.
#[test]
fn an_http_style_csv_log_verifies_against_header_values() {
    let dir = TempDir::new("http");
    let policy = policy::load(&root("policies/runinfra.toml")).unwrap();
    let (_, log) = first_second();
    let mut csv = String::from("t,key,status,remaining,reset,retry_after\n");
    for r in rows(&log) {
        let t = r["t_ns"].as_u64().unwrap();
        let reset = parse_rfc3339(JAN1).unwrap() + r["reset_ns"].as_u64().unwrap();
        let retry = r["retry_after_ns"].as_u64().map_or(String::new(), |ns| ns.div_ceil(SECOND).max(1).to_string());
        csv.push_str(&format!(
            "2026-01-01T00:00:00.{:09}Z,{},{},{},{},{retry}\n",
            t,
            r["key"].as_str().unwrap(),
            r["status"],
            r["remaining"],
            reset.div_ceil(SECOND)
        ));
    }
    let path = dir.write("http.csv", &csv);
    let r = check(&policy, "pro", &path, options(JAN1, 0));
    assert!(r.pass(), "{}", verify::report::text(&r));
    assert_eq!((r.compared.retry_after, r.compared.reset, r.compared.status), (42, 100, 42));
    // A limiter whose remaining is off by one on one row.
    let broken = csv.replacen(",200,49,", ",200,48,", 1);
    let r = check(&policy, "pro", &dir.write("off.csv", &broken), options(JAN1, 0));
    assert_eq!(r.count(Class::WrongRemaining), 1);
    assert!(r.classes[3].first.as_ref().unwrap().detail.contains("remaining 48; the policy says 49 (rpm)"));
}

fn error_of(dir: &TempDir, name: &str, text: &str) -> String {
    let policy = policy::load(&root("policies/runinfra.toml")).unwrap();
    let path = dir.write(name, text);
    let result = LogReader::open(&path)
        .and_then(|mut log| verify::verify(&policy, policy.plan("pro").unwrap(), &mut log, &Options::default()));
    match result {
        Ok(_) => panic!("{name} was accepted"),
        Err(e) => e.to_string().replace(&dir.0.display().to_string(), "DIR"),
    }
}

#[test]
fn malformed_logs_give_located_errors() {
    let dir = TempDir::new("errors");
    let cases = [
        ("a.jsonl", "{\"t_ns\":0,\"key\":\"k\"}\n", "DIR/a.jsonl:1: field `allowed`: expected `allowed` (true or false) or the HTTP `status` in every row; this row gives neither"),
        ("b.jsonl", "{\"t_ns\":5,\"key\":\"k\",\"allowed\":true}\n{\"t_ns\":4,\"key\":\"k\",\"allowed\":true}\n", "DIR/b.jsonl:2:9: field `t_ns`: out of time order: t_ns = 4 comes before t_ns = 5 on line 1; rows must be in non-decreasing time order"),
        ("c.jsonl", "{\"t_ns\":5,\"key\":\"k\",\"allowed\":true}\n{\"t\":6,\"key\":\"k\",\"allowed\":true}\n", "DIR/c.jsonl:2: field `t`: this row gives its time in `t`, but the log gives `t_ns` (since line 1); use one per file"),
        ("d.csv", "t,key,allowd\n0,k,true\n", "DIR/d.csv:1:3: field `allowd`: unknown column; the accepted columns are t, key, user, workspace, endpoint, auth, tokens, cost, duration, t_ns, allowed, status, limit, remaining, reset_ns, reset, reset_after, retry_after_ns, retry_after, request, attempt, kind, received_ns, duration_ns, time, client_request_id, client_retry_count, delay_ns"),
        ("e.csv", "t,t_ns,key,allowed\n0,0,k,true\n", "DIR/e.csv:1: field `t_ns`: give the time once, in `t` or in `t_ns`, not both"),
        ("f.csv", "key,allowed\nk,true\n", "DIR/f.csv:1: field `t`: missing required column; the header must name `t` (or `t_ns`) and `key`, found columns key, allowed"),
        ("g.csv", "t,key,status\n0,k,42\n", "DIR/g.csv:2:3: field `status`: expected an HTTP status (100 to 599), found \"42\""),
        ("h.jsonl", "{\"t_ns\":0,\"key\":\"k\",\"allowed\":\"maybe\"}\n", "DIR/h.jsonl:1:38: field `allowed`: expected true or false (or 1 or 0), found \"maybe\""),
        ("i.csv", "t,key,allowed,retry_after\n0,k,false,soon\n", "DIR/i.csv:2:4: field `retry_after`: expected seconds until a retry in decimal seconds, found \"soon\""),
        ("j.txt", "", "DIR/j.txt: expected a decision log (.csv, .jsonl or .ndjson)"),
    ];
    for (name, text, expected) in cases {
        assert_eq!(error_of(&dir, name, text), expected, "{name}");
    }
}

fn ratesim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ratesim")).args(args).current_dir(root("")).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn the_exit_status_says_pass_fail_or_cannot_check() {
    let dir = TempDir::new("cli");
    let (_, log) = first_second();
    let good = dir.write("good.jsonl", &log);
    let bad = dir.write(
        "bad.jsonl",
        &edit(&log, 55, |r| {
            r.insert("allowed".into(), Value::Bool(true));
        }),
    );
    let args = |p: &Path| {
        vec![
            "verify".to_string(),
            "--policy".into(),
            "policies/runinfra.toml".into(),
            "--plan".into(),
            "pro".into(),
            p.display().to_string(),
        ]
    };
    let run = |extra: &[&str], p: &Path| {
        let mut a = args(p);
        a.extend(extra.iter().map(|s| s.to_string()));
        ratesim(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (code, out, _) = run(&[], &good);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("PASS: the limiter agrees with the policy\n"), "{out}");
    let (code, out, _) = run(&["--json"], &bad);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["pass"].clone(), v["disagree"].clone()), (Value::Bool(false), Value::from(1)));
    assert_eq!(v["classes"]["over_admission"]["first"]["line"], 56);
    assert_eq!(v["first_divergence"]["t_ns"], 550_000_000);
    assert_eq!(v["guarantees"][0]["holds"], false);
    let (code, _, err) = run(&[], &dir.0.join("missing.jsonl"));
    assert_eq!(code, 2);
    assert!(err.starts_with("error: ") && err.contains("missing.jsonl: cannot open the trace"), "{err}");
    let (code, _, err) = run(&["--tolerance", "soon"], &good);
    assert_eq!(code, 2);
    assert!(err.starts_with("error: --tolerance: "), "{err}");
    let (code, _, err) =
        ratesim(&["verify", "--policy", "policies/runinfra.toml", "--plan", "gold", good.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no plan named \"gold\"; its plans are: pro, pro-max, team, team-max, enterprise"), "{err}");
}

mod random {
    //! On random boundary-finding traces (from `ratesim::testing`) over a
    //! composed plan: the simulator's decisions verify exactly, and flipping
    //! any one decision is caught at that very row.

    use super::*;
    use proptest::prelude::*;
    use ratesim::testing::{materialize, trace, Config};
    use ratesim::time::format_decimal_seconds;

    const PLAN: &str = r#"
provider = "Composed"
[[plan]]
name = "p"
[[plan.limit]]
id = "burst"
algorithm = "gcra"
rate = "3/s"
burst = 2
[[plan.limit]]
id = "minute"
algorithm = "sliding-counter"
rate = "6/10s"
scope = "user"
[[plan.limit]]
id = "inflight"
algorithm = "concurrency"
max = 2
lease = "4s"
scope = "user"
[[plan.limit]]
id = "tokens"
algorithm = "budget"
unit = "tokens"
limit = 40
period = "15s"
reserve = 5
"#;

    fn trace_csv(arrivals: &[ratesim::testing::Arrival], start: u64) -> String {
        let mut csv = String::from("t,key,user,endpoint,auth,tokens,cost,duration\n");
        for a in arrivals {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                format_decimal_seconds(a.at - start),
                a.key,
                a.user.as_deref().unwrap_or(""),
                a.endpoint,
                a.authenticated,
                a.tokens,
                a.money,
                format_decimal_seconds(a.service.unwrap_or(10 * 86_400 * SECOND)),
            ));
        }
        csv
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn own_decisions_verify_and_any_flip_is_caught(
            steps in trace::steps(&Config::default()),
            flip in any::<prop::sample::Index>(),
        ) {
            let dir = TempDir::new(&format!("random-{:x}", flip.index(usize::MAX)));
            let policy = policy::parse(PLAN, "composed.toml").unwrap();
            let config = Config::default();
            let arrivals = materialize(&policy.plans[0], &config, &steps);
            let trace_path = dir.write("t.csv", &trace_csv(&arrivals, config.start));
            let log = decisions(&policy, "p", &trace_path, "none", JAN1);
            let r = check(&policy, "p", &dir.write("own.jsonl", &log), options(JAN1, 0));
            prop_assert_eq!(r.agree, r.decisions, "{}", verify::report::text(&r));
            prop_assert!(r.pass());
            let i = flip.index(arrivals.len());
            let bad = edit(&log, i, |row| {
                let allowed = row["allowed"].as_bool().unwrap();
                row.insert("allowed".into(), Value::Bool(!allowed));
                row.insert("status".into(), if allowed { 429 } else { 200 }.into());
            });
            let r = check(&policy, "p", &dir.write("bad.jsonl", &bad), options(JAN1, 0));
            prop_assert!(!r.pass());
            prop_assert_eq!(r.first_divergence.as_ref().unwrap().at.line, i as u64 + 1);
        }
    }
}

/// Every dialect of `examples/dialects.toml` against a retrying client: the
/// simulator's decisions (with the nginx plan's delays) verify exactly.
#[test]
fn dialect_plans_verify_their_own_decisions() {
    let dir = TempDir::new("dialects");
    let policy = policy::load(&root("examples/dialects.toml")).unwrap();
    let mut csv = String::from("t,key,duration\n");
    for i in 0..300u64 {
        csv.push_str(&format!("{}.{:03},k{},0.{:03}\n", i / 10, (i % 10) * 97, i % 3, (i * 37) % 1000));
    }
    let trace_path = dir.write("t.csv", &csv);
    for plan in policy.plan_names() {
        let log = decisions(&policy, plan, &trace_path, "exp-full-jitter", JAN1);
        let r = check(&policy, plan, &dir.write("d.jsonl", &log), options(JAN1, 0));
        assert_eq!(r.agree, r.decisions, "{plan}\n{}", verify::report::text(&r));
        assert!(r.pass(), "{plan}");
        assert!(r.policy_admitted < r.decisions, "{plan}: nothing denied");
        if plan == "nginx" {
            assert!(r.compared.delay > 0 && log.contains("\"delay_ns\":"), "nginx delays");
        }
    }
}

/// `verify --dialect nginx`: a log of a plan as nginx enforces it agrees
/// with the plan read in that dialect, not with the textbook leaky bucket.
#[test]
fn the_dialect_option_reads_the_plan_as_that_implementation() {
    let dir = TempDir::new("dialect-option");
    let mut policy = policy::load(&root("policies/runinfra.toml")).unwrap();
    let textbook = policy.plan("pro").unwrap().clone();
    let nginx = verify::in_dialect(&textbook, ratesim::engines::Dialect::Nginx).unwrap();
    let index = policy.plans.iter().position(|p| p.name == "pro").unwrap();
    policy.plans[index] = nginx;
    let mut csv = String::from("t,key\n");
    for i in 0..400u64 {
        csv.push_str(&format!("{}.{:09},key-1\n", i / 50, (i % 50) * 19_999_999));
    }
    let log = decisions(&policy, "pro", &dir.write("t.csv", &csv), "none", JAN1);
    let path = dir.write("nginx.jsonl", &log);
    let args = ["verify", "--policy", "policies/runinfra.toml", "--plan", "pro", path.to_str().unwrap()];
    let (code, out, _) = ratesim(&[&args[..], &["--dialect", "nginx"]].concat());
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(&format!("{}  ·  RunInfra / pro as nginx enforces it\n", path.display())), "{out}");
    let (code, out, _) = ratesim(&args);
    assert_eq!(code, 1, "the textbook bucket disagrees with nginx's: {out}");
    let (code, _, err) = ratesim(&[&args[..], &["--dialect", "haproxy"]].concat());
    assert_eq!(code, 2);
    assert!(err.contains("--dialect: unknown dialect \"haproxy\"; expected one of python-limits, redis-incr-expire, envoy-local, nginx"), "{err}");
    let (code, _, err) = ratesim(&[&args[..], &["--dialect", "python-limits"]].concat());
    assert_eq!(code, 2);
    assert!(err.contains("limit \"rpm\": python-limits"), "{err}");
}
