//! Every client preset against scripted responses: attempt counts and each
//! delay's bounds, as derived from the source of the SDK version the preset
//! names (quoted beside each case). Responses are written as for
//! `ratesim client explain --responses`: `429:RA=89` (Retry-After),
//! `RA-date=30` (an HTTP date 30 s later), `ms=1500` (retry-after-ms),
//! `should-retry=false`, `code=ThrottlingException`.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ratesim::client::schedule::{parse_script, replay, Outcome, SCRIPT_START};
use ratesim::client::{preset_names, ClientSpec, Response, RetryChoice};
use ratesim::time::Nanos;

/// What a step must do.
#[derive(Clone, Copy, Debug)]
enum W {
    /// Retry after a delay in `[lo, hi]` seconds (exact bounds).
    R(f64, f64),
    /// Retry after exactly this many seconds.
    At(f64),
    /// Give up (the request fails).
    Stop,
    /// Succeed.
    Ok,
}
use W::*;

fn ns(s: f64) -> Nanos {
    (s * 1e9).round() as Nanos
}

/// Replays `script` against `client` and checks every step; for each retry
/// also draws 200 real delays from a seeded stream and checks them against
/// the bounds.
fn expect(client: &str, script: &str, want: &[W]) {
    let spec = ClientSpec::parse(client).unwrap();
    let responses = parse_script(script).unwrap();
    let steps = replay(&spec, &responses);
    let context = format!("client {client}, responses {script}: {steps:#?}");
    assert_eq!(steps.len(), want.len(), "attempts made: {context}");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (step, w) in steps.iter().zip(want) {
        match (*w, step.outcome) {
            (R(lo, hi), Outcome::Retries { lo: a, hi: b, .. }) => {
                assert_eq!((a, b), (ns(lo), ns(hi)), "attempt {}: {context}", step.attempt + 1);
                // Only the first attempt sends at a known instant; later ones
                // are checked through their bounds above.
                if step.attempt == 0 {
                    let r = &responses[0];
                    let response = Response {
                        status: r.status,
                        code: &r.code,
                        headers: r.headers(SCRIPT_START),
                        now: SCRIPT_START,
                    };
                    for _ in 0..200 {
                        match spec.after_failure(0, &response, 0, &mut rng) {
                            RetryChoice::After(d) => {
                                assert!((a..=b).contains(&d), "draw {d} outside [{a}, {b}]: {context}")
                            }
                            RetryChoice::GiveUp => panic!("a draw gave up: {context}"),
                        }
                    }
                }
            }
            (At(s), Outcome::Retries { lo, hi, .. }) => {
                assert_eq!((lo, hi), (ns(s), ns(s)), "attempt {}: {context}", step.attempt + 1)
            }
            (Stop, Outcome::GivesUp(_) | Outcome::QuotaEmpty { .. }) | (Ok, Outcome::Succeeded) => {}
            (w, o) => panic!("attempt {}: expected {w:?}, got {o:?}: {context}", step.attempt + 1),
        }
    }
}

/// The Stainless-generated SDKs' backoff before retry n: 0.5·2^n capped at
/// 8 s, times (1 − 0.25·U) (`_calculate_retry_timeout`,
/// `calculateDefaultRetryTimeoutMillis`).
fn stainless(n: i32) -> W {
    let d = (0.5 * 2f64.powi(n)).min(8.0);
    R(d * 0.75, d)
}

#[test]
fn openai_python_honours_up_to_120_s_and_gives_up_above() {
    // openai 3.57.0 (and 3.3.1) openai/_base_client.py: DEFAULT_MAX_RETRIES
    // = 2; `0 < retry_after <= MAX_RETRY_AFTER_DELAY` (120) is waited;
    // _should_retry returns False above it.
    let c = "openai-python";
    expect(c, "429,429,429", &[stainless(0), stainless(1), Stop]);
    expect(c, "429:RA=121", &[Stop]);
    expect(c, "429:RA=120,200", &[At(120.0), Ok]);
    expect(c, "429:RA=0,429:RA=0.25,200", &[stainless(0), At(0.25), Ok]);
    // retry-after-ms is read before Retry-After, and its cap applies too.
    expect(c, "429:ms=1500:RA=89,200", &[At(1.5), Ok]);
    expect(c, "429:ms=121000", &[Stop]);
    expect(c, "429:RA-date=30,200", &[At(30.0), Ok]);
    // x-should-retry wins over the status rules, but not over the cap.
    expect(c, "429:should-retry=false", &[Stop]);
    expect(c, "400:should-retry=true,200", &[stainless(0), Ok]);
    expect(c, "429:RA=200:should-retry=true", &[Stop]);
    // Statuses: 408, 409, 429, >= 500.
    expect(c, "402", &[Stop]);
    expect(c, "408,409,200", &[stainless(0), stainless(1), Ok]);
    expect(c, "599,500,200", &[stainless(0), stainless(1), Ok]);
}

