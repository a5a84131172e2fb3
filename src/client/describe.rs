//! A client's behaviour in one line of words (`client_behaviour` in
//! `summary.json`, `ratesim client explain`): every mechanism that shapes
//! the simulated traffic is named, and nothing that does not.

use super::{AboveCap, Backoff, ClientSpec, Jitter, Pacing, Reads, RetryAfter};
use crate::time::{format_decimal_seconds, format_duration, Nanos};

fn secs(ns: Nanos) -> String {
    format!("{}s", format_decimal_seconds(ns))
}

/// `408/409/429/5xx`: statuses below 500 one by one, the whole 5xx range as `5xx`.
fn statuses(list: &[u16]) -> String {
    let mut out: Vec<String> = list.iter().filter(|s| **s < 500).map(u16::to_string).collect();
    if list.iter().any(|s| *s >= 500) {
        if (500..=599).all(|s| list.contains(&s)) {
            out.push("5xx".into());
        } else {
            out.extend(list.iter().filter(|s| **s >= 500).map(u16::to_string));
        }
    }
    out.join("/")
}

impl ClientSpec {
    /// One line describing the behaviour, e.g. `3 attempts on 429/408/409/5xx;
    /// backoff 0.5s·2^n up to 8s, minus up to 25% jitter; honours
    /// retry-after-ms or Retry-After up to 2min (gives up above); obeys
    /// x-should-retry`.
    pub fn describe(&self) -> String {
        let mut out = self.describe_retries();
        if let Some(q) = &self.retry_quota {
            out.push_str(&format!(
                "; retry quota of {} per client (a retry costs {}, {} after throttling; a success refunds the cost, {} without retries)",
                q.capacity, q.retry_cost, q.throttling_cost, q.no_retry_refund
            ));
        }
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
            Some(Pacing::Cubic) => {
                out.push_str("; once throttled, paces itself with AWS's adaptive (CUBIC) rate limiter")
            }
            None => {}
        }
        out
    }

    fn describe_retries(&self) -> String {
        if let Some(m) = self.methods.as_ref().filter(|m| !m.retried.contains(&m.method)) {
            return format!(
                "1 attempt, no retries ({} is not retried on status; retried: {})",
                m.method,
                m.retried.join("/")
            );
        }
        if !self.retries_anything() {
            return "1 attempt, no retries".to_string();
        }
        let mut on = statuses(&self.retry_on);
        if !self.retry_codes.is_empty() {
            let codes: Vec<String> = self
                .retry_codes
                .iter()
                .map(|c| match c.status {
                    Some(s) => format!("{s} {}", c.code),
                    None => c.code.clone(),
                })
                .collect();
            let sep = if on.is_empty() { "" } else { ", " };
            // botocore's 16 codes would drown the line: name a few, count them all.
            let listed = if codes.len() > 4 {
                format!("{}/… ({} in all)", codes[..3].join("/"), codes.len())
            } else {
                codes.join("/")
            };
            on = format!("{on}{sep}error codes {listed}");
        }
        if !self.retry_on_with_retry_after.is_empty() {
            let sep = if on.is_empty() { "" } else { ", " };
            on = format!("{on}{sep}{} with Retry-After", statuses(&self.retry_on_with_retry_after));
        }
        if let Some(m) = &self.methods {
            on = format!("{on} ({} requests)", m.method);
        }
        let mut out = format!("{} attempts on {on}; {}", self.max_attempts, self.describe_backoff());
        let ra = self.describe_retry_after();
        out.push_str(&format!("; {ra}"));
        if self.reads.should_retry {
            out.push_str("; obeys x-should-retry");
        }
        out
    }

    fn describe_backoff(&self) -> String {
        let backoff = match &self.backoff {
            Backoff::Immediate => "retries at once".to_string(),
            Backoff::Fixed(d) => format!("retries after {}", secs(*d)),
            Backoff::Exponential { base, factor, cap } => {
                let up_to = if *cap == u64::MAX { String::new() } else { format!(" up to {}", secs(*cap)) };
                let other = match self.non_throttling_base {
                    Some(b) if b != *base => format!(" ({}·{factor}^n when not throttled)", secs(b)),
                    _ => String::new(),
                };
                format!("backoff {}·{factor}^n{up_to}{other}", secs(*base))
            }
            Backoff::Urllib3 { factor: 0, .. } => "retries at once".to_string(),
            Backoff::Urllib3 { factor, max } => {
                format!("first retry at once, then {}·2^n up to {}", secs(*factor), secs(*max))
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
        format!("{backoff}{jitter}")
    }

    fn describe_retry_after(&self) -> String {
        let what = if self.reads.retry_after_ms { "retry-after-ms or Retry-After" } else { "Retry-After" };
        let form = match self.reads {
            Reads::SECONDS => String::new(),
            r if r.unreadable_fails => format!(
                " ({}; anything else fails the request)",
                if r.http_date { "whole seconds or HTTP date" } else { "whole seconds" }
            ),
            r => match (r.fractional, r.http_date) {
                (true, true) => " (seconds, fractional or HTTP date)".into(),
                (true, false) => " (seconds, fractional)".into(),
                (false, true) => " (whole seconds or HTTP date)".into(),
                (false, false) => " (whole seconds)".into(),
            },
        };
        match &self.retry_after {
            RetryAfter::Ignore => "ignores Retry-After".to_string(),
            RetryAfter::MinOfBackoff { default } => {
                format!("waits min(Retry-After or {}, backoff)", format_duration(*default))
            }
            RetryAfter::Honour { cap, above_cap, zero_immediate } => {
                let zero = if *zero_immediate { "; 0 retries at once" } else { "" };
                match (cap, above_cap) {
                    (None, _) => format!("honours {what}{form}{zero}"),
                    (Some(c), AboveCap::Clamp) => format!("honours {what}{form} up to {}{zero}", format_duration(*c)),
                    (Some(c), AboveCap::GiveUp) => {
                        format!("honours {what}{form} up to {} (gives up above){zero}", format_duration(*c))
                    }
                    (Some(c), AboveCap::Backoff) => format!(
                        "honours {what}{form} when {} wait ≤ {}, else own backoff",
                        if *zero_immediate { "0 ≤" } else { "0 <" },
                        format_duration(*c)
                    ),
                }
            }
        }
    }
}
