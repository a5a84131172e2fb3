//! Synthetic traces: determinism, order, the statistics of each arrival
//! process and distribution, identities, and located errors for every class
//! of malformed spec. Tolerances are 5 standard deviations, so a correct
//! generator fails with probability well below one in a million per check
//! (and the seeds are fixed, so a pass is a pass forever).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ratesim::time::MAX_DURATION;
use ratesim::trace::synth::{load_spec, parse_spec, Spec};
use ratesim::trace::{TraceError, TraceRow, TraceSource, TraceTime, MAX_AMOUNT};

const S: u64 = 1_000_000_000;

fn spec(text: &str) -> Spec {
    parse_spec(text, "test.toml").unwrap_or_else(|e| panic!("spec should parse: {e}"))
}

fn rows(spec: &Spec, seed: u64) -> Vec<TraceRow> {
    rows_up_to(spec, seed, usize::MAX)
}

fn rows_up_to(spec: &Spec, seed: u64, limit: usize) -> Vec<TraceRow> {
    let mut trace = spec.generate(seed);
    let mut row = TraceRow::default();
    let mut out = Vec::new();
    while out.len() < limit && trace.next_row(&mut row).unwrap() {
        out.push(row.clone());
    }
    out
}

fn t(row: &TraceRow) -> u64 {
    match row.t {
        TraceTime::Offset(ns) => ns,
        TraceTime::Absolute(_) => panic!("synthetic rows carry offsets"),
    }
}

fn count_in(rows: &[TraceRow], from: u64, to: u64) -> u64 {
    rows.iter().filter(|r| (from..to).contains(&t(r))).count() as u64
}

/// |observed - expected| within 5 standard deviations of a Poisson count.
fn assert_poisson(observed: u64, expected: f64, what: &str) {
    let tol = 5.0 * expected.sqrt();
    assert!(
        (observed as f64 - expected).abs() <= tol,
        "{what}: observed {observed}, expected {expected:.1} ± {tol:.1}"
    );
}

fn parse_err(text: &str) -> TraceError {
    match parse_spec(text, "bad.toml") {
        Ok(_) => panic!("spec should be rejected:\n{text}"),
        Err(e) => e,
    }
}

/// The error is located at `line` (1-based), names `field` and says `says`.
fn assert_err(text: &str, line: u64, field: &str, says: &str) {
    let e = parse_err(text);
    assert_eq!(e.file, "bad.toml", "{e}");
    assert_eq!(e.line, line, "wrong line in: {e}");
    assert!(e.column >= 1, "no column in: {e}");
    assert!(e.field.contains(field), "field {field:?} not in: {e}");
    assert!(e.message.contains(says), "message should contain {says:?}: {e}");
}

const MIXED: &str = r#"
horizon = "2min"
[[population]]
name = "web"
clients = 5
arrival = { kind = "poisson", rate = "3/s" }
endpoints = { invoke = 0.8, stream = 0.15, health = 0.05 }
tokens = { dist = "lognormal", median = 400, sigma = 0.8 }
cost = { dist = "uniform", min = 1, max = 9 }
duration = { dist = "exponential", mean = 1.5 }
[[population]]
name = "batch"
clients = 3
keys = "shared"
shared_keys = 2
start = "30s"
arrival = { kind = "on-off", rate = "10/s", on = "5s", off = "10s", durations = "exponential" }
endpoint = "invoke"
batch = 4
[[population]]
name = "cron"
clients = 2
arrival = { kind = "constant", rate = "1/s" }
endpoint = "health"
auth = false
"#;

#[test]
fn same_seed_gives_identical_rows() {
    let s = spec(MIXED);
    let a = rows(&s, 42);
    let b = rows(&s, 42);
    assert!(a.len() > 1000, "{} rows", a.len());
    assert_eq!(a, b);
    // Parsing again changes nothing either.
    assert_eq!(rows(&spec(MIXED), 42), a);
}

#[test]
fn different_seeds_give_different_rows() {
    let s = spec(MIXED);
    let a = rows(&s, 1);
    let b = rows(&s, 2);
    assert_ne!(a, b);
    let times_a: Vec<u64> = a.iter().map(t).collect();
    let times_b: Vec<u64> = b.iter().map(t).collect();
    assert_ne!(times_a, times_b);
}

#[test]
fn rows_are_in_time_order_within_the_horizon() {
    let s = spec(MIXED);
    let r = rows(&s, 9);
    assert!(r.windows(2).all(|w| t(&w[0]) <= t(&w[1])));
    assert!(r.iter().all(|row| t(row) < 2 * 60 * S));
    // `start = "30s"` holds the batch population back.
    assert!(r.iter().filter(|row| row.key.starts_with("batch-")).all(|row| t(row) >= 30 * S));
    assert!(r.iter().all(|row| row.line == 0));
}

#[test]
fn ties_break_by_population_then_client() {
    let s = spec(
        r#"
horizon = "10s"
[[population]]
name = "a"
clients = 3
arrival = { kind = "constant", rate = "1/s", phase = "zero" }
[[population]]
name = "b"
clients = 2
arrival = { kind = "constant", rate = "1/s", phase = "zero" }
"#,
    );
    let r = rows(&s, 0);
    assert_eq!(r.len(), 50);
    for (second, chunk) in r.chunks(5).enumerate() {
        let keys: Vec<&str> = chunk.iter().map(|row| row.key.as_str()).collect();
        assert_eq!(keys, ["a-k0", "a-k1", "a-k2", "b-k0", "b-k1"]);
        assert!(chunk.iter().all(|row| t(row) == second as u64 * S));
    }
}

