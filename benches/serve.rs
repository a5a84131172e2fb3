//! What `ratesim serve` spends per decision, apart from HTTP: the sequenced
//! decision of [`LocalBackend::check`] (its lock, a clock read, the
//! limiter), the same decision through `KeyedLimiter::check_at` alone, the
//! rendering of the answer (status, headers, body), and the log line.
//!
//! WriftAI's default plan (authenticated: GCRA 3/s, burst 9), 300 keys in
//! turn, on the system clock, so about two thirds of the decisions are
//! denials once the buckets are full. End-to-end figures with wrk are in
//! docs/PERFORMANCE.md. Run with `cargo bench --bench serve`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use ratesim::limiter::{Clock, KeyedLimiter, SystemClock};
use ratesim::policy::{self, render, Request};
use ratesim::serve::log::LogEntry;
use ratesim::serve::{Backend, LocalBackend};
use ratesim::sim::DecisionFigures;

const KEYS: usize = 300;

fn serve(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/wriftai.toml");
    let policy = Arc::new(policy::load(path.as_ref()).unwrap());
    let keys: Vec<String> = (0..KEYS).map(|i| format!("load-{i}")).collect();
    let request = |i: usize| Request::new(&keys[i % KEYS]).with_endpoint("chat.completions");
    let mut g = c.benchmark_group("serve");
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));

    let backend = LocalBackend::new(KeyedLimiter::new(policy.clone(), "default").unwrap());
    let mut i = 0;
    g.bench_function("backend-check", |b| {
        b.iter(|| {
            i += 1;
            black_box(backend.check(&request(i)).decision.allowed)
        })
    });
    let limiter = KeyedLimiter::new(policy.clone(), "default").unwrap();
    g.bench_function("keyed-limiter-check-at", |b| {
        b.iter(|| {
            i += 1;
            black_box(limiter.check_at(&request(i), SystemClock.now()).allowed)
        })
    });
    let checked = backend.check(&request(0));
    let plan = backend.plan();
    g.bench_function("render", |b| b.iter(|| black_box(render(&policy, plan, &checked.decision, checked.now))));
    let mut entry = LogEntry {
        request: checked.request,
        at: checked.now,
        origin: checked.origin,
        key: keys[0].clone(),
        endpoint: "chat.completions".into(),
        auth: true,
        tokens: 17,
        ..LogEntry::default()
    };
    entry.set_figures(&DecisionFigures::of(plan, &checked.decision, checked.now, checked.origin));
    g.bench_function("log-line", |b| b.iter(|| black_box(entry.line())));
    g.finish();
}

criterion_group!(benches, serve);
criterion_main!(benches);
