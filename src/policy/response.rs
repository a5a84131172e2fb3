//! Rendering decisions as HTTP responses, as the policy's `[response]` says.
//!
//! Nothing about a provider's headers is hard-coded: names (and their case),
//! the reset format (Unix timestamp or seconds until reset), which statuses
//! carry `Retry-After`, extra headers such as `X-RateLimit-Reset-After`, the
//! IETF `RateLimit` / `RateLimit-Policy` fields, and the JSON error body all
//! come from the policy file.
//!
//! ## Body templates
//!
//! A body is a JSON document whose strings may hold placeholders. A string
//! that is exactly one placeholder becomes a JSON value of the placeholder's
//! type (`"{limit}"` → `60`); inside longer strings placeholders are
//! substituted as text (`"{used}/{limit} predictions running."`).
//!
//! | placeholder | value |
//! |---|---|
//! | `{status}` | HTTP status (number) |
//! | `{code}`, `{message}` | the denying limit's code and message |
//! | `{limit_id}` | the denying limit's id |
//! | `{limit}`, `{remaining}`, `{used}` | the limit's capacity, what remains, `limit - remaining` |
//! | `{header_limit}` | what the limit header advertises: the limit's `header_limit` if set, else its capacity |
//! | `{reset}` | reset as a Unix timestamp in seconds (rounded up) |
//! | `{reset_at}` | reset as RFC 3339 (rounded up to the second) |
//! | `{reset_after}` | seconds until reset (rounded up) |
//! | `{retry_after}` | seconds until the request would be admitted (rounded up), `null` if unknown |
//! | `{provider}`, `{plan}` | names from the policy |
//!
//! Seconds are always rounded *up*: waiting the advertised number of whole
//! seconds is always enough.
//!
//! ## Retry headers
//!
//! What a client reads to decide whether and when to retry is computed in
//! one place, [`retry_headers`], and written by [`render`]; the simulator
//! hands the same [`RetryHeaders`] to its client models, so a simulated SDK
//! reads exactly what a real one would receive:
//!
//! - `Retry-After` (name from `retry_after_header`) on the statuses of
//!   `retry_after_on`, in the `retry_after_format`: whole seconds rounded up
//!   (at least 1, RFC 9110's delta-seconds, the default), whole seconds
//!   rounded down (`seconds-floor`: `0` for a wait under a second, as
//!   servers that truncate send it), seconds rounded up to the millisecond
//!   (`fractional`: `0.25`; not RFC 9110, but the OpenAI and Anthropic SDKs
//!   read it), or the retry instant as an HTTP date rounded up to the second
//!   (`http-date`: `Thu, 01 Jan 2026 00:00:03 GMT`).
//! - `retry-after-ms` (with `retry_after_ms = true`): the same wait in
//!   milliseconds, rounded up, on the same statuses.
//! - `x-should-retry` (with `x_should_retry`): on every denial, `false` when
//!   the request can never be admitted (or, with a duration, when the retry
//!   is further away than that), else `true`.

use std::time::{Duration, UNIX_EPOCH};

use crate::engines::{Engine, Retry};
use crate::policy::{Plan, PlanDecision, Policy};
use crate::time::{ceil_seconds, format_rfc3339, Nanos, MILLISECOND, SECOND};

/// How a reset instant is written in the reset header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetFormat {
    /// Unix timestamp in seconds, rounded up (`1714502460`).
    Unix,
    /// Seconds until the reset, rounded up (`35`).
    Seconds,
}

/// How the `Retry-After` header writes the wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfterFormat {
    /// Whole seconds rounded up, at least 1 (`Retry-After: 3`).
    Seconds,
    /// Whole seconds rounded down: `0` for a wait under a second.
    SecondsFloor,
    /// Seconds rounded up to the millisecond (`Retry-After: 0.25`).
    Fractional,
    /// The retry instant as an HTTP date (IMF-fixdate), rounded up to the second.
    HttpDate,
}

/// When denials carry `x-should-retry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShouldRetry {
    /// Never sent.
    Off,
    /// On every denial: `false` when the request can never be admitted, else `true`.
    On,
    /// On every denial: `false` when the request can never be admitted or
    /// would be admitted only later than this, else `true` (a quota that
    /// resets next month: tell clients not to retry).
    Within(Nanos),
}

