//! Sampling: the arrival processes and attribute distributions of a
//! [`Spec`](super::Spec), drawn from a client's ChaCha8 streams.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use super::{Arrival, Client, Dist, Population, State};
use crate::time::Nanos;

/// Rounds to the nearest whole number from 0 to `max` (a sample in the far
/// tail of a distribution is capped at `max`).
pub(super) fn to_whole(x: f64, max: u64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        (x.round() as u64).min(max)
    }
}

/// Uniform on `[0, 1)` from the top 53 bits of one `u64`.
pub(super) fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Exponential with mean 1, by inversion: `-ln(1 - U)`, `1 - U` in `(0, 1]`.
fn exp1(rng: &mut ChaCha8Rng) -> f64 {
    -(1.0 - uniform(rng)).ln()
}

/// Standard normal by Box–Muller (the cosine branch; one pair per sample).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - uniform(rng);
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Dist {
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        match *self {
            Dist::Constant(v) => v,
            Dist::Exponential { mean } => mean * exp1(rng),
            Dist::LogNormal { mu, sigma } => {
                if sigma == 0.0 {
                    mu.exp()
                } else {
                    (mu + sigma * normal(rng)).exp()
                }
            }
            Dist::Uniform { min, max } => min + (max - min) * uniform(rng),
        }
    }
}

impl Arrival {
    pub(super) fn initial_state(&self, rng: &mut ChaCha8Rng) -> State {
        match *self {
            Arrival::Constant { rate, random_phase } => {
                let phase = if random_phase {
                    // floor(U · T), kept strictly below the interval T.
                    let interval = rate.period() as f64 / rate.count() as f64;
                    let p = (uniform(rng) * interval).floor() as u64;
                    let max = rate.period().div_ceil(rate.count()).saturating_sub(1);
                    p.min(max)
                } else {
                    0
                };
                State::Constant { k: 0, phase }
            }
            Arrival::Poisson { .. } => State::Poisson { t: 0.0 },
            Arrival::OnOff { on, off, exponential, random_phase, .. } => {
                let (t, on_end) = match (exponential, random_phase) {
                    (false, false) => (0.0, on),
                    (false, true) => {
                        let o = uniform(rng) * (on + off);
                        if o < on {
                            (0.0, on - o)
                        } else {
                            let next_on = on + off - o;
                            (next_on, next_on + on)
                        }
                    }
                    (true, false) => (0.0, on * exp1(rng)),
                    (true, true) => {
                        // Stationary start: on with probability on/(on+off);
                        // the remaining period is exponential (memoryless).
                        if uniform(rng) * (on + off) < on {
                            (0.0, on * exp1(rng))
                        } else {
                            let next_on = off * exp1(rng);
                            (next_on, next_on + on * exp1(rng))
                        }
                    }
                };
                State::OnOff { t, on_end }
            }
            Arrival::Diurnal { .. } | Arrival::Ramp { .. } | Arrival::FlashCrowd { .. } => State::Thinned { t: 0.0 },
        }
    }

    /// The expected number of arrivals of one client in `span` nanoseconds
    /// from its population's start: the integral of its rate.
    pub(super) fn expected_arrivals(&self, span: f64) -> f64 {
        match *self {
            Arrival::Constant { rate, .. } => (span * rate.count() as f64 / rate.period() as f64).ceil(),
            Arrival::Poisson { rate } | Arrival::Diurnal { rate, .. } => rate * span,
            Arrival::OnOff { rate, on, off, .. } => rate * span * on / (on + off),
            Arrival::Ramp { from, to, over } => {
                let ramp = span.min(over);
                from * ramp + (to - from) * ramp * ramp / (2.0 * over) + to * (span - ramp)
            }
            Arrival::FlashCrowd { base, at, peak, decay } => {
                let after = (span - at).max(0.0);
                base * span + (peak - base) * decay * (1.0 - (-after / decay).exp())
            }
        }
    }

