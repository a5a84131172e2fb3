//! The decision log (`ratesim serve --log FILE.jsonl`) and its replay.
//!
//! One JSON object per decision: first the fields of `ratesim run
//! --decisions`, in the same order and written by the same code
//! ([`JsonlDecisions`], [`DecisionFigures`]), then what the simulator needs
//! to replay the arrival and what the client said about it:
//!
//! ```text
//! {"t_ns":0,"request":0,"attempt":0,"kind":"first","key":"sk-a","endpoint":"chat.completions","allowed":true,"status":200,"limit":null,"remaining":49,"reset_ns":120000000,"retry_after_ns":null,"time":"2026-05-04T10:00:00.123456789Z","user":null,"workspace":null,"auth":true,"tokens":21,"cost":0,"duration_ns":2000153,"client_request_id":"r1","client_retry_count":0}
//! ```
//!
//! - `t_ns`, `reset_ns`: nanoseconds since the first decision of the run
//!   (the trace start of the replay); `time`: the arrival instant itself,
//!   RFC 3339 to the nanosecond.
//! - `request`: arrivals numbered in decision order (the replay's row
//!   number). `attempt` is 0 and `kind` `first`: to the server every HTTP
//!   request is an arrival. What the client says about it is in
//!   `client_retry_count` (the OpenAI SDKs' `x-stainless-retry-count`) and
//!   `client_request_id` (`X-Client-Request-Id`), `null` when not sent.
//! - `tokens`, `cost`: what the request counted on token and money limits:
//!   the amounts settled at completion for an admission (a stream cut short
//!   settles the tokens it delivered), the amounts checked for a denial.
//! - `duration_ns`: from the decision to the completion that released the
//!   request's permits and settled its budgets (0 for a denial). For a plan
//!   that delays admissions (nginx `limit_req`), the schema's `delay_ns` is
//!   the part of it the server held the request before serving it.
//!
//! Lines are written when a request completes (a denial at once), so the
//! file is in completion order; [`to_trace`] sorts it back into arrival
//! order. A writer thread owns the file, formats the lines and flushes
//! whenever it has caught up, so lines reach the file within a few
//! milliseconds; at shutdown the server ends
//! every request (completing it) before [`DecisionLog::close`], so no
//! decision is lost.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use serde::Deserialize;

use crate::sim::{AttemptKind, DecisionFigures, DecisionRecord, DecisionSink, JsonlDecisions, RequestFacts};
use crate::time::{format_decimal_seconds, format_rfc3339, Nanos, SECOND};

/// Everything one log line says about one decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogEntry {
    /// Arrival number, in decision order.
    pub request: u64,
    /// Instant of the decision (ns since the Unix epoch).
    pub at: Nanos,
    /// Instant of the run's first decision.
    pub origin: Nanos,
    /// API key, or the client's address when unauthenticated.
    pub key: String,
    /// User, if the keys file names one.
    pub user: Option<String>,
    /// Workspace, if the keys file names one.
    pub workspace: Option<String>,
    /// Endpoint name.
    pub endpoint: String,
    /// Whether the request carried an API key.
    pub auth: bool,
    /// Admitted or not.
    pub allowed: bool,
    /// 200 or the denying status.
    pub status: u16,
    /// The denying limit's id.
    pub limit: Option<String>,
    /// See [`DecisionFigures::remaining`].
    pub remaining: Option<u64>,
    /// See [`DecisionFigures::reset_ns`].
    pub reset_ns: Option<Nanos>,
    /// See [`DecisionFigures::retry_after_ns`].
    pub retry_after_ns: Option<Nanos>,
    /// See [`DecisionFigures::delay_ns`].
    pub delay_ns: Option<Nanos>,
    /// Tokens counted (settled for an admission, checked for a denial).
    pub tokens: u64,
    /// Money counted, minor units.
    pub cost: u64,
    /// Decision to completion.
    pub duration_ns: Nanos,
    /// `X-Client-Request-Id`, if sent.
    pub client_request_id: Option<String>,
    /// `x-stainless-retry-count`, if sent.
    pub client_retry_count: Option<u32>,
}

impl LogEntry {
    /// Fills the decision fields from `figures`.
    pub fn set_figures(&mut self, f: &DecisionFigures<'_>) {
        self.allowed = f.allowed;
        self.status = f.status;
        self.limit = f.limit.map(str::to_string);
        self.remaining = f.remaining;
        self.reset_ns = f.reset_ns;
        self.retry_after_ns = f.retry_after_ns;
        self.delay_ns = f.delay_ns;
    }

