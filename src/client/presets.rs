//! Named client behaviours, each taken from the code it models.

use super::{Backoff, ClientSpec, Jitter, RetryAfter};
use crate::time::{MINUTE, SECOND};

/// Preset names and one-line origins, in the order `--help` lists them.
pub const PRESETS: &[(&str, &str)] = &[
    ("none", "no retries: each request is exactly one attempt (open loop)"),
    (
        "openai-python",
        "official OpenAI Python SDK 3.3.1 (_base_client.py): 2 retries, 0.5 s·2^n capped at 8 s minus up to 25% jitter; \
         honours Retry-After/retry-after-ms up to 120 s and gives up above; retries 408, 409, 429, 5xx",
    ),
    (
        "runagent-backoff",
        "RunAgent page call_with_backoff (001, lines 44-57): 5 attempts, waits Retry-After else 2^attempt s, no jitter",
    ),
    (
        "runagent-js",
        "RunAgent page requestWithRetry (001, best practices): 3 attempts, waits Retry-After else 60 s",
    ),
    (
        "predictions-node",
        "predictions page apiRequest (002): 3 attempts in all, waits min(Retry-After or 60 s, 2^n s)",
    ),
    (
        "aicredits-jitter",
        "AICredits page chat_with_retry (003): 5 attempts, waits 2^attempt + U(0,1) s, ignores Retry-After \
         (the outer loop only: the OpenAI SDK it wraps would add its own 2 retries per try)",
    ),
    ("naive-immediate", "retries at once, 10 attempts, ignores Retry-After: the storm maker"),
    ("fixed-1s", "retries after exactly 1 s, 6 attempts, ignores Retry-After (synchronized waves)"),
    ("exp-full-jitter", "exponential 1 s·2^n capped at 60 s with full jitter, 6 attempts, honours Retry-After"),
];

/// Every preset name.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

/// The preset called `name`.
pub fn preset(name: &str) -> Option<ClientSpec> {
    let origin = PRESETS.iter().find(|(n, _)| *n == name)?.1.to_string();
    let base = ClientSpec { name: name.to_string(), origin, ..ClientSpec::none() };
    let exp = |base: u64, cap: u64| Backoff::Exponential { base, factor: 2.0, cap };
    Some(match name {
        "none" => ClientSpec { origin: base.origin, ..ClientSpec::none() },
        "openai-python" => ClientSpec {
            max_attempts: 3,
            // 429 first: it is the status the simulator produces most.
            retry_on: [429, 408, 409].into_iter().chain(500..=599).collect(),
            backoff: exp(SECOND / 2, 8 * SECOND),
            jitter: Jitter::Subtract(0.25),
            retry_after: RetryAfter::Honour { cap: Some(2 * MINUTE), give_up_above_cap: true },
            ..base
        },
        "runagent-backoff" => ClientSpec {
            max_attempts: 5,
            retry_on: vec![429],
            backoff: exp(SECOND, u64::MAX),
            retry_after: RetryAfter::Honour { cap: None, give_up_above_cap: false },
            ..base
        },
        "runagent-js" => ClientSpec {
            max_attempts: 3,
            retry_on: vec![429],
            backoff: Backoff::Fixed(60 * SECOND),
            retry_after: RetryAfter::Honour { cap: None, give_up_above_cap: false },
            ..base
        },
        "predictions-node" => ClientSpec {
            max_attempts: 3,
            retry_on: vec![429],
            backoff: exp(SECOND, u64::MAX),
            retry_after: RetryAfter::MinOfBackoff { default: 60 * SECOND },
            ..base
        },
        "aicredits-jitter" => ClientSpec {
            max_attempts: 5,
            retry_on: vec![429],
            backoff: exp(SECOND, u64::MAX),
            jitter: Jitter::Add(SECOND),
            ..base
        },
        "naive-immediate" => ClientSpec { max_attempts: 10, retry_on: vec![429, 503], ..base },
        "fixed-1s" => ClientSpec { max_attempts: 6, retry_on: vec![429, 503], backoff: Backoff::Fixed(SECOND), ..base },
        "exp-full-jitter" => ClientSpec {
            max_attempts: 6,
            retry_on: vec![429, 503],
            backoff: exp(SECOND, 60 * SECOND),
            jitter: Jitter::Full,
            retry_after: RetryAfter::Honour { cap: Some(60 * SECOND), give_up_above_cap: false },
            ..base
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RetryChoice;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn every_listed_preset_exists() {
        for name in preset_names() {
            assert!(preset(name).is_some(), "{name}");
        }
    }

    #[test]
    fn openai_schedule_matches_the_sdk() {
        let c = preset("openai-python").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // No header: 0.5 s, then 1 s, each reduced by at most 25 %.
        for (attempt, full) in [(0u32, SECOND / 2), (1, SECOND)] {
            match c.after_failure(attempt, 429, None, 0, &mut rng) {
                RetryChoice::After(d) => assert!(d <= full && d >= full * 3 / 4, "{d}"),
                other => panic!("{other:?}"),
            }
        }
        // Third failure: out of retries (2 retries = 3 attempts).
        assert_eq!(c.after_failure(2, 429, None, 0, &mut rng), RetryChoice::GiveUp);
        // Header honoured exactly up to 120 s; above, the SDK gives up.
        assert_eq!(c.after_failure(0, 429, Some(12), 0, &mut rng), RetryChoice::After(12 * SECOND));
        assert_eq!(c.after_failure(0, 429, Some(121), 0, &mut rng), RetryChoice::GiveUp);
        assert_eq!(c.after_failure(0, 402, None, 0, &mut rng), RetryChoice::GiveUp);
    }

    #[test]
    fn page_clients_follow_their_code() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let ra = preset("runagent-backoff").unwrap();
        assert_eq!(ra.after_failure(0, 429, None, 0, &mut rng), RetryChoice::After(SECOND));
        assert_eq!(ra.after_failure(3, 429, None, 0, &mut rng), RetryChoice::After(8 * SECOND));
        assert_eq!(ra.after_failure(2, 429, Some(3600), 0, &mut rng), RetryChoice::After(3600 * SECOND));
        assert_eq!(ra.after_failure(4, 429, None, 0, &mut rng), RetryChoice::GiveUp);
        let node = preset("predictions-node").unwrap();
        assert_eq!(node.after_failure(0, 429, Some(30), 0, &mut rng), RetryChoice::After(SECOND));
        assert_eq!(node.after_failure(1, 429, None, 0, &mut rng), RetryChoice::After(2 * SECOND));
        assert_eq!(node.after_failure(2, 429, None, 0, &mut rng), RetryChoice::GiveUp);
        let ai = preset("aicredits-jitter").unwrap();
        match ai.after_failure(2, 429, Some(1), 0, &mut rng) {
            RetryChoice::After(d) => assert!((4 * SECOND..=5 * SECOND).contains(&d)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn overrides_parse_and_errors_are_clear() {
        let c = ClientSpec::parse("openai-python,max_retries=5").unwrap();
        assert_eq!(c.max_attempts, 6);
        let c = ClientSpec::parse("fixed-1s,jitter=full,retry_on=429+503,pace=window:100:1h").unwrap();
        assert_eq!(c.jitter, Jitter::Full);
        assert!(ClientSpec::parse("nope").unwrap_err().contains("openai-python"));
        assert!(ClientSpec::parse("none,max_attempts=0").unwrap_err().contains("max_attempts"));
        assert!(ClientSpec::parse("none,colour=red").unwrap_err().contains("unknown client option"));
    }
}
