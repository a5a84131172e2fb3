//! Simulator behaviour: exact open-loop replay, determinism, queueing theory
//! (Erlang B), and retry storms.

use std::path::Path;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ratesim::client::ClientSpec;
use ratesim::metrics::{Bucket, BucketSink, KeepBuckets, NoBuckets, Summary};
use ratesim::policy::{self, Policy};
use ratesim::report::{summary_json, RunInfo, TimeseriesCsv};
use ratesim::sim::sweep::{run_sweep, Scenario};
use ratesim::sim::{JsonlDecisions, NoDecisions, SimConfig, Simulation};
use ratesim::time::{MILLISECOND, SECOND};
use ratesim::trace::{MemoryTrace, TraceRow, TraceTime};

fn runinfra() -> Policy {
    policy::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/runinfra.toml"))).unwrap()
}

fn row(t: u64, key: &str) -> TraceRow {
    TraceRow { t: TraceTime::Offset(t), key: key.into(), ..TraceRow::default() }
}

fn run(policy: &Policy, plan: &str, rows: Vec<TraceRow>, client: &str, seed: u64) -> Summary {
    let config = SimConfig { seed, client: ClientSpec::parse(client).unwrap(), ..SimConfig::default() };
    Simulation::new(policy, policy.plan(plan).unwrap(), config)
        .run(&mut MemoryTrace::new(rows), &mut NoBuckets, &mut NoDecisions)
        .unwrap()
}

#[test]
fn runinfra_pro_burst_example_replays_exactly() {
    let p = runinfra();
    // 100 requests at one instant: exactly the burst of 50.
    let s = run(&p, "pro", (0..100).map(|_| row(0, "k")).collect(), "none", 1);
    assert_eq!((s.requests, s.attempts, s.admitted), (100, 100, 50));
    assert_eq!(s.denied_by_status.get(&429), Some(&50));
    assert_eq!(s.denied_by_limit.get("rpm"), Some(&50));
    // Spread evenly over the first second (every 10 ms): 58.
    let s = run(&p, "pro", (0..100).map(|i| row(i * 10 * MILLISECOND, "k")).collect(), "none", 1);
    assert_eq!(s.admitted, 58);
}

#[test]
fn steady_stream_below_every_limit_never_sees_a_429() {
    let p = runinfra();
    // 8 req/s for an hour against 500/min (8.33/s).
    let rows = (0..8 * 3600).map(|i| row(i * SECOND / 8, "k")).collect();
    let s = run(&p, "pro", rows, "openai-python", 7);
    assert_eq!(s.admitted, 8 * 3600);
    assert_eq!(s.retries, 0);
    assert!(s.denied_by_status.is_empty());
    assert_eq!(s.success_ratio, 1.0);
}

#[test]
fn sustained_overload_settles_at_the_drain_rate() {
    let p = runinfra();
    // 10 req/s for 10 minutes, open loop: burst + 500/min.
    let rows = (0..6000).map(|i| row(i * 100 * MILLISECOND, "k")).collect();
    let s = run(&p, "pro", rows, "none", 1);
    // By the last request at 599.9 s: 50 + floor(599.9 s · 500/60 s) = 50 + 4999.
    assert_eq!(s.admitted, 50 + 4999);
}

/// Runs a scenario writing every output to bytes.
fn outputs(policy: &Policy, rows: Vec<TraceRow>, client: &str, seed: u64) -> (String, String, String) {
    let plan = policy.plan("pro").unwrap();
    let config = SimConfig { seed, client: ClientSpec::parse(client).unwrap(), ..SimConfig::default() };
    let mut ts = TimeseriesCsv::new(Vec::new(), vec!["rpm".into()]);
    let mut dec = JsonlDecisions(Vec::new());
    let summary = Simulation::new(policy, plan, config).run(&mut MemoryTrace::new(rows), &mut ts, &mut dec).unwrap();
    let info = RunInfo {
        provider: "RunInfra".into(),
        policy: "runinfra.toml".into(),
        plan: "pro".into(),
        trace: "memory".into(),
        client: client.into(),
        client_behaviour: String::new(),
        seed,
        start: "2026-01-01T00:00:00Z".into(),
        bucket_ns: SECOND,
        version: "test".into(),
        ..RunInfo::default()
    };
    (
        summary_json(&info, &summary),
        String::from_utf8(ts.into_inner().unwrap()).unwrap(),
        String::from_utf8(dec.0).unwrap(),
    )
}

