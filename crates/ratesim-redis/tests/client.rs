//! `RedisLimiter` against a real server that dies, hangs and comes back:
//! it answers per its fail mode (counted), does not wait on a dead server
//! for every request, reconnects by itself, reloads its policy into a
//! server that lost it, and never panics.

mod common;

use std::time::{Duration, Instant};

use common::{Server, TempDir};
use ratesim::limiter::{FailMode, RedisLimiter, RedisLimiterConfig};
use ratesim::policy::Request;

const POLICY: &str = r#"
provider = "Client"
[[plan]]
name = "pro"
[[plan.limit]]
id = "rpm"
algorithm = "gcra"
rate = "600/min"
burst = 1000
"#;

fn limiter(url: &str, mode: FailMode) -> RedisLimiter {
    let config = RedisLimiterConfig {
        fail_mode: mode,
        timeout: Duration::from_millis(100),
        retry_every: Duration::from_millis(200),
        pool_size: 4,
        policy_toml: Some(POLICY.to_string()),
    };
    RedisLimiter::new(url, "client", "pro", config).expect("a valid policy and URL")
}

/// Checks until `until` says stop (at most 10 s); returns how many answers
/// were fallbacks and how many came from Redis.
fn run_until(l: &RedisLimiter, mut until: impl FnMut(&ratesim::limiter::RedisDecision) -> bool) -> (u64, u64) {
    let (mut fallback, mut decided) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = l.check(&Request::new("key-1"));
        match d.fallback {
            Some(_) => fallback += 1,
            None => decided += 1,
        }
        if until(&d) {
            return (fallback, decided);
        }
        assert!(Instant::now() < deadline, "gave up waiting ({fallback} fallbacks, {decided} decisions)");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn redis_killed_and_restarted_mid_run() {
    for mode in [FailMode::Open, FailMode::Closed] {
        let dir = TempDir::new("client");
        let server = Server::start(&dir.0, &[]);
        let port = server.port;
        let l = limiter(&server.url(), mode);
        assert_eq!(l.stats().policy_loads, 1, "loaded at start");
        let d = l.check(&Request::new("key-1"));
        assert_eq!((d.allowed, d.status, d.fallback.clone()), (true, 200, None), "{d:?}");
        assert_eq!(d.headers.len(), 3, "X-RateLimit-* from the module: {d:?}");

        // Killed: the fail mode answers, at once after the first failure.
        server.kill();
        let t = Instant::now();
        let down: Vec<_> = (0..50).map(|_| l.check(&Request::new("key-1"))).collect();
        assert!(t.elapsed() < Duration::from_secs(2), "50 answers during an outage took {:?}", t.elapsed());
        for d in &down {
            assert!(d.fallback.is_some(), "{d:?}");
            match mode {
                FailMode::Open => assert_eq!((d.allowed, d.status), (true, 200)),
                FailMode::Closed => {
                    assert_eq!((d.allowed, d.status), (false, 503));
                    assert_eq!(d.response().header("Retry-After"), Some("1"));
                }
            }
        }
        let s = l.stats();
        match mode {
            FailMode::Open => assert_eq!((s.failed_open, s.failed_closed), (50, 0)),
            FailMode::Closed => assert_eq!((s.failed_open, s.failed_closed), (0, 50)),
        }
        assert!(s.errors >= 1 && s.errors < 50, "failures counted, not retried per request: {s:?}");

        // Back on the same port, empty (no persistence): the limiter
        // reconnects, loads its policy again, and Redis decides.
        let again = Server::start_on(port, &dir.0, &[]);
        let (_, decided) = run_until(&l, |d| d.fallback.is_none());
        assert_eq!(decided, 1);
        let s = l.stats();
        assert_eq!(s.policy_loads, 2, "the policy was loaded into the new server: {s:?}");
        drop(again);
    }
}

#[test]
fn a_hung_redis_times_out_into_the_fail_mode() {
    let dir = TempDir::new("client-hang");
    let mut server = Server::start(&dir.0, &[]);
    let l = limiter(&server.url(), FailMode::Closed);
    assert!(l.check(&Request::new("key-1")).fallback.is_none());
    // SIGSTOP: the server accepts nothing and answers nothing.
    assert!(server.peer.signal_and_wait(libc::SIGSTOP, Duration::from_millis(100)).is_none());
    let t = Instant::now();
    let d = l.check(&Request::new("key-1"));
    let waited = t.elapsed();
    assert!(d.fallback.is_some() && !d.allowed && d.status == 503, "{d:?}");
    assert!(
        waited >= Duration::from_millis(90) && waited < Duration::from_secs(2),
        "the timeout bounds the wait: {waited:?}"
    );
    assert!(server.peer.signal_and_wait(libc::SIGCONT, Duration::from_millis(100)).is_none());
    let (fallbacks, _) = run_until(&l, |d| d.fallback.is_none());
    assert!(fallbacks < 200, "back within the retry interval: {fallbacks} fallbacks");
}

#[test]
fn a_wrong_plan_or_policy_is_refused_up_front() {
    let bad_plan = RedisLimiter::new(
        "redis://127.0.0.1:1/",
        "client",
        "gold",
        RedisLimiterConfig { policy_toml: Some(POLICY.into()), ..RedisLimiterConfig::default() },
    );
    assert_eq!(bad_plan.unwrap_err(), r#"no plan named "gold" in policy "client"; its plans are: pro"#);
    let bad_policy = RedisLimiter::new(
        "redis://127.0.0.1:1/",
        "client",
        "pro",
        RedisLimiterConfig {
            policy_toml: Some(POLICY.replace("burst = 1000", "burst = 0")),
            ..RedisLimiterConfig::default()
        },
    );
    assert!(bad_policy.unwrap_err().starts_with("client:9:9: plan \"pro\" > limit \"rpm\" > burst"));
    assert!(RedisLimiter::new("http://nope", "client", "pro", RedisLimiterConfig::default()).is_err());
}
