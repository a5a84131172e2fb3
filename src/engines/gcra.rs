//! Leaky bucket as a GCRA (generic cell rate algorithm).
//!
//! ## Semantics
//!
//! A bucket of capacity `burst` cost units drains at `rate = count / period`
//! units per nanosecond; one unit drains in the emission interval
//! `T = period / count` (a rational number of nanoseconds, never rounded).
//! The state is the theoretical arrival time `tat`: the instant at which the
//! bucket would be empty. At instant `now` the bucket holds
//! `level(now) = max(0, tat - now) / T` units.
//!
//! A request of cost `c` at `now` is **admitted iff `level(now) + c <= burst`**,
//! and then `tat := max(tat, now) + c·T`. A denied request changes nothing.
//!
//! Consequences, all exact:
//! - from an empty bucket exactly `burst` unit requests pass at one instant,
//!   then one every `T`: the `k`-th after the burst is admitted at
//!   `ceil(now + k·T)` and denied one nanosecond before, provided the
//!   tolerance `(burst - 1)·T` is at least 1 ns (with `burst = 1` and a `T`
//!   that is not a whole number of nanoseconds, a client arriving at the
//!   rounded-up instant is late by a fraction of a nanosecond, and the next
//!   cell is due `T` after that arrival);
//! - in any interval of length `d` the admitted cost is at most
//!   `burst + d·rate` (the classic `(σ, ρ)` envelope);
//! - same-instant requests are decided one after another in the order they
//!   are given; each sees the state the previous one left;
//! - a request with `c > burst` is never admitted ([`Retry::Never`]);
//! - a denied request could be admitted at
//!   `retry = ceil(tat + c·T - burst·T)` (rounded up to a whole nanosecond):
//!   admitted at `retry`, denied at `retry - 1`.
//!
//! ## Representation
//!
//! To keep `T` exact, every instant is scaled by `count`: the state stores
//! `tat·count` as a `u128` (16 bytes per key), the cost of one unit is
//! `period` in those scaled units, and the capacity is `burst·period`. A check
//! is one multiplication, a subtraction, an addition and a comparison.
//! `u128` holds `2^64 ns · 2^64`, so no rate or horizon overflows.
//!
//! ## Compared with `governor`
//!
//! `governor` (0.10) implements the same test, `tat - tau <= now` with
//! `tau = (burst - 1)·T`, but floors `T` to whole nanoseconds
//! (`Quota::with_period`), so 7/s becomes `T = 142 857 142 ns` and admits
//! slightly more than 7 per second over a long run. Where `T` is a whole
//! number of nanoseconds the two admit exactly the same requests (tested in
//! `tests/differential.rs`). `governor` counts weighted requests (`check_n`)
//! the same way.

use super::{div_ceil_u128, div_u128, sat_nanos, Decision, Retry};
use crate::time::{Nanos, Rate};

/// GCRA configuration: a drain rate and a burst capacity, in cost units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gcra {
    rate: Rate,
    burst: u64,
    /// `burst · period`: the capacity in scaled units.
    capacity: u128,
}

/// GCRA state for one key: the scaled theoretical arrival time. 16 bytes,
/// aligned to 8 (not the 16 of a `u128`), so a table slot holding a `u64`
/// identity beside it takes 24 bytes, not 32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(C, packed(8))]
pub struct GcraState {
    /// `tat · count`; 0 for a key never seen (an empty bucket).
    tat_scaled: u128,
}

impl Gcra {
    /// A bucket draining at `rate` with room for `burst` units; `None` if
    /// `burst` is zero.
    pub fn new(rate: Rate, burst: u64) -> Option<Gcra> {
        if burst == 0 {
            return None;
        }
        Some(Gcra { rate, burst, capacity: burst as u128 * rate.period() as u128 })
    }

    /// The drain rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The burst capacity in cost units.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Decides a request of `cost` units at `now` (see the module docs).
    #[inline(always)]
    pub fn decide(&self, state: &GcraState, now: Nanos, cost: u64) -> Decision {
        let count = self.rate.count();
        let period = self.rate.period();
        let now_scaled = now as u128 * count as u128;
        let level = state.tat_scaled.saturating_sub(now_scaled);
        let need = cost as u128 * period as u128;
        // Instants are computed from `now` plus a span, so the divisions work
        // on small numbers (spans of at most `burst · T`), not on `tat · count`.
        if level + need <= self.capacity {
            let level_after = level + need;
            Decision {
                allowed: true,
                limit: self.burst,
                remaining: div_u128(self.capacity - level_after, period) as u64,
                reset: sat_nanos(now as u128 + div_ceil_u128(level_after, count)),
                retry: Retry::Now,
                delay: 0,
            }
        } else {
            let retry = if need > self.capacity {
                Retry::Never
            } else {
                // Smallest t with tat - t·count + need <= capacity:
                // t = now + ceil((level + need - capacity) / count).
                Retry::At(sat_nanos(now as u128 + div_ceil_u128(level + need - self.capacity, count)))
            };
            Decision {
                allowed: false,
                limit: self.burst,
                remaining: div_u128(self.capacity.saturating_sub(level), period) as u64,
                reset: sat_nanos(now as u128 + div_ceil_u128(level, count)),
                retry,
                delay: 0,
            }
        }
    }