/// The `[response]` section of a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponseStyle {
    /// Whether admitted responses carry rate-limit headers (else only denials).
    pub headers_on_allowed: bool,
    /// Whether the `X-RateLimit-*` style headers are sent.
    pub x_ratelimit: bool,
    /// Header carrying the limit (default `X-RateLimit-Limit`).
    pub limit_header: String,
    /// Header carrying the remaining units (default `X-RateLimit-Remaining`).
    pub remaining_header: String,
    /// Header carrying the reset (default `X-RateLimit-Reset`).
    pub reset_header: String,
    /// Format of the reset header (default Unix timestamp).
    pub reset_format: ResetFormat,
    /// An extra header with seconds until reset, e.g. `X-RateLimit-Reset-After`.
    pub reset_after_header: Option<String>,
    /// The retry header's name (default `Retry-After`).
    pub retry_after_header: String,
    /// Statuses that carry the retry header (default `[429]`).
    pub retry_after_on: Vec<u16>,
    /// A retry hint sent when the engine cannot know when to retry
    /// (concurrency without leases); none by default.
    pub retry_after_unknown: Option<Nanos>,
    /// How `Retry-After` writes the wait (default whole seconds rounded up).
    pub retry_after_format: RetryAfterFormat,
    /// Whether `retry-after-ms` is sent beside `Retry-After`.
    pub retry_after_ms: bool,
    /// Whether (and when) denials carry `x-should-retry`.
    pub x_should_retry: ShouldRetry,
    /// Whether the IETF `RateLimit` and `RateLimit-Policy` fields are sent.
    pub ietf: bool,
    /// The default JSON body template of denials.
    pub body: Option<serde_json::Value>,
}

impl Default for ResponseStyle {
    fn default() -> Self {
        ResponseStyle {
            headers_on_allowed: true,
            x_ratelimit: true,
            limit_header: "X-RateLimit-Limit".into(),
            remaining_header: "X-RateLimit-Remaining".into(),
            reset_header: "X-RateLimit-Reset".into(),
            reset_format: ResetFormat::Unix,
            reset_after_header: None,
            retry_after_header: "Retry-After".into(),
            retry_after_on: vec![429],
            retry_after_unknown: None,
            retry_after_format: RetryAfterFormat::Seconds,
            retry_after_ms: false,
            x_should_retry: ShouldRetry::Off,
            ietf: false,
            body: Some(serde_json::json!({
                "error": {"code": "{code}", "message": "{message}", "status": "{status}", "retry_after": "{retry_after}"}
            })),
        }
    }
}

/// An HTTP answer: status, headers in order, and a body for denials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// 200 when admitted, else the denying limit's status.
    pub status: u16,
    /// Header names (as the policy writes them) and values.
    pub headers: Vec<(String, String)>,
    /// JSON body of a denial; `None` when admitted.
    pub body: Option<String>,
}

