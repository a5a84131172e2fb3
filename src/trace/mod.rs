//! Request traces: what arrives, when, from whom.
//!
//! A trace is a stream of [`TraceRow`]s in time order. It comes from a
//! recorded file ([`csv`], [`jsonl`]) or from a synthetic population spec
//! ([`synth`]). Every source is read through [`TraceSource`], one row at a
//! time into a reused buffer, so a 10-million-row trace is never held in
//! memory and memory does not grow with its length.
//!
//! ## Recorded format
//!
//! Columns (CSV header row, or JSON object keys; order free):
//!
//! | column | required | meaning |
//! |---|---|---|
//! | `t` | yes | seconds since the trace start as a decimal (`12.5`, parsed exactly to nanoseconds), or an RFC 3339 timestamp (`2026-01-01T00:00:12.5Z`); one form per file |
//! | `key` | yes | API key (or client identity) |
//! | `user` | no | user owning the key |
//! | `workspace` | no | workspace owning the key |
//! | `endpoint` | no | endpoint name (default empty) |
//! | `auth` | no | `true`/`false` (default `true`) |
//! | `tokens` | no | tokens used, a whole number from 0 to [`MAX_AMOUNT`] (default 0) |
//! | `cost` | no | money in minor units, a whole number from 0 to [`MAX_AMOUNT`] (default 0) |
//! | `duration` | no | service time in decimal seconds, at most 100 years ([`MAX_DURATION`]) (default 0) |
//!
//! Rows must be in non-decreasing time order. An offset `t` is at most 100
//! years ([`MAX_DURATION`]); RFC 3339 times are at most
//! [`MAX_INSTANT`](crate::time::MAX_INSTANT) (2200) and at most 100 years
//! after the file's first row. Every error names the file, line and column
//! and says what was expected.
//!
//! Lines are read into a buffer of at most [`MAX_LINE_BYTES`]: a file that is
//! not a trace (or a line without an end) is refused with an error instead
//! of filling memory.

pub mod csv;
pub mod jsonl;
pub mod scale;
pub mod synth;

use std::fmt;
use std::path::Path;

use crate::time::Nanos;
#[cfg(doc)]
use crate::time::MAX_DURATION;

/// The largest `tokens` or `cost` of one request, from any trace (recorded
/// or synthetic): 10^15. Every such amount is exact as a JSON number (below
/// 2^53, so every JSON reader gets it back), and 18,000 of them still add up
/// within `u64`.
pub const MAX_AMOUNT: u64 = 1_000_000_000_000_000;

/// The longest line (or CSV record) a recorded trace may have: 1 MiB. Rows
/// are a few hundred bytes; a longer line means the file is not a trace.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// When a row happens: an offset from the trace start, or an absolute instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TraceTime {
    /// Nanoseconds since the trace start (decimal seconds in the file).
    Offset(Nanos),
    /// Nanoseconds since the Unix epoch (RFC 3339 in the file).
    Absolute(Nanos),
}

/// One request of a trace. Reused between rows: readers overwrite every
/// field (clearing strings, keeping their capacity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRow {
    /// When the request arrives.
    pub t: TraceTime,
    /// API key (or client identity).
    pub key: String,
    /// User owning the key; empty if unknown.
    pub user: String,
    /// Workspace owning the key; empty if unknown.
    pub workspace: String,
    /// Endpoint; empty if unknown.
    pub endpoint: String,
    /// Whether the request is authenticated.
    pub auth: bool,
    /// Tokens used.
    pub tokens: u64,
    /// Money in minor units.
    pub cost: u64,
    /// Service time in nanoseconds.
    pub duration: Nanos,
    /// Items carried by the request (synthetic batching; 1 for recorded rows).
    pub items: u32,
    /// Asynchronous job: after admission the client polls `poll_endpoint`
    /// every `poll_every` until the job is done (`duration` after
    /// admission). 0 means no polling (a synchronous call, or a webhook).
    pub poll_every: Nanos,
    /// Endpoint the polls go to (synthetic jobs only).
    pub poll_endpoint: String,
    /// 1-based line of the row in its file (0 for synthetic rows).
    pub line: u64,
}

