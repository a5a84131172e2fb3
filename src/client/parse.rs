//! The `--client` syntax: `PRESET[,key=value...]`.
//!
//! Every override must change what is simulated: an option given twice,
//! `max_attempts` with `max_retries`, or an option that does nothing for the
//! client it is given to (`none,max_retries=3`: `none` retries no status) is
//! refused with a message that says what to write instead.

use super::quota::RetryQuota;
use super::{
    preset, preset_names, AboveCap, AdaptiveThrottle, Backoff, ClientSpec, ErrorCode, Jitter, Pacing, RetryAfter,
    RetryBudget,
};
use crate::time::{parse_duration, SECOND};

/// The override keys, in the order error messages list them.
const KEYS: &[&str] = &[
    "max_attempts",
    "max_retries",
    "backoff",
    "jitter",
    "retry_after",
    "retry_after_zero",
    "retry_on",
    "retry_codes",
    "retry_quota",
    "retry_budget",
    "adaptive",
    "pace",
    "method",
];

/// Options that only shape retries: they do nothing for a client that never retries.
const RETRY_KEYS: &[&str] = &[
    "max_attempts",
    "max_retries",
    "backoff",
    "jitter",
    "retry_after",
    "retry_after_zero",
    "retry_on",
    "retry_codes",
    "retry_quota",
    "retry_budget",
];

/// Most attempts a client may make (`max_attempts`); `max_retries` is one less.
pub const MAX_ATTEMPTS: u32 = u32::MAX;

impl ClientSpec {
    /// Parses `PRESET[,key=value...]`, e.g. `openai-python,max_retries=5` or
    /// `none`. Keys: `max_attempts`, `max_retries`, `backoff` (`immediate`,
    /// `fixed:1s`, `exp:0.5s:2:8s`, `urllib3:0.5`), `jitter` (`none`,
    /// `full`, `equal`, `decorrelated`), `retry_after` (`ignore`, `honour`,
    /// `honour:60s` waits at most 60 s, `honour:120s:give-up` gives up above
    /// 120 s, `honour:60s:backoff` uses the backoff above 60 s),
    /// `retry_after_zero` (`backoff`, `immediate`), `retry_on` (`429+503`),
    /// `retry_codes` (`ThrottlingException+400:SlowDown`), `retry_quota`
    /// (`500:14:5`, `none`), `retry_budget` (`0.1`), `adaptive` (`2`),
    /// `pace` (`window:100:1h`, `bucket:10:1s:5`, `semaphore:10`, `cubic`),
    /// `method` (`GET`, `POST`: urllib3 clients).
    pub fn parse(text: &str) -> Result<ClientSpec, String> {
        let mut parts = text.split(',');
        let name = parts.next().unwrap_or("").trim();
        let mut spec = preset(name)
            .ok_or_else(|| format!("unknown client preset {name:?}; expected one of: {}", preset_names().join(", ")))?;
        let mut given: Vec<(&str, &str)> = Vec::new();
        for part in parts {
            let Some((k, v)) = part.split_once('=') else {
                return Err(missing_equals(part, given.last().map(|(k, _)| *k)));
            };
            let (k, v) = (k.trim(), v.trim());
            if let Some((_, first)) = given.iter().find(|(g, _)| *g == k) {
                return Err(format!("client option `{k}` given twice (`{k}={first}` and `{k}={v}`); give it once"));
            }
            apply(&mut spec, k, v)?;
            given.push((k, v));
        }
        check_given(&spec, name, &given)?;
        if !given.is_empty() {
            let custom: Vec<String> = given.iter().map(|(k, v)| format!("{k}={v}")).collect();
            spec.name = format!("{},{}", spec.name, custom.join(","));
        }
        Ok(spec)
    }
}

/// The message for an override without `=`: the usual slip is a list
/// written with commas, which separate options.
fn missing_equals(part: &str, previous: Option<&str>) -> String {
    let part = part.trim();
    match previous {
        Some(k @ ("retry_on" | "retry_codes")) => format!(
            "expected key=value after the preset name, found {part:?}: `,` separates options, so the values of \
             `{k}` are joined with `+` (e.g. retry_on=429+503)"
        ),
        _ => format!("expected key=value after the preset name, found {part:?}"),
    }
}

fn whole(k: &str, v: &str, lo: u64, hi: u64) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("client option `{k}`: expected a whole number from {lo} to {hi}, found {v:?}")),
    }
}