    /// The rate at `t` (per nanosecond) of a thinned process.
    fn lambda(&self, t: f64) -> f64 {
        match *self {
            Arrival::Diurnal { rate, amplitude, period, peak_at } => {
                let phase = ((t - peak_at) / period).rem_euclid(1.0);
                rate * (1.0 + amplitude * (std::f64::consts::TAU * phase).cos())
            }
            Arrival::Ramp { from, to, over } => from + (to - from) * (t / over).min(1.0),
            Arrival::FlashCrowd { base, at, peak, decay } => {
                if t < at {
                    base
                } else {
                    base + (peak - base) * (-(t - at) / decay).exp()
                }
            }
            _ => 0.0,
        }
    }

    /// An upper bound of `lambda` on `[t, until)`: `(bound, until)`. The
    /// thinning loop asks again after every candidate, so a bound taken at
    /// the current time adapts as a decreasing rate falls.
    fn majorant(&self, t: f64) -> (f64, f64) {
        match *self {
            Arrival::Diurnal { rate, amplitude, .. } => (rate * (1.0 + amplitude), f64::INFINITY),
            Arrival::Ramp { from, to, over } => {
                if from >= to || t >= over {
                    // Non-increasing from here on: the current rate bounds it.
                    (self.lambda(t), f64::INFINITY)
                } else {
                    // Increasing: bound each 1/32 of the ramp by its end value.
                    let until = (t + over / RAMP_SEGMENTS).min(over);
                    (self.lambda(until), until)
                }
            }
            Arrival::FlashCrowd { base, at, .. } => {
                if t < at {
                    (base, at)
                } else {
                    // λ never increases after `at`, so λ(t) bounds all of [t, ∞).
                    (self.lambda(t), f64::INFINITY)
                }
            }
            _ => (0.0, f64::INFINITY),
        }
    }
}

/// An increasing ramp is thinned against a staircase of this many steps.
const RAMP_SEGMENTS: f64 = 32.0;

/// Computes the client's next arrival as an absolute offset, or `None` when
/// it has no more before its population's end.
pub(super) fn next_arrival(pop: &Population, client: &mut Client) -> Option<Nanos> {
    let span = pop.end - pop.start;
    let spanf = span as f64;
    let rng = &mut client.arrivals;
    let rel = match (&pop.arrival, &mut client.state) {
        (Arrival::Constant { rate, .. }, State::Constant { k, phase }) => {
            let offset = (*k as u128 * rate.period() as u128) / rate.count() as u128;
            let t = *phase as u128 + offset;
            *k += 1;
            if t >= span as u128 {
                return None;
            }
            t as Nanos
        }
        (Arrival::Poisson { rate }, State::Poisson { t }) => {
            *t += exp1(rng) / rate;
            if *t >= spanf {
                return None;
            }
            *t as Nanos
        }
        (Arrival::OnOff { rate, on, off, exponential, .. }, State::OnOff { t, on_end }) => loop {
            if *t >= spanf {
                return None;
            }
            if *t >= *on_end {
                let (off_len, on_len) = if *exponential {
                    let off_len = off * exp1(rng);
                    (off_len, on * exp1(rng))
                } else {
                    (*off, *on)
                };
                *t = *on_end + off_len;
                *on_end = *t + on_len;
                continue;
            }
            let cand = *t + exp1(rng) / rate;
            if cand < *on_end {
                *t = cand;
                if cand >= spanf {
                    return None;
                }
                break cand as Nanos;
            }
            *t = *on_end;
        },
        (arrival, State::Thinned { t }) => loop {
            if *t >= spanf {
                return None;
            }
            let (bound, until) = arrival.majorant(*t);
            if bound <= 0.0 {
                if until.is_infinite() {
                    return None;
                }
                *t = until;
                continue;
            }
            let cand = *t + exp1(rng) / bound;
            if cand >= until {
                // Memoryless: restart from the boundary with the next bound.
                *t = until;
                continue;
            }
            *t = cand;
            if cand >= spanf {
                return None;
            }
            if uniform(rng) * bound < arrival.lambda(cand) {
                break cand as Nanos;
            }
        },
        _ => unreachable!("state matches its arrival kind"),
    };
    Some(pop.start + rel)
}
