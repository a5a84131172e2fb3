//! Reading policy files: TOML in, a validated [`Policy`] out, or an error
//! that names the file, line, column and field and says what was expected.
//!
//! Parsing happens in two steps. `serde` reads the TOML into raw structs that
//! mirror the file (unknown keys are errors there) and keep the byte span of
//! each value; validation then turns them into engines, checking every
//! number and unit, and uses the spans to point at the offending value.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{
    AuthMatch, Limit, Measure, Plan, Policy, Request, Reserve, Scope, Selector, MAX_COMPLETING_LIMITS_PER_PLAN,
    MAX_LIMITS_PER_PLAN,
};
use super::{ResetFormat, ResponseStyle, RetryAfterFormat, ShouldRetry};
use crate::engines::{
    Budget, BudgetPeriod, Concurrency, Dialect, Engine, FixedWindow, Gcra, NginxLimitReq, SlidingCounter, SlidingLog,
    TokenBucketSteps, WindowAlign,
};
use crate::time::{parse_duration, Rate};
use crate::toml_input;

/// A policy that could not be read: where, which field, what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// The file (or `<string>`).
    pub file: String,
    /// 1-based line, 0 if unknown.
    pub line: usize,
    /// 1-based column, 0 if unknown.
    pub column: usize,
    /// The field path, e.g. `plan "pro" > limit "rpm" > burst`; may be empty.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}

/// Reads and validates the policy file at `path` (UTF-8, at most
/// [`MAX_TOML_BYTES`](crate::toml_input::MAX_TOML_BYTES)).
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let file = path.display().to_string();
    let text = toml_input::read(path, "policy file").map_err(|e| PolicyError {
        file: file.clone(),
        line: e.line,
        column: e.column,
        field: String::new(),
        message: e.message,
    })?;
    parse(&text, &file)
}

