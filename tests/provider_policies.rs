//! The provider policies in `policies/` behave as their documentation pages say.
//!
//! Each test loads a policy file with `ratesim::policy::load`, drives one plan with
//! `Plan::check` / `Plan::complete` over an in-test state store, and renders answers with
//! `ratesim::policy::render`. Line numbers in comments refer to the provider pages in
//! `/work/shared/provider-docs/` that each policy cites.

use std::path::Path;

use ratesim::engines::Decision;
use ratesim::policy::{self, PlanDecision, Policy, Rendered, Request, Tickets};

#[path = "common/map_store.rs"]
mod map_store;

use map_store::MapStore;
use ratesim::time::{parse_rfc3339, Nanos, DAY, HOUR, MILLISECOND, MINUTE, SECOND};

/// A policy, one of its plans, and the state of every key on it.
struct Harness {
    policy: Policy,
    plan: String,
    store: MapStore,
}

impl Harness {
    fn new(file: &str, plan: &str) -> Harness {
        let policy = load(file);
        let p = policy.plan(plan).unwrap_or_else(|| panic!("{file} has no plan {plan:?}"));
        let store = MapStore::new(p);
        Harness { plan: plan.to_string(), policy, store }
    }

    fn check(&mut self, now: Nanos, req: &Request<'_>) -> PlanDecision {
        let plan = self.policy.plan(&self.plan).expect("plan exists");
        plan.check(&mut self.store, now, req)
    }

    fn complete(&mut self, now: Nanos, req: &Request<'_>, tickets: &Tickets) {
        let plan = self.policy.plan(&self.plan).expect("plan exists");
        plan.complete(&mut self.store, now, req, tickets);
    }

    fn render(&self, d: &PlanDecision, now: Nanos) -> Rendered {
        let plan = self.policy.plan(&self.plan).expect("plan exists");
        policy::render(&self.policy, plan, d, now)
    }

    /// Checks `n` identical requests at `now` without completing them; returns how
    /// many were admitted.
    fn admit_count(&mut self, now: Nanos, req: &Request<'_>, n: usize) -> usize {
        (0..n).filter(|_| self.check(now, req).allowed).count()
    }

    /// Checks `req` at `now` and, if admitted, completes it at once (releasing its
    /// concurrency permits and settling its tokens or money).
    fn call(&mut self, now: Nanos, req: &Request<'_>) -> PlanDecision {
        let d = self.check(now, req);
        if d.allowed {
            self.complete(now, req, &d.tickets);
        }
        d
    }

    /// `call`s `n` identical requests at `now`; returns how many were admitted.
    fn call_count(&mut self, now: Nanos, req: &Request<'_>, n: usize) -> usize {
        (0..n).filter(|_| self.call(now, req).allowed).count()
    }

    /// Units limit `id` would still admit for scope identity `scope_key` at `now`,
    /// read without consuming anything (on a copy of the state).
    fn left(&self, id: &str, scope_key: &str, now: Nanos) -> u64 {
        let plan = self.policy.plan(&self.plan).expect("plan exists");
        let i = plan.limits.iter().position(|l| l.id == id).unwrap_or_else(|| panic!("no limit {id:?}"));
        let engine = &plan.limits[i].engine;
        let mut state = self.store.state(i, scope_key);
        let d: Decision = engine.decide(&mut state, now, 1);
        if d.allowed {
            d.remaining + 1
        } else {
            d.remaining
        }
    }

    fn denied_by(&self, d: &PlanDecision) -> Option<String> {
        let plan = self.policy.plan(&self.plan).expect("plan exists");
        d.denied_by.map(|i| plan.limits[i].id.clone())
    }
}

fn load(file: &str) -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies").join(file);
    policy::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn t0() -> Nanos {
    parse_rfc3339("2026-01-01T00:00:00Z").expect("valid instant")
}

fn secs(t: Nanos) -> String {
    (t / SECOND).to_string()
}

fn req<'a>(key: &'a str, endpoint: &'a str) -> Request<'a> {
    Request { endpoint, ..Request::new(key) }
}