#[test]
fn constant_rate_gives_exactly_the_expected_count() {
    for (rate, horizon, clients, expected_each) in
        [("6/s", "1h", 1, 21_600), ("6/s", "1h", 7, 21_600), ("7/3s", "1h", 3, 8_400), ("500/min", "10min", 2, 5_000)]
    {
        for phase in ["random", "zero"] {
            let s = spec(&format!(
                r#"
horizon = "{horizon}"
[[population]]
name = "p"
clients = {clients}
arrival = {{ kind = "constant", rate = "{rate}", phase = "{phase}" }}
"#
            ));
            for seed in [0, 1, 77] {
                let mut trace = s.generate(seed);
                let mut row = TraceRow::default();
                let mut n = 0u64;
                while trace.next_row(&mut row).unwrap() {
                    n += 1;
                }
                assert_eq!(n, expected_each * clients, "{rate} over {horizon}, {phase}");
            }
        }
    }
    // The gaps of one client are exact: floor(k * period / count).
    let s = spec(
        r#"
horizon = "3s"
[[population]]
name = "p"
clients = 1
arrival = { kind = "constant", rate = "3/s", phase = "zero" }
"#,
    );
    let times: Vec<u64> = rows(&s, 0).iter().map(t).collect();
    assert_eq!(
        times,
        [0, 333_333_333, 666_666_666, S, 1_333_333_333, 1_666_666_666, 2 * S, 2_333_333_333, 2_666_666_666]
    );
}

#[test]
fn poisson_count_matches_its_mean() {
    let s = spec(
        r#"
horizon = "1h"
[[population]]
name = "p"
clients = 10
arrival = { kind = "poisson", rate = "2/s" }
"#,
    );
    for seed in [0, 1] {
        let r = rows(&s, seed);
        assert_poisson(r.len() as u64, 10.0 * 2.0 * 3600.0, "poisson total");
        // And per quarter hour.
        for q in 0..4 {
            let n = count_in(&r, q * 900 * S, (q + 1) * 900 * S);
            assert_poisson(n, 10.0 * 2.0 * 900.0, "poisson quarter");
        }
    }
}

#[test]
fn on_off_fixed_sends_only_while_on() {
    let s = spec(
        r#"
horizon = "1h"
[[population]]
name = "p"
clients = 1
arrival = { kind = "on-off", rate = "20/s", on = "10s", off = "50s", phase = "zero" }
"#,
    );
    let r = rows(&s, 3);
    assert_poisson(r.len() as u64, 20.0 * 10.0 * 60.0, "on-off total");
    for row in &r {
        assert!(t(row) % (60 * S) < 10 * S, "row at {} is in an off period", t(row));
    }
    // Each on period gets its Poisson share.
    for cycle in [0u64, 17, 59] {
        let n = count_in(&r, cycle * 60 * S, cycle * 60 * S + 10 * S);
        assert_poisson(n, 200.0, "one on period");
    }
}

#[test]
fn on_off_random_phase_and_exponential_durations_keep_the_duty_cycle() {
    for extra in [r#"phase = "random""#, r#"durations = "exponential""#] {
        let s = spec(&format!(
            r#"
horizon = "1h"
[[population]]
name = "p"
clients = 20
arrival = {{ kind = "on-off", rate = "5/s", on = "2s", off = "6s", {extra} }}
"#
        ));
        let r = rows(&s, 11);
        let expected = 20.0 * 5.0 * 3600.0 * 0.25;
        let n = r.len() as f64;
        // Random period lengths add variance beyond Poisson: allow 5%.
        assert!((n - expected).abs() < 0.05 * expected, "{extra}: {n} rows, expected about {expected}");
    }
}

#[test]
fn flash_crowd_has_its_shape() {
    let s = spec(
        r#"
horizon = "20min"
[[population]]
name = "p"
clients = 1
arrival = { kind = "flash-crowd", rate = "1/s", at = "10min", peak = "100/s", decay = "1min" }
"#,
    );
    let r = rows(&s, 5);
    let e = std::f64::consts::E;
    // Before `at`: the base rate only.
    assert_poisson(count_in(&r, 0, 600 * S), 600.0, "before the crowd");
    // First minute after: base + (peak - base) * decay * (1 - 1/e).
    let first = 60.0 + 99.0 * 60.0 * (1.0 - 1.0 / e);
    assert_poisson(count_in(&r, 600 * S, 660 * S), first, "first minute");
    // Minutes 5-10 after: nearly back to the base.
    let late = 300.0 + 99.0 * 60.0 * (e.powi(-5) - e.powi(-10));
    assert_poisson(count_in(&r, 900 * S, 1200 * S), late, "the tail");
    // A zero base rate sends nothing before `at`.
    let s = spec(
        r#"
horizon = "20min"
[[population]]
name = "p"
clients = 3
arrival = { kind = "flash-crowd", rate = "0/s", at = "10min", peak = "10/s", decay = "1min" }
"#,
    );
    let r = rows(&s, 5);
    assert!(r.iter().all(|row| t(row) >= 600 * S));
    assert_poisson(r.len() as u64, 3.0 * 10.0 * 60.0 * (1.0 - e.powi(-10)), "zero base");
}

