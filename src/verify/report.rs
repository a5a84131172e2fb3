//! The verification report for people (text) and tools (JSON).
//!
//! Instants are shown as exact seconds since the log's start (`0.54 s`),
//! spans in the largest unit that keeps them exact (`60 ms`, `1 ns`,
//! `1.5 s`): a limiter that is one nanosecond early must read as one
//! nanosecond early. JSON gives every instant and span in integer
//! nanoseconds.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::guarantees::SpanKind;
use super::{Class, GuaranteeResult, Report};
use crate::report::group;
use crate::time::{format_decimal_seconds, format_rfc3339, Nanos};

/// An instant as exact seconds since the log's start: `0.54 s`.
pub fn seconds(ns: Nanos) -> String {
    format!("{} s", format_decimal_seconds(ns))
}

/// A span, exactly, in the largest unit that is at most the span:
/// `60 ms`, `1 ns`, `1.5 s`, `2.000000001 s`.
pub fn span(ns: Nanos) -> String {
    let (unit, name) = match ns {
        n if n >= 1_000_000_000 => (1_000_000_000, "s"),
        n if n >= 1_000_000 => (1_000_000, "ms"),
        n if n >= 1_000 => (1_000, "µs"),
        _ => return format!("{ns} ns"),
    };
    let (whole, frac) = (ns / unit, ns % unit);
    if frac == 0 {
        return format!("{whole} {name}");
    }
    let digits = unit.ilog10() as usize;
    let f = format!("{frac:0digits$}");
    format!("{whole}.{} {name}", f.trim_end_matches('0'))
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

fn who(identity: &str) -> String {
    if identity.is_empty() {
        "(global)".into()
    } else {
        identity.to_string()
    }
}

/// One guarantee's verdict and worst case, in words; times relative to
/// `origin`.
pub fn describe_guarantee(g: &GuaranteeResult, origin: Nanos, tolerance: Nanos) -> String {
    if let Some(why) = &g.not_checked {
        return format!("not checked: {why}");
    }
    let Some(w) = &g.worst else {
        return "no admitted request it applies to".into();
    };
    let rel = |t: Nanos| seconds(t.saturating_sub(origin));
    let id = who(&w.identity);
    let units = if w.units == w.requests { String::new() } else { format!(" ({} units)", w.units) };
    let (verb, worst) = if w.excess > 0 { ("violated", "") } else { ("holds", "closest: ") };
    let what = match w.span {
        SpanKind::Closed => {
            let from = w.from.unwrap_or(w.to);
            let allowed = w.units as f64 - w.excess_units();
            let slack = if tolerance > 0 {
                format!(" (d widened by 2 × {} tolerance)", span(tolerance))
            } else {
                String::new()
            };
            format!(
                "{id} admitted {}{units} in [{}, {}] ({}); the bound allows {:.3}{slack}",
                w.requests,
                rel(from),
                rel(w.to),
                span(w.to - from),
                allowed
            )
        }
        // A window reaching before the log's start holds what the log has
        // from its start: shown as `[0 s, t]`, not a misleading `(0 s, t]`.
        SpanKind::Rolling => match w.from.unwrap_or(w.to) {
            from if from < origin => format!("{id} admitted {}{units} in [0 s, {}]", w.requests, rel(w.to)),
            from => format!("{id} admitted {}{units} in ({}, {}]", w.requests, rel(from), rel(w.to)),
        },
        SpanKind::Aligned => {
            format!("{id} admitted {}{units} in [{}, {})", w.requests, rel(w.from.unwrap_or(w.to)), rel(w.to))
        }
        SpanKind::Instant if g.algorithm == "concurrency" => {
            format!("{id} had {} in flight at {}", w.requests, rel(w.to))
        }
        SpanKind::Instant if w.excess > 0 => format!(
            "{id} was admitted at {} with {} already settled: with its reservation, over the limit",
            rel(w.to),
            w.units
        ),
        SpanKind::Instant => {
            format!("{id} was admitted at {} with {} already settled, {} to spare", rel(w.to), w.units, -w.excess)
        }
    };
    let by = if w.excess > 0 {
        if w.scale == 1 {
            format!(": exceeded by {}", w.excess)
        } else {
            format!(": exceeded by {:.3}", w.excess_units())
        }
    } else {
        String::new()
    };
    format!("{verb}; {worst}{what}{by}")
}

/// The report as text.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let o = &mut out;
    let dialect = r.dialect.as_ref().map_or(String::new(), |d| format!(" as {d} enforces it"));
    let _ = writeln!(o, "{}  ·  {} / {}{dialect}", r.log, r.provider, r.plan);
    let tol =
        if r.options.tolerance > 0 { format!("  ·  tolerance {}", span(r.options.tolerance)) } else { String::new() };
    let _ = writeln!(o, "t = seconds since {}{tol}\n", format_rfc3339(r.origin));
    let row = |o: &mut String, label: &str, n: u64, rest: &str| {
        let line = format!("  {label:<30}{:>10}  {rest}", group(n));
        let _ = writeln!(o, "{}", line.trim_end());
    };
    row(o, "decisions", r.decisions, &format!("t {} … {}", seconds(r.span.0), seconds(r.span.1)));
    row(o, "admitted by the limiter", r.limiter_admitted, "");
    row(o, "admitted by the policy", r.policy_admitted, "");
    row(o, "agree", r.agree, &percent(r.agree, r.decisions));
    row(o, "disagree", r.disagree, &percent(r.disagree, r.decisions));
    for c in &r.classes {
        if c.count == 0 {
            continue;
        }
        let first = c.first.as_ref().map_or(String::new(), |e| {
            format!("first: line {} at {}, key {}: {}", e.line, seconds(e.t), e.key, e.detail)
        });
        row(o, &format!("  {}", c.class.name()), c.count, &first);
    }
    let excused: Vec<String> = r
        .classes
        .iter()
        .filter(|c| c.excused > 0)
        .map(|c| format!("{} {}", group(c.excused), c.class.name()))
        .collect();
    if r.options.tolerance > 0 {
        row(o, "excused by the tolerance", r.excused, &excused.join(", "));
    }
    let cmp = r.compared;
    let _ = writeln!(
        o,
        "  compared beyond admission      status {}, remaining {}, retry-after {}, reset {}{}",
        group(cmp.status),
        group(cmp.remaining),
        group(cmp.retry_after),
        group(cmp.reset),
        if cmp.delay > 0 { format!(", delay {}", group(cmp.delay)) } else { String::new() }
    );

    if let Some(d) = &r.first_divergence {
        let classes: Vec<&str> = d.classes.iter().map(|c| c.name()).collect();
        let _ = writeln!(
            o,
            "\nfirst divergence: line {} at {}, key {}: {}",
            d.at.line,
            seconds(d.at.t),
            d.at.key,
            classes.join(", ")
        );
        let _ = writeln!(o, "  {}", d.at.detail);
        let width =
            |f: &dyn Fn(&super::ContextRow) -> usize, min: usize| d.context.iter().map(f).max().unwrap_or(0).max(min);
        let tw = width(&|c| seconds(c.t).len(), 1);
        let kw = width(&|c| c.key.len(), 3);
        let ew = width(&|c| c.endpoint.len(), 8);
        let lw = width(&|c| c.limiter.len(), 7);
        let _ = writeln!(
            o,
            "      {:>6}  {:<tw$}  {:<kw$}  {:<ew$}  {:<lw$}  policy",
            "line", "t", "key", "endpoint", "limiter"
        );
        for c in &d.context {
            let mark = if c.diverges { ">" } else { " " };
            let _ = writeln!(
                o,
                "    {mark} {:>6}  {:<tw$}  {:<kw$}  {:<ew$}  {:<lw$}  {}",
                c.line,
                seconds(c.t),
                c.key,
                c.endpoint,
                c.limiter,
                c.policy
            );
        }
    }

    let _ = writeln!(o, "\nguarantees (from the limiter's admissions alone)");
    for g in &r.guarantees {
        let verdict = if g.not_checked.is_some() {
            "skip"
        } else if g.holds() {
            "ok"
        } else {
            "FAIL"
        };
        let _ = writeln!(o, "  {verdict:<5} {} ({}): {}", g.limit, g.algorithm, g.rule);
        let _ = writeln!(o, "        {}", describe_guarantee(g, r.origin, r.options.tolerance));
        if let Some(note) = &g.note {
            let _ = writeln!(o, "        note: {note}");
        }
    }
    match &r.longest_refusal {
        Some(f) => {
            let _ = writeln!(
                o,
                "  longest wrongful refusal: key {}, {} request{} over {} ({} … {}, lines {}–{}) that the policy admits",
                f.key,
                f.requests,
                if f.requests == 1 { "" } else { "s" },
                span(f.to - f.from),
                seconds(f.from),
                seconds(f.to),
                f.lines.0,
                f.lines.1
            );
        }
        None => {
            let _ = writeln!(o, "  longest wrongful refusal: none");
        }
    }
    let _ = writeln!(o);
    if r.pass() {
        let _ = writeln!(o, "PASS: the limiter agrees with the policy");
    } else {
        let mut why = Vec::new();
        if r.disagree > 0 {
            why.push(format!("{} disagreement{}", group(r.disagree), if r.disagree == 1 { "" } else { "s" }));
        }
        let broken: Vec<&str> = r.guarantees.iter().filter(|g| !g.holds()).map(|g| g.limit.as_str()).collect();
        if !broken.is_empty() {
            why.push(format!("guarantee violated: {}", broken.join(", ")));
        }
        let _ = writeln!(o, "FAIL: {}", why.join("; "));
    }
    out
}

