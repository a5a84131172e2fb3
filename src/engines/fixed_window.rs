//! Fixed window counter.
//!
//! ## Semantics
//!
//! Time is cut into windows `[k·P, (k+1)·P)` aligned to the Unix epoch, so a
//! per-minute limit resets on the clock minute and a per-hour limit on the
//! clock hour (UTC). Within a window the admitted cost `used` is counted. A
//! request of cost `c` at `now` is **admitted iff `used + c <= limit`** in the
//! window containing `now`. An instant exactly at `(k+1)·P` belongs to the
//! next window (its count starts at zero). Same-instant requests are decided
//! in the order given.
//!
//! `reset` is the end of the current window; a denied request with
//! `c <= limit` is admitted at the start of the next window
//! ([`Retry::At`]`((k+1)·P)`), one with `c > limit` never.
//!
//! Known property (and why rolling windows exist): up to `2·limit` can pass
//! within a span shorter than `P` across a boundary.
//!
//! State: the window index and the count, 16 bytes.

use super::{Decision, Retry};
use crate::time::Nanos;

/// Fixed window configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedWindow {
    limit: u64,
    period: Nanos,
}

/// Fixed window state for one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FixedWindowState {
    window: u64,
    used: u64,
}

impl FixedWindow {
    /// `limit` cost units per epoch-aligned window of `period`; `None` if
    /// either is zero.
    pub fn new(limit: u64, period: Nanos) -> Option<FixedWindow> {
        (limit > 0 && period > 0).then_some(FixedWindow { limit, period })
    }

    /// The limit per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length.
    pub fn period(&self) -> Nanos {
        self.period
    }

    /// The count in the window containing `now`, rolling the state forward
    /// (an instant before the stored window counts as that window).
    fn roll(&self, state: &mut FixedWindowState, now: Nanos) -> u64 {
        let k = now / self.period;
        if k > state.window {
            state.window = k;
            state.used = 0;
        }
        state.window
    }

    /// Whether nothing is counted in the window containing `now`.
    pub fn is_idle(&self, state: &FixedWindowState, now: Nanos) -> bool {
        state.used == 0 || now / self.period > state.window
    }

    /// Decides a request of `cost` units at `now`.
    #[inline]
    pub fn decide(&self, state: &mut FixedWindowState, now: Nanos, cost: u64) -> Decision {
        let k = self.roll(state, now);
        let end = (k + 1).saturating_mul(self.period);
        let left = self.limit - state.used;
        if cost <= left {
            Decision { allowed: true, limit: self.limit, remaining: left - cost, reset: end, retry: Retry::Now }
        } else {
            let retry = if cost > self.limit { Retry::Never } else { Retry::At(end) };
            Decision { allowed: false, limit: self.limit, remaining: left, reset: end, retry }
        }
    }

    /// Counts `cost` units in the current window.
    #[inline]
    pub fn commit(&self, state: &mut FixedWindowState, now: Nanos, cost: u64) {
        self.roll(state, now);
        state.used += cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::HOUR;

    #[test]
    fn resets_on_the_clock_hour() {
        let w = FixedWindow::new(100, HOUR).unwrap();
        let mut s = FixedWindowState::default();
        let t = 500_000 * HOUR + HOUR - 1; // one ns before a clock hour
        for _ in 0..100 {
            assert!(w.decide(&mut s, t, 1).allowed);
            w.commit(&mut s, t, 1);
        }
        let d = w.decide(&mut s, t, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry, Retry::At(t + 1));
        assert_eq!(d.reset, t + 1);
        let d = w.decide(&mut s, t + 1, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 99);
    }
}