fn apply(spec: &mut ClientSpec, k: &str, v: &str) -> Result<(), String> {
    let bad = |what: &str| format!("client option `{k}`: expected {what}, found {v:?}");
    match k {
        "max_attempts" => spec.max_attempts = whole(k, v, 1, MAX_ATTEMPTS as u64)? as u32,
        "max_retries" => spec.max_attempts = whole(k, v, 0, MAX_ATTEMPTS as u64 - 1)? as u32 + 1,
        "backoff" => {
            spec.backoff = parse_backoff(v).ok_or_else(|| {
                bad("immediate, fixed:DURATION, exp:BASE:FACTOR:CAP (e.g. exp:0.5s:2:8s) or urllib3:FACTOR[:MAX]")
            })?
        }
        "jitter" => {
            spec.jitter = match v {
                "none" => Jitter::None,
                "full" => Jitter::Full,
                "equal" => Jitter::Equal,
                "decorrelated" => Jitter::Decorrelated,
                _ => return Err(bad("none, full, equal or decorrelated")),
            }
        }
        "retry_after" => spec.retry_after = parse_retry_after(k, v, &spec.retry_after)?,
        "retry_after_zero" => match (&mut spec.retry_after, v) {
            (RetryAfter::Honour { zero_immediate, .. }, "immediate" | "backoff") => *zero_immediate = v == "immediate",
            (RetryAfter::Honour { .. }, _) => return Err(bad("immediate or backoff")),
            _ => {
                return Err(format!(
                    "client option `retry_after_zero={v}` does nothing: this client does not honour Retry-After \
                     (set retry_after=honour... first)"
                ))
            }
        },
        "retry_on" => {
            spec.retry_on = v
                .split('+')
                .map(|s| s.trim().parse::<u16>().ok().filter(|s| (400..=599).contains(s)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("statuses from 400 to 599 joined by +, e.g. 429+503"))?
        }
        "retry_codes" => {
            spec.retry_codes = v
                .split('+')
                .map(|c| {
                    let (status, code) = match c.split_once(':') {
                        Some((s, code)) => {
                            (Some(s.trim().parse::<u16>().ok().filter(|s| (400..=599).contains(s))?), code)
                        }
                        None => (None, c),
                    };
                    let code = code.trim();
                    (!code.is_empty()).then(|| ErrorCode { code: code.to_string(), status })
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    bad("error codes joined by +, each optionally STATUS:CODE, e.g. ThrottlingException+400:SlowDown")
                })?
        }
        "retry_quota" => {
            spec.retry_quota = match v {
                "none" => None,
                _ => Some(parse_quota(v).ok_or_else(|| {
                    bad("none or CAPACITY:RETRY_COST:THROTTLING_COST[:NO_RETRY_REFUND], e.g. 500:14:5 (botocore)")
                })?),
            }
        }
        "retry_budget" => {
            let ratio: f64 = v
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite() && *r >= 0.0)
                .ok_or_else(|| bad("a ratio such as 0.1"))?;
            spec.retry_budget = Some(RetryBudget { ratio });
        }
        "adaptive" => {
            let k: f64 =
                v.parse().ok().filter(|k: &f64| k.is_finite() && *k >= 1.0).ok_or_else(|| bad("K >= 1, e.g. 2"))?;
            spec.adaptive = Some(AdaptiveThrottle { k });
        }
        "pace" => {
            spec.pacing = Some(
                parse_pacing(v)
                    .ok_or_else(|| bad("window:LIMIT:PERIOD, bucket:COUNT:PERIOD:BURST, semaphore:MAX or cubic"))?,
            )
        }
        "method" => match &mut spec.methods {
            Some(m) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphabetic()) => m.method = v.to_ascii_uppercase(),
            Some(_) => return Err(bad("an HTTP method such as GET or POST")),
            None => {
                return Err(format!(
                    "client option `method={v}` does nothing: only urllib3 clients retry by method \
                     (urllib3-default, urllib3-backoff)"
                ))
            }
        },
        _ => return Err(format!("unknown client option `{k}`; expected one of: {}", KEYS.join(", "))),
    }
    Ok(())
}

/// Refuses overrides that leave the simulation unchanged.
fn check_given(spec: &ClientSpec, preset: &str, given: &[(&str, &str)]) -> Result<(), String> {
    let has = |k: &str| given.iter().any(|(g, _)| *g == k);
    if has("max_attempts") && has("max_retries") {
        return Err("give `max_attempts` or `max_retries`, not both (max_attempts=N is max_retries=N-1)".into());
    }
    if !spec.retries_anything() {
        // `max_retries=0` (one attempt) is what it says, not an option ignored.
        let ignored = |k: &str| RETRY_KEYS.contains(&k) && !(spec.max_attempts <= 1 && k.starts_with("max_"));
        if let Some((k, v)) = given.iter().find(|(k, _)| ignored(k)) {
            let no_status = spec.retry_on.is_empty()
                && spec.retry_codes.is_empty()
                && spec.retry_on_with_retry_after.is_empty()
                && !spec.reads.should_retry;
            let why = if let Some(m) = spec.methods.as_ref().filter(|m| !m.retried.contains(&m.method)) {
                format!("{} requests are never retried on status by this client", m.method)
            } else if no_status {
                let attempts = if spec.max_attempts <= 1 { " and makes 1 attempt" } else { "" };
                let add = if spec.max_attempts <= 1 { "retry_on=429 and max_retries=N" } else { "retry_on=429" };
                format!(
                    "`{preset}` retries no status{attempts} (add {add}, statuses joined by +, or start from a preset \
                     that retries, e.g. fixed-1s,{k}={v})"
                )
            } else {
                "the client makes 1 attempt (give max_retries=N or max_attempts=N as well)".to_string()
            };
            return Err(format!("client option `{k}={v}` does nothing: {why}"));
        }
    }
    if let (Some((_, v)), Backoff::Immediate | Backoff::Urllib3 { factor: 0, .. }) =
        (given.iter().find(|(k, _)| *k == "jitter"), &spec.backoff)
    {
        if *v != "none" {
            return Err(format!(
                "client option `jitter={v}` does nothing: the backoff is zero (set backoff=fixed:1s or exp:... as well)"
            ));
        }
    }
    Ok(())
}