#[test]
fn openai_python_2_51_falls_back_to_its_backoff_above_60_s() {
    // openai 2.51.0 openai/_base_client.py: `0 < retry_after <= 60` is
    // waited, otherwise the exponential backoff; no give-up on the header.
    let c = "openai-python-2.51";
    expect(c, "429:RA=89,429,200", &[stainless(0), stainless(1), Ok]);
    expect(c, "429:RA=60,200", &[At(60.0), Ok]);
    expect(c, "429:RA=0,429:RA=0.5,429", &[stainless(0), At(0.5), Stop]);
    expect(c, "429:ms=1500,200", &[At(1.5), Ok]);
    expect(c, "503:ms=61000,200", &[stainless(0), Ok]);
    expect(c, "429:should-retry=false", &[Stop]);
}

#[test]
fn openai_node_honours_zero_as_immediate() {
    // openai (npm) 7.59.0 src/client.ts retryRequest: retry-after-ms, then
    // retry-after (parseFloat, else Date.parse); the default backoff when
    // the wait is undefined, not finite, < 0 or > 60 * 1000 ms; so 0 is
    // waited (at once). shouldRetry: x-should-retry, 408, 409, 429, >= 500.
    let c = "openai-node";
    expect(c, "429:RA=89,429,429", &[stainless(0), stainless(1), Stop]);
    expect(c, "429:RA=0,429:RA=0,200", &[At(0.0), At(0.0), Ok]);
    expect(c, "429:ms=250,200", &[At(0.25), Ok]);
    expect(c, "429:ms=0,200", &[At(0.0), Ok]);
    expect(c, "429:RA=60,200", &[At(60.0), Ok]);
    expect(c, "429:RA=61,200", &[stainless(0), Ok]);
    expect(c, "429:RA-date=45,200", &[At(45.0), Ok]);
    expect(c, "429:should-retry=false", &[Stop]);
    expect(c, "418:should-retry=true,200", &[stainless(0), Ok]);
    expect(c, "404", &[Stop]);
}

#[test]
fn anthropic_python_honours_any_positive_wait() {
    // anthropic 2.15.0 anthropic/_base_client.py: `retry_after > 0` is
    // waited, at most 4_294_967 s; otherwise the backoff.
    let c = "anthropic-python";
    expect(c, "429:RA=89,200", &[At(89.0), Ok]);
    expect(c, "529:RA=3600,200", &[At(3600.0), Ok]);
    expect(c, "429:RA=99999999,200", &[At(4_294_967.0), Ok]);
    expect(c, "429:RA=0,429,429", &[stainless(0), stainless(1), Stop]);
    expect(c, "429:ms=1500:RA=10,200", &[At(1.5), Ok]);
    expect(c, "429:should-retry=false", &[Stop]);
    // anthropic 1.5.0: `0 < retry_after <= 60`, else the backoff.
    let old = "anthropic-python-1.5";
    expect(old, "429:RA=89,200", &[stainless(0), Ok]);
    expect(old, "429:RA=59,200", &[At(59.0), Ok]);
}

#[test]
fn google_genai_retries_only_with_http_retry_options() {
    // google-genai 3.6.1 google/genai/_api_client.py retry_args: without
    // options, stop_after_attempt(1). With HttpRetryOptions(): 5 attempts,
    // tenacity wait_exponential_jitter(initial=1, max=60, exp_base=2,
    // jitter=1): min(1·2^n + U(0,1), 60); codes 408, 429, 500, 502, 503, 504.
    expect("google-genai", "429", &[Stop]);
    let c = "google-genai-retry";
    expect(c, "429,429,429,429,429", &[R(1.0, 2.0), R(2.0, 3.0), R(4.0, 5.0), R(8.0, 9.0), Stop]);
    expect(c, "429:RA=0.5:ms=10,200", &[R(1.0, 2.0), Ok]);
    expect(c, "408,502,504,200", &[R(1.0, 2.0), R(2.0, 3.0), R(4.0, 5.0), Ok]);
    expect(c, "501", &[Stop]);
    expect(c, "409", &[Stop]);
    // Past 2^5 the 60 s maximum applies after the jitter is added.
    let long = "google-genai-retry,max_attempts=8";
    let script = "503,503,503,503,503,503,503,503";
    expect(
        long,
        script,
        &[R(1.0, 2.0), R(2.0, 3.0), R(4.0, 5.0), R(8.0, 9.0), R(16.0, 17.0), R(32.0, 33.0), At(60.0), Stop],
    );
    // `google-genai` with attempts is the same client.
    expect("google-genai,max_attempts=5", "429,429,200", &[R(1.0, 2.0), R(2.0, 3.0), Ok]);
}