/// Issue 9, point 12: two rows of 2^63 tokens and money each gave a summary
/// of 0 (the u64 total wrapped) while the time series showed both.
#[test]
fn token_and_spend_totals_never_wrap() {
    let p = policy::parse(
        "provider = \"t\"\n[[plan]]\nname = \"pro\"\n[[plan.limit]]\nid = \"rpm\"\nalgorithm = \"gcra\"\nrate = \"500/min\"\nburst = 50\n",
        "t.toml",
    )
    .unwrap();
    let half = 1u64 << 63;
    let rows: Vec<TraceRow> = [(0, "a"), (SECOND / 2, "b")]
        .into_iter()
        .map(|(t, key)| TraceRow { tokens: half, cost: half, ..row(t, key) })
        .collect();
    let mut buckets = KeepBuckets::default();
    let s = Simulation::new(&p, p.plan("pro").unwrap(), SimConfig::default())
        .run(&mut MemoryTrace::new(rows), &mut buckets, &mut NoDecisions)
        .unwrap();
    assert_eq!((s.tokens, s.spend), (1 << 64, 1 << 64));
    assert_eq!((buckets.0[0].tokens, buckets.0[0].spend), (1 << 64, 1 << 64));
    let info = RunInfo {
        provider: "t".into(),
        policy: "t.toml".into(),
        plan: "pro".into(),
        trace: "memory".into(),
        client: "none".into(),
        client_behaviour: String::new(),
        seed: 0,
        start: "2026-01-01T00:00:00Z".into(),
        bucket_ns: SECOND,
        version: "test".into(),
        ..RunInfo::default()
    };
    let json = summary_json(&info, &s);
    assert!(json.contains("\"tokens\": 18446744073709551616,"), "{json}");
    assert!(json.contains("\"spend\": 18446744073709551616,"), "{json}");
    let mut csv = TimeseriesCsv::new(Vec::new(), vec!["rpm".into()]);
    csv.bucket(&buckets.0[0]).unwrap();
    let csv = String::from_utf8(csv.into_inner().unwrap()).unwrap();
    assert!(csv.ends_with(",18446744073709551616,18446744073709551616,0\n"), "{csv}");
}

/// Issue 9, point 5: retry amplification counted polls (12.82× on the
/// async-jobs run with 178 retries for 386 requests). It is (first attempts
/// + retries) / requests; polls are the separate polling load.
#[test]
fn retry_amplification_leaves_polls_to_the_polling_load() {
    let root = env!("CARGO_MANIFEST_DIR");
    let p = policy::load(&Path::new(root).join("policies/predictions-api.toml")).unwrap();
    let config = SimConfig { seed: 7, client: ClientSpec::parse("predictions-node").unwrap(), ..SimConfig::default() };
    let mut trace = ratesim::trace::open(&Path::new(root).join("traces/async-jobs-polling.toml"), Some(7)).unwrap();
    let s = Simulation::new(&p, p.plan("default").unwrap(), config)
        .run(&mut *trace, &mut NoBuckets, &mut NoDecisions)
        .unwrap();
    assert!(s.polls > 10 * s.retries && s.retries > 0, "{} polls, {} retries", s.polls, s.retries);
    assert_eq!(s.attempts, s.requests + s.retries + s.polls, "no attempt was held back");
    assert_eq!(s.retry_amplification, (s.requests + s.retries) as f64 / s.requests as f64);
    assert!(s.retry_amplification < 2.0, "{}", s.retry_amplification);
    assert_eq!(s.polls_per_request, s.polls as f64 / s.requests as f64);
}

