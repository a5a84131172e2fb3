//! Decision logs: what a limiter answered, request by request.
//!
//! A decision log is a recorded trace (CSV or JSON Lines, the columns of
//! [`crate::trace`]) with further columns saying what the limiter decided.
//! It is read by the trace readers themselves ([`CsvTrace::with_extra`],
//! [`JsonlTrace::with_extra`]), so the trace columns follow exactly the
//! trace rules and every error names the file, line, column and field.
//!
//! | column | meaning |
//! |---|---|
//! | `t` or `t_ns` | when the request reached the limiter: `t` as in a trace (decimal seconds since the log's start, or RFC 3339), `t_ns` as whole nanoseconds since the start (`ratesim run --decisions` writes `t_ns`); one of the two, the same in every row |
//! | `key`, `user`, `workspace`, `endpoint`, `auth`, `tokens`, `cost`, `duration` | the request, as in a trace (`duration`: how long it held its concurrency permits, when it was admitted) |
//! | `allowed` | `true`/`false` (or `1`/`0`): whether the limiter admitted the request |
//! | `status` | the HTTP status answered; without `allowed`, a status the plan denies with (429, or a limit's own `status`) means denied, any other status admitted |
//! | `limit` | the id of the limit that denied it (compared only when given) |
//! | `remaining` | the remaining units the limiter reported |
//! | `reset_ns` | the reset instant in ns since the log's start (exact) |
//! | `reset` | the reset instant as a Unix timestamp in seconds (as `X-RateLimit-Reset` sends it; a whole number is compared with the policy's rounded-up header value) or RFC 3339 |
//! | `reset_after` | seconds until the reset (as a `seconds`-format reset header) |
//! | `retry_after_ns` | for a denial, the exact wait in ns until the request would be admitted |
//! | `retry_after` | the `Retry-After` header in seconds (a whole number is compared with the header the policy renders, rounded up and at least 1) |
//! | `duration_ns` | the service time in ns, instead of `duration` (as `ratesim run --decisions` writes it); it starts when the request is served (after any `delay_ns`) |
//! | `delay_ns` | for an admission, how long the server held the request before serving it (nginx `limit_req` without `nodelay`), compared exactly |
//! | `request`, `attempt`, `kind`, `received_ns`, `time`, `client_request_id`, `client_retry_count` | informational (written by `ratesim run --decisions`, `ratesim serve --log` and `ratesim probe`); checked for form, not compared |
//!
//! Every row needs `allowed` or `status`. An empty value (or JSON `null`)
//! means "not reported" and is not compared. Rows are in non-decreasing time
//! order, as in a trace.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::time::{parse_rfc3339, Nanos, SECOND};
use crate::trace::csv::{decimal_seconds, CsvTrace};
use crate::trace::jsonl::JsonlTrace;
use crate::trace::{open_file, ExtraColumns, TraceError, TraceRow, TraceSource};

/// The decision columns, in the order of [`LogColumns::names`].
const NAMES: &[&str] = &[
    "t_ns",
    "allowed",
    "status",
    "limit",
    "remaining",
    "reset_ns",
    "reset",
    "reset_after",
    "retry_after_ns",
    "retry_after",
    "request",
    "attempt",
    "kind",
    "received_ns",
    "duration_ns",
    "time",
    "client_request_id",
    "client_retry_count",
    "delay_ns",
];

// Indices into NAMES.
const T_NS: usize = 0;
const ALLOWED: usize = 1;
const STATUS: usize = 2;
const LIMIT: usize = 3;
const REMAINING: usize = 4;
const RESET_NS: usize = 5;
const RESET: usize = 6;
const RESET_AFTER: usize = 7;
const RETRY_AFTER_NS: usize = 8;
const RETRY_AFTER: usize = 9;
const REQUEST: usize = 10;
const ATTEMPT: usize = 11;
const KIND: usize = 12;
const RECEIVED_NS: usize = 13;
const DURATION_NS: usize = 14;
const TIME: usize = 15;
const CLIENT_REQUEST_ID: usize = 16;
const CLIENT_RETRY_COUNT: usize = 17;
const DELAY_NS: usize = 18;

