//! Reports of a simulation: the terminal summary, `summary.json`,
//! `timeseries.csv` and charts ([`chart`]).
//!
//! Every output is a pure function of the run's results, written with a
//! fixed key order and fixed number formatting, so the same run regenerates
//! the same bytes.

pub mod chart;
pub mod gallery;
pub mod html;
pub mod pages;

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

use crate::metrics::{Bucket, BucketSink, Summary};
use crate::time::{format_rfc3339, Nanos, SECOND};

/// What was run: names for the report headers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunInfo {
    /// Provider of the policy.
    pub provider: String,
    /// Policy file.
    pub policy: String,
    /// Plan name.
    pub plan: String,
    /// Trace file or spec.
    pub trace: String,
    /// Client behaviour name.
    pub client: String,
    /// What the client does, in a line.
    pub client_behaviour: String,
    /// Seed.
    pub seed: u64,
    /// Virtual start instant (RFC 3339).
    pub start: String,
    /// Time-series bucket width in nanoseconds.
    pub bucket_ns: Nanos,
    /// ratesim version.
    pub version: String,
    /// `--set` overrides applied to the policy, in order (absent: none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// The plan's limits as run, after the overrides (absent without them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_plan: Option<Vec<serde_json::Value>>,
    /// Offered-load factor (`--scale`; absent: 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<String>,
    /// Key multiplier (`--scale-keys`; absent: 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_keys: Option<u32>,
}

/// `summary.json`: the run and its summary.
#[derive(Serialize)]
struct SummaryFile<'a> {
    run: &'a RunInfo,
    summary: &'a Summary,
}

/// Renders `summary.json` (pretty, with a trailing newline).
pub fn summary_json(info: &RunInfo, summary: &Summary) -> String {
    let mut s = serde_json::to_string_pretty(&SummaryFile { run: info, summary }).expect("summary serializes");
    s.push('\n');
    s
}

/// Streams time buckets as CSV rows.
///
/// A stretch of consecutive quiet buckets (every counter 0, the same
/// `in_flight`: nothing happened) is written as its first and last rows
/// only, so `t_s` jumps over the buckets between them. A run that waits a
/// month for a budget reset, or a `--bucket 1ms` run with a few events an
/// hour, writes a few rows per event, not one per bucket; a plot of the
/// rows against `t_s` is unchanged (zero from the first row to the last).
pub struct TimeseriesCsv<W: Write> {
    out: W,
    limit_ids: Vec<String>,
    header_written: bool,
    delayed: bool,
    /// The quiet stretch not yet written: its first bucket and the start
    /// of its last.
    quiet: Option<(Bucket, Nanos)>,
}

impl<W: Write> TimeseriesCsv<W> {
    /// A writer whose denial-by-limit columns are named after `limit_ids`.
    pub fn new(out: W, limit_ids: Vec<String>) -> Self {
        TimeseriesCsv { out, limit_ids, header_written: false, delayed: false, quiet: None }
    }

    /// Adds a `delayed` column after `admitted` (admissions the server held:
    /// for plans whose limits can delay, see [`Bucket::delayed`]).
    pub fn with_delayed_column(mut self, delayed: bool) -> Self {
        self.delayed = delayed;
        self
    }

    /// Writes what is pending, flushes and returns the writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.write_quiet()?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Adds quiet buckets from `first.start_ns` to `last_start` to the
    /// pending stretch, or starts a new one.
    fn extend_quiet(&mut self, first: &Bucket, last_start: Nanos) -> io::Result<()> {
        if let Some((q, last)) = &mut self.quiet {
            if q.in_flight == first.in_flight && q.outstanding == first.outstanding {
                *last = last_start;
                return Ok(());
            }
        }
        self.write_quiet()?;
        self.quiet = Some((first.clone(), last_start));
        Ok(())
    }

    /// Writes the pending quiet stretch: its first row, and its last if
    /// it has more than one bucket.
    fn write_quiet(&mut self) -> io::Result<()> {
        if let Some((mut q, last)) = self.quiet.take() {
            self.write_row(&q)?;
            if last != q.start_ns {
                q.start_ns = last;
                self.write_row(&q)?;
            }
        }
        Ok(())
    }