/// The header names of a rendered answer, in order.
fn names(r: &Rendered) -> Vec<&str> {
    r.headers.iter().map(|(n, _)| n.as_str()).collect()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

// ---------------------------------------------------------------- RunInfra (000)

#[test]
fn runinfra_pro_fresh_key_gets_exactly_50_at_one_instant() {
    let mut h = Harness::new("runinfra.toml", "pro");
    let t = t0();
    let r = req("key-1", "chat.completions");
    assert_eq!(h.admit_count(t, &r, 100), 50); // line 52: ~50 in the first second

    let d = h.check(t, &r);
    assert!(!d.allowed);
    let out = h.render(&d, t);
    assert_eq!(out.status, 429);
    assert_eq!(names(&out), ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"]);
    // Line 14: X-RateLimit-Limit advertises the per-minute limit
    // (`header_limit`); Remaining counts what the bucket admits now.
    assert_eq!(out.header("X-RateLimit-Limit"), Some("500"));
    assert_eq!(out.header("X-RateLimit-Remaining"), Some("0"));
    // The bucket is empty after 50 emission intervals of 120 ms = 6 s (Unix timestamp).
    assert_eq!(out.header("X-RateLimit-Reset"), Some(secs(t + 6 * SECOND).as_str()));
    // One request drains in 120 ms; Retry-After rounds up to whole seconds.
    assert_eq!(out.header("Retry-After"), Some("1"));
    let body = json(out.body.as_deref().expect("a denial has a body"));
    assert_eq!(body["error"]["code"], "RATE_LIMIT_EXCEEDED");
    // The body's limit is the header's (the bucket holds 50; the limit is 500/min).
    assert_eq!(body["error"]["limit"], 500);
    assert_eq!(Some(body["error"]["limit"].to_string().as_str()), out.header("X-RateLimit-Limit"));
    assert_eq!(body["error"]["retry_after"], 1);
    // Another key has its own bucket (line 59).
    assert!(h.check(t, &req("key-2", "chat.completions")).allowed);
}

#[test]
fn runinfra_pro_100_requests_over_the_first_second_get_exactly_58() {
    let mut h = Harness::new("runinfra.toml", "pro");
    let r = req("key-1", "chat.completions");
    let admitted = (0..100u64).filter(|i| h.check(t0() + i * 10 * MILLISECOND, &r).allowed).count();
    // 50 of burst, plus one per 120 ms drained by the last request at 990 ms: 50 + 8.
    assert_eq!(admitted, 58);
}

#[test]
fn runinfra_pro_sustained_10_per_second_settles_at_500_per_minute() {
    let mut h = Harness::new("runinfra.toml", "pro");
    let r = req("key-1", "chat.completions");
    let step = 100 * MILLISECOND; // 10 req/s
    let mut per_minute = [0u64; 10];
    let mut total = 0u64;
    for i in 0..6_000u64 {
        if h.check(t0() + i * step, &r).allowed {
            per_minute[(i / 600) as usize] += 1;
            total += 1;
        }
    }
    // Above 8.33 req/s the bucket never empties after the burst, so by the last request
    // (at 599.9 s) it has admitted exactly the burst plus what drained: 50 + ⌊t·500/60 s⌋.
    let last = 5_999 * step;
    assert_eq!(total, 50 + last * 500 / MINUTE);
    assert_eq!(total, 5_049);
    // The first minute has the burst on top; every later minute exactly 500 = 8.33/s·60.
    assert_eq!(per_minute[0], 549);
    for (m, &n) in per_minute.iter().enumerate().skip(1) {
        assert_eq!(n, 500, "minute {m}");
    }
    // Over the steady 9 minutes: exactly 500/60 per second, 4,500 in 540 s.
    let steady: u64 = per_minute[1..].iter().sum();
    assert_eq!(steady * 60, 500 * 540);
}

#[test]
fn runinfra_explain_names_the_documented_figures() {
    let text = load("runinfra.toml").explain(None).expect("explains");
    assert!(text.starts_with("RunInfra"), "{text}");
    for figure in [
        "pro: 500 requests/min per API key, burst 50 (steady 8.33/s)",
        "pro-max: 1000 requests/min",
        "team: 5000 requests/min",
        "team-max: 10000 requests/min",
    ] {
        assert!(text.contains(figure), "missing {figure:?} in:\n{text}");
    }
}

// ---------------------------------------------------------------- RunAgent (001)

#[test]
fn runagent_headers_match_the_page_example() {
    // Lines 14-17: a Pro key's first request of a clock hour reports
    // Limit 1000, Remaining 999, Reset (Unix) and Reset-After 3600.
    let mut h = Harness::new("runagent.toml", "pro");
    let t = t0();
    let d = h.check(t, &req("key-1", "invoke"));
    assert!(d.allowed);
    let out = h.render(&d, t);
    assert_eq!(out.status, 200);
    assert_eq!(out.body, None);
    let expected = [
        ("X-RateLimit-Limit", "1000".to_string()),
        ("X-RateLimit-Remaining", "999".to_string()),
        ("X-RateLimit-Reset", secs(t + HOUR)),
        ("X-RateLimit-Reset-After", "3600".to_string()),
    ];
    let got: Vec<(&str, String)> = out.headers.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    assert_eq!(got, expected);
}

#[test]
fn runagent_free_11th_request_in_a_minute_is_denied_and_the_hour_is_untouched() {
    let mut h = Harness::new("runagent.toml", "free");
    let t = t0();
    let r = req("key-1", "invoke");
    for i in 0..10 {
        let d = h.call(t, &r);
        assert!(d.allowed, "request {i}");
        let out = h.render(&d, t);
        assert_eq!(out.header("X-RateLimit-Limit"), Some("100"));
        assert_eq!(out.header("X-RateLimit-Remaining"), Some((99 - i).to_string().as_str()));
    }
    assert_eq!(h.left("rph", "key-1", t), 90);

    // The 11th, 30.5 s into the minute: 29.5 s to the window's end, rounded up.
    let late = t + 30 * SECOND + 500 * MILLISECOND;
    let d = h.call(late, &r);
    assert!(!d.allowed);
    assert_eq!(h.denied_by(&d).as_deref(), Some("rpm"));
    let out = h.render(&d, late);
    assert_eq!(out.status, 429);
    assert_eq!(out.header("X-RateLimit-Limit"), Some("10"));
    assert_eq!(out.header("X-RateLimit-Remaining"), Some("0"));
    assert_eq!(out.header("X-RateLimit-Reset"), Some(secs(t + MINUTE).as_str()));
    assert_eq!(out.header("X-RateLimit-Reset-After"), Some("30"));
    assert_eq!(out.header("Retry-After"), Some("30"));
    // Lines 26-38, field for field.
    assert_eq!(
        json(out.body.as_deref().expect("body")),
        json(
            r#"{"error": {"code": "RATE_LIMIT_EXCEEDED", "message": "API rate limit exceeded",
                "details": {"limit": 10, "remaining": 0, "reset_at": "2026-01-01T00:01:00Z",
                "retry_after": 30}, "status": 429}}"#
        )
    );

    // Denied requests consumed nothing from the hour.
    for _ in 0..5 {
        assert!(!h.call(late, &r).allowed);
    }
    assert_eq!(h.left("rph", "key-1", late), 90);
    assert!(!h.call(t + MINUTE - 1, &r).allowed);
    let d = h.call(t + MINUTE, &r);
    assert!(d.allowed);
    let out = h.render(&d, t + MINUTE);
    assert_eq!(out.header("X-RateLimit-Remaining"), Some("89")); // 100 - 11 admitted
}

