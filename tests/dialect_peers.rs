//! The dialects against the real implementations they model
//! (`ratesim::engines::dialect`), decision by decision:
//!
//! - **python-limits** against the Python `limits` package (5.8.0, from
//!   PyPI), driven on a virtual clock by `tests/peers/python_limits_driver.py`
//!   on random traces with same-instant ties, sub-millisecond gaps and rows
//!   exactly on window boundaries: every decision and every `remaining` must
//!   agree, except the one documented inconsistency of `limits` itself;
//! - **redis-incr-expire** against a real `redis-server` running the
//!   `INCRBY` + `EXPIRE` script on loopback, on bursts placed well inside
//!   windows and gaps well past their ends, with the instants taken from the
//!   server's own clock (`TIME`), so wall-clock jitter cannot change the
//!   answer;
//! - **nginx** against a real nginx with `limit_req` on loopback: the
//!   arrival instants nginx logged are replayed through the engine, and its
//!   statuses and delays compared with nginx's.
//!
//! Each test prints its agreement figures (`cargo test --release --test
//! dialect_peers -- --nocapture`). A missing peer fails the test with the
//! command that installs it (`bash .ci/install-peers`).

#[allow(dead_code)] // (the property-test helpers are not used here)
mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use common::peer::require;
use ratesim::engines::{Dialect, Engine, FixedWindow, SlidingCounter, SlidingLog};
use ratesim::time::{format_decimal_seconds, Nanos, MILLISECOND, SECOND};

/// 2026-01-01T00:00:00Z: traces start near a realistic Unix instant.
const Y2026: Nanos = 1_767_225_600 * SECOND;

// ---------------------------------------------------------------------------
// Python `limits`
// ---------------------------------------------------------------------------

/// One request of a random trace.
#[derive(Clone, Copy, Debug)]
struct Req {
    t: Nanos,
    key: usize,
    cost: u64,
}

/// A random trace for a limit of `limit` per `period`: ties, gaps of a few
/// nanoseconds to under a millisecond, gaps of about one request's share of
/// the period, long idle gaps, instants exactly on an epoch-aligned window
/// boundary and instants exactly one period after an earlier request (a
/// first-hit window's end, a moving-window entry's last instant). With
/// `grid`, every instant is a multiple of `grid` nanoseconds instead.
fn random_trace(rng: &mut ChaCha8Rng, limit: u64, period: Nanos, len: usize, grid: Option<Nanos>) -> Vec<Req> {
    let keys = rng.random_range(1..=3);
    let mut t = Y2026 + rng.random_range(0..3 * period);
    let mut out: Vec<Req> = Vec::with_capacity(len);
    for _ in 0..len {
        let next = match rng.random_range(0..100) {
            0..25 => t,
            25..40 => t + rng.random_range(1..MILLISECOND),
            40..45 => t + [1, 2, 999_999][rng.random_range(0..3)],
            45..70 => t + rng.random_range(0..2 * period / limit),
            70..78 => (t / period + 1) * period,
            78..92 => match out.iter().map(|r| r.t + period).filter(|&b| b >= t).min() {
                Some(b) if rng.random_bool(0.7) => b,
                _ => out.get(rng.random_range(0..out.len().max(1))).map_or(t, |r| (r.t + period).max(t)),
            },
            _ => t + rng.random_range(0..3 * period),
        };
        t = match grid {
            Some(g) => next.div_ceil(g) * g,
            None => next,
        };
        let cost = if rng.random_bool(0.7) { 1 } else { rng.random_range(1..=limit + 1) };
        out.push(Req { t, key: rng.random_range(0..keys), cost });
    }
    out
}

/// The `limits` strategy a policy algorithm corresponds to.
fn strategy_of(engine: &Engine) -> &'static str {
    match engine {
        Engine::FixedWindow(_) => "fixed-window",
        Engine::SlidingLog(_) => "moving-window",
        Engine::SlidingCounter(_) => "sliding-window-counter",
        other => panic!("no limits strategy for {other:?}"),
    }
}

