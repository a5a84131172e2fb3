//! Simulator throughput, in simulated attempts (or trace rows) per second.
//!
//! Each benchmark runs whole simulations; a warm-up run before timing gives
//! the number of attempts (from the returned `Summary`), which criterion
//! divides by the time (`Throughput::Elements`). Every input is fixed: seeds,
//! generated traces, policies.
//!
//! - `sim-single-key/*`: one RunInfra Pro key (500/min, burst 50) sent 83
//!   requests/s (10x its rate) for 10 virtual minutes, with a retrying
//!   client. The rows come from a tiny in-memory generator (integer
//!   arithmetic, no allocation), so the time is the simulator's.
//! - `sim-100k-keys/*`: 100,000 keys with Poisson arrivals at 1/min each for
//!   10 minutes (about 1 M rows), from a synthetic spec written to a temp
//!   file and generated lazily while simulating; `synth-only` drains the same
//!   trace without simulating, to split the time.
//! - `sim-replay/csv-10m`: a recorded trace streamed from disk: a 10-million
//!   row CSV (`t,key`, 2,000 keys) generated once into
//!   `$TMPDIR/ratesim-bench/`, replayed open loop (`ClientSpec::none()`).
//! - `sim-sweep/*`: the same sweep of 8 scenarios (RunInfra Pro,
//!   `traces/steady-over.toml` with 8 seeds, `openai-python`) on 1 and 2
//!   threads; before it, 30 sweeps at each thread count timed one by one
//!   (minimum, median and maximum printed), to show the spread.
//!
//! The long benchmarks use 10 samples of a fixed iteration count
//! (`SamplingMode::Flat`) so the suite stays within minutes.
//! Run e.g. `cargo bench --bench sim -- sim-replay`.

mod common;

use common::SplitMix;

use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

use ratesim::client::ClientSpec;
use ratesim::metrics::{NoBuckets, Summary};
use ratesim::policy::{self, Policy};
use ratesim::sim::sweep::{run_sweep, Scenario};
use ratesim::sim::{NoDecisions, SimConfig, Simulation};
use ratesim::time::SECOND;
use ratesim::trace::{self, TraceError, TraceRow, TraceSource, TraceTime};

fn runinfra() -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/runinfra.toml");
    policy::load(&path).expect("policies/runinfra.toml parses")
}

fn bench_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("ratesim-bench");
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// One key sending `count` requests at exactly `per_second` requests per
/// second: row `i` at `i·1s/per_second` (integer arithmetic).
struct ConstantRate {
    i: u64,
    count: u64,
    per_second: u64,
}

impl TraceSource for ConstantRate {
    fn next_row(&mut self, row: &mut TraceRow) -> Result<bool, TraceError> {
        if self.i == self.count {
            return Ok(false);
        }
        if row.key.is_empty() {
            row.key.push_str("key-1");
        }
        row.t = TraceTime::Offset(self.i * SECOND / self.per_second);
        self.i += 1;
        Ok(true)
    }
}

fn simulate(policy: &Policy, plan: &str, config: &SimConfig, trace: &mut dyn TraceSource) -> Summary {
    let plan = policy.plan(plan).expect("plan exists");
    Simulation::new(policy, plan, config.clone()).run(trace, &mut NoBuckets, &mut NoDecisions).expect("simulation runs")
}

fn single_key(c: &mut Criterion) {
    let policy = runinfra();
    // 83/s for 10 minutes: 49,800 rows.
    let rows = 83 * 600;
    let mut g = c.benchmark_group("sim-single-key");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(20);
    for client in ["naive-immediate", "openai-python"] {
        let config = SimConfig { seed: 42, client: ClientSpec::parse(client).unwrap(), ..SimConfig::default() };
        let trace = || ConstantRate { i: 0, count: rows, per_second: 83 };
        let summary = simulate(&policy, "pro", &config, &mut trace());
        eprintln!(
            "sim-single-key/{client}: {} rows, {} attempts, {} admitted, {} retries",
            summary.requests, summary.attempts, summary.admitted, summary.retries
        );
        g.throughput(Throughput::Elements(summary.attempts));
        g.bench_function(format!("runinfra-pro-10x/{client}"), |b| {
            b.iter(|| black_box(simulate(&policy, "pro", &config, &mut trace())))
        });
    }
    g.finish();
}