impl Rendered {
    /// The value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Renders `decision` (made at `now` against `plan` of `policy`).
pub fn render(policy: &Policy, plan: &Plan, decision: &PlanDecision, now: Nanos) -> Rendered {
    let style = &policy.response;
    let mut headers = Vec::new();
    let reported = decision.reported.map(|(i, d)| (&plan.limits[i], d));
    if let Some((limit, d)) = reported.filter(|_| style.headers_on_allowed || !decision.allowed) {
        // A limit that never resets (a lifetime budget) sends no reset.
        let resets = d.reset != Nanos::MAX;
        let reset_after = ceil_seconds(d.reset.saturating_sub(now));
        if style.x_ratelimit {
            let reset = match limit.reset_format.unwrap_or(style.reset_format) {
                ResetFormat::Unix => ceil_seconds(d.reset),
                ResetFormat::Seconds => reset_after,
            };
            headers.push((style.limit_header.clone(), limit.header_limit.unwrap_or(d.limit).to_string()));
            headers.push((style.remaining_header.clone(), d.remaining.to_string()));
            if resets {
                headers.push((style.reset_header.clone(), reset.to_string()));
                if let Some(h) = &style.reset_after_header {
                    headers.push((h.clone(), reset_after.to_string()));
                }
            }
        }
        if style.ietf {
            if let Some((q, w)) = quota_window(&limit.engine) {
                headers.push(("RateLimit-Policy".into(), format!("\"{}\";q={q};w={w}", limit.id)));
            }
            let t = if resets { format!(";t={reset_after}") } else { String::new() };
            headers.push(("RateLimit".into(), format!("\"{}\";r={}{t}", limit.id, d.remaining)));
        }
    }
    let retry_after = retry_wait(decision.retry, now, style.retry_after_unknown).map(|w| ceil_seconds(w).max(1));
    retry_headers(style, decision, now).write(style, &mut headers);
    let body = match (decision.allowed, decision.denied_by) {
        (false, Some(i)) => {
            let limit = &plan.limits[i];
            let d = decision.denial.expect("a denial carries the binding limit's decision");
            let template = limit.body.as_ref().or(style.body.as_ref());
            template.map(|t| {
                let fill = |name: &str| -> Option<serde_json::Value> {
                    use serde_json::Value;
                    Some(match name {
                        "status" => Value::from(decision.status),
                        "code" => Value::from(limit.code.as_str()),
                        "message" => Value::from(limit.message.as_str()),
                        "limit_id" => Value::from(limit.id.as_str()),
                        "limit" => Value::from(d.limit),
                        "header_limit" => Value::from(limit.header_limit.unwrap_or(d.limit)),
                        "remaining" => Value::from(d.remaining),
                        "used" => Value::from(d.limit.saturating_sub(d.remaining)),
                        // A limit that never resets (a lifetime budget) has no reset.
                        "reset" | "reset_at" | "reset_after" if d.reset == Nanos::MAX => Value::Null,
                        "reset" => Value::from(ceil_seconds(d.reset)),
                        "reset_at" => Value::from(format_rfc3339(ceil_seconds(d.reset).saturating_mul(SECOND))),
                        "reset_after" => Value::from(ceil_seconds(d.reset.saturating_sub(now))),
                        "retry_after" => retry_after.map_or(Value::Null, Value::from),
                        "provider" => Value::from(policy.provider.as_str()),
                        "plan" => Value::from(plan.name.as_str()),
                        _ => return None,
                    })
                };
                let mut out = Vec::with_capacity(256);
                write_template(t, &fill, &mut out);
                String::from_utf8(out).expect("serde_json writes UTF-8")
            })
        }
        _ => None,
    };
    Rendered { status: decision.status, headers, body }
}

/// A `Retry-After` value as a response carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfterValue {
    /// Whole seconds (`3`).
    Seconds(u64),
    /// Seconds with a fraction, in milliseconds (`250` is written `0.25`);
    /// never a whole number of seconds (that is [`RetryAfterValue::Seconds`]).
    Millis(u64),
    /// An HTTP date, as Unix seconds.
    Date(u64),
}

impl RetryAfterValue {
    /// The header value: `3`, `0.25`, `Thu, 01 Jan 2026 00:00:03 GMT`.
    pub fn to_header(self) -> String {
        match self {
            RetryAfterValue::Seconds(s) => s.to_string(),
            RetryAfterValue::Millis(ms) => {
                let frac = format!("{:03}", ms % 1000);
                format!("{}.{}", ms / 1000, frac.trim_end_matches('0'))
            }
            RetryAfterValue::Date(s) => httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(s)),
        }
    }

    /// Reads a header value written by [`RetryAfterValue::to_header`] (or
    /// by a server): whole seconds, seconds with up to three decimals, or an
    /// HTTP date (IMF-fixdate, RFC 850 or asctime). `None` for anything else.
    pub fn parse(text: &str) -> Option<RetryAfterValue> {
        let t = text.trim();
        if let Some((whole, frac)) = t.split_once('.') {
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !digits(whole) || !digits(frac) || frac.len() > 3 {
                return None;
            }
            let ms = whole.parse::<u64>().ok()?.checked_mul(1000)?.checked_add(format!("{frac:0<3}").parse().ok()?)?;
            return Some(if ms % 1000 == 0 {
                RetryAfterValue::Seconds(ms / 1000)
            } else {
                RetryAfterValue::Millis(ms)
            });
        }
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return t.parse().ok().map(RetryAfterValue::Seconds);
        }
        let at = httpdate::parse_http_date(t).ok()?;
        at.duration_since(UNIX_EPOCH).ok().map(|d| RetryAfterValue::Date(d.as_secs()))
    }

    /// The wait this value asks for, in seconds, for a client reading it at
    /// `now` (an HTTP date in the past gives a negative wait).
    pub fn seconds(self, now: Nanos) -> f64 {
        match self {
            RetryAfterValue::Seconds(s) => s as f64,
            RetryAfterValue::Millis(ms) => ms as f64 / 1000.0,
            RetryAfterValue::Date(s) => (s as f64 * SECOND as f64 - now as f64) / SECOND as f64,
        }
    }
}