#[test]
fn runagent_free_hour_denial_leaves_the_minute_allowance() {
    let mut h = Harness::new("runagent.toml", "free");
    let t = t0();
    let r = req("key-1", "invoke");
    for m in 0..10 {
        assert_eq!(h.call_count(t + m * MINUTE, &r, 10), 10, "minute {m}");
    }
    let at = t + 10 * MINUTE;
    assert_eq!(h.left("rpm", "key-1", at), 10);
    let d = h.call(at, &r);
    assert!(!d.allowed);
    assert_eq!(h.denied_by(&d).as_deref(), Some("rph"));
    let out = h.render(&d, at);
    assert_eq!(out.status, 429);
    assert_eq!(out.header("X-RateLimit-Limit"), Some("100"));
    assert_eq!(out.header("X-RateLimit-Remaining"), Some("0"));
    assert_eq!(out.header("X-RateLimit-Reset-After"), Some("3000"));
    assert_eq!(out.header("Retry-After"), Some("3000"));
    let body = json(out.body.as_deref().expect("body"));
    assert_eq!(body["error"]["details"]["limit"], 100);
    assert_eq!(body["error"]["details"]["reset_at"], "2026-01-01T01:00:00Z");
    assert_eq!(body["error"]["details"]["retry_after"], 3000);
    for _ in 0..3 {
        assert!(!h.call(at, &r).allowed);
    }
    // The minute limit admitted each of those requests, but nothing was committed.
    assert_eq!(h.left("rpm", "key-1", at), 10);
    assert_eq!(h.left("rph", "key-1", at), 0);
}