    /// The line, newline included.
    pub fn line(&self) -> String {
        let mut buf = Vec::with_capacity(384);
        let record = DecisionRecord {
            t_ns: self.at - self.origin,
            request: self.request,
            attempt: 0,
            kind: AttemptKind::First,
            key: &self.key,
            endpoint: &self.endpoint,
            allowed: self.allowed,
            status: self.status,
            limit: self.limit.as_deref(),
            remaining: self.remaining,
            reset_ns: self.reset_ns,
            retry_after_ns: self.retry_after_ns,
            delay_ns: self.delay_ns,
            at: self.at,
            decision: None,
            // Written below, always (the serve log's own schema).
            facts: RequestFacts::NONE,
        };
        JsonlDecisions(&mut buf).decision(&record).expect("writing to memory");
        // The schema's object, reopened for the serve-only fields.
        let end = buf.iter().rposition(|&b| b == b'}').expect("a JSON object");
        buf.truncate(end);
        let mut line = String::from_utf8(buf).expect("JSON is UTF-8");
        let text = |v: &Option<String>| v.as_deref().map_or(serde_json::Value::Null, serde_json::Value::from);
        line.push_str(&format!(
            ",\"time\":\"{}\",\"user\":{},\"workspace\":{},\"auth\":{},\"tokens\":{},\"cost\":{},\"duration_ns\":{},\"client_request_id\":{},\"client_retry_count\":{}}}\n",
            format_rfc3339(self.at),
            text(&self.user),
            text(&self.workspace),
            self.auth,
            self.tokens,
            self.cost,
            self.duration_ns,
            text(&self.client_request_id),
            self.client_retry_count.map_or("null".to_string(), |n| n.to_string()),
        ));
        line
    }
}

/// The log file and the thread writing it.
pub struct DecisionLog {
    path: String,
    /// Shared by every handler (a read lock per line); closing takes it.
    sender: RwLock<Option<mpsc::Sender<LogEntry>>>,
    writer: Mutex<Option<JoinHandle<std::io::Result<u64>>>>,
    sent: AtomicU64,
    refused: AtomicU64,
}