fn parse_retry_after(k: &str, v: &str, current: &RetryAfter) -> Result<RetryAfter, String> {
    let zero_immediate = matches!(current, RetryAfter::Honour { zero_immediate: true, .. });
    let honour = |cap, above_cap| RetryAfter::Honour { cap, above_cap, zero_immediate };
    let parts: Vec<&str> = v.split(':').collect();
    let cap = |c: &str| parse_duration(c).map_err(|e| format!("client option `{k}`: {e}"));
    Ok(match parts.as_slice() {
        ["ignore"] => RetryAfter::Ignore,
        ["honour" | "honor"] => honour(None, AboveCap::Clamp),
        ["honour" | "honor", c] => honour(Some(cap(c)?), AboveCap::Clamp),
        ["honour" | "honor", c, "give-up"] => honour(Some(cap(c)?), AboveCap::GiveUp),
        ["honour" | "honor", c, "backoff"] => honour(Some(cap(c)?), AboveCap::Backoff),
        _ => {
            return Err(format!(
                "client option `{k}`: expected ignore, honour, honour:CAP, honour:CAP:give-up or honour:CAP:backoff, \
                 found {v:?}"
            ))
        }
    })
}

fn parse_backoff(v: &str) -> Option<Backoff> {
    let d = |s: &str| parse_duration(s).ok();
    let parts: Vec<&str> = v.split(':').collect();
    match parts.as_slice() {
        ["immediate"] => Some(Backoff::Immediate),
        ["fixed", x] => Some(Backoff::Fixed(d(x)?)),
        ["exp", base, factor, cap] => {
            let factor: f64 = factor.parse().ok().filter(|f: &f64| f.is_finite() && *f >= 1.0)?;
            Some(Backoff::Exponential { base: d(base)?, factor, cap: d(cap)? })
        }
        ["urllib3", factor, rest @ ..] if rest.len() <= 1 => {
            // urllib3's backoff_factor is in seconds, a float.
            let f: f64 = factor.parse().ok().filter(|f: &f64| f.is_finite() && *f >= 0.0 && *f <= 1e6)?;
            let max = match rest {
                [m] => d(m)?,
                _ => 120 * SECOND,
            };
            Some(Backoff::Urllib3 { factor: (f * SECOND as f64).round() as u64, max })
        }
        _ => None,
    }
}

fn parse_quota(v: &str) -> Option<RetryQuota> {
    let n: Vec<u32> = v.split(':').map(|s| s.trim().parse().ok()).collect::<Option<_>>()?;
    match n.as_slice() {
        [capacity, retry_cost, throttling_cost] => Some(RetryQuota {
            capacity: *capacity,
            retry_cost: *retry_cost,
            throttling_cost: *throttling_cost,
            no_retry_refund: 1,
        }),
        [capacity, retry_cost, throttling_cost, refund] => Some(RetryQuota {
            capacity: *capacity,
            retry_cost: *retry_cost,
            throttling_cost: *throttling_cost,
            no_retry_refund: *refund,
        }),
        _ => None,
    }
}

fn parse_pacing(v: &str) -> Option<Pacing> {
    let parts: Vec<&str> = v.split(':').collect();
    let n = |s: &str| s.parse::<u64>().ok().filter(|n| *n >= 1);
    let d = |s: &str| parse_duration(s).ok().filter(|d| *d > 0);
    match parts.as_slice() {
        ["window", limit, period] => Some(Pacing::SlidingWindow { limit: n(limit)?, period: d(period)? }),
        ["bucket", count, period, burst] => {
            Some(Pacing::TokenBucket { count: n(count)?, period: d(period)?, burst: n(burst)? })
        }
        ["semaphore", max] => Some(Pacing::Semaphore { max: n(max)? }),
        ["cubic"] => Some(Pacing::Cubic),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