/// Validates policy TOML `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Policy, PolicyError> {
    let cx = Cx { text, file };
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let (offset, field, message) = toml_input::serde_error(text, &e);
        cx.err(offset, &field, message)
    })?;
    cx.policy(raw)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    provider: Spanned<String>,
    source: Option<String>,
    description: Option<String>,
    response: Option<RawResponse>,
    #[serde(default)]
    plan: Vec<Spanned<RawPlan>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponse {
    headers_on: Option<Spanned<String>>,
    limit_header: Option<String>,
    remaining_header: Option<String>,
    reset_header: Option<String>,
    reset_format: Option<Spanned<String>>,
    reset_after_header: Option<String>,
    retry_after_header: Option<String>,
    retry_after_on: Option<Vec<Spanned<i64>>>,
    retry_after_unknown: Option<Spanned<String>>,
    retry_after_format: Option<Spanned<String>>,
    retry_after_ms: Option<bool>,
    x_should_retry: Option<Spanned<toml::Value>>,
    x_ratelimit: Option<bool>,
    ietf: Option<bool>,
    body: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    name: Spanned<String>,
    description: Option<String>,
    extends: Option<Spanned<String>>,
    #[serde(default)]
    limit: Vec<Spanned<RawLimit>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    id: Spanned<String>,
    algorithm: Option<Spanned<String>>,
    rate: Option<Spanned<String>>,
    burst: Option<Spanned<i64>>,
    limit: Option<Spanned<i64>>,
    period: Option<Spanned<String>>,
    max: Option<Spanned<i64>>,
    lease: Option<Spanned<String>>,
    unit: Option<Spanned<String>>,
    reserve: Option<Spanned<toml::Value>>,
    cost: Option<Spanned<i64>>,
    cost_by_endpoint: Option<BTreeMap<String, Spanned<i64>>>,
    scope: Option<Spanned<String>>,
    status: Option<Spanned<i64>>,
    code: Option<String>,
    message: Option<String>,
    body: Option<Spanned<String>>,
    report: Option<bool>,
    reset_format: Option<Spanned<String>>,
    header_limit: Option<Spanned<i64>>,
    #[serde(rename = "match")]
    selector: Option<RawSelector>,
    // Dialects (see `Cx::dialect_options`).
    dialect: Option<Spanned<String>>,
    align: Option<Spanned<String>>,
    count_denied: Option<Spanned<bool>>,
    estimate: Option<Spanned<String>>,
    boundary: Option<Spanned<String>>,
    nodelay: Option<Spanned<bool>>,
    delay: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelector {
    endpoints: Option<Vec<Spanned<String>>>,
    except: Option<Vec<Spanned<String>>>,
    auth: Option<Spanned<String>>,
}

/// Parsing context: the text (for line numbers) and the file name.
struct Cx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Cx<'_> {
    fn err(&self, offset: usize, field: &str, message: impl Into<String>) -> PolicyError {
        let (line, column) = toml_input::line_column(self.text, offset);
        PolicyError { file: self.file.to_string(), line, column, field: field.to_string(), message: message.into() }
    }

    fn at<T>(&self, v: &Spanned<T>, field: &str, message: impl Into<String>) -> PolicyError {
        self.err(v.span().start, field, message)
    }

    fn policy(&self, raw: RawPolicy) -> Result<Policy, PolicyError> {
        let provider = raw.provider.get_ref().trim().to_string();
        if provider.is_empty() {
            return Err(self.at(&raw.provider, "provider", "expected the provider's name, found an empty string"));
        }
        if raw.plan.is_empty() {
            return Err(self.err(
                self.text.len(),
                "plan",
                "expected at least one [[plan]] with a name and a [[plan.limit]]",
            ));
        }
        let response = match raw.response {
            Some(r) => self.response(r)?,
            None => ResponseStyle::default(),
        };
        let mut plans: Vec<Plan> = Vec::new();
        for rp in raw.plan {
            let plan_span = rp.span().start;
            let rp = rp.into_inner();
            let name = rp.name.get_ref().trim().to_string();
            if name.is_empty() {
                return Err(self.at(&rp.name, "plan > name", "expected a plan name, found an empty string"));
            }
            if plans.iter().any(|p| p.name == name) {
                return Err(self.at(
                    &rp.name,
                    "plan > name",
                    format!("duplicate plan name {name:?}: each plan needs its own name"),
                ));
            }
            let ctx = format!("plan {name:?}");
            let mut limits: Vec<Limit> = match &rp.extends {
                Some(base) => match plans.iter().find(|p| &p.name == base.get_ref()) {
                    Some(p) => p.limits.clone(),
                    None => {
                        return Err(self.at(
                            base,
                            &format!("{ctx} > extends"),
                            format!(
                                "expected the name of a plan defined earlier in this file, found {:?}",
                                base.get_ref()
                            ),
                        ))
                    }
                },
                None => Vec::new(),
            };
            let mut own_ids = HashSet::new();
            for rl in rp.limit {
                let id = rl.get_ref().id.get_ref().clone();
                if !own_ids.insert(id.clone()) {
                    return Err(self.at(
                        &rl.get_ref().id,
                        &format!("{ctx} > limit > id"),
                        format!("duplicate limit id {id:?} in this plan"),
                    ));
                }
                let limit = self.limit(rl, &ctx)?;
                match limits.iter_mut().find(|l| l.id == limit.id) {
                    Some(slot) => *slot = limit,
                    None => limits.push(limit),
                }
            }
            if limits.is_empty() {
                return Err(self.err(
                    plan_span,
                    &ctx,
                    "expected at least one [[plan.limit]] (or `extends` naming a plan that has limits)",
                ));
            }
            let completing =
                limits.iter().filter(|l| matches!(l.engine, Engine::Concurrency(_) | Engine::Budget(_))).count();
            if completing > MAX_COMPLETING_LIMITS_PER_PLAN {
                return Err(self.err(
                    plan_span,
                    &ctx,
                    format!("at most {MAX_COMPLETING_LIMITS_PER_PLAN} concurrency and budget limits per plan, found {completing}"),
                ));
            }
            if limits.len() > MAX_LIMITS_PER_PLAN {
                return Err(self.err(
                    plan_span,
                    &ctx,
                    format!("at most {MAX_LIMITS_PER_PLAN} limits per plan, found {}", limits.len()),
                ));
            }
            plans.push(Plan { name, description: rp.description, limits });
        }
        Ok(Policy { provider, source: raw.source, description: raw.description, response, plans })
    }

    fn response(&self, r: RawResponse) -> Result<ResponseStyle, PolicyError> {
        let mut style = ResponseStyle::default();
        if let Some(v) = r.headers_on {
            style.headers_on_allowed = match v.get_ref().as_str() {
                "all" => true,
                "denied" => false,
                other => {
                    return Err(self.at(
                        &v,
                        "response > headers_on",
                        format!("expected \"all\" or \"denied\", found {other:?}"),
                    ))
                }
            };
        }
        if let Some(h) = r.limit_header {
            style.limit_header = h;
        }
        if let Some(h) = r.remaining_header {
            style.remaining_header = h;
        }
        if let Some(h) = r.reset_header {
            style.reset_header = h;
        }
        if let Some(v) = r.reset_format {
            style.reset_format = self.reset_format(&v, "response > reset_format")?;
        }
        style.reset_after_header = r.reset_after_header;
        if let Some(h) = r.retry_after_header {
            style.retry_after_header = h;
        }
        if let Some(list) = r.retry_after_on {
            style.retry_after_on =
                list.iter().map(|s| self.status(s, "response > retry_after_on")).collect::<Result<_, _>>()?;
        }
        if let Some(v) = r.retry_after_unknown {
            let d = parse_duration(v.get_ref()).map_err(|e| self.at(&v, "response > retry_after_unknown", e))?;
            style.retry_after_unknown = Some(d);
        }
        if let Some(v) = r.retry_after_format {
            style.retry_after_format = match v.get_ref().as_str() {
                "seconds" => RetryAfterFormat::Seconds,
                "seconds-floor" => RetryAfterFormat::SecondsFloor,
                "fractional" => RetryAfterFormat::Fractional,
                "http-date" => RetryAfterFormat::HttpDate,
                other => {
                    return Err(self.at(
                        &v,
                        "response > retry_after_format",
                        format!(
                            "expected \"seconds\", \"seconds-floor\", \"fractional\" or \"http-date\", found {other:?}"
                        ),
                    ))
                }
            };
        }
        if let Some(b) = r.retry_after_ms {
            style.retry_after_ms = b;
        }
        if let Some(v) = r.x_should_retry {
            let field = "response > x_should_retry";
            style.x_should_retry = match v.get_ref() {
                toml::Value::Boolean(true) => ShouldRetry::On,
                toml::Value::Boolean(false) => ShouldRetry::Off,
                toml::Value::String(d) => ShouldRetry::Within(parse_duration(d).map_err(|e| self.at(&v, field, e))?),
                other => {
                    return Err(self.at(
                        &v,
                        field,
                        format!("expected true, false or a duration such as \"1h\", found {other}"),
                    ))
                }
            };
        }
        if let Some(b) = r.x_ratelimit {
            style.x_ratelimit = b;
        }
        if let Some(b) = r.ietf {
            style.ietf = b;
        }
        if let Some(b) = r.body {
            style.body = self.body(&b, "response > body")?;
        }
        Ok(style)
    }

    fn reset_format(&self, v: &Spanned<String>, field: &str) -> Result<ResetFormat, PolicyError> {
        match v.get_ref().as_str() {
            "unix" => Ok(ResetFormat::Unix),
            "seconds" => Ok(ResetFormat::Seconds),
            other => Err(self.at(
                v,
                field,
                format!("expected \"unix\" (a Unix timestamp) or \"seconds\" (seconds until reset), found {other:?}"),
            )),
        }
    }

    fn status(&self, v: &Spanned<i64>, field: &str) -> Result<u16, PolicyError> {
        let s = *v.get_ref();
        if (400..=599).contains(&s) {
            Ok(s as u16)
        } else {
            Err(self.at(v, field, format!("expected an HTTP error status from 400 to 599 (429, 402, 503), found {s}")))
        }
    }

    fn body(&self, v: &Spanned<String>, field: &str) -> Result<Option<serde_json::Value>, PolicyError> {
        serde_json::from_str(v.get_ref()).map(Some).map_err(|e| {
            self.at(v, field, format!("expected a JSON body template (e.g. '{{\"error\": {{\"code\": \"{{code}}\"}}}}'), but it is not valid JSON: {e}"))
        })
    }

    fn positive(&self, v: &Spanned<i64>, field: &str, what: &str) -> Result<u64, PolicyError> {
        let n = *v.get_ref();
        if n >= 1 {
            Ok(n as u64)
        } else {
            Err(self.at(v, field, format!("expected {what} of at least 1, found {n}")))
        }
    }

    fn limit(&self, rl: Spanned<RawLimit>, plan_ctx: &str) -> Result<Limit, PolicyError> {
        let start = rl.span().start;
        let rl = rl.into_inner();
        let id = rl.id.get_ref().trim().to_string();
        if id.is_empty() {
            return Err(self.at(
                &rl.id,
                &format!("{plan_ctx} > limit > id"),
                "expected a limit id such as \"rpm\", found an empty string",
            ));
        }
        let ctx = format!("{plan_ctx} > limit {id:?}");
        let f = |name: &str| format!("{ctx} > {name}");
        let (dialect, algorithm) = self.dialect_and_algorithm(&rl, &f, start)?;
        let algorithm = algorithm.as_str();

        // The count and period of rate-like limits: `rate = "60/min"`, or
        // `limit` and `period`.
        let rate_or_window = |count_field: &Option<Spanned<i64>>, count_name: &str| -> Result<Rate, PolicyError> {
            match (&rl.rate, count_field, &rl.period) {
                (Some(r), None, None) => Rate::parse(r.get_ref()).map_err(|e| self.at(r, &f("rate"), e)),
                (None, Some(c), Some(p)) => {
                    let count = self.positive(c, &f(count_name), &format!("a {count_name}"))?;
                    let period = parse_duration(p.get_ref()).map_err(|e| self.at(p, &f("period"), e))?;
                    Rate::new(count, period).ok_or_else(|| self.at(p, &f("period"), "expected a period longer than zero"))
                }
                (Some(r), _, _) => Err(self.at(r, &f("rate"), format!("give either `rate` or `{count_name}` with `period`, not both"))),
                (None, Some(c), None) => Err(self.at(c, &f("period"), format!("`{count_name}` needs a `period` such as \"60s\" (or write `rate = \"60/min\"`)"))),
                (None, None, Some(p)) => Err(self.at(p, &f(count_name), format!("`period` needs a `{count_name}` (or write `rate = \"60/min\"`)"))),
                (None, None, None) => Err(self.err(start, &f("rate"), format!("missing field `rate`: a {algorithm} limit needs `rate = \"500/min\"` or `{count_name}` with `period`"))),
            }
        };
        let forbid = |present: bool, name: &str, span_of: usize| -> Result<(), PolicyError> {
            if present {
                Err(self.err(span_of, &f(name), format!("`{name}` does not apply to a {algorithm} limit")))
            } else {
                Ok(())
            }
        };
        let sp = |o: &Option<Spanned<i64>>| o.as_ref().map_or(start, |v| v.span().start);
        let sps = |o: &Option<Spanned<String>>| o.as_ref().map_or(start, |v| v.span().start);

        let engine = match algorithm {
            "gcra" | "leaky-bucket" | "token-bucket" => {
                forbid(rl.max.is_some(), "max", sp(&rl.max))?;
                forbid(rl.lease.is_some(), "lease", sps(&rl.lease))?;
                let rate = rate_or_window(&rl.limit, "limit")?;
                let burst = match &rl.burst {
                    Some(b) => self.positive(b, &f("burst"), "a burst (in cost units; at least one request)")?,
                    None => {
                        return Err(self.err(start, &f("burst"), "missing field `burst`: a gcra limit needs its burst capacity, e.g. `burst = 50`"))
                    }
                };
                Engine::Gcra(Gcra::new(rate, burst).expect("burst checked positive"))
            }
            "token-bucket-steps" => {
                forbid(rl.max.is_some(), "max", sp(&rl.max))?;
                forbid(rl.lease.is_some(), "lease", sps(&rl.lease))?;
                let rate = rate_or_window(&rl.limit, "limit")?;
                let max = match &rl.burst {
                    Some(b) => self.positive(b, &f("burst"), "a bucket size (Envoy's max_tokens)")?,
                    None => {
                        return Err(self.err(start, &f("burst"), "missing field `burst`: a token-bucket-steps limit needs its bucket size (Envoy's max_tokens), e.g. `burst = 100`"))
                    }
                };
                Engine::TokenBucketSteps(TokenBucketSteps::new(rate, max).expect("max checked positive"))
            }
            "nginx-limit-req" => {
                forbid(rl.max.is_some(), "max", sp(&rl.max))?;
                forbid(rl.lease.is_some(), "lease", sps(&rl.lease))?;
                let rate = rate_or_window(&rl.limit, "limit")?;
                self.nginx_limit_req(&rl, rate, &f, start)?
            }
            "fixed-window" | "sliding-log" | "sliding-counter" => {
                forbid(rl.burst.is_some(), "burst", sp(&rl.burst))?;
                forbid(rl.max.is_some(), "max", sp(&rl.max))?;
                forbid(rl.lease.is_some(), "lease", sps(&rl.lease))?;
                let r = rate_or_window(&rl.limit, "limit")?;
                let (limit, period) = (r.count(), r.period());
                match algorithm {
                    "fixed-window" => Engine::FixedWindow(FixedWindow::new(limit, period).expect("checked")),
                    "sliding-log" => Engine::SlidingLog(SlidingLog::new(limit, period).expect("checked")),
                    _ => Engine::SlidingCounter(SlidingCounter::new(limit, period).expect("checked")),
                }
            }
            "concurrency" => {
                forbid(rl.rate.is_some(), "rate", sps(&rl.rate))?;
                forbid(rl.burst.is_some(), "burst", sp(&rl.burst))?;
                forbid(rl.period.is_some(), "period", sps(&rl.period))?;
                let max = match (&rl.max, &rl.limit) {
                    (Some(m), None) | (None, Some(m)) => self.positive(m, &f("max"), "a maximum in flight")?,
                    (Some(m), Some(_)) => return Err(self.at(m, &f("max"), "give `max` or `limit`, not both")),
                    (None, None) => {
                        return Err(self.err(start, &f("max"), "missing field `max`: a concurrency limit needs `max = 5` (requests in flight)"))
                    }
                };
                let lease = match &rl.lease {
                    Some(l) => {
                        let d = parse_duration(l.get_ref()).map_err(|e| self.at(l, &f("lease"), e))?;
                        if d == 0 {
                            return Err(self.at(l, &f("lease"), "expected a lease longer than zero (or no `lease`)"));
                        }
                        Some(d)
                    }
                    None => None,
                };
                Engine::Concurrency(Concurrency::new(max, lease).expect("checked"))
            }
            "budget" => {
                forbid(rl.rate.is_some(), "rate", sps(&rl.rate))?;
                forbid(rl.burst.is_some(), "burst", sp(&rl.burst))?;
                forbid(rl.max.is_some(), "max", sp(&rl.max))?;
                forbid(rl.lease.is_some(), "lease", sps(&rl.lease))?;
                let limit = match &rl.limit {
                    Some(l) => self.positive(l, &f("limit"), "a budget")?,
                    None => return Err(self.err(start, &f("limit"), "missing field `limit`: a budget needs `limit` (in its unit; money in minor units)")),
                };
                let period = match &rl.period {
                    Some(p) => match p.get_ref().as_str() {
                        "day" => BudgetPeriod::Day,
                        "month" => BudgetPeriod::Month,
                        "lifetime" => BudgetPeriod::Lifetime,
                        other => match parse_duration(other) {
                            Ok(d) if d > 0 => BudgetPeriod::Rolling(d),
                            _ => {
                                return Err(self.at(
                                    p,
                                    &f("period"),
                                    format!("expected \"day\" (UTC calendar day), \"month\" (UTC calendar month), \"lifetime\" (never resets) or a rolling duration such as \"30day\", found {other:?}"),
                                ))
                            }
                        },
                    },
                    None => return Err(self.err(start, &f("period"), "missing field `period`: a budget needs \"day\", \"month\", \"lifetime\" or a rolling duration")),
                };
                Engine::Budget(Budget::new(limit, period).expect("checked"))
            }
            other => {
                return Err(self.err(
                    sps(&rl.algorithm),
                    &f("algorithm"),
                    format!("unknown algorithm {other:?}; expected one of gcra, fixed-window, sliding-log, sliding-counter, concurrency, budget, token-bucket-steps, nginx-limit-req"),
                ))
            }
        };
        let engine = self.dialect_options(&rl, engine, dialect, &f, algorithm)?;

        let measure = match &rl.unit {
            None => Measure::Requests { cost: 1, by_endpoint: Vec::new() },
            Some(u) => match u.get_ref().as_str() {
                "requests" => Measure::Requests { cost: 1, by_endpoint: Vec::new() },
                "tokens" => Measure::Tokens,
                c if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => Measure::Money { currency: c.to_string() },
                other => {
                    return Err(self.at(u, &f("unit"), format!("expected \"requests\", \"tokens\" or a currency code such as \"INR\" or \"USD\", found {other:?}")))
                }
            },
        };
        let measure = match measure {
            Measure::Requests { .. } => {
                let cost = match &rl.cost {
                    Some(c) => self.positive(c, &f("cost"), "a cost per request")?,
                    None => 1,
                };
                let mut by_endpoint = Vec::new();
                for (endpoint, c) in rl.cost_by_endpoint.iter().flatten() {
                    by_endpoint.push((
                        endpoint.clone(),
                        self.positive(c, &f(&format!("cost_by_endpoint > {endpoint}")), "a cost")?,
                    ));
                }
                Measure::Requests { cost, by_endpoint }
            }
            m => {
                if let Some(c) = &rl.cost {
                    return Err(self.at(
                        c,
                        &f("cost"),
                        format!("`cost` applies to request limits; this limit counts {}", m.unit()),
                    ));
                }
                if rl.cost_by_endpoint.is_some() {
                    return Err(self.err(
                        start,
                        &f("cost_by_endpoint"),
                        format!("`cost_by_endpoint` applies to request limits; this limit counts {}", m.unit()),
                    ));
                }
                m
            }
        };
        if matches!(engine, Engine::Concurrency(_))
            && !matches!(measure, Measure::Requests { cost: 1, ref by_endpoint } if by_endpoint.is_empty())
        {
            return Err(self.err(
                start,
                &f("unit"),
                "a concurrency limit counts requests in flight; `unit` and `cost` do not apply",
            ));
        }

        let reserve = match &rl.reserve {
            None => Reserve::Fixed(0),
            Some(v) => {
                if !matches!(engine, Engine::Budget(_)) {
                    return Err(self.at(v, &f("reserve"), "`reserve` applies to budget limits only"));
                }
                match v.get_ref() {
                    toml::Value::Integer(n) if *n >= 0 && *n as u64 > engine.capacity() => {
                        return Err(self.at(
                            v,
                            &f("reserve"),
                            format!(
                                "a reservation of {n} could never fit the budget of {}: expected at most {}",
                                engine.capacity(),
                                engine.capacity()
                            ),
                        ))
                    }
                    toml::Value::Integer(n) if *n >= 0 => Reserve::Fixed(*n as u64),
                    toml::Value::String(s) if s == "measured" => Reserve::Measured,
                    other => {
                        return Err(self.at(
                            v,
                            &f("reserve"),
                            format!("expected a non-negative whole amount or \"measured\", found {other}"),
                        ))
                    }
                }
            }
        };

        let scope = match &rl.scope {
            None => Scope::Key,
            Some(s) => match s.get_ref().as_str() {
                "key" => Scope::Key,
                "user" => Scope::User,
                "workspace" => Scope::Workspace,
                "global" => Scope::Global,
                other => {
                    return Err(self.at(
                        s,
                        &f("scope"),
                        format!("expected key, user, workspace or global, found {other:?}"),
                    ))
                }
            },
        };

        let selector = match rl.selector {
            None => Selector::default(),
            Some(s) => {
                let list = |v: Option<Vec<Spanned<String>>>, name: &str| -> Result<Vec<String>, PolicyError> {
                    v.unwrap_or_default()
                        .into_iter()
                        .map(|e| {
                            let p = e.get_ref().trim();
                            if p.is_empty() || p.strip_suffix('*').unwrap_or(p).contains('*') {
                                Err(self.at(
                                    &e,
                                    &f(&format!("match > {name}")),
                                    format!(
                                        "expected an endpoint name or a prefix ending in `*`, found {:?}",
                                        e.get_ref()
                                    ),
                                ))
                            } else {
                                Ok(p.to_string())
                            }
                        })
                        .collect()
                };
                let auth = match &s.auth {
                    None => AuthMatch::Any,
                    Some(a) => match a.get_ref().as_str() {
                        "any" => AuthMatch::Any,
                        "authenticated" => AuthMatch::Authenticated,
                        "unauthenticated" => AuthMatch::Unauthenticated,
                        other => {
                            return Err(self.at(
                                a,
                                &f("match > auth"),
                                format!("expected any, authenticated or unauthenticated, found {other:?}"),
                            ))
                        }
                    },
                };
                Selector { endpoints: list(s.endpoints, "endpoints")?, except: list(s.except, "except")?, auth }
            }
        };

        let status = match &rl.status {
            Some(s) => self.status(s, &f("status"))?,
            // nginx answers 503 unless `limit_req_status` says otherwise.
            None if matches!(engine, Engine::NginxLimitReq(_)) => 503,
            None => 429,
        };
        let default_code = match engine {
            Engine::Concurrency(_) => "CONCURRENCY_LIMIT_EXCEEDED",
            Engine::Budget(_) => "QUOTA_EXCEEDED",
            _ => "RATE_LIMIT_EXCEEDED",
        };
        let code = rl.code.unwrap_or_else(|| default_code.to_string());
        let message = rl.message.unwrap_or_else(|| match engine {
            Engine::Concurrency(_) => "Concurrent request limit exceeded".to_string(),
            Engine::Budget(_) => "Budget exceeded".to_string(),
            _ => "Rate limit exceeded".to_string(),
        });
        let body = match &rl.body {
            Some(b) => self.body(b, &f("body"))?,
            None => None,
        };
        let report = rl.report.unwrap_or(!matches!(engine, Engine::Concurrency(_) | Engine::Budget(_)));
        let reset_format = match &rl.reset_format {
            Some(v) => Some(self.reset_format(v, &f("reset_format"))?),
            None => None,
        };
        let header_limit = match &rl.header_limit {
            Some(v) => Some(self.positive(v, &f("header_limit"), "a limit to advertise")?),
            None => None,
        };
        // On a bucket or a window, a request that costs more than the capacity
        // could never be admitted: almost certainly a typo, so refuse it rather
        // than model a dead endpoint. (A budget admits it when its reservation
        // fits and settles the cost afterwards; a concurrency cap ignores cost.)
        if let (Measure::Requests { cost, by_endpoint }, false) =
            (&measure, matches!(engine, Engine::Concurrency(_) | Engine::Budget(_)))
        {
            let capacity = engine.capacity();
            let what = match engine {
                Engine::Gcra(_) | Engine::TokenBucketSteps(_) => "burst",
                Engine::NginxLimitReq(_) => "burst + 1 (what nginx admits at once)",
                _ => "limit",
            };
            let never = |c: u64| {
                format!("a request costing {c} could never fit the {what} of {capacity}: expected a cost of at most {capacity}")
            };
            if *cost > capacity {
                let at = rl.cost.as_ref().map_or(start, |c| c.span().start);
                return Err(self.err(at, &f("cost"), never(*cost)));
            }
            // Only endpoints this limit applies to (authenticated or not).
            let applies = |endpoint: &str| {
                [true, false]
                    .into_iter()
                    .any(|authenticated| selector.matches(&Request { endpoint, authenticated, ..Request::new("") }))
            };
            if let Some((endpoint, c)) = by_endpoint.iter().find(|(e, c)| *c > capacity && applies(e)) {
                return Err(self.err(start, &f(&format!("cost_by_endpoint > {endpoint}")), never(*c)));
            }
        }

        let line = self.err(start, "", "").line;
        Ok(Limit {
            id,
            engine,
            scope,
            selector,
            measure,
            reserve,
            status,
            code,
            message,
            body,
            report,
            reset_format,
            header_limit,
            line,
        })
    }
}

