//! How long the emulator takes to answer an admitted request
//! (`--service-time DIST`).
//!
//! | form | distribution |
//! |---|---|
//! | `250ms`, `1.5s`, `0` | constant |
//! | `exp:MEAN` | exponential with that mean |
//! | `uniform:MIN:MAX` | uniform on `[MIN, MAX]` |
//! | `lognormal:MEDIAN:SIGMA` | log-normal with that median and shape `SIGMA` (≥ 0) |
//!
//! Durations take the units of policies (`ns`, `us`, `ms`, `s`, `min`, `h`).
//! The distributions are those of synthetic traces
//! ([`crate::trace::synth`]), drawn from a ChaCha8 stream seeded by
//! `--seed`; a draw is capped at [`MAX_SERVICE_TIME`] (one hour), so no
//! request holds its permits longer.

use rand_chacha::ChaCha8Rng;

use crate::time::{parse_duration, Nanos, SECOND};
use crate::trace::synth::Dist;

/// The longest service time drawn.
pub const MAX_SERVICE_TIME: Nanos = 3600 * SECOND;

/// A service-time distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServiceTime(Dist);

impl Default for ServiceTime {
    fn default() -> Self {
        ServiceTime(Dist::Constant(0.0))
    }
}

impl ServiceTime {
    /// Parses a `--service-time` value (see the module docs).
    pub fn parse(text: &str) -> Result<ServiceTime, String> {
        let text = text.trim();
        let expected = "expected a duration (250ms), exp:MEAN, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA";
        let d = |s: &str| -> Result<f64, String> {
            if s.trim() == "0" {
                return Ok(0.0);
            }
            parse_duration(s).map(|ns| ns as f64).map_err(|e| format!("{e} ({expected})"))
        };
        let parts: Vec<&str> = text.split(':').collect();
        let dist = match parts.as_slice() {
            [one] => Dist::Constant(d(one)?),
            ["exp", mean] => {
                let mean = d(mean)?;
                if mean <= 0.0 {
                    return Err(format!("exp:MEAN: expected a mean above 0, found {text:?}"));
                }
                Dist::Exponential { mean }
            }
            ["uniform", min, max] => {
                let (min, max) = (d(min)?, d(max)?);
                if max < min {
                    return Err(format!("uniform:MIN:MAX: expected MAX at least MIN, found {text:?}"));
                }
                Dist::Uniform { min, max }
            }
            ["lognormal", median, sigma] => {
                let median = d(median)?;
                let sigma: f64 =
                    sigma.trim().parse().ok().filter(|s: &f64| s.is_finite() && *s >= 0.0).ok_or_else(|| {
                        format!("lognormal:MEDIAN:SIGMA: expected SIGMA a number >= 0, found {sigma:?}")
                    })?;
                if median <= 0.0 {
                    return Err(format!("lognormal:MEDIAN:SIGMA: expected a median above 0, found {text:?}"));
                }
                Dist::LogNormal { mu: median.ln(), sigma }
            }
            _ => return Err(format!("{expected}, found {text:?}")),
        };
        Ok(ServiceTime(dist))
    }

    /// One draw, in nanoseconds (at most [`MAX_SERVICE_TIME`]).
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> Nanos {
        let v = self.0.sample(rng);
        if v.is_nan() || v <= 0.0 {
            0
        } else {
            (v.round().min(MAX_SERVICE_TIME as f64)) as Nanos
        }
    }

    /// Whether every draw is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == Dist::Constant(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MILLISECOND;
    use rand::SeedableRng;

    #[test]
    fn forms_parse_and_sample_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(ServiceTime::parse("250ms").unwrap().sample(&mut rng), 250 * MILLISECOND);
        assert!(ServiceTime::parse("0").unwrap().is_zero());
        let u = ServiceTime::parse("uniform:100ms:300ms").unwrap();
        for _ in 0..100 {
            let v = u.sample(&mut rng);
            assert!((100 * MILLISECOND..=300 * MILLISECOND).contains(&v), "{v}");
        }
        let e = ServiceTime::parse("exp:1s").unwrap();
        let mean = (0..2000).map(|_| e.sample(&mut rng) as f64).sum::<f64>() / 2000.0;
        assert!((0.9e9..1.1e9).contains(&mean), "{mean}");
        let l = ServiceTime::parse("lognormal:200ms:0").unwrap();
        assert_eq!(l.sample(&mut rng), 200 * MILLISECOND);
        let wide = ServiceTime::parse("lognormal:1h:9").unwrap();
        assert!((0..200).map(|_| wide.sample(&mut rng)).any(|v| v == MAX_SERVICE_TIME), "draws are capped");
    }

    #[test]
    fn bad_forms_say_what_was_expected() {
        for (text, why) in [
            ("fast", "expected a duration"),
            ("exp:0s", "mean above 0"),
            ("uniform:2s:1s", "MAX at least MIN"),
            ("lognormal:1s:-1", "SIGMA a number >= 0"),
            ("gamma:1s", "expected a duration"),
        ] {
            let e = ServiceTime::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