/// Issue 9, point 6: a trace without rows is an error, not a run of zeros.
#[test]
fn a_trace_without_rows_is_an_error() {
    let p = runinfra();
    let r = Simulation::new(&p, p.plan("pro").unwrap(), SimConfig::default()).run(
        &mut MemoryTrace::new(Vec::new()),
        &mut NoBuckets,
        &mut NoDecisions,
    );
    assert!(matches!(r, Err(ratesim::sim::SimError::EmptyTrace)), "{r:?}");
}

/// Issue 9, point 14: `pace=window:1:36525day` held the seventh request
/// beyond the last instant a u64 of nanoseconds holds; the run wrapped
/// round and reported "virtual time 0 ms" with decisions at
/// `t_ns` 16679518473709551615. Such a run is now an error that says so,
/// and with `until` a run that simply stops before it.
#[test]
fn virtual_time_never_wraps_past_u64() {
    use ratesim::sim::SimError;
    let p = runinfra();
    let rows = || MemoryTrace::new((0..8).map(|_| row(0, "k")).collect());
    let paced = |until| SimConfig {
        client: ClientSpec::parse("none,pace=window:1:36525day").unwrap(),
        until,
        ..SimConfig::default()
    };
    let mut times = Vec::new();
    let r = Simulation::new(&p, p.plan("pro").unwrap(), paced(None)).run(
        &mut rows(),
        &mut NoBuckets,
        &mut Collect(&mut times),
    );
    match r {
        Err(e @ SimError::TimeOverflow(_)) => {
            let text = e.to_string();
            for part in ["2554-07-21T23:34:33.709551615Z", "request 6 (key k)", "pace", "--until"] {
                assert!(text.contains(part), "{part:?} missing from: {text}");
            }
        }
        other => panic!("expected a time overflow, got {other:?}"),
    }
    // Six sends, 100 years apart, all at their real instants.
    let year100 = 36_525 * 86_400 * SECOND;
    assert_eq!(times, (0..6).map(|i| i * year100).collect::<Vec<_>>());

    // With `until` the run stops at its end, whatever lies beyond u64.
    let mut times = Vec::new();
    let s = Simulation::new(&p, p.plan("pro").unwrap(), paced(Some(3 * year100 - 1)))
        .run(&mut rows(), &mut NoBuckets, &mut Collect(&mut times))
        .unwrap();
    assert_eq!((s.admitted, s.unresolved, s.duration_ns), (3, 5, 3 * year100 - 1));
    assert_eq!(times, vec![0, year100, 2 * year100]);

    // A service time past the end: the same error, naming the completion.
    let long = TraceRow { duration: u64::MAX - 1, ..row(0, "k") };
    let r = Simulation::new(&p, p.plan("pro").unwrap(), SimConfig::default()).run(
        &mut MemoryTrace::new(vec![long]),
        &mut NoBuckets,
        &mut NoDecisions,
    );
    assert!(matches!(&r, Err(SimError::TimeOverflow(w)) if w.contains("complete")), "{r:?}");
}

/// Collects each attempt's `t_ns`.
struct Collect<'a>(&'a mut Vec<u64>);

impl ratesim::sim::DecisionSink for Collect<'_> {
    fn decision(&mut self, d: &ratesim::sim::DecisionRecord<'_>) -> std::io::Result<()> {
        self.0.push(d.t_ns);
        Ok(())
    }
}

