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

use crate::engines::{Engine, Retry};
use crate::policy::{Plan, PlanDecision, Policy};
use crate::time::{ceil_seconds, format_rfc3339, Nanos, SECOND};

/// How a reset instant is written in the reset header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetFormat {
    /// Unix timestamp in seconds, rounded up (`1714502460`).
    Unix,
    /// Seconds until the reset, rounded up (`35`).
    Seconds,
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
    let retry_after = retry_after_seconds(decision.retry, now, style.retry_after_unknown);
    if let Some(s) = retry_after_header(style, decision, now) {
        headers.push((style.retry_after_header.clone(), s.to_string()));
    }
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

/// The `Retry-After` value (whole seconds) a client receives with
/// `decision`, or `None` if the response carries no such header (admitted,
/// a status the policy does not put it on, or no known retry instant).
pub fn retry_after_header(style: &ResponseStyle, decision: &PlanDecision, now: Nanos) -> Option<u64> {
    if decision.allowed || !status_listed(&style.retry_after_on, decision.status) {
        return None;
    }
    retry_after_seconds(decision.retry, now, style.retry_after_unknown)
}

/// Whether `status` is in `statuses`: a loop the compiler inlines, not
/// `contains` (a call into the generic slice search). Lists of statuses are
/// short and checked on every denial, by the policy and by clients.
#[inline]
pub(crate) fn status_listed(statuses: &[u16], status: u16) -> bool {
    #[allow(clippy::manual_contains)]
    statuses.iter().any(|&s| s == status)
}

/// Seconds a client should wait, rounded up; at least 1 for a denial that
/// can be retried (a `Retry-After: 0` invites an immediate retry storm).
fn retry_after_seconds(retry: Retry, now: Nanos, unknown_hint: Option<Nanos>) -> Option<u64> {
    match retry {
        Retry::At(t) => Some(ceil_seconds(t.saturating_sub(now)).max(1)),
        Retry::Unknown => unknown_hint.map(|h| ceil_seconds(h).max(1)),
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