#[test]
fn runagent_free_third_concurrent_request_is_denied() {
    let mut h = Harness::new("runagent.toml", "free");
    let t = t0();
    let r = req("key-1", "stream");
    let a = h.check(t, &r);
    let b = h.check(t, &r);
    assert!(a.allowed && b.allowed);
    let d = h.check(t + SECOND, &r);
    assert!(!d.allowed);
    assert_eq!(h.denied_by(&d).as_deref(), Some("inflight"));
    let out = h.render(&d, t + SECOND);
    assert_eq!(out.status, 429);
    // No lease: when a slot frees is unknown, so no Retry-After.
    assert_eq!(out.header("Retry-After"), None);
    let body = json(out.body.as_deref().expect("body"));
    assert_eq!(body["error"]["code"], "CONCURRENCY_LIMIT_EXCEEDED");
    assert_eq!(body["error"]["details"]["limit"], 2);
    assert_eq!(body["error"]["details"]["retry_after"], serde_json::Value::Null);
    // The denied request did not count against the windows.
    assert_eq!(h.left("rpm", "key-1", t + SECOND), 8);
    assert_eq!(h.left("rph", "key-1", t + SECOND), 98);
    // A finished stream frees its slot.
    h.complete(t + 2 * SECOND, &r, &a.tickets);
    assert!(h.check(t + 2 * SECOND, &r).allowed);
    assert!(!h.check(t + 2 * SECOND, &r).allowed);
}

#[test]
fn runagent_stream_counts_as_a_single_request() {
    let mut h = Harness::new("runagent.toml", "free");
    let t = t0();
    // Ten streams of 500 tokens each fill the minute: one request apiece.
    let stream = Request { tokens: 500, ..req("key-1", "stream") };
    assert_eq!(h.call_count(t, &stream, 10), 10);
    let d = h.call(t, &req("key-1", "invoke"));
    assert_eq!(h.denied_by(&d).as_deref(), Some("rpm"));
    assert_eq!(h.left("rph", "key-1", t), 90);
}

#[test]
fn runagent_health_is_never_limited() {
    let mut h = Harness::new("runagent.toml", "free");
    let t = t0();
    let r = req("key-1", "invoke");
    assert_eq!(h.admit_count(t, &r, 20), 2); // two held in flight
    let health = req("key-1", "health");
    for i in 0..1_000 {
        let d = h.check(t, &health);
        assert!(d.allowed, "health check {i}");
        assert_eq!(d.applied, 0);
        let out = h.render(&d, t);
        assert_eq!(out.status, 200);
        assert!(out.headers.is_empty());
    }
    assert_eq!(h.left("rph", "key-1", t), 98);
}

#[test]
fn runagent_free_token_budget_denies_after_100000_and_resets_on_the_first() {
    let mut h = Harness::new("runagent.toml", "free");
    let t = t0();
    // One request per minute, each completing at once with its tokens.
    let spend = |h: &mut Harness, at: Nanos, tokens: u64| -> PlanDecision {
        h.call(at, &Request { tokens, ..req("key-1", "invoke") })
    };
    for (m, tokens) in [25_000, 25_000, 25_000, 24_999].into_iter().enumerate() {
        assert!(spend(&mut h, t + m as u64 * MINUTE, tokens).allowed);
    }
    // 99,999 used: one token left, the request is admitted.
    assert!(spend(&mut h, t + 4 * MINUTE, 1).allowed);
    // 100,000 used: refused for the rest of the month.
    let at = t + 5 * MINUTE;
    let d = spend(&mut h, at, 1);
    assert!(!d.allowed);
    assert_eq!(h.denied_by(&d).as_deref(), Some("tokens"));
    let out = h.render(&d, at);
    assert_eq!(out.status, 429);
    let feb1 = parse_rfc3339("2026-02-01T00:00:00Z").expect("instant");
    assert_eq!(out.header("Retry-After"), Some(((feb1 - at) / SECOND).to_string().as_str()));
    // A budget never shows in X-RateLimit-* headers: they keep describing
    // the hourly limit; the budget's figures are in the body.
    assert_eq!(out.header("X-RateLimit-Limit"), Some("100"));
    assert_eq!(out.header("X-RateLimit-Reset"), Some(secs(t + 3600 * SECOND).as_str()));
    let body = json(out.body.as_deref().expect("body"));
    assert_eq!(body["error"]["code"], "TOKEN_QUOTA_EXCEEDED");
    assert_eq!(body["error"]["details"]["reset_at"], "2026-02-01T00:00:00Z");
    // Still refused in the month's last second, admitted at its first instant.
    assert!(!spend(&mut h, feb1 - SECOND, 1).allowed);
    let d = spend(&mut h, feb1, 10);
    assert!(d.allowed);
    assert_eq!(h.left("tokens", "key-1", feb1), 100_000 - 10);
}

