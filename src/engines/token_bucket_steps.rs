//! Token bucket refilled in discrete steps (Envoy's local rate limit).
//!
//! Envoy's local rate limit filter (up to 1.30, and later with the runtime
//! guard `envoy.reloadable_features.no_timer_based_rate_limit_token_bucket`
//! set to false) keeps a bucket of at most `max_tokens` tokens that a timer
//! tops up by `tokens_per_fill` every `fill_interval`; a request takes one
//! token if there is one. Tokens arrive in steps, not continuously, so a
//! burst right after a refill differs from a leaky bucket's ([`super::Gcra`]
//! drains continuously): with 10 tokens per second and a bucket of 10, an
//! empty bucket admits nothing for up to a second and then 10 at once.
//!
//! ## Semantics
//!
//! Parameters: `max` tokens (the capacity, `burst` in policies), `per_fill`
//! tokens added every `interval` (`rate = "PER_FILL/INTERVAL"`).
//!
//! - A key's bucket starts **full**.
//! - Refills happen at the instants `k·interval`, aligned to the Unix epoch
//!   (Envoy's timer starts when its configuration loads; no policy can know
//!   that phase, so ratesim fixes it). Each adds `per_fill` tokens, capped
//!   at `max`. A refill at instant `t` comes **before** the requests at `t`.
//! - A request of cost `c` at `now` is **admitted iff `tokens(now) >= c`**
//!   and then takes `c` tokens (Envoy: one token per request). A denied
//!   request changes nothing. Same-instant requests are decided one after
//!   another in the order given.
//! - A request with `c > max` is never admitted ([`Retry::Never`]). A denied
//!   one is admitted at the refill that brings enough tokens:
//!   `(k + ceil((c - tokens) / per_fill))·interval` where `k = floor(now /
//!   interval)`; denied one nanosecond before.
//! - `remaining` is the tokens left (after the request, if admitted);
//!   `reset` is the refill at which the bucket is full again (`now` if it is).
//!
//! Not modelled: Envoy re-arms its timer after each refill, so its refills
//! drift later by the timer's latency; and with descriptors it takes tokens
//! from several buckets one after another (see
//! [`crate::policy`]'s composition, which is atomic).
//!
//! State: the tokens missing from a full bucket and the index of the last
//! refill seen, 16 bytes; a fresh state is a full bucket.

use super::{Decision, Retry};
use crate::time::{Nanos, Rate};

/// Token bucket with discrete refills: configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucketSteps {
    max: u64,
    per_fill: u64,
    interval: Nanos,
}

/// Token bucket with discrete refills: state for one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenBucketStepsState {
    /// Tokens missing from a full bucket (0: full, as a fresh key's).
    missing: u64,
    /// Index `k` of the refill instant `k·interval` last applied.
    fill: u64,
}

impl TokenBucketSteps {
    /// A bucket of `max` tokens refilled by `rate.count()` tokens every
    /// `rate.period()`; `None` if `max` is zero.
    pub fn new(rate: Rate, max: u64) -> Option<TokenBucketSteps> {
        (max > 0).then_some(TokenBucketSteps { max, per_fill: rate.count(), interval: rate.period() })
    }

    /// The capacity (`max_tokens`).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Tokens per refill and the refill interval, as a rate.
    pub fn rate(&self) -> Rate {
        Rate::new(self.per_fill, self.interval).expect("both positive")
    }

    /// Applies the refills up to `now` (none for an instant before the last
    /// one seen); returns the index of the refill `now` follows.
    fn refill(&self, state: &mut TokenBucketStepsState, now: Nanos) -> u64 {
        let k = now / self.interval;
        if k > state.fill {
            state.missing = state.missing.saturating_sub((k - state.fill).saturating_mul(self.per_fill));
            state.fill = k;
        }
        state.fill
    }

    /// The refill instant at which `missing` tokens have come back, from
    /// refill `k` on (`now` if none are missing).
    fn back_at(&self, k: u64, missing: u64, now: Nanos) -> Nanos {
        if missing == 0 {
            return now;
        }
        k.saturating_add(missing.div_ceil(self.per_fill)).saturating_mul(self.interval)
    }

    /// Whether the bucket is full at `now` (the state is then equivalent to
    /// a fresh one).
    pub fn is_idle(&self, state: &TokenBucketStepsState, now: Nanos) -> bool {
        let k = now / self.interval;
        state.missing <= k.saturating_sub(state.fill).saturating_mul(self.per_fill)
    }

    /// Decides a request of `cost` tokens at `now`.
    #[inline]
    pub fn decide(&self, state: &mut TokenBucketStepsState, now: Nanos, cost: u64) -> Decision {
        let k = self.refill(state, now);
        let tokens = self.max - state.missing;
        if cost <= tokens {
            let missing = state.missing + cost;
            return Decision {
                allowed: true,
                limit: self.max,
                remaining: tokens - cost,
                reset: self.back_at(k, missing, now),
                retry: Retry::Now,
                delay: 0,
            };
        }
        let retry = if cost > self.max {
            Retry::Never
        } else {
            // Enough tokens once `missing` has fallen to `max - cost`.
            Retry::At(self.back_at(k, state.missing - (self.max - cost), now))
        };
        Decision {
            allowed: false,
            limit: self.max,
            remaining: tokens,
            reset: self.back_at(k, state.missing, now),
            retry,
            delay: 0,
        }
    }

    /// Takes `cost` tokens at `now`.
    #[inline]
    pub fn commit(&self, state: &mut TokenBucketStepsState, now: Nanos, cost: u64) {
        self.refill(state, now);
        state.missing += cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{MILLISECOND, SECOND};

    #[test]
    fn tokens_arrive_in_steps() {
        // 10 tokens, 5 more every 500 ms.
        let b = TokenBucketSteps::new(Rate::new(5, 500 * MILLISECOND).unwrap(), 10).unwrap();
        let mut s = TokenBucketStepsState::default();
        let t0 = 1_000 * SECOND + 100 * MILLISECOND;
        for i in 0..10 {
            let d = b.decide(&mut s, t0, 1);
            assert!(d.allowed, "token {i}");
            assert_eq!(d.remaining, 9 - i);
            b.commit(&mut s, t0, 1);
        }
        let d = b.decide(&mut s, t0, 1);
        assert!(!d.allowed);
        // The next refill is at 1000.5 s; the bucket is full two refills on.
        assert_eq!(d.retry, Retry::At(1_000 * SECOND + 500 * MILLISECOND));
        assert_eq!(d.reset, 1_001 * SECOND);
        assert_eq!(b.decide(&mut s, t0, 6).retry, Retry::At(1_001 * SECOND));
        assert!(!b.decide(&mut s, 1_000 * SECOND + 500 * MILLISECOND - 1, 1).allowed);
        // At the refill instant, exactly 5 pass.
        let t1 = 1_000 * SECOND + 500 * MILLISECOND;
        for _ in 0..5 {
            assert!(b.decide(&mut s, t1, 1).allowed);
            b.commit(&mut s, t1, 1);
        }
        assert!(!b.decide(&mut s, t1, 1).allowed);
        assert_eq!(b.decide(&mut s, t1, 11).retry, Retry::Never);
        // Full again two refills after t1.
        assert!(!b.is_idle(&s, 1_001 * SECOND + 500 * MILLISECOND - 1));
        assert!(b.is_idle(&s, 1_001 * SECOND + 500 * MILLISECOND));
    }
}
