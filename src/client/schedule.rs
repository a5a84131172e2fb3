//! Replaying a scripted sequence of responses against a client: which
//! attempts it makes, when (with the bounds of its jitter), and why it
//! stops. `ratesim client explain` prints this; the tests check every
//! preset's schedule against its SDK's source with it.
//!
//! A script is a comma-separated list of responses, one per attempt:
//! `STATUS` followed by `:`-separated attributes:
//!
//! | attribute | meaning |
//! |---|---|
//! | `RA=89`, `RA=0.5` | `Retry-After: 89` (whole or fractional seconds, written as given) |
//! | `RA-date=89` | `Retry-After` as an HTTP date 89 s after the response, rounded up to the second |
//! | `ms=1500` | `retry-after-ms: 1500` |
//! | `should-retry=false` | `x-should-retry: false` (or `true`) |
//! | `code=ThrottlingException` | the error code of the body |
//!
//! e.g. `429:RA=89,429,200`. A status below 400 is a success.
//!
//! The replay follows two paths through the client's jitter: every uniform
//! draw 0 on one, 1 on the other, which bound every delay (each jitter is
//! monotonic in its draw). The AWS retry quota starts full; retry budgets,
//! adaptive throttling and pacing depend on the key's traffic and are not
//! replayed.

use super::{ClientSpec, Response, RetryChoice, Why};
use crate::policy::{RetryAfterValue, RetryHeaders};
use crate::time::{ceil_seconds, Nanos, SECOND};

/// The instant the first attempt is sent (2026-01-01T00:00:00Z).
pub const SCRIPT_START: Nanos = 1_767_225_600 * SECOND;

/// One scripted response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scripted {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` as written.
    pub retry_after: Option<RetryAfterValue>,
    /// `Retry-After` as an HTTP date this many seconds after the response.
    pub retry_after_date_in: Option<u64>,
    /// `retry-after-ms`.
    pub retry_after_ms: Option<u64>,
    /// `x-should-retry`.
    pub should_retry: Option<bool>,
    /// The body's error code.
    pub code: String,
}

impl Scripted {
    /// A bare response with this status.
    pub fn status(status: u16) -> Scripted {
        Scripted {
            status,
            retry_after: None,
            retry_after_date_in: None,
            retry_after_ms: None,
            should_retry: None,
            code: String::new(),
        }
    }

    /// The headers a client receives at `now`.
    pub fn headers(&self, now: Nanos) -> RetryHeaders {
        let date = self
            .retry_after_date_in
            .map(|s| RetryAfterValue::Date(ceil_seconds(now.saturating_add(s.saturating_mul(SECOND)))));
        RetryHeaders {
            retry_after: date.or(self.retry_after),
            retry_after_ms: self.retry_after_ms,
            should_retry: self.should_retry,
        }
    }

    /// The response as written in a script (`429:RA=89`).
    pub fn label(&self) -> String {
        let mut out = self.status.to_string();
        if let Some(v) = self.retry_after {
            out.push_str(&format!(":RA={}", v.to_header()));
        }
        if let Some(s) = self.retry_after_date_in {
            out.push_str(&format!(":RA-date={s}"));
        }
        if let Some(ms) = self.retry_after_ms {
            out.push_str(&format!(":ms={ms}"));
        }
        if let Some(b) = self.should_retry {
            out.push_str(&format!(":should-retry={b}"));
        }
        if !self.code.is_empty() {
            out.push_str(&format!(":code={}", self.code));
        }
        out
    }
}