/// The headers of a response that tell a client whether and when to retry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryHeaders {
    /// `Retry-After` (under the policy's name for it).
    pub retry_after: Option<RetryAfterValue>,
    /// `retry-after-ms`.
    pub retry_after_ms: Option<u64>,
    /// `x-should-retry`.
    pub should_retry: Option<bool>,
}

/// The `retry-after-ms` header's name (the OpenAI and Anthropic APIs' spelling).
pub const RETRY_AFTER_MS: &str = "retry-after-ms";
/// The `x-should-retry` header's name.
pub const X_SHOULD_RETRY: &str = "x-should-retry";

impl RetryHeaders {
    /// Appends the headers present, in the order `Retry-After`,
    /// `retry-after-ms`, `x-should-retry`.
    pub fn write(&self, style: &ResponseStyle, headers: &mut Vec<(String, String)>) {
        if let Some(v) = self.retry_after {
            headers.push((style.retry_after_header.clone(), v.to_header()));
        }
        if let Some(ms) = self.retry_after_ms {
            headers.push((RETRY_AFTER_MS.into(), ms.to_string()));
        }
        if let Some(b) = self.should_retry {
            headers.push((X_SHOULD_RETRY.into(), b.to_string()));
        }
    }

    /// Reads the retry headers from a response's headers (names compared
    /// case-insensitively; `retry_after_name` is the policy's name for
    /// `Retry-After`). Values that are not what [`RetryHeaders::write`]
    /// writes are left out.
    pub fn read(headers: &[(String, String)], retry_after_name: &str) -> RetryHeaders {
        let get = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim());
        RetryHeaders {
            retry_after: get(retry_after_name).and_then(RetryAfterValue::parse),
            retry_after_ms: get(RETRY_AFTER_MS).and_then(|v| v.parse().ok()),
            should_retry: get(X_SHOULD_RETRY).and_then(|v| match v {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }),
        }
    }
}

/// The retry headers of the response to `decision` (made at `now`): none
/// when admitted; `Retry-After` and `retry-after-ms` on the statuses the
/// policy puts them on when the retry instant is known (or hinted);
/// `x-should-retry` on every denial when the policy sends it.
#[inline]
pub fn retry_headers(style: &ResponseStyle, decision: &PlanDecision, now: Nanos) -> RetryHeaders {
    let mut out = RetryHeaders::default();
    if decision.allowed {
        return out;
    }
    if status_listed(&style.retry_after_on, decision.status) {
        if let Some(wait) = retry_wait(decision.retry, now, style.retry_after_unknown) {
            out.retry_after = Some(match style.retry_after_format {
                RetryAfterFormat::Seconds => RetryAfterValue::Seconds(ceil_seconds(wait).max(1)),
                RetryAfterFormat::SecondsFloor => RetryAfterValue::Seconds(wait / SECOND),
                RetryAfterFormat::Fractional => match wait.div_ceil(MILLISECOND).max(1) {
                    ms if ms % 1000 == 0 => RetryAfterValue::Seconds(ms / 1000),
                    ms => RetryAfterValue::Millis(ms),
                },
                RetryAfterFormat::HttpDate => RetryAfterValue::Date(ceil_seconds(now.saturating_add(wait))),
            });
            if style.retry_after_ms {
                out.retry_after_ms = Some(wait.div_ceil(MILLISECOND).max(1));
            }
        }
    }
    out.should_retry = match style.x_should_retry {
        ShouldRetry::Off => None,
        ShouldRetry::On => Some(decision.retry != Retry::Never),
        ShouldRetry::Within(limit) => Some(match decision.retry {
            Retry::Never => false,
            Retry::At(t) => t.saturating_sub(now) <= limit,
            Retry::Now | Retry::Unknown => true,
        }),
    };
    out
}

/// Whether `status` is in `statuses`: a loop the compiler inlines, not
/// `contains` (a call into the generic slice search). Lists of statuses are
/// short and checked on every denial, by the policy and by clients.
#[inline]
pub(crate) fn status_listed(statuses: &[u16], status: u16) -> bool {
    #[allow(clippy::manual_contains)]
    statuses.iter().any(|&s| s == status)
}

