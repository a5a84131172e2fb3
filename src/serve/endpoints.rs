//! What the emulator answers: chat completions, predictions, the usage
//! report, and the errors of malformed requests.
//!
//! ## Chat completions (`POST /v1/chat/completions`)
//!
//! The body is an OpenAI chat request: `model` (a string) and `messages` (a
//! non-empty array of objects with a `role` and a `content` that is a
//! string, an array of content parts, or null) are required; `stream`,
//! `stream_options.include_usage`, `max_tokens` / `max_completion_tokens`
//! (1 to 4096) are read; anything else is accepted and ignored, as the SDKs
//! send many options. The reply is made of words, one token each:
//! `max_tokens` of them (`finish_reason` `length`), else 16 (`stop`).
//! Prompt tokens are counted as OpenAI's rule of thumb has it: a quarter of
//! the bytes of each message's text, rounded up, at least one per message.
//! `usage` reports both; token budgets settle with their sum (for a stream
//! cut short, with the prompt and the words delivered). With `stream: true`
//! the words arrive as server-sent events spread over the service time,
//! ending with `data: [DONE]`; a stream is one request.
//!
//! ## Predictions
//!
//! `POST /v1/predictions` (any JSON object, or no body) answers `201` at
//! once with `{"id": "p-N", "status": "starting", ...}`; the prediction then
//! runs for the service time, holding its permits (a concurrency cap counts
//! it "from creation until completion"). `GET /v1/predictions/p-N` reports
//! `processing` or `succeeded` to the key that created it (`404` to others).
//!
//! ## Usage (`GET /v1/usage`)
//!
//! RunAgent's shape (`period`, `requests`, `tokens`, each `used` / `limit` /
//! `remaining`) from the live limiter states, after the usage call itself
//! was counted, plus `limits`: every limit applying to the key, with its
//! unit and reset.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::engines::{BudgetPeriod, Decision, Engine};
use crate::policy::{Measure, Plan};
use crate::time::{format_rfc3339, month_start, Nanos, DAY, SECOND};

/// A request the emulator refuses before (or besides) the limiter: its
/// status and OpenAI-style JSON error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (4xx).
    pub status: u16,
    /// Machine-readable code, e.g. `invalid_api_key`.
    pub code: &'static str,
    /// What is wrong and what was expected.
    pub message: String,
    /// The request parameter at fault, if one is.
    pub param: Option<String>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), param: None }
    }

    /// `401` with `code`.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(401, code, message)
    }

    /// `400 invalid_request` about parameter `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        let param = param.into();
        ApiError {
            status: 400,
            code: "invalid_request",
            message: format!("{param}: {}", message.into()),
            param: Some(param),
        }
    }

    /// The OpenAI error type of the status.
    pub fn kind(&self) -> &'static str {
        match self.status {
            401 => "authentication_error",
            404 => "not_found_error",
            _ => "invalid_request_error",
        }
    }

    /// `{"error": {"message", "type", "param", "code"}}`.
    pub fn body(&self) -> String {
        json!({"error": {"message": self.message, "type": self.kind(), "param": self.param, "code": self.code}})
            .to_string()
    }
}

/// Reply length without `max_tokens`.
pub const DEFAULT_COMPLETION_TOKENS: u64 = 16;
/// Longest reply.
pub const MAX_COMPLETION_TOKENS: u64 = 4096;

/// The parts of a chat request the emulator uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatRequest {
    /// The model, echoed back.
    pub model: String,
    /// Answer with server-sent events.
    pub stream: bool,
    /// A stream's last event carries `usage`.
    pub include_usage: bool,
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens of the reply.
    pub completion_tokens: u64,
    /// The reply stops at `max_tokens` (`finish_reason: length`).
    pub truncated: bool,
}

/// The JSON object of a request body (an empty body is `{}` when
/// `empty_ok`).
pub fn json_object(body: &[u8], empty_ok: bool) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return if empty_ok {
            Ok(serde_json::Map::new())
        } else {
            Err(ApiError::new(400, "invalid_json", "the request body is empty: expected a JSON object"))
        };
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::new(
            400,
            "invalid_json",
            format!("the request body is JSON but not an object (found {}): expected a JSON object", json_kind(&other)),
        )),
        Err(e) => Err(ApiError::new(
            400,
            "invalid_json",
            format!("the request body is not valid JSON: {e} (expected a JSON object)"),
        )),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Tokens of a text: a quarter of its bytes, rounded up.