/// Issue 9, point 10: time-to-success quantiles came from a histogram, up
/// to 0.1% below the exact ones. With every success's latency at hand they
/// are exact, and say so.
#[test]
fn time_to_success_quantiles_are_exact() {
    struct Admitted(Vec<(u64, u64)>);
    impl ratesim::sim::DecisionSink for Admitted {
        fn decision(&mut self, d: &ratesim::sim::DecisionRecord<'_>) -> std::io::Result<()> {
            if d.allowed {
                self.0.push((d.request, d.t_ns));
            }
            Ok(())
        }
    }
    let p = runinfra();
    let rows = bursty_rows(20_000, 5);
    let arrivals: Vec<u64> = rows.iter().map(|r| if let TraceTime::Offset(t) = r.t { t } else { 0 }).collect();
    let config = SimConfig { seed: 4, client: ClientSpec::parse("aicredits-jitter").unwrap(), ..SimConfig::default() };
    let mut admitted = Admitted(Vec::new());
    let s = Simulation::new(&p, p.plan("pro").unwrap(), config)
        .run(&mut MemoryTrace::new(rows), &mut NoBuckets, &mut admitted)
        .unwrap();
    let mut waits: Vec<u64> = admitted.0.iter().map(|&(r, t)| t - arrivals[r as usize]).collect();
    waits.sort_unstable();
    assert_eq!(waits.len() as u64, s.successes);
    assert!(waits.windows(2).filter(|w| w[0] != w[1]).count() > 1_000, "the waits must be varied");
    let exact = |q: f64| Some(waits[((q * waits.len() as f64).ceil() as usize).clamp(1, waits.len()) - 1]);
    let t = &s.time_to_success;
    assert!(t.exact);
    assert_eq!((t.p50_ns, t.p90_ns, t.p99_ns, t.max_ns), (exact(0.5), exact(0.9), exact(0.99), waits.last().copied()));
}

/// Issue 9, point 4 (the summary's side): every denial status is shown
/// where the run summary shows denials: a line per status on the terminal
/// (402 and 503 as well as 429), `denied_by_status` in summary.json, and the
/// time series' per-status columns.
#[test]
fn every_denial_status_is_in_the_summaries() {
    let p = policy::parse(
        r#"
provider = "t"
[[plan]]
name = "p"
[[plan.limit]]
id = "rps"
algorithm = "fixed-window"
rate = "4/s"
[[plan.limit]]
id = "inflight"
algorithm = "concurrency"
max = 3
status = 503
[[plan.limit]]
id = "spend"
algorithm = "budget"
unit = "USD"
limit = 10
period = "lifetime"
status = 402
"#,
        "t.toml",
    )
    .unwrap();
    // Four one-second requests at once: the fourth finds 3 in flight (503).
    // Five at 2 s: the fifth is over the window (429). Three of 6 cents at
    // 4 s: the third finds 12 cents spent (402).
    let mut rows: Vec<TraceRow> = (0..4).map(|_| TraceRow { duration: SECOND, ..row(0, "k") }).collect();
    rows.extend((0..5).map(|_| row(2 * SECOND, "k")));
    rows.extend((0..3).map(|_| TraceRow { cost: 6, ..row(4 * SECOND, "k") }));
    let mut buckets = KeepBuckets::default();
    let s = Simulation::new(&p, &p.plans[0], SimConfig::default())
        .run(&mut MemoryTrace::new(rows), &mut buckets, &mut NoDecisions)
        .unwrap();
    let by_status: Vec<(u16, u64)> = s.denied_by_status.iter().map(|(&k, &v)| (k, v)).collect();
    assert_eq!(by_status, [(402, 1), (429, 1), (503, 1)]);
    let info = RunInfo {
        provider: "t".into(),
        policy: "t.toml".into(),
        plan: "p".into(),
        trace: "memory".into(),
        client: "none".into(),
        client_behaviour: String::new(),
        seed: 0,
        start: "2026-01-01T00:00:00Z".into(),
        bucket_ns: SECOND,
        version: "test".into(),
        ..RunInfo::default()
    };
    let text = ratesim::report::terminal_summary(&info, &s, ratesim::sim::DEFAULT_START);
    for (status, n) in &by_status {
        let line = text.lines().find(|l| l.trim_start().starts_with(&format!("denied {status}")));
        let line = line.unwrap_or_else(|| panic!("no `denied {status}` line:\n{text}"));
        assert!(line.contains(&n.to_string()) && line.ends_with("of attempts"), "{line}");
    }
    let json = summary_json(&info, &s);
    for (status, n) in &by_status {
        assert!(json.contains(&format!("\"{status}\": {n}")), "{json}");
    }
    let sum = |f: fn(&Bucket) -> u64| buckets.0.iter().map(f).sum::<u64>();
    let statuses = [(402, sum(|b| b.denied_402)), (429, sum(|b| b.denied_429)), (503, sum(|b| b.denied_503))];
    assert_eq!(statuses.to_vec(), by_status);
}