#[test]
fn diurnal_follows_its_sinusoid() {
    // Period 1 h, mean 10/s, peak/trough 3 (amplitude 0.5), peak at 30 min.
    let s = spec(
        r#"
horizon = "1h"
[[population]]
name = "p"
clients = 1
arrival = { kind = "diurnal", rate = "10/s", peak_ratio = 3, period = "1h", peak_at = "30min" }
"#,
    );
    let r = rows(&s, 8);
    let p = 3600.0;
    let expected = |a: f64, b: f64| {
        let w = |x: f64| (std::f64::consts::TAU * (x - 1800.0) / p).sin();
        10.0 * ((b - a) + 0.5 * p / std::f64::consts::TAU * (w(b) - w(a)))
    };
    assert_poisson(r.len() as u64, expected(0.0, 3600.0), "diurnal total");
    for (a, b) in [(0u64, 600u64), (1500, 2100), (3000, 3600)] {
        let n = count_in(&r, a * S, b * S);
        assert_poisson(n, expected(a as f64, b as f64), "diurnal window");
    }
    // Peak window well above the trough window.
    assert!(count_in(&r, 1500 * S, 2100 * S) > 2 * count_in(&r, 0, 600 * S));
}

#[test]
fn ramp_integrates_linearly() {
    let s = spec(
        r#"
horizon = "30min"
[[population]]
name = "p"
clients = 2
arrival = { kind = "ramp", from = "0/s", to = "20/s" }
"#,
    );
    let r = rows(&s, 4);
    // Per client: total 10/s * 1800 s; first half 20 * 1800 / 8.
    assert_poisson(r.len() as u64, 2.0 * 18_000.0, "ramp total");
    assert_poisson(count_in(&r, 0, 900 * S), 2.0 * 4_500.0, "ramp first half");
    // `over` shorter than the span: then flat at `to`.
    let s = spec(
        r#"
horizon = "20min"
[[population]]
name = "p"
clients = 1
start = "5min"
arrival = { kind = "ramp", from = "10/s", to = "2/s", over = "5min" }
"#,
    );
    let r = rows(&s, 4);
    assert_eq!(count_in(&r, 0, 300 * S), 0);
    assert_poisson(count_in(&r, 300 * S, 600 * S), 6.0 * 300.0, "ramp down");
    assert_poisson(count_in(&r, 600 * S, 1200 * S), 2.0 * 600.0, "flat after");
}

#[test]
fn endpoint_mix_matches_its_weights() {
    let s = spec(
        r#"
horizon = "10min"
[[population]]
name = "p"
clients = 1
arrival = { kind = "constant", rate = "100/s" }
endpoints = { invoke = 0.8, stream = 0.15, health = 0.05, never = 0 }
"#,
    );
    let r = rows(&s, 6);
    let n = r.len() as f64;
    assert_eq!(n, 60_000.0);
    let mut counts: BTreeMap<&str, f64> = BTreeMap::new();
    for row in &r {
        *counts.entry(row.endpoint.as_str()).or_default() += 1.0;
    }
    assert!(!counts.contains_key("never"));
    for (name, w) in [("invoke", 0.8), ("stream", 0.15), ("health", 0.05)] {
        let got = counts.get(name).copied().unwrap_or(0.0);
        let tol = 5.0 * (n * w * (1.0 - w)).sqrt();
        assert!((got - n * w).abs() <= tol, "{name}: {got} of {n}");
    }
    // Integer weights work too.
    let s = spec(
        r#"
horizon = "100s"
[[population]]
name = "p"
clients = 1
arrival = { kind = "constant", rate = "10/s" }
endpoints = { a = 1, b = 3 }
"#,
    );
    let b = rows(&s, 1).iter().filter(|r| r.endpoint == "b").count() as f64;
    assert!((b - 750.0).abs() <= 5.0 * (1000.0f64 * 0.75 * 0.25).sqrt());
}

#[test]
fn distributions_have_their_means() {
    let s = spec(
        r#"
horizon = "200s"
[[population]]
name = "p"
clients = 1
arrival = { kind = "constant", rate = "100/s" }
tokens = { dist = "exponential", mean = 500 }
cost = { dist = "uniform", min = 10, max = 30 }
duration = { dist = "lognormal", median = 2, sigma = 0.5 }
"#,
    );
    let r = rows(&s, 12);
    let n = r.len() as f64;
    assert_eq!(n, 20_000.0);
    let mean = |f: &dyn Fn(&TraceRow) -> f64| r.iter().map(f).sum::<f64>() / n;
    let tokens = mean(&|r| r.tokens as f64);
    assert!((tokens - 500.0).abs() < 5.0 * 500.0 / n.sqrt(), "tokens {tokens}");
    let cost = mean(&|r| r.cost as f64);
    let sd = 20.0 / 12f64.sqrt();
    assert!((cost - 20.0).abs() < 5.0 * sd / n.sqrt() + 0.01, "cost {cost}");
    assert!(r.iter().all(|r| (10..=30).contains(&r.cost)));
    let dur = mean(&|r| r.duration as f64 / S as f64);
    let lmean = 2.0 * (0.125f64).exp();
    let lsd = lmean * ((0.25f64).exp() - 1.0).sqrt();
    assert!((dur - lmean).abs() < 5.0 * lsd / n.sqrt(), "duration {dur}");
    // The lognormal median is the median.
    let mut d: Vec<u64> = r.iter().map(|r| r.duration).collect();
    d.sort_unstable();
    let median = d[d.len() / 2] as f64 / S as f64;
    assert!((median - 2.0).abs() < 0.05, "median {median}");

    // `mu` is the log of the median (of seconds for durations); constants are
    // exact; duration strings are exact.
    let s = spec(
        r#"
horizon = "100s"
[[population]]
name = "p"
clients = 1
arrival = { kind = "constant", rate = "100/s" }
tokens = { dist = "constant", value = 700 }
cost = { dist = "lognormal", mu = 3.0, sigma = 0 }
duration = { dist = "constant", value = "250ms" }
"#,
    );
    for row in rows(&s, 1) {
        assert_eq!(row.tokens, 700);
        assert_eq!(row.cost, 20); // e^3 = 20.09
        assert_eq!(row.duration, 250_000_000);
    }
    let s = spec(
        r#"
horizon = "100s"
[[population]]
name = "p"
clients = 1
arrival = { kind = "constant", rate = "100/s" }
duration = { dist = "lognormal", mu = 0.0, sigma = 0.3 }
"#,
    );
    let mut d: Vec<u64> = rows(&s, 1).iter().map(|r| r.duration).collect();
    d.sort_unstable();
    let median = d[d.len() / 2] as f64 / S as f64;
    assert!((median - 1.0).abs() < 0.05, "median {median}");
}