/// How long a client should wait (exact), or the policy's hint when the
/// engine cannot know; `None` when there is nothing to wait for.
fn retry_wait(retry: Retry, now: Nanos, unknown_hint: Option<Nanos>) -> Option<Nanos> {
    match retry {
        Retry::At(t) => Some(t.saturating_sub(now)),
        Retry::Unknown => unknown_hint,
        Retry::Now | Retry::Never => None,
    }
}

/// IETF `RateLimit-Policy` quota and window (seconds) of a rate-like engine.
fn quota_window(engine: &Engine) -> Option<(u64, u64)> {
    match engine {
        Engine::Gcra(g) => Some((g.rate().count(), ceil_seconds(g.rate().period()))),
        Engine::FixedWindow(w) => Some((w.limit(), ceil_seconds(w.period()))),
        Engine::SlidingLog(w) => Some((w.limit(), ceil_seconds(w.period()))),
        Engine::SlidingCounter(w) => Some((w.limit(), ceil_seconds(w.period()))),
        Engine::TokenBucketSteps(b) => Some((b.rate().count(), ceil_seconds(b.rate().period()))),
        Engine::NginxLimitReq(n) => Some((n.rate().count(), ceil_seconds(n.rate().period()))),
        Engine::Concurrency(_) | Engine::Budget(_) => None,
    }
}

/// Writes `template` as compact JSON with its placeholders substituted: the
/// bytes `serde_json` writes for the filled-in document, without building
/// that document (a denial's body is rendered on every 429, the path an
/// overloaded service takes most).
fn write_template(template: &serde_json::Value, fill: &dyn Fn(&str) -> Option<serde_json::Value>, out: &mut Vec<u8>) {
    use serde_json::Value;
    match template {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                if let Some(v) = fill(name) {
                    return json(&v, out);
                }
            }
            if s.contains('{') {
                json(&substitute(s, fill), out)
            } else {
                json(s, out)
            }
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_template(v, fill, out);
            }
            out.push(b']');
        }
        Value::Object(o) => {
            out.push(b'{');
            for (i, (k, v)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json(k, out);
                out.push(b':');
                write_template(v, fill, out);
            }
            out.push(b'}');
        }
        other => json(other, out),
    }
}

/// `serde_json`'s compact writing of a value or a string.
fn json<T: serde::Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    serde_json::to_writer(out, v).expect("JSON values and strings always serialize");
}

/// The text of a template string with its placeholders substituted (an
/// unknown placeholder stays as written).
fn substitute(s: &str, fill: &dyn Fn(&str) -> Option<serde_json::Value>) -> String {
    use serde_json::Value;
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').map(|close| (close, fill(&after[..close]))) {
            Some((close, Some(v))) => {
                match v {
                    Value::String(t) => out.push_str(&t),
                    Value::Null => out.push_str("null"),
                    other => out.push_str(&other.to_string()),
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::{substitute, write_template};
    use serde_json::{json, Value};

    /// The filled-in document, built: what `write_template` writes without
    /// building it.
    fn fill_template(template: &Value, fill: &dyn Fn(&str) -> Option<Value>) -> Value {
        match template {
            Value::String(s) => {
                if let Some(name) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                    if let Some(v) = fill(name) {
                        return v;
                    }
                }
                Value::String(substitute(s, fill))
            }
            Value::Array(a) => Value::Array(a.iter().map(|v| fill_template(v, fill)).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), fill_template(v, fill))).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn writing_a_template_gives_the_bytes_of_the_filled_document() {
        let fill = |name: &str| -> Option<Value> {
            Some(match name {
                "n" => json!(42),
                "s" => json!("quote \" back\\slash \u{1} é"),
                "null" => Value::Null,
                "f" => json!(1.5),
                "b" => json!(true),
                "o" => json!({"x": [1, "y"]}),
                _ => return None,
            })
        };
        let templates = [
            json!({"error": {"code": "{s}", "n": "{n}", "text": "{n}/{s} {null} {f}{b} {unknown} {o}", "u": "{unknown}"}}),
            json!(["{n}", "{", "}", "{}", "{{n}}", "a{n", "{n}}", 7, null, false, -3.25, {"k\"e\ny": "{b}"}]),
            json!({}),
            json!([]),
            json!("{o}"),
            json!("plain"),
            json!({"z": 1, "a": 2, "m": {"{n}": "{n}"}}),
        ];
        for t in templates {
            let mut out = Vec::new();
            write_template(&t, &fill, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), fill_template(&t, &fill).to_string(), "template {t}");
        }
    }
}