#[test]
fn runagent_tiers_and_explain() {
    let policy = load("runagent.toml");
    assert_eq!(policy.plan_names(), ["free", "pro", "team", "enterprise"]);
    let text = policy.explain(None).expect("explains");
    for figure in [
        "rph: 100 requests per hour per API key, fixed window",
        "rpm: 10 requests per minute per API key",
        "inflight: 2 concurrent requests per API key",
        "budget of 100000 tokens per UTC calendar month per API key",
        "rph: 1000 requests per hour",
        "rpm: 100 requests per minute",
        "inflight: 10 concurrent",
        "budget of 2000000 tokens",
        "rph: 5000 requests per hour",
        "rpm: 500 requests per minute",
        "inflight: 25 concurrent",
        "budget of 10000000 tokens",
        "not on health",
    ] {
        assert!(text.contains(figure), "missing {figure:?} in:\n{text}");
    }
    // The Team figures as checked limits: 25 held at once; 500 (not 501) in a minute
    // when each completes at once.
    let r = req("k", "invoke");
    let mut h = Harness::new("runagent.toml", "team");
    assert_eq!(h.admit_count(t0(), &r, 600), 25);
    let mut h = Harness::new("runagent.toml", "team");
    assert_eq!(h.call_count(t0(), &r, 600), 500);
}

// ------------------------------------------------------- Predictions API (002)

/// Lines 56-66 of the page, verbatim.
const PAGE_CONCURRENT_BODY: &str = r#"{
"error": {
"type": "rate_limit_error",
"message": "Concurrent prediction limit exceeded. 5/5 predictions running.",
"code": "CONCURRENT_LIMIT_EXCEEDED",
"details": {
"limit": 5,
"active": 5
}
}
}"#;

#[test]
fn predictions_concurrent_limit_body_is_the_page_json() {
    let mut h = Harness::new("predictions-api.toml", "default");
    let t = t0();
    let create = req("key-1", "predictions.create");
    let running: Vec<PlanDecision> = (0..5).map(|_| h.check(t, &create)).collect();
    assert!(running.iter().all(|d| d.allowed));
    let d = h.check(t + SECOND, &create);
    assert!(!d.allowed);
    assert_eq!(h.denied_by(&d).as_deref(), Some("predictions"));
    let out = h.render(&d, t + SECOND);
    assert_eq!(out.status, 429);
    let body = out.body.as_deref().expect("body");
    let page = json(PAGE_CONCURRENT_BODY);
    assert_eq!(json(body), page);
    // Same keys in the same order, as compact JSON.
    assert_eq!(body, serde_json::to_string(&page).expect("serializes"));
    // Retry-After only on 429 (line 19), and a running prediction's end is unknown.
    assert_eq!(out.header("Retry-After"), None);

    // Polling does not start a prediction, so it is not capped (only rate-limited).
    let poll = req("key-1", "predictions.get");
    assert!(h.check(t + SECOND, &poll).allowed);
    // A prediction counts until it completes (line 54).
    h.complete(t + 9 * SECOND, &create, &running[0].tickets);
    assert!(h.check(t + 9 * SECOND, &create).allowed);
    assert!(!h.check(t + 9 * SECOND, &create).allowed);
    // Another key has its own five (line 4).
    assert!(h.check(t + 9 * SECOND, &req("key-2", "predictions.create")).allowed);
}

#[test]
fn predictions_60_requests_per_minute_with_headers() {
    let mut h = Harness::new("predictions-api.toml", "default");
    let t = t0();
    let r = req("key-1", "predictions.get");
    let d = h.check(t, &r);
    let out = h.render(&d, t);
    assert_eq!(names(&out), ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]);
    assert_eq!(out.header("X-RateLimit-Limit"), Some("60"));
    assert_eq!(out.header("X-RateLimit-Remaining"), Some("59"));
    assert_eq!(out.header("X-RateLimit-Reset"), Some(secs(t + MINUTE).as_str()));
    assert_eq!(h.admit_count(t + 15 * SECOND, &r, 100), 59);
    let at = t + 15 * SECOND + 1;
    let d = h.check(at, &r);
    assert_eq!(h.denied_by(&d).as_deref(), Some("rpm"));
    let out = h.render(&d, at);
    assert_eq!(out.status, 429);
    // 45 s minus 1 ns, rounded up.
    assert_eq!(out.header("Retry-After"), Some("45"));
    let body = json(out.body.as_deref().expect("body"));
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "RATE_LIMIT_EXCEEDED");
    assert_eq!(body["error"]["details"]["limit"], 60);
    // Creating a prediction is an API call too.
    assert!(!h.check(at, &req("key-1", "predictions.create")).allowed);
    assert!(h.check(t + MINUTE, &r).allowed);
}