#[test]
fn identities_follow_the_spec() {
    let s = spec(
        r#"
horizon = "10s"
[[population]]
name = "ws"
clients = 10
keys = "shared"
shared_keys = 4
users = 2
workspaces = 1
arrival = { kind = "constant", rate = "1/s" }
[[population]]
name = "solo"
clients = 6
users_per_workspace = 3
arrival = { kind = "constant", rate = "1/s" }
[[population]]
name = "also-ws"
prefix = "ws"
clients = 1
arrival = { kind = "constant", rate = "1/s" }
"#,
    );
    assert_eq!(s.clients(), 17);
    assert_eq!(s.populations()[0].keys(), 4);
    let r = rows(&s, 0);
    let mut ids = BTreeSet::new();
    for row in &r {
        ids.insert((row.key.clone(), row.user.clone(), row.workspace.clone()));
    }
    let want: BTreeSet<(String, String, String)> = [
        ("ws-k0", "ws-u0", "ws-w0"),
        ("ws-k1", "ws-u1", "ws-w0"),
        ("ws-k2", "ws-u0", "ws-w0"),
        ("ws-k3", "ws-u1", "ws-w0"),
        ("solo-k0", "solo-u0", "solo-w0"),
        ("solo-k1", "solo-u1", "solo-w0"),
        ("solo-k2", "solo-u2", "solo-w0"),
        ("solo-k3", "solo-u3", "solo-w1"),
        ("solo-k4", "solo-u4", "solo-w1"),
        ("solo-k5", "solo-u5", "solo-w1"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(ids, want);
    // 10 clients over 4 keys round-robin: keys 0 and 1 carry 3 clients.
    let per_key = |k: &str| r.iter().filter(|row| row.key == k).count();
    assert_eq!(per_key("ws-k0"), 3 * 10 + 10); // plus "also-ws" client 0
    assert_eq!(per_key("ws-k1"), 30);
    assert_eq!(per_key("ws-k3"), 20);
}

#[test]
fn request_attributes_are_set() {
    let s = spec(
        r#"
horizon = "20s"
[[population]]
name = "poll"
clients = 1
auth = false
batch = 8
arrival = { kind = "constant", rate = "1/s" }
endpoint = "predictions.create"
job = { poll_every = "1s", poll_endpoint = "predictions.get" }
[[population]]
name = "hook"
clients = 1
arrival = { kind = "constant", rate = "1/s" }
job = { mode = "webhook" }
"#,
    );
    let r = rows(&s, 0);
    assert_eq!(r.len(), 40);
    for row in &r {
        if row.key.starts_with("poll") {
            assert!(!row.auth);
            assert_eq!(row.items, 8);
            assert_eq!(row.endpoint, "predictions.create");
            assert_eq!(row.poll_every, S);
            assert_eq!(row.poll_endpoint, "predictions.get");
        } else {
            assert!(row.auth);
            assert_eq!(row.items, 1);
            assert_eq!(row.endpoint, "");
            assert_eq!(row.poll_every, 0);
            assert_eq!(row.poll_endpoint, "");
            assert_eq!((row.tokens, row.cost, row.duration), (0, 0, 0));
        }
    }
}

#[test]
fn clients_are_independent_of_each_other_and_of_the_attributes() {
    let base = r#"
horizon = "1min"
[[population]]
name = "a"
clients = 3
arrival = { kind = "poisson", rate = "5/s" }
"#;
    let a = rows(&spec(base), 5);
    // Adding a population after it leaves its rows unchanged.
    let more = format!(
        "{base}[[population]]\nname = \"b\"\nclients = 4\narrival = {{ kind = \"diurnal\", rate = \"9/s\", peak_ratio = 2 }}\n"
    );
    let b: Vec<TraceRow> = rows(&spec(&more), 5).into_iter().filter(|r| r.key.starts_with("a-")).collect();
    assert_eq!(a, b);
    // Adding attributes leaves the arrival times unchanged.
    let with_attrs = base
        .replace("arrival =", "endpoints = { x = 1, y = 2 }\ntokens = { dist = \"exponential\", mean = 9 }\narrival =");
    let c = rows(&spec(&with_attrs), 5);
    let times = |v: &[TraceRow]| v.iter().map(|r| (t(r), r.key.clone())).collect::<Vec<_>>();
    assert_eq!(times(&a), times(&c));
}

#[test]
fn generation_is_lazy() {
    // Ten thousand days of 1000 clients: billions of rows, but the first
    // few come at once and nothing is materialised.
    let s = spec(
        r#"
horizon = "10000day"
[[population]]
name = "p"
clients = 1000
arrival = { kind = "poisson", rate = "10/s" }
"#,
    );
    let r = rows_up_to(&s, 0, 2000);
    assert_eq!(r.len(), 2000);
    assert!(r.windows(2).all(|w| t(&w[0]) <= t(&w[1])));
    assert!(t(&r[1999]) < 10 * S);
}

#[test]
fn spec_accessors() {
    let s = spec(MIXED);
    assert_eq!(s.horizon(), 120 * S);
    assert_eq!(s.seed(), None);
    assert_eq!(s.clients(), 10);
    let names: Vec<&str> = s.populations().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["web", "batch", "cron"]);
    assert_eq!(s.populations()[1].start(), 30 * S);
    assert_eq!(s.populations()[1].end(), 120 * S);
    let s = spec("horizon = \"1s\"\nseed = 99\n[[population]]\nname = \"p\"\nclients = 1\narrival = { kind = \"poisson\", rate = \"1/s\" }\n");
    assert_eq!(s.seed(), Some(99));
}

// ----------------------------------------------------------------------------
// Errors
// ----------------------------------------------------------------------------

const OK_POP: &str = "[[population]]\nname = \"p\"\nclients = 1\narrival = { kind = \"poisson\", rate = \"1/s\" }\n";

#[test]
fn unknown_keys_are_located_errors() {
    assert_err(&format!("horizon = \"1h\"\nhorzion = \"1h\"\n{OK_POP}"), 2, "", "unknown field `horzion`");
    assert_err(
        "horizon = \"1h\"\n[[population]]\nname = \"p\"\nclients = 1\nclient = 2\narrival = { kind = \"poisson\", rate = \"1/s\" }\n",
        5,
        "",
        "unknown field `client`",
    );
    assert_err(
        "horizon = \"1h\"\n[[population]]\nname = \"p\"\nclients = 1\narrival = { kind = \"poisson\", rate = \"1/s\", burst = 3 }\n",
        5,
        "",
        "unknown field `burst`",
    );
    assert_err(
        &format!("horizon = \"1h\"\n{OK_POP}tokens = {{ dist = \"constant\", value = 1, avg = 2 }}\n"),
        6,
        "",
        "unknown field `avg`",
    );
    // Known keys that do not belong to the kind.
    assert_err(
        "horizon = \"1h\"\n[[population]]\nname = \"p\"\nclients = 1\narrival = { kind = \"poisson\", rate = \"1/s\", on = \"1s\" }\n",
        5,
        "population \"p\" > arrival > on",
        "does not apply to kind = \"poisson\"",
    );
    assert_err(
        &format!("horizon = \"1h\"\n{OK_POP}cost = {{ dist = \"exponential\", mean = 3, sigma = 1 }}\n"),
        6,
        "cost > sigma",
        "does not apply",
    );
}

#[test]
fn missing_horizon_and_fields_are_located_errors() {
    assert_err(OK_POP, 1, "horizon", "missing field `horizon`");
    assert_err("horizon = \"0s\"\n[[population]]\n", 1, "horizon", "longer than zero");
    assert_err("horizon = \"1h\"\n", 2, "population", "at least one [[population]]");
    assert_err(
        "horizon = \"1h\"\n[[population]]\nname = \"p\"\narrival = { kind = \"poisson\", rate = \"1/s\" }\n",
        2,
        "clients",
        "missing field `clients`",
    );
    assert_err(
        "horizon = \"1h\"\n[[population]]\nname = \"p\"\nclients = 2\n",
        2,
        "arrival",
        "missing field `arrival`",
    );
    assert_err(
        "horizon = \"1h\"\n[[population]]\nname = \"p\"\nclients = 2\narrival = { rate = \"1/s\" }\n",
        5,
        "arrival > kind",
        "missing field `kind`",
    );
    assert_err(
        "horizon = \"1h\"\n[[population]]\nname = \"p\"\nclients = 2\narrival = { kind = \"on-off\", rate = \"1/s\", on = \"1s\" }\n",
        5,
        "arrival > off",
        "missing field `off`",
    );
    assert_err(&format!("horizon = \"1h\"\n{OK_POP}{OK_POP}"), 7, "name", "duplicate population name");
    assert_err("horizon = \"1 fortnight\"\n", 1, "horizon", "duration");
    assert_err(&format!("horizon = \"1h\"\n{OK_POP}end = \"2h\"\n"), 6, "end", "no later than the horizon");
    assert_err(&format!("horizon = \"1h\"\n{OK_POP}start = \"1h\"\n"), 6, "start", "before the population's end");
}

#[test]
fn bad_rates_are_located_errors() {
    let with =
        |arrival: &str| format!("horizon = \"1h\"\n[[population]]\nname = \"p\"\nclients = 1\narrival = {arrival}\n");
    assert_err(&with("{ kind = \"poisson\", rate = \"0/s\" }"), 5, "arrival > rate", "at least 1");
    assert_err(&with("{ kind = \"constant\", rate = \"-2/s\" }"), 5, "arrival > rate", "rate");
    assert_err(&with("{ kind = \"poisson\", rate = \"2 per second\" }"), 5, "arrival > rate", "expected a rate");
    assert_err(
        &with("{ kind = \"diurnal\", rate = \"2/fortnight\", peak_ratio = 2 }"),
        5,
        "arrival > rate",
        "unknown unit",
    );
    assert_err(&with("{ kind = \"ramp\", from = \"0/s\", to = \"0/min\" }"), 5, "arrival > from", "both are zero");
    assert_err(
        &with("{ kind = \"flash-crowd\", rate = \"5/s\", at = \"1min\", peak = \"1/s\", decay = \"1min\" }"),
        5,
        "arrival > peak",
        "at least the base rate",
    );
    assert_err(
        &with("{ kind = \"diurnal\", rate = \"5/s\", peak_ratio = 0.5 }"),
        5,
        "arrival > peak_ratio",
        "at least 1",
    );
    assert_err(
        &with("{ kind = \"on-off\", rate = \"5/s\", on = \"0s\", off = \"1s\" }"),
        5,
        "arrival > on",
        "longer than zero",
    );
    // Zero is only for ramps and flash-crowd bases.
    assert_err(
        &with("{ kind = \"flash-crowd\", rate = \"1/s\", at = \"1min\", peak = \"0/s\", decay = \"1min\" }"),
        5,
        "arrival > peak",
        "at least 1",
    );
}

#[test]
fn unknown_arrival_kind_is_a_located_error() {
    let e = parse_err(
        "horizon = \"1h\"\n[[population]]\nname = \"web\"\nclients = 1\narrival = { kind = \"bursty\", rate = \"1/s\" }\n",
    );
    assert_eq!((e.line, e.column), (5, 20), "{e}");
    assert_eq!(e.field, "population \"web\" > arrival > kind");
    assert!(e.message.contains("unknown arrival kind \"bursty\""), "{e}");
    assert!(e.message.contains("flash-crowd"), "{e}");
    let shown = e.to_string();
    assert!(shown.starts_with("bad.toml:5:20: field `population \"web\" > arrival > kind`"), "{shown}");
}

#[test]
fn bad_distributions_are_located_errors() {
    let with = |d: &str| format!("horizon = \"1h\"\n{OK_POP}tokens = {d}\n");
    assert_err(&with("{ dist = \"gamma\", mean = 3 }"), 6, "tokens > dist", "unknown distribution \"gamma\"");
    assert_err(&with("{ mean = 3 }"), 6, "tokens > dist", "missing field `dist`");
    assert_err(&with("{ dist = \"exponential\" }"), 6, "tokens > mean", "missing field `mean`");
    assert_err(&with("{ dist = \"exponential\", mean = -3 }"), 6, "tokens > mean", "at least 0");
    assert_err(&with("{ dist = \"exponential\", mean = 0 }"), 6, "tokens > mean", "greater than 0");
    assert_err(&with("{ dist = \"uniform\", min = 5, max = 2 }"), 6, "tokens > max", "at least `min`");
    assert_err(&with("{ dist = \"lognormal\", sigma = 1 }"), 6, "tokens > median", "missing field `median`");
    assert_err(&with("{ dist = \"lognormal\", median = 3, mu = 1, sigma = 1 }"), 6, "tokens > median", "not both");
    assert_err(&with("{ dist = \"constant\", value = \"ten\" }"), 6, "tokens > value", "expected a number");
    assert_err(&with("{ dist = \"constant\", value = nan }"), 6, "tokens > value", "finite");
    assert_err(
        &format!("horizon = \"1h\"\n{OK_POP}duration = {{ dist = \"constant\", value = \"ten seconds\" }}\n"),
        6,
        "duration > value",
        "duration",
    );
}

#[test]
fn bad_weights_and_identities_are_located_errors() {
    let with = |extra: &str| format!("horizon = \"1h\"\n{OK_POP}{extra}\n");
    assert_err(&with("endpoints = { invoke = 0.9, health = -0.1 }"), 6, "endpoints > health", "non-negative weight");
    assert_err(&with("endpoints = { invoke = 0, health = 0.0 }"), 6, "endpoints", "all endpoint weights are zero");
    assert_err(&with("endpoints = {}"), 6, "endpoints", "at least one endpoint");
    assert_err(&with("endpoints = { invoke = \"most\" }"), 6, "endpoints > invoke", "expected a number");
    assert_err(
        &with("endpoints = { predictions.create = 1 }"),
        6,
        "endpoints > predictions",
        "quote endpoint names that contain dots",
    );
    assert_err(&with("endpoint = \"a\"\nendpoints = { b = 1 }"), 6, "endpoint", "not both");
    assert_err(&with("keys = \"pooled\""), 6, "keys", "\"per-client\" or \"shared\"");
    assert_err(&with("shared_keys = 1"), 6, "shared_keys", "keys = \"shared\"");
    assert_err(&with("users = 2"), 6, "users", "at most the number of keys");
    assert_err(&with("clients_x = 2"), 6, "", "unknown field");
    assert_err(
        "horizon = \"1h\"\n[[population]]\nname = \"p\"\nclients = 0\narrival = { kind = \"poisson\", rate = \"1/s\" }\n",
        4,
        "clients",
        "from 1",
    );
    assert_err(&with("batch = 0"), 6, "batch", "from 1");
    assert_err(&with("job = { poll_every = \"1s\" }"), 6, "job > poll_endpoint", "missing field");
    assert_err(&with("job = { mode = \"webhook\", poll_every = \"1s\" }"), 6, "job > poll_every", "does not poll");
    assert_err(&with("job = { mode = \"push\" }"), 6, "job > mode", "\"poll\" or \"webhook\"");
    assert_err(&with("seed = 1"), 6, "", "unknown field `seed`");
    assert_err(&format!("seed = -1\nhorizon = \"1h\"\n{OK_POP}"), 1, "seed", "from 0");
    assert_err("horizon = 3600\n", 1, "horizon", "expected a string, found integer `3600`");
}

#[test]
fn load_spec_reports_unreadable_files() {
    let e = load_spec(Path::new("/nonexistent/spec.toml")).unwrap_err();
    assert_eq!(e.file, "/nonexistent/spec.toml");
    assert!(e.message.contains("cannot read"), "{e}");
}

#[test]
fn shipped_specs_parse_and_generate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("traces/ exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let s = load_spec(&path).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with('#'), "{} needs a comment header", path.display());
        let seed = s.seed().unwrap_or(0);
        let r = rows_up_to(&s, seed, 5_000);
        assert!(!r.is_empty(), "{} generates nothing", path.display());
        assert!(r.windows(2).all(|w| t(&w[0]) <= t(&w[1])));
        assert!(r.iter().all(|row| t(row) < s.horizon()));
        assert_eq!(r, rows_up_to(&s, seed, 5_000));
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    for want in [
        "async-jobs-polling.toml",
        "diurnal-day.toml",
        "flash-crowd.toml",
        "morning-burst.toml",
        "steady-below.toml",
        "steady-over.toml",
        "workspace-many-keys.toml",
    ] {
        assert!(names.iter().any(|n| n == want), "missing traces/{want}");
    }
}

#[test]
fn shipped_specs_have_the_advertised_rates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    let below = load_spec(&dir.join("steady-below.toml")).unwrap();
    assert_eq!(rows(&below, 1).len(), 21_600);
    let over = load_spec(&dir.join("steady-over.toml")).unwrap();
    assert_poisson(rows(&over, 2).len() as u64, 12.0 * 3600.0, "steady-over");
    let jobs = load_spec(&dir.join("async-jobs-polling.toml")).unwrap();
    let r = rows(&jobs, 7);
    assert!(r
        .iter()
        .filter(|row| row.key.starts_with("pollers"))
        .all(|row| row.poll_every == S && row.poll_endpoint == "predictions.get"));
    assert!(r
        .iter()
        .filter(|row| row.key.starts_with("webhooks"))
        .all(|row| row.poll_every == 0 && row.endpoint == "predictions.create"));
}

