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
//! ## Dialects
//!
//! Two options model the counters that libraries and gateways deploy (see
//! [`crate::engines::dialect`]); the defaults are the semantics above.
//!
//! **[`WindowAlign::FirstHit`]** (Python `limits`' memory storage,
//! limitador): there is no clock grid. A key's window *opens* at the first
//! request that counts while none is open, at its instant `s`, and covers
//! `[s, s + P)`: at `s + P` exactly it is over, and the next counted request
//! opens a new one. 2 per 10 s with requests at 5, 5 and 10 s: the
//! epoch-aligned window admits the one at 10 s (a new window), the first-hit
//! window denies it (its window runs until 15 s). A request that counts
//! nothing (cost 0, or denied without `count_denied`) opens no window.
//! `reset` and a denial's retry instant are the window's end; with no window
//! open, `reset` is `now` (nothing is in use).
//!
//! **[`WindowAlign::FirstHitRedis`]** (the `INCR` + `EXPIRE` script on
//! Redis 7.0): as first-hit, but the window is a Redis key's time to live.
//! Redis keeps expiry instants in whole milliseconds and a key expires only
//! once the clock is *past* its expiry instant (`keyIsExpired`: `now > when`),
//! so the window opened at `s` covers every instant whose millisecond
//! `floor(t / 1 ms)` is at most `floor(s / 1 ms) + P / 1 ms`: it ends at
//! `(floor(s / 1 ms) + P / 1 ms + 1)·1 ms`, exclusive. `P` must be a whole
//! number of milliseconds.
//!
//! **`count_denied`** (`INCR`-then-compare: Python `limits`' `hit`, the Redis
//! script): a denied request's cost is added to the counter too, through
//! [`FixedWindow::deny`], which [`crate::engines::Engine::deny`] calls after
//! any denial. `used` can then exceed `limit`. 3 per 10 s with costs 2, 2, 1
//! at one instant: the default admits, denies, admits; a counting window
//! admits, denies, denies (the denied 2 already filled it). A client that
//! keeps retrying inside the window keeps it full: a burst becomes a lock-out
//! until the window ends. A request with `c > limit` is still never admitted,
//! but it counts (and, first-hit, opens a window).
//!
//! Denial figures of a counting window are those *after* the denied cost was
//! counted (`remaining = limit - used`, at least 0), as the real counters
//! report them.
//!
//! State: the window (its index, or its start instant when first-hit) and
//! the count, 16 bytes whatever the options.

use super::{Decision, Retry};
use crate::time::{Nanos, MILLISECOND};

/// Where a fixed window starts (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WindowAlign {
    /// Windows `[k·P, (k+1)·P)` aligned to the Unix epoch (the default).
    #[default]
    Epoch,
    /// A window opens at a key's first counted request and lasts `P`.
    FirstHit,
    /// As [`WindowAlign::FirstHit`], ending as a Redis key with that time to
    /// live expires (whole milliseconds, alive through its expiry millisecond).
    FirstHitRedis,
}

impl WindowAlign {
    /// The option's name in policy files: `epoch`, `first-hit`,
    /// `first-hit-redis`.
    pub fn name(self) -> &'static str {
        match self {
            WindowAlign::Epoch => "epoch",
            WindowAlign::FirstHit => "first-hit",
            WindowAlign::FirstHitRedis => "first-hit-redis",
        }
    }

    /// The option named `name` in policy files.
    pub fn parse(name: &str) -> Option<WindowAlign> {
        [WindowAlign::Epoch, WindowAlign::FirstHit, WindowAlign::FirstHitRedis].into_iter().find(|a| a.name() == name)
    }
}

/// Fixed window configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedWindow {
    limit: u64,
    period: Nanos,
    align: WindowAlign,
    count_denied: bool,
}

/// Fixed window state for one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FixedWindowState {
    /// Epoch-aligned: the window index. First-hit: the open window's start
    /// instant (meaningful only while `used > 0`).
    window: u64,
    used: u64,
}

