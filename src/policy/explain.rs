//! Human summaries of plans, as `ratesim policy explain` prints them:
//! `pro: 500 requests/min per API key, burst 50 (steady 8.33/s), leaky bucket; 429 RATE_LIMIT_EXCEEDED`.

use std::fmt::Write;

use super::{AuthMatch, Limit, Measure, Policy, Reserve, Scope};
use crate::engines::{BudgetPeriod, Dialect, Engine, WindowAlign};
use crate::time::{format_decimal_seconds, format_duration, Rate, DAY, HOUR, MINUTE, SECOND};

pub(super) fn explain(policy: &Policy, only: Option<&str>) -> Result<String, String> {
    let plans: Vec<_> = match only {
        Some(name) => vec![policy.plan(name).ok_or_else(|| {
            format!("no plan named {name:?} in this policy; its plans are: {}", policy.plan_names().join(", "))
        })?],
        None => policy.plans.iter().collect(),
    };
    // A policy that tells authentication states apart has unauthenticated
    // clients, whose "key" is their client identity (e.g. an IP address).
    let unauthenticated_clients =
        policy.plans.iter().flat_map(|p| &p.limits).any(|l| l.selector.auth != AuthMatch::Any);
    let mut out = String::new();
    let _ = write!(out, "{}", policy.provider);
    if let Some(src) = &policy.source {
        let _ = write!(out, " (models {src})");
    }
    out.push('\n');
    for plan in plans {
        if let [limit] = plan.limits.as_slice() {
            let _ = writeln!(out, "{}: {}", plan.name, describe(limit, unauthenticated_clients));
        } else {
            let _ = writeln!(out, "{}:", plan.name);
            for limit in &plan.limits {
                let _ = writeln!(out, "  {}: {}", limit.id, describe(limit, unauthenticated_clients));
            }
        }
    }
    Ok(out)
}

/// Whose state the limit keeps, in words. Returns the words and whether they
/// already say which authentication state the limit applies to.
///
/// A key-scoped limit keeps one state per API key; an unauthenticated request
/// has no key, and the client's identity stands in for it. So a limit on
/// unauthenticated requests only is "per client", and, where the policy has
/// unauthenticated clients, a limit on both is "per API key (per client when
/// unauthenticated)".
fn scope_words(scope: Scope, auth: AuthMatch, unauthenticated_clients: bool) -> (&'static str, bool) {
    match (scope, auth) {
        (Scope::Key, AuthMatch::Unauthenticated) => ("per client (unauthenticated)", true),
        (Scope::Key, AuthMatch::Any) if unauthenticated_clients => {
            ("per API key (per client when unauthenticated)", false)
        }
        (Scope::Key, _) => ("per API key", false),
        (Scope::User, _) => ("per user", false),
        (Scope::Workspace, _) => ("per workspace", false),
        (Scope::Global, _) => ("for all clients together", false),
    }
}

/// `amount unit/period`, e.g. `500 requests/min`, `1 request/s`, `5.00 INR/min`.
fn rate_words(rate: Rate, measure: &Measure) -> String {
    let text = rate.to_string();
    let per = text.split_once('/').map_or("", |(_, p)| p);
    format!("{}/{per}", amount_words(rate.count(), measure))
}

/// A steady rate in the unit that makes it readable: `8.33/s`, `0.5/min`,
/// `2.4/day` (money in major units, as the rate shows it). Below 0.1 a day
/// it keeps two significant digits (`0.000027/day` for one per 100 years),
/// never rounding a positive rate to 0.
fn steady(rate: Rate, measure: &Measure) -> String {
    let mut per_s = rate.per_second();
    if let Measure::Money { .. } = measure {
        per_s /= 100.0;
    }
    let (v, u) = if per_s >= 0.1 {
        (per_s, "s")
    } else if per_s * 60.0 >= 0.1 {
        (per_s * 60.0, "min")
    } else if per_s * 3600.0 >= 0.1 {
        (per_s * 3600.0, "h")
    } else {
        (per_s * 86_400.0, "day")
    };
    // Two decimals, or two significant digits for smaller values.
    let decimals = if v >= 0.1 { 2 } else { (1.0 - v.log10().floor()) as usize };
    let s = format!("{v:.decimals$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}/{u}")
}

fn window_words(period: u64) -> String {
    match period {
        SECOND => "second".into(),
        MINUTE => "minute".into(),
        HOUR => "hour".into(),
        DAY => "day".into(),
        p => format_duration(p),
    }
}

