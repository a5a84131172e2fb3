//! Sliding window counter: the two-window weighted estimate.
//!
//! This is the approximation used by Cloudflare and by many Redis limiters:
//! keep the count of the current epoch-aligned window `[k·P, (k+1)·P)` and of
//! the previous one, and estimate the rolling count as if the previous
//! window's requests had been spread evenly over it.
//!
//! ## Semantics
//!
//! With `elapsed = now - k·P` (so `0 <= elapsed < P`),
//! `estimate = prev · (P - elapsed) / P + current`. A request of cost `c` is
//! **admitted iff `estimate + c <= limit`**, evaluated exactly in integers as
//! `prev·(P - elapsed) + (current + c)·P <= limit·P` (no rounding at all). On
//! admission `current += c`. When `now` enters a later window, `prev` becomes
//! the old `current` if the windows are adjacent, else 0.
//!
//! ## Window boundaries
//!
//! Windows are aligned to the Unix epoch: window `k` is `[k·P, (k+1)·P)` and
//! an instant `now` lies in window `floor(now / P)`, so a per-minute limit's
//! windows start on the clock minute and a per-hour limit's on the clock hour
//! (UTC). An instant **exactly at `k·P` belongs to window `k`**, the later
//! one: there `elapsed = 0`, `current` has just started from zero and the
//! window that ended (now `prev`) still weighs in full, so the estimate at
//! `k·P` is that window's whole count (plus anything already admitted at
//! `k·P`). Its weight `(P - elapsed) / P` then falls linearly: at
//! `(k+1)·P - 1` it is `1/P`, and at `(k+1)·P` it is gone (window `k`'s count
//! becomes the new `prev`). If the last window the state saw is older than
//! `k - 1` (a whole window passed untouched), `prev` is 0. An instant before
//! the stored window (time stepped back) counts as that window's first
//! instant, `elapsed = 0`, where the estimate is highest.
//!
//! ## Same instant
//!
//! Requests at the same instant are decided one after another in the order
//! they are given; each sees the state the previous one left (an admitted
//! request's cost is already in `current` for the next). They all see the
//! same weight of `prev`.
//!
//! ## Retry and reset
//!
//! A denied request with `c <= limit` is admitted at the first instant at
//! which the decaying estimate leaves room: within this window if possible,
//! else in the next (where the old `current` decays), else at the start of the
//! window after (where nothing is left). `remaining` is
//! `floor(limit - estimate)`; `reset` is when both counts (counting the
//! request just admitted) have decayed to zero: the end of the next window, or of this one if `current` is zero
//! (`now` if both are).
//!
//! ## Floored estimate (dialect)
//!
//! With [`SlidingCounter::with_floor_estimate`] (Python `limits`' sliding
//! window counter, `acquire_sliding_window_entry`), the weighted previous
//! count is floored before the comparison: **admitted iff
//! `floor(prev·(P - elapsed) / P) + current + c <= limit`**, in integers
//! `prev·(P - elapsed) + (current + c)·P <= limit·P + (P - 1)`. 1 per 10 s
//! with requests at 0 and 15 s: at 15 s the previous window's request
//! weighs `1·5/10 = 0.5`, so the exact test `0.5 + 1 <= 1` denies and the
//! floored one `floor(0.5) + 1 <= 1` admits. It lets through up to one unit
//! more per window than the exact estimate. `remaining` is
//! `limit - floor(estimate)` (at least 0), as `limits` reports it; retry
//! instants solve the same floored inequality exactly; `reset` is the first
//! instant at which the whole limit fits again.
//!
//! State: window index and two counts, 24 bytes.

use super::{Decision, Retry};
use crate::time::Nanos;

/// Sliding window counter configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlidingCounter {
    limit: u64,
    period: Nanos,
    /// Added to the capacity in scaled units: 0 for the exact estimate,
    /// `P - 1` for the floored one.
    slack: u128,
    floor: bool,
}

