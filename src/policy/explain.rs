//! Human summaries of plans, as `ratesim policy explain` prints them:
//! `pro: 500 requests/min per API key, burst 50 (steady 8.33/s); 429 RATE_LIMIT_EXCEEDED`.

use std::fmt::Write;

use super::{AuthMatch, Limit, Measure, Policy, Reserve, Scope};
use crate::engines::{BudgetPeriod, Engine};
use crate::time::{format_duration, Rate, DAY, HOUR, MINUTE, SECOND};

pub(super) fn explain(policy: &Policy, only: Option<&str>) -> Result<String, String> {
    let plans: Vec<_> = match only {
        Some(name) => vec![policy.plan(name).ok_or_else(|| {
            format!("no plan named {name:?} in this policy; its plans are: {}", policy.plan_names().join(", "))
        })?],
        None => policy.plans.iter().collect(),
    };
    let mut out = String::new();
    let _ = write!(out, "{}", policy.provider);
    if let Some(src) = &policy.source {
        let _ = write!(out, " (models {src})");
    }
    out.push('\n');
    for plan in plans {
        if let [limit] = plan.limits.as_slice() {
            let _ = writeln!(out, "{}: {}", plan.name, describe(limit));
        } else {
            let _ = writeln!(out, "{}:", plan.name);
            for limit in &plan.limits {
                let _ = writeln!(out, "  {}: {}", limit.id, describe(limit));
            }
        }
    }
    Ok(out)
}

fn scope_words(scope: Scope) -> &'static str {
    match scope {
        Scope::Key => "per API key",
        Scope::User => "per user",
        Scope::Workspace => "per workspace",
        Scope::Global => "for all clients together",
    }
}

/// `count unit/period`, e.g. `500 requests/min`.
fn rate_words(rate: Rate, unit: &str) -> String {
    let text = rate.to_string();
    let per = text.split_once('/').map_or("", |(_, p)| p);
    format!("{} {unit}/{per}", rate.count())
}

/// A steady rate in the unit that makes it readable: `8.33/s`, `0.5/min`.
fn steady(rate: Rate) -> String {
    let per_s = rate.per_second();
    let (v, u) = if per_s >= 0.1 {
        (per_s, "s")
    } else if per_s * 60.0 >= 0.1 {
        (per_s * 60.0, "min")
    } else {
        (per_s * 3600.0, "h")
    };
    let s = format!("{v:.2}");
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

fn amount_words(amount: u64, measure: &Measure) -> String {
    match measure {
        Measure::Money { currency } => format!("{}.{:02} {currency}", amount / 100, amount % 100),
        Measure::Requests { .. } if amount == 1 => "1 request".to_string(),
        Measure::Tokens if amount == 1 => "1 token".to_string(),
        m => format!("{amount} {}", m.unit()),
    }
}

/// One line describing a limit.
pub(super) fn describe(limit: &Limit) -> String {
    let unit = limit.measure.unit();
    let scope = scope_words(limit.scope);
    let mut s = match &limit.engine {
        Engine::Gcra(g) => format!(
            "{} {scope}, burst {} (steady {}), leaky bucket",
            rate_words(g.rate(), unit),
            g.burst(),
            steady(g.rate())
        ),
        Engine::FixedWindow(w) => {
            format!(
                "{} {unit} per {} {scope}, fixed window (resets on the clock {})",
                w.limit(),
                window_words(w.period()),
                window_words(w.period())
            )
        }
        Engine::SlidingLog(w) => format!("{} {unit} per rolling {} {scope}", w.limit(), window_words(w.period())),
        Engine::SlidingCounter(w) => {
            format!("{} {unit} per {} {scope}, sliding-window estimate", w.limit(), window_words(w.period()))
        }
        Engine::Concurrency(c) => {
            let mut t = format!("{} concurrent requests {scope}", c.max());
            if let Some(l) = c.lease() {
                let _ = write!(t, " (leases expire after {})", format_duration(l));
            }
            t
        }
        Engine::Budget(b) => {
            let period = match b.period() {
                BudgetPeriod::Day => "UTC calendar day".to_string(),
                BudgetPeriod::Month => "UTC calendar month".to_string(),
                BudgetPeriod::Rolling(p) => format!("rolling {}", format_duration(p)),
                BudgetPeriod::Lifetime => "key lifetime (never resets)".to_string(),
            };
            let mut t = format!("budget of {} per {period} {scope}", amount_words(b.limit(), &limit.measure));
            match limit.reserve {
                Reserve::Fixed(0) => {}
                Reserve::Fixed(n) => {
                    let _ = write!(t, ", reserving {} per request", amount_words(n, &limit.measure));
                }
                Reserve::Measured => t.push_str(", reserving each request's amount"),
            }
            t
        }
    };
    if let Measure::Requests { cost, by_endpoint } = &limit.measure {
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
        AuthMatch::Authenticated => s.push_str("; authenticated requests"),
        AuthMatch::Unauthenticated => s.push_str("; unauthenticated requests"),
    }
    let _ = write!(s, "; {} {}", limit.status, limit.code);
    s
}