#[test]
fn predictions_spending_caps_answer_402_and_default_has_none() {
    let mut h = Harness::new("predictions-api.toml", "spend-capped");
    let t = t0();
    // Each prediction completes at once and costs `cents`.
    let run = |h: &mut Harness, at: Nanos, cents: u64| -> PlanDecision {
        h.call(at, &Request { money: cents, ..req("key-1", "predictions.create") })
    };
    // 10.00 USD a day: exactly 10.00 spent is not over the cap.
    assert!(run(&mut h, t, 600).allowed);
    assert!(run(&mut h, t + MINUTE, 400).allowed);
    assert!(run(&mut h, t + 2 * MINUTE, 1).allowed);
    let at = t + 3 * MINUTE;
    let d = run(&mut h, at, 1);
    assert!(!d.allowed);
    assert_eq!(h.denied_by(&d).as_deref(), Some("daily-spend"));
    let out = h.render(&d, at);
    assert_eq!(out.status, 402);
    assert_eq!(out.header("Retry-After"), None); // only on 429 (line 19)
    let body = json(out.body.as_deref().expect("body"));
    assert_eq!(body["error"]["code"], "DAILY_SPENDING_LIMIT_EXCEEDED");
    // Polling is not gated by spending.
    assert!(h.check(at, &req("key-1", "predictions.get")).allowed);
    // The next UTC day spends again; the month keeps counting: 10.01 so far.
    for day in 1..9 {
        assert!(run(&mut h, t + day * DAY, 1000).allowed, "day {day}");
    }
    // 90.01 USD spent; day 9 takes it to 100.01, over the monthly cap.
    assert!(run(&mut h, t + 9 * DAY, 1000).allowed);
    let d = run(&mut h, t + 10 * DAY, 1);
    assert_eq!(h.denied_by(&d).as_deref(), Some("monthly-spend"));
    assert_eq!(d.status, 402);
    let feb1 = parse_rfc3339("2026-02-01T00:00:00Z").expect("instant");
    assert!(run(&mut h, feb1, 1).allowed);

    // The default plan has no spending limit (lines 10-11).
    let mut h = Harness::new("predictions-api.toml", "default");
    for i in 0..20 {
        assert!(run(&mut h, t + i * MINUTE, 1_000_000).allowed);
    }
}

#[test]
fn predictions_explain() {
    let text = load("predictions-api.toml").explain(None).expect("explains");
    for figure in [
        "rpm: 60 requests per minute per API key",
        "predictions: 5 concurrent requests per API key; on predictions.create; 429 CONCURRENT_LIMIT_EXCEEDED",
        "budget of 10.00 USD per UTC calendar day",
        "budget of 100.00 USD per UTC calendar month",
        "402 DAILY_SPENDING_LIMIT_EXCEEDED",
    ] {
        assert!(text.contains(figure), "missing {figure:?} in:\n{text}");
    }
}

// ------------------------------------------------------------- AICredits (003)

fn user_req<'a>(key: &'a str, user: &'a str) -> Request<'a> {
    Request { user: Some(user), endpoint: "chat.completions", ..Request::new(key) }
}

#[test]
fn aicredits_concurrency_is_shared_by_a_users_keys() {
    let mut h = Harness::new("aicredits.toml", "default");
    let t = t0();
    let a = user_req("key-a", "user-1");
    let b = user_req("key-b", "user-1");
    assert_eq!(h.admit_count(t, &a, 3), 3);
    assert_eq!(h.admit_count(t, &b, 2), 2);
    // Five in flight for user-1: neither key gets a sixth.
    for r in [&a, &b] {
        let d = h.check(t, r);
        assert!(!d.allowed);
        assert_eq!(h.denied_by(&d).as_deref(), Some("concurrency"));
        let out = h.render(&d, t);
        assert_eq!(out.status, 429);
        let body = json(out.body.as_deref().expect("body"));
        assert_eq!(body["error"]["code"], "CONCURRENCY_LIMIT_EXCEEDED");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("simultaneous")));
    }
    // Another user is not affected; the per-key minute counts are separate.
    assert!(h.check(t, &user_req("key-c", "user-2")).allowed);
    assert_eq!(h.left("rpm", "key-a", t), 57);
    assert_eq!(h.left("rpm", "key-b", t), 58);
}

