//! The official OpenAI SDKs for Python (PyPI `openai`) and Node (npm
//! `openai`), at their default retry settings, against `ratesim serve`:
//! the server log gives each SDK's actual retry schedule (attempts per
//! request, waits, `Retry-After` honoured or not, behaviour above its cap),
//! `retry-after-ms` and `x-should-retry` obeyed), and the simulator's preset
//! for that SDK (`openai-python`, `openai-node`) must agree with it: the
//! same attempt counts, every wait within the preset's jitter bounds.
//!
//! Each scenario is a server of its own on a free loopback port; the SDK
//! script (tests/peers/python/sdk_retries.py, tests/peers/node/sdk_retries.mjs)
//! runs the scenarios one after another and prints what the SDK returned.
//! Plans are chosen so the whole run takes seconds: RunInfra Pro as
//! published (Retry-After 1 s), and small policies whose Retry-After is 2 s,
//! absent, or 10 minutes (above both SDKs' caps), that send
//! `retry-after-ms: 1200` beside `Retry-After: 2`, `x-should-retry: false`
//! on a 429, and `x-should-retry: true` on a 402.
//!
//! The preset is asked about each logged attempt with the retry headers the
//! server sent: [`retry_headers`] (the function `render` writes them with)
//! of the logged status and exact wait; `tests/serve.rs` checks with curl
//! that the server sends exactly those.

#[allow(dead_code)] // the property-test helpers of `common` are not used here
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::peer::require;
use common::serve::{scratch, Server};
use ratesim::client::{ClientSpec, Response, RetryChoice};
use ratesim::engines::Retry;
use ratesim::policy::{retry_headers, PlanDecision, Policy, RetryHeaders, Tickets};
use ratesim::time::Nanos;
use serde_json::{json, Value};

const MS: u64 = 1_000_000;

