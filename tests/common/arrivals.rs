//! Random arrival sequences for the engine property tests
//! (`tests/engine_properties.rs`, `tests/dialect_properties.rs`): gaps drawn
//! at the scales of the engine under test, window boundaries, retry instants,
//! and the check that a retry instant is exact.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use ratesim::engines::{Decision, Retry};
use ratesim::time::{Nanos, Rate, DAY, HOUR, MINUTE, SECOND};

/// A property's outcome.
pub type TestResult = Result<(), TestCaseError>;

/// How far the clock moves before the next event. Gaps are drawn relative to
/// two scales of the engine under test: `fine` (about one unit's worth of
/// time: the emission interval, a window over its limit) and `coarse` (about
/// the whole capacity's worth: burst·T, the window).
#[derive(Clone, Copy, Debug)]
pub enum Gap {
    /// Same instant as the previous event.
    Same,
    /// 1 to 3 ns.
    Tiny(u8),
    /// Uniform in `0..=2·fine`.
    Fine(u64),
    /// Uniform in `0..=coarse`.
    Coarse(u64),
    /// Exactly `fine - 1, fine, fine + 1, coarse - 1, coarse, coarse + 1`.
    Near(u8),
    /// One ns before, at, or one ns after the next multiple of `coarse` (an
    /// epoch-aligned window boundary).
    Boundary(u8),
    /// Uniform in `0..=4·coarse` (the engine drains completely).
    Long(u64),
    /// To the last announced retry instant (`true`: one ns before it).
    ToRetry(bool),
}

pub fn gap() -> impl Strategy<Value = Gap> {
    prop_oneof![
        3 => Just(Gap::Same),
        1 => (0u8..3).prop_map(Gap::Tiny),
        4 => any::<u64>().prop_map(Gap::Fine),
        2 => any::<u64>().prop_map(Gap::Coarse),
        1 => (0u8..6).prop_map(Gap::Near),
        1 => (0u8..3).prop_map(Gap::Boundary),
        1 => any::<u64>().prop_map(Gap::Long),
        2 => any::<bool>().prop_map(Gap::ToRetry),
    ]
}

/// The simulated clock of one run.
pub struct Clock {
    pub now: Nanos,
    pub fine: Nanos,
    pub coarse: Nanos,
    /// The latest `Retry::At` seen, for [`Gap::ToRetry`].
    retry: Option<Nanos>,
}

impl Clock {
    pub fn new(start: Nanos, fine: Nanos, coarse: Nanos) -> Clock {
        let fine = fine.max(1);
        Clock { now: start, fine, coarse: coarse.max(fine), retry: None }
    }

    pub fn advance(&mut self, gap: Gap) -> Nanos {
        let (f, c, now) = (self.fine, self.coarse, self.now);
        self.now = match gap {
            Gap::Same => now,
            Gap::Tiny(k) => now + 1 + k as u64,
            Gap::Fine(x) => now + x % (2 * f + 1),
            Gap::Coarse(x) => now + x % (c + 1),
            Gap::Near(k) => now + [f - 1, f, f + 1, c - 1, c, c + 1][k as usize],
            Gap::Boundary(k) => ((now / c + 1) * c + k as u64 - 1).max(now),
            Gap::Long(x) => now + x % (4 * c + 1),
            Gap::ToRetry(early) => match self.retry.take() {
                Some(t) if t > now => t - early as u64,
                _ => now,
            },
        };
        self.now
    }

    pub fn note(&mut self, d: &Decision) {
        if let Retry::At(t) = d.retry {
            self.retry = Some(t);
        }
    }
}

/// A value in `lo..=hi` from a random selector, `1` a quarter of the time
/// (when in range).
pub fn pick(sel: u64, lo: u64, hi: u64) -> u64 {
    if sel % 4 == 0 && (lo..=hi).contains(&1) {
        1
    } else {
        lo + (sel / 4) % (hi - lo + 1)
    }
}

/// Rational rates: 7/s, 500/min, 3/h, 10/30s, 1/day and random ones, with
/// emission intervals from far below a nanosecond to a day.
pub fn rate() -> impl Strategy<Value = Rate> {
    let count = prop_oneof![Just(1u64), Just(3), Just(7), Just(10), Just(500), 1..=20u64, 1..=1_000u64];
    let period = prop_oneof![
        Just(SECOND),
        Just(MINUTE),
        Just(HOUR),
        Just(30 * SECOND),
        Just(DAY),
        1..=1_000u64,
        1..=10 * SECOND
    ];
    (count, period).prop_map(|(c, p)| Rate::new(c, p).unwrap())
}

/// Window lengths for the window engines.
pub fn period() -> impl Strategy<Value = Nanos> {
    prop_oneof![1..=20u64, 1..=1_000u64, Just(SECOND), Just(MINUTE), Just(HOUR), 1..=10 * SECOND]
}

/// The first instant: the epoch, an arbitrary instant, or one in 2026.
pub fn start() -> impl Strategy<Value = Nanos> {
    const Y2026: Nanos = 1_767_225_600 * SECOND;
    prop_oneof![Just(0u64), 0..1u64 << 40, Y2026..Y2026 + 400 * DAY]
}

/// Retry exactness: after a denial at `now` with `Retry::At(t)`, the same
/// request (nothing else arriving) is admitted at `t` and denied at `t - 1`.
/// `admits(t)` must decide on a copy of the state.
pub fn check_retry(what: &str, now: Nanos, retry: Retry, admits: impl Fn(Nanos) -> bool) -> TestResult {
    if let Retry::At(t) = retry {
        prop_assert!(t > now, "{what}: denied at {now} but Retry::At({t}) is not later");
        prop_assert!(admits(t), "{what}: denied at {now} with Retry::At({t}), but denied again at {t}");
        prop_assert!(!admits(t - 1), "{what}: denied at {now} with Retry::At({t}), but already admitted at {}", t - 1);
    }
    Ok(())
}
