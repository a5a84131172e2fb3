//! Client behaviour: what a client does when it meets a 429.
//!
//! A [`ClientSpec`] says how a client retries (how many attempts, which
//! statuses, backoff, jitter, whether it honours `Retry-After`), whether it
//! keeps an SRE-book retry budget or adaptive throttle, and whether it paces
//! itself with a client-side limiter. Named presets ([`PRESETS`], [`preset`]) reproduce the clients
//! shown on the provider pages and the official OpenAI Python SDK.
//!
//! Delays are computed in floating point seconds (backoff formulas are
//! floating point in every SDK) and rounded to whole nanoseconds once; every
//! random draw comes from the client's own ChaCha stream, so a run is
//! reproducible draw for draw.
//!
//! Clients see what a real client sees: the `Retry-After` header in whole
//! seconds as the policy renders it (rounded up), not the engine's exact
//! instant.

mod presets;

pub use presets::{preset, preset_names, PRESETS};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::policy::status_listed;
use crate::time::{format_duration, Nanos, SECOND};

/// Backoff before retry `n` (0 for the first retry).
#[derive(Clone, Debug, PartialEq)]
pub enum Backoff {
    /// Retry at once.
    Immediate,
    /// Always the same delay.
    Fixed(Nanos),
    /// `min(cap, base · factor^n)`.
    Exponential {
        /// Delay before the first retry.
        base: Nanos,
        /// Growth per retry (2 doubles).
        factor: f64,
        /// Upper bound on the delay before jitter.
        cap: Nanos,
    },
}

/// Randomization of a backoff delay `d` (AWS architecture blog naming).
#[derive(Clone, Debug, PartialEq)]
pub enum Jitter {
    /// `d`.
    None,
    /// `U(0, d)`.
    Full,
    /// `d/2 + U(0, d/2)`.
    Equal,
    /// `min(cap, U(base, 3 · previous))`, previous starting at base.
    Decorrelated,
    /// `d · (1 - fraction · U(0,1))` (the OpenAI SDK: fraction 0.25).
    Subtract(f64),
    /// `d + U(0, max)` (the AICredits example: max 1 s).
    Add(Nanos),
}

/// What a client does with a `Retry-After` header.
#[derive(Clone, Debug, PartialEq)]
pub enum RetryAfter {
    /// Always use its own backoff.
    Ignore,
    /// Wait what the header says, up to `cap`; above the cap either wait the
    /// cap (`give_up_above_cap = false`) or give up (the OpenAI SDK does not
    /// retry when `Retry-After` exceeds two minutes). Without the header, back off.
    Honour {
        /// Longest wait accepted.
        cap: Option<Nanos>,
        /// Give up instead of clamping when the header exceeds the cap.
        give_up_above_cap: bool,
    },
    /// `min(header or default, backoff)` (the predictions page's Node example).
    MinOfBackoff {
        /// What a missing header counts as.
        default: Nanos,
    },
}

/// SRE-book retry budget: a retry is allowed only while retries stay below
/// `ratio` of requests over the last two one-minute windows.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryBudget {
    /// Maximum retries per request, e.g. 0.1.
    pub ratio: f64,
}

/// SRE-book adaptive throttling: the client rejects a request locally with
/// probability `max(0, (requests - k · accepts) / (requests + 1))`, counted
/// over the last two one-minute windows.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveThrottle {
    /// The multiplier `K` (2 in the book).
    pub k: f64,
}

/// A client-side limiter: the client waits before sending.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pacing {
    /// At most `limit` sends in any rolling `period` (the RunAgent page's
    /// `RateLimitedClient`: sleep until the oldest send leaves the window).
    SlidingWindow {
        /// Sends per window.
        limit: u64,
        /// Window length.
        period: Nanos,
    },
    /// A token bucket: `count` per `period`, burst `burst`.
    TokenBucket {
        /// Sends per period.
        count: u64,
        /// The period.
        period: Nanos,
        /// Burst.
        burst: u64,
    },
    /// At most `max` of the client's requests in flight (an asyncio
    /// `Semaphore`); the others queue in arrival order.
    Semaphore {
        /// Requests in flight.
        max: u64,
    },
}