/// How much later than the SDK's own wait the next attempt may reach the
/// server: the response's way back, the SDK's bookkeeping, the request's way
/// there, on a busy two-core machine (up to 0.27 s seen for the eighth of
/// eight concurrent Python retries). Small enough to tell the waits apart
/// that the scenarios are built to separate: 1.2 s (`retry-after-ms`) from
/// 2 s (`Retry-After`), 0.5 s from 1 s.
const SLACK: u64 = 450 * MS;
/// How much earlier: timers that fire up to a millisecond early (Node rounds
/// to milliseconds).
const EARLY: u64 = 2 * MS;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// One gcra limit of `rate`, burst 1, on every request; `response` is the
/// policy's `[response]` body.
fn bucket_policy(dir: &Path, name: &str, rate: &str, response: &str) -> PathBuf {
    let text = format!(
        "provider = \"SDK test\"\n[response]\n{response}\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"bucket\"\nalgorithm = \"gcra\"\nrate = \"{rate}\"\nburst = 1\n"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

struct Scenario {
    name: &'static str,
    policy: PathBuf,
    plan: &'static str,
    /// (request id, key, stream)
    requests: Vec<(String, String, bool)>,
    sequential: bool,
    /// Requests the test sends on the SDK's key just before the SDK does,
    /// so the SDK's own few requests meet a full bucket.
    prefill: usize,
}

fn scenarios(dir: &Path) -> Vec<Scenario> {
    let many = |prefix: &str, n: usize, key: &str, stream_every: usize| -> Vec<(String, String, bool)> {
        (0..n).map(|i| (format!("{prefix}{i}"), key.to_string(), stream_every > 0 && i % stream_every == 0)).collect()
    };
    // A budget of one token, spent by the first completion.
    let budget = |name: &str, response: &str, period: &str| -> PathBuf {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!("provider = \"SDK test\"\n[response]\n{response}\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"tokens\"\nalgorithm = \"budget\"\nunit = \"tokens\"\nlimit = 1\nperiod = \"{period}\"\nreserve = 0\nstatus = 402\ncode = \"insufficient_quota\"\n"),
        )
        .unwrap();
        path
    };
    vec![
        // RunInfra Pro as published: the test spends the key's burst of 50,
        // then the SDK sends 8 at once (3 streams): they are told
        // `Retry-After: 1`, and one more passes every 120 ms.
        Scenario {
            name: "runinfra-pro",
            policy: repo("policies/runinfra.toml"),
            plan: "pro",
            requests: many("pro-", 8, "sk-pro", 3),
            sequential: false,
            prefill: 50,
        },
        // One every 2 s: four at once need three rounds; the last of them
        // has used its two retries by then.
        Scenario {
            name: "retry-after-2s",
            policy: bucket_policy(dir, "every-2s", "1/2s", ""),
            plan: "p",
            requests: many("ra2-", 4, "sk-ra2", 0),
            sequential: false,
            prefill: 0,
        },
        // No Retry-After at all: the SDK's own backoff.
        Scenario {
            name: "no-retry-after",
            policy: bucket_policy(dir, "no-header", "1/min", "retry_after_on = []"),
            plan: "p",
            requests: many("nra-", 2, "sk-nra", 0),
            sequential: false,
            prefill: 0,
        },
        // Retry-After 600: above both SDKs' caps (Python 120 s, Node 60 s).
        Scenario {
            name: "above-cap",
            policy: bucket_policy(dir, "every-10min", "1/10min", ""),
            plan: "p",
            requests: many("cap-", 2, "sk-cap", 0),
            sequential: false,
            prefill: 0,
        },
        // A spent budget answers 402, which neither SDK retries.
        Scenario {
            name: "budget-402",
            policy: budget("budget", "", "lifetime"),
            plan: "p",
            requests: many("402-", 2, "sk-402", 0),
            sequential: true,
            prefill: 0,
        },
        // One every 1.2 s, told as `Retry-After: 2` (whole seconds, rounded
        // up) and `retry-after-ms: 1200`: the SDKs read the milliseconds.
        Scenario {
            name: "retry-after-ms",
            policy: bucket_policy(dir, "millis", "5/6s", "retry_after_ms = true"),
            plan: "p",
            requests: many("ms-", 2, "sk-ms", 0),
            sequential: false,
            prefill: 0,
        },
        // `x-should-retry: false` on a 429 whose retry is 2 s away (more
        // than the policy's 1 s): the SDKs give up although they retry 429s.
        Scenario {
            name: "should-retry-false",
            policy: bucket_policy(dir, "no-retry", "1/2s", "x_should_retry = \"1s\""),
            plan: "p",
            requests: many("nsr-", 2, "sk-nsr", 0),
            sequential: false,
            prefill: 0,
        },
        // `x-should-retry: true` on the 402 of a daily budget (it will be
        // admitted again tomorrow): the SDKs retry a status they otherwise
        // do not, after their own backoff (no Retry-After on a 402).
        Scenario {
            name: "should-retry-402",
            policy: budget("daily-budget", "x_should_retry = true", "day"),
            plan: "p",
            requests: many("sr402-", 2, "sk-sr402", 0),
            sequential: true,
            prefill: 0,
        },
    ]
}

/// What the SDK script printed for one request.
#[derive(Debug)]
struct Outcome {
    ok: bool,
    status: Option<u64>,
}

/// One request's attempts as the server logged them.
#[derive(Debug)]
struct Attempt {
    t_ns: u64,
    /// The arrival instant, ns since the Unix epoch.
    at: Nanos,
    status: u64,
    /// The denying limit's error code (empty when admitted).
    code: String,
    retry_count: Option<u64>,
    /// The retry headers the response carried.
    headers: RetryHeaders,
}

impl Attempt {
    /// The response as the SDK (and the preset) saw it.
    fn response(&self) -> Response<'_> {
        Response { status: self.status as u16, code: &self.code, headers: self.headers, now: self.at }
    }

    /// `429 (Retry-After 2, retry-after-ms 1200, x-should-retry false)`.
    fn label(&self) -> String {
        let h = &self.headers;
        let mut parts = Vec::new();
        if let Some(v) = h.retry_after {
            parts.push(format!("Retry-After {}", v.to_header()));
        }
        if let Some(ms) = h.retry_after_ms {
            parts.push(format!("retry-after-ms {ms}"));
        }
        if let Some(b) = h.should_retry {
            parts.push(format!("x-should-retry {b}"));
        }
        match parts.is_empty() {
            true => self.status.to_string(),
            false => format!("{} ({})", self.status, parts.join(", ")),
        }
    }
}