/// When an epoch-aligned window of `period` resets, in words.
fn reset_words(period: u64) -> String {
    match period {
        SECOND | MINUTE | HOUR => format!("resets on the clock {}", window_words(period)),
        DAY => "resets at 00:00 UTC".into(),
        p => format!("resets every {}, counted from the Unix epoch", format_duration(p)),
    }
}

/// An amount in its unit, singular for one: `1 request`, `500 requests`,
/// `1 token`, `500.00 INR` (money in minor units, shown in major units).
fn amount_words(amount: u64, measure: &Measure) -> String {
    match measure {
        Measure::Money { currency } => format!("{}.{:02} {currency}", amount / 100, amount % 100),
        Measure::Requests { .. } if amount == 1 => "1 request".to_string(),
        Measure::Tokens if amount == 1 => "1 token".to_string(),
        m => format!("{amount} {}", m.unit()),
    }
}

/// One line describing a limit. `unauthenticated_clients`: whether the
/// policy has unauthenticated clients (see [`scope_words`]).
pub(super) fn describe(limit: &Limit, unauthenticated_clients: bool) -> String {
    let m = &limit.measure;
    let (scope, says_auth) = scope_words(limit.scope, limit.selector.auth, unauthenticated_clients);
    let mut s = match &limit.engine {
        Engine::Gcra(g) => {
            let mut t = format!("{} {scope}, burst ", rate_words(g.rate(), m));
            match m {
                // Request bursts count requests (cost units): `burst 50`.
                Measure::Requests { .. } => {
                    let _ = write!(t, "{}", g.burst());
                }
                _ => t.push_str(&amount_words(g.burst(), m)),
            }
            // A rate per second is already its steady rate.
            if g.rate().period() != SECOND {
                let _ = write!(t, " (steady {})", steady(g.rate(), m));
            }
            t.push_str(", leaky bucket");
            t
        }
        Engine::FixedWindow(w) => {
            let p = format_duration(w.period());
            let mut t = format!("{} per {} {scope}, ", amount_words(w.limit(), m), window_words(w.period()));
            match w.align() {
                WindowAlign::Epoch => {
                    let _ = write!(t, "fixed window ({})", reset_words(w.period()));
                }
                WindowAlign::FirstHit => {
                    let _ = write!(t, "fixed window opened by the first counted request and lasting {p}");
                }
                WindowAlign::FirstHitRedis => {
                    let _ = write!(
                        t,
                        "fixed window opened by the first counted request, expiring as a Redis key {p} later (in whole milliseconds, alive through its last one)"
                    );
                }
            }
            if w.counts_denied() {
                t.push_str("; denied requests count too");
            }
            t
        }
        Engine::SlidingLog(w) => {
            let mut t = format!("{} per rolling {} {scope}", amount_words(w.limit(), m), window_words(w.period()));
            if w.closed_boundary() {
                let _ =
                    write!(t, ", closed window (a request still counts exactly {} later)", format_duration(w.period()));
            }
            t
        }
        Engine::SlidingCounter(w) => {
            let mut t = format!(
                "{} per {} {scope}, sliding-window estimate",
                amount_words(w.limit(), m),
                window_words(w.period())
            );
            if w.floors_estimate() {
                t.push_str(", floored (admits up to 1 more per window)");
            }
            t
        }
        Engine::TokenBucketSteps(b) => {
            let r = b.rate();
            format!(
                "bucket of {} {scope}, starting full, {} more every {} (refills on multiples of {} since the Unix epoch; steady {})",
                amount_words(b.max(), m),
                r.count(),
                format_duration(r.period()),
                format_duration(r.period()),
                steady(r, m)
            )
        }
        Engine::NginxLimitReq(n) => {
            let mut t = format!("{} {scope}", rate_words(n.rate(), m));
            // nginx keeps r/m in milli-requests per second, truncated.
            let exact = n.rate().count() as u128 * 1000 * crate::time::SECOND as u128;
            if exact % n.rate().period() as u128 != 0 {
                let _ = write!(t, " (nginx keeps {} milli-requests/s)", n.rate_milli());
            }
            let _ = write!(t, ", nginx limit_req burst={}", n.burst());
            let longest = |from: u64| {
                let ms = (n.burst() - from) as u128 * 1000 * 1000 / n.rate_milli() as u128;
                format!("{}s", format_decimal_seconds((ms as u64).saturating_mul(crate::time::MILLISECOND)))
            };
            match n.delay() {
                None => t.push_str(" nodelay (excess requests pass at once but fill the bucket)"),
                Some(d) if d >= n.burst() => {
                    let _ = write!(t, " delay={d} (no request waits)");
                }
                Some(0) => {
                    let _ = write!(t, " (excess requests wait, up to {}; beyond the burst refused)", longest(0));
                }
                Some(d) => {
                    let first = if d == 1 {
                        "the first excess request passes".to_string()
                    } else {
                        format!("the first {d} excess requests pass")
                    };
                    let _ = write!(
                        t,
                        " delay={d} ({first} at once, later ones wait, up to {}; beyond the burst refused)",
                        longest(d)
                    );
                }
            }
            t
        }
        Engine::Concurrency(c) => {
            let mut t = match c.max() {
                1 => format!("1 concurrent request {scope}"),
                n => format!("{n} concurrent requests {scope}"),
            };
            if let Some(l) = c.lease() {
                let _ = write!(t, " (leases expire after {})", format_duration(l));
            }
            t
        }
        Engine::Budget(b) => {
            let amount = amount_words(b.limit(), m);
            let mut t = match b.period() {
                BudgetPeriod::Day => format!("budget of {amount} per UTC calendar day {scope}"),
                BudgetPeriod::Month => format!("budget of {amount} per UTC calendar month {scope}"),
                BudgetPeriod::Rolling(p) => format!("budget of {amount} per rolling {} {scope}", format_duration(p)),
                BudgetPeriod::Lifetime => format!("lifetime budget of {amount} {scope} (never resets)"),
            };
            match limit.reserve {
                Reserve::Fixed(0) => {}
                Reserve::Fixed(n) => {
                    let _ = write!(t, ", reserving {} per request", amount_words(n, m));
                }
                Reserve::Measured => t.push_str(", reserving each request's amount"),
            }
            t
        }
    };
    if let Measure::Requests { cost, by_endpoint } = m {
        if *cost != 1 {
            let _ = write!(s, ", {cost} per request");
        }
        for (e, c) in by_endpoint {
            let _ = write!(s, ", {e} costs {c}");
        }
    }
    let sel = &limit.selector;
    if !sel.endpoints.is_empty() {
        let _ = write!(s, "; on {}", sel.endpoints.join(", "));
    }
    if !sel.except.is_empty() {
        let _ = write!(s, "; not on {}", sel.except.join(", "));
    }
    match sel.auth {
        AuthMatch::Any => {}
        _ if says_auth => {}
        AuthMatch::Authenticated => s.push_str("; authenticated requests only"),
        AuthMatch::Unauthenticated => s.push_str("; unauthenticated requests only"),
    }
    if let Some(d) = Dialect::of(&limit.engine) {
        let src = d.source();
        let _ = write!(s, "; dialect {d} ({} {})", src.project, src.version.split(' ').next().unwrap_or(src.version));
    }
    let _ = write!(s, "; {} {}", limit.status, limit.code);
    s
}