/// How a client behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientSpec {
    /// Preset or custom name, for reports.
    pub name: String,
    /// Where the behaviour comes from (SDK version, page line), for reports.
    pub origin: String,
    /// Attempts in all, the first included (1: never retry).
    pub max_attempts: u32,
    /// Statuses that are retried.
    pub retry_on: Vec<u16>,
    /// Backoff schedule.
    pub backoff: Backoff,
    /// Jitter applied to the backoff.
    pub jitter: Jitter,
    /// Treatment of `Retry-After`.
    pub retry_after: RetryAfter,
    /// Optional retry budget.
    pub retry_budget: Option<RetryBudget>,
    /// Optional adaptive throttling.
    pub adaptive: Option<AdaptiveThrottle>,
    /// Optional client-side limiter.
    pub pacing: Option<Pacing>,
}

impl ClientSpec {
    /// A client that never retries.
    pub fn none() -> ClientSpec {
        ClientSpec {
            name: "none".into(),
            origin: "open loop: every request is one attempt".into(),
            max_attempts: 1,
            retry_on: vec![],
            backoff: Backoff::Immediate,
            jitter: Jitter::None,
            retry_after: RetryAfter::Ignore,
            retry_budget: None,
            adaptive: None,
            pacing: None,
        }
    }