#[test]
fn too_many_clients_points_at_the_population_that_goes_over() {
    let pop = |name: &str| {
        format!("[[population]]\nname = \"{name}\"\nclients = 600000\narrival = {{ kind = \"constant\", rate = \"1/min\" }}\n")
    };
    let text = format!("horizon = \"1min\"\n{}{}# end\n", pop("a"), pop("b"));
    assert_err(&text, 8, "clients", "at most 1000000 clients in one spec, found 1200000");
}

// ----------------------------------------------------------------------------
// Messages with a place and a reason, amounts in range, row estimates (issue 9).

#[test]
fn rate_errors_give_their_own_reason() {
    let with =
        |arrival: &str| format!("horizon = \"1h\"\n[[population]]\nname = \"p\"\nclients = 1\narrival = {arrival}\n");
    // Every rate error used to end in "a rate must be positive (requests per client)".
    for (rate, says) in [
        ("1/100y", "(unknown unit \"100y\"; use s, min, h, day or a duration)"),
        ("1/40000day", "(the period must be at most 100 years)"),
        ("-1/s", "(the count must be at least 1; it is negative)"),
        ("18446744073709551616/1ns", "(the count is too large: at most 18446744073709551615)"),
    ] {
        let text = with(&format!("{{ kind = \"poisson\", rate = \"{rate}\" }}"));
        let e = parse_err(&text);
        assert_eq!((e.line, e.field.as_str()), (5, "population \"p\" > arrival > rate"), "{e}");
        assert!(e.message.ends_with(says), "{e}");
        assert!(!e.message.contains("must be positive"), "{e}");
    }
    // A zero-count rate where zero is allowed still names the rate as written.
    let e = parse_err(&with("{ kind = \"ramp\", from = \"0/100y\", to = \"1/s\" }"));
    assert!(e.message.contains("found \"0/100y\" (unknown unit \"100y\""), "{e}");
}