    fn write_row(&mut self, b: &Bucket) -> io::Result<()> {
        if !self.header_written {
            write!(self.out, "t_s,requests,attempts,retries,polls,admitted")?;
            if self.delayed {
                write!(self.out, ",delayed")?;
            }
            write!(
                self.out,
                ",denied_429,denied_402,denied_503,denied_other,throttled,give_ups,successes,\
                 time_to_success_mean_ns,time_to_success_max_ns,in_flight,outstanding,spend,tokens"
            )?;
            for id in &self.limit_ids {
                write!(self.out, ",denied_by_{id}")?;
            }
            writeln!(self.out)?;
            self.header_written = true;
        }
        write!(
            self.out,
            "{},{},{},{},{},{}",
            crate::time::format_decimal_seconds(b.start_ns),
            b.requests,
            b.attempts,
            b.retries,
            b.polls,
            b.admitted
        )?;
        if self.delayed {
            write!(self.out, ",{}", b.delayed)?;
        }
        write!(
            self.out,
            ",{},{},{},{},{},{},{}",
            b.denied_429, b.denied_402, b.denied_503, b.denied_other, b.throttled, b.give_ups, b.successes,
        )?;
        // Of the requests that succeeded in the bucket; empty without any.
        match b.time_to_success_sum_ns.checked_div(b.successes as u128) {
            Some(mean) => write!(self.out, ",{mean},{}", b.time_to_success_max_ns)?,
            None => write!(self.out, ",,")?,
        }
        write!(self.out, ",{},{},{},{}", b.in_flight, b.outstanding, b.spend, b.tokens)?;
        for n in &b.denied_by_limit {
            write!(self.out, ",{n}")?;
        }
        writeln!(self.out)
    }
}

impl<W: Write> BucketSink for TimeseriesCsv<W> {
    fn bucket(&mut self, b: &Bucket) -> io::Result<()> {
        if b.is_quiet() {
            return self.extend_quiet(b, b.start_ns);
        }
        self.write_quiet()?;
        self.write_row(b)
    }

    fn idle(&mut self, first: &Bucket, count: u64, width: Nanos) -> io::Result<()> {
        if count > 0 {
            self.extend_quiet(first, first.start_ns + (count - 1) * width)?;
        }
        Ok(())
    }
}

/// Thousands separators: `12345` → `12,345`.
pub fn group(n: u64) -> String {
    group_wide(n as u128)
}

