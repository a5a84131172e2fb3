//! Budget (quota): requests, tokens or money per period.
//!
//! ## Semantics
//!
//! A budget counts an amount — requests, tokens, or money in integer minor
//! units (paise, cents) — per period: the UTC calendar day, the UTC calendar
//! month, a rolling period `P` (the trailing window `(now - P, now]`), or
//! the key's whole life (a cumulative budget that never resets).
//!
//! The amount of a request is usually unknown when it starts (tokens are
//! counted as the answer streams), so admission and accounting are split:
//!
//! - **Admission reserves an estimate** `e`: the request is **admitted iff
//!   `spent + reserved + e <= limit`**, and then `reserved += e`. With `e = 0`
//!   this reads "admitted while usage has not exceeded the budget".
//! - **Completion settles the actual amount** `a`: `reserved -= e`,
//!   `spent += a`. Settlement never refuses; when `a > e` the engine reports
//!   the settle overshoot `a - e`, and how far `spent` now exceeds the limit.
//!   Hence `spent <= limit + Σ (a - e)⁺` over the period's settlements, where
//!   a settlement whose reservation was made in an earlier period counts its
//!   whole actual amount `a` (its estimate was forgotten at the roll-over).
//!
//! Calendar periods: at the first instant of a new day or month (UTC, Unix
//! time), `spent` and `reserved` start again from zero. A settlement is
//! charged to the period current when it settles; a reservation made in an
//! earlier period was already forgotten at the roll-over and is not
//! subtracted again. Rolling periods: each settlement is an entry of the
//! trailing window and stops counting `P` after it settled; reservations count
//! until settled.
//!
//! ## Period boundaries
//!
//! Instants are nanoseconds of Unix time (UTC, no leap seconds). Calendar
//! periods are half-open, `[start, end)`: an instant exactly on a boundary
//! belongs to the period that starts there.
//!
//! - **Day**: day `d` is `[d·86 400 s, (d+1)·86 400 s)`, from 00:00:00 UTC
//!   to the next 00:00:00 UTC. At `00:00:00.000000000` UTC exactly the new
//!   day has begun (its budget is whole); one nanosecond before, the old day
//!   still counts.
//! - **Month**: from `00:00:00` UTC on the 1st to `00:00:00` UTC on the 1st
//!   of the next month, exclusive (28 to 31 days, leap years included). At
//!   `YYYY-MM-01T00:00:00Z` exactly the new month has begun.
//! - **Rolling `P`**: the trailing window `(now - P, now]`. An amount settled
//!   at `s` counts for every `now` in `[s, s + P)`; at `s + P` exactly it no
//!   longer counts. The entry's instant is its settlement's, not the
//!   request's admission. A settlement given an instant at or before the
//!   newest entry is merged into that entry (so it counts a little longer,
//!   never shorter); one that would take an entry past 2^64 − 1 becomes a
//!   second entry at that instant instead.
//! - **Lifetime**: no boundary; nothing is ever forgotten.
//!
//! A calendar budget only rolls forward: an instant before the current
//! period's start (time stepped back) is counted in the current period.
//!
//! ## Large amounts
//!
//! Amounts are `u64`; settlements can take the settled sum past `u64::MAX`
//! (each settlement never refuses), so `spent` is kept exactly in a `u128`:
//! a rolling budget forgets exactly what it added, however large. Reserved
//! amounts never exceed the limit (a reservation is admitted only within it).
//!
//! ## Same instant
//!
//! The engine applies calls in the order they are made, each seeing the
//! state the previous one left: requests at the same instant are decided
//! (and reserve) one after another in the order given. Where a settlement
//! and an admission share an instant, the caller's order decides; the
//! simulator processes completions before timers and arrivals at each
//! instant (event class 0, see [`crate::sim`]), so **settlements at an
//! instant come before admissions at that instant**: a request admitted at
//! `now` sees the amounts settled (and the reservations released) at `now`,
//! including those of a request admitted earlier at `now` with no service
//! time. The production [`crate::limiter::KeyedLimiter`] applies them in the
//! order its callers take the state's lock.
//!
//! ## Retry
//!
//! A denial's [`Retry`]: lifetime, [`Retry::Never`] (or [`Retry::Unknown`]
//! while reservations are outstanding); calendar, the start of the next period
//! ([`Retry::Never`] if the estimate alone exceeds the limit); rolling, the
//! instant enough settled entries have left the window, or [`Retry::Unknown`]
//! if outstanding reservations alone leave no room.

use std::collections::VecDeque;

use super::{Decision, Retry};
use crate::time::{next_month_start, Nanos, DAY};

/// Which period a budget counts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BudgetPeriod {
    /// The UTC calendar day.
    Day,
    /// The UTC calendar month.
    Month,
    /// The trailing window of this many nanoseconds.
    Rolling(Nanos),
    /// Never resets: cumulative usage over the key's life.
    Lifetime,
}

