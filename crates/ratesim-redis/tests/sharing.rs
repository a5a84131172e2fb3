//! Several service instances sharing one plan through Redis: threads, each
//! with its own `RedisLimiter` (its own connection pool), hammering the same
//! identities get exactly what the policy allows, never more.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use common::{Server, TempDir};
use ratesim::limiter::{FailMode, RedisLimiter, RedisLimiterConfig};
use ratesim::policy::Request;

const POLICY: &str = r#"
provider = "Shared"
[[plan]]
name = "pro"
[[plan.limit]]
id = "burst"
algorithm = "gcra"
rate = "1/h"
burst = 50
[[plan.limit]]
id = "team-hour"
algorithm = "sliding-log"
limit = 120
period = "1h"
scope = "workspace"
"#;

const THREADS: usize = 8;
const PER_THREAD: usize = 100;

/// Runs `THREADS` instances, each sending `PER_THREAD` requests made by
/// `req(thread, n)` at once (released together); the admissions counted per
/// key index (`key_of(thread)`).
fn hammer(server: &Server, at: Option<u64>, key_of: fn(usize) -> usize) -> Vec<u64> {
    let admitted: Arc<Vec<AtomicU64>> = Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (url, admitted, barrier) = (server.url(), admitted.clone(), barrier.clone());
            std::thread::spawn(move || {
                let config = RedisLimiterConfig {
                    fail_mode: FailMode::Closed,
                    timeout: std::time::Duration::from_secs(2),
                    policy_toml: Some(POLICY.to_string()),
                    ..RedisLimiterConfig::default()
                };
                let limiter = RedisLimiter::new(&url, "shared", "pro", config).unwrap();
                let key = format!("key-{}", key_of(t));
                let req = Request::new(&key).with_workspace("team");
                barrier.wait();
                for _ in 0..PER_THREAD {
                    let d = limiter.try_check(&req, at).expect("Redis answers");
                    if d.allowed {
                        admitted[key_of(t)].fetch_add(1, Ordering::Relaxed);
                    }
                }
                assert_eq!(limiter.stats().failed_closed, 0);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("no thread panicked");
    }
    admitted.iter().map(|a| a.load(Ordering::Relaxed)).collect()
}

#[test]
fn instances_hammering_one_key_get_exactly_the_burst() {
    let dir = TempDir::new("sharing-one");
    let server = Server::start(&dir.0, &[]);
    // All at one instant, and on the server's clock (well within the
    // 72 s a drained unit takes to come back at 1/h... with burst 50).
    let at_once = hammer(&server, Some(1_767_225_600_000_000_000), |_| 0);
    assert_eq!(at_once[0], 50, "one key, {THREADS} instances × {PER_THREAD} at one instant: the burst, exactly");
    let mut c = server.conn();
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    let live = hammer(&server, None, |_| 0);
    assert_eq!(live[0], 50, "one key on the server's clock: the burst, exactly (1/h adds none within the run)");
}

#[test]
fn instances_with_their_own_keys_share_the_workspace_limit_exactly() {
    let dir = TempDir::new("sharing-team");
    let server = Server::start(&dir.0, &[]);
    // Four keys (two threads each) of one workspace: each key's bucket
    // admits 50, the workspace's hour admits 120 in all.
    let per_key = hammer(&server, None, |t| t % 4);
    let total: u64 = per_key.iter().sum();
    assert_eq!(total, 120, "the workspace limit, exactly: {per_key:?}");
    assert!(per_key.iter().all(|&k| k <= 50), "no key above its burst: {per_key:?}");
    let mut c = server.conn();
    let state: redis::Value = redis::cmd("RATESIM.STATE").arg("team").arg("shared").arg("pro").query(&mut c).unwrap();
    let text = format!("{state:?}");
    assert!(text.contains("team-hour") && text.contains("total: 120"), "the workspace's log holds 120: {text}");
}