    /// Parses `PRESET[,key=value...]`, e.g. `openai-python,max_retries=5` or
    /// `none`. Keys: `max_attempts`, `max_retries`, `backoff`
    /// (`immediate`, `fixed:1s`, `exp:0.5s:2:8s`), `jitter` (`none`, `full`,
    /// `equal`, `decorrelated`), `retry_after` (`ignore`, `honour`,
    /// `honour:60s` waits at most 60 s, `honour:120s:give-up` gives up above
    /// 120 s), `retry_on` (`429+503`), `retry_budget` (`0.1`),
    /// `adaptive` (`2`), `pace` (`window:100:1h`, `bucket:10:1s:5`, `semaphore:10`).
    pub fn parse(text: &str) -> Result<ClientSpec, String> {
        let mut parts = text.split(',');
        let name = parts.next().unwrap_or("").trim();
        let mut spec = preset(name)
            .ok_or_else(|| format!("unknown client preset {name:?}; expected one of: {}", preset_names().join(", ")))?;
        let mut custom = Vec::new();
        for part in parts {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("expected key=value after the preset name, found {part:?}"))?;
            let (k, v) = (k.trim(), v.trim());
            let bad = |what: &str| format!("client option `{k}`: expected {what}, found {v:?}");
            match k {
                "max_attempts" => spec.max_attempts = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| bad("a whole number >= 1"))?,
                "max_retries" => spec.max_attempts = v.parse::<u32>().map(|n| n + 1).map_err(|_| bad("a whole number"))?,
                "backoff" => spec.backoff = parse_backoff(v).ok_or_else(|| bad("immediate, fixed:DURATION or exp:BASE:FACTOR:CAP"))?,
                "jitter" => {
                    spec.jitter = match v {
                        "none" => Jitter::None,
                        "full" => Jitter::Full,
                        "equal" => Jitter::Equal,
                        "decorrelated" => Jitter::Decorrelated,
                        _ => return Err(bad("none, full, equal or decorrelated")),
                    }
                }
                "retry_after" => {
                    spec.retry_after = match v.split_once(':') {
                        None if v == "ignore" => RetryAfter::Ignore,
                        None if v == "honour" || v == "honor" => RetryAfter::Honour { cap: None, give_up_above_cap: false },
                        Some(("honour" | "honor", cap)) => {
                            let (cap, give_up) = match cap.strip_suffix(":give-up") {
                                Some(c) => (c, true),
                                None => (cap, false),
                            };
                            RetryAfter::Honour {
                                cap: Some(crate::time::parse_duration(cap).map_err(|e| format!("client option `{k}`: {e}"))?),
                                give_up_above_cap: give_up,
                            }
                        }
                        _ => return Err(bad("ignore, honour, honour:CAP or honour:CAP:give-up")),
                    }
                }
                "retry_on" => {
                    spec.retry_on = v
                        .split('+')
                        .map(|s| s.parse::<u16>().ok().filter(|s| (400..=599).contains(s)))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| bad("statuses joined by +, e.g. 429+503"))?
                }
                "retry_budget" => {
                    let ratio: f64 = v.parse().ok().filter(|r: &f64| r.is_finite() && *r >= 0.0).ok_or_else(|| bad("a ratio such as 0.1"))?;
                    spec.retry_budget = Some(RetryBudget { ratio });
                }
                "adaptive" => {
                    let k: f64 = v.parse().ok().filter(|k: &f64| k.is_finite() && *k >= 1.0).ok_or_else(|| bad("K >= 1, e.g. 2"))?;
                    spec.adaptive = Some(AdaptiveThrottle { k });
                }
                "pace" => spec.pacing = Some(parse_pacing(v).ok_or_else(|| bad("window:LIMIT:PERIOD, bucket:COUNT:PERIOD:BURST or semaphore:MAX"))?),
                _ => {
                    return Err(format!(
                        "unknown client option `{k}`; expected max_attempts, max_retries, backoff, jitter, retry_after, retry_on, retry_budget, adaptive or pace"
                    ))
                }
            }
            custom.push(format!("{k}={v}"));
        }
        if !custom.is_empty() {
            spec.name = format!("{},{}", spec.name, custom.join(","));
        }
        Ok(spec)
    }

    /// One line describing the behaviour, e.g. `3 attempts; backoff
    /// 0.5s·2^n up to 8s, minus up to 25% jitter; honours Retry-After up to
    /// 2min (gives up above)`.
    pub fn describe(&self) -> String {
        if self.max_attempts <= 1 {
            return "1 attempt, no retries".to_string();
        }
        let secs = |ns: Nanos| format!("{}s", crate::time::format_decimal_seconds(ns));
        let backoff = match &self.backoff {
            Backoff::Immediate => "retries at once".to_string(),
            Backoff::Fixed(d) => format!("retries after {}", secs(*d)),
            Backoff::Exponential { base, factor, cap } if *cap == u64::MAX => {
                format!("backoff {}·{factor}^n", secs(*base))
            }
            Backoff::Exponential { base, factor, cap } => {
                format!("backoff {}·{factor}^n up to {}", secs(*base), secs(*cap))
            }
        };
        let jitter = match &self.jitter {
            Jitter::None => String::new(),
            Jitter::Full => ", full jitter".into(),
            Jitter::Equal => ", equal jitter".into(),
            Jitter::Decorrelated => ", decorrelated jitter".into(),
            Jitter::Subtract(f) => format!(", minus up to {}% jitter", f * 100.0),
            Jitter::Add(max) => format!(", plus up to {} jitter", secs(*max)),
        };
        let ra = match &self.retry_after {
            RetryAfter::Ignore => "ignores Retry-After".to_string(),
            RetryAfter::Honour { cap: None, .. } => "honours Retry-After".to_string(),
            RetryAfter::Honour { cap: Some(c), give_up_above_cap } => format!(
                "honours Retry-After up to {}{}",
                format_duration(*c),
                if *give_up_above_cap { " (gives up above)" } else { "" }
            ),
            RetryAfter::MinOfBackoff { default } => {
                format!("waits min(Retry-After or {}, backoff)", format_duration(*default))
            }
        };
        let mut statuses: Vec<String> = self.retry_on.iter().filter(|s| **s < 500).map(u16::to_string).collect();
        if self.retry_on.iter().any(|s| *s >= 500) {
            let all_5xx = (500..=599).all(|s| self.retry_on.contains(&s));
            if all_5xx {
                statuses.push("5xx".into());
            } else {
                statuses.extend(self.retry_on.iter().filter(|s| **s >= 500).map(u16::to_string));
            }
        }
        let mut out = format!("{} attempts on {}; {backoff}{jitter}; {ra}", self.max_attempts, statuses.join("/"));
        if let Some(b) = &self.retry_budget {
            out.push_str(&format!("; retry budget {}", b.ratio));
        }
        if let Some(a) = &self.adaptive {
            out.push_str(&format!("; adaptive throttling K={}", a.k));
        }
        match self.pacing {
            Some(Pacing::SlidingWindow { limit, period }) => {
                out.push_str(&format!("; paces itself to {limit} per rolling {}", format_duration(period)))
            }
            Some(Pacing::TokenBucket { count, period, burst }) => {
                out.push_str(&format!("; paces itself to {count}/{} burst {burst}", format_duration(period)))
            }
            Some(Pacing::Semaphore { max }) => out.push_str(&format!("; at most {max} in flight")),
            None => {}
        }
        out
    }
}

fn parse_backoff(v: &str) -> Option<Backoff> {
    let d = |s: &str| crate::time::parse_duration(s).ok();
    let parts: Vec<&str> = v.split(':').collect();
    match parts.as_slice() {
        ["immediate"] => Some(Backoff::Immediate),
        ["fixed", x] => Some(Backoff::Fixed(d(x)?)),
        ["exp", base, factor, cap] => {
            let factor: f64 = factor.parse().ok().filter(|f: &f64| f.is_finite() && *f >= 1.0)?;
            Some(Backoff::Exponential { base: d(base)?, factor, cap: d(cap)? })
        }
        _ => None,
    }
}

