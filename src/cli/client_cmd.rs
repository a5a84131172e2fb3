//! `ratesim client list` and `ratesim client explain`.

use clap::Subcommand;

use crate::client::schedule::{parse_script, replay, Outcome, Scripted, Step};
use crate::client::{BackoffReason, ClientSpec, RetryAfter, Why, PRESETS};
use crate::time::{format_decimal_seconds, format_duration, Nanos};

/// Attempts `explain` scripts when `--responses` is not given.
const DEFAULT_SCRIPT_LEN: u32 = 10;

#[derive(Subcommand, Debug)]
pub(super) enum ClientCommand {
    /// List the client presets and the SDK code each was taken from.
    List,
    /// Say what a client does, and replay a sequence of responses against
    /// it: when each attempt is sent (with the bounds of its jitter) and why
    /// it retries or stops.
    Explain {
        /// A client: PRESET[,key=value...], as for `run --client`.
        #[arg(value_name = "CLIENT")]
        client: String,
        /// Responses, one per attempt, comma-separated: STATUS followed by
        /// `:`-separated headers: RA=89 or RA=0.5 (Retry-After), RA-date=89
        /// (Retry-After as an HTTP date 89 s later), ms=1500
        /// (retry-after-ms), should-retry=false (x-should-retry),
        /// code=ThrottlingException (the error code). A status below 400
        /// succeeds. Default: 429 without headers until the client stops.
        #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
        responses: Option<String>,
    },
}

pub(super) fn run(cmd: ClientCommand) -> u8 {
    match cmd {
        ClientCommand::List => {
            let width = PRESETS.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            for (name, origin) in PRESETS {
                println!("{name:<width$}  {origin}");
            }
            0
        }
        ClientCommand::Explain { client, responses } => {
            let spec = match ClientSpec::parse(&client) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            };
            let script = match responses.as_deref().map(parse_script) {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    eprintln!("error: --responses: {e}");
                    return 1;
                }
                None => vec![Scripted::status(429); spec.max_attempts.min(DEFAULT_SCRIPT_LEN) as usize],
            };
            print!("{}", explain(&spec, &script, responses.is_none()));
            0
        }
    }
}

fn secs(ns: Nanos) -> String {
    format!("{} s", format_decimal_seconds(ns))
}

fn span(lo: Nanos, hi: Nanos) -> String {
    if lo == hi {
        secs(lo)
    } else {
        format!("{} … {}", secs(lo), secs(hi))
    }
}

/// The whole `explain` text.
pub(crate) fn explain(spec: &ClientSpec, script: &[Scripted], default_script: bool) -> String {
    let mut out = format!("{}\n  from  {}\n  does  {}\n", spec.name, spec.origin, spec.describe());
    let steps = replay(spec, script);
    let label = if default_script {
        "429 without headers until it stops".to_string()
    } else {
        script.iter().map(Scripted::label).collect::<Vec<_>>().join(",")
    };
    out.push_str(&format!("\nresponses: {label}\n"));
    let rows: Vec<[String; 4]> = steps
        .iter()
        .map(|s| [(s.attempt + 1).to_string(), span(s.at.0, s.at.1), response_text(&s.response), outcome_text(spec, s)])
        .collect();
    let header = ["attempt", "sent at", "response", "then"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
        format!(
            "  {:>w0$}  {}  {}  {}\n",
            cells[0],
            pad(cells[1], widths[1]),
            pad(cells[2], widths[2]),
            cells[3],
            w0 = widths[0]
        )
    };
    out.push_str(&line(header));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
    }
    let last = steps.last().map(|s| s.outcome);
    if matches!(last, Some(Outcome::Retries { .. })) {
        if default_script && spec.max_attempts > DEFAULT_SCRIPT_LEN {
            out.push_str(&format!("  … and so on, up to {} attempts\n", spec.max_attempts));
        } else {
            out.push_str("  (the responses end here)\n");
        }
    }
    if steps.len() < script.len() {
        let unused = script.len() - steps.len();
        out.push_str(&format!(
            "  ({unused} response{} not used: the client stopped)\n",
            if unused == 1 { "" } else { "s" }
        ));
    }
    let mut notes = Vec::new();
    if spec.retry_budget.is_some() {
        notes.push("the retry budget");
    }
    if spec.adaptive.is_some() {
        notes.push("adaptive throttling");
    }
    if spec.pacing.is_some() {
        notes.push("pacing");
    }
    if !notes.is_empty() {
        out.push_str(&format!(
            "  (not replayed: {} depend{} on the key's traffic; run it to see them)\n",
            notes.join(" and "),
            if notes.len() == 1 { "s" } else { "" }
        ));
    }
    out
}