fn text_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Parses and checks a chat completion request.
pub fn parse_chat(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let map = json_object(body, false)?;
    let model = match map.get("model") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(v) => return Err(ApiError::invalid("model", format!("expected a model name, found {}", json_kind(v)))),
        None => return Err(ApiError::invalid("model", "missing: expected a model name, e.g. \"gpt-4o-mini\"")),
    };
    let messages = match map.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => return Err(ApiError::invalid("messages", "expected at least one message")),
        Some(v) => return Err(ApiError::invalid("messages", format!("expected an array, found {}", json_kind(v)))),
        None => return Err(ApiError::invalid("messages", "missing: expected an array of messages")),
    };
    let mut prompt_tokens = 0;
    for (i, m) in messages.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(ApiError::invalid(
                format!("messages[{i}]"),
                format!("expected an object, found {}", json_kind(m)),
            ));
        };
        if !matches!(m.get("role"), Some(Value::String(_))) {
            return Err(ApiError::invalid(format!("messages[{i}].role"), "expected a role such as \"user\""));
        }
        let tokens = match m.get("content") {
            None | Some(Value::Null) => 0,
            Some(Value::String(s)) => text_tokens(s),
            Some(Value::Array(parts)) => {
                parts.iter().map(|p| p.get("text").and_then(Value::as_str).map_or(0, text_tokens)).sum()
            }
            Some(v) => {
                return Err(ApiError::invalid(
                    format!("messages[{i}].content"),
                    format!("expected a string or an array of content parts, found {}", json_kind(v)),
                ))
            }
        };
        prompt_tokens += tokens.max(1);
    }
    let stream = match map.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(ApiError::invalid("stream", format!("expected true or false, found {}", json_kind(v)))),
    };
    let include_usage =
        map.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    let mut max = None;
    for name in ["max_completion_tokens", "max_tokens"] {
        match map.get(name) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64().filter(|n| (1..=MAX_COMPLETION_TOKENS).contains(n)) {
                Some(n) => {
                    max.get_or_insert(n);
                }
                None => {
                    return Err(ApiError::invalid(
                        name,
                        format!("expected a whole number from 1 to {MAX_COMPLETION_TOKENS}, found {v}"),
                    ))
                }
            },
        }
    }
    Ok(ChatRequest {
        model,
        stream,
        include_usage,
        prompt_tokens,
        completion_tokens: max.unwrap_or(DEFAULT_COMPLETION_TOKENS),
        truncated: max.is_some(),
    })
}

const WORDS: &[&str] = &["This", "is", "an", "emulated", "reply", "from", "ratesim", "serve."];

/// Word `i` of a reply.
fn word(i: u64) -> &'static str {
    WORDS[(i % WORDS.len() as u64) as usize]
}

impl ChatRequest {
    /// Prompt and reply tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    fn finish_reason(&self) -> &'static str {
        if self.truncated {
            "length"
        } else {
            "stop"
        }
    }

    fn usage(&self) -> Value {
        json!({"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "total_tokens": self.total_tokens()})
    }

    /// The whole reply as one `chat.completion` object.
    pub fn completion(&self, id: &str, created: u64) -> String {
        let content: Vec<&str> = (0..self.completion_tokens).map(word).collect();
        json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content.join(" ")},
                "logprobs": null,
                "finish_reason": self.finish_reason(),
            }],
            "usage": self.usage(),
        })
        .to_string()
    }

    /// The reply as server-sent events: `(completion tokens in the event,
    /// event text)`, the role first, one event per word, the finish, the
    /// usage if asked for, then `[DONE]`.
    pub fn chunks(&self, id: &str, created: u64) -> Vec<(u64, String)> {
        let chunk = |delta: Value, finish: Value| {
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            })
        };
        let event = |v: Value| format!("data: {v}\n\n");
        let mut out = vec![(0, event(chunk(json!({"role": "assistant", "content": ""}), Value::Null)))];
        for i in 0..self.completion_tokens {
            let text = if i == 0 { word(i).to_string() } else { format!(" {}", word(i)) };
            out.push((1, event(chunk(json!({"content": text}), Value::Null))));
        }
        out.push((0, event(chunk(json!({}), Value::from(self.finish_reason())))));
        if self.include_usage {
            let usage = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": self.model,
                "choices": [], "usage": self.usage(),
            });
            out.push((0, event(usage)));
        }
        out.push((0, "data: [DONE]\n\n".to_string()));
        out
    }
}