impl FixedWindow {
    /// `limit` cost units per epoch-aligned window of `period`; `None` if
    /// either is zero.
    pub fn new(limit: u64, period: Nanos) -> Option<FixedWindow> {
        (limit > 0 && period > 0).then_some(FixedWindow {
            limit,
            period,
            align: WindowAlign::Epoch,
            count_denied: false,
        })
    }

    /// The same window aligned as `align`; `None` for
    /// [`WindowAlign::FirstHitRedis`] when the period is not a whole number
    /// of milliseconds (Redis expiry instants are milliseconds).
    pub fn with_align(mut self, align: WindowAlign) -> Option<FixedWindow> {
        if align == WindowAlign::FirstHitRedis && self.period % MILLISECOND != 0 {
            return None;
        }
        self.align = align;
        Some(self)
    }

    /// The same window, counting the cost of denied requests too when
    /// `count_denied` (see the module docs).
    pub fn with_count_denied(mut self, count_denied: bool) -> FixedWindow {
        self.count_denied = count_denied;
        self
    }

    /// The limit per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length.
    pub fn period(&self) -> Nanos {
        self.period
    }

    /// Where windows start.
    pub fn align(&self) -> WindowAlign {
        self.align
    }

    /// Whether denied requests count.
    pub fn counts_denied(&self) -> bool {
        self.count_denied
    }

    /// The end (exclusive) of a first-hit window opened at `start`.
    fn first_hit_end(&self, start: Nanos) -> Nanos {
        match self.align {
            WindowAlign::FirstHitRedis => {
                (start / MILLISECOND).saturating_add(self.period / MILLISECOND + 1).saturating_mul(MILLISECOND)
            }
            _ => start.saturating_add(self.period),
        }
    }

    /// Whether a first-hit window is open at `now` (an instant before its
    /// start, from a clock that stepped back, counts as inside it).
    fn first_hit_open(&self, state: &FixedWindowState, now: Nanos) -> bool {
        state.used > 0 && now < self.first_hit_end(state.window)
    }

    /// Moves the state to the window containing `now` and returns that
    /// window's end: epoch-aligned, the window index rolls forward (an
    /// instant before the stored window counts as that window); first-hit,
    /// a window that is over is forgotten and a new one would open at `now`.
    fn roll(&self, state: &mut FixedWindowState, now: Nanos) -> Nanos {
        if self.align == WindowAlign::Epoch {
            let k = now / self.period;
            if k > state.window {
                state.window = k;
                state.used = 0;
            }
            return (state.window + 1).saturating_mul(self.period);
        }
        if !self.first_hit_open(state, now) {
            state.window = now;
            state.used = 0;
        }
        self.first_hit_end(state.window)
    }

    /// Whether nothing is counted in the window containing `now`.
    pub fn is_idle(&self, state: &FixedWindowState, now: Nanos) -> bool {
        match self.align {
            WindowAlign::Epoch => state.used == 0 || now / self.period > state.window,
            _ => !self.first_hit_open(state, now),
        }
    }

    /// Decides a request of `cost` units at `now`.
    #[inline]
    pub fn decide(&self, state: &mut FixedWindowState, now: Nanos, cost: u64) -> Decision {
        let end = self.roll(state, now);
        let left = self.limit.saturating_sub(state.used);
        // A first-hit window that is not open yet opens only if something counts.
        let reset = |used_after: u64| if self.align != WindowAlign::Epoch && used_after == 0 { now } else { end };
        // (`used` exceeds the limit only where denied requests count; then
        // even a request of cost 0 is denied, as `INCRBY 0` then compare is.)
        if state.used.saturating_add(cost) <= self.limit {
            Decision {
                allowed: true,
                limit: self.limit,
                remaining: left - cost,
                reset: reset(state.used + cost),
                retry: Retry::Now,
                delay: 0,
            }
        } else {
            let retry = if cost > self.limit { Retry::Never } else { Retry::At(end) };
            Decision { allowed: false, limit: self.limit, remaining: left, reset: reset(state.used), retry, delay: 0 }
        }
    }

    /// Counts `cost` units in the current window.
    #[inline]
    pub fn commit(&self, state: &mut FixedWindowState, now: Nanos, cost: u64) {
        self.roll(state, now);
        state.used += cost;
    }

