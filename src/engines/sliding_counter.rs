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
//! State: window index and two counts, 24 bytes.

use super::{Decision, Retry};
use crate::time::Nanos;

/// Sliding window counter configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlidingCounter {
    limit: u64,
    period: Nanos,
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
        (limit > 0 && period > 0).then_some(SlidingCounter { limit, period })
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

    /// Decides a request of `cost` units at `now`.
    pub fn decide(&self, state: &mut SlidingCounterState, now: Nanos, cost: u64) -> Decision {
        let elapsed = self.roll(state, now);
        let p = self.period as u128;
        let start = state.window * self.period;
        let weighted = state.prev as u128 * (p - elapsed as u128) + state.current as u128 * p;
        let cap = self.limit as u128 * p;
        let need = cost as u128 * p;
        let reset = if state.current > 0 {
            start.saturating_add(2 * self.period)
        } else if state.prev > 0 {
            start.saturating_add(self.period)
        } else {
            now
        };
        if weighted + need <= cap {
            let remaining = ((cap - weighted - need) / p) as u64;
            let reset = if cost > 0 { start.saturating_add(2 * self.period) } else { reset };
            return Decision { allowed: true, limit: self.limit, remaining, reset, retry: Retry::Now };
        }
        let remaining = (cap.saturating_sub(weighted) / p) as u64;
        let retry = if cost > self.limit {
            Retry::Never
        } else {
            let this_window = (state.current + cost <= self.limit)
                .then(|| self.first_fit(state.prev, (self.limit - state.current - cost) as u128 * p, elapsed))
                .flatten()
                .map(|e| start + e);
            // Next window: prev' = current, current' = 0.
            let next_window = || {
                self.first_fit(state.current, (self.limit - cost) as u128 * p, 0)
                    .map(|e| start + self.period + e)
                    .unwrap_or(start + 2 * self.period)
            };
            Retry::At(this_window.unwrap_or_else(next_window))
        };
        Decision { allowed: false, limit: self.limit, remaining, reset, retry }
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