#[test]
fn aws_legacy_retries_five_times_uncapped() {
    // botocore 1.44.8 retryhandler.py delay_exponential(base='rand',
    // growth_factor=2): rand·2^(attempts−1); data/_retry.json __default__:
    // max_attempts 5, 429/500/502/503/504/509, and the throttling codes on 400.
    let c = "aws-legacy";
    expect(c, "429,429,429,429,429", &[R(0.0, 1.0), R(0.0, 2.0), R(0.0, 4.0), R(0.0, 8.0), Stop]);
    expect(c, "400:code=ThrottlingException,509,200", &[R(0.0, 1.0), R(0.0, 2.0), Ok]);
    expect(c, "400:code=SlowDown", &[Stop]);
    expect(c, "403:code=ThrottlingException", &[Stop]);
    expect(c, "503:code=SlowDown:RA=30,200", &[R(0.0, 1.0), Ok]);
    let long = "aws-legacy,max_attempts=12";
    expect(long, &["500"; 12].join(","), &{
        let mut w: Vec<W> = (0..11).map(|n| R(0.0, 2f64.powi(n))).collect();
        w.push(Stop);
        w
    });
}

#[test]
fn aws_standard_scales_backoff_by_throttling_and_keeps_a_quota() {
    // botocore 1.44.8 retries/standard.py: DEFAULT_MAX_ATTEMPTS 3;
    // ExponentialBackoff: rand·min(base_scale·2^(attempt−1), 20), base 1 s
    // for throttling errors, 0.05 s otherwise; a bare 429 is throttling
    // (ThrottlingStatusCodeChecker); RetryQuotaChecker: 500 tokens, 5 per
    // throttling retry, 14 otherwise; success refunds the last cost.
    let c = "aws-standard";
    expect(c, "429,429,429", &[R(0.0, 1.0), R(0.0, 2.0), Stop]);
    expect(c, "500,503,200", &[R(0.0, 0.05), R(0.0, 0.1), Ok]);
    expect(c, "400:code=ThrottlingException,400:code=RequestTimeout,200", &[R(0.0, 1.0), R(0.0, 0.1), Ok]);
    expect(c, "400", &[Stop]);
    expect(c, "429:RA=3:ms=3000,200", &[R(0.0, 1.0), Ok]);
    let quota = |script: &str| -> Vec<Option<u32>> {
        replay(&ClientSpec::parse(c).unwrap(), &parse_script(script).unwrap()).iter().map(|s| s.quota).collect()
    };
    assert_eq!(quota("429,429,429"), [Some(495), Some(490), Some(490)]);
    assert_eq!(quota("500,500,500"), [Some(486), Some(472), Some(472)]);
    // A success after retries refunds its last retry's cost (to the capacity).
    assert_eq!(quota("500,429,200"), [Some(486), Some(481), Some(486)]);
    // A quota too small for a retry: no retry.
    expect("aws-standard,retry_quota=12:14:5", "500", &[Stop]);
    expect("aws-standard,retry_quota=12:14:5", "429,429,429", &[R(0.0, 1.0), R(0.0, 2.0), Stop]);
    expect("aws-standard,retry_quota=9:14:5", "429,429", &[R(0.0, 1.0), Stop]);
}

