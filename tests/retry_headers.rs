//! The retry headers a policy renders (`Retry-After` in each format,
//! `retry-after-ms`, `x-should-retry`): their exact text, and that reading
//! the rendered headers back gives exactly the [`RetryHeaders`] the
//! simulator hands its clients — one rendering path for both.

use std::sync::Arc;

use proptest::prelude::*;
use ratesim::limiter::{KeyedLimiter, ManualClock};
use ratesim::policy::{self, retry_headers, Policy, Request, RetryAfterValue, RetryHeaders};
use ratesim::sim::DEFAULT_START;
use ratesim::time::{MILLISECOND, SECOND};

fn policy(response: &str, limit: &str) -> Arc<Policy> {
    let text = format!(
        "provider = \"t\"\n[response]\n{response}\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"l\"\n{limit}\n"
    );
    Arc::new(policy::parse(&text, "test.toml").unwrap())
}

/// The headers of the second of two requests, `gap` apart, against a
/// GCRA of `rate`, burst 1 (the first is admitted).
fn second(response: &str, rate: &str, gap: u64) -> (Vec<(String, String)>, RetryHeaders) {
    let p = policy(response, &format!("algorithm = \"gcra\"\nrate = \"{rate}\"\nburst = 1"));
    let clock = ManualClock::new(DEFAULT_START);
    let limiter = KeyedLimiter::with_clock(p.clone(), "p", clock).unwrap();
    let req = Request::new("k");
    drop(limiter.check(&req).expect("the first is admitted"));
    limiter.clock().advance(gap);
    let denial = limiter.check(&req).expect_err("the second is denied");
    let rendered = denial.response();
    let typed = retry_headers(&p.response, denial.decision(), DEFAULT_START + gap);
    (rendered.headers, typed)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[test]
fn each_format_writes_what_it_says() {
    // 10/s: the second request 30 ms after the first waits 70 ms.
    let wait = |format: &str| {
        let (h, _) =
            second(&format!("retry_after_format = \"{format}\"\nretry_after_ms = true"), "10/s", 30 * MILLISECOND);
        (header(&h, "Retry-After").map(str::to_string), header(&h, "retry-after-ms").map(str::to_string))
    };
    assert_eq!(wait("seconds"), (Some("1".into()), Some("70".into())));
    assert_eq!(wait("seconds-floor"), (Some("0".into()), Some("70".into())));
    assert_eq!(wait("fractional"), (Some("0.07".into()), Some("70".into())));
    // 2026-01-01T00:00:00.1Z rounded up.
    assert_eq!(wait("http-date"), (Some("Thu, 01 Jan 2026 00:00:01 GMT".into()), Some("70".into())));
    // Fractional: whole seconds stay whole, milliseconds round up.
    let (h, _) = second("retry_after_format = \"fractional\"", "1/2s", 0);
    assert_eq!(header(&h, "Retry-After"), Some("2"));
    let (h, _) = second("retry_after_format = \"fractional\"", "3/s", SECOND / 7);
    assert_eq!(header(&h, "Retry-After"), Some("0.191"));
    // Without the options, nothing new is sent.
    let (h, t) = second("", "10/s", 0);
    assert_eq!((header(&h, "retry-after-ms"), header(&h, "x-should-retry")), (None, None));
    assert_eq!(
        t,
        RetryHeaders { retry_after: Some(RetryAfterValue::Seconds(1)), retry_after_ms: None, should_retry: None }
    );
}

#[test]
fn x_should_retry_says_false_beyond_its_horizon() {
    let should =
        |response: &str, rate: &str| header(&second(response, rate, 0).0, "x-should-retry").map(str::to_string);
    assert_eq!(should("x_should_retry = true", "1/day"), Some("true".into()));
    assert_eq!(should("x_should_retry = \"1h\"", "1/day"), Some("false".into()));
    assert_eq!(should("x_should_retry = \"1h\"", "1/min"), Some("true".into()));
    assert_eq!(should("x_should_retry = false", "1/min"), None);
    // A request that can never be admitted: false, and no Retry-After.
    let p = policy(
        "x_should_retry = true",
        "algorithm = \"budget\"\nlimit = 1\nperiod = \"lifetime\"\ncost = 2\nreserve = \"measured\"",
    );
    let limiter = KeyedLimiter::with_clock(p, "p", ManualClock::new(DEFAULT_START)).unwrap();
    let r = limiter.check(&Request::new("k")).expect_err("never admitted").response();
    assert_eq!((r.header("x-should-retry"), r.header("Retry-After")), (Some("false"), None));
}

#[test]
fn bad_options_are_located_errors() {
    for (response, expect) in [
        ("retry_after_format = \"minutes\"", "response > retry_after_format: expected \"seconds\", \"seconds-floor\""),
        ("x_should_retry = 3", "response > x_should_retry: expected true, false or a duration"),
        ("x_should_retry = \"soon\"", "response > x_should_retry"),
        ("retry_after_ms = \"yes\"", "retry_after_ms"),
    ] {
        let text = format!("provider = \"t\"\n[response]\n{response}\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"l\"\nalgorithm = \"gcra\"\nrate = \"1/s\"\nburst = 1\n");
        let err = policy::parse(&text, "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with("bad.toml:3:") && err.contains(expect), "{response}: {err}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Reading the rendered headers gives exactly what the simulator hands
    /// its clients, in every format and with every option.
    #[test]
    fn reading_the_rendered_headers_gives_what_clients_get(
        count in 1u64..1000,
        period_ms in 1u64..100_000,
        per_mille in 0u64..1000,
        format in 0usize..4,
        ms in any::<bool>(),
        should in 0usize..3,
        name in prop::sample::select(vec!["Retry-After", "retry-after", "X-Retry-In"]),
    ) {
        let formats = ["seconds", "seconds-floor", "fractional", "http-date"];
        let shoulds = ["false", "true", "\"2s\""];
        let response = format!(
            "retry_after_format = \"{}\"\nretry_after_ms = {ms}\nx_should_retry = {}\nretry_after_header = \"{name}\"",
            formats[format], shoulds[should]
        );
        // Within one emission interval of the first: denied.
        let gap = period_ms * MILLISECOND / count * per_mille / 1000;
        let (rendered, typed) = second(&response, &format!("{count}/{period_ms}ms"), gap);
        let read = RetryHeaders::read(&rendered, name);
        prop_assert_eq!(read, typed, "{:?}", rendered);
        prop_assert!(typed.retry_after.is_some());
        prop_assert_eq!(typed.retry_after_ms.is_some(), ms);
    }
}
