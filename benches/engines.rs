//! Nanoseconds per decision of each limiter engine, alone.
//!
//! Every benchmark replays a precomputed `Vec` of instants (fixed seed) into
//! one engine state, so the timed loop is only the engine: no clock, no map,
//! no random numbers. Each iteration starts from the same state (cloned in
//! criterion's untimed setup) and decides `OPS` requests; criterion reports
//! the time per iteration and, with `Throughput::Elements(OPS)`, decisions
//! per second. Time per decision = time per iteration / `OPS`.
//!
//! Two workloads per algorithm:
//! - **admit-heavy**: arrivals at about half the limit, so (nearly) every
//!   request is admitted: `decide` + `commit` each time;
//! - **deny-heavy**: arrivals at about 100x the limit, so about 99% are
//!   denied: `decide` computing the retry instant, rarely a `commit`.
//!
//! Run one algorithm with e.g. `cargo bench --bench engines -- gcra`.

mod common;

use common::SplitMix;

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput};

use ratesim::engines::{
    Budget, BudgetPeriod, BudgetState, Concurrency, ConcurrencyState, Engine, FixedWindow, FixedWindowState, Gcra,
    GcraState, SlidingCounter, SlidingCounterState, SlidingLog, SlidingLogState,
};
use ratesim::time::{Nanos, Rate, HOUR, MILLISECOND, SECOND};

/// Decisions per iteration.
const OPS: usize = 10_000;
/// An instant far from 0 (2026-01-01T00:00:00Z), as in production.
const T0: Nanos = 1_767_225_600 * SECOND;

/// `OPS` non-decreasing instants from `T0` with gaps uniform in
/// `[0, 2·mean_gap]` (so the mean gap is `mean_gap`).
fn instants(mean_gap: Nanos, seed: u64) -> Vec<Nanos> {
    let mut rng = SplitMix(seed);
    let mut t = T0;
    (0..OPS)
        .map(|_| {
            t += rng.next() % (2 * mean_gap + 1);
            t
        })
        .collect()
}

