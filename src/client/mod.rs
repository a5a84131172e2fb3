//! Client behaviour: what a client does when it meets a 429.
//!
//! A [`ClientSpec`] is plain data saying how a client retries: how many
//! attempts, which statuses and error codes, backoff and jitter, which retry
//! headers it reads and how it treats them, and what keeps it from retrying
//! or sending (an SRE retry budget, an AWS retry quota, adaptive throttling,
//! a client-side limiter). Named presets ([`PRESETS`], [`preset`]) reproduce
//! the SDKs people run, each checked against the source of the version it
//! names, and the clients shown on the provider pages; `--client` strings
//! are parsed by [`ClientSpec::parse`].
//!
//! ## What a client reads
//!
//! A client sees a [`Response`]: the status, the denying limit's error code
//! and the [`RetryHeaders`] the policy renders (`Retry-After`,
//! `retry-after-ms`, `x-should-retry`), exactly as
//! [`crate::policy::render`] writes them, never the engine's exact instant.
//! Each client reads them as its SDK does ([`Reads`]): the OpenAI and
//! Anthropic SDKs take `retry-after-ms` first, then `Retry-After` as
//! (fractional) seconds, then as an HTTP date, and obey `x-should-retry`
//! over their status rules; urllib3 reads whole seconds or an HTTP date and
//! fails the request on anything else.
//!
//! ## Randomness
//!
//! Delays are computed in floating point seconds (backoff formulas are
//! floating point in every SDK) and rounded to whole nanoseconds once; a
//! jittered delay draws exactly one uniform number from the client's own
//! ChaCha stream, so a run is reproducible draw for draw. Waits read from
//! headers are exact integers (nanoseconds).
//!
//! The stateful mechanisms live beside this module as plain data and
//! functions the simulator calls: [`quota`] (AWS's retry quota) and
//! [`cubic`] (AWS's adaptive CUBIC rate limiter); [`schedule`] replays a
//! scripted sequence of responses (`ratesim client explain`).

pub mod cubic;
mod describe;
mod parse;
mod presets;
pub mod quota;
pub mod schedule;

pub use presets::{preset, preset_names, PRESETS};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::policy::{status_listed, RetryAfterValue, RetryHeaders};
use crate::time::{Nanos, SECOND};

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
    /// urllib3's `Retry.get_backoff_time`: nothing before the first retry,
    /// then `min(max, backoff_factor · 2^n)`.
    Urllib3 {
        /// `backoff_factor`, as a duration.
        factor: Nanos,
        /// `backoff_max` (120 s by default).
        max: Nanos,
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
    /// `d · (1 - fraction · U(0,1))` (the OpenAI SDKs: fraction 0.25).
    Subtract(f64),
    /// `min(cap, d + U(0, max))` (tenacity's `wait_exponential_jitter`,
    /// the AICredits example: max 1 s).
    Add(Nanos),
}

/// What a client does with a `Retry-After` (or `retry-after-ms`) wait `w`
/// that it has read (see [`Reads`]).
#[derive(Clone, Debug, PartialEq)]
pub enum RetryAfter {
    /// Always use its own backoff.
    Ignore,
    /// Wait `w` when `0 < w <= cap`; otherwise as `above_cap` and `zero`
    /// say. A negative wait (an HTTP date in the past) and a missing header
    /// use the backoff.
    Honour {
        /// Longest wait accepted (`None`: any).
        cap: Option<Nanos>,
        /// What a wait above the cap does.
        above_cap: AboveCap,
        /// A wait of exactly 0 retries at once (openai-node) instead of
        /// using the backoff (the Python SDKs, urllib3).
        zero_immediate: bool,
    },
    /// `min(header or default, backoff)` (the predictions page's Node example).
    MinOfBackoff {
        /// What a missing header counts as.
        default: Nanos,
    },
}