impl Default for TraceRow {
    fn default() -> Self {
        TraceRow {
            t: TraceTime::Offset(0),
            key: String::new(),
            user: String::new(),
            workspace: String::new(),
            endpoint: String::new(),
            auth: true,
            tokens: 0,
            cost: 0,
            duration: 0,
            items: 1,
            poll_every: 0,
            poll_endpoint: String::new(),
            line: 0,
        }
    }
}

impl TraceRow {
    /// Resets every field to its default, keeping string capacity.
    pub fn clear(&mut self) {
        self.t = TraceTime::Offset(0);
        self.key.clear();
        self.user.clear();
        self.workspace.clear();
        self.endpoint.clear();
        self.auth = true;
        self.tokens = 0;
        self.cost = 0;
        self.duration = 0;
        self.items = 1;
        self.poll_every = 0;
        self.poll_endpoint.clear();
        self.line = 0;
    }
}

/// A trace that could not be read: where and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    /// The file (or spec) name.
    pub file: String,
    /// 1-based line, 0 if unknown.
    pub line: u64,
    /// 1-based column (CSV: field number; JSONL: character), 0 if unknown.
    pub column: u64,
    /// The field, e.g. `t`; may be empty.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": field `{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for TraceError {}

/// Columns a recorded trace file may carry besides the trace's own: a file
/// that is a trace plus something else, such as a decision log (`allowed`,
/// `status`, `retry_after`; see [`crate::verify`]).
///
/// A reader made with [`csv::CsvTrace::with_extra`] or
/// [`jsonl::JsonlTrace::with_extra`] accepts these names as CSV columns or
/// JSON keys (they remain errors for a plain trace), and hands each row's
/// values to [`ExtraColumns::set`] as text: a JSON string as it is, a number
/// or boolean as written, `null` as an empty string. Unknown names are still
/// errors, and the error lists these names with the trace's. At most 48
/// names.
pub trait ExtraColumns {
    /// The accepted names.
    fn names(&self) -> &'static [&'static str];

    /// The index (into [`ExtraColumns::names`]) of a column that may give
    /// the time instead of `t` (e.g. `t_ns`): a file then needs one of the
    /// two, and giving both is an error. The reader checks nothing else of
    /// that column (its form and order are the implementor's to check).
    fn time_column(&self) -> Option<usize> {
        None
    }

    /// Forgets the previous row's values; called before each row.
    fn clear(&mut self);

    /// Sets column `index` of the row on 1-based line `line` from its text;
    /// an error says what was expected and what was found (the reader adds
    /// the file, line, column and field).
    fn set(&mut self, index: usize, text: &str, line: u64) -> Result<(), String>;
}

/// No extra columns: a plain trace.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoExtra;

impl ExtraColumns for NoExtra {
    fn names(&self) -> &'static [&'static str] {
        &[]
    }

    fn clear(&mut self) {}

    fn set(&mut self, _index: usize, _text: &str, _line: u64) -> Result<(), String> {
        Ok(())
    }
}

impl TraceError {
    /// The error for a trace with no rows: a header-only CSV, an empty or
    /// blank JSONL file, a spec that produces nothing. Every command that
    /// needs rows refuses such a trace the same way (a 0-byte CSV, which
    /// lacks even the header, is refused by the reader).
    pub fn no_rows(path: &Path) -> TraceError {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let what = match ext.as_str() {
            "csv" => "no rows after the header",
            "jsonl" | "ndjson" => "no rows (the file is empty or blank)",
            "toml" => "the spec produces no rows (with this seed and horizon)",
            _ => "no rows",
        };
        TraceError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("{what}: there is nothing to simulate"),
        }
    }
}

/// A stream of trace rows in non-decreasing time order.
pub trait TraceSource {
    /// Reads the next row into `row` (overwriting it). `Ok(false)` at the end.
    fn next_row(&mut self, row: &mut TraceRow) -> Result<bool, TraceError>;
}

impl<T: TraceSource + ?Sized> TraceSource for Box<T> {
    fn next_row(&mut self, row: &mut TraceRow) -> Result<bool, TraceError> {
        (**self).next_row(row)
    }
}