/// Workloads: (name, instants). The limit of every engine below is 1,000
/// per second (one unit per ms), so a mean gap of 2 ms is half the limit and
/// 10 µs is 100 times it.
fn workloads() -> [(&'static str, Vec<Nanos>); 2] {
    [("admit-heavy", instants(2 * MILLISECOND, 1)), ("deny-heavy", instants(10_000, 2))]
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(OPS as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g
}

fn gcra(c: &mut Criterion) {
    let engine = Gcra::new(Rate::new(1_000, SECOND).unwrap(), 10).unwrap();
    let dispatched = Engine::Gcra(engine.clone());
    let mut g = group(c, "gcra");
    for (name, ts) in workloads() {
        g.bench_function(format!("acquire/{name}"), |b| {
            b.iter_batched_ref(
                GcraState::default,
                |s| {
                    for &t in &ts {
                        black_box(engine.acquire(s, t, 1));
                    }
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function(format!("try_acquire/{name}"), |b| {
            b.iter_batched_ref(
                GcraState::default,
                |s| {
                    for &t in &ts {
                        black_box(engine.try_acquire(s, t, 1));
                    }
                },
                BatchSize::SmallInput,
            )
        });
        // The same through the `Engine` enum (what `Plan::check` calls).
        g.bench_function(format!("engine-enum-acquire/{name}"), |b| {
            b.iter_batched_ref(
                || dispatched.new_state(),
                |s| {
                    for &t in &ts {
                        black_box(dispatched.acquire(&mut *s, t, 1));
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn fixed_window(c: &mut Criterion) {
    let engine = FixedWindow::new(1_000, SECOND).unwrap();
    let mut g = group(c, "fixed-window");
    for (name, ts) in workloads() {
        g.bench_function(format!("decide+commit/{name}"), |b| {
            b.iter_batched_ref(
                FixedWindowState::default,
                |s| {
                    for &t in &ts {
                        let d = engine.decide(s, t, 1);
                        if d.allowed {
                            engine.commit(s, t, 1);
                        }
                        black_box(d);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn sliding_log(c: &mut Criterion) {
    let engine = SlidingLog::new(1_000, SECOND).unwrap();
    let mut g = group(c, "sliding-log");
    for (name, ts) in workloads() {
        g.bench_function(format!("decide+commit/{name}"), |b| {
            b.iter_batched_ref(
                SlidingLogState::default,
                |s| {
                    for &t in &ts {
                        let d = engine.decide(s, t, 1);
                        if d.allowed {
                            engine.commit(s, t, 1);
                        }
                        black_box(d);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn sliding_counter(c: &mut Criterion) {
    let engine = SlidingCounter::new(1_000, SECOND).unwrap();
    let mut g = group(c, "sliding-counter");
    for (name, ts) in workloads() {
        g.bench_function(format!("decide+commit/{name}"), |b| {
            b.iter_batched_ref(
                SlidingCounterState::default,
                |s| {
                    for &t in &ts {
                        let d = engine.decide(s, t, 1);
                        if d.allowed {
                            engine.commit(s, t, 1);
                        }
                        black_box(d);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn concurrency(c: &mut Criterion) {
    // 100 in flight, 1-hour leases (none expires within a workload).
    let engine = Concurrency::new(100, Some(HOUR)).unwrap();
    let mut g = group(c, "concurrency");
    // Admit-heavy: 50 permits held throughout; each request takes a permit
    // and releases it at once (decide + commit + release).
    let mut half = ConcurrencyState::default();
    for _ in 0..50 {
        engine.commit(&mut half, T0);
    }
    let (_, admit) = &workloads()[0];
    g.bench_function("acquire+release/admit-heavy", |b| {
        b.iter_batched_ref(
            || half.clone(),
            |s| {
                for &t in admit {
                    let d = engine.decide(s, t, 1);
                    if d.allowed {
                        let p = engine.commit(s, t);
                        engine.release(s, t, p);
                    }
                    black_box(d);
                }
            },
            BatchSize::SmallInput,
        )
    });
    // Deny-heavy: all 100 permits held; every request is denied (retry at
    // the first lease's expiry).
    let mut full = ConcurrencyState::default();
    for _ in 0..100 {
        engine.commit(&mut full, T0);
    }
    let (_, deny) = &workloads()[1];
    g.bench_function("acquire+release/deny-heavy", |b| {
        b.iter_batched_ref(
            || full.clone(),
            |s| {
                for &t in deny {
                    let d = engine.decide(s, t, 1);
                    if d.allowed {
                        let p = engine.commit(s, t);
                        engine.release(s, t, p);
                    }
                    black_box(d);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn budget(c: &mut Criterion) {
    let mut g = group(c, "budget");
    // A daily budget; each request reserves 100 and settles 90.
    let roomy = Budget::new(u64::MAX / 2, BudgetPeriod::Day).unwrap();
    let (_, admit) = &workloads()[0];
    g.bench_function("reserve+settle/admit-heavy", |b| {
        b.iter_batched_ref(
            BudgetState::default,
            |s| {
                for &t in admit {
                    let d = roomy.decide(s, t, 100);
                    if d.allowed {
                        let period = roomy.commit(s, t, 100);
                        black_box(roomy.settle(s, t, period, 100, 90));
                    }
                    black_box(d);
                }
            },
            BatchSize::SmallInput,
        )
    });
    // Exhausted: 1,000 per day already spent; every request is denied until
    // the day ends.
    let tight = Budget::new(1_000, BudgetPeriod::Day).unwrap();
    let mut spent = BudgetState::default();
    let p = tight.commit(&mut spent, T0, 0);
    tight.settle(&mut spent, T0, p, 0, 1_000);
    let (_, deny) = &workloads()[1];
    g.bench_function("reserve+settle/deny-heavy", |b| {
        b.iter_batched_ref(
            || spent.clone(),
            |s| {
                for &t in deny {
                    let d = tight.decide(s, t, 100);
                    if d.allowed {
                        let period = tight.commit(s, t, 100);
                        black_box(tight.settle(s, t, period, 100, 90));
                    }
                    black_box(d);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Prints the admitted share of each workload per engine once, so the
/// reader can check that "admit-heavy" and "deny-heavy" mean what they say.
fn report_mix(_: &mut Criterion) {
    let gcra = Gcra::new(Rate::new(1_000, SECOND).unwrap(), 10).unwrap();
    let fw = FixedWindow::new(1_000, SECOND).unwrap();
    for (name, ts) in workloads() {
        let mut s = GcraState::default();
        let g = ts.iter().filter(|&&t| gcra.try_acquire(&mut s, t, 1)).count();
        let mut s = FixedWindowState::default();
        let f = ts
            .iter()
            .filter(|&&t| {
                let ok = fw.decide(&mut s, t, 1).allowed;
                if ok {
                    fw.commit(&mut s, t, 1);
                }
                ok
            })
            .count();
        eprintln!("workload {name}: gcra admits {g}/{OPS}, fixed-window admits {f}/{OPS}");
    }
}

criterion_group!(benches, report_mix, gcra, fixed_window, sliding_log, sliding_counter, concurrency, budget);
criterion_main!(benches);