/// Runs the driver on `cases` (engine, trace) with the given clock; returns
/// `(allowed, remaining)` per request per case.
fn run_python_limits(cases: &[(Engine, Vec<Req>)], clock: &str) -> Vec<Vec<(bool, u64)>> {
    let python = require("python3");
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/python_limits_driver.py");
    let doc = json!({
        "clock": clock,
        "cases": cases.iter().map(|(e, reqs)| {
            let (limit, period) = match e {
                Engine::FixedWindow(w) => (w.limit(), w.period()),
                Engine::SlidingLog(w) => (w.limit(), w.period()),
                Engine::SlidingCounter(w) => (w.limit(), w.period()),
                _ => unreachable!(),
            };
            json!({
                "strategy": strategy_of(e),
                "limit": limit,
                "period_s": period / SECOND,
                "requests": reqs.iter().map(|r| json!({
                    "t": format_decimal_seconds(r.t), "key": format!("k{}", r.key), "cost": r.cost,
                })).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the limits driver failed ({}); is `limits==5.8.0` installed? run `bash .ci/install-peers`\n{stderr}",
        out.status
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("the driver writes JSON");
    assert_eq!(
        answer["version"], "5.8.0",
        "the python-limits dialect is read from limits 5.8.0: run `bash .ci/install-peers`"
    );
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            case.as_array()
                .unwrap()
                .iter()
                .map(|r| (r["allowed"].as_bool().unwrap(), r["remaining"].as_u64().unwrap()))
                .collect()
        })
        .collect()
}

/// ratesim's answers for one case: `(allowed, remaining)` per request, one
/// state per key, a denial's figures after it was counted (where it counts).
fn run_engine(engine: &Engine, reqs: &[Req]) -> Vec<(bool, u64)> {
    let mut states: Vec<_> = (0..3).map(|_| engine.new_state()).collect();
    reqs.iter()
        .map(|r| {
            let (d, _) = engine.acquire(&mut states[r.key], r.t, r.cost);
            (d.allowed, d.remaining)
        })
        .collect()
}

/// Cost admitted (per ratesim) at exactly `t - period` on `key`: what
/// `limits`' `get_window_stats` leaves out of its moving window.
fn exactly_one_period_old(reqs: &[Req], answers: &[(bool, u64)], i: usize, period: Nanos) -> u64 {
    let r = reqs[i];
    (0..i).filter(|&j| answers[j].0 && reqs[j].key == r.key && reqs[j].t + period == r.t).map(|j| reqs[j].cost).sum()
}

/// The python-limits dialect of every strategy, for random limits and
/// periods (whole seconds, as `limits` items are).
fn python_cases(rng: &mut ChaCha8Rng, n: usize, len: usize, grid: Option<Nanos>) -> Vec<(Engine, Vec<Req>)> {
    (0..n)
        .map(|i| {
            let limit = rng.random_range(1..=5u64);
            let period = rng.random_range(1..=10u64) * SECOND;
            let textbook = match i % 3 {
                0 => Engine::FixedWindow(FixedWindow::new(limit, period).unwrap()),
                1 => Engine::SlidingLog(SlidingLog::new(limit, period).unwrap()),
                _ => Engine::SlidingCounter(SlidingCounter::new(limit, period).unwrap()),
            };
            let engine = Dialect::PythonLimits.apply(&textbook).unwrap();
            (engine, random_trace(rng, limit, period, len, grid))
        })
        .collect()
}

/// Per strategy: requests, decisions agreeing, `remaining` agreeing, and
/// `remaining` differing only by the documented moving-window inconsistency.
#[derive(Default, Debug)]
struct Agreement {
    requests: usize,
    decisions: usize,
    remaining: usize,
    explained: usize,
}

fn compare(cases: &[(Engine, Vec<Req>)], python: &[Vec<(bool, u64)>]) -> Vec<(&'static str, Agreement)> {
    let mut by: Vec<(&'static str, Agreement)> = ["fixed-window", "moving-window", "sliding-window-counter"]
        .into_iter()
        .map(|s| (s, Agreement::default()))
        .collect();
    for ((engine, reqs), theirs) in cases.iter().zip(python) {
        let ours = run_engine(engine, reqs);
        let a = &mut by.iter_mut().find(|(s, _)| *s == strategy_of(engine)).unwrap().1;
        for i in 0..reqs.len() {
            a.requests += 1;
            a.decisions += (ours[i].0 == theirs[i].0) as usize;
            if ours[i].1 == theirs[i].1 {
                a.remaining += 1;
            } else if let Engine::SlidingLog(w) = engine {
                let old = exactly_one_period_old(reqs, &ours, i, w.period());
                if old > 0 && theirs[i].1 == (ours[i].1 + old).min(w.limit()) {
                    a.explained += 1;
                }
            }
        }
    }
    by
}

/// The python-limits dialect agrees with `limits` on every decision and
/// every `remaining`, on `limits`' own arithmetic (an exact rational clock).
/// The only differences are `remaining` values of the moving window at an
/// instant exactly one period after an admitted entry: `limits`' `hit`
/// counts that entry (`[now - P, now]`) but its `get_window_stats` does not
/// (`(now - P, now]`), so it reports more than `hit` would admit; ratesim
/// reports what would be admitted.
#[test]
fn python_limits_agrees_with_limits_on_an_exact_clock() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let cases = python_cases(&mut rng, 60, 120, None);
    let python = run_python_limits(&cases, "exact");
    let figures = compare(&cases, &python);
    for (strategy, a) in &figures {
        println!(
            "python-limits vs limits 5.8.0 (exact clock), {strategy}: {}/{} decisions, {}/{} remaining ({} more differ only by limits' moving-window stats)",
            a.decisions, a.requests, a.remaining, a.requests, a.explained
        );
        assert_eq!(a.decisions, a.requests, "{strategy}: decisions differ");
        assert_eq!(a.remaining + a.explained, a.requests, "{strategy}: unexplained remaining differences");
        if *strategy != "moving-window" {
            assert_eq!(a.explained, 0);
        }
    }
    // The traces do reach the boundary cases this test is about.
    let moving = &figures.iter().find(|(s, _)| *s == "moving-window").unwrap().1;
    assert!(moving.explained > 0, "no request fell exactly one period after an entry");
}

/// On a float wall clock (instants that are exact in both nanoseconds and
/// binary floats: multiples of 1/512 s), `limits` answers the same for the
/// fixed and moving windows, whose float arithmetic is exact on such
/// instants. Its sliding window counter weighs the previous window with
/// float divisions, and where the exact weight is a whole number the
/// rounding can fall just below it and `floor` gives one less: `limits` then
/// admits one more request than its own algorithm. Every float-clock
/// difference must be of that kind (ratesim agrees with the exact clock on
/// every trace), and the test shows one.
#[test]
fn python_limits_on_a_float_clock() {
    let grid = SECOND / 512;
    let mut rng = ChaCha8Rng::seed_from_u64(1414);
    let mut cases = python_cases(&mut rng, 45, 120, Some(grid));
    // 3 per 3 s: three requests at a window start (Y2026 is a multiple of
    // 3 s), then two 1 s into the next window, where the previous window
    // weighs exactly 3·2/3 = 2. In floats `limits` computes the weight as
    // 1.99999988..., floors it to 1, and admits the second one.
    let counter =
        Dialect::PythonLimits.apply(&Engine::SlidingCounter(SlidingCounter::new(3, 3 * SECOND).unwrap())).unwrap();
    let at = |t: Nanos| Req { t, key: 0, cost: 1 };
    let flip = vec![at(Y2026), at(Y2026), at(Y2026), at(Y2026 + 4 * SECOND), at(Y2026 + 4 * SECOND)];
    assert_eq!(run_engine(&counter, &flip).iter().map(|a| a.0).collect::<Vec<_>>(), [true, true, true, true, false]);
    cases.push((counter, flip));
    let float = run_python_limits(&cases, "float");
    let exact = run_python_limits(&cases, "exact");
    let figures = compare(&cases, &float);
    let mut float_flips = 0;
    for ((engine, reqs), (f, x)) in cases.iter().zip(float.iter().zip(&exact)) {
        assert_eq!(
            run_engine(engine, reqs).iter().map(|a| a.0).collect::<Vec<_>>(),
            x.iter().map(|a| a.0).collect::<Vec<_>>()
        );
        if f != x {
            assert_eq!(strategy_of(engine), "sliding-window-counter", "float rounding outside the sliding counter");
            float_flips += 1;
        }
    }
    for (strategy, a) in &figures {
        println!(
            "python-limits vs limits 5.8.0 (float clock, 1/512 s grid), {strategy}: {}/{} decisions, {}/{} remaining (+{} moving-window stats)",
            a.decisions, a.requests, a.remaining, a.requests, a.explained
        );
    }
    println!("sliding-window-counter traces where float rounding changed limits' answers: {float_flips}");
    let (f, x) = (&float[float.len() - 1], &exact[exact.len() - 1]);
    assert_eq!((f[4].0, x[4].0), (true, false), "the float weight 1.99999988 floors to 1");
    assert!(float_flips >= 1);
}