/// A reported time value and its precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reported {
    /// The value in nanoseconds.
    pub ns: Nanos,
    /// Whether it was given in whole seconds (as HTTP headers carry it), so
    /// that it is compared with the policy's rounded-up header value.
    pub whole_seconds: bool,
}

/// How a row gives the reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetValue {
    /// `reset_ns`: ns since the log's start.
    Offset(Nanos),
    /// `reset`: an absolute instant (Unix time).
    Absolute(Reported),
    /// `reset_after`: a span after the request.
    After(Reported),
}

/// The decision columns of one row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogDecision {
    /// `t_ns`.
    pub t_ns: Option<Nanos>,
    /// `allowed`.
    pub allowed: Option<bool>,
    /// `status`.
    pub status: Option<u16>,
    /// `limit` (empty: not given).
    pub limit: String,
    /// `remaining`.
    pub remaining: Option<u64>,
    /// `reset_ns`, `reset` or `reset_after`.
    pub reset: Option<ResetValue>,
    /// `retry_after_ns` (exact) or `retry_after`.
    pub retry_after: Option<Reported>,
    /// `duration_ns`: the service time in ns (instead of `duration`).
    pub duration_ns: Option<Nanos>,
    /// `delay_ns`: how long the server held an admitted request before
    /// serving it.
    pub delay_ns: Option<Nanos>,
}

/// The [`ExtraColumns`] of a decision log: parses and checks each decision
/// column of a row.
#[derive(Debug, Default)]
pub struct LogColumns {
    /// The row read last.
    pub row: LogDecision,
    /// The last `t_ns` and its line, for the order check.
    last_t_ns: Option<(Nanos, u64)>,
}

fn whole(text: &str, what: &str) -> Result<u64, String> {
    text.parse::<u64>().map_err(|_| {
        let why = if text.starts_with('-') { ", which is negative" } else { "" };
        format!("expected {what} (a whole number, 0 or more), found {text:?}{why}")
    })
}

/// Decimal seconds, remembering whether they were whole.
fn seconds(text: &str, what: &str) -> Result<Reported, String> {
    let ns = decimal_seconds(text).map_err(|why| format!("expected {what} in decimal seconds, found {text:?}{why}"))?;
    Ok(Reported { ns, whole_seconds: !text.contains('.') })
}