/// What a `Retry-After` above a client's cap does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AboveCap {
    /// Wait the cap (urllib3 clamps to `retry_after_max`, 6 h).
    Clamp,
    /// Do not retry (openai-python 2.52 and later, above 120 s).
    GiveUp,
    /// Use the client's own backoff (openai-node, openai-python up to 2.51
    /// and anthropic-python up to 1.5, above 60 s).
    Backoff,
}

/// Which retry headers a client reads, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reads {
    /// Reads `retry-after-ms` before `Retry-After`.
    pub retry_after_ms: bool,
    /// Reads a `Retry-After` with a fraction (`0.25`); otherwise such a
    /// value is unreadable.
    pub fractional: bool,
    /// Reads a `Retry-After` HTTP date (wait = date − now); otherwise it is
    /// unreadable.
    pub http_date: bool,
    /// Obeys `x-should-retry: true|false` over its status rules.
    pub should_retry: bool,
    /// An unreadable `Retry-After` fails the request (urllib3 raises
    /// `InvalidHeader`); otherwise it counts as absent.
    pub unreadable_fails: bool,
}

impl Reads {
    /// Reads nothing but the status.
    pub const NOTHING: Reads = Reads {
        retry_after_ms: false,
        fractional: false,
        http_date: false,
        should_retry: false,
        unreadable_fails: false,
    };
    /// `Retry-After` as a number of seconds, whole or fractional (the page examples).
    pub const SECONDS: Reads = Reads { fractional: true, ..Reads::NOTHING };
    /// Stainless-generated SDKs (OpenAI, Anthropic): `retry-after-ms`, then
    /// `Retry-After` as seconds (fractional allowed), then as an HTTP date;
    /// `x-should-retry` obeyed.
    pub const STAINLESS: Reads =
        Reads { retry_after_ms: true, fractional: true, http_date: true, should_retry: true, unreadable_fails: false };
    /// urllib3's `Retry.parse_retry_after`: whole seconds or an HTTP date,
    /// anything else raises.
    pub const URLLIB3: Reads = Reads { http_date: true, unreadable_fails: true, ..Reads::NOTHING };
}

/// An error code a client retries, at any status or only at one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorCode {
    /// The code, e.g. `ThrottlingException`.
    pub code: String,
    /// Only with this status (botocore's legacy mode: 400); `None`: any.
    pub status: Option<u16>,
}

/// The HTTP method a client's requests use and the methods it retries on
/// status (urllib3's `allowed_methods`: idempotent methods only by default,
/// so a POST is never retried on status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Methods {
    /// The method of the client's requests (upper case).
    pub method: String,
    /// Methods retried on status.
    pub retried: Vec<String>,
}

/// Which responses count as throttling: for the AWS retry quota's cost and
/// backoff scale, and the CUBIC limiter (`pace=cubic`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttling {
    /// Statuses that are throttling (botocore: 429).
    pub statuses: Vec<u16>,
    /// Error codes that are throttling, at any status.
    pub codes: Vec<String>,
}

impl Throttling {
    /// Whether `r` is a throttling response.
    pub fn matches(&self, status: u16, code: &str) -> bool {
        status_listed(&self.statuses, status) || self.codes.iter().any(|c| c == code)
    }
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
    /// AWS's adaptive retry mode: a token bucket whose rate follows CUBIC,
    /// switched on by the first throttling response (see [`cubic`]).
    Cubic,
}

