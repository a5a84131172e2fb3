//! Property-test two hand-written limiters against the plans they claim to
//! enforce, with `ratesim::testing` (feature `testing`):
//!
//! ```console
//! $ cargo run --release --features testing --example check_limiter
//! ```
//!
//! Both have a real bug class: a token bucket kept in `f64` seconds (its
//! refill rounds the wrong way at some instants) and a fixed window that
//! counts denied requests (INCR, then compare). Each is checked, and the
//! minimal trace on which it disagrees with the exact model is printed.

use std::collections::HashMap;

use ratesim::policy::{self, Request};
use ratesim::testing::{check, Config};
use ratesim::time::Nanos;

const POLICY: &str = r#"
provider = "Example"

[[plan]]
name = "bucket"
[[plan.limit]]
id = "rps"
algorithm = "gcra"
rate = "7/s"
burst = 1

[[plan]]
name = "window"
[[plan.limit]]
id = "tpm"
algorithm = "fixed-window"
unit = "tokens"
rate = "10/min"
"#;

/// A token bucket in `f64` seconds, one per key.
fn float_bucket() -> impl FnMut(Nanos, &Request<'_>) -> bool {
    let mut buckets: HashMap<String, (f64, f64)> = HashMap::new();
    move |now, req| {
        let now = now as f64 / 1e9;
        let (tokens, last) = buckets.entry(req.key.to_string()).or_insert((1.0, now));
        *tokens = (*tokens + (now - *last) * 7.0).min(1.0);
        *last = now;
        let ok = *tokens >= 1.0;
        if ok {
            *tokens -= 1.0;
        }
        ok
    }
}

/// A clock-minute window of 10 tokens that adds every request, admitted or
/// not, before comparing.
fn counting_window() -> impl FnMut(Nanos, &Request<'_>) -> bool {
    let mut windows: HashMap<String, (u64, u64)> = HashMap::new();
    move |now, req| {
        let minute = now / 60_000_000_000;
        let w = windows.entry(req.key.to_string()).or_insert((minute, 0));
        if w.0 != minute {
            *w = (minute, 0);
        }
        w.1 += req.tokens;
        w.1 <= 10
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = policy::parse(POLICY, "example.toml")?;
    let config = Config::default();
    for (plan, result) in [
        ("bucket", check(policy.plan("bucket").expect("in the policy"), &config, float_bucket)),
        ("window", check(policy.plan("window").expect("in the policy"), &config, counting_window)),
    ] {
        match result {
            Ok(()) => println!("{plan}: agrees with the plan on {} traces", config.cases),
            Err(failure) => println!("{plan}: {failure}"),
        }
    }
    Ok(())
}