#[test]
fn out_of_range_integers_and_datetimes_name_the_field() {
    let with = |extra: &str| format!("horizon = \"1h\"\n{OK_POP}{extra}\n");
    // These used to say "expected i64", "as i128, expected struct RawDist" or
    // "expected any valid TOML value", without a field.
    assert_err(&with("batch = 99999999999999999999"), 6, "population \"p\" > batch", "below 2^63");
    assert_err(
        &with("tokens = 99999999999999999999"),
        6,
        "population \"p\" > tokens",
        "expected a table, found integer `99999999999999999999`, which is outside the range of TOML integers",
    );
    assert_err(
        &with("tokens = { dist = \"constant\", value = 99999999999999999999 }"),
        6,
        "population \"p\" > tokens > value",
        "outside the range of TOML integers",
    );
    assert_err(
        &with("tokens = { dist = \"constant\", value = 18446744073709551615 }"),
        6,
        "population \"p\" > tokens > value",
        "integer `18446744073709551615` is outside the range of TOML integers",
    );
    assert_err(
        &with("endpoints = { a = 99999999999999999999 }"),
        6,
        "population \"p\" > endpoints > a",
        "outside the range of TOML integers",
    );
    assert_err("horizon = \"1h\"\nseed = 99999999999999999999\n", 2, "seed", "below 2^63");
    // `arrival = 1979-05-27T07:32:00Z` used to say "unknown field `$__toml_private_datetime`".
    let e = parse_err("horizon = \"1h\"\n[[population]]\nname = \"p\"\nclients = 1\narrival = 1979-05-27T07:32:00Z\n");
    assert_eq!((e.line, e.field.as_str()), (5, "population \"p\" > arrival"), "{e}");
    assert_eq!(e.message, "expected a table, found the date-time 1979-05-27T07:32:00Z");
    assert_err(&with("start = 07:32:00"), 6, "population \"p\" > start", "found the date-time 07:32:00");
    // A key nested a thousand levels deep.
    let e = parse_err(&format!("horizon = \"1h\"\n{} = 1\n", vec!["a"; 1000].join(".")));
    assert_eq!(e.line, 2, "{e}");
    assert!(e.message.contains("nested too deeply"), "{e}");
}