/// How a client behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientSpec {
    /// Preset or custom name, for reports.
    pub name: String,
    /// Where the behaviour comes from (SDK version and file, page line).
    pub origin: String,
    /// Attempts in all, the first included (1: never retry).
    pub max_attempts: u32,
    /// Statuses that are retried.
    pub retry_on: Vec<u16>,
    /// Error codes that are retried (AWS).
    pub retry_codes: Vec<ErrorCode>,
    /// Statuses retried only when the response carries `Retry-After`
    /// (urllib3: 413, 429, 503).
    pub retry_on_with_retry_after: Vec<u16>,
    /// The method rule of urllib3 clients; `None`: every method is retried.
    pub methods: Option<Methods>,
    /// Backoff schedule.
    pub backoff: Backoff,
    /// The exponential backoff's base after a response that is not
    /// throttling (botocore's standard mode: 50 ms instead of 1 s).
    pub non_throttling_base: Option<Nanos>,
    /// Jitter applied to the backoff.
    pub jitter: Jitter,
    /// Which retry headers it reads.
    pub reads: Reads,
    /// Treatment of `Retry-After`.
    pub retry_after: RetryAfter,
    /// What counts as throttling.
    pub throttling: Throttling,
    /// Optional AWS retry quota.
    pub retry_quota: Option<quota::RetryQuota>,
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
            retry_codes: vec![],
            retry_on_with_retry_after: vec![],
            methods: None,
            backoff: Backoff::Immediate,
            non_throttling_base: None,
            jitter: Jitter::None,
            reads: Reads::NOTHING,
            retry_after: RetryAfter::Ignore,
            throttling: Throttling { statuses: vec![429], codes: vec![] },
            retry_quota: None,
            retry_budget: None,
            adaptive: None,
            pacing: None,
        }
    }

    /// Whether the client can ever retry: more than one attempt and
    /// something it retries on.
    pub fn retries_anything(&self) -> bool {
        self.max_attempts > 1
            && (!self.retry_on.is_empty()
                || !self.retry_codes.is_empty()
                || !self.retry_on_with_retry_after.is_empty()
                || self.reads.should_retry)
    }
}

/// A response as a client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// HTTP status.
    pub status: u16,
    /// The error code of the body (the denying limit's `code`; AWS
    /// clients retry on some), empty when none.
    pub code: &'a str,
    /// The retry headers, as the policy renders them.
    pub headers: RetryHeaders,
    /// When the client reads it (an HTTP date is relative to this).
    pub now: Nanos,
}

/// What a client decides after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryChoice {
    /// Try again after this delay.
    After(Nanos),
    /// Stop: the request fails.
    GiveUp,
}

/// Why a client decided what it did (for `ratesim client explain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// No attempts left.
    OutOfAttempts,
    /// `x-should-retry: false`.
    ServerSaidNo,
    /// The status (and code) is not one it retries, or its method is not retried.
    NotRetried,
    /// The `Retry-After` could not be read, and that fails the request.
    UnreadableRetryAfter,
    /// The wait asked for is above the cap, and the client gives up there.
    RetryAfterAboveCap,
    /// Waits what the header says (`Retry-After` or `retry-after-ms`).
    HonoursHeader,
    /// Waits the cap (the header asked for more).
    ClampedToCap,
    /// Header `Retry-After: 0` (or `retry-after-ms: 0`): at once.
    ZeroImmediate,
    /// Its own backoff, with the reason it did not use a header.
    Backoff(BackoffReason),
    /// The smaller of header (or default) and backoff.
    MinOfBackoff,
}

/// Why a client used its own backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackoffReason {
    /// It ignores `Retry-After`.
    Ignores,
    /// No header it reads.
    NoHeader,
    /// The wait was zero or negative.
    NotPositive,
    /// The wait was above its cap.
    AboveCap,
}

/// A wait read from the headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hint {
    Absent,
    Unreadable,
    /// Nanoseconds; negative for an HTTP date in the past.
    Wait(i128),
}