/// Budget configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    limit: u64,
    period: BudgetPeriod,
}

/// Budget state for one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BudgetState {
    /// Index of the current calendar period (day number, or year·12 + month);
    /// always 0 for rolling budgets.
    period: u64,
    /// First instant after the current calendar period (0 before any use).
    period_end: Nanos,
    /// Settled amount, exactly (a sum of `u64` settlements can pass `u64::MAX`).
    spent: u128,
    reserved: u64,
    /// Rolling budgets: settled `(instant, amount)` still in the window.
    log: VecDeque<(Nanos, u64)>,
}

impl BudgetState {
    /// Settled amount in the current period.
    pub fn spent(&self) -> u128 {
        self.spent
    }

    /// Outstanding reservations in the current period.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }
}

impl Budget {
    /// `limit` units per `period`; `None` if the limit or a rolling period is zero.
    pub fn new(limit: u64, period: BudgetPeriod) -> Option<Budget> {
        (limit > 0 && period != BudgetPeriod::Rolling(0)).then_some(Budget { limit, period })
    }

    /// The budget per period.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The period.
    pub fn period(&self) -> BudgetPeriod {
        self.period
    }

    /// Brings the state to `now`: rolls calendar periods, expires rolling entries.
    fn roll(&self, state: &mut BudgetState, now: Nanos) {
        match self.period {
            BudgetPeriod::Rolling(p) => {
                while let Some(&(s, a)) = state.log.front() {
                    if s.saturating_add(p) > now {
                        break;
                    }
                    state.log.pop_front();
                    state.spent -= a as u128;
                }
            }
            BudgetPeriod::Lifetime => {}
            BudgetPeriod::Day | BudgetPeriod::Month => {
                if now >= state.period_end {
                    let (index, end) = match self.period {
                        BudgetPeriod::Day => (now / DAY, (now / DAY + 1) * DAY),
                        _ => {
                            let c = crate::time::civil(now);
                            (c.year as u64 * 12 + c.month as u64 - 1, next_month_start(now))
                        }
                    };
                    state.period = index;
                    state.period_end = end;
                    state.spent = 0;
                    state.reserved = 0;
                }
            }
        }
    }

    /// Whether nothing is spent or reserved that still counts at `now`.
    pub fn is_idle(&self, state: &BudgetState, now: Nanos) -> bool {
        match self.period {
            BudgetPeriod::Rolling(p) => {
                state.reserved == 0 && state.log.back().is_none_or(|&(s, _)| s.saturating_add(p) <= now)
            }
            BudgetPeriod::Lifetime => state.spent == 0 && state.reserved == 0,
            _ => now >= state.period_end || (state.spent == 0 && state.reserved == 0),
        }
    }

    /// Decides a request whose estimated amount is `estimate` at `now`.
    pub fn decide(&self, state: &mut BudgetState, now: Nanos, estimate: u64) -> Decision {
        self.roll(state, now);
        let used = state.spent + state.reserved as u128;
        // At most the limit, so it fits.
        let left = (self.limit as u128).saturating_sub(used) as u64;
        let reset = match self.period {
            BudgetPeriod::Rolling(p) => state.log.back().map_or(now, |e| e.0.saturating_add(p)),
            BudgetPeriod::Lifetime => Nanos::MAX,
            _ => state.period_end,
        };
        if used + (estimate as u128) <= self.limit as u128 {
            return Decision {
                allowed: true,
                limit: self.limit,
                remaining: left - estimate,
                reset,
                retry: Retry::Now,
                delay: 0,
            };
        }
        let retry = if estimate > self.limit {
            Retry::Never
        } else {
            match self.period {
                BudgetPeriod::Day | BudgetPeriod::Month => Retry::At(state.period_end),
                // Only a settlement below its reservation can free room.
                BudgetPeriod::Lifetime if state.reserved > 0 => Retry::Unknown,
                BudgetPeriod::Lifetime => Retry::Never,
                BudgetPeriod::Rolling(p) => {
                    let (reserved, estimate, limit) = (state.reserved as u128, estimate as u128, self.limit as u128);
                    if reserved + estimate > limit {
                        Retry::Unknown
                    } else {
                        let mut spent = state.spent;
                        let mut at = now;
                        for &(s, a) in &state.log {
                            if spent + reserved + estimate <= limit {
                                break;
                            }
                            spent -= a as u128;
                            at = s.saturating_add(p);
                        }
                        Retry::At(at.max(now))
                    }
                }
            }
        };
        Decision { allowed: false, limit: self.limit, remaining: left, reset, retry, delay: 0 }
    }

    /// Reserves `estimate` at `now`; returns the period the reservation belongs to.
    pub fn commit(&self, state: &mut BudgetState, now: Nanos, estimate: u64) -> u64 {
        self.roll(state, now);
        state.reserved = state.reserved.saturating_add(estimate);
        state.period
    }