#[test]
fn amounts_and_durations_beyond_the_maximum_are_located_errors() {
    let with = |extra: &str| format!("horizon = \"1h\"\n{OK_POP}{extra}\n");
    // `value = 1e30` used to become 18446744073709551615 tokens on every row.
    assert_err(
        &with("tokens = { dist = \"constant\", value = 1e30 }"),
        6,
        "population \"p\" > tokens > value",
        "expected at most 1000000000000000 tokens (10^15, the most one request may carry), found 1e30",
    );
    assert_err(&with("cost = { dist = \"uniform\", min = 0, max = 2e15 }"), 6, "cost > max", "minor currency units");
    assert_err(&with("cost = { dist = \"exponential\", mean = 1e16 }"), 6, "cost > mean", "at most 1000000000000000");
    assert_err(
        &with("tokens = { dist = \"lognormal\", mu = 40, sigma = 1 }"),
        6,
        "tokens > mu",
        "median e^mu is at most 1000000000000000 tokens",
    );
    assert_err(&with("duration = { dist = \"constant\", value = 4e9 }"), 6, "duration > value", "(100 years)");
    assert_err(&with("duration = { dist = \"constant\", value = \"40000day\" }"), 6, "duration > value", "100 years");
    // The largest amounts are accepted, and a heavy tail is capped at them.
    let s = spec(&with(
        "tokens = { dist = \"constant\", value = 1e15 }\ncost = { dist = \"lognormal\", median = 1e14, sigma = 30 }\n\
         duration = { dist = \"lognormal\", median = 1e9, sigma = 30 }",
    ));
    let r = rows_up_to(&s, 1, 2_000);
    assert!(r.iter().all(|row| row.tokens == MAX_AMOUNT), "constant 1e15");
    assert!(r.iter().all(|row| row.cost <= MAX_AMOUNT && row.duration <= MAX_DURATION));
    assert!(r.iter().any(|row| row.cost == MAX_AMOUNT), "the tail is capped, not wrapped");
    assert!(r.iter().any(|row| row.duration == MAX_DURATION), "the tail is capped, not wrapped");
}

