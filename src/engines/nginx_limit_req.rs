//! nginx `limit_req`: a leaky bucket kept in milli-requests at millisecond
//! resolution, whose `burst` is a queue.
//!
//! Modelled on `src/http/modules/ngx_http_limit_req_module.c` of nginx
//! 1.22.1 (`ngx_http_limit_req_lookup`, `ngx_http_limit_req_account`), and
//! checked against a real nginx in `tests/dialect_peers.rs`.
//!
//! ## Semantics
//!
//! Configuration, as nginx reads `limit_req_zone ... rate=` and `limit_req`:
//! - `rate` in requests per second or per minute, kept in integer
//!   milli-requests per second, **truncated**: `rate_m = count·1000` for
//!   `r/s`, `count·1000/60` for `r/m` (10 r/m is 166, not 166.67);
//! - `burst` requests (default 0), kept as `burst_m = burst·1000`;
//! - `delay = N` requests that pass without waiting (default 0: every
//!   excess request waits), or `nodelay` (none waits).
//!
//! State per key: `excess` (milli-requests) and `last` (a millisecond),
//! or nothing for a key never seen. Instants are whole milliseconds,
//! `now_ms = floor(now / 1 ms)`.
//!
//! A request at `now` (cost `c` counts as `c` requests at one instant):
//! 1. `ms = max(0, now_ms - last)`; the excess left is
//!    `first = max(0, excess - floor(rate_m·ms / 1000) + 1000)` — the
//!    request's own 1000 included; for a key never seen, `first = 0` (nginx
//!    creates the node with `excess = 0`);
//! 2. `excess' = first + (c - 1)·1000`;
//! 3. **refused iff `excess' > burst_m`**; a refusal changes nothing (not
//!    even `last`);
//! 4. otherwise admitted: `excess := excess'`, and `last := now_ms` if
//!    `ms > 0` or the key was new (nginx: `if (ms) lr->last = now`: the
//!    fraction `rate_m·ms mod 1000` lost by the truncation is lost for good);
//! 5. an admitted request whose `excess'` is above the `delay` threshold
//!    `delay_m = delay·1000` is **delayed**: nginx arms a timer of
//!    `delay_ms = floor((excess' - delay_m)·1000 / rate_m)` milliseconds
//!    and serves the request when its millisecond clock reaches
//!    `now_ms + delay_ms`. [`Decision::delay`](super::Decision::delay) is
//!    that wait in nanoseconds, `(now_ms + delay_ms)·1 ms - now` (0 if
//!    `delay_ms` is 0).
//!
//! So from a fresh key exactly `burst + 1` requests are admitted at one
//! instant (the capacity), a request with `c > burst + 1` never
//! ([`Retry::Never`]). A refused request is admitted at the first
//! millisecond at which enough has leaked:
//! `(last + ceil(1000·(excess + 1000 - target) / rate_m))·1 ms` with
//! `target = burst_m - (c - 1)·1000`; refused one nanosecond before.
//! `remaining` is how many more requests pass at this instant; `reset` is the
//! millisecond at which `first` would be 0 again (as for a fresh key), `now`
//! if it is already; from then on the key is idle ([`NginxLimitReq::is_idle`]).
//!
//! Refusals answer 503 unless `limit_req_status` says otherwise (the policy's
//! `status` defaults to 503 for this algorithm).
//!
//! Not modelled: nginx's clock is monotonic and cached once per event-loop
//! iteration (requests handled in one iteration share a millisecond); an
//! instant more than 60 s before `last` counts as 1 ms after it (a guard for
//! clock wrap-around; here any earlier instant counts as `last`, which is
//! conservative); nginx evicts a zone's least recently used node idle for
//! 60 s once its `excess - rate_m·ms/1000 <= 0`, slightly before it is
//! equivalent to a fresh one, and only when the zone needs memory.
//!
//! State: 16 bytes.

use super::{Decision, Retry};
use crate::time::{Nanos, Rate, MILLISECOND, MINUTE, SECOND};

/// One request in milli-requests.
const ONE: u64 = 1000;

/// nginx `limit_req` configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NginxLimitReq {
    rate: Rate,
    /// nginx's `ctx->rate`: milli-requests per second, truncated.
    rate_m: u64,
    burst: u64,
    /// Requests passed without waiting; `None` for `nodelay`.
    delay: Option<u64>,
}