impl ExtraColumns for LogColumns {
    fn names(&self) -> &'static [&'static str] {
        NAMES
    }

    fn time_column(&self) -> Option<usize> {
        Some(T_NS)
    }

    fn clear(&mut self) {
        // Keep the string's capacity.
        let mut limit = std::mem::take(&mut self.row.limit);
        limit.clear();
        self.row = LogDecision { limit, ..LogDecision::default() };
    }

    fn set(&mut self, index: usize, text: &str, line: u64) -> Result<(), String> {
        if text.is_empty() {
            return Ok(());
        }
        let r = &mut self.row;
        match index {
            T_NS => {
                let t = whole(text, "nanoseconds since the log's start")?;
                if let Some((prev, prev_line)) = self.last_t_ns {
                    if t < prev {
                        return Err(format!(
                            "out of time order: t_ns = {t} comes before t_ns = {prev} on line {prev_line}; \
                             rows must be in non-decreasing time order"
                        ));
                    }
                }
                self.last_t_ns = Some((t, line));
                r.t_ns = Some(t);
            }
            ALLOWED => {
                r.allowed = Some(match text {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ if text.eq_ignore_ascii_case("true") => true,
                    _ if text.eq_ignore_ascii_case("false") => false,
                    _ => return Err(format!("expected true or false (or 1 or 0), found {text:?}")),
                })
            }
            STATUS => {
                r.status = Some(match text.parse::<u16>() {
                    Ok(s) if (100..=599).contains(&s) => s,
                    _ => return Err(format!("expected an HTTP status (100 to 599), found {text:?}")),
                })
            }
            LIMIT => r.limit.push_str(text),
            REMAINING => r.remaining = Some(whole(text, "the remaining units")?),
            RESET_NS => r.reset = Some(ResetValue::Offset(whole(text, "the reset in ns since the log's start")?)),
            RESET => {
                r.reset = Some(ResetValue::Absolute(if text.contains('-') || text.contains('T') {
                    let ns = parse_rfc3339(text)
                        .map_err(|e| format!("expected a Unix timestamp in seconds or an RFC 3339 timestamp; {e}"))?;
                    Reported { ns, whole_seconds: ns % SECOND == 0 }
                } else {
                    seconds(text, "a Unix timestamp")?
                }))
            }
            RESET_AFTER => r.reset = Some(ResetValue::After(seconds(text, "seconds until the reset")?)),
            RETRY_AFTER_NS => {
                r.retry_after =
                    Some(Reported { ns: whole(text, "the wait in ns until a retry")?, whole_seconds: false })
            }
            RETRY_AFTER => r.retry_after = Some(seconds(text, "seconds until a retry")?),
            REQUEST | ATTEMPT => {
                whole(text, if index == REQUEST { "the request number" } else { "the attempt number" })?;
            }
            KIND => {
                if !matches!(text, "first" | "retry" | "poll") {
                    return Err(format!("expected first, retry or poll, found {text:?}"));
                }
            }
            RECEIVED_NS => {
                whole(text, "nanoseconds since the log's start")?;
            }
            DURATION_NS => r.duration_ns = Some(whole(text, "the service time in ns")?),
            TIME => {
                parse_rfc3339(text)?;
            }
            CLIENT_REQUEST_ID => {}
            CLIENT_RETRY_COUNT => {
                whole(text, "the client's retry count")?;
            }
            DELAY_NS => r.delay_ns = Some(whole(text, "the server-side delay in ns")?),
            _ => unreachable!("every name in NAMES is handled"),
        }
        Ok(())
    }
}

/// A decision log being read: CSV or JSON Lines by extension.
pub enum LogReader {
    /// A `.csv` log.
    Csv(CsvTrace<BufReader<File>, LogColumns>),
    /// A `.jsonl` or `.ndjson` log.
    Jsonl(JsonlTrace<BufReader<File>, LogColumns>),
}

impl LogReader {
    /// Opens a decision log by its extension (`.csv`, `.jsonl`, `.ndjson`);
    /// a CSV header is read and checked at once.
    pub fn open(path: &Path) -> Result<LogReader, TraceError> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let make = |ext: &str| -> Result<LogReader, TraceError> {
            let (reader, name) = open_file(path)?;
            Ok(match ext {
                "csv" => LogReader::Csv(CsvTrace::with_extra(reader, &name, LogColumns::default())?),
                _ => LogReader::Jsonl(JsonlTrace::with_extra(reader, &name, LogColumns::default())?),
            })
        };
        match ext.as_str() {
            "csv" | "jsonl" | "ndjson" => make(&ext),
            _ => Err(TraceError {
                file: path.display().to_string(),
                line: 0,
                column: 0,
                field: String::new(),
                message: "expected a decision log (.csv, .jsonl or .ndjson)".into(),
            }),
        }
    }

    /// Reads the next row: the request into `row`, the decision into
    /// [`LogReader::decision`]. `Ok(false)` at the end.
    pub fn next_row(&mut self, row: &mut TraceRow) -> Result<bool, TraceError> {
        match self {
            LogReader::Csv(r) => r.next_row(row),
            LogReader::Jsonl(r) => r.next_row(row),
        }
    }

    /// The decision columns of the row read last.
    pub fn decision(&self) -> &LogDecision {
        match self {
            LogReader::Csv(r) => &r.extra().row,
            LogReader::Jsonl(r) => &r.extra().row,
        }
    }

    /// The file name used in errors.
    pub fn name(&self) -> &str {
        match self {
            LogReader::Csv(r) => r.name(),
            LogReader::Jsonl(r) => r.name(),
        }
    }
}