/// One prediction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prediction {
    /// The key that created it.
    pub key: String,
    /// Created at.
    pub created: Nanos,
    /// Done at (created + service time).
    pub done_at: Nanos,
}

/// The predictions created, newest [`Predictions::CAPACITY`] kept.
#[derive(Debug, Default)]
pub struct Predictions {
    by_number: BTreeMap<u64, Prediction>,
}

impl Predictions {
    /// Predictions remembered; the oldest are forgotten beyond this.
    pub const CAPACITY: usize = 100_000;

    /// Records prediction `number`.
    pub fn insert(&mut self, number: u64, p: Prediction) {
        self.by_number.insert(number, p);
        while self.by_number.len() > Self::CAPACITY {
            self.by_number.pop_first();
        }
    }

    /// Prediction `id` (`p-N`) if `key` created it.
    pub fn get(&self, id: &str, key: &str) -> Option<(u64, &Prediction)> {
        let n: u64 = id.strip_prefix("p-")?.parse().ok()?;
        self.by_number.get(&n).filter(|p| p.key == key).map(|p| (n, p))
    }
}

/// The JSON of prediction `number` as seen at `now`.
pub fn prediction_json(number: u64, p: &Prediction, now: Nanos) -> String {
    let (status, completed, output) = if now < p.created {
        ("starting", Value::Null, Value::Null)
    } else if now < p.done_at {
        ("processing", Value::Null, Value::Null)
    } else {
        ("succeeded", Value::from(format_rfc3339(p.done_at)), Value::from("emulated output"))
    };
    json!({
        "id": format!("p-{number}"),
        "status": status,
        "created_at": format_rfc3339(p.created),
        "completed_at": completed,
        "output": output,
        "urls": {"get": format!("/v1/predictions/p-{number}")},
    })
    .to_string()
}

/// A new prediction's answer (`201`): status `starting`.
pub fn prediction_created_json(number: u64, p: &Prediction) -> String {
    prediction_json(number, p, p.created.saturating_sub(1))
}

/// `used`, `remaining` and `limit` of limit `limit` from its cost-0
/// decision `d` (see [`Plan::inspect`]).
fn figures(engine: &Engine, d: &Decision) -> (u64, u64, u64) {
    let remaining = match engine {
        // A concurrency cap ignores cost: its decision counts one more permit.
        Engine::Concurrency(_) if d.allowed => d.remaining + 1,
        _ => d.remaining,
    };
    (d.limit.saturating_sub(remaining), remaining, d.limit)
}