/// The retry headers the server sent with a logged denial: what
/// [`retry_headers`] (the function `policy::render` writes them with) gives
/// for its status and its exact wait (none logged: it can never be
/// admitted). The plans of these tests have no concurrency limit, whose
/// unknown retry instant would log no wait either.
fn sent_headers(policy: &Policy, line: &Value, at: Nanos) -> RetryHeaders {
    if line["allowed"] == true {
        return RetryHeaders::default();
    }
    let decision = PlanDecision {
        allowed: false,
        status: line["status"].as_u64().unwrap() as u16,
        denied_by: None,
        denial: None,
        reported: None,
        retry: line["retry_after_ns"].as_u64().map_or(Retry::Never, |w| Retry::At(at + w)),
        tickets: Tickets::default(),
        applied: 1,
        delay: 0,
    };
    retry_headers(&policy.response, &decision, at)
}

struct Run {
    version: String,
    /// scenario → request id → attempts (arrival order)
    attempts: BTreeMap<String, BTreeMap<String, Vec<Attempt>>>,
    outcomes: BTreeMap<(String, String), Outcome>,
}

/// One SDK at a time: waits are measured at the server, and a second SDK
/// busy on the same two cores would stretch them.
static ONE_SDK_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `program args` (an SDK script) against every scenario.
fn run_sdk(name: &str, program: &Path, args: &[PathBuf]) -> Run {
    let _turn = ONE_SDK_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch(&format!("sdk-{name}"));
    let scenarios = scenarios(&dir);
    let servers: Vec<Server> = scenarios.iter().map(|s| Server::start(&dir, s.name, &s.policy, s.plan, &[])).collect();
    let plan = json!({"scenarios": scenarios.iter().zip(&servers).map(|(s, srv)| json!({
        "name": s.name,
        "base_url": format!("{}/v1", srv.url()),
        "sequential": s.sequential,
        "prefill": s.prefill > 0,
        "requests": s.requests.iter().map(|(id, key, stream)| json!({"id": id, "key": key, "stream": stream})).collect::<Vec<_>>(),
    })).collect::<Vec<_>>()});
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        // Bounded: a hung script is killed (by its pid) after 90 s.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(90) {
            std::thread::sleep(Duration::from_millis(100));
            // SAFETY: signal 0 only checks that our child still exists.
            if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0 {
                return false;
            }
        }
        // SAFETY: kill(2) on our own child's pid, not yet reaped (the test
        // thread waits on it).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        true
    });
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{plan}").unwrap();
    let mut stdout_lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        match serde_json::from_str::<Value>(&line).ok().and_then(|v| v["ready"].as_str().map(str::to_string)) {
            Some(ready) => {
                let (s, server) = scenarios.iter().zip(&servers).find(|(s, _)| s.name == ready).expect("a scenario");
                let key = &s.requests[0].1;
                for _ in 0..s.prefill {
                    common::serve::chat(server.port, Some(key), "prefill", "");
                }
                writeln!(stdin, "go").unwrap();
            }
            None => stdout_lines.push(line),
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(!watchdog.join().unwrap(), "the {name} SDK script ran for more than 90 s");
    let stdout = stdout_lines.join("\n");
    assert!(out.status.success(), "{name} SDK script failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let mut lines = stdout.lines().map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l:?}: {e}")));
    let version = lines.next().expect("a version line")["version"].as_str().unwrap().to_string();
    let outcomes = lines
        .map(|l| {
            let key = (l["scenario"].as_str().unwrap().to_string(), l["id"].as_str().unwrap().to_string());
            (key, Outcome { ok: l["ok"].as_bool().unwrap(), status: l["status"].as_u64() })
        })
        .collect();
    let mut attempts = BTreeMap::new();
    for (s, server) in scenarios.iter().zip(servers) {
        let policy = ratesim::policy::load(&s.policy).unwrap();
        let plan = policy.plans.iter().find(|p| p.name == s.plan).unwrap();
        let (_, log) = server.stop();
        let mut by_id: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
        for l in &log {
            // Lines without the id are the test's own prefill requests.
            let Some(id) = l["client_request_id"].as_str() else { continue };
            let at = ratesim::time::parse_rfc3339(l["time"].as_str().unwrap()).unwrap();
            let code = l["limit"].as_str().map_or(String::new(), |id| {
                plan.limits.iter().find(|limit| limit.id == id).expect("a limit of the plan").code.clone()
            });
            by_id.entry(id.to_string()).or_default().push(Attempt {
                t_ns: l["t_ns"].as_u64().unwrap(),
                at,
                status: l["status"].as_u64().unwrap(),
                code,
                retry_count: l["client_retry_count"].as_u64(),
                headers: sent_headers(&policy, l, at),
            });
        }
        for a in by_id.values_mut() {
            a.sort_by_key(|a| a.t_ns);
        }
        attempts.insert(s.name.to_string(), by_id);
    }
    Run { version, attempts, outcomes }
}

