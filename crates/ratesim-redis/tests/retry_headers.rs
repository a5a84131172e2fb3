//! The `[response]` retry options (`retry_after_format`, `retry_after_ms`,
//! `x_should_retry`) reach callers of the module: `RATESIM.CHECK` answers
//! the very headers the in-process limiter renders (one rendering path,
//! `policy::render`), so the SDKs that read `retry-after-ms`, a fractional
//! `Retry-After` or `x-should-retry` see them behind Redis too.

mod common;

use std::sync::Arc;

use common::{check, load_policy, Server, TempDir};
use ratesim::limiter::{KeyedLimiter, ManualClock};
use ratesim::policy::{self, Request};
use ratesim::sim::DEFAULT_START;
use ratesim::time::MILLISECOND;

const POLICY: &str = r#"
provider = "Example"
[response]
retry_after_format = "fractional"
retry_after_ms = true
x_should_retry = "1h"
[[plan]]
name = "fast"
[[plan.limit]]
id = "rps"
algorithm = "gcra"
rate = "10/s"
burst = 1
[[plan]]
name = "daily"
[[plan.limit]]
id = "rpd"
algorithm = "gcra"
rate = "1/day"
burst = 1
"#;

/// The module's answer and the in-process limiter's to two requests of one
/// key, `gap` apart, on `plan`; the second is denied.
fn second_of_two(conn: &mut redis::Connection, key: &str, plan: &str, gap: u64) -> Vec<(String, String)> {
    let policy = Arc::new(policy::parse(POLICY, "example.toml").unwrap());
    let limiter = KeyedLimiter::with_clock(policy, plan, ManualClock::new(DEFAULT_START)).unwrap();
    let req = Request::new(key);
    drop(limiter.check(&req).expect("the first request is admitted in process"));
    limiter.clock().advance(gap);
    let local = limiter.check(&req).expect_err("the second request is denied in process").response();

    let first = DEFAULT_START.to_string();
    let second = (DEFAULT_START + gap).to_string();
    assert!(check(conn, &[key, "ex", plan, "AT", &first]).allowed, "the first request is admitted by the module");
    let module = check(conn, &[key, "ex", plan, "AT", &second]);
    assert!(!module.allowed, "the second request is denied by the module");
    let remote = module.response();
    assert_eq!(remote, local, "the module renders what the in-process limiter renders");
    remote.headers
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[test]
fn the_module_answers_the_policys_retry_headers() {
    let dir = TempDir::new("retry-headers");
    let server = Server::start(&dir.0, &[]);
    let mut c = server.conn();
    load_policy(&mut c, "ex", POLICY);

    // 10/s: 30 ms after the first, the second waits 70 ms.
    let h = second_of_two(&mut c, "a", "fast", 30 * MILLISECOND);
    assert_eq!(header(&h, "Retry-After"), Some("0.07"), "{h:?}");
    assert_eq!(header(&h, "retry-after-ms"), Some("70"), "{h:?}");
    assert_eq!(header(&h, "x-should-retry"), Some("true"), "{h:?}");

    // 1/day: the wait is beyond the policy's one-hour horizon.
    let h = second_of_two(&mut c, "b", "daily", 0);
    assert_eq!(header(&h, "x-should-retry"), Some("false"), "{h:?}");
    assert_eq!(header(&h, "retry-after-ms"), Some("86400000"), "{h:?}");
    assert_eq!(header(&h, "Retry-After"), Some("86400"), "{h:?}");

    // RENDER 0 leaves the headers out (the caller renders them itself).
    let later = (DEFAULT_START + 40 * MILLISECOND).to_string();
    let bare = check(&mut c, &["a", "ex", "fast", "AT", &later, "RENDER", "0"]);
    assert!(!bare.allowed && bare.response().headers.is_empty());
    server.shutdown();
}