    /// Consumes `cost` units at `now`: `tat := max(tat, now) + cost·T`.
    #[inline(always)]
    pub fn commit(&self, state: &mut GcraState, now: Nanos, cost: u64) {
        let now_scaled = now as u128 * self.rate.count() as u128;
        state.tat_scaled = state.tat_scaled.max(now_scaled) + cost as u128 * self.rate.period() as u128;
    }

    /// `decide` then `commit` if admitted.
    #[inline(always)]
    pub fn acquire(&self, state: &mut GcraState, now: Nanos, cost: u64) -> Decision {
        let d = self.decide(state, now, cost);
        if d.allowed {
            self.commit(state, now, cost);
        }
        d
    }

    /// Admission test alone, without computing the decision's figures: the
    /// fast path for callers that only need yes or no. Commits if admitted.
    #[inline(always)]
    pub fn try_acquire(&self, state: &mut GcraState, now: Nanos, cost: u64) -> bool {
        let now_scaled = now as u128 * self.rate.count() as u128;
        let base = state.tat_scaled.max(now_scaled);
        let after = base + cost as u128 * self.rate.period() as u128;
        if after - now_scaled <= self.capacity {
            state.tat_scaled = after;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is empty at `now` (the state is then equivalent to a fresh one).
    pub fn is_idle(&self, state: &GcraState, now: Nanos) -> bool {
        state.tat_scaled <= now as u128 * self.rate.count() as u128
    }

    /// The bucket level at `now` in cost units, as an exact fraction
    /// `(numerator, denominator)`: `max(0, tat - now) / T`.
    pub fn level(&self, state: &GcraState, now: Nanos) -> (u128, u64) {
        let now_scaled = now as u128 * self.rate.count() as u128;
        (state.tat_scaled.saturating_sub(now_scaled), self.rate.period())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{MINUTE, SECOND};

    fn bucket(count: u64, period: Nanos, burst: u64) -> Gcra {
        Gcra::new(Rate::new(count, period).unwrap(), burst).unwrap()
    }

    #[test]
    fn burst_then_one_per_interval() {
        let g = bucket(500, MINUTE, 50);
        let mut s = GcraState::default();
        let t0 = 1_000 * SECOND;
        for i in 0..50 {
            let d = g.acquire(&mut s, t0, 1);
            assert!(d.allowed, "request {i} of the burst");
            assert_eq!(d.remaining, 49 - i);
        }
        let d = g.acquire(&mut s, t0, 1);
        assert!(!d.allowed);
        // T = 60 s / 500 = 120 ms exactly.
        assert_eq!(d.retry, Retry::At(t0 + 120_000_000));
        assert_eq!(d.reset, t0 + 50 * 120_000_000);
        assert!(!g.acquire(&mut s, t0 + 119_999_999, 1).allowed);
        assert!(g.acquire(&mut s, t0 + 120_000_000, 1).allowed);
        assert!(!g.acquire(&mut s, t0 + 239_999_999, 1).allowed);
        assert!(g.acquire(&mut s, t0 + 240_000_000, 1).allowed);
    }

    #[test]
    fn seven_per_second_for_thirty_days_is_exact() {
        // T = 1/7 s is not a whole number of nanoseconds. A client at 10 req/s
        // keeps the bucket from ever emptying, so by its last request at
        // t = 30 days - 100 ms the bucket must have admitted exactly
        // burst + floor(7·t / 1 s) = 5 + 18 143 999: none gained or lost to
        // rounding.
        let g = bucket(7, SECOND, 5);
        let mut s = GcraState::default();
        let step = 100 * crate::time::MILLISECOND;
        let requests = 30 * 86_400 * 10;
        let mut admitted = 0u64;
        for i in 0..requests {
            if g.try_acquire(&mut s, i * step, 1) {
                admitted += 1;
            }
        }
        let last = (requests - 1) * step;
        assert_eq!(admitted, 5 + (7 * last as u128 / SECOND as u128) as u64);
        assert_eq!(admitted, 18_144_004);
    }

    #[test]
    fn cost_above_burst_is_never_admitted() {
        let g = bucket(10, SECOND, 5);
        let mut s = GcraState::default();
        let d = g.acquire(&mut s, 0, 6);
        assert!(!d.allowed);
        assert_eq!(d.retry, Retry::Never);
        assert!(g.acquire(&mut s, 0, 5).allowed);
    }

    #[test]
    fn try_acquire_agrees_with_decide() {
        let g = bucket(3, 7 * SECOND, 4);
        let mut a = GcraState::default();
        let mut b = GcraState::default();
        let mut t = 0;
        for i in 0..10_000u64 {
            t += (i * 7919) % 1_700_000_000;
            let cost = 1 + i % 3;
            assert_eq!(g.acquire(&mut a, t, cost).allowed, g.try_acquire(&mut b, t, cost));
            assert_eq!(a, b);
        }
    }
}