/// Sliding window counter state for one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlidingCounterState {
    window: u64,
    prev: u64,
    current: u64,
}

impl SlidingCounter {
    /// `limit` cost units per estimated rolling window of `period`; `None` if
    /// either is zero.
    pub fn new(limit: u64, period: Nanos) -> Option<SlidingCounter> {
        (limit > 0 && period > 0).then_some(SlidingCounter { limit, period, slack: 0, floor: false })
    }

    /// The same counter, comparing the *floored* estimate when `floor`
    /// (see the module docs).
    pub fn with_floor_estimate(mut self, floor: bool) -> SlidingCounter {
        self.slack = if floor { self.period as u128 - 1 } else { 0 };
        self.floor = floor;
        self
    }

    /// Whether the estimate is floored before the comparison.
    pub fn floors_estimate(&self) -> bool {
        self.floor
    }

    /// The limit per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length.
    pub fn period(&self) -> Nanos {
        self.period
    }

    /// Moves the state to the window containing `now`; returns `elapsed`.
    /// An instant before the stored window counts as its first instant.
    fn roll(&self, state: &mut SlidingCounterState, now: Nanos) -> Nanos {
        let k = now / self.period;
        if k > state.window {
            state.prev = if k == state.window + 1 { state.current } else { 0 };
            state.current = 0;
            state.window = k;
            now - k * self.period
        } else if k == state.window {
            now - k * self.period
        } else {
            0
        }
    }

    /// Smallest `e` in `[from, P)` with `prev·(P - e) <= room`, if any
    /// (`room` is in scaled units, already net of the current count and cost).
    fn first_fit(&self, prev: u64, room: u128, from: Nanos) -> Option<Nanos> {
        let p = self.period as u128;
        if prev == 0 {
            return Some(from);
        }
        // prev·(P - e) <= room  <=>  P - e <= floor(room / prev)
        let max_tail = room / prev as u128;
        let e = p.saturating_sub(max_tail) as Nanos;
        let e = e.max(from);
        (e < self.period).then_some(e)
    }

    /// Whether both counts have decayed to nothing by `now`.
    pub fn is_idle(&self, state: &SlidingCounterState, now: Nanos) -> bool {
        let k = now / self.period;
        k >= state.window.saturating_add(2) || (state.current == 0 && (state.prev == 0 || k > state.window))
    }

    /// The first instant, from `now` on, at which a request of `cost`
    /// (at most the limit) fits, nothing else arriving: within this window
    /// if the decaying estimate leaves room, else in the next (where `cur`
    /// decays), else at the start of the window after (where nothing is
    /// left). `now` itself if it fits already.
    fn first_admission(&self, prev: u64, cur: u64, start: Nanos, elapsed: Nanos, now: Nanos, cost: u64) -> Nanos {
        let p = self.period as u128;
        let this_window = (cur + cost <= self.limit)
            .then(|| self.first_fit(prev, (self.limit - cur - cost) as u128 * p + self.slack, elapsed))
            .flatten()
            .map(|e| if e == elapsed { now } else { start + e });
        // Next window: prev' = cur, cur' = 0.
        let next_window = || {
            self.first_fit(cur, (self.limit - cost) as u128 * p + self.slack, 0)
                .map(|e| start.saturating_add(self.period) + e)
                .unwrap_or(start.saturating_add(2 * self.period))
        };
        this_window.unwrap_or_else(next_window)
    }

