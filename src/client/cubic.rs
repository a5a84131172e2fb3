//! AWS's adaptive retry mode: a client-side token bucket whose rate follows
//! CUBIC (botocore 1.44.8 `retries/adaptive.py`, `retries/throttling.py`,
//! `retries/bucket.py`), ported operation for operation in `f64` seconds.
//! botocore counts seconds since the Unix epoch (`time.time()`, about
//! 2.4e-7 s apart at today's dates); here they count from the whole second
//! the limiter was created in, which keeps the half-second buckets where
//! botocore has them and gives nanosecond precision.
//!
//! - **Token bucket** (`TokenBucket`): created with rate 1/s, capacity 1,
//!   empty. A send takes one token once the limiter is *enabled*; without a
//!   token it waits `(1 − tokens) / rate`. Setting a new rate first refills
//!   at the old one, then sets `rate = max(new, 0.5)` and `capacity =
//!   max(new, 1)`, and trims the tokens to the capacity.
//! - **Measured send rate** (`RateClocker`): every response counts one;
//!   when a response falls in a later 0.5 s bucket (`floor(t·2)/2`) than the
//!   last update, `measured = 0.8 · count / (bucket − last) + 0.2 ·
//!   measured`. The first "last bucket" is the whole second the client was
//!   created in.
//! - **CUBIC** (`CubicCalculator`, β = 0.7, C = 0.4): a throttling response
//!   at `t` with send rate `r` (the measured rate, or the smaller of it and
//!   the bucket's rate once enabled) sets `w_max = r`, `K = ∛(w_max·(1 −
//!   β)/C)`, `last_fail = t` and the new rate `β·r`, and enables the
//!   limiter; any other response gives `C·(t − last_fail − K)³ + w_max`.
//!   Either way the bucket's rate becomes `min(new rate, 2 × measured)`.
//!
//! Every response updates the limiter, enabled or not (botocore hooks it to
//! `needs-retry`, which fires for every attempt).

use crate::time::{Nanos, SECOND};

/// CUBIC's multiplicative decrease.
pub const BETA: f64 = 0.7;
/// CUBIC's scale constant.
pub const SCALE: f64 = 0.4;
/// The bucket's lowest rate (tokens per second).
pub const MIN_RATE: f64 = 0.5;
/// Weight of the newest measurement.
pub const SMOOTHING: f64 = 0.8;
/// Width of a measuring bucket, seconds.
pub const BUCKET_SECONDS: f64 = 0.5;
/// The bucket's rate is at most this times the measured rate.
pub const MAX_RATE_SCALE: f64 = 2.0;

/// One client's adaptive limiter.
#[derive(Clone, Debug, PartialEq)]
pub struct Cubic {
    /// The whole second it was created in: its times count from there.
    origin: Nanos,
    /// Tokens per second (`TokenBucket._fill_rate`, its `max_rate`).
    pub fill_rate: f64,
    /// Largest token count.
    pub max_capacity: f64,
    /// Tokens now.
    pub tokens: f64,
    last_refill: f64,
    /// The smoothed send rate.
    pub measured_rate: f64,
    last_bucket: f64,
    count: f64,
    /// CUBIC's `w_max`: the rate at the last throttle.
    pub w_max: f64,
    /// CUBIC's `K`: seconds from the last throttle back to `w_max`.
    pub k: f64,
    /// Seconds (since `origin`) of the last throttle (creation at first).
    pub last_fail: f64,
    /// Whether sends take tokens (after the first throttle).
    pub enabled: bool,
}

impl Cubic {
    /// A limiter created at `now` (botocore builds it with the client).
    pub fn new(now: Nanos) -> Cubic {
        let origin = now - now % SECOND;
        let t = (now - origin) as f64 / SECOND as f64;
        Cubic {
            origin,
            fill_rate: 1.0,
            max_capacity: 1.0,
            tokens: 0.0,
            last_refill: t,
            measured_rate: 0.0,
            last_bucket: t.floor(),
            count: 0.0,
            w_max: 0.0,
            k: 0.0,
            last_fail: t,
            enabled: false,
        }
    }