/// [`group`] for the `u128` totals (tokens, spend).
pub fn group_wide(n: u128) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A span for people: `850 ms`, `12.4 s`, `3 min 20 s`, `2 h 05 min`.
pub fn human_duration(ns: Nanos) -> String {
    if ns == 0 {
        "0 ms".to_string()
    } else if ns < 1_000_000 {
        format!("{:.3} ms", ns as f64 / 1e6)
    } else if ns < SECOND {
        format!("{} ms", ns / 1_000_000)
    } else if ns < 60 * SECOND && ns % SECOND == 0 {
        format!("{} s", ns / SECOND)
    } else if ns < 60 * SECOND {
        format!("{:.2} s", ns as f64 / 1e9)
    } else if ns < 3600 * SECOND && ns % (60 * SECOND) == 0 {
        format!("{} min", ns / (60 * SECOND))
    } else if ns < 3600 * SECOND {
        let s = ns / SECOND;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = ns / (60 * SECOND);
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The terminal summary of a run.
pub fn terminal_summary(info: &RunInfo, s: &Summary, start: Nanos) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{} / {}  ·  client {}  ·  seed {}", info.provider, info.plan, info.client, info.seed);
    let _ = writeln!(o, "trace {}", info.trace);
    let mut what_if: Vec<String> = info.overrides.clone();
    if let Some(f) = &info.scale {
        what_if.push(format!("load ×{f}"));
    }
    if let Some(k) = info.scale_keys {
        what_if.push(format!("keys ×{k}"));
    }
    if !what_if.is_empty() {
        let _ = writeln!(o, "what if {}", what_if.join(", "));
    }
    let _ = writeln!(
        o,
        "virtual time {}  ({} → {})",
        human_duration(s.duration_ns),
        format_rfc3339(start),
        format_rfc3339(start + s.duration_ns)
    );
    o.push('\n');
    let row = |o: &mut String, label: &str, value: String, note: String| {
        let line = format!("  {label:<24}{value:>14}  {note}");
        let _ = writeln!(o, "{}", line.trim_end());
    };
    row(&mut o, "requests", group(s.requests), String::new());
    if s.items != s.requests {
        row(&mut o, "  items (batched)", group(s.items), format!("{} delivered", group(s.items_delivered)));
    }
    row(&mut o, "attempts", group(s.attempts), format!("{:.2}× retry amplification", s.retry_amplification));
    row(&mut o, "  retries", group(s.retries), String::new());
    if s.polls > 0 {
        row(&mut o, "  polls", group(s.polls), format!("{:.2} per request (polling load)", s.polls_per_request));
    }
    row(&mut o, "admitted", group(s.admitted), String::new());
    if let Some(d) = &s.delayed {
        let waits = match (d.wait.p50_ns, d.wait.p99_ns, d.wait.max_ns) {
            (Some(p50), Some(p99), Some(max)) => format!(
                "held by the server: p50 {}   p99 {}   max {}",
                human_duration(p50),
                human_duration(p99),
                human_duration(max)
            ),
            _ => "held by the server".to_string(),
        };
        row(&mut o, "  delayed", group(d.attempts), waits);
    }
    for (status, n) in &s.denied_by_status {
        row(
            &mut o,
            &format!("denied {status}"),
            group(*n),
            format!("{} of attempts", pct(crate::metrics::ratio(*n, s.attempts))),
        );
    }
    if s.throttled > 0 {
        row(&mut o, "held back by client", group(s.throttled), String::new());
    }
    row(&mut o, "succeeded", group(s.successes), format!("{} of requests", pct(s.success_ratio)));
    row(&mut o, "gave up", group(s.give_ups), format!("{} of requests", pct(s.give_up_ratio)));
    if s.unresolved > 0 {
        row(&mut o, "unresolved", group(s.unresolved), String::new());
    }
    row(&mut o, "first attempt denied", group(s.first_attempt_denied), pct(s.first_attempt_denial_rate));
    row(&mut o, "429 rate (all attempts)", pct(s.rate_429), String::new());
    let lat = &s.time_to_success;
    if let (Some(p50), Some(p90), Some(p99), Some(max)) = (lat.p50_ns, lat.p90_ns, lat.p99_ns, lat.max_ns) {
        let _ = writeln!(
            o,
            "  {:<24}p50 {}   p90 {}   p99 {}   max {}",
            "time to success",
            human_duration(p50),
            human_duration(p90),
            human_duration(p99),
            human_duration(max)
        );
        if !lat.exact {
            let _ = writeln!(o, "  {:<24}(from a histogram: each at most 0.1% below the exact quantile)", "");
        }
    }
    row(&mut o, "peak in flight", group(s.peak_in_flight), String::new());
    row(&mut o, "peak outstanding", group(s.peak_outstanding), "in service, waiting to retry or queued".to_string());
    row(
        &mut o,
        "peak attempts / bucket",
        group(s.peak_bucket_attempts),
        format!("per {}", human_duration(info.bucket_ns)),
    );
    if s.spend > 0 {
        row(&mut o, "spend (minor units)", group_wide(s.spend), String::new());
    }
    if s.tokens > 0 {
        row(&mut o, "tokens", group_wide(s.tokens), String::new());
    }
    let denials: Vec<String> =
        s.denied_by_limit.iter().filter(|(_, n)| **n > 0).map(|(id, n)| format!("{id} {}", group(*n))).collect();
    if !denials.is_empty() {
        let _ = writeln!(o, "  {:<24}{}", "denials by limit", denials.join("  ·  "));
    }
    if !s.top_denied_keys.is_empty() {
        let _ = writeln!(o, "  keys with most denials");
        for k in s.top_denied_keys.iter().take(5) {
            let _ = writeln!(o, "    {:<30}{:>12} of {} attempts", k.key, group(k.denied), group(k.attempts));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_of(buckets: &[Bucket]) -> String {
        let mut w = TimeseriesCsv::new(Vec::new(), Vec::new());
        for b in buckets {
            w.bucket(b).unwrap();
        }
        String::from_utf8(w.into_inner().unwrap()).unwrap()
    }

    /// Quiet stretches keep their first and last rows; a change of
    /// `in_flight` starts a new stretch; anything counted ends one.
    #[test]
    fn quiet_stretches_keep_their_first_and_last_rows() {
        let at = |s: u64, in_flight: u64, attempts: u64| Bucket {
            start_ns: s * SECOND,
            in_flight,
            attempts,
            ..Bucket::default()
        };
        let rows =
            |csv: &str| csv.lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect::<Vec<_>>();
        let mut buckets = vec![at(0, 1, 5)];
        buckets.extend((1..=6).map(|s| at(s, 1, 0)));
        buckets.extend((7..=8).map(|s| at(s, 0, 0)));
        buckets.push(at(9, 0, 0));
        buckets.push(at(10, 0, 3));
        buckets.push(at(11, 0, 0));
        assert_eq!(rows(&csv_of(&buckets)), ["0", "1", "6", "7", "9", "10", "11"]);
        // Stretches of one or two quiet buckets are written in full.
        let short = [at(0, 0, 1), at(1, 0, 0), at(2, 0, 0), at(3, 0, 1), at(4, 0, 0), at(5, 0, 1)];
        assert_eq!(rows(&csv_of(&short)), ["0", "1", "2", "3", "4", "5"]);
        // `idle` is the same as its buckets one by one.
        let mut w = TimeseriesCsv::new(Vec::new(), Vec::new());
        w.bucket(&buckets[0]).unwrap();
        w.idle(&at(1, 1, 0), 6, SECOND).unwrap();
        w.idle(&at(7, 0, 0), 3, SECOND).unwrap();
        for b in &buckets[10..] {
            w.bucket(b).unwrap();
        }
        assert_eq!(String::from_utf8(w.into_inner().unwrap()).unwrap(), csv_of(&buckets));
    }
}
