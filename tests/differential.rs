//! Differential tests of ratesim's GCRA against the `governor` crate (0.10).
//!
//! `governor` implements the same GCRA test (`tat - tau <= now`, with
//! `tau = (burst - 1)·T`) but keeps the emission interval `T` in whole
//! nanoseconds. Where `T` is a whole number of nanoseconds the two must admit
//! exactly the same requests, single or weighted, and announce the same
//! retry instant; where it is not (7/s) `governor` floors `T` and admits
//! slightly more over a long run, by exactly what the arithmetic predicts.
//!
//! `governor`'s `FakeRelativeClock` starts at 0 and the limiter measures
//! from its creation, so both engines see the instants `0, gap₁, gap₁+gap₂…`.
//!
//! Set `RATESIM_SOAK` (to anything, or to a number of cases) for a long run.

mod common;

use common::config;

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos as GovNanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{InsufficientCapacity, Quota, RateLimiter};
use proptest::collection::vec;
use proptest::prelude::*;

use ratesim::engines::{Decision, Gcra, GcraState, Retry};
use ratesim::time::{Nanos, Rate, DAY, HOUR, MINUTE, SECOND};

type Governor = RateLimiter<NotKeyed, InMemoryState, FakeRelativeClock, NoOpMiddleware<GovNanos>>;

/// A governor limiter with emission interval `t` ns and burst `burst`, on a
/// fake clock starting at 0.
fn governor(t: Nanos, burst: u32, clock: &FakeRelativeClock) -> Governor {
    let quota = Quota::with_period(Duration::from_nanos(t)).unwrap().allow_burst(NonZeroU32::new(burst).unwrap());
    RateLimiter::direct_with_clock(quota, clock.clone())
}

/// What `governor` answered, reduced to ours: admitted, or denied with the
/// earliest conforming instant, or denied forever (more than the burst).
fn governor_outcome(g: &Governor, cost: u64) -> Retry {
    if cost == 1 {
        match g.check() {
            Ok(()) => Retry::Now,
            Err(not_until) => Retry::At(not_until.earliest_possible().as_u64()),
        }
    } else {
        match g.check_n(NonZeroU32::new(cost as u32).unwrap()) {
            Ok(Ok(())) => Retry::Now,
            Ok(Err(not_until)) => Retry::At(not_until.earliest_possible().as_u64()),
            Err(InsufficientCapacity(_)) => Retry::Never,
        }
    }
}

/// Emission intervals in whole nanoseconds: tiny ones, 500/min (120 ms),
/// 1/s, 3/h (20 min), 10/30s (3 s) and random ones.
fn interval() -> impl Strategy<Value = Nanos> {
    prop_oneof![
        1..=10u64,
        1..=1_000_000u64,
        Just(MINUTE / 500),
        Just(SECOND),
        Just(HOUR / 3),
        Just(3 * SECOND),
        1..=10 * SECOND,
    ]
}

/// A gap in units of the emission interval `t`, tuned to hit the edges.
#[derive(Clone, Copy, Debug)]
enum Gap {
    Same,
    Tiny(u8),
    /// Uniform in `0..=2t`.
    Fine(u64),
    /// `t - 1`, `t`, `t + 1`.
    Near(u8),
    /// Uniform in `0..=(burst + 2)·t`.
    Long(u64),
    /// To the last retry instant announced (`true`: one ns before).
    ToRetry(bool),
}

fn gap() -> impl Strategy<Value = Gap> {
    prop_oneof![
        3 => Just(Gap::Same),
        1 => (0u8..3).prop_map(Gap::Tiny),
        4 => any::<u64>().prop_map(Gap::Fine),
        1 => (0u8..3).prop_map(Gap::Near),
        1 => any::<u64>().prop_map(Gap::Long),
        2 => any::<bool>().prop_map(Gap::ToRetry),
    ]
}