/// Dialects: `dialect`, the options it sets, and the nginx engine's own keys.
impl Cx<'_> {
    /// The limit's dialect, if any, and its algorithm: as written, or the
    /// dialect's only one.
    fn dialect_and_algorithm(
        &self,
        rl: &RawLimit,
        f: &dyn Fn(&str) -> String,
        start: usize,
    ) -> Result<(Option<(Dialect, usize)>, String), PolicyError> {
        let dialect = match &rl.dialect {
            None => None,
            Some(d) => match Dialect::parse(d.get_ref()) {
                Some(dialect) => Some((dialect, d.span().start)),
                None => {
                    return Err(self.at(
                        d,
                        &f("dialect"),
                        format!("unknown dialect {:?}; expected one of {}", d.get_ref(), Dialect::names()),
                    ))
                }
            },
        };
        let algorithm = match (&rl.algorithm, dialect) {
            (Some(a), Some((d, _))) if !d.algorithms().contains(&a.get_ref().as_str()) => {
                let src = d.source();
                return Err(self.at(
                    a,
                    &f("algorithm"),
                    format!(
                        "dialect \"{d}\" ({} {}) has no {:?} limiter; its algorithms: {}",
                        src.project,
                        src.version,
                        a.get_ref(),
                        d.algorithms().join(", ")
                    ),
                ));
            }
            (Some(a), _) => a.get_ref().clone(),
            (None, Some((d, _))) => match d.default_algorithm() {
                Some(a) => a.to_string(),
                None => {
                    return Err(self.err(
                        start,
                        &f("algorithm"),
                        format!("missing field `algorithm`: dialect \"{d}\" has several, give one of {}", d.algorithms().join(", ")),
                    ))
                }
            },
            (None, None) => {
                return Err(self.err(
                    start,
                    &f("algorithm"),
                    "missing field `algorithm`: give one of gcra, fixed-window, sliding-log, sliding-counter, concurrency, budget, token-bucket-steps, nginx-limit-req (or a `dialect`)",
                ))
            }
        };
        Ok((dialect, algorithm))
    }

    /// An nginx `limit_req` from `rate`, `burst` (default 0), and `delay` or
    /// `nodelay`.
    fn nginx_limit_req(
        &self,
        rl: &RawLimit,
        rate: Rate,
        f: &dyn Fn(&str) -> String,
        start: usize,
    ) -> Result<Engine, PolicyError> {
        let non_negative = |v: &Spanned<i64>, name: &str, what: &str| -> Result<u64, PolicyError> {
            let n = *v.get_ref();
            u64::try_from(n).map_err(|_| self.at(v, &f(name), format!("expected {what} (0 or more), found {n}")))
        };
        let burst = match &rl.burst {
            Some(b) => non_negative(b, "burst", "a burst in requests")?,
            None => 0,
        };
        let delay = match (&rl.delay, &rl.nodelay) {
            (Some(d), Some(_)) => {
                return Err(self.at(d, &f("delay"), "give `delay` or `nodelay`, not both (as nginx's limit_req)"))
            }
            (Some(d), None) => Some(non_negative(d, "delay", "a number of requests passed without delay")?),
            (None, Some(n)) if *n.get_ref() => None,
            (None, _) => Some(0),
        };
        NginxLimitReq::new(rate, burst, delay).map(Engine::NginxLimitReq).ok_or_else(|| {
            let at = rl.rate.as_ref().map_or(rl.period.as_ref().map_or(start, |p| p.span().start), |r| r.span().start);
            if matches!(rate.period(), crate::time::SECOND | crate::time::MINUTE) {
                self.err(start, &f("burst"), "expected a burst and delay below 4.6·10^15 requests")
            } else {
                self.err(
                    at,
                    &f("rate"),
                    format!(
                        "expected a rate per second or per minute, as nginx has (\"10/s\", \"30/min\"), found {rate}"
                    ),
                )
            }
        })
    }

    /// Applies `align`, `count_denied`, `estimate` and `boundary` to the
    /// engines they belong to, then the dialect, if any (which sets them
    /// itself, so they cannot be given with it).
    fn dialect_options(
        &self,
        rl: &RawLimit,
        mut engine: Engine,
        dialect: Option<(Dialect, usize)>,
        f: &dyn Fn(&str) -> String,
        kind: &str,
    ) -> Result<Engine, PolicyError> {
        let misplaced = |name: &str, at: usize, belongs: &str| {
            self.err(at, &f(name), format!("`{name}` applies to {belongs} limits only, not to a {kind} limit"))
        };
        let set_by_dialect = |name: &str, at: usize| -> Result<(), PolicyError> {
            match dialect {
                Some((d, _)) => Err(self.err(
                    at,
                    &f(name),
                    format!("`{name}` is set by dialect \"{d}\"; give the dialect or the option, not both"),
                )),
                None => Ok(()),
            }
        };
        if let Some(v) = &rl.align {
            set_by_dialect("align", v.span().start)?;
            let Engine::FixedWindow(w) = &engine else {
                return Err(misplaced("align", v.span().start, "fixed-window"));
            };
            let align = WindowAlign::parse(v.get_ref()).ok_or_else(|| {
                self.at(
                    v,
                    &f("align"),
                    format!("expected \"epoch\", \"first-hit\" or \"first-hit-redis\", found {:?}", v.get_ref()),
                )
            })?;
            engine = Engine::FixedWindow(w.clone().with_align(align).ok_or_else(|| {
                self.at(v, &f("align"), "a Redis key's time to live is whole milliseconds: `first-hit-redis` needs a period of whole milliseconds")
            })?);
        }
        if let Some(v) = &rl.count_denied {
            set_by_dialect("count_denied", v.span().start)?;
            let Engine::FixedWindow(w) = &engine else {
                return Err(misplaced("count_denied", v.span().start, "fixed-window"));
            };
            engine = Engine::FixedWindow(w.clone().with_count_denied(*v.get_ref()));
        }
        if let Some(v) = &rl.estimate {
            set_by_dialect("estimate", v.span().start)?;
            let Engine::SlidingCounter(w) = &engine else {
                return Err(misplaced("estimate", v.span().start, "sliding-counter"));
            };
            let floor = match v.get_ref().as_str() {
                "exact" => false,
                "floor" => true,
                other => {
                    return Err(self.at(v, &f("estimate"), format!("expected \"exact\" or \"floor\", found {other:?}")))
                }
            };
            engine = Engine::SlidingCounter(w.clone().with_floor_estimate(floor));
        }
        if let Some(v) = &rl.boundary {
            set_by_dialect("boundary", v.span().start)?;
            let Engine::SlidingLog(w) = &engine else {
                return Err(misplaced("boundary", v.span().start, "sliding-log"));
            };
            let closed = match v.get_ref().as_str() {
                "half-open" => false,
                "closed" => true,
                other => {
                    return Err(self.at(
                        v,
                        &f("boundary"),
                        format!("expected \"half-open\" or \"closed\", found {other:?}"),
                    ))
                }
            };
            engine = Engine::SlidingLog(w.clone().with_closed_boundary(closed));
        }
        if !matches!(engine, Engine::NginxLimitReq(_)) {
            if let Some(v) = &rl.delay {
                return Err(misplaced("delay", v.span().start, "nginx-limit-req"));
            }
            if let Some(v) = &rl.nodelay {
                return Err(misplaced("nodelay", v.span().start, "nginx-limit-req"));
            }
        }
        match dialect {
            Some((d, at)) => d.apply(&engine).map_err(|e| self.err(at, &f("dialect"), e)),
            None => Ok(engine),
        }
    }
}