fn response_text(r: &Scripted) -> String {
    let mut out = r.status.to_string();
    if let Some(v) = r.retry_after {
        out.push_str(&format!("  Retry-After: {}", v.to_header()));
    }
    if let Some(s) = r.retry_after_date_in {
        out.push_str(&format!("  Retry-After: (date +{s} s)"));
    }
    if let Some(ms) = r.retry_after_ms {
        out.push_str(&format!("  retry-after-ms: {ms}"));
    }
    if let Some(b) = r.should_retry {
        out.push_str(&format!("  x-should-retry: {b}"));
    }
    if !r.code.is_empty() {
        out.push_str(&format!("  code {}", r.code));
    }
    out
}

fn cap_text(spec: &ClientSpec) -> String {
    match &spec.retry_after {
        RetryAfter::Honour { cap: Some(c), .. } => format_duration(*c),
        _ => "its cap".into(),
    }
}

fn why_text(spec: &ClientSpec, why: Why, r: &Scripted) -> String {
    match why {
        Why::OutOfAttempts => format!("no attempts left ({} made)", spec.max_attempts),
        Why::ServerSaidNo => "x-should-retry: false".into(),
        Why::NotRetried => match &spec.methods {
            Some(m) if !m.retried.contains(&m.method) => format!("{} is not retried on status", m.method),
            _ if r.retry_after.is_none()
                && r.retry_after_date_in.is_none()
                && spec.retry_on_with_retry_after.contains(&r.status) =>
            {
                format!("{} without Retry-After is not retried", r.status)
            }
            _ => format!("{} is not retried{}", r.status, if r.code.is_empty() { "" } else { " with this code" }),
        },
        Why::UnreadableRetryAfter => "it cannot read this Retry-After (the SDK raises)".into(),
        Why::RetryAfterAboveCap => format!("the wait asked for is above {}", cap_text(spec)),
        Why::HonoursHeader => "the wait the header asks for".into(),
        Why::ClampedToCap => format!("the header asks for more: waits {}", cap_text(spec)),
        Why::ZeroImmediate => "the header says 0: at once".into(),
        Why::MinOfBackoff => "the smaller of the header (or its default) and its backoff".into(),
        Why::Backoff(reason) => {
            let backoff = "own backoff";
            match reason {
                BackoffReason::Ignores => format!("{backoff} (ignores Retry-After)"),
                BackoffReason::NoHeader => format!("{backoff} (no wait in the headers)"),
                BackoffReason::NotPositive => format!("{backoff} (the header's wait is not above 0)"),
                BackoffReason::AboveCap => {
                    format!("{backoff} (the header's wait is above {})", cap_text(spec))
                }
            }
        }
    }
}

fn outcome_text(spec: &ClientSpec, s: &Step) -> String {
    let quota = s.quota.map(|q| format!("; retry quota {q} left")).unwrap_or_default();
    match s.outcome {
        Outcome::Succeeded => format!("succeeds{quota}"),
        Outcome::Retries { lo, hi, why } => {
            format!("retries after {}: {}{quota}", span(lo, hi), why_text(spec, why, &s.response))
        }
        Outcome::GivesUp(why) => format!("gives up: {}", why_text(spec, why, &s.response)),
        Outcome::QuotaEmpty { available, cost } => {
            format!("gives up: the retry quota holds {available}, a retry costs {cost}")
        }
    }
}
