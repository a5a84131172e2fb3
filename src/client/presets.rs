//! Named client behaviours, each taken from the code it models: the SDK
//! version and source file are in its origin line (and README's client
//! table).

use super::quota::RetryQuota;
use super::{AboveCap, Backoff, ClientSpec, ErrorCode, Jitter, Methods, Pacing, Reads, RetryAfter, Throttling};
use crate::time::{MILLISECOND, MINUTE, SECOND};

/// Preset names and one-line origins, in the order `--help` lists them.
pub const PRESETS: &[(&str, &str)] = &[
    ("none", "no retries: each request is exactly one attempt (open loop)"),
    (
        "openai-python",
        "official OpenAI Python SDK 2.52.0 to 3.57.0 (openai/_base_client.py: _calculate_retry_timeout, _should_retry; \
         checked on 3.3.1 and 3.57.0): 2 retries, 0.5 s·2^n capped at 8 s minus up to 25% jitter; reads retry-after-ms, \
         then Retry-After (seconds, fractional, or HTTP date); honours 0 < wait ≤ 120 s and gives up above; obeys \
         x-should-retry; retries 408, 409, 429, 5xx",
    ),
    (
        "openai-python-2.51",
        "official OpenAI Python SDK up to 2.51.0 (openai/_base_client.py: _calculate_retry_timeout, _should_retry): \
         as openai-python, but honours 0 < wait ≤ 60 s and otherwise uses its own backoff (never gives up on the header)",
    ),
    (
        "openai-node",
        "official OpenAI Node SDK 7.59.0 (src/client.ts: shouldRetry, retryRequest, calculateDefaultRetryTimeoutMillis): \
         2 retries, 0.5 s·2^n capped at 8 s minus up to 25% jitter; reads retry-after-ms, then Retry-After (seconds, \
         fractional, or HTTP date); honours 0 ≤ wait ≤ 60 s (0: at once), else own backoff; obeys x-should-retry; \
         retries 408, 409, 429, 5xx",
    ),
    (
        "anthropic-python",
        "official Anthropic Python SDK 1.6.0 to 2.15.0 (anthropic/_base_client.py: _calculate_retry_timeout, \
         _should_retry; checked on 2.15.0): 2 retries, 0.5 s·2^n capped at 8 s minus up to 25% jitter; reads \
         retry-after-ms, then Retry-After; honours any wait > 0 (at most 4,294,967 s), else own backoff; obeys \
         x-should-retry; retries 408, 409, 429, 5xx",
    ),
    (
        "anthropic-python-1.5",
        "official Anthropic Python SDK up to 1.5.0 (anthropic/_base_client.py: _calculate_retry_timeout): as \
         anthropic-python, but honours 0 < wait ≤ 60 s and otherwise uses its own backoff",
    ),
    (
        "google-genai",
        "Google GenAI Python SDK 3.6.1 without HttpRetryOptions (google/genai/_api_client.py: retry_args(None) stops \
         after 1 attempt): no retries",
    ),
    (
        "google-genai-retry",
        "Google GenAI Python SDK 3.6.1 with HttpRetryOptions() (google/genai/_api_client.py: retry_args; tenacity \
         9.1 wait_exponential_jitter): 5 attempts, min(1 s·2^n + U(0,1) s, 60 s), retries 408, 429, 500, 502, 503, \
         504, ignores Retry-After",
    ),
    (
        "aws-legacy",
        "AWS botocore 1.44.8, retry_mode legacy (botocore/retryhandler.py, data/_retry.json __default__; the default \
         mode up to botocore 1.35): 5 attempts, U(0,1)·2^n s uncapped; retries 429, 500, 502, 503, 504, 509 and 400 \
         with Throttling, ThrottlingException, ThrottledException, RequestThrottledException or \
         ProvisionedThroughputExceededException; ignores Retry-After",
    ),
    (
        "aws-standard",
        "AWS botocore 1.44.8, retry_mode standard, the default (botocore/retries/standard.py, retries/quota.py): \
         3 attempts, U(0,1)·min(2^n, 20) s after throttling, U(0,1)·min(0.05·2^n, 20) s otherwise; retries 429, \
         500, 502, 503, 504 and the throttling and transient error codes; ignores Retry-After; retry quota 500 per \
         client, 14 per retry, 5 after throttling",
    ),
    (
        "aws-standard-1.35",
        "AWS botocore 1.35.0, retry_mode standard (botocore/retries/standard.py, retries/quota.py): 3 attempts, \
         U(0,1)·min(2^n, 20) s; retries 500, 502, 503, 504 and the throttling and transient error codes (a bare 429 \
         is not retried); ignores Retry-After; retry quota 500 per client, 5 per retry",
    ),
    (
        "aws-adaptive",
        "AWS botocore 1.44.8, retry_mode adaptive (botocore/retries/adaptive.py, throttling.py, bucket.py): \
         aws-standard plus a client-side token bucket whose rate follows CUBIC (β 0.7, C 0.4, at least 0.5/s, \
         at most 2× the measured rate), switched on by the first throttling response",
    ),
    (
        "urllib3-default",
        "urllib3 2.8.0 Retry.DEFAULT = Retry(3) (urllib3/util/retry.py: is_retry, sleep, parse_retry_after, \
         get_backoff_time), what urllib3.request() and PoolManager use (requests' HTTPAdapter never retries by \
         default): 4 attempts; retries 413, 429, 503 only when they carry Retry-After (whole seconds or HTTP date, \
         at most 6 h; anything else fails the request); no backoff; GET requests (POST is never retried on status)",
    ),
    (
        "urllib3-backoff",
        "urllib3 2.8.0 Retry(total=5, backoff_factor=1, status_forcelist=[429, 500, 502, 503, 504]), the recipe \
         mounted on requests' HTTPAdapter (urllib3/util/retry.py): 6 attempts; first retry at once, then 1 s·2^n \
         up to 120 s; honours Retry-After (at most 6 h); GET requests",
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

/// botocore's `ThrottledRetryableChecker._THROTTLED_ERROR_CODES` (1.44.8; 1.35.0 has the same list).
const AWS_THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// botocore's `TransientRetryableChecker._TRANSIENT_ERROR_CODES`.
const AWS_TRANSIENT_CODES: &[&str] = &["RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"];

/// The 400-status error codes of botocore's legacy `_retry.json` `__default__`.
const AWS_LEGACY_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
];

/// urllib3's `Retry.DEFAULT_ALLOWED_METHODS`.
const URLLIB3_METHODS: &[&str] = &["DELETE", "GET", "HEAD", "OPTIONS", "PUT", "TRACE"];

/// Every preset name.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

fn codes(list: &[&str], status: Option<u16>) -> Vec<ErrorCode> {
    list.iter().map(|c| ErrorCode { code: c.to_string(), status }).collect()
}

/// The preset called `name`.
pub fn preset(name: &str) -> Option<ClientSpec> {
    let origin = PRESETS.iter().find(|(n, _)| *n == name)?.1.to_string();
    let base = ClientSpec { name: name.to_string(), origin, ..ClientSpec::none() };
    let exp = |base: u64, cap: u64| Backoff::Exponential { base, factor: 2.0, cap };
    // The Stainless-generated SDKs (OpenAI, Anthropic) share their retry
    // loop; they differ in what they do with the wait they read.
    let stainless = |retry_after: RetryAfter| ClientSpec {
        max_attempts: 3,
        // 429 first: it is the status the simulator produces most.
        retry_on: [429, 408, 409].into_iter().chain(500..=599).collect(),
        backoff: exp(SECOND / 2, 8 * SECOND),
        jitter: Jitter::Subtract(0.25),
        reads: Reads::STAINLESS,
        retry_after,
        ..base.clone()
    };
    let within_60s =
        |zero_immediate| RetryAfter::Honour { cap: Some(MINUTE), above_cap: AboveCap::Backoff, zero_immediate };
    let throttling =
        Throttling { statuses: vec![429], codes: AWS_THROTTLING_CODES.iter().map(|c| c.to_string()).collect() };
    let aws_standard = ClientSpec {
        max_attempts: 3,
        retry_on: vec![429, 500, 502, 503, 504],
        retry_codes: codes(AWS_THROTTLING_CODES, None)
            .into_iter()
            .chain(codes(AWS_TRANSIENT_CODES, None).into_iter().filter(|c| c.code != "PriorRequestNotComplete"))
            .collect(),
        backoff: exp(SECOND, 20 * SECOND),
        non_throttling_base: Some(50 * MILLISECOND),
        jitter: Jitter::Full,
        throttling: throttling.clone(),
        retry_quota: Some(RetryQuota::BOTOCORE),
        ..base.clone()
    };
    let urllib3 = |max_attempts, retry_on: Vec<u16>, factor| ClientSpec {
        max_attempts,
        retry_on,
        retry_on_with_retry_after: vec![413, 429, 503],
        methods: Some(Methods {
            method: "GET".into(),
            retried: URLLIB3_METHODS.iter().map(|m| m.to_string()).collect(),
        }),
        backoff: Backoff::Urllib3 { factor, max: 120 * SECOND },
        reads: Reads::URLLIB3,
        retry_after: RetryAfter::Honour {
            cap: Some(6 * 3600 * SECOND),
            above_cap: AboveCap::Clamp,
            zero_immediate: false,
        },
        ..base.clone()
    };
    Some(match name {
        "none" => ClientSpec { origin: base.origin, ..ClientSpec::none() },
        "openai-python" => {
            stainless(RetryAfter::Honour { cap: Some(2 * MINUTE), above_cap: AboveCap::GiveUp, zero_immediate: false })
        }
        "openai-python-2.51" | "anthropic-python-1.5" => stainless(within_60s(false)),
        "openai-node" => stainless(within_60s(true)),
        "anthropic-python" => stainless(RetryAfter::Honour {
            cap: Some(4_294_967 * SECOND),
            above_cap: AboveCap::Clamp,
            zero_immediate: false,
        }),
        "google-genai" | "google-genai-retry" => ClientSpec {
            // retry_args(None) stops after one attempt; HttpRetryOptions()
            // fills in the rest, which `max_attempts` can turn on here.
            max_attempts: if name == "google-genai" { 1 } else { 5 },
            retry_on: vec![408, 429, 500, 502, 503, 504],
            backoff: exp(SECOND, 60 * SECOND),
            jitter: Jitter::Add(SECOND),
            ..base
        },
        "aws-legacy" => ClientSpec {
            max_attempts: 5,
            retry_on: vec![429, 500, 502, 503, 504, 509],
            retry_codes: codes(AWS_LEGACY_CODES, Some(400)),
            backoff: exp(SECOND, u64::MAX),
            jitter: Jitter::Full,
            throttling,
            ..base
        },
        "aws-standard" => aws_standard,
        "aws-standard-1.35" => ClientSpec {
            retry_on: vec![500, 502, 503, 504],
            non_throttling_base: None,
            retry_quota: Some(RetryQuota { retry_cost: 5, throttling_cost: 5, ..RetryQuota::BOTOCORE }),
            ..aws_standard
        },
        "aws-adaptive" => ClientSpec { pacing: Some(Pacing::Cubic), ..aws_standard },
        "urllib3-default" => urllib3(4, vec![], 0),
        "urllib3-backoff" => urllib3(6, vec![429, 500, 502, 503, 504], SECOND),
        "runagent-backoff" => ClientSpec {
            max_attempts: 5,
            retry_on: vec![429],
            backoff: exp(SECOND, u64::MAX),
            reads: Reads::SECONDS,
            retry_after: RetryAfter::Honour { cap: None, above_cap: AboveCap::Clamp, zero_immediate: false },
            ..base
        },
        "runagent-js" => ClientSpec {
            max_attempts: 3,
            retry_on: vec![429],
            backoff: Backoff::Fixed(60 * SECOND),
            reads: Reads::SECONDS,
            retry_after: RetryAfter::Honour { cap: None, above_cap: AboveCap::Clamp, zero_immediate: false },
            ..base
        },
        "predictions-node" => ClientSpec {
            max_attempts: 3,
            retry_on: vec![429],
            backoff: exp(SECOND, u64::MAX),
            reads: Reads::SECONDS,
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
            reads: Reads::SECONDS,
            retry_after: RetryAfter::Honour {
                cap: Some(60 * SECOND),
                above_cap: AboveCap::Clamp,
                zero_immediate: false,
            },
            ..base
        },
        _ => return None,
    })
}