#[cfg(test)]
mod tests {
    fn explain(limits: &str) -> String {
        let text = format!("provider = \"P\"\n[[plan]]\nname = \"p\"\n{limits}");
        let policy = super::super::parse(&text, "p.toml").expect("parses");
        policy.explain(None).expect("explains")
    }

    fn limit(id: &str, fields: &str) -> String {
        format!("[[plan.limit]]\nid = \"{id}\"\n{fields}\n")
    }

    #[test]
    fn one_is_singular() {
        let text = explain(
            &[
                limit("a", "algorithm = \"gcra\"\nrate = \"1/s\"\nburst = 1"),
                limit("b", "algorithm = \"fixed-window\"\nrate = \"1/min\""),
                limit("c", "algorithm = \"concurrency\"\nmax = 1"),
            ]
            .concat(),
        );
        assert!(text.contains("a: 1 request/s per API key, burst 1, leaky bucket; 429"), "{text}");
        assert!(
            text.contains("b: 1 request per minute per API key, fixed window (resets on the clock minute)"),
            "{text}"
        );
        assert!(text.contains("c: 1 concurrent request per API key; 429"), "{text}");
    }

    #[test]
    fn unauthenticated_limits_are_per_client() {
        let text = explain(
            &[
                limit("anon", "algorithm = \"gcra\"\nrate = \"1/s\"\nburst = 3\nmatch.auth = \"unauthenticated\""),
                limit("auth", "algorithm = \"gcra\"\nrate = \"3/s\"\nburst = 9\nmatch.auth = \"authenticated\""),
                limit("all", "algorithm = \"fixed-window\"\nrate = \"30/h\""),
            ]
            .concat(),
        );
        assert!(text.contains("anon: 1 request/s per client (unauthenticated), burst 3, leaky bucket; 429"), "{text}");
        assert!(
            text.contains("auth: 3 requests/s per API key, burst 9, leaky bucket; authenticated requests only; 429"),
            "{text}"
        );
        assert!(
            text.contains("all: 30 requests per hour per API key (per client when unauthenticated), fixed window"),
            "{text}"
        );
        // Without authentication states in the policy, a key is just a key.
        let text = explain(&limit("all", "algorithm = \"fixed-window\"\nrate = \"30/h\""));
        assert!(text.contains("p: 30 requests per hour per API key, fixed window"), "{text}");
    }