fn many_keys(c: &mut Criterion) {
    let policy = runinfra();
    let spec = bench_dir().join("poisson-100k-keys.toml");
    std::fs::write(
        &spec,
        "horizon = \"10min\"\nseed = 5\n\n[[population]]\nname = \"fleet\"\nclients = 100000\n\
         arrival = { kind = \"poisson\", rate = \"1/min\" }\n",
    )
    .expect("write spec");
    let config = SimConfig { seed: 5, client: ClientSpec::parse("openai-python").unwrap(), ..SimConfig::default() };
    let open = || trace::open(&spec, Some(5)).expect("spec opens");
    let summary = simulate(&policy, "pro", &config, &mut open());
    eprintln!("sim-100k-keys: {} rows, {} attempts, {} admitted", summary.requests, summary.attempts, summary.admitted);
    let mut g = c.benchmark_group("sim-100k-keys");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(summary.attempts));
    g.bench_function("poisson/openai-python", |b| b.iter(|| black_box(simulate(&policy, "pro", &config, &mut open()))));
    g.throughput(Throughput::Elements(summary.requests));
    g.bench_function("synth-only", |b| {
        b.iter(|| {
            let mut source = open();
            let mut row = TraceRow::default();
            let mut n = 0u64;
            while source.next_row(&mut row).unwrap() {
                n += 1;
            }
            black_box(n)
        })
    });
    g.finish();
}

/// Writes the 10-million-row trace once: row `i` at `i / 10,000` s (a
/// 1,000-second trace), key `k{j}` with `j` uniform in 0..2,000 (SplitMix64,
/// seed 3). About 5 requests/s per key, below RunInfra Pro's 8.33/s.
fn replay_csv(rows: u64) -> PathBuf {
    let path = bench_dir().join(format!("replay-{rows}-rows-2000-keys.csv"));
    if path.exists() {
        return path;
    }
    let tmp = path.with_extension("csv.partial");
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp).expect("create trace"));
    writeln!(w, "t,key").unwrap();
    let mut rng = SplitMix(3);
    for i in 0..rows {
        writeln!(w, "{}.{:04},k{}", i / 10_000, i % 10_000, rng.next() % 2_000).unwrap();
    }
    w.into_inner().expect("flush").sync_all().ok();
    std::fs::rename(&tmp, &path).expect("rename trace");
    path
}

fn replay(c: &mut Criterion) {
    let policy = runinfra();
    let path = replay_csv(10_000_000);
    let config = SimConfig { client: ClientSpec::none(), ..SimConfig::default() };
    let open = || trace::open(&path, None).expect("csv opens");
    let summary = simulate(&policy, "pro", &config, &mut open());
    eprintln!(
        "sim-replay: {} ({} bytes): {} rows, {} admitted",
        path.display(),
        std::fs::metadata(&path).map_or(0, |m| m.len()),
        summary.requests,
        summary.admitted
    );
    let mut g = c.benchmark_group("sim-replay");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(1));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(summary.requests));
    g.bench_function("csv-10m/none", |b| b.iter(|| black_box(simulate(&policy, "pro", &config, &mut open()))));
    g.finish();
}

fn sweep(c: &mut Criterion) {
    let policy = Arc::new(runinfra());
    let trace = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/steady-over.toml");
    let client = ClientSpec::parse("openai-python").unwrap();
    let scenarios: Vec<Scenario> = (0..8u64)
        .map(|seed| Scenario {
            policy: policy.clone(),
            plan: "pro".into(),
            trace: trace.clone(),
            config: SimConfig { seed, client: client.clone(), ..SimConfig::default() },
        })
        .collect();
    let attempts: u64 = run_sweep(&scenarios, 1).unwrap().into_iter().map(|r| r.expect("scenario runs").attempts).sum();
    eprintln!("sim-sweep: 8 scenarios, {attempts} attempts in all");
    // Whole sweeps timed one by one, to see the spread: on a shared machine
    // the second core is now and then busy elsewhere, and criterion's flat
    // samples average those sweeps in.
    for threads in [1, 2] {
        let mut ms: Vec<f64> = (0..30)
            .map(|_| {
                let start = Instant::now();
                black_box(run_sweep(&scenarios, threads).unwrap());
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        eprintln!(
            "sim-sweep: 30 sweeps on {threads} thread(s): min {:.1} ms, median {:.1} ms, max {:.1} ms",
            ms[0], ms[15], ms[29]
        );
    }
    let mut g = c.benchmark_group("sim-sweep");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(attempts));
    for threads in [1, 2] {
        g.bench_function(format!("8-scenarios/{threads}-thread"), |b| {
            b.iter(|| black_box(run_sweep(&scenarios, threads).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, single_key, many_keys, replay, sweep);
criterion_main!(benches);