    fn refill(&mut self, t: f64) {
        let filled = self.tokens + (t - self.last_refill) * self.fill_rate;
        self.tokens = self.max_capacity.min(filled);
        self.last_refill = t;
    }

    fn set_max_rate(&mut self, value: f64, t: f64) {
        self.refill(t);
        self.fill_rate = value.max(MIN_RATE);
        self.max_capacity = if value >= 1.0 { value } else { 1.0 };
        self.tokens = self.tokens.min(self.max_capacity);
    }

    /// A send at `now`: `None` when it may go (a token taken if enabled),
    /// else how long to wait before asking again.
    pub fn acquire(&mut self, now: Nanos) -> Option<Nanos> {
        if !self.enabled {
            return None;
        }
        let t = self.seconds(now);
        self.refill(t);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        let wait = (1.0 - self.tokens) / self.fill_rate;
        Some(((wait * SECOND as f64).ceil() as Nanos).max(1))
    }

    /// The smoothed send rate after a response at `t`.
    fn record(&mut self, t: f64) -> f64 {
        let scale = 1.0 / BUCKET_SECONDS;
        let bucket = (t * scale).floor() / scale;
        self.count += 1.0;
        if bucket > self.last_bucket {
            let current = self.count / (bucket - self.last_bucket);
            self.measured_rate = current * SMOOTHING + self.measured_rate * (1.0 - SMOOTHING);
            self.count = 0.0;
            self.last_bucket = bucket;
        }
        self.measured_rate
    }

    /// Seconds from `origin` to `now`.
    fn seconds(&self, now: Nanos) -> f64 {
        now.saturating_sub(self.origin) as f64 / SECOND as f64
    }

    /// CUBIC's rate at `now` (when no throttle comes first).
    pub fn cubic_rate(&self, now: Nanos) -> f64 {
        self.cubic_at(self.seconds(now))
    }

    fn cubic_at(&self, t: f64) -> f64 {
        SCALE * (t - self.last_fail - self.k).powi(3) + self.w_max
    }

    /// A response at `now`, throttling or not.
    pub fn on_response(&mut self, now: Nanos, throttling: bool) {
        let t = self.seconds(now);
        let measured = self.record(t);
        let new_rate = if throttling {
            let rate = if self.enabled { measured.min(self.fill_rate) } else { measured };
            self.w_max = rate;
            self.k = (self.w_max * (1.0 - BETA) / SCALE).cbrt();
            self.last_fail = t;
            self.enabled = true;
            rate * BETA
        } else {
            self.cubic_at(t)
        };
        self.set_max_rate(new_rate.min(MAX_RATE_SCALE * measured), t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MILLISECOND;

    const T0: Nanos = 1_767_225_600 * SECOND;

    #[test]
    fn disabled_until_the_first_throttle() {
        let mut c = Cubic::new(T0);
        for i in 0..100 {
            assert_eq!(c.acquire(T0 + i * 10 * MILLISECOND), None);
            c.on_response(T0 + i * 10 * MILLISECOND, false);
        }
        assert!(!c.enabled);
        c.on_response(T0 + SECOND, true);
        assert!(c.enabled);
    }

    #[test]
    fn the_rate_measures_sends_per_half_second_bucket() {
        // 20 responses in [T0, T0 + 0.5 s), then one in the next bucket:
        // 21 over one bucket of 0.5 s = 42/s, smoothed 0.8·42.
        let mut c = Cubic::new(T0);
        for i in 0..20 {
            c.on_response(T0 + i * 25 * MILLISECOND, false);
        }
        assert_eq!(c.measured_rate, 0.0, "no later bucket yet");
        c.on_response(T0 + 500 * MILLISECOND, false);
        assert!((c.measured_rate - 0.8 * 42.0).abs() < 1e-9, "{}", c.measured_rate);
    }
}