    #[test]
    fn budgets_and_odd_windows_read_naturally() {
        let text = explain(
            &[
                limit("life", "algorithm = \"budget\"\nunit = \"INR\"\nlimit = 50000\nperiod = \"lifetime\""),
                limit("day", "algorithm = \"fixed-window\"\nrate = \"1000/day\""),
                limit("odd", "algorithm = \"fixed-window\"\nrate = \"10/30s\""),
                limit("spend", "algorithm = \"gcra\"\nunit = \"USD\"\nrate = \"600/min\"\nburst = 250"),
            ]
            .concat(),
        );
        assert!(text.contains("life: lifetime budget of 500.00 INR per API key (never resets); 429"), "{text}");
        assert!(text.contains("day: 1000 requests per day per API key, fixed window (resets at 00:00 UTC)"), "{text}");
        assert!(
            text.contains(
                "odd: 10 requests per 30s per API key, fixed window (resets every 30s, counted from the Unix epoch)"
            ),
            "{text}"
        );
        // Money in major units: 6.00 USD/min drains 0.10 USD/s.
        assert!(
            text.contains("spend: 6.00 USD/min per API key, burst 2.50 USD (steady 0.1/s), leaky bucket"),
            "{text}"
        );
    }

    #[test]
    fn dialects_say_what_differs_and_where_it_comes_from() {
        let text = explain(
            &[
                limit("py", "algorithm = \"fixed-window\"\nrate = \"3/10s\"\ndialect = \"python-limits\""),
                limit("log", "algorithm = \"sliding-log\"\nrate = \"2/10s\"\nboundary = \"closed\""),
                limit("est", "algorithm = \"sliding-counter\"\nrate = \"1/10s\"\nestimate = \"floor\""),
                limit("ngx", "dialect = \"nginx\"\nrate = \"10/min\"\nburst = 4\ndelay = 1"),
                limit("env", "dialect = \"envoy-local\"\nrate = \"10/2s\"\nburst = 20"),
            ]
            .concat(),
        );
        assert!(
            text.contains("py: 3 requests per 10s per API key, fixed window opened by the first counted request and lasting 10s; denied requests count too; dialect python-limits (Python limits 5.8.0); 429"),
            "{text}"
        );
        assert!(
            text.contains("log: 2 requests per rolling 10s per API key, closed window (a request still counts exactly 10s later); dialect python-limits"),
            "{text}"
        );
        assert!(
            text.contains(
                "est: 1 request per 10s per API key, sliding-window estimate, floored (admits up to 1 more per window)"
            ),
            "{text}"
        );
        // 10 r/m is 166 milli-requests per second in nginx; 3 excess requests
        // wait up to 3000·1000/166 = 18072 ms.
        assert!(
            text.contains("ngx: 10 requests/min per API key (nginx keeps 166 milli-requests/s), nginx limit_req burst=4 delay=1 (the first excess request passes at once, later ones wait, up to 18.072s; beyond the burst refused); dialect nginx (nginx 1.22.1); 503"),
            "{text}"
        );
        assert!(
            text.contains("env: bucket of 20 requests per API key, starting full, 10 more every 2s (refills on multiples of 2s since the Unix epoch; steady 5/s); dialect envoy-local (Envoy 1.30); 429"),
            "{text}"
        );
    }
}
