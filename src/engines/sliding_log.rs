//! Sliding log: the exact rolling window.
//!
//! ## Semantics
//!
//! The engine remembers every admitted request's instant and cost. A request
//! of cost `c` at `now` is **admitted iff the cost admitted in the half-open
//! window `(now - P, now]`, plus `c`, is at most `limit`**. A request admitted
//! at `s` therefore counts until `s + P` exclusive: at `s + P` exactly it no
//! longer counts. Same-instant requests are decided in the order given.
//!
//! A denied request with `c <= limit` is admitted at the first instant at
//! which enough old requests have left the window: `s_i + P` for the oldest
//! entries `s_1 <= … <= s_i` whose cost brings the window down far enough.
//! `reset` is when the newest entry leaves (the window is then empty).
//!
//! Memory: one 16-byte entry per distinct admitted instant in the window, at
//! most `limit` entries; same-instant admissions share one entry.
//!
//! ## Closed boundary (dialect)
//!
//! With [`SlidingLog::with_closed_boundary`] (Python `limits`' moving window,
//! memory and Redis storage: `acquire_entry` refuses when the entry
//! `limit - c` places back is not older than `now - P`), the window is the
//! closed `[now - P, now]`: an entry admitted at `s` still counts at
//! `s + P` exactly and leaves at `s + P + 1`. 2 per 10 s with requests at
//! 0, 0 and 10 s: the half-open window admits the third, the closed one
//! denies it. Retry instants, `reset` and idleness move by the same
//! nanosecond: `s_i + P + 1`.

use std::collections::VecDeque;

use super::{Decision, Retry};
use crate::time::Nanos;

/// Sliding log configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlidingLog {
    limit: u64,
    period: Nanos,
    /// How long an entry counts: `P`, or `P + 1` with a closed boundary.
    span: Nanos,
}

/// Sliding log state for one key: the admitted entries still in the window.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlidingLogState {
    /// `(instant, cost)` in time order.
    entries: VecDeque<(Nanos, u64)>,
    /// Sum of the costs in `entries`.
    total: u64,
}

impl SlidingLogState {
    /// The cost currently remembered (admitted within the last window as of
    /// the last decision).
    pub fn total(&self) -> u64 {
        self.total
    }
}

impl SlidingLog {
    /// `limit` cost units in any rolling window of `period`; `None` if either
    /// is zero.
    pub fn new(limit: u64, period: Nanos) -> Option<SlidingLog> {
        (limit > 0 && period > 0).then_some(SlidingLog { limit, period, span: period })
    }

    /// The same window with a closed boundary `[now - P, now]` (see the
    /// module docs).
    pub fn with_closed_boundary(mut self, closed: bool) -> SlidingLog {
        self.span = self.period.saturating_add(closed as u64);
        self
    }

    /// Whether an entry still counts exactly `P` after it was admitted.
    pub fn closed_boundary(&self) -> bool {
        self.span != self.period
    }

    /// The limit per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length.
    pub fn period(&self) -> Nanos {
        self.period
    }

    /// Forgets entries that left the window by `now` (`s + span <= now`).
    fn expire(&self, state: &mut SlidingLogState, now: Nanos) {
        while let Some(&(s, c)) = state.entries.front() {
            if s.saturating_add(self.span) <= now {
                state.entries.pop_front();
                state.total -= c;
            } else {
                break;
            }
        }
    }

    /// Whether every remembered entry has left the window by `now`.
    pub fn is_idle(&self, state: &SlidingLogState, now: Nanos) -> bool {
        state.entries.back().is_none_or(|&(s, _)| s.saturating_add(self.span) <= now)
    }

    /// Decides a request of `cost` units at `now`.
    pub fn decide(&self, state: &mut SlidingLogState, now: Nanos, cost: u64) -> Decision {
        self.expire(state, now);
        let reset_of = |newest: Option<Nanos>| newest.map_or(now, |s| s.saturating_add(self.span).max(now));
        let left = self.limit.saturating_sub(state.total);
        if cost <= left {
            let newest = if cost > 0 { Some(now) } else { state.entries.back().map(|e| e.0) };
            return Decision {
                allowed: true,
                limit: self.limit,
                remaining: left - cost,
                reset: reset_of(newest),
                retry: Retry::Now,
                delay: 0,
            };
        }
        let retry = if cost > self.limit {
            Retry::Never
        } else {
            // Drop the oldest entries until the rest plus `cost` fits.
            let mut rest = state.total;
            let mut at = now;
            for &(s, c) in &state.entries {
                if rest + cost <= self.limit {
                    break;
                }
                rest -= c;
                at = s.saturating_add(self.span);
            }
            Retry::At(at.max(now))
        };
        Decision {
            allowed: false,
            limit: self.limit,
            remaining: left,
            reset: reset_of(state.entries.back().map(|e| e.0)),
            retry,
            delay: 0,
        }
    }

    /// Records `cost` units admitted at `now`.
    pub fn commit(&self, state: &mut SlidingLogState, now: Nanos, cost: u64) {
        self.expire(state, now);
        if cost == 0 {
            return;
        }
        state.total += cost;
        match state.entries.back_mut() {
            // Same instant (or an instant before it, from a clock that went
            // back): merge, which only keeps the cost longer — conservative.
            Some(last) if last.0 >= now => last.1 += cost,
            _ => state.entries.push_back((now, cost)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SECOND;

    #[test]
    fn rolling_window_boundaries() {
        let w = SlidingLog::new(3, 60 * SECOND).unwrap();
        let mut s = SlidingLogState::default();
        for t in [0, 10 * SECOND, 20 * SECOND] {
            assert!(w.decide(&mut s, t, 1).allowed);
            w.commit(&mut s, t, 1);
        }
        let d = w.decide(&mut s, 30 * SECOND, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry, Retry::At(60 * SECOND));
        assert_eq!(d.reset, 80 * SECOND);
        assert!(!w.decide(&mut s, 60 * SECOND - 1, 1).allowed);
        assert!(w.decide(&mut s, 60 * SECOND, 1).allowed);
        // A cost of 3 needs both remaining entries gone.
        let d = w.decide(&mut s, 60 * SECOND, 3);
        assert_eq!(d.retry, Retry::At(80 * SECOND));
        assert_eq!(w.decide(&mut s, 0, 4).retry, Retry::Never);
    }

    #[test]
    fn closed_boundary_counts_an_entry_exactly_one_period_old() {
        // The example: 2 per 10 s, requests at 0, 0 and 10 s.
        let open = SlidingLog::new(2, 10 * SECOND).unwrap();
        let closed = open.clone().with_closed_boundary(true);
        for (w, third) in [(&open, true), (&closed, false)] {
            let mut s = SlidingLogState::default();
            for _ in 0..2 {
                assert!(w.decide(&mut s, 0, 1).allowed);
                w.commit(&mut s, 0, 1);
            }
            let d = w.decide(&mut s, 10 * SECOND, 1);
            assert_eq!(d.allowed, third);
            if !third {
                assert_eq!(d.retry, Retry::At(10 * SECOND + 1));
                assert!(w.decide(&mut s, 10 * SECOND + 1, 1).allowed);
            }
        }
    }
}