/// Parses a script such as `429:RA=89,429,200`.
pub fn parse_script(text: &str) -> Result<Vec<Scripted>, String> {
    let mut out = Vec::new();
    for (i, item) in text.split(',').enumerate() {
        let n = i + 1;
        let mut parts = item.trim().split(':');
        let status = parts.next().unwrap_or("");
        let status = status
            .parse::<u16>()
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| format!("response {n}: expected an HTTP status from 100 to 599, found {status:?}"))?;
        let mut r = Scripted::status(status);
        for attr in parts {
            let (k, v) = attr.split_once('=').ok_or_else(|| {
                format!("response {n}: expected NAME=VALUE after the status (RA=89, RA-date=89, ms=1500, should-retry=false, code=CODE), found {attr:?}")
            })?;
            let bad = |what: &str| format!("response {n}: `{k}` expects {what}, found {v:?}");
            match k {
                "RA" => {
                    r.retry_after = Some(
                        RetryAfterValue::parse(v)
                            .filter(|v| !matches!(v, RetryAfterValue::Date(_)))
                            .ok_or_else(|| bad("seconds, whole or with up to 3 decimals (use RA-date=S for a date)"))?,
                    )
                }
                "RA-date" => {
                    r.retry_after_date_in = Some(v.parse().map_err(|_| bad("whole seconds after the response"))?)
                }
                "ms" => r.retry_after_ms = Some(v.parse().map_err(|_| bad("whole milliseconds"))?),
                "should-retry" => {
                    r.should_retry = Some(match v {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad("true or false")),
                    })
                }
                "code" if !v.is_empty() => r.code = v.to_string(),
                "code" => return Err(bad("an error code such as ThrottlingException")),
                _ => {
                    return Err(format!(
                        "response {n}: unknown attribute `{k}`; expected RA, RA-date, ms, should-retry or code"
                    ))
                }
            }
        }
        if r.retry_after.is_some() && r.retry_after_date_in.is_some() {
            return Err(format!("response {n}: give RA or RA-date, not both (both are Retry-After)"));
        }
        out.push(r);
    }
    Ok(out)
}

/// What the client did after one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The attempt succeeded.
    Succeeded,
    /// Retries after a delay between `lo` and `hi` (the jitter's bounds).
    Retries {
        /// Shortest delay.
        lo: Nanos,
        /// Longest delay.
        hi: Nanos,
        /// Why this delay.
        why: Why,
    },
    /// Stops; the request fails.
    GivesUp(Why),
    /// The retry quota holds less than the retry costs: no retry.
    QuotaEmpty {
        /// Tokens left.
        available: u32,
        /// The retry's cost.
        cost: u32,
    },
}

/// One attempt of a replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// 0-based attempt.
    pub attempt: u32,
    /// When it is sent, after the first attempt: shortest and longest.
    pub at: (Nanos, Nanos),
    /// The scripted response it gets.
    pub response: Scripted,
    /// What the client does then.
    pub outcome: Outcome,
    /// The retry quota's tokens after this step (clients with a quota).
    pub quota: Option<u32>,
}

/// Replays `script` against `spec`: one step per attempt, until the client
/// succeeds, gives up, or the script ends.
pub fn replay(spec: &ClientSpec, script: &[Scripted]) -> Vec<Step> {
    let mut steps = Vec::new();
    // Each path: when its attempt is sent (after the first) and its previous delay.
    let mut paths = [(0u64, 0u64); 2];
    let mut quota = spec.retry_quota.map(|q| q.new_state());
    let mut last_cost = 0;
    for (attempt, r) in (0u32..).zip(script) {
        let (a0, a1) = (paths[0].0, paths[1].0);
        let mut step = Step {
            attempt,
            at: (a0.min(a1), a0.max(a1)),
            response: r.clone(),
            outcome: Outcome::Succeeded,
            quota: None,
        };
        if r.status < 400 {
            if let (Some(q), Some(s)) = (&spec.retry_quota, &mut quota) {
                s.succeeded(q, last_cost);
            }
            step.quota = quota.map(|s| s.available);
            steps.push(step);
            break;
        }
        let mut choices = [RetryChoice::GiveUp; 2];
        let mut why = Why::OutOfAttempts;
        for (i, (at, prev)) in paths.iter().enumerate() {
            let now = SCRIPT_START.saturating_add(*at);
            let response = Response { status: r.status, code: &r.code, headers: r.headers(now), now };
            let draw = i as f64;
            (choices[i], why) = spec.decide(attempt, &response, *prev, &mut || draw);
        }
        step.outcome = match choices {
            [RetryChoice::After(a), RetryChoice::After(b)] => Outcome::Retries { lo: a.min(b), hi: a.max(b), why },
            _ => Outcome::GivesUp(why),
        };
        if let (Outcome::Retries { .. }, Some(q), Some(s)) = (step.outcome, &spec.retry_quota, &mut quota) {
            let cost = q.cost(spec.throttling.matches(r.status, &r.code));
            if s.acquire(cost) {
                last_cost = cost;
            } else {
                step.outcome = Outcome::QuotaEmpty { available: s.available, cost };
            }
        }
        step.quota = quota.map(|s| s.available);
        let retries = matches!(step.outcome, Outcome::Retries { .. });
        steps.push(step);
        if !retries {
            break;
        }
        for (path, choice) in paths.iter_mut().zip(choices) {
            if let RetryChoice::After(d) = choice {
                *path = (path.0.saturating_add(d), d);
            }
        }
    }
    steps
}
