//! ratesim against `governor` 0.10, side by side in the same run, on the
//! same inputs (fixed seeds), the same quota (500/min, burst 50: a whole
//! emission interval `T` = 120 ms, where the two admit exactly the same
//! requests, see `tests/differential.rs`).
//!
//! - `direct/*`: one GCRA, no key. Both sides advance a fake atomic clock by
//!   the workload's gap, read it, and check: `governor`'s
//!   `RateLimiter::direct_with_clock(quota, FakeRelativeClock)` against our
//!   `Gcra` reading a [`ManualClock`]. `direct/clock-only/*` is the cost of
//!   the two clocks alone (advance + read), to subtract.
//! - `keyed-1000/*`, `keyed-1000000/*`: uniformly random keys out of 1,000 or
//!   1,000,000, on 1 and 2 threads (2 threads: each does half the work; the
//!   time is the wall time of both). `governor`: the DashMap store with u64
//!   keys (`RateLimiter::dashmap_with_clock_and_hasher` with std's
//!   `RandomState`, what `dashmap_with_clock` uses, and with foldhash, the
//!   hasher ours uses); ours: [`KeyedLimiter::check_at`]
//!   with the same values as 20-byte string keys, formatted once up front
//!   into one packed buffer (so each side reads its key from one large
//!   array, as a service reads it from the request). Every key is seen once
//!   before timing, so the maps are full. The fake clock advances `T / keys`
//!   per request (each key is asked on average once per `T`, its sustained
//!   rate, so nearly every check is admitted out of the burst), in steps of
//!   1,024 requests so the shared clock's cache line is not what is measured.
//! - `virtual-clock/*`: pushing requests through a virtual clock, as a
//!   simulator would: `governor` must `advance` its `FakeRelativeClock`
//!   before each check; our `Gcra` takes a plain `u64` instant.
//!
//! Throughput is in requests (checks), so the ratio of two lines is the
//! ratio of their times. Run e.g. `cargo bench --bench governor -- direct`.

mod common;

use common::SplitMix;

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use governor::clock::{Clock as _, FakeRelativeClock};
use governor::{Quota, RateLimiter};

use ratesim::engines::{Gcra, GcraState};
use ratesim::limiter::{Clock as _, KeyedLimiter, ManualClock};
use ratesim::policy::{self, Request};
use ratesim::time::{Nanos, Rate, MINUTE, SECOND};

/// The emission interval of 500/min.
const T: Nanos = MINUTE / 500;
const BURST: u32 = 50;
/// 2026-01-01T00:00:00Z.
const T0: Nanos = 1_767_225_600 * SECOND;

/// `n` gaps uniform in `[0, 2·mean]`.
fn gaps(n: usize, mean: Nanos, seed: u64) -> Vec<Nanos> {
    let mut rng = SplitMix(seed);
    (0..n).map(|_| rng.next() % (2 * mean + 1)).collect()
}

fn quota() -> Quota {
    Quota::with_period(Duration::from_nanos(T)).unwrap().allow_burst(NonZeroU32::new(BURST).unwrap())
}

fn gcra() -> Gcra {
    Gcra::new(Rate::new(500, MINUTE).unwrap(), BURST as u64).unwrap()
}

fn group<'a>(c: &'a mut Criterion, name: &str, elements: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(elements as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g
}

/// Checks per iteration of the direct benchmarks.
const DIRECT_OPS: usize = 10_000;