/// Appends one line of `reader` (up to and including its `\n`) to `buf`,
/// which with what it already holds may reach [`MAX_LINE_BYTES`]; returns
/// the bytes read, 0 at the end. The error says why, for the caller to
/// locate.
pub(crate) fn read_line(reader: &mut impl std::io::BufRead, buf: &mut Vec<u8>) -> Result<usize, String> {
    use std::io::{BufRead, Read};
    let room = (MAX_LINE_BYTES + 1).saturating_sub(buf.len()) as u64;
    let n = reader.by_ref().take(room).read_until(b'\n', buf).map_err(|e| format!("cannot read the trace: {e}"))?;
    if buf.len() > MAX_LINE_BYTES {
        return Err(format!(
            "the line is longer than {} MiB ({MAX_LINE_BYTES} bytes); a trace row takes a few hundred \
             bytes, so this is not a trace file or its lines do not end",
            MAX_LINE_BYTES >> 20
        ));
    }
    Ok(n)
}

/// Opens a trace file for buffered reading; the error names the file.
pub(crate) fn open_file(path: &Path) -> Result<(std::io::BufReader<std::fs::File>, String), TraceError> {
    let name = path.display().to_string();
    match std::fs::File::open(path) {
        Ok(file) => Ok((std::io::BufReader::with_capacity(64 * 1024, file), name)),
        Err(e) => Err(TraceError {
            file: name,
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot open the trace: {e}{}", crate::toml_input::relative_hint(path)),
        }),
    }
}

/// Opens a trace by its extension: `.csv` and `.jsonl`/`.ndjson` are
/// recorded traces, streamed; `.toml` is a synthetic spec, generated lazily
/// with `seed` if given, else the spec's own `seed`, else 0.
pub fn open(path: &Path, seed: Option<u64>) -> Result<Box<dyn TraceSource>, TraceError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Ok(Box::new(csv::CsvTrace::open(path)?)),
        "jsonl" | "ndjson" => Ok(Box::new(jsonl::JsonlTrace::open(path)?)),
        "toml" => {
            let spec = synth::load_spec(path)?;
            let seed = seed.or(spec.seed()).unwrap_or(0);
            Ok(Box::new(spec.generate(seed)))
        }
        _ => Err(TraceError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            field: String::new(),
            message: "expected a recorded trace (.csv, .jsonl) or a synthetic spec (.toml)".into(),
        }),
    }
}

/// Opens a trace scaled by `scaling` (see [`scale`]): a spec is scaled in
/// its own terms and generated with `seed`; a recorded trace becomes
/// [`scale::Superposed`] copies of itself, whose span is measured by one
/// pass over the file unless given (`span`, from [`scale::span_of`]).
/// Identity scaling is [`open`].
pub fn open_scaled(
    path: &Path,
    seed: Option<u64>,
    scaling: &scale::Scaling,
    span: Option<scale::Span>,
) -> Result<Box<dyn TraceSource>, TraceError> {
    if scaling.is_identity() {
        return open(path, seed);
    }
    let file = || path.display().to_string();
    let located = |message: String| TraceError { file: file(), line: 0, column: 0, field: String::new(), message };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if ext == "toml" {
        let spec = synth::load_spec(path)?;
        let seed = seed.or(spec.seed()).unwrap_or(0);
        let spec = spec.scaled(scaling.factor).and_then(|s| s.with_key_copies(scaling.key_copies)).map_err(located)?;
        return Ok(Box::new(spec.generate(seed)));
    }
    let span = match span {
        Some(s) => s,
        None => scale::span_of(&mut *open(path, seed)?)?,
    };
    let reopen = || open(path, seed);
    let scaled = scale::Superposed::new(&reopen, span, scaling, seed.unwrap_or(0)).map_err(|mut e| {
        e.file = file();
        e
    })?;
    Ok(Box::new(scaled))
}

/// A trace held in memory: for tests and for programs that build rows
/// themselves. Rows must be in time order.
#[derive(Clone, Debug, Default)]
pub struct MemoryTrace {
    rows: std::collections::VecDeque<TraceRow>,
}

impl MemoryTrace {
    /// A trace of `rows`.
    pub fn new(rows: Vec<TraceRow>) -> MemoryTrace {
        MemoryTrace { rows: rows.into() }
    }
}

impl TraceSource for MemoryTrace {
    fn next_row(&mut self, row: &mut TraceRow) -> Result<bool, TraceError> {
        match self.rows.pop_front() {
            Some(r) => {
                *row = r;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