    /// Decides a request of `cost` units at `now`.
    pub fn decide(&self, state: &mut SlidingCounterState, now: Nanos, cost: u64) -> Decision {
        let elapsed = self.roll(state, now);
        let p = self.period as u128;
        let start = state.window * self.period;
        let weighted = state.prev as u128 * (p - elapsed as u128) + state.current as u128 * p;
        // The floored estimate admits iff floor(prev·(P - e)/P) + cur + c <= limit,
        // that is iff prev·(P - e) + (cur + c)·P <= limit·P + (P - 1).
        let cap = self.limit as u128 * p + self.slack;
        let need = cost as u128 * p;
        // When the whole limit fits at once again.
        let full_at = |cur: u64| {
            if self.slack == 0 {
                if cur > 0 {
                    start.saturating_add(2 * self.period)
                } else if state.prev > 0 {
                    start.saturating_add(self.period)
                } else {
                    now
                }
            } else {
                self.first_admission(state.prev, cur, start, elapsed, now, self.limit)
            }
        };
        if weighted + need <= cap {
            let remaining = ((cap - weighted - need) / p) as u64;
            let reset = full_at(state.current + cost);
            return Decision { allowed: true, limit: self.limit, remaining, reset, retry: Retry::Now, delay: 0 };
        }
        let remaining = (cap.saturating_sub(weighted) / p) as u64;
        let retry = if cost > self.limit {
            Retry::Never
        } else {
            Retry::At(self.first_admission(state.prev, state.current, start, elapsed, now, cost))
        };
        Decision { allowed: false, limit: self.limit, remaining, reset: full_at(state.current), retry, delay: 0 }
    }

    /// Counts `cost` units in the current window.
    pub fn commit(&self, state: &mut SlidingCounterState, now: Nanos, cost: u64) {
        self.roll(state, now);
        state.current += cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SECOND;

    #[test]
    fn the_floored_estimate_admits_the_fraction() {
        // The example: 1 per 10 s, requests at 0 and 15 s.
        let exact = SlidingCounter::new(1, 10 * SECOND).unwrap();
        let floor = exact.clone().with_floor_estimate(true);
        for (w, admitted) in [(&exact, false), (&floor, true)] {
            let mut s = SlidingCounterState::default();
            assert!(w.decide(&mut s, 0, 1).allowed);
            w.commit(&mut s, 0, 1);
            let d = w.decide(&mut s, 15 * SECOND, 1);
            assert_eq!(d.allowed, admitted);
        }
        // Floored: 3 in the previous window, 6 s in: weight 3·4/10 = 1.2 -> 1.
        let w = SlidingCounter::new(3, 10 * SECOND).unwrap().with_floor_estimate(true);
        let mut s = SlidingCounterState::default();
        w.commit(&mut s, 0, 3);
        let d = w.decide(&mut s, 16 * SECOND, 1);
        assert_eq!((d.allowed, d.remaining), (true, 1));
        w.commit(&mut s, 16 * SECOND, 1);
        // Now floor(1.2) + 1 = 2: one more fits; two fit once the weight is
        // below 1, i.e. 3·(10 - e)/10 < 1 <=> e > 6.67 s: at 16.666666667 s.
        let d = w.decide(&mut s, 16 * SECOND, 2);
        assert_eq!(d.retry, Retry::At(16 * SECOND + 666_666_667));
        assert!(!w.decide(&mut s, 16 * SECOND + 666_666_666, 2).allowed);
        assert!(w.decide(&mut s, 16 * SECOND + 666_666_667, 2).allowed);
    }

    #[test]
    fn previous_window_decays_linearly() {
        let w = SlidingCounter::new(10, 60 * SECOND).unwrap();
        let mut s = SlidingCounterState::default();
        for _ in 0..10 {
            assert!(w.decide(&mut s, 0, 1).allowed);
            w.commit(&mut s, 0, 1);
        }
        let d = w.decide(&mut s, 30 * SECOND, 1);
        assert!(!d.allowed);
        // Next window: estimate = 10·(60 - e)/60 + 1 <= 10  <=>  e >= 6 s.
        assert_eq!(d.retry, Retry::At(66 * SECOND));
        assert!(!w.decide(&mut s, 66 * SECOND - 1, 1).allowed);
        let d = w.decide(&mut s, 66 * SECOND, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        // At 90 s the estimate is 5: room for 5.
        assert_eq!(w.decide(&mut s, 90 * SECOND, 1).remaining, 4);
        assert_eq!(w.decide(&mut s, 90 * SECOND, 11).retry, Retry::Never);
    }
}