#[test]
fn oversized_and_non_utf8_specs_are_refused_with_a_place() {
    let dir = std::env::temp_dir().join(format!("ratesim-synth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.toml");
    std::fs::File::create(&big).unwrap().set_len(5 << 20).unwrap();
    let e = load_spec(&big).unwrap_err();
    assert!(e.message.contains("a synthetic trace spec may be at most 4 MiB"), "{e}");
    let latin1 = dir.join("latin1.toml");
    std::fs::write(&latin1, b"horizon = \"1h\"\ndescription = \"caf\xe9\"\n").unwrap();
    let e = load_spec(&latin1).unwrap_err();
    assert_eq!((e.line, e.column), (2, 19), "{e}");
    assert!(e.message.contains("not valid UTF-8"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn expected_rows_estimate_the_generated_rows() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    for name in ["steady-below.toml", "steady-over.toml", "flash-crowd.toml", "morning-burst.toml", "diurnal-day.toml"]
    {
        let s = load_spec(&dir.join(name)).unwrap();
        let actual = rows(&s, s.seed().unwrap_or(0)).len() as f64;
        let expected = s.expected_rows(None);
        assert!(
            (expected - actual).abs() <= 0.05 * actual + 5.0,
            "{name}: expected {expected:.0} rows, generated {actual}"
        );
        assert!(expected < ratesim::trace::synth::MAX_ROWS_UNCONFIRMED, "{name}");
        assert_eq!(s.expected_rows(Some(0)), 0.0, "{name}");
        assert!(s.expected_rows(Some(s.horizon() / 2)) < expected, "{name}: --until lowers the estimate");
    }
    // A million clients at a million requests per second for 100 years: 3e21 rows.
    let huge = spec(
        "horizon = \"36525day\"\n[[population]]\nname = \"all\"\nclients = 1000000\n\
         arrival = { kind = \"poisson\", rate = \"1000000/s\" }\n",
    );
    let rows = huge.expected_rows(None);
    assert!((rows / 3.15576e21 - 1.0).abs() < 1e-6, "{rows:e}");
    assert!((huge.expected_rows(Some(S)) / 1e12 - 1.0).abs() < 1e-6);
}