/// The usage report of a key (see the module docs): `inspected` are the
/// cost-0 decisions of the limits applying to its usage call at `now`;
/// `reported` the limit its rate-limit headers report.
pub fn usage_json(plan: &Plan, inspected: &[(usize, Decision)], reported: Option<usize>, now: Nanos) -> String {
    let by_index: HashMap<usize, &Decision> = inspected.iter().map(|(i, d)| (*i, d)).collect();
    let entry = |i: usize| -> Option<Value> {
        let d = by_index.get(&i)?;
        let (used, remaining, limit) = figures(&plan.limits[i].engine, d);
        Some(json!({"used": used, "limit": limit, "remaining": remaining}))
    };
    let counts_requests = |i: &usize| {
        let l = &plan.limits[*i];
        l.is_rate_like() && matches!(l.measure, Measure::Requests { .. })
    };
    let requests = reported
        .filter(counts_requests)
        .or_else(|| inspected.iter().map(|(i, _)| *i).find(counts_requests))
        .and_then(entry);
    let tokens_limit = inspected.iter().map(|(i, _)| *i).find(|i| plan.limits[*i].measure == Measure::Tokens);
    let period_of = |i: usize| match &plan.limits[i].engine {
        Engine::Budget(b) => match b.period() {
            BudgetPeriod::Month => Some(month_start(now)),
            BudgetPeriod::Day => Some(now - now % DAY),
            _ => None,
        },
        _ => None,
    };
    let period = tokens_limit
        .or_else(|| inspected.iter().map(|(i, _)| *i).find(|i| matches!(plan.limits[*i].engine, Engine::Budget(_))))
        .and_then(period_of)
        .map(format_rfc3339);
    let limits: Vec<Value> = inspected
        .iter()
        .map(|(i, d)| {
            let l = &plan.limits[*i];
            let (used, remaining, limit) = figures(&l.engine, d);
            let resets = d.reset != Nanos::MAX && d.reset > now;
            json!({
                "id": l.id,
                "unit": l.measure.unit(),
                "used": used,
                "limit": limit,
                "remaining": remaining,
                "reset_at": if resets { Value::from(format_rfc3339(d.reset.div_ceil(SECOND) * SECOND)) } else { Value::Null },
            })
        })
        .collect();
    json!({
        "period": period,
        "requests": requests,
        "tokens": tokens_limit.and_then(entry),
        "limits": limits,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_requests_are_checked_and_counted() {
        let r = parse_chat(br#"{"model":"m","messages":[{"role":"user","content":"hello world!"}],"max_tokens":3}"#)
            .unwrap();
        assert_eq!((r.prompt_tokens, r.completion_tokens, r.truncated, r.stream), (3, 3, true, false));
        let body: Value = serde_json::from_str(&r.completion("c-1", 7)).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "This is an");
        assert_eq!(body["usage"]["total_tokens"], 6);
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        let s = parse_chat(br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcde"}]},{"role":"system","content":null}],"stream":true,"stream_options":{"include_usage":true}}"#).unwrap();
        assert_eq!((s.prompt_tokens, s.completion_tokens, s.stream), (3, 16, true));
        let chunks = s.chunks("c-2", 7);
        assert_eq!(chunks.iter().map(|c| c.0).sum::<u64>(), 16);
        assert_eq!(chunks.len(), 16 + 4);
        assert!(chunks[chunks.len() - 2].1.contains("\"total_tokens\":19"));
        assert_eq!(chunks.last().unwrap().1, "data: [DONE]\n\n");
    }

    #[test]
    fn malformed_chat_requests_name_the_parameter() {
        for (body, why) in [
            (&b"not json"[..], "not valid JSON"),
            (b"", "body is empty"),
            (b"[1]", "not an object (found an array)"),
            (br#"{"messages":[]}"#, "model: missing"),
            (br#"{"model":"m"}"#, "messages: missing"),
            (br#"{"model":"m","messages":[]}"#, "at least one message"),
            (br#"{"model":"m","messages":[1]}"#, "messages[0]: expected an object"),
            (br#"{"model":"m","messages":[{"content":"x"}]}"#, "messages[0].role"),
            (br#"{"model":"m","messages":[{"role":"user","content":5}]}"#, "messages[0].content"),
            (br#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#, "stream: expected true or false"),
            (
                br#"{"model":"m","messages":[{"role":"user"}],"max_tokens":0}"#,
                "max_tokens: expected a whole number from 1 to 4096",
            ),
        ] {
            let e = parse_chat(body).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.contains(why), "{}: {}", String::from_utf8_lossy(body), e.message);
        }
    }

    #[test]
    fn predictions_belong_to_their_key() {
        let mut p = Predictions::default();
        p.insert(4, Prediction { key: "a".into(), created: 10 * SECOND, done_at: 12 * SECOND });
        assert!(p.get("p-4", "b").is_none());
        assert!(p.get("4", "a").is_none());
        let (n, pred) = p.get("p-4", "a").unwrap();
        assert!(prediction_json(n, pred, 11 * SECOND).contains("\"status\":\"processing\""));
        assert!(prediction_json(n, pred, 12 * SECOND).contains("\"status\":\"succeeded\""));
        assert!(prediction_created_json(n, pred).contains("\"status\":\"starting\""));
    }
}