impl DecisionLog {
    /// Creates (truncates) `path` and starts its writer thread.
    pub fn create(path: &Path) -> Result<DecisionLog, String> {
        let name = path.display().to_string();
        let file = File::create(path).map_err(|e| format!("cannot create the log {name}: {e}"))?;
        let (sender, receiver) = mpsc::channel::<LogEntry>();
        let writer = std::thread::Builder::new()
            .name("ratesim-log".into())
            .spawn(move || write_lines(BufWriter::with_capacity(1 << 16, file), receiver))
            .map_err(|e| format!("cannot start the log writer: {e}"))?;
        Ok(DecisionLog {
            path: name,
            sender: RwLock::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            sent: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// The file's name.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Queues one entry; the writer thread formats it ([`LogEntry::line`]),
    /// off the request's path.
    pub fn write(&self, entry: LogEntry) {
        let sent = self.sender.read().as_ref().is_some_and(|s| s.send(entry).is_ok());
        if sent {
            self.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            // Only after close: counted, so the shutdown report can say so.
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines queued so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops accepting lines, writes and flushes every queued one, and
    /// returns how many lines the file holds, or why it could not be
    /// written. A line queued after this is refused (and counted: see
    /// [`DecisionLog::refused`]).
    pub fn close(&self) -> Result<u64, String> {
        drop(self.sender.write().take());
        match self.writer.lock().take() {
            Some(handle) => match handle.join() {
                Ok(Ok(n)) => Ok(n),
                Ok(Err(e)) => Err(format!("cannot write the log {}: {e}", self.path)),
                Err(_) => Err(format!("the writer of the log {} stopped unexpectedly", self.path)),
            },
            None => Err(format!("the log {} is already closed", self.path)),
        }
    }

    /// Lines refused because the log was already closed (0 in a clean shutdown).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// The writer thread: formats and writes each entry; flushes whenever it
/// has caught up. While entries keep coming it polls the queue every
/// millisecond instead of blocking on it, so that senders never have to wake
/// it (a wake-up per line costs the request path a system call and, on a
/// busy machine, its core); after 50 ms without an entry it blocks until the
/// next one.
fn write_lines(mut out: BufWriter<File>, entries: mpsc::Receiver<LogEntry>) -> std::io::Result<u64> {
    const IDLE_POLLS: u32 = 50;
    let mut written = 0u64;
    let mut first_error: Option<std::io::Error> = None;
    let mut put = |out: &mut BufWriter<File>, entry: LogEntry, written: &mut u64| {
        if first_error.is_none() {
            match out.write_all(entry.line().as_bytes()) {
                Ok(()) => *written += 1,
                Err(e) => first_error = Some(e),
            }
        }
    };
    let mut idle = 0;
    loop {
        match entries.try_recv() {
            Ok(entry) => {
                put(&mut out, entry, &mut written);
                idle = 0;
            }
            Err(mpsc::TryRecvError::Empty) => {
                let _ = out.flush();
                if idle < IDLE_POLLS {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    idle += 1;
                } else {
                    match entries.recv() {
                        Ok(entry) => put(&mut out, entry, &mut written),
                        Err(_) => break,
                    }
                    idle = 0;
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        }
    }
    out.flush()?;
    out.get_ref().sync_data()?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(written),
    }
}

/// The fields of a log line that a replay needs.
#[derive(Deserialize)]
struct Arrival {
    t_ns: u64,
    request: u64,
    key: String,
    endpoint: String,
    time: String,
    user: Option<String>,
    workspace: Option<String>,
    auth: bool,
    tokens: u64,
    cost: u64,
    duration_ns: u64,
    /// Present for plans that delay admissions (nginx `limit_req`).
    #[serde(default)]
    delay_ns: Option<u64>,
}

/// What [`to_trace`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceWritten {
    /// Rows (one per log line).
    pub rows: u64,
    /// Time from the first arrival to the last.
    pub span: Nanos,
}

/// Turns a decision log into a JSON Lines trace of its arrivals, in arrival
/// order: one row per logged decision with its instant (RFC 3339), key,
/// user, workspace, endpoint, authentication, tokens, money and service
/// time (`duration_ns`, less the plan's `delay_ns` where it delays). `ratesim run --trace OUT --client none --decisions D` then decides
/// the same requests at the same instants; `D` holds the log's decision
/// fields, line for line.
pub fn to_trace(log: &Path, out: &Path) -> Result<TraceWritten, String> {
    let name = log.display().to_string();
    let file = File::open(log).map_err(|e| format!("{name}: cannot read the log: {e}"))?;
    let mut rows: Vec<(u64, u64, String)> = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{name}:{}: cannot read: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let a: Arrival = serde_json::from_str(&line).map_err(|e| {
            let hint = if e.to_string().contains("missing field `time`") {
                " (a `ratesim run --decisions` file has no arrival details: give the log of `ratesim serve --log`)"
            } else {
                ""
            };
            format!("{name}:{}:{}: {e}{hint}", i + 1, e.column())
        })?;
        let at = crate::time::parse_rfc3339(&a.time).map_err(|e| format!("{name}:{}: field `time`: {e}", i + 1))?;
        let text = |v: &Option<String>| v.as_deref().map_or(serde_json::Value::Null, serde_json::Value::from);
        let row = format!(
            "{{\"t\":\"{}\",\"key\":{},\"user\":{},\"workspace\":{},\"endpoint\":{},\"auth\":{},\"tokens\":{},\"cost\":{},\"duration\":\"{}\"}}\n",
            format_rfc3339(at),
            serde_json::Value::from(a.key),
            text(&a.user),
            text(&a.workspace),
            serde_json::Value::from(a.endpoint),
            a.auth,
            a.tokens,
            a.cost,
            // The replay adds the plan's delay itself: the service time is
            // what the request held beyond it.
            format_decimal_seconds(a.duration_ns.saturating_sub(a.delay_ns.unwrap_or(0))),
        );
        rows.push((a.t_ns, a.request, row));
    }
    rows.sort_by_key(|&(t, request, _)| (t, request));
    let out_name = out.display().to_string();
    let mut w = BufWriter::new(File::create(out).map_err(|e| format!("cannot create {out_name}: {e}"))?);
    for (_, _, row) in &rows {
        w.write_all(row.as_bytes()).map_err(|e| format!("cannot write {out_name}: {e}"))?;
    }
    w.flush().map_err(|e| format!("cannot write {out_name}: {e}"))?;
    let span = match (rows.first(), rows.last()) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => 0,
    };
    Ok(TraceWritten { rows: rows.len() as u64, span })
}

/// `span` for people: seconds with up to 3 decimals.
pub fn human_span(span: Nanos) -> String {
    format!("{:.3} s", span as f64 / SECOND as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_extends_the_decisions_schema() {
        let e = LogEntry {
            request: 3,
            at: 1_767_225_600_500_000_000,
            origin: 1_767_225_600_000_000_000,
            key: "sk-a".into(),
            user: Some("alice".into()),
            workspace: None,
            endpoint: "chat.completions".into(),
            auth: true,
            allowed: false,
            status: 429,
            limit: Some("rpm".into()),
            remaining: Some(0),
            reset_ns: Some(6_000_000_000),
            retry_after_ns: Some(120_000_000),
            delay_ns: None,
            tokens: 21,
            cost: 0,
            duration_ns: 0,
            client_request_id: Some("r\"1".into()),
            client_retry_count: Some(2),
        };
        assert_eq!(
            e.line(),
            "{\"t_ns\":500000000,\"request\":3,\"attempt\":0,\"kind\":\"first\",\"key\":\"sk-a\",\"endpoint\":\"chat.completions\",\"allowed\":false,\"status\":429,\"limit\":\"rpm\",\"remaining\":0,\"reset_ns\":6000000000,\"retry_after_ns\":120000000,\"time\":\"2026-01-01T00:00:00.5Z\",\"user\":\"alice\",\"workspace\":null,\"auth\":true,\"tokens\":21,\"cost\":0,\"duration_ns\":0,\"client_request_id\":\"r\\\"1\",\"client_retry_count\":2}\n"
        );
    }
}