fn parse_pacing(v: &str) -> Option<Pacing> {
    let parts: Vec<&str> = v.split(':').collect();
    let n = |s: &str| s.parse::<u64>().ok().filter(|n| *n >= 1);
    let d = |s: &str| crate::time::parse_duration(s).ok().filter(|d| *d > 0);
    match parts.as_slice() {
        ["window", limit, period] => Some(Pacing::SlidingWindow { limit: n(limit)?, period: d(period)? }),
        ["bucket", count, period, burst] => {
            Some(Pacing::TokenBucket { count: n(count)?, period: d(period)?, burst: n(burst)? })
        }
        ["semaphore", max] => Some(Pacing::Semaphore { max: n(max)? }),
        _ => None,
    }
}

/// Seconds (possibly fractional) to nanoseconds, rounded to nearest, saturating.
fn secs_to_nanos(s: f64) -> Nanos {
    if s <= 0.0 || s.is_nan() {
        0
    } else {
        let ns = (s * SECOND as f64).round();
        if ns >= u64::MAX as f64 {
            u64::MAX
        } else {
            ns as u64
        }
    }
}

/// What a client decides after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryChoice {
    /// Try again after this delay.
    After(Nanos),
    /// Stop: the request fails.
    GiveUp,
}

impl ClientSpec {
    /// The decision after attempt `attempt` (0-based) failed with `status`;
    /// `retry_after` is the header in whole seconds if the response carried
    /// one. `prev_delay` is the previous delay (for decorrelated jitter).
    pub fn after_failure(
        &self,
        attempt: u32,
        status: u16,
        retry_after: Option<u64>,
        prev_delay: Nanos,
        rng: &mut ChaCha8Rng,
    ) -> RetryChoice {
        if attempt + 1 >= self.max_attempts || !status_listed(&self.retry_on, status) {
            return RetryChoice::GiveUp;
        }
        let header = retry_after.map(|s| s.saturating_mul(SECOND));
        let mut backoff = || self.backoff_delay(attempt, prev_delay, rng);
        let delay = match (&self.retry_after, header) {
            (RetryAfter::Ignore, _) | (RetryAfter::Honour { .. }, None) => backoff(),
            (RetryAfter::Honour { cap, give_up_above_cap }, Some(h)) => match cap {
                Some(c) if h > *c => {
                    if *give_up_above_cap {
                        return RetryChoice::GiveUp;
                    }
                    *c
                }
                _ if h == 0 => backoff(),
                _ => h,
            },
            (RetryAfter::MinOfBackoff { default }, h) => h.unwrap_or(*default).min(self.raw_backoff(attempt)),
        };
        RetryChoice::After(delay)
    }

    /// The backoff delay before jitter.
    fn raw_backoff(&self, attempt: u32) -> Nanos {
        match &self.backoff {
            Backoff::Immediate => 0,
            Backoff::Fixed(d) => *d,
            Backoff::Exponential { base, factor, cap } => {
                let d = *base as f64 * factor.powi(attempt.min(1000) as i32);
                if d >= *cap as f64 {
                    *cap
                } else {
                    d.round() as Nanos
                }
            }
        }
    }

    fn backoff_delay(&self, attempt: u32, prev_delay: Nanos, rng: &mut ChaCha8Rng) -> Nanos {
        let d = self.raw_backoff(attempt);
        match &self.jitter {
            Jitter::None => d,
            Jitter::Full => secs_to_nanos(rng.random::<f64>() * d as f64 / SECOND as f64),
            Jitter::Equal => d / 2 + secs_to_nanos(rng.random::<f64>() * (d / 2) as f64 / SECOND as f64),
            Jitter::Decorrelated => {
                let (base, cap) = match &self.backoff {
                    Backoff::Exponential { base, cap, .. } => (*base, *cap),
                    _ => (d, d),
                };
                let prev = if prev_delay == 0 { base } else { prev_delay };
                let hi = (prev as f64 * 3.0).max(base as f64);
                let x = base as f64 + rng.random::<f64>() * (hi - base as f64);
                (x.round() as Nanos).min(cap)
            }
            Jitter::Subtract(f) => secs_to_nanos(d as f64 / SECOND as f64 * (1.0 - f * rng.random::<f64>())),
            Jitter::Add(max) => d + secs_to_nanos(rng.random::<f64>() * *max as f64 / SECOND as f64),
        }
    }
}