fn gap_nanos(gap: Gap, t: Nanos, burst: u64, now: Nanos, retry: &mut Option<Nanos>) -> Nanos {
    match gap {
        Gap::Same => 0,
        Gap::Tiny(k) => 1 + k as u64,
        Gap::Fine(x) => x % (2 * t + 1),
        Gap::Near(k) => t - 1 + k as u64,
        Gap::Long(x) => x % ((burst + 2) * t + 1),
        Gap::ToRetry(early) => match retry.take() {
            Some(r) if r > now => r - now - early as u64,
            _ => 0,
        },
    }
}

/// Runs one arrival sequence through both limiters and compares every answer.
fn compare(t: Nanos, burst: u32, scale: u64, steps: &[(Gap, u64)], weighted: bool) -> Result<(), TestCaseError> {
    let clock = FakeRelativeClock::default();
    let gov = governor(t, burst, &clock);
    // `scale/(scale·t)` is the same rate as `1/t`: the engine scales by count.
    let ours = Gcra::new(Rate::new(scale, scale * t).unwrap(), burst as u64).unwrap();
    let mut state = GcraState::default();
    let mut now: Nanos = 0;
    let mut retry = None;
    for (i, &(gap, sel)) in steps.iter().enumerate() {
        let d = gap_nanos(gap, t, burst as u64, now, &mut retry);
        clock.advance(Duration::from_nanos(d));
        now += d;
        let cost = if weighted { 1 + sel % (burst as u64 + 2) } else { 1 };
        let theirs = governor_outcome(&gov, cost);
        let mine: Decision = ours.acquire(&mut state, now, cost);
        prop_assert_eq!(
            mine.allowed,
            theirs == Retry::Now,
            "request {} (cost {}) at {} ns, T = {} ns, burst {}: ours {:?}, governor {:?}",
            i,
            cost,
            now,
            t,
            burst,
            mine,
            theirs
        );
        prop_assert_eq!(mine.retry, theirs, "request {} (cost {}) at {} ns: retry instants differ", i, cost, now);
        retry = mine.retry.at();
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// Unit requests: `governor::check()` and our `Gcra` (rate `1/T` with `T`
    /// whole nanoseconds, also written as `k/(k·T)`) admit exactly the same
    /// requests and announce the same earliest conforming instant.
    #[test]
    fn unit_requests_match_governor(
        t in interval(),
        burst in 1..=20u32,
        scale in prop_oneof![Just(1u64), 1..=7u64],
        steps in vec((gap(), any::<u64>()), 1..300),
    ) {
        compare(t, burst, scale, &steps, false)?;
    }

    /// Weighted requests: `governor::check_n(n)` (and `check()` for `n = 1`)
    /// against our cost `n`, including `n > burst` (governor's
    /// `InsufficientCapacity`, our `Retry::Never`: both denied).
    #[test]
    fn weighted_requests_match_governor(
        t in interval(),
        burst in 1..=20u32,
        scale in prop_oneof![Just(1u64), 1..=7u64],
        steps in vec((gap(), any::<u64>()), 1..300),
    ) {
        compare(t, burst, scale, &steps, true)?;
    }
}

/// `governor` reports `InsufficientCapacity(burst)` exactly when we answer
/// `Retry::Never`.
#[test]
fn cost_above_burst_is_never_admitted_by_either() {
    for burst in 1..=10u32 {
        let clock = FakeRelativeClock::default();
        let gov = governor(1_000, burst, &clock);
        let ours = Gcra::new(Rate::new(1, 1_000).unwrap(), burst as u64).unwrap();
        let n = NonZeroU32::new(burst + 1).unwrap();
        assert_eq!(gov.check_n(n), Err(InsufficientCapacity(burst)));
        let d = ours.decide(&GcraState::default(), 0, burst as u64 + 1);
        assert!(!d.allowed);
        assert_eq!(d.retry, Retry::Never);
    }
}

/// 7/s: `T = 1/7 s` is not a whole number of nanoseconds. `governor` floors
/// it (`Quota::per_second(7)` and `with_period(1 s / 7)` both give
/// `T = 142 857 142 ns`), so each cell after the burst is due 6/7 ns early
/// per cell: the 7k-th cell after the burst is admitted 6k ns before the
/// k-th second by `governor`, exactly at it by ratesim.
#[test]
fn seven_per_second_cells_are_due_on_the_exact_instants() {
    const T_GOV: Nanos = 142_857_142;
    assert_eq!(Quota::per_second(NonZeroU32::new(7).unwrap()).replenish_interval(), Duration::from_nanos(T_GOV));
    assert_eq!(SECOND / 7, T_GOV);
    let burst = 5u32;
    let clock = FakeRelativeClock::default();
    let gov = governor(SECOND / 7, burst, &clock);
    let ours = Gcra::new(Rate::new(7, SECOND).unwrap(), burst as u64).unwrap();
    let mut state = GcraState::default();
    for _ in 0..burst {
        assert!(gov.check().is_ok());
        assert!(ours.acquire(&mut state, 0, 1).allowed);
    }
    // The k-th cell after the burst: governor at k·T_GOV, ours at ceil(k·1e9/7).
    let mut gov_now = 0;
    for k in 1..=70u64 {
        let gov_due = k * T_GOV;
        clock.advance(Duration::from_nanos(gov_due - 1 - gov_now));
        assert!(gov.check().is_err(), "governor, cell {k}, 1 ns early");
        clock.advance(Duration::from_nanos(1));
        assert!(gov.check().is_ok(), "governor, cell {k}");
        gov_now = gov_due;

        let due = (k * SECOND).div_ceil(7);
        assert!(!ours.decide(&state, due - 1, 1).allowed, "ratesim, cell {k}, 1 ns early");
        assert!(ours.acquire(&mut state, due, 1).allowed, "ratesim, cell {k}");
        if k % 7 == 0 {
            assert_eq!(due, k / 7 * SECOND);
            assert_eq!(due - gov_due, 6 * k / 7);
        }
    }
}

/// Over a long run the flooring adds up. A client keeps a bucket of
/// 1 000 000 cells at 7/s saturated for 3 650 days, topping it up once a day
/// with the largest requests that fit (powers of two, largest first). A GCRA
/// that never runs empty has admitted `burst + ⌊L / T⌋` cells by instant `L`:
///
/// - ratesim, `T = 1/7 s` exactly: `burst + 7·L / 1 s`, i.e. 604 800 a day,
///   nothing gained or lost to rounding;
/// - governor, `T = 142 857 142 ns`: `burst + ⌊L / 142 857 142⌋`. Each cell
///   is 6/7 ns short, so it gains `⌊L·6 / (142 857 142·10⁹)⌋` cells: 13 over
///   these ten years (13.245 before flooring), about one every 276 days.
#[test]
fn seven_per_second_long_run_admits_what_the_arithmetic_says() {
    const T_GOV: u64 = 142_857_142;
    const BURST: u32 = 1_000_000;
    const DAYS: u64 = 3_650;
    let clock = FakeRelativeClock::default();
    let gov = governor(SECOND / 7, BURST, &clock);
    let ours = Gcra::new(Rate::new(7, SECOND).unwrap(), BURST as u64).unwrap();
    let mut state = GcraState::default();
    let (mut gov_cells, mut our_cells) = (0u64, 0u64);
    let top_sizes: Vec<u64> = (0..20).rev().map(|b| 1u64 << b).collect();
    for day in 0..=DAYS {
        if day > 0 {
            clock.advance(Duration::from_nanos(DAY));
        }
        let now = day * DAY;
        for &n in &top_sizes {
            while governor_outcome(&gov, n) == Retry::Now {
                gov_cells += n;
            }
            while ours.acquire(&mut state, now, n).allowed {
                our_cells += n;
            }
        }
    }
    let end = DAYS * DAY;
    let ours_expected = BURST as u64 + (7 * end as u128 / SECOND as u128) as u64;
    let gov_expected = BURST as u64 + end / T_GOV;
    assert_eq!(our_cells, ours_expected);
    assert_eq!(our_cells, 1_000_000 + 604_800 * DAYS);
    assert_eq!(gov_cells, gov_expected);
    // The drift: L·(1/T_GOV - 7/1e9) cells, floored as above.
    assert_eq!(gov_cells - our_cells, 13);
    let drift = (end as u128 * (SECOND - 7 * T_GOV) as u128) / (T_GOV as u128 * SECOND as u128);
    assert_eq!(drift, 13);
}