/// Counts what a simulation hands its bucket sink.
#[derive(Default)]
struct SinkCalls {
    buckets: u64,
    idle_calls: u64,
    idle_buckets: u64,
}

impl BucketSink for SinkCalls {
    fn bucket(&mut self, _: &Bucket) -> std::io::Result<()> {
        self.buckets += 1;
        Ok(())
    }

    fn idle(&mut self, _: &Bucket, count: u64, _: u64) -> std::io::Result<()> {
        self.idle_calls += 1;
        self.idle_buckets += count;
        Ok(())
    }
}

/// Issue 9, point 15: the simulator walked every empty bucket up to the
/// next event (a row 30 days after another, with 1 ms buckets, is 2.6
/// billion buckets). A quiet stretch is now one `idle` call, and
/// `timeseries.csv` writes it as its first and last rows.
#[test]
fn quiet_stretches_cost_one_call_and_two_rows() {
    let p = runinfra();
    let month = 30 * 86_400 * SECOND;
    let rows = || MemoryTrace::new(vec![row(0, "k"), row(2 * MILLISECOND, "k"), row(month, "k")]);
    let config = SimConfig { bucket: MILLISECOND, ..SimConfig::default() };
    let mut calls = SinkCalls::default();
    let s = Simulation::new(&p, p.plan("pro").unwrap(), config.clone())
        .run(&mut rows(), &mut calls, &mut NoDecisions)
        .unwrap();
    assert_eq!(s.requests, 3);
    // Buckets 0, 2 and the last with a row each; 1 and 3.. idle, in two calls.
    assert_eq!((calls.buckets, calls.idle_calls), (3, 2));
    assert_eq!(calls.buckets + calls.idle_buckets, month / MILLISECOND + 1);

    let mut csv = TimeseriesCsv::new(Vec::new(), vec!["rpm".into()]);
    Simulation::new(&p, p.plan("pro").unwrap(), config).run(&mut rows(), &mut csv, &mut NoDecisions).unwrap();
    let csv = String::from_utf8(csv.into_inner().unwrap()).unwrap();
    let times: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    // Bucket 1 and the stretch after bucket 2 are quiet: first and last rows
    // (no successes: no mean or longest time to success).
    assert_eq!(times, ["0", "0.001", "0.002", "0.003", "2591999.999", "2592000"], "{csv}");
    assert!(
        csv.contains("\n0.003,0,0,0,0,0,0,0,0,0,0,0,0,,,0,0,0,0,0\n2591999.999,0,0,0,0,0,0,0,0,0,0,0,0,,,0,0,0,0,0\n"),
        "{csv}"
    );
}

fn bursty_rows(n: usize, seed: u64) -> Vec<TraceRow> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = 0u64;
    (0..n)
        .map(|_| {
            t += rng.random_range(0..20 * MILLISECOND);
            row(t, &format!("key-{}", rng.random_range(0..5)))
        })
        .collect()
}

#[test]
fn same_inputs_and_seed_give_byte_identical_outputs() {
    let p = runinfra();
    let rows = bursty_rows(20_000, 3);
    // A client whose waits are random (it ignores Retry-After).
    let a = outputs(&p, rows.clone(), "aicredits-jitter", 11);
    let b = outputs(&p, rows.clone(), "aicredits-jitter", 11);
    // (Compared as booleans: a failure must not print megabytes.)
    assert!(a == b, "two runs with the same seed differ");
    assert!(a.0.contains("\"retries\": ") && !a.0.contains("\"retries\": 0,"), "the trace must provoke retries");
    // The jitter really is seeded: another seed changes the retry schedule.
    let c = outputs(&p, rows, "aicredits-jitter", 12);
    assert!(a.2 != c.2, "the seed does not reach the retry jitter");
}

