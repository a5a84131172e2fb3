//! Concurrency limit: a cap on requests in flight.
//!
//! ## Semantics
//!
//! A request is **admitted iff `in_flight + 1 <= max`** (the cost argument is
//! ignored: one request is one permit). Admission hands out a [`Permit`];
//! completion releases it. Releasing a permit twice, or one already
//! reclaimed, does nothing. (Permit ids are counted per state: if an idle
//! state is dropped and recreated, a stale permit from before could match a
//! new one; the production guard and the simulator release each permit once,
//! so only a caller misusing the engine directly could meet this.)
//!
//! With a **lease TTL** `L`, a permit granted at `t` is held during
//! `[t, t + L)` and reclaimed at `t + L` even if its client never comes back
//! (a crashed client cannot hold a slot forever). At one instant, releases and
//! reclaims happen before admissions: a permit whose lease ends at `now`, or
//! that the simulator releases at `now`, frees its slot for a request at the
//! same `now`.
//!
//! `reset`: with leases, when the last outstanding lease ends (counting the
//! permit just granted); without leases, `now` (the engine cannot know).
//!
//! A denial's [`Retry`]: with leases, the instant the earliest lease ends
//! (nothing else arriving, that is when a slot frees); without leases,
//! [`Retry::Unknown`] — the engine cannot know when a client finishes.
//! Production then sends no `Retry-After` unless the policy sets
//! `retry_after_unknown`, and clients fall back on their own backoff.
//!
//! State: the outstanding permits ordered by expiry (`O(log n)` per grant
//! and release; a permit without a lease expires at `u64::MAX`).

use std::collections::BTreeSet;

use super::{Decision, Retry};
use crate::time::Nanos;

/// Concurrency configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Concurrency {
    max: u64,
    lease: Option<Nanos>,
}

/// A granted slot. Give it back to [`Concurrency::release`] when done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permit {
    /// When the lease ends (`u64::MAX` without leases).
    pub expires: Nanos,
    /// The grant instant in nanoseconds, or the next free number when
    /// several permits are granted within one nanosecond: increasing within
    /// a state, and above every id of an earlier state of the same key that
    /// was evicted before this one was created (so a stale permit released
    /// late cannot free a newer one).
    pub id: u64,
}

/// Concurrency state for one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConcurrencyState {
    in_flight: u64,
    next_id: u64,
    /// Outstanding permits `(expires, id)`; `expires` is `u64::MAX` without leases.
    leases: BTreeSet<(Nanos, u64)>,
}

impl ConcurrencyState {
    /// Requests in flight (as of the last decision).
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }
}

impl Concurrency {
    /// At most `max` in flight, with an optional lease TTL; `None` if `max`
    /// or the lease is zero.
    pub fn new(max: u64, lease: Option<Nanos>) -> Option<Concurrency> {
        (max > 0 && lease != Some(0)).then_some(Concurrency { max, lease })
    }

    /// The cap.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The lease TTL, if any.
    pub fn lease(&self) -> Option<Nanos> {
        self.lease
    }

    /// Reclaims leases that ended by `now`.
    fn reclaim(&self, state: &mut ConcurrencyState, now: Nanos) {
        while let Some(&(expires, id)) = state.leases.first() {
            if expires > now {
                break;
            }
            state.leases.remove(&(expires, id));
            state.in_flight -= 1;
        }
    }

    /// Decides one request at `now`.
    pub fn decide(&self, state: &mut ConcurrencyState, now: Nanos, _cost: u64) -> Decision {
        self.reclaim(state, now);
        // With leases, everything in flight is reclaimed when the last lease ends.
        let last_lease = match self.lease {
            Some(_) => state.leases.last().map_or(now, |&(e, _)| e.max(now)),
            None => now,
        };
        if state.in_flight < self.max {
            let reset = match self.lease {
                Some(ttl) => last_lease.max(now.saturating_add(ttl)),
                None => now,
            };
            return Decision {
                allowed: true,
                limit: self.max,
                remaining: self.max - state.in_flight - 1,
                reset,
                retry: Retry::Now,
                delay: 0,
            };
        }
        let retry = match (self.lease, state.leases.first()) {
            (Some(_), Some(&(expires, _))) => Retry::At(expires),
            _ => Retry::Unknown,
        };
        Decision { allowed: false, limit: self.max, remaining: 0, reset: last_lease, retry, delay: 0 }
    }

    /// Grants a permit at `now`.
    pub fn commit(&self, state: &mut ConcurrencyState, now: Nanos) -> Permit {
        self.reclaim(state, now);
        let id = state.next_id.max(now);
        state.next_id = id + 1;
        state.in_flight += 1;
        let expires = self.lease.map_or(u64::MAX, |ttl| now.saturating_add(ttl));
        state.leases.insert((expires, id));
        Permit { expires, id }
    }

    /// Releases a permit at `now`. A permit already released or reclaimed
    /// is ignored.
    pub fn release(&self, state: &mut ConcurrencyState, now: Nanos, permit: Permit) {
        if state.leases.remove(&(permit.expires, permit.id)) {
            state.in_flight -= 1;
        }
        self.reclaim(state, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SECOND;

    #[test]
    fn leases_reclaim_vanished_clients() {
        let c = Concurrency::new(2, Some(30 * SECOND)).unwrap();
        let mut s = ConcurrencyState::default();
        let p1 = c.commit(&mut s, 0);
        let _p2 = c.commit(&mut s, 10 * SECOND);
        let d = c.decide(&mut s, 20 * SECOND, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry, Retry::At(30 * SECOND));
        assert!(!c.decide(&mut s, 30 * SECOND - 1, 1).allowed);
        assert!(c.decide(&mut s, 30 * SECOND, 1).allowed);
        // p1 was reclaimed: releasing it now changes nothing.
        c.release(&mut s, 31 * SECOND, p1);
        assert_eq!(s.in_flight(), 1);
    }

    #[test]
    fn without_leases_retry_is_unknown() {
        let c = Concurrency::new(1, None).unwrap();
        let mut s = ConcurrencyState::default();
        let p = c.commit(&mut s, 0);
        assert_eq!(c.decide(&mut s, 5, 1).retry, Retry::Unknown);
        c.release(&mut s, 5, p);
        assert!(c.decide(&mut s, 5, 1).allowed);
    }
}