/// nginx `limit_req` state for one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NginxLimitReqState {
    /// `excess` in milli-requests.
    excess: u64,
    /// `last + 1` in milliseconds since the epoch; 0 for a key never seen.
    last_plus_one: u64,
}

impl NginxLimitReq {
    /// `limit_req_zone ... rate=RATE` with `limit_req ... burst=BURST`, and
    /// `delay=N` (`Some(N)`; `Some(0)` is nginx's default) or `nodelay`
    /// (`None`). `None` if the rate is not per second or per minute (the only
    /// units nginx has) or the figures overflow the milli-request arithmetic.
    pub fn new(rate: Rate, burst: u64, delay: Option<u64>) -> Option<NginxLimitReq> {
        let scale = match rate.period() {
            SECOND => 1,
            MINUTE => 60,
            _ => return None,
        };
        let rate_m = rate.count().checked_mul(ONE)? / scale;
        let limit = u64::MAX / (4 * ONE);
        if rate_m == 0 || burst > limit || delay.is_some_and(|d| d > limit) {
            return None;
        }
        Some(NginxLimitReq { rate, rate_m, burst, delay })
    }

    /// The configured rate (per second or per minute).
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// nginx's rate in milli-requests per second (truncated).
    pub fn rate_milli(&self) -> u64 {
        self.rate_m
    }

    /// `burst`, in requests.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// `delay=N` (`Some(0)`: nginx's default), or `None` for `nodelay`.
    pub fn delay(&self) -> Option<u64> {
        self.delay
    }

    /// The most requests admitted at one instant: `burst + 1`.
    pub fn capacity(&self) -> u64 {
        self.burst + 1
    }

    /// Whether an admitted request can ever wait (not `nodelay`, and a
    /// `delay` threshold below the burst).
    pub fn can_delay(&self) -> bool {
        self.delay.is_some_and(|d| d < self.burst)
    }

    /// `first` (see the module docs) at millisecond `now_ms`, and whether
    /// `last` would move (`ms > 0`, or a new key).
    fn first(&self, state: &NginxLimitReqState, now_ms: u64) -> (u64, bool) {
        if state.last_plus_one == 0 {
            return (0, true);
        }
        let ms = now_ms.saturating_sub(state.last_plus_one - 1);
        let leaked = self.rate_m as u128 * ms as u128 / ONE as u128;
        let first = (state.excess as u128 + ONE as u128).saturating_sub(leaked);
        (first as u64, ms > 0)
    }

    /// The instant at which `first` falls to `target` or below, for a state
    /// whose `first` is above it now (a whole millisecond, at least `now`).
    fn leaked_to(&self, excess: u64, last_ms: u64, target: u64, now: Nanos) -> Nanos {
        let need = (excess + ONE).saturating_sub(target) as u128;
        let ms = (need * ONE as u128).div_ceil(self.rate_m as u128);
        let at = (last_ms as u128 + ms).saturating_mul(MILLISECOND as u128);
        (at.min(u64::MAX as u128) as u64).max(now)
    }

    /// When a key in `state` (known to have been seen) is as a fresh one.
    fn full_at(&self, state: &NginxLimitReqState, now: Nanos) -> Nanos {
        if self.first(state, now / MILLISECOND).0 == 0 {
            return now;
        }
        self.leaked_to(state.excess, state.last_plus_one - 1, 0, now)
    }

    /// Whether the key is as a fresh one at `now` (`first` would be 0).
    pub fn is_idle(&self, state: &NginxLimitReqState, now: Nanos) -> bool {
        self.first(state, now / MILLISECOND).0 == 0
    }