#[test]
fn aicredits_rolling_minute_and_reset_in_seconds() {
    let mut h = Harness::new("aicredits.toml", "default");
    let t = t0();
    // Requests complete at once, so only the per-key minute limit binds.
    let fire = |h: &mut Harness, at: Nanos| h.call(at, &user_req("key-a", "user-1"));
    let d = fire(&mut h, t);
    let out = h.render(&d, t);
    assert_eq!(out.header("X-RateLimit-Limit"), Some("60"));
    assert_eq!(out.header("X-RateLimit-Remaining"), Some("59"));
    assert_eq!(out.header("X-RateLimit-Reset"), Some("60")); // seconds, not a timestamp
    for _ in 0..59 {
        assert!(fire(&mut h, t).allowed);
    }
    // Lines 23-25 report a reset of 35 s: 25 s into a full window.
    let at = t + 25 * SECOND;
    let d = fire(&mut h, at);
    assert!(!d.allowed);
    let out = h.render(&d, at);
    assert_eq!(out.status, 429);
    assert_eq!(out.header("X-RateLimit-Remaining"), Some("0"));
    assert_eq!(out.header("X-RateLimit-Reset"), Some("35"));
    assert_eq!(out.header("Retry-After"), Some("35"));
    assert_eq!(
        json(out.body.as_deref().expect("body")),
        json(
            r#"{"error": {"message": "Rate limit exceeded for this API key",
                "type": "rate_limit_error", "code": "RATE_LIMIT_EXCEEDED"}}"#
        )
    );
    // Rolling, not clock-aligned: still full just before t + 60 s, free at t + 60 s.
    assert!(!fire(&mut h, t + MINUTE - 1).allowed);
    assert!(fire(&mut h, t + MINUTE).allowed);
    // At t + 90 s the window (t + 30 s, t + 90 s] holds only the request at t + 60 s.
    let later = t + 90 * SECOND;
    assert_eq!((0..100).filter(|_| fire(&mut h, later).allowed).count(), 59);
}

#[test]
fn aicredits_max_plan_allows_10000_per_minute() {
    let mut h = Harness::new("aicredits.toml", "max-rpm");
    let t = t0();
    assert_eq!(h.call_count(t, &user_req("key-a", "user-1"), 10_001), 10_000);
}

#[test]
fn aicredits_budget_answers_402_once_exceeded_and_never_resets() {
    let mut h = Harness::new("aicredits.toml", "budget");
    let t = t0();
    let spend = |h: &mut Harness, at: Nanos, paise: u64| -> PlanDecision {
        h.call(at, &Request { money: paise, ..user_req("key-a", "user-1") })
    };
    // 500.00 INR used exactly has not *exceeded* the budget (line 27).
    assert!(spend(&mut h, t, 30_000).allowed);
    assert!(spend(&mut h, t + MINUTE, 20_000).allowed);
    assert!(spend(&mut h, t + 2 * MINUTE, 1).allowed);
    let at = t + 3 * MINUTE;
    let d = spend(&mut h, at, 1);
    assert!(!d.allowed);
    assert_eq!(h.denied_by(&d).as_deref(), Some("budget"));
    let out = h.render(&d, at);
    assert_eq!(out.status, 402);
    assert_eq!(out.header("Retry-After"), None);
    assert_eq!(
        json(out.body.as_deref().expect("body")),
        json(
            r#"{"error": {"message": "This API key has exceeded its budget limit",
                "type": "insufficient_quota", "code": "BUDGET_EXCEEDED"}}"#
        )
    );
    // Cumulative: no new day or month refills it.
    assert!(!spend(&mut h, t + 40 * DAY, 1).allowed);
    assert!(!spend(&mut h, t + 400 * DAY, 1).allowed);
    // Per key: another key of the same user still has its budget.
    let other = user_req("key-b", "user-1");
    assert!(h.check(at, &other).allowed);
}

#[test]
fn aicredits_explain() {
    let text = load("aicredits.toml").explain(None).expect("explains");
    for figure in [
        "rpm: 60 requests per rolling minute per API key",
        "rpm: 10000 requests per rolling minute per API key",
        "concurrency: 5 concurrent requests per user",
        "budget: lifetime budget of 500.00 INR per API key (never resets)",
        "402 BUDGET_EXCEEDED",
    ] {
        assert!(text.contains(figure), "missing {figure:?} in:\n{text}");
    }
}

// --------------------------------------------------------------- WriftAI (004)

fn anon<'a>(client: &'a str, endpoint: &'a str) -> Request<'a> {
    Request { endpoint, authenticated: false, ..Request::new(client) }
}

#[test]
fn wriftai_authenticated_and_unauthenticated_get_different_limits() {
    let mut h = Harness::new("wriftai.toml", "default");
    let t = t0();
    let a = anon("203.0.113.7", "models.list");
    let k = req("key-1", "models.list");
    assert_eq!(h.admit_count(t, &a, 20), 3); // 1 req/s, burst 3 (assumed)
    assert_eq!(h.admit_count(t, &k, 20), 9); // 3 req/s, burst 9 (assumed)
    let d = h.check(t, &a);
    assert_eq!(h.denied_by(&d).as_deref(), Some("api-unauthenticated"));
    let d = h.check(t, &k);
    assert_eq!(h.denied_by(&d).as_deref(), Some("api-authenticated"));
    // Steady rates: one more per second unauthenticated, three authenticated.
    assert_eq!(h.admit_count(t + SECOND, &a, 20), 1);
    assert_eq!(h.admit_count(t + SECOND, &k, 20), 3);

    let first = h.check(t, &anon("198.51.100.1", "models.list"));
    let out = h.render(&first, t);
    assert_eq!(out.header("x-ratelimit-limit"), Some("3"));
    let first = h.check(t, &req("key-2", "models.list"));
    let out = h.render(&first, t);
    assert_eq!(out.header("x-ratelimit-limit"), Some("9"));
}