    /// A request of `cost` was denied at `now` (by this limit or another one
    /// of the plan). A window that counts denied requests adds the cost and
    /// returns its answer for the same request after counting it (what
    /// [`FixedWindow::decide`] says now: a denial if this window denied it,
    /// possibly an admission if another limit did and room is left);
    /// otherwise nothing changes and the answer is `None`.
    pub fn deny(&self, state: &mut FixedWindowState, now: Nanos, cost: u64) -> Option<Decision> {
        if !self.count_denied || cost == 0 {
            return None;
        }
        self.roll(state, now);
        state.used = state.used.saturating_add(cost);
        Some(self.decide(state, now, cost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{HOUR, SECOND};

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

    fn run(w: &FixedWindow, requests: &[(Nanos, u64)]) -> Vec<bool> {
        let mut s = FixedWindowState::default();
        requests
            .iter()
            .map(|&(t, c)| {
                let d = w.decide(&mut s, t, c);
                if d.allowed {
                    w.commit(&mut s, t, c);
                } else {
                    w.deny(&mut s, t, c);
                }
                d.allowed
            })
            .collect()
    }

    #[test]
    fn first_hit_windows_start_at_the_first_request() {
        // The example: 2 per 10 s, requests at 5, 5 and 10 s.
        let epoch = FixedWindow::new(2, 10 * SECOND).unwrap();
        let first_hit = epoch.clone().with_align(WindowAlign::FirstHit).unwrap();
        let at = [(5 * SECOND, 1), (5 * SECOND, 1), (10 * SECOND, 1)];
        assert_eq!(run(&epoch, &at), [true, true, true]);
        assert_eq!(run(&first_hit, &at), [true, true, false]);
        // The window opened at 5 s is over at 15 s exactly.
        let at = [(5 * SECOND, 2), (15 * SECOND - 1, 1), (15 * SECOND, 2)];
        assert_eq!(run(&first_hit, &at), [true, false, true]);
    }

    #[test]
    fn counting_denied_requests_turns_a_burst_into_a_lock_out() {
        // The example: 3 per 10 s, costs 2, 2, 1 at one instant.
        let w = FixedWindow::new(3, 10 * SECOND).unwrap();
        let at = [(0, 2), (0, 2), (0, 1)];
        assert_eq!(run(&w, &at), [true, false, true]);
        assert_eq!(run(&w.clone().with_count_denied(true), &at), [true, false, false]);
        // The denial's figures are counted after the denied cost.
        let w = w.with_count_denied(true).with_align(WindowAlign::FirstHit).unwrap();
        let mut s = FixedWindowState::default();
        w.commit(&mut s, SECOND, 2);
        assert!(!w.decide(&mut s, 2 * SECOND, 2).allowed);
        let d = w.deny(&mut s, 2 * SECOND, 2).unwrap();
        assert_eq!((d.remaining, d.reset, d.retry), (0, 11 * SECOND, Retry::At(11 * SECOND)));
        // A request above the limit is never admitted but opens a window.
        let mut s = FixedWindowState::default();
        assert_eq!(w.deny(&mut s, 0, 4).unwrap().retry, Retry::Never);
        assert!(!w.decide(&mut s, 10 * SECOND - 1, 1).allowed);
        assert!(w.decide(&mut s, 10 * SECOND, 1).allowed);
    }

    #[test]
    fn redis_windows_live_through_their_expiry_millisecond() {
        let w = FixedWindow::new(1, SECOND).unwrap().with_align(WindowAlign::FirstHitRedis).unwrap();
        // Opened at 2.0004 s: Redis expiry at 3000 ms, alive while now_ms <= 3000.
        let start = 2 * SECOND + 400_000;
        let at = [(start, 1), (3 * SECOND + 999_999, 1), (3 * SECOND + MILLISECOND, 1)];
        assert_eq!(run(&w, &at), [true, false, true]);
        let mut s = FixedWindowState::default();
        w.commit(&mut s, start, 1);
        assert_eq!(w.decide(&mut s, start, 1).retry, Retry::At(3 * SECOND + MILLISECOND));
        assert!(FixedWindow::new(1, SECOND + 1).unwrap().with_align(WindowAlign::FirstHitRedis).is_none());
    }
}