    /// Decides a request of `cost` requests at `now`.
    pub fn decide(&self, state: &NginxLimitReqState, now: Nanos, cost: u64) -> Decision {
        let now_ms = now / MILLISECOND;
        let burst_m = self.burst * ONE;
        let (first, _) = self.first(state, now_ms);
        // Requests that still pass at this instant.
        let room = if first <= burst_m { (burst_m - first) / ONE + 1 } else { 0 };
        let limit = self.capacity();
        if cost <= room {
            if cost == 0 {
                let reset = if state.last_plus_one == 0 { now } else { self.full_at(state, now) };
                return Decision { allowed: true, limit, remaining: room, reset, retry: Retry::Now, delay: 0 };
            }
            let mut after = *state;
            self.commit(&mut after, now, cost);
            let delay_ms = match self.delay {
                Some(d) if after.excess > d * ONE => {
                    (after.excess - d * ONE) as u128 * ONE as u128 / self.rate_m as u128
                }
                _ => 0,
            };
            let delay = if delay_ms == 0 {
                0
            } else {
                ((now_ms as u128 + delay_ms) * MILLISECOND as u128 - now as u128).min(u64::MAX as u128) as u64
            };
            return Decision {
                allowed: true,
                limit,
                remaining: room - cost,
                reset: self.full_at(&after, now),
                retry: Retry::Now,
                delay,
            };
        }
        let retry = if cost > limit {
            Retry::Never
        } else {
            // Refused, so the key has been seen (a new key admits `limit`).
            Retry::At(self.leaked_to(state.excess, state.last_plus_one - 1, burst_m - (cost - 1) * ONE, now))
        };
        let reset = if state.last_plus_one == 0 { now } else { self.full_at(state, now) };
        Decision { allowed: false, limit, remaining: room, reset, retry, delay: 0 }
    }

    /// Counts an admitted request of `cost` requests at `now`.
    pub fn commit(&self, state: &mut NginxLimitReqState, now: Nanos, cost: u64) {
        if cost == 0 {
            return;
        }
        let now_ms = now / MILLISECOND;
        let (first, moves) = self.first(state, now_ms);
        state.excess = first + (cost - 1) * ONE;
        if moves {
            state.last_plus_one = now_ms + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: &NginxLimitReq, at: &[Nanos]) -> Vec<(bool, Nanos)> {
        let mut s = NginxLimitReqState::default();
        at.iter()
            .map(|&t| {
                let d = n.decide(&s, t, 1);
                if d.allowed {
                    n.commit(&mut s, t, 1);
                }
                (d.allowed, d.delay)
            })
            .collect()
    }

    #[test]
    fn burst_is_a_queue_unless_nodelay() {
        // 2 r/s, burst 3: a new key's first request passes at once, the next
        // three wait 500, 1000 and 1500 ms, the fifth is refused.
        let rate = Rate::new(2, SECOND).unwrap();
        let t = 1_000 * SECOND + 250 * MILLISECOND + 7;
        let queued = NginxLimitReq::new(rate, 3, Some(0)).unwrap();
        let wait = |ms: u64| (1_000_250 + ms) * MILLISECOND - t;
        assert_eq!(
            run(&queued, &[t; 5]),
            [(true, 0), (true, wait(500)), (true, wait(1000)), (true, wait(1500)), (false, 0)]
        );
        let nodelay = NginxLimitReq::new(rate, 3, None).unwrap();
        assert_eq!(run(&nodelay, &[t; 5]), [(true, 0), (true, 0), (true, 0), (true, 0), (false, 0)]);
        // delay=1: the first excess request passes at once, later ones wait.
        let partial = NginxLimitReq::new(rate, 3, Some(1)).unwrap();
        assert_eq!(run(&partial, &[t; 4]), [(true, 0), (true, 0), (true, wait(500)), (true, wait(1000))]);
    }

    #[test]
    fn leaks_in_whole_milliseconds_and_truncates() {
        // 10 r/m is 166 milli-requests per second; burst 0.
        let n = NginxLimitReq::new(Rate::new(10, MINUTE).unwrap(), 0, None).unwrap();
        assert_eq!(n.rate_milli(), 166);
        let mut s = NginxLimitReqState::default();
        let t0 = 5_000 * SECOND;
        assert!(n.decide(&s, t0, 1).allowed);
        n.commit(&mut s, t0, 1);
        // excess 0 after the first request; the second needs 1000 milli
        // leaked: ceil(1000·1000/166) = 6025 ms.
        let d = n.decide(&s, t0 + SECOND, 1);
        assert_eq!(d.retry, Retry::At(t0 + 6_025 * MILLISECOND));
        assert!(!n.decide(&s, t0 + 6_025 * MILLISECOND - 1, 1).allowed);
        assert!(n.decide(&s, t0 + 6_025 * MILLISECOND, 1).allowed);
        // A refusal does not move `last`: after refusals, the same instant still admits.
        assert!(n.decide(&s, t0 + 6_025 * MILLISECOND + 999_999, 1).allowed);
        assert!(NginxLimitReq::new(Rate::new(1, crate::time::HOUR).unwrap(), 1, None).is_none());
    }
}