fn direct(c: &mut Criterion) {
    let mut g = group(c, "direct", DIRECT_OPS);
    // Admit-heavy: arrivals at half the rate. Deny-heavy: at 100 times it.
    for (mix, mean) in [("admit-heavy", 2 * T), ("deny-heavy", T / 100)] {
        let gaps = gaps(DIRECT_OPS, mean, 7);
        {
            let clock = FakeRelativeClock::default();
            let lim = RateLimiter::direct_with_clock(quota(), clock.clone());
            g.bench_function(format!("governor/check/{mix}"), |b| {
                b.iter(|| {
                    for &d in &gaps {
                        clock.advance(Duration::from_nanos(d));
                        let _ = black_box(lim.check());
                    }
                })
            });
        }
        let engine = gcra();
        {
            let clock = ManualClock::new(T0);
            let mut s = GcraState::default();
            g.bench_function(format!("ratesim/acquire/{mix}"), |b| {
                b.iter(|| {
                    for &d in &gaps {
                        clock.advance(d);
                        black_box(engine.acquire(&mut s, clock.now(), 1));
                    }
                })
            });
        }
        {
            let clock = ManualClock::new(T0);
            let mut s = GcraState::default();
            g.bench_function(format!("ratesim/try_acquire/{mix}"), |b| {
                b.iter(|| {
                    for &d in &gaps {
                        clock.advance(d);
                        black_box(engine.try_acquire(&mut s, clock.now(), 1));
                    }
                })
            });
        }
        {
            let clock = FakeRelativeClock::default();
            g.bench_function(format!("clock-only/governor-fake/{mix}"), |b| {
                b.iter(|| {
                    for &d in &gaps {
                        clock.advance(Duration::from_nanos(d));
                        black_box(clock.now());
                    }
                })
            });
            let clock = ManualClock::new(T0);
            g.bench_function(format!("clock-only/ratesim-manual/{mix}"), |b| {
                b.iter(|| {
                    for &d in &gaps {
                        clock.advance(d);
                        black_box(clock.now());
                    }
                })
            });
        }
    }
    g.finish();
}

/// Requests per iteration of the keyed benchmarks.
const KEYED_OPS: usize = 200_000;
/// The shared clock advances once per this many requests of a thread.
const CLOCK_STEP: usize = 1_024;

/// Runs `work` over `picks` on `threads` threads (each a contiguous share),
/// `iters` times, and returns the wall time.
fn timed<F: Fn(&[u32]) + Sync>(iters: u64, threads: usize, picks: &[u32], work: F) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        if threads == 1 {
            work(picks);
        } else {
            std::thread::scope(|s| {
                for share in picks.chunks(picks.len().div_ceil(threads)) {
                    let work = &work;
                    s.spawn(move || work(share));
                }
            });
        }
    }
    start.elapsed()
}

/// One keyed workload: the keys, the requests and the clock step.
struct Keyed<'a> {
    nkeys: usize,
    ids: &'a [u64],
    picks: &'a [u32],
    step: Nanos,
}

impl Keyed<'_> {
    /// Benchmarks governor's DashMap store with `hasher` on this workload.
    fn governor<S>(&self, g: &mut BenchmarkGroup<'_, WallTime>, name: &str, hasher: S)
    where
        S: std::hash::BuildHasher + Clone + Default + Send + Sync,
    {
        let clock = FakeRelativeClock::default();
        let lim = RateLimiter::dashmap_with_clock_and_hasher(quota(), clock.clone(), hasher);
        for id in self.ids {
            let _ = lim.check_key(id);
        }
        let work = |share: &[u32]| {
            for chunk in share.chunks(CLOCK_STEP) {
                clock.advance(Duration::from_nanos(self.step));
                for &k in chunk {
                    let _ = black_box(lim.check_key(&self.ids[k as usize]));
                }
            }
        };
        for threads in [1, 2] {
            g.bench_function(format!("{name}/{threads}-thread"), |b| {
                b.iter_custom(|iters| timed(iters, threads, self.picks, work))
            });
        }
        eprintln!("keyed-{}: {name} holds {} keys", self.nkeys, lim.len());
    }
}