/// The report as JSON (every instant and span in integer nanoseconds;
/// instants since the log's start).
pub fn json(r: &Report) -> Value {
    let classes: serde_json::Map<String, Value> = r
        .classes
        .iter()
        .map(|c| {
            let first = c
                .first
                .as_ref()
                .map_or(Value::Null, |e| json!({"line": e.line, "t_ns": e.t, "key": e.key, "detail": e.detail}));
            (c.class.key().to_string(), json!({"count": c.count, "excused": c.excused, "first": first}))
        })
        .collect();
    let divergence = r.first_divergence.as_ref().map_or(Value::Null, |d| {
        json!({
            "line": d.at.line,
            "t_ns": d.at.t,
            "key": d.at.key,
            "classes": d.classes.iter().map(|c| c.key()).collect::<Vec<_>>(),
            "detail": d.at.detail,
            "context": d.context.iter().map(|c| json!({
                "line": c.line, "t_ns": c.t, "key": c.key, "endpoint": c.endpoint,
                "limiter": c.limiter, "policy": c.policy, "diverges": c.diverges,
            })).collect::<Vec<_>>(),
        })
    });
    let guarantees: Vec<Value> = r
        .guarantees
        .iter()
        .map(|g| {
            let worst = g.worst.as_ref().map_or(Value::Null, |w| {
                json!({
                    "identity": w.identity,
                    "from_ns": w.from.map(|f| f.saturating_sub(r.origin)),
                    "to_ns": w.to.saturating_sub(r.origin),
                    "requests": w.requests,
                    "units": w.units,
                    "excess": w.excess_units(),
                })
            });
            json!({
                "limit": g.limit,
                "algorithm": g.algorithm,
                "rule": g.rule,
                "holds": g.holds(),
                "checked": g.checked,
                "not_checked": g.not_checked,
                "note": g.note,
                "worst": worst,
                "summary": describe_guarantee(g, r.origin, r.options.tolerance),
            })
        })
        .collect();
    let refusal = r.longest_refusal.as_ref().map_or(Value::Null, |f| {
        json!({"key": f.key, "from_ns": f.from, "to_ns": f.to, "requests": f.requests, "lines": [f.lines.0, f.lines.1]})
    });
    json!({
        "pass": r.pass(),
        "log": r.log,
        "provider": r.provider,
        "plan": r.plan,
        "dialect": r.dialect,
        "start": format_rfc3339(r.origin),
        "tolerance_ns": r.options.tolerance,
        "decisions": r.decisions,
        "span_ns": [r.span.0, r.span.1],
        "limiter_admitted": r.limiter_admitted,
        "policy_admitted": r.policy_admitted,
        "agree": r.agree,
        "disagree": r.disagree,
        "excused": r.excused,
        "compared": {
            "status": r.compared.status,
            "remaining": r.compared.remaining,
            "retry_after": r.compared.retry_after,
            "reset": r.compared.reset,
            "delay": r.compared.delay,
        },
        "classes": classes,
        "first_divergence": divergence,
        "guarantees": guarantees,
        "longest_wrongful_refusal": refusal,
    })
}

/// Every class name, for help texts.
pub fn class_names() -> String {
    Class::ALL.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
}