#[test]
fn aws_standard_1_35_does_not_retry_a_bare_429() {
    // botocore 1.35.0 retries/standard.py: StandardRetryConditions has no
    // ThrottlingStatusCodeChecker; rand·min(2^(attempt−1), 20) for every
    // error; RetryQuotaChecker._RETRY_COST = 5.
    let c = "aws-standard-1.35";
    expect(c, "429", &[Stop]);
    expect(c, "429:code=TooManyRequestsException,500,500", &[R(0.0, 1.0), R(0.0, 2.0), Stop]);
    let steps = replay(&ClientSpec::parse(c).unwrap(), &parse_script("500,500,200").unwrap());
    assert_eq!(steps.iter().map(|s| s.quota).collect::<Vec<_>>(), [Some(495), Some(490), Some(495)]);
    // aws-adaptive retries as aws-standard (its limiter paces sends).
    expect("aws-adaptive", "429,500,429", &[R(0.0, 1.0), R(0.0, 0.1), Stop]);
}

#[test]
fn urllib3_retries_on_retry_after_statuses_only_with_the_header() {
    // urllib3 2.8.0 util/retry.py: Retry.DEFAULT = Retry(3) (4 attempts:
    // is_exhausted only below 0); is_retry: method in allowed_methods, then
    // status_forcelist, then Retry-After present on 413/429/503; sleep:
    // parse_retry_after (digits or an HTTP date, else InvalidHeader; at most
    // retry_after_max = 21600), a 0 falls to the backoff (factor 0: none).
    let c = "urllib3-default";
    expect(c, "429:RA=2,503:RA=3,413:RA=1,429:RA=1", &[At(2.0), At(3.0), At(1.0), Stop]);
    expect(c, "429", &[Stop]);
    expect(c, "503:RA=0,200", &[At(0.0), Ok]);
    expect(c, "429:RA=0.5", &[Stop]);
    expect(c, "429:RA-date=30,200", &[At(30.0), Ok]);
    expect(c, "429:RA=99999,200", &[At(21600.0), Ok]);
    expect(c, "429:ms=1500", &[Stop]);
    expect(c, "429:RA=1:should-retry=false,200", &[At(1.0), Ok]);
    expect("urllib3-default,method=POST", "429:RA=2", &[Stop]);
    // Retry(total=5, backoff_factor=1, status_forcelist=[429, 500, 502,
    // 503, 504]): get_backoff_time is 0 after one error, then
    // factor·2^(errors−1), at most backoff_max = 120.
    let b = "urllib3-backoff";
    expect(b, "500,500,500,500,500,500", &[At(0.0), At(2.0), At(4.0), At(8.0), At(16.0), Stop]);
    expect(b, "500,429:RA=7,200", &[At(0.0), At(7.0), Ok]);
    expect(b, "413:RA=3,413", &[At(3.0), Stop]);
    expect("urllib3-backoff,max_retries=9", &["502"; 10].join(","), &{
        let mut w = vec![At(0.0), At(2.0), At(4.0), At(8.0), At(16.0), At(32.0), At(64.0), At(120.0), At(120.0)];
        w.push(Stop);
        w
    });
}

#[test]
fn page_clients_follow_their_code() {
    expect("none", "429", &[Stop]);
    expect("runagent-backoff", "429,429,429,429,429", &[At(1.0), At(2.0), At(4.0), At(8.0), Stop]);
    expect("runagent-backoff", "429:RA=3600,200", &[At(3600.0), Ok]);
    expect("runagent-js", "429,429,429", &[At(60.0), At(60.0), Stop]);
    expect("runagent-js", "429:RA=5,200", &[At(5.0), Ok]);
    expect("predictions-node", "429:RA=30,429,429", &[At(1.0), At(2.0), Stop]);
    expect("aicredits-jitter", "429,429,429:RA=1,429,429", &[R(1.0, 2.0), R(2.0, 3.0), R(4.0, 5.0), R(8.0, 9.0), Stop]);
    expect("naive-immediate", &["429"; 10].join(","), &{
        let mut w = vec![At(0.0); 9];
        w.push(Stop);
        w
    });
    expect("fixed-1s", "503,503,503,503,503,503", &[At(1.0), At(1.0), At(1.0), At(1.0), At(1.0), Stop]);
    expect(
        "exp-full-jitter",
        "429,429,429,429,429,429",
        &[R(0.0, 1.0), R(0.0, 2.0), R(0.0, 4.0), R(0.0, 8.0), R(0.0, 16.0), Stop],
    );
    expect("exp-full-jitter", "429:RA=30,429:RA=90,200", &[At(30.0), At(60.0), Ok]);
}

#[test]
fn every_preset_is_covered_here() {
    let source = include_str!("client_presets.rs");
    for name in preset_names() {
        assert!(source.contains(&format!("\"{name}\"")), "preset {name} has no scripted test");
    }
}