fn keyed(c: &mut Criterion) {
    let policy = Arc::new(
        policy::parse(
            r#"
            provider = "bench"
            [[plan]]
            name = "pro"
            [[plan.limit]]
            id = "rpm"
            algorithm = "gcra"
            rate = "500/min"
            burst = 50
            "#,
            "bench.toml",
        )
        .unwrap(),
    );
    for nkeys in [1_000usize, 1_000_000] {
        let mut rng = SplitMix(11);
        // Random u64 keys for governor, the same values as 20-byte strings for
        // ours, packed in one buffer: reading a key costs each side one
        // access to a large array, as a key read from a request would.
        let ids: Vec<u64> = (0..nkeys).map(|_| rng.next()).collect();
        let packed: String = ids.iter().map(|v| format!("key-{v:016x}")).collect();
        let name = |k: usize| &packed[k * 20..k * 20 + 20];
        let picks: Vec<u32> = (0..KEYED_OPS).map(|_| (rng.next() % nkeys as u64) as u32).collect();
        // Each key is asked about once per T on average.
        let step = T / nkeys as u64 * CLOCK_STEP as u64;
        let mut g = group(c, &format!("keyed-{nkeys}"), KEYED_OPS);
        g.sample_size(10);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(3));

        let keyed = Keyed { nkeys, ids: &ids, picks: &picks, step };
        keyed.governor(&mut g, "governor-dashmap", std::hash::RandomState::default());
        keyed.governor(&mut g, "governor-dashmap-foldhash", foldhash::fast::RandomState::default());
        {
            let clock = Arc::new(ManualClock::new(T0));
            let lim = KeyedLimiter::with_clock(policy.clone(), "pro", clock.clone()).unwrap();
            for k in 0..nkeys {
                lim.check_at(&Request::new(name(k)), clock.now());
            }
            let work = |share: &[u32]| {
                for chunk in share.chunks(CLOCK_STEP) {
                    clock.advance(step);
                    for &k in chunk {
                        black_box(lim.check_at(&Request::new(name(k as usize)), clock.now()));
                    }
                }
            };
            for threads in [1, 2] {
                g.bench_function(format!("ratesim-keyed/{threads}-thread"), |b| {
                    b.iter_custom(|iters| timed(iters, threads, &picks, work))
                });
            }
            eprintln!("keyed-{nkeys}: ratesim holds {} states", lim.len());
        }
        {
            let clock = Arc::new(ManualClock::new(T0));
            let lim = KeyedLimiter::<_, u64>::build(policy.clone(), "pro", clock.clone()).unwrap();
            for &id in &ids {
                lim.check_at(&Request::with_id(id), clock.now());
            }
            let work = |share: &[u32]| {
                for chunk in share.chunks(CLOCK_STEP) {
                    clock.advance(step);
                    for &k in chunk {
                        black_box(lim.check_at(&Request::with_id(ids[k as usize]), clock.now()));
                    }
                }
            };
            for threads in [1, 2] {
                g.bench_function(format!("ratesim-keyed-u64/{threads}-thread"), |b| {
                    b.iter_custom(|iters| timed(iters, threads, &picks, work))
                });
            }
            eprintln!("keyed-{nkeys}: ratesim (u64 keys) holds {} states", lim.len());
        }
        g.finish();
    }
}

/// Requests per iteration of the virtual-clock benchmarks.
const VIRTUAL_OPS: usize = 1_000_000;

fn virtual_clock(c: &mut Criterion) {
    let mut g = group(c, "virtual-clock", VIRTUAL_OPS);
    g.sample_size(20);
    // 10 times the rate, as a simulator of an overloaded key sees it.
    let gaps = gaps(VIRTUAL_OPS, T / 10, 13);
    {
        let clock = FakeRelativeClock::default();
        let lim = RateLimiter::direct_with_clock(quota(), clock.clone());
        g.bench_function("governor/advance+check", |b| {
            b.iter(|| {
                for &d in &gaps {
                    clock.advance(Duration::from_nanos(d));
                    let _ = black_box(lim.check());
                }
            })
        });
    }
    let engine = gcra();
    {
        let mut now = T0;
        let mut s = GcraState::default();
        g.bench_function("ratesim/acquire", |b| {
            b.iter(|| {
                for &d in &gaps {
                    now += d;
                    black_box(engine.acquire(&mut s, now, 1));
                }
            })
        });
    }
    {
        let mut now = T0;
        let mut s = GcraState::default();
        g.bench_function("ratesim/try_acquire", |b| {
            b.iter(|| {
                for &d in &gaps {
                    now += d;
                    black_box(engine.try_acquire(&mut s, now, 1));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, direct, keyed, virtual_clock);
criterion_main!(benches);