#[test]
fn sweeps_are_identical_whatever_the_thread_count() {
    let dir = std::env::temp_dir().join(format!("ratesim-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("t.csv");
    let mut csv = String::from("t,key\n");
    for r in bursty_rows(5_000, 9) {
        let TraceTime::Offset(t) = r.t else { unreachable!() };
        csv.push_str(&format!("{},{}\n", ratesim::time::format_decimal_seconds(t), r.key));
    }
    std::fs::write(&trace, csv).unwrap();
    let policy = Arc::new(runinfra());
    let scenarios: Vec<Scenario> = ["pro", "pro-max"]
        .iter()
        .flat_map(|plan| {
            let policy = policy.clone();
            let trace = trace.clone();
            ["none", "openai-python", "exp-full-jitter", "aicredits-jitter"].into_iter().flat_map(move |client| {
                let policy = policy.clone();
                let trace = trace.clone();
                (0..3u64).map(move |seed| Scenario {
                    policy: policy.clone(),
                    plan: plan.to_string(),
                    trace: trace.clone(),
                    config: SimConfig { seed, client: ClientSpec::parse(client).unwrap(), ..SimConfig::default() },
                })
            })
        })
        .collect();
    let one: Vec<String> =
        run_sweep(&scenarios, 1).unwrap().into_iter().map(|r| serde_json::to_string(&r.unwrap()).unwrap()).collect();
    let two: Vec<String> =
        run_sweep(&scenarios, 2).unwrap().into_iter().map(|r| serde_json::to_string(&r.unwrap()).unwrap()).collect();
    assert_eq!(one, two);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn erlang_b(c: u32, a: f64) -> f64 {
    // B(0) = 1; B(k) = a·B(k-1) / (k + a·B(k-1)).
    (1..=c).fold(1.0, |b, k| a * b / (k as f64 + a * b))
}

#[test]
fn concurrency_limit_reproduces_erlang_b() {
    let policy = policy::parse(
        r#"
        provider = "queue"
        [[plan]]
        name = "pro"
        [[plan.limit]]
        id = "slots"
        algorithm = "concurrency"
        max = 5
        "#,
        "queue.toml",
    )
    .unwrap();
    // Poisson arrivals at 4/s, exponential service with mean 1 s: a = 4 Erlangs.
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let n = 200_000;
    let mut t = 0.0f64;
    let rows: Vec<TraceRow> = (0..n)
        .map(|_| {
            t += -(1.0 - rng.random::<f64>()).ln() / 4.0;
            let service = -(1.0 - rng.random::<f64>()).ln();
            TraceRow {
                t: TraceTime::Offset((t * 1e9) as u64),
                key: "k".into(),
                duration: (service * 1e9) as u64,
                ..TraceRow::default()
            }
        })
        .collect();
    let s = run(&policy, "pro", rows, "none", 1);
    let blocked = s.denied_by_status.get(&429).copied().unwrap_or(0) as f64 / n as f64;
    let expected = erlang_b(5, 4.0);
    assert!((expected - 0.1991).abs() < 1e-3, "{expected}");
    assert!((blocked - expected).abs() < 0.006, "blocked {blocked:.4}, Erlang B {expected:.4}");
    assert!(s.peak_in_flight <= 5);
}

/// 500 clients, each one request at t = 0, against a shared 100/s window.
fn storm(client: &str) -> (Summary, Vec<u64>) {
    let policy = policy::parse(
        r#"
        provider = "shared"
        [[plan]]
        name = "pro"
        [[plan.limit]]
        id = "global"
        algorithm = "fixed-window"
        rate = "100/s"
        scope = "global"
        "#,
        "shared.toml",
    )
    .unwrap();
    let rows = (0..500).map(|i| row(0, &format!("client-{i}"))).collect();
    let config = SimConfig {
        seed: 5,
        bucket: 100 * MILLISECOND,
        client: ClientSpec::parse(client).unwrap(),
        ..SimConfig::default()
    };
    let mut buckets = KeepBuckets::default();
    let s = Simulation::new(&policy, policy.plan("pro").unwrap(), config)
        .run(&mut MemoryTrace::new(rows), &mut buckets, &mut NoDecisions)
        .unwrap();
    (s, buckets.0.iter().map(|b| b.attempts).collect())
}

#[test]
fn retry_storms_are_visible_and_jitter_spreads_them() {
    // Immediate retries burn every attempt at the same instant: 100 admitted,
    // 400 clients make all 10 attempts and give up.
    let (naive, _) = storm("naive-immediate");
    assert_eq!(naive.attempts, 100 + 400 * 10);
    assert_eq!(naive.retry_amplification, 8.2);
    assert_eq!(naive.success_ratio, 0.2);

    // No jitter, fixed 1 s: synchronized waves of 500, 400, 300, 200, 100
    // attempts, one per second, each admitting 100.
    let (s, attempts) = storm("fixed-1s");
    assert_eq!(s.attempts, 1500);
    assert_eq!(s.retry_amplification, 3.0);
    assert_eq!(s.successes, 500);
    assert_eq!(s.peak_bucket_attempts, 500);
    let waves: Vec<u64> = attempts.iter().copied().filter(|&a| a > 0).collect();
    assert_eq!(waves, vec![500, 400, 300, 200, 100]);

    // Full jitter spreads the retries: after the first instant no 100 ms
    // bucket sees more than a fraction of a wave, and almost all succeed.
    let (j, attempts) = storm("exp-full-jitter,retry_after=ignore,max_attempts=10");
    let peak_after_first = attempts.iter().skip(1).copied().max().unwrap();
    assert!(peak_after_first < 150, "peak {peak_after_first}");
    assert!(j.retry_amplification < naive.retry_amplification);
    assert!(j.success_ratio > 0.95, "{}", j.success_ratio);
}

/// One key sending `count` requests at `per_second` per second, generated on
/// the fly (no row is kept).
struct Stream {
    i: u64,
    count: u64,
    per_second: u64,
}

impl ratesim::trace::TraceSource for Stream {
    fn next_row(&mut self, row: &mut TraceRow) -> Result<bool, ratesim::trace::TraceError> {
        if self.i == self.count {
            return Ok(false);
        }
        if row.key.is_empty() {
            row.key.push('k');
        }
        row.t = TraceTime::Offset(self.i * SECOND / self.per_second);
        self.i += 1;
        Ok(true)
    }
}

#[test]
fn memory_for_requests_does_not_grow_with_the_trace() {
    // Rows settled at once (admitted with no service time, or denied and not
    // retried) free their slot immediately; retried ones when they resolve.
    let p = runinfra();
    let stream = |count, client: &str| {
        let config = SimConfig { seed: 3, client: ClientSpec::parse(client).unwrap(), ..SimConfig::default() };
        Simulation::new(&p, p.plan("pro").unwrap(), config)
            .run(&mut Stream { i: 0, count, per_second: 1_000 }, &mut NoBuckets, &mut NoDecisions)
            .unwrap()
    };
    for count in [10_000, 1_000_000] {
        let s = stream(count, "none");
        assert_eq!(s.requests, count);
        assert_eq!(s.peak_outstanding, 1, "{count} rows open loop");
    }
    // openai-python: at most ~1,000 rows/s × ~2 s of backoff wait at once.
    let short = stream(20_000, "openai-python");
    let long = stream(1_000_000, "openai-python");
    assert!(short.peak_outstanding > 100, "retries keep requests outstanding: {}", short.peak_outstanding);
    assert!(
        long.peak_outstanding <= short.peak_outstanding + short.peak_outstanding / 10,
        "peak outstanding grew with the trace: {} for 20k rows, {} for 1M",
        short.peak_outstanding,
        long.peak_outstanding
    );
}

// ---------------------------------------------------------------------------
// Dialects in the simulator
// ---------------------------------------------------------------------------

fn dialects() -> Policy {
    policy::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dialects.toml"))).unwrap()
}

/// 2 per second and 10 per minute; 10 requests at once, retried every
/// 250 ms up to 40 attempts. Decided atomically, the per-second window lets
/// 2 through each second and all 10 succeed. As Python `limits` (and the
/// Redis script) count them, the 8 denied at once fill the per-minute
/// window with the 2 admitted: every retry is denied, and counted, for the
/// rest of the minute, and the 8 give up: a burst became a lock-out.
#[test]
fn counting_denials_turns_a_retried_burst_into_a_lock_out() {
    let p = dialects();
    let client = "fixed-1s,backoff=fixed:250ms,max_attempts=40";
    let burst = || (0..10).map(|_| row(0, "app")).collect::<Vec<_>>();
    let textbook = run(&p, "textbook", burst(), client, 1);
    assert_eq!((textbook.successes, textbook.give_ups), (10, 0));
    assert_eq!(textbook.denied_by_limit.get("per-minute"), Some(&0));
    for plan in ["python-limits", "redis-incr-expire"] {
        let s = run(&p, plan, burst(), client, 1);
        assert_eq!((s.successes, s.give_ups, s.admitted), (2, 8, 2), "{plan}");
        // 8 denied by the second window at 0 s, then every retry (39 each) by the minute window.
        assert_eq!(s.denied_by_limit.get("per-second"), Some(&8), "{plan}");
        assert_eq!(s.denied_by_limit.get("per-minute"), Some(&(8 * 39)), "{plan}");
    }
}

/// nginx `limit_req rate=2r/s burst=5`: of 8 requests at once, one passes,
/// five wait 0.5 s to 2.5 s in the server, two are refused with 503. The
/// waits count in time to success and in the summary; the waiting requests
/// are in flight; the decisions carry each wait.
#[test]
fn nginx_delays_are_served_late_and_occupy_the_server() {
    let p = dialects();
    let plan = p.plan("nginx").unwrap();
    let rows: Vec<TraceRow> = (0..8).map(|_| row(0, "app")).collect();
    let mut dec = JsonlDecisions(Vec::new());
    let mut ts = TimeseriesCsv::new(Vec::new(), vec!["per-second".into()]).with_delayed_column(true);
    let s =
        Simulation::new(&p, plan, SimConfig::default()).run(&mut MemoryTrace::new(rows), &mut ts, &mut dec).unwrap();
    assert_eq!((s.admitted, s.successes), (6, 6));
    assert_eq!(s.denied_by_status.get(&503), Some(&2));
    let delayed = s.delayed.clone().expect("a plan that can delay reports its delays");
    assert_eq!(delayed.attempts, 5);
    assert_eq!(delayed.wait.max_ns, Some(2_500 * MILLISECOND));
    assert_eq!(s.time_to_success.max_ns, Some(2_500 * MILLISECOND));
    assert_eq!(s.peak_in_flight, 5, "the five waiting requests occupy the server");
    let lines = String::from_utf8(dec.0).unwrap();
    let delays: Vec<&str> = lines.lines().map(|l| l.rsplit_once("\"delay_ns\":").unwrap().1).collect();
    assert_eq!(delays, ["0}", "500000000}", "1000000000}", "1500000000}", "2000000000}", "2500000000}", "0}", "0}"]);
    let csv = String::from_utf8(ts.into_inner().unwrap()).unwrap();
    assert!(csv.starts_with("t_s,requests,attempts,retries,polls,admitted,delayed,denied_429"), "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("0,8,8,0,0,6,5,0,0,2,"), "{csv}");
    // With `nodelay` the same six pass at once, and nothing is delayed.
    let s = run(&p, "nginx-nodelay", (0..8).map(|_| row(0, "app")).collect(), "none", 1);
    assert_eq!((s.admitted, s.time_to_success.max_ns), (6, Some(0)));
    assert_eq!(s.delayed.map(|d| d.attempts), None, "nodelay never delays: no delay figures");
}

/// A plan without a delaying limit writes no delay field or column anywhere
/// (its outputs are those of ratesim before dialects existed).
#[test]
fn plans_that_cannot_delay_write_no_delay_fields() {
    let (summary, csv, decisions) = outputs(&runinfra(), bursty_rows(200, 5), "openai-python", 1);
    assert!(!summary.contains("delayed"));
    assert!(!csv.contains("delayed"));
    assert!(!decisions.contains("delay_ns"));
}