impl Reads {
    /// The wait the headers ask for, read in this client's order.
    #[inline]
    fn wait(&self, h: &RetryHeaders, now: Nanos) -> Hint {
        if let (true, Some(ms)) = (self.retry_after_ms, h.retry_after_ms) {
            return Hint::Wait(ms as i128 * 1_000_000);
        }
        match h.retry_after {
            None => Hint::Absent,
            Some(RetryAfterValue::Seconds(s)) => Hint::Wait(s as i128 * SECOND as i128),
            Some(RetryAfterValue::Millis(ms)) if self.fractional => Hint::Wait(ms as i128 * 1_000_000),
            Some(RetryAfterValue::Date(s)) if self.http_date => Hint::Wait(s as i128 * SECOND as i128 - now as i128),
            Some(_) => Hint::Unreadable,
        }
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

impl ClientSpec {
    /// The decision after attempt `attempt` (0-based) failed with
    /// `response`. `prev_delay` is the previous delay (for decorrelated
    /// jitter); a jittered backoff draws one number from `rng`.
    #[inline]
    pub fn after_failure(
        &self,
        attempt: u32,
        response: &Response,
        prev_delay: Nanos,
        rng: &mut ChaCha8Rng,
    ) -> RetryChoice {
        self.decide(attempt, response, prev_delay, &mut || rng.random::<f64>()).0
    }

    /// Whether this client retries `response` at all (attempts aside):
    /// `x-should-retry` if it obeys one, else its method, status and code rules.
    #[inline]
    pub fn retries(&self, r: &Response) -> bool {
        if let (true, Some(b)) = (self.reads.should_retry, r.headers.should_retry) {
            return b;
        }
        if let Some(m) = &self.methods {
            if !m.retried.contains(&m.method) {
                return false;
            }
        }
        status_listed(&self.retry_on, r.status)
            || self.retry_codes.iter().any(|c| c.code == r.code && c.status.is_none_or(|s| s == r.status))
            || (r.headers.retry_after.is_some() && status_listed(&self.retry_on_with_retry_after, r.status))
    }

    /// [`ClientSpec::after_failure`] with the reason, drawing uniform
    /// numbers in `[0, 1)` from `draw` (a constant 0 or 1 gives the bounds
    /// of the jitter).
    #[inline]
    pub fn decide<D: FnMut() -> f64>(
        &self,
        attempt: u32,
        r: &Response,
        prev_delay: Nanos,
        draw: &mut D,
    ) -> (RetryChoice, Why) {
        if attempt.saturating_add(1) >= self.max_attempts {
            return (RetryChoice::GiveUp, Why::OutOfAttempts);
        }
        if !self.retries(r) {
            let why = if self.reads.should_retry && r.headers.should_retry == Some(false) {
                Why::ServerSaidNo
            } else {
                Why::NotRetried
            };
            return (RetryChoice::GiveUp, why);
        }
        // Only botocore's backoff depends on it.
        let throttling = self.non_throttling_base.is_none() || self.throttling.matches(r.status, r.code);
        let reason = match self.header_wait(r) {
            Ok(decided) => return decided,
            Err(reason) => reason,
        };
        match (&self.retry_after, reason) {
            (RetryAfter::MinOfBackoff { default }, _) => {
                let h = match self.reads.wait(&r.headers, r.now) {
                    Hint::Wait(w) => w.clamp(0, u64::MAX as i128) as Nanos,
                    Hint::Absent | Hint::Unreadable => *default,
                };
                (RetryChoice::After(h.min(self.raw_backoff(attempt, throttling))), Why::MinOfBackoff)
            }
            _ => (RetryChoice::After(self.backoff_delay(attempt, prev_delay, throttling, draw)), Why::Backoff(reason)),
        }
    }

    /// What the retry headers decide for a retried response: a wait or a
    /// give-up (`Ok`), or why the client uses its own backoff (`Err`).
    #[inline]
    fn header_wait(&self, r: &Response) -> Result<(RetryChoice, Why), BackoffReason> {
        let RetryAfter::Honour { cap, above_cap, zero_immediate } = &self.retry_after else {
            return Err(BackoffReason::Ignores);
        };
        let w = match self.reads.wait(&r.headers, r.now) {
            Hint::Unreadable if self.reads.unreadable_fails => {
                return Ok((RetryChoice::GiveUp, Why::UnreadableRetryAfter))
            }
            Hint::Absent | Hint::Unreadable => return Err(BackoffReason::NoHeader),
            Hint::Wait(w) => w,
        };
        match cap {
            Some(c) if w > *c as i128 => match above_cap {
                AboveCap::GiveUp => Ok((RetryChoice::GiveUp, Why::RetryAfterAboveCap)),
                AboveCap::Clamp => Ok((RetryChoice::After(*c), Why::ClampedToCap)),
                AboveCap::Backoff => Err(BackoffReason::AboveCap),
            },
            _ if w == 0 && *zero_immediate => Ok((RetryChoice::After(0), Why::ZeroImmediate)),
            _ if w <= 0 => Err(BackoffReason::NotPositive),
            _ => Ok((RetryChoice::After(w.min(u64::MAX as i128) as Nanos), Why::HonoursHeader)),
        }
    }

    /// Whether the client reads any retry header (if not, the simulator
    /// need not compute them).
    pub fn reads_retry_headers(&self) -> bool {
        !matches!(self.retry_after, RetryAfter::Ignore)
            || self.reads.should_retry
            || !self.retry_on_with_retry_after.is_empty()
    }

    /// The backoff delay before retry `attempt` (0-based), before jitter.
    fn raw_backoff(&self, attempt: u32, throttling: bool) -> Nanos {
        let exponential = |base: Nanos, factor: f64, cap: Nanos| {
            let d = base as f64 * factor.powi(attempt.min(1000) as i32);
            if d >= cap as f64 {
                cap
            } else {
                d.round() as Nanos
            }
        };
        match &self.backoff {
            Backoff::Immediate => 0,
            Backoff::Fixed(d) => *d,
            Backoff::Exponential { base, factor, cap } => {
                let base = if throttling { *base } else { self.non_throttling_base.unwrap_or(*base) };
                exponential(base, *factor, *cap)
            }
            Backoff::Urllib3 { factor, max } if attempt > 0 => exponential(*factor, 2.0, *max),
            Backoff::Urllib3 { .. } => 0,
        }
    }

    /// The backoff's upper bound (for the cap of [`Jitter::Add`] and
    /// [`Jitter::Decorrelated`]).
    fn backoff_cap(&self) -> Option<Nanos> {
        match &self.backoff {
            Backoff::Exponential { cap, .. } => Some(*cap),
            Backoff::Urllib3 { max, .. } => Some(*max),
            Backoff::Immediate | Backoff::Fixed(_) => None,
        }
    }

    #[inline]
    fn backoff_delay<D: FnMut() -> f64>(
        &self,
        attempt: u32,
        prev_delay: Nanos,
        throttling: bool,
        draw: &mut D,
    ) -> Nanos {
        let d = self.raw_backoff(attempt, throttling);
        match &self.jitter {
            Jitter::None => d,
            Jitter::Full => secs_to_nanos(draw() * d as f64 / SECOND as f64),
            Jitter::Equal => d / 2 + secs_to_nanos(draw() * (d / 2) as f64 / SECOND as f64),
            Jitter::Decorrelated => {
                let (base, cap) = match &self.backoff {
                    Backoff::Exponential { base, cap, .. } => (*base, *cap),
                    _ => (d, d),
                };
                let prev = if prev_delay == 0 { base } else { prev_delay };
                let hi = (prev as f64 * 3.0).max(base as f64);
                let x = base as f64 + draw() * (hi - base as f64);
                (x.round() as Nanos).min(cap)
            }
            Jitter::Subtract(f) => secs_to_nanos(d as f64 / SECOND as f64 * (1.0 - f * draw())),
            Jitter::Add(max) => d
                .saturating_add(secs_to_nanos(draw() * *max as f64 / SECOND as f64))
                .min(self.backoff_cap().unwrap_or(u64::MAX)),
        }
    }
}