#[test]
fn wriftai_prediction_creation_has_its_own_limit() {
    let mut h = Harness::new("wriftai.toml", "default");
    let t = t0();
    let create = req("key-1", "predictions.create");
    let get = req("key-1", "predictions.get");
    assert_eq!(h.admit_count(t, &create, 100), 45); // 15 req/s, burst 45 (assumed)
    let d = h.check(t, &create);
    assert_eq!(h.denied_by(&d).as_deref(), Some("predictions-create"));
    assert_eq!(h.admit_count(t + SECOND, &create, 100), 15);
    // Creating did not use the 3 req/s base limit ...
    assert_eq!(h.admit_count(t, &get, 20), 9);
    // ... and a spent base limit does not stop creation.
    let mut h = Harness::new("wriftai.toml", "default");
    assert_eq!(h.admit_count(t, &get, 20), 9);
    assert_eq!(h.admit_count(t, &create, 100), 45);
    // Unauthenticated creation gets only the unauthenticated base limit.
    assert_eq!(h.admit_count(t, &anon("203.0.113.7", "predictions.create"), 20), 3);
}

#[test]
fn wriftai_registry_reset_in_seconds_api_reset_as_timestamp() {
    let mut h = Harness::new("wriftai.toml", "default");
    let t = t0();
    let pull = req("key-1", "registry.pull");
    let d = h.check(t, &pull);
    let out = h.render(&d, t);
    assert_eq!(names(&out), ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]);
    assert_eq!(out.header("x-ratelimit-limit"), Some("30"));
    assert_eq!(out.header("x-ratelimit-remaining"), Some("29"));
    assert_eq!(out.header("x-ratelimit-reset"), Some("3600")); // seconds until reset
    let half = t + 30 * MINUTE;
    assert_eq!(h.admit_count(half, &pull, 40), 29);
    let d = h.check(half, &pull);
    assert_eq!(h.denied_by(&d).as_deref(), Some("registry-pulls"));
    let out = h.render(&d, half);
    assert_eq!(out.status, 429);
    assert_eq!(out.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(out.header("x-ratelimit-reset"), Some("1800"));
    // No Retry-After: clients use x-ratelimit-reset (lines 42-43).
    assert_eq!(names(&out), ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]);
    assert_eq!(
        json(out.body.as_deref().expect("body")),
        json(
            r#"{"error": {"code": "RATE_LIMIT_EXCEEDED",
                "message": "Model pull limit exceeded", "status": 429}}"#
        )
    );
    assert!(h.check(t + HOUR, &pull).allowed);

    // Pulls are another service: the API limits are untouched, and report Unix time.
    let get = req("key-1", "models.get");
    let gets: Vec<PlanDecision> = (0..10).map(|_| h.check(half, &get)).collect();
    assert_eq!(gets.iter().filter(|d| d.allowed).count(), 9);
    let out = h.render(&gets[0], half);
    assert_eq!(names(&out), ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]);
    assert_eq!(out.header("x-ratelimit-remaining"), Some("8"));
    // Empty again one emission interval (1/3 s) later: a Unix timestamp, rounded up.
    assert_eq!(out.header("x-ratelimit-reset"), Some(secs(half + SECOND).as_str()));
    let out = h.render(&gets[9], half);
    assert_eq!(out.status, 429);
    assert_eq!(out.header("x-ratelimit-reset"), Some(secs(half + 3 * SECOND).as_str()));
    assert_eq!(out.header("retry-after"), None);
}

#[test]
fn wriftai_explain() {
    let text = load("wriftai.toml").explain(None).expect("explains");
    for figure in [
        "api-unauthenticated: 1 request/s per client (unauthenticated), burst 3",
        "api-authenticated: 3 requests/s per API key, burst 9",
        "not on predictions.create, registry.*; authenticated requests",
        "predictions-create: 15 requests/s per API key, burst 45",
        "registry-pulls: 30 requests per hour per API key (per client when unauthenticated), fixed window",
        "on registry.pull",
    ] {
        assert!(text.contains(figure), "missing {figure:?} in:\n{text}");
    }
}