    /// Settles a reservation of `estimate` made in period `period` with the
    /// actual amount at `now`. Returns the settle overshoot
    /// `max(0, actual - estimate)`.
    pub fn settle(&self, state: &mut BudgetState, now: Nanos, period: u64, estimate: u64, actual: u64) -> u64 {
        self.roll(state, now);
        if period == state.period {
            state.reserved = state.reserved.saturating_sub(estimate);
        }
        state.spent += actual as u128;
        if let BudgetPeriod::Rolling(_) = self.period {
            if actual > 0 {
                match state.log.back_mut() {
                    Some(last) if last.0 >= now => match last.1.checked_add(actual) {
                        Some(sum) => last.1 = sum,
                        // Too much for one entry: a second one at that instant.
                        None => {
                            let at = last.0;
                            state.log.push_back((at, actual));
                        }
                    },
                    _ => state.log.push_back((now, actual)),
                }
            }
        }
        actual.saturating_sub(estimate)
    }

    /// How far settled spending in the current period exceeds the limit.
    pub fn excess(&self, state: &BudgetState) -> u128 {
        state.spent.saturating_sub(self.limit as u128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{parse_rfc3339, SECOND};

    #[test]
    fn monthly_tokens_reset_on_the_first() {
        let b = Budget::new(100_000, BudgetPeriod::Month).unwrap();
        let mut s = BudgetState::default();
        let jan31 = parse_rfc3339("2026-01-31T23:59:59Z").unwrap();
        let p = b.commit(&mut s, jan31, 1_000);
        assert_eq!(b.settle(&mut s, jan31, p, 1_000, 99_000), 98_000);
        assert_eq!(s.spent(), 99_000);
        let d = b.decide(&mut s, jan31, 1_001);
        assert!(!d.allowed);
        let feb1 = parse_rfc3339("2026-02-01T00:00:00Z").unwrap();
        assert_eq!(d.retry, Retry::At(feb1));
        assert!(!b.decide(&mut s, feb1 - 1, 1_001).allowed);
        let d = b.decide(&mut s, feb1, 1_001);
        assert!(d.allowed);
        assert_eq!(d.remaining, 100_000 - 1_001);
        assert_eq!(d.reset, parse_rfc3339("2026-03-01T00:00:00Z").unwrap());
    }

    #[test]
    fn overshoot_is_reported_and_blocks_until_reset() {
        let b = Budget::new(500, BudgetPeriod::Day).unwrap();
        let mut s = BudgetState::default();
        let t = 20_000 * DAY + 5 * SECOND;
        assert!(b.decide(&mut s, t, 0).allowed);
        let p = b.commit(&mut s, t, 0);
        assert_eq!(b.settle(&mut s, t + SECOND, p, 0, 700), 700);
        assert_eq!(b.excess(&s), 200);
        let d = b.decide(&mut s, t + 2 * SECOND, 0);
        assert!(!d.allowed);
        assert_eq!(d.retry, Retry::At(20_001 * DAY));
    }

    /// A settlement of 2^64 − 1 tokens on top of others once saturated the
    /// settled sum, so expiring the entries took more than was added and
    /// left the budget spent for ever (issue 9, point 13).
    #[test]
    fn rolling_budget_forgets_huge_settlements_exactly() {
        let b = Budget::new(100, BudgetPeriod::Rolling(10 * SECOND)).unwrap();
        let mut s = BudgetState::default();
        let t0 = 20_000 * DAY;
        for (t, amount) in [(t0, 5), (t0 + SECOND / 2, u64::MAX)] {
            assert!(b.decide(&mut s, t, 0).allowed);
            let p = b.commit(&mut s, t, 0);
            b.settle(&mut s, t, p, 0, amount);
        }
        assert_eq!(s.spent(), 5 + u64::MAX as u128);
        assert_eq!(b.excess(&s), 5 + u64::MAX as u128 - 100);
        let d = b.decide(&mut s, t0 + 5 * SECOND, 0);
        assert!(!d.allowed);
        assert_eq!(d.retry, Retry::At(t0 + SECOND / 2 + 10 * SECOND));
        for t in [t0 + 30 * SECOND, t0 + 31 * SECOND] {
            let d = b.decide(&mut s, t, 1);
            assert!(d.allowed, "{d:?}");
            assert_eq!(d.remaining, 99);
            assert_eq!(s.spent(), 0);
        }
        // Two huge settlements at one instant do not wrap the entry either.
        let t = t0 + 40 * SECOND;
        for _ in 0..3 {
            let p = b.commit(&mut s, t, 0);
            assert_eq!(b.settle(&mut s, t, p, 0, u64::MAX), u64::MAX);
        }
        assert_eq!(s.spent(), 3 * u64::MAX as u128);
        assert!(!b.decide(&mut s, t + 10 * SECOND - 1, 0).allowed);
        assert!(b.decide(&mut s, t + 10 * SECOND, 100).allowed);
    }
}