/// What a model of a client does after a failed attempt: give up, or retry
/// after a wait in `[lo, hi]` ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    GiveUp,
    Wait(u64, u64),
}

/// What preset `spec` does after attempt `attempt` failed with `response`:
/// give up, or wait within its jitter's bounds (the draws 0 and 1, as
/// `ratesim client explain` finds them).
fn preset_expects(spec: &ClientSpec, attempt: u32, response: &Response) -> Expect {
    let bound = |u: f64| spec.decide(attempt, response, 0, &mut || u).0;
    match (bound(0.0), bound(1.0)) {
        (RetryChoice::GiveUp, RetryChoice::GiveUp) => Expect::GiveUp,
        (RetryChoice::After(a), RetryChoice::After(b)) => Expect::Wait(a.min(b), a.max(b)),
        other => panic!("{} retries at one end of its jitter and not the other: {other:?}", spec.name),
    }
}

/// Checks every logged schedule of `run` against `expects` and returns a
/// table of what was observed.
fn check(sdk: &str, run: &Run, preset: &ClientSpec) -> String {
    let mut table = format!("{sdk} {}: observed retry schedules\n", run.version);
    let mut problems = Vec::new();
    for (scenario, requests) in &run.attempts {
        let mut shapes: BTreeMap<String, usize> = BTreeMap::new();
        let mut waits: BTreeMap<usize, (u64, u64, Expect)> = BTreeMap::new();
        for (id, attempts) in requests {
            let outcome = run.outcomes.get(&(scenario.clone(), id.clone())).expect("the script reported every request");
            let last = attempts.last().unwrap();
            if outcome.ok != (last.status == 200) || (!outcome.ok && outcome.status != Some(last.status)) {
                problems.push(format!(
                    "{scenario}/{id}: the SDK says {outcome:?}, the server's last answer was {}",
                    last.status
                ));
            }
            for (i, a) in attempts.iter().enumerate() {
                if a.retry_count != Some(i as u64) {
                    problems
                        .push(format!("{scenario}/{id}: attempt {i} sent x-stainless-retry-count {:?}", a.retry_count));
                }
            }
            let shape: Vec<String> = attempts.iter().map(Attempt::label).collect();
            *shapes.entry(shape.join(" → ")).or_default() += 1;
            for (i, a) in attempts.iter().enumerate() {
                if a.status == 200 {
                    continue;
                }
                let expect = preset_expects(preset, i as u32, &a.response());
                match (attempts.get(i + 1), expect) {
                    (None, Expect::GiveUp) => {}
                    (None, Expect::Wait(lo, hi)) => problems.push(format!(
                        "{scenario}/{id}: gave up after attempt {i} ({}), the preset retries after {:.3}..{:.3} s",
                        a.label(),
                        lo as f64 / 1e9,
                        hi as f64 / 1e9
                    )),
                    (Some(_), Expect::GiveUp) => problems.push(format!(
                        "{scenario}/{id}: retried after attempt {i} ({}), the preset gives up",
                        a.label()
                    )),
                    (Some(next), Expect::Wait(lo, hi)) => {
                        let w = next.t_ns - a.t_ns;
                        let e = waits.entry(i).or_insert((u64::MAX, 0, expect));
                        e.0 = e.0.min(w);
                        e.1 = e.1.max(w);
                        if w + EARLY < lo || w > hi + SLACK {
                            problems.push(format!(
                                "{scenario}/{id}: waited {:.3} s after attempt {i} ({}); the preset waits {:.3}..{:.3} s",
                                w as f64 / 1e9,
                                a.label(),
                                lo as f64 / 1e9,
                                hi as f64 / 1e9
                            ));
                        }
                    }
                }
            }
        }
        table.push_str(&format!("  {scenario}\n"));
        for (shape, n) in &shapes {
            table.push_str(&format!("    {n:>3} × {shape}\n"));
        }
        for (i, (lo, hi, expect)) in &waits {
            let preset = match expect {
                Expect::Wait(a, b) => format!("{:.3}..{:.3} s", *a as f64 / 1e9, *b as f64 / 1e9),
                Expect::GiveUp => "gives up".into(),
            };
            table.push_str(&format!(
                "    wait after attempt {i}: {:.3}..{:.3} s observed, preset {preset}\n",
                *lo as f64 / 1e9,
                *hi as f64 / 1e9
            ));
        }
    }
    std::fs::write(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sdk-schedule-{sdk}.txt")), &table).unwrap();
    println!("{table}");
    assert!(problems.is_empty(), "{sdk} disagrees with its preset:\n  {}\n\n{table}", problems.join("\n  "));
    table
}

/// The shapes every run must show, whatever the timing.
fn common_shapes(run: &Run, above_cap_attempts: usize) {
    let ra2 = &run.attempts["retry-after-2s"];
    let gave_up = ra2.values().filter(|a| a.len() == 3 && a.iter().all(|a| a.status == 429)).count();
    assert_eq!(gave_up, 1, "of four requests one every 2 s, one is still denied at its third attempt: {ra2:?}");
    for a in run.attempts["no-retry-after"].values() {
        assert!(a.len() == 1 || a.len() == 3, "{a:?}");
    }
    let cap = &run.attempts["above-cap"];
    assert!(cap.values().any(|a| a.len() == above_cap_attempts), "{cap:?}");
    let b = &run.attempts["budget-402"];
    assert!(b.values().any(|a| a.len() == 1 && a[0].status == 402), "{b:?}");
    let pro = &run.attempts["runinfra-pro"];
    assert_eq!(pro.len(), 8);
    assert!(pro.values().filter(|a| a.len() > 1).count() >= 4, "RunInfra Pro's spent bucket denied the SDK's requests");
    let shapes = |scenario: &str| -> Vec<Vec<String>> {
        run.attempts[scenario].values().map(|a| a.iter().map(Attempt::label).collect()).collect()
    };
    let ms = shapes("retry-after-ms");
    assert!(
        ms.iter().any(|s| s.len() == 2 && s[0].contains("Retry-After 2, retry-after-ms 1") && s[1] == "200"),
        "one request retried once, after retry-after-ms: {ms:?}"
    );
    let no = shapes("should-retry-false");
    assert!(no.contains(&vec!["429 (Retry-After 2, x-should-retry false)".to_string()]), "{no:?}");
    let yes = shapes("should-retry-402");
    assert!(yes.contains(&vec!["402 (x-should-retry true)".to_string(); 3]), "{yes:?}");
}

#[test]
fn the_python_sdk_retries_as_the_openai_python_preset_says() {
    let python = require("python3");
    let run = run_sdk("python", &python, &[repo("tests/peers/python/sdk_retries.py")]);
    assert_eq!(run.version, "3.57.0", "the pinned version (.ci/peers.d/40-python.sh)");
    check("openai-python", &run, &ClientSpec::parse("openai-python").unwrap());
    // Above 120 s the Python SDK does not retry at all.
    common_shapes(&run, 1);
}

#[test]
fn the_node_sdk_retries_as_the_openai_node_preset_says() {
    let node = require("node");
    let script = repo("tests/peers/node/sdk_retries.mjs");
    require(repo("tests/peers/node/node_modules/openai/package.json").to_str().unwrap());
    let run = run_sdk("node", &node, &[script]);
    assert_eq!(run.version, "7.59.0", "the pinned version (.ci/peers.d/50-node-openai.sh)");
    check("openai-node", &run, &ClientSpec::parse("openai-node").unwrap());
    // Above 60 s the Node SDK retries anyway, after its own backoff.
    common_shapes(&run, 3);
}
