//! CSV traces: a streaming reader and a writer for recorded request traces.
//!
//! A CSV trace is a header row naming the columns (see the table in
//! [`crate::trace`]; order free, `t` and `key` required) followed by one row
//! per request, in non-decreasing time order:
//!
//! ```text
//! t,key,endpoint,tokens
//! 0,key-a,/v1/chat,120
//! 0.25,key-b,/v1/embed,8
//! ```
//!
//! [`CsvTrace`] reads such a file one row at a time into a reused
//! [`TraceRow`], so memory stays flat however long the trace is. Rows are
//! read through one reused line buffer; the common case (no quotes in the
//! line) splits the line on commas in place and parses numbers by hand, with
//! no allocation per row. Lines that contain a quote take a slower path that
//! implements RFC 4180 quoting: `"a,b"` is one field, `""` inside a quoted
//! field is a quote, and a quoted field may span lines.
//!
//! Rules, checked as the file is read:
//!
//! - `t` is either seconds since the trace start as a decimal (`12.5`, exact
//!   to the nanosecond, never through floating point) or an RFC 3339
//!   timestamp; the first row decides, and mixing the two forms is an error.
//! - Rows are in non-decreasing time order.
//! - Every row has exactly as many fields as the header.
//! - An empty field in an optional column takes the column's default
//!   (`auth` true, numbers 0); `key` must not be empty.
//! - `tokens` and `cost` are whole numbers, `duration` decimal seconds, none
//!   negative; `auth` is `true`/`false` (any case) or `1`/`0`.
//! - Lines end in LF or CRLF; a UTF-8 byte order mark before the header is
//!   ignored; any other byte that is not UTF-8 is an error.
//! - Blank lines are allowed only at the end of the file. A blank line
//!   between rows is an error rather than skipped: in CSV it is a record with
//!   one empty field, and in a recorded trace it usually means two files were
//!   concatenated or a row was lost, which a simulation should not paper over.
//!
//! Every error is a [`TraceError`] naming the file, the 1-based line, the
//! 1-based field number as the column and the column's name, and says what
//! was expected and what was found:
//!
//! ```text
//! traces/x.csv:12:1: field `t`: expected seconds since the trace start as a decimal (e.g. 12.5) or an RFC 3339 timestamp, found "abc"
//! ```
//!
//! [`write_header`] and [`write_row`] write the canonical column set
//! ([`HEADER`]) so that reading the output back yields the same rows.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use super::{ExtraColumns, NoExtra, TraceError, TraceRow, TraceSource, TraceTime, MAX_AMOUNT};
use crate::time::{format_rfc3339, parse_decimal_seconds, parse_rfc3339, Nanos, MAX_DURATION, SECOND};

/// The canonical header written by [`write_header`]: every column, in the
/// order of the table in [`crate::trace`].
pub const HEADER: &str = "t,key,user,workspace,endpoint,auth,tokens,cost,duration";

/// The accepted column (CSV) or key (JSONL) names, for error messages.
pub(crate) const ACCEPTED: &str = "t, key, user, workspace, endpoint, auth, tokens, cost, duration";

/// A column of a recorded trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Column {
    T,
    Key,
    User,
    Workspace,
    Endpoint,
    Auth,
    Tokens,
    Cost,
    Duration,
    /// Column `i` of a reader's [`ExtraColumns`].
    Extra(u8),
}

impl Column {
    /// The column's name in a header or JSON object; `extra` names the
    /// reader's extra columns.
    pub(crate) fn name_in(self, extra: &[&'static str]) -> &'static str {
        match self {
            Column::Extra(i) => extra[i as usize],
            _ => self.name(),
        }
    }

    /// The column called `name` among the trace's columns and `extra`.
    pub(crate) fn from_name_in(name: &str, extra: &[&'static str]) -> Option<Column> {
        Column::from_name(name).or_else(|| extra.iter().position(|&e| e == name).map(|i| Column::Extra(i as u8)))
    }

    /// The column's name in a header or JSON object (empty for an extra
    /// column: see [`Column::name_in`]).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Column::T => "t",
            Column::Key => "key",
            Column::User => "user",
            Column::Workspace => "workspace",
            Column::Endpoint => "endpoint",
            Column::Auth => "auth",
            Column::Tokens => "tokens",
            Column::Cost => "cost",
            Column::Duration => "duration",
            Column::Extra(_) => "",
        }
    }

    /// The column called `name`, if any.
    pub(crate) fn from_name(name: &str) -> Option<Column> {
        Some(match name {
            "t" => Column::T,
            "key" => Column::Key,
            "user" => Column::User,
            "workspace" => Column::Workspace,
            "endpoint" => Column::Endpoint,
            "auth" => Column::Auth,
            "tokens" => Column::Tokens,
            "cost" => Column::Cost,
            "duration" => Column::Duration,
            _ => return None,
        })
    }

    /// A distinct bit per column, for sets of seen columns.
    pub(crate) fn bit(self) -> u64 {
        match self {
            Column::Extra(i) => 1 << (16 + i as u32),
            Column::T => 1,
            Column::Key => 1 << 1,
            Column::User => 1 << 2,
            Column::Workspace => 1 << 3,
            Column::Endpoint => 1 << 4,
            Column::Auth => 1 << 5,
            Column::Tokens => 1 << 6,
            Column::Cost => 1 << 7,
            Column::Duration => 1 << 8,
        }
    }
}

/// Checks that the columns in `seen` (a set of [`Column::bit`]s) give a
/// time and a key: `t`, or the extra column `time` standing in for it, not
/// both. On error: the field, and either `None` (missing; the caller says
/// what is required, naming the time columns `names`) or the message.
pub(crate) fn required_columns(
    seen: u64,
    extra: &[&'static str],
    time: Option<usize>,
) -> Result<(), (&'static str, Option<String>)> {
    let alt = time.map(|i| (Column::Extra(i as u8), extra[i]));
    let has_t = seen & Column::T.bit() != 0;
    match alt {
        Some((col, name)) if has_t && seen & col.bit() != 0 => {
            return Err((name, Some(format!("give the time once, in `t` or in `{name}`, not both"))));
        }
        Some((col, _)) if seen & col.bit() != 0 => {}
        _ if !has_t => return Err(("t", None)),
        _ => {}
    }
    if seen & Column::Key.bit() == 0 {
        return Err(("key", None));
    }
    Ok(())
}

/// How the required time column is named in errors: `` `t` ``, or
/// `` `t` (or `t_ns`) `` when an extra column may stand in for it.
pub(crate) fn time_names(extra: &[&'static str], time: Option<usize>) -> String {
    match time {
        Some(i) => format!("`t` (or `{}`)", extra[i]),
        None => "`t`".to_string(),
    }
}

/// The accepted names for error messages: the trace's and `extra`.
pub(crate) fn accepted(extra: &[&'static str]) -> String {
    let mut s = ACCEPTED.to_string();
    for name in extra {
        s.push_str(", ");
        s.push_str(name);
    }
    s
}

// ---------------------------------------------------------------------------
// Times: form and order checks shared by the CSV and JSONL readers.

/// The two ways a file can give times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// Decimal seconds since the trace start.
    Offset,
    /// RFC 3339 timestamps.
    Absolute,
}

impl Form {
    fn describe(self) -> &'static str {
        match self {
            Form::Offset => "seconds since the trace start",
            Form::Absolute => "RFC 3339 timestamps",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Form::Offset => OFFSET_EXPECTED,
            Form::Absolute => ABSOLUTE_EXPECTED,
        }
    }
}

const OFFSET_EXPECTED: &str = "expected seconds since the trace start as a decimal (e.g. 12.5)";
const ABSOLUTE_EXPECTED: &str = "expected an RFC 3339 timestamp (e.g. 2026-01-01T00:00:12.5Z)";
const EITHER_EXPECTED: &str =
    "expected seconds since the trace start as a decimal (e.g. 12.5) or an RFC 3339 timestamp";

/// Remembers a file's time form and its latest time, so every row can be
/// checked for mixed forms and time order.
#[derive(Debug, Default)]
pub(crate) struct TimeCheck {
    form: Option<(Form, u64)>,
    last: Option<(TraceTime, u64)>,
    /// The first RFC 3339 time and its line: later ones are at most 100 years after it.
    first_absolute: Option<(Nanos, u64)>,
}

impl TimeCheck {
    /// Parses a textual `t` field of row `line`, then checks its form and order.
    #[inline]
    pub(crate) fn admit_text(&mut self, text: &str, line: u64) -> Result<TraceTime, String> {
        // Hot path: a plain decimal in a file of decimals.
        if let Some((Form::Offset, _)) = self.form {
            if let Some(ns) = fast_decimal(text.as_bytes()) {
                return self.admit(Form::Offset, TraceTime::Offset(ns), &Quoted(text), line);
            }
        }
        let bytes = text.as_bytes();
        let form = if looks_decimal(bytes) || looks_decimal(bytes.strip_prefix(b"-").unwrap_or(b"")) {
            Form::Offset
        } else if looks_rfc3339(bytes) {
            Form::Absolute
        } else {
            let expected = self.form.map_or(EITHER_EXPECTED, |(f, _)| f.expected());
            return Err(format!("{expected}, found {text:?}"));
        };
        self.check_form(form, &Quoted(text), line)?;
        let t = match form {
            Form::Offset => {
                if text.starts_with('-') {
                    return Err(format!("{OFFSET_EXPECTED}, found {text:?}{}", negative_why(text)));
                }
                TraceTime::Offset(
                    decimal_seconds(text).map_err(|why| format!("{OFFSET_EXPECTED}, found {text:?}{why}"))?,
                )
            }
            Form::Absolute => TraceTime::Absolute(parse_rfc3339(text).map_err(|e| {
                // Keep the parser's reason ("(a field is out of range)") if any.
                let why = e.rfind(" (").map_or("", |i| &e[i..]);
                format!("{ABSOLUTE_EXPECTED}, found {text:?}{why}")
            })?),
        };
        self.admit(form, t, &Quoted(text), line)
    }

    /// Checks the form and order of an already parsed time of row `line`;
    /// `shown` is how the value appeared in the file.
    pub(crate) fn admit(
        &mut self,
        form: Form,
        t: TraceTime,
        shown: &dyn fmt::Display,
        line: u64,
    ) -> Result<TraceTime, String> {
        self.check_form(form, shown, line)?;
        match t {
            TraceTime::Offset(ns) if ns > MAX_DURATION => {
                return Err(format!(
                    "{OFFSET_EXPECTED}, found {shown} (more than 100 years, {} s: a trace spans at most 100 years)",
                    MAX_DURATION / SECOND
                ));
            }
            TraceTime::Absolute(ns) => {
                let (first, first_line) = *self.first_absolute.get_or_insert((ns, line));
                if ns.saturating_sub(first) > MAX_DURATION {
                    return Err(format!(
                        "{ABSOLUTE_EXPECTED}, found {shown}, more than 100 years after the first row's {} \
                         (line {first_line}): a trace spans at most 100 years",
                        format_rfc3339(first)
                    ));
                }
            }
            TraceTime::Offset(_) => {}
        }
        if let Some((prev, prev_line)) = self.last {
            if t < prev {
                return Err(format!(
                    "out of time order: t = {} comes before t = {} on line {prev_line}; \
                     rows must be in non-decreasing time order",
                    show_time(t),
                    show_time(prev)
                ));
            }
        }
        self.last = Some((t, line));
        Ok(t)
    }

    fn check_form(&mut self, form: Form, shown: &dyn fmt::Display, line: u64) -> Result<(), String> {
        match self.form {
            None => {
                self.form = Some((form, line));
                Ok(())
            }
            Some((f, _)) if f == form => Ok(()),
            Some((f, first_line)) => {
                let this = match form {
                    Form::Offset => "seconds since the trace start",
                    Form::Absolute => "an RFC 3339 timestamp",
                };
                Err(format!(
                    "mixed time forms: found {shown}, which is {this}, but the file gives {} \
                     (since line {first_line}); use one form per file",
                    f.describe()
                ))
            }
        }
    }
}

/// Displays a string as a Rust-style quoted literal.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A time as it would be written in a trace file.
fn show_time(t: TraceTime) -> String {
    match t {
        TraceTime::Offset(ns) => crate::time::format_decimal_seconds(ns),
        TraceTime::Absolute(ns) => format_rfc3339(ns),
    }
}

/// Digits with at most one dot and at least one digit.
fn looks_decimal(b: &[u8]) -> bool {
    let mut dots = 0;
    let mut digits = 0;
    for &c in b {
        match c {
            b'0'..=b'9' => digits += 1,
            b'.' => dots += 1,
            _ => return false,
        }
    }
    digits > 0 && dots <= 1
}

/// Starts like a date: four digits and a dash.
fn looks_rfc3339(b: &[u8]) -> bool {
    b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// Decimal seconds to nanoseconds for the common shape `digits[.digits]`
/// with at most 9 decimals; `None` sends the caller to the general parser.
#[inline]
pub(crate) fn fast_decimal(b: &[u8]) -> Option<Nanos> {
    let mut i = 0;
    let mut int: u64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        if i == 18 {
            return None;
        }
        int = int * 10 + (b[i] - b'0') as u64;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut frac: u64 = 0;
    if i < b.len() {
        if b[i] != b'.' || b.len() - i - 1 > 9 || b.len() - i == 1 {
            return None;
        }
        for &c in &b[i + 1..] {
            if !c.is_ascii_digit() {
                return None;
            }
            frac = frac * 10 + (c - b'0') as u64;
        }
        frac *= POW10[9 - (b.len() - i - 1)];
    }
    int.checked_mul(SECOND)?.checked_add(frac)
}

const POW10: [u64; 10] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000];

// The reason below spells out MAX_DURATION in seconds.
const _: () = assert!(MAX_DURATION / SECOND == 3_155_760_000);

/// Exact decimal seconds; on error, a reason to append to the message
/// (possibly empty), e.g. `" (finer than a nanosecond)"`.
pub(crate) fn decimal_seconds(text: &str) -> Result<Nanos, &'static str> {
    if let Some(ns) = fast_decimal(text.as_bytes()) {
        return Ok(ns);
    }
    parse_decimal_seconds(text).map_err(|_| {
        if !looks_decimal(text.as_bytes()) {
            ""
        } else if text.split_once('.').is_some_and(|(_, f)| f.len() > 9 && f[9..].bytes().any(|c| c != b'0')) {
            " (finer than a nanosecond)"
        } else {
            " (more than 100 years, 3155760000 s)"
        }
    })
}

// ---------------------------------------------------------------------------
// Field values.

/// Sets one field of `row` (or of `extra`) from its text.
#[inline]
fn set_field<X: ExtraColumns>(
    col: Column,
    text: &str,
    row: &mut TraceRow,
    times: &mut TimeCheck,
    extra: &mut X,
    line: u64,
) -> Result<(), String> {
    match col {
        Column::Extra(i) => extra.set(i as usize, text, line)?,
        Column::T => {
            row.t = times.admit_text(text, line)?;
        }
        Column::Key => {
            if text.is_empty() {
                return Err("expected an API key (or client identity), found an empty field".to_string());
            }
            row.key.push_str(text);
        }
        Column::User => row.user.push_str(text),
        Column::Workspace => row.workspace.push_str(text),
        Column::Endpoint => row.endpoint.push_str(text),
        Column::Auth => row.auth = parse_bool(text)?,
        Column::Tokens => row.tokens = parse_count(text, "tokens")?,
        Column::Cost => row.cost = parse_count(text, "minor currency units")?,
        Column::Duration => {
            if !text.is_empty() {
                row.duration = parse_duration(text)?;
            }
        }
    }
    Ok(())
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ if text.eq_ignore_ascii_case("true") => Ok(true),
        _ if text.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(format!("expected true or false (or 1 or 0), found {text:?}")),
    }
}

/// A whole number (empty means 0) of at most [`MAX_AMOUNT`], parsed by hand.
#[inline]
fn parse_count(text: &str, what: &str) -> Result<u64, String> {
    let mut n: u64 = 0;
    for &c in text.as_bytes() {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(count_error(text, what));
        }
        n = n.saturating_mul(10).saturating_add(d as u64);
    }
    if n > MAX_AMOUNT {
        return Err(amount_too_large(&Quoted(text), what));
    }
    Ok(n)
}

/// What an amount (`tokens`, `cost`) may be.
pub(crate) fn amount_expected(what: &str) -> String {
    format!("expected a whole number of {what} from 0 to {MAX_AMOUNT} (10^15)")
}

/// The error for an amount above [`MAX_AMOUNT`].
pub(crate) fn amount_too_large(shown: &dyn fmt::Display, what: &str) -> String {
    format!("{}, found {shown} (too large: one request carries at most 10^15)", amount_expected(what))
}

fn count_error(text: &str, what: &str) -> String {
    format!("{}, found {text:?}{}", amount_expected(what), negative_why(text))
}

/// Why a number written with a minus sign is refused: `", which is
/// negative"`, or for a zero (`-0`) that it has a sign; empty for text
/// without a leading minus.
pub(crate) fn negative_why(text: &str) -> &'static str {
    match text.strip_prefix('-') {
        Some(rest) if rest.contains('0') && rest.bytes().all(|b| b == b'0' || b == b'.') => {
            ", which has a minus sign; write it without one"
        }
        Some(rest) if !rest.is_empty() => ", which is negative",
        _ => "",
    }
}

/// Refuses a duration above [`MAX_DURATION`] (100 years); `expected` and
/// `shown` make the message.
pub(crate) fn cap_duration(ns: Nanos, expected: &str, shown: &dyn fmt::Display) -> Result<Nanos, String> {
    if ns > MAX_DURATION {
        return Err(format!("{expected}, found {shown} (more than 100 years, {} s)", MAX_DURATION / SECOND));
    }
    Ok(ns)
}

const DURATION_EXPECTED: &str = "expected a service time in decimal seconds (e.g. 0.25)";

/// A non-empty `duration` field: exact decimal seconds, at most 100 years.
pub(crate) fn parse_duration(text: &str) -> Result<Nanos, String> {
    if text.starts_with('-') && text.len() > 1 {
        return Err(format!("{DURATION_EXPECTED}, found {text:?}{}", negative_why(text)));
    }
    let ns = decimal_seconds(text).map_err(|why| format!("{DURATION_EXPECTED}, found {text:?}{why}"))?;
    cap_duration(ns, DURATION_EXPECTED, &Quoted(text))
}

// ---------------------------------------------------------------------------
// Records.

/// Where a scan of a record is: used to find where a record ends (a quoted
/// field may hold line breaks) and which field a byte belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Scan {
    #[default]
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

#[derive(Debug, Default)]
struct QuoteScan {
    state: Scan,
    /// 0-based field the scan is in.
    field: usize,
    /// Bytes fed so far, and where the current field started.
    fed: usize,
    field_start: usize,
    /// Field and line where the current quoted field opened.
    open_field: usize,
    open_line: u64,
}

impl QuoteScan {
    fn feed(&mut self, bytes: &[u8], line: u64) {
        for &b in bytes {
            self.fed += 1;
            self.state = match (self.state, b) {
                (Scan::FieldStart, b'"') => {
                    self.open_field = self.field;
                    self.open_line = line;
                    Scan::Quoted
                }
                (Scan::FieldStart | Scan::Unquoted | Scan::QuoteInQuoted, b',') => {
                    self.field += 1;
                    self.field_start = self.fed;
                    Scan::FieldStart
                }
                (Scan::FieldStart | Scan::Unquoted, _) => Scan::Unquoted,
                (Scan::Quoted, b'"') => Scan::QuoteInQuoted,
                (Scan::Quoted, _) => Scan::Quoted,
                (Scan::QuoteInQuoted, b'"') => Scan::Quoted,
                (Scan::QuoteInQuoted, _) => Scan::Unquoted,
            };
        }
    }
}

/// Splits a record that contains quotes into fields, unescaping quoted ones
/// into `scratch`, and hands each to `f` with its 0-based index. Returns the
/// number of fields, or the index of the failing field and why.
fn split_quoted(
    line: &str,
    scratch: &mut String,
    mut f: impl FnMut(usize, &str) -> Result<(), String>,
) -> Result<usize, (usize, String)> {
    let bytes = line.as_bytes();
    let mut pos = 0;
    let mut idx = 0;
    loop {
        let (end, next) = if bytes.get(pos) == Some(&b'"') {
            scratch.clear();
            let mut i = pos + 1;
            let after = loop {
                let Some(j) = bytes[i..].iter().position(|&b| b == b'"').map(|j| i + j) else {
                    return Err((idx, "unterminated quoted field".to_string()));
                };
                scratch.push_str(&line[i..j]);
                if bytes.get(j + 1) == Some(&b'"') {
                    scratch.push('"');
                    i = j + 2;
                } else {
                    break j + 1;
                }
            };
            match bytes.get(after) {
                None => (None, None),
                Some(b',') => (None, Some(after + 1)),
                Some(_) => {
                    return Err((
                        idx,
                        format!(
                            "expected a comma or the end of the line after the closing quote, \
                             found {:?}",
                            &line[after..]
                        ),
                    ))
                }
            }
        } else {
            let end = bytes[pos..].iter().position(|&b| b == b',').map_or(bytes.len(), |j| pos + j);
            let text = &line[pos..end];
            if text.contains('"') {
                return Err((
                    idx,
                    format!(
                        "found a quote inside an unquoted field ({text:?}); quote the whole \
                         field and double the quotes inside it, e.g. \"a \"\"b\"\" c\""
                    ),
                ));
            }
            (Some(end), (end < bytes.len()).then_some(end + 1))
        };
        let text = match end {
            Some(end) => &line[pos..end],
            None => scratch.as_str(),
        };
        f(idx, text).map_err(|m| (idx, m))?;
        idx += 1;
        match next {
            Some(p) => pos = p,
            None => return Ok(idx),
        }
    }
}

/// Splits a record without quotes on commas and sets the fields of `row`.
#[inline]
fn parse_plain<X: ExtraColumns>(
    line: &str,
    columns: &[Column],
    times: &mut TimeCheck,
    extra: &mut X,
    line_no: u64,
    row: &mut TraceRow,
) -> Result<usize, (usize, String)> {
    let mut n = 0;
    for text in line.split(',') {
        let Some(&col) = columns.get(n) else {
            return Err((n, String::new()));
        };
        set_field(col, text, row, times, extra, line_no).map_err(|m| (n, m))?;
        n += 1;
    }
    Ok(n)
}

// ---------------------------------------------------------------------------
// The reader.

/// A streaming reader of a CSV trace; see the [module docs](self).
///
/// ```no_run
/// use ratesim::trace::{csv::CsvTrace, TraceRow, TraceSource};
/// let mut trace = CsvTrace::open("traces/sample.csv".as_ref())?;
/// let mut row = TraceRow::default();
/// while trace.next_row(&mut row)? {
///     println!("{:?} {}", row.t, row.key);
/// }
/// # Ok::<(), ratesim::trace::TraceError>(())
/// ```
///
/// [`CsvTrace::with_extra`] reads a file that is a trace plus further
/// columns (see [`ExtraColumns`]).
#[derive(Debug)]
pub struct CsvTrace<R: BufRead, X: ExtraColumns = NoExtra> {
    reader: R,
    name: String,
    columns: Vec<Column>,
    /// The current record, without its line terminator.
    buf: Vec<u8>,
    /// Whether `buf` contains a quote.
    quoted: bool,
    /// An unescaped quoted field.
    scratch: String,
    /// Physical lines read so far.
    line: u64,
    /// The first of a run of blank lines not yet followed by a row.
    blank: Option<u64>,
    times: TimeCheck,
    extra: X,
}

impl CsvTrace<BufReader<File>> {
    /// Opens a CSV trace file and reads its header.
    pub fn open(path: &Path) -> Result<CsvTrace<BufReader<File>>, TraceError> {
        let (reader, name) = super::open_file(path)?;
        CsvTrace::new(reader, &name)
    }
}

impl<R: BufRead> CsvTrace<R> {
    /// Reads and checks the header row of `reader`; `name` is the file name
    /// used in errors.
    pub fn new(reader: R, name: &str) -> Result<Self, TraceError> {
        CsvTrace::with_extra(reader, name, NoExtra)
    }
}

impl<R: BufRead, X: ExtraColumns> CsvTrace<R, X> {
    /// Like [`CsvTrace::new`], accepting the columns of `extra` too: each
    /// row's values of those columns go to `extra` (read them after
    /// [`TraceSource::next_row`] through [`CsvTrace::extra`]).
    pub fn with_extra(reader: R, name: &str, extra: X) -> Result<Self, TraceError> {
        let mut trace = CsvTrace {
            reader,
            name: name.to_string(),
            columns: Vec::new(),
            buf: Vec::with_capacity(256),
            quoted: false,
            scratch: String::new(),
            line: 0,
            blank: None,
            times: TimeCheck::default(),
            extra,
        };
        trace.read_header()?;
        Ok(trace)
    }

    /// The extra columns' values of the row read last.
    pub fn extra(&self) -> &X {
        &self.extra
    }

    /// The file name used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The columns named by the header, in file order.
    pub fn columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        let extra = self.extra.names();
        self.columns.iter().map(move |c| c.name_in(extra))
    }

    fn error(&self, line: u64, column: u64, field: &str, message: String) -> TraceError {
        TraceError { file: self.name.clone(), line, column, field: field.to_string(), message }
    }

    fn field_name(&self, idx: usize) -> &'static str {
        self.columns.get(idx).map_or("", |c| c.name_in(self.extra.names()))
    }

    /// Appends one physical line to `buf`; returns the bytes read.
    fn read_line(&mut self) -> Result<usize, TraceError> {
        match super::read_line(&mut self.reader, &mut self.buf) {
            Ok(n) => {
                if n > 0 {
                    self.line += 1;
                }
                Ok(n)
            }
            Err(message) => Err(self.error(self.line + 1, 0, "", message)),
        }
    }

    /// Reads the next record (one line, or several if a quoted field holds
    /// line breaks) into `buf`; returns its first line, `None` at the end.
    fn read_record(&mut self) -> Result<Option<u64>, TraceError> {
        self.buf.clear();
        if self.read_line()? == 0 {
            return Ok(None);
        }
        let start = self.line;
        self.quoted = self.buf.contains(&b'"');
        if self.quoted {
            let mut scan = QuoteScan::default();
            let mut from = 0;
            loop {
                scan.feed(&self.buf[from..], self.line);
                if scan.state != Scan::Quoted {
                    break;
                }
                from = self.buf.len();
                let read = self.read_line().map_err(|e| {
                    if self.buf.len() <= crate::trace::MAX_LINE_BYTES {
                        return e;
                    }
                    let field = if self.columns.is_empty() { "" } else { self.field_name(scan.open_field) };
                    self.error(
                        scan.open_line,
                        scan.open_field as u64 + 1,
                        field,
                        format!(
                            "the quoted field that opens here runs on for more than {} MiB ({} bytes) without \
                             closing; a quoted field ends with a quote followed by a comma or the end of the line",
                            crate::trace::MAX_LINE_BYTES >> 20,
                            crate::trace::MAX_LINE_BYTES
                        ),
                    )
                })?;
                if read == 0 {
                    let field = if self.columns.is_empty() { "" } else { self.field_name(scan.open_field) };
                    return Err(self.error(
                        scan.open_line,
                        scan.open_field as u64 + 1,
                        field,
                        "unterminated quoted field: the quote is never closed before the end \
                         of the file (a quoted field ends with a quote followed by a comma or \
                         the end of the line; a quote inside it is written \"\")"
                            .to_string(),
                    ));
                }
            }
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(start))
    }

    /// The error for bytes that are not UTF-8 at `valid_up_to` in the record
    /// starting on `start`.
    fn utf8_error(&self, start: u64, valid_up_to: usize) -> TraceError {
        let mut scan = QuoteScan::default();
        scan.feed(&self.buf[..valid_up_to], start);
        let line = start + self.buf[..valid_up_to].iter().filter(|&&b| b == b'\n').count() as u64;
        let field = if self.columns.is_empty() { "" } else { self.field_name(scan.field) };
        self.error(
            line,
            scan.field as u64 + 1,
            field,
            format!(
                "expected UTF-8 text, found the byte 0x{:02X} (at byte {} of the field), \
                 which is not valid UTF-8; trace files must be UTF-8",
                self.buf[valid_up_to],
                valid_up_to - scan.field_start + 1
            ),
        )
    }

    fn read_header(&mut self) -> Result<(), TraceError> {
        let example = "a header row naming the columns, e.g. t,key,endpoint,tokens";
        if self.read_record()?.is_none() {
            return Err(self.error(0, 0, "", format!("the file is empty; expected {example}")));
        }
        if self.buf.starts_with(b"\xEF\xBB\xBF") {
            self.buf.drain(..3);
        }
        let text = match std::str::from_utf8(&self.buf) {
            Ok(text) => text,
            Err(e) => return Err(self.utf8_error(1, e.valid_up_to())),
        };
        if text.trim().is_empty() {
            return Err(self.error(1, 0, "", format!("expected {example}, found a blank line")));
        }
        let mut columns: Vec<Column> = Vec::new();
        let mut bad: Option<(u64, String, String)> = None;
        let extra = self.extra.names();
        let accepted = accepted(extra);
        let split = split_quoted(text, &mut self.scratch, |idx, name| {
            match Column::from_name_in(name, extra) {
                None if name.is_empty() => {
                    bad = Some((
                        idx as u64 + 1,
                        String::new(),
                        format!("empty column name; the accepted columns are {accepted}"),
                    ));
                }
                None => {
                    bad = Some((
                        idx as u64 + 1,
                        name.to_string(),
                        format!("unknown column; the accepted columns are {accepted}"),
                    ));
                }
                Some(col) => {
                    if let Some(prev) = columns.iter().position(|&c| c == col) {
                        bad = Some((
                            idx as u64 + 1,
                            name.to_string(),
                            format!(
                                "duplicate column (also column {}); name each column once; \
                                 the accepted columns are {accepted}",
                                prev + 1
                            ),
                        ));
                    } else {
                        columns.push(col);
                        return Ok(());
                    }
                }
            }
            Err(String::new())
        });
        if let Some((column, field, message)) = bad {
            return Err(self.error(1, column, &field, message));
        }
        if let Err((idx, message)) = split {
            return Err(self.error(1, idx as u64 + 1, "", message));
        }
        let seen = columns.iter().fold(0, |seen, c| seen | c.bit());
        let time = self.extra.time_column();
        if let Err((field, message)) = required_columns(seen, extra, time) {
            let found: Vec<&str> = columns.iter().map(|c| c.name_in(extra)).collect();
            let message = message.unwrap_or_else(|| {
                format!(
                    "missing required column; the header must name {} and `key`, found columns {}",
                    time_names(extra, time),
                    found.join(", ")
                )
            });
            return Err(self.error(1, 0, field, message));
        }
        self.columns = columns;
        Ok(())
    }

    /// The error for a row whose field count differs from the header's.
    fn count_error(&self, start: u64, text: &str) -> TraceError {
        let mut scan = QuoteScan::default();
        scan.feed(text.as_bytes(), start);
        let found = scan.field + 1;
        let expected = self.columns.len();
        let names: Vec<&str> = self.columns().collect();
        let message = format!("expected {expected} fields ({}) as in the header, found {found}", names.join(","));
        if found > expected {
            self.error(start, expected as u64 + 1, "", message)
        } else {
            self.error(start, found as u64 + 1, self.field_name(found), message)
        }
    }
}

impl<R: BufRead, X: ExtraColumns> TraceSource for CsvTrace<R, X> {
    fn next_row(&mut self, row: &mut TraceRow) -> Result<bool, TraceError> {
        let start = loop {
            let Some(start) = self.read_record()? else {
                return Ok(false);
            };
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                self.blank.get_or_insert(start);
                continue;
            }
            if let Some(blank) = self.blank {
                return Err(self.error(
                    blank,
                    0,
                    "",
                    format!(
                        "expected a row, found a blank line (followed by a row on line {start}); \
                         blank lines are allowed only at the end of the file"
                    ),
                ));
            }
            break start;
        };
        row.clear();
        row.line = start;
        self.extra.clear();
        let text = match std::str::from_utf8(&self.buf) {
            Ok(text) => text,
            Err(e) => return Err(self.utf8_error(start, e.valid_up_to())),
        };
        let columns = &self.columns;
        let times = &mut self.times;
        let extra = &mut self.extra;
        let parsed = if self.quoted {
            split_quoted(text, &mut self.scratch, |idx, field| match columns.get(idx) {
                Some(&col) => set_field(col, field, row, times, extra, start),
                None => Err(String::new()),
            })
        } else {
            parse_plain(text, columns, times, extra, start, row)
        };
        match parsed {
            Ok(n) if n == columns.len() => Ok(true),
            Ok(_) => Err(self.count_error(start, text)),
            Err((idx, _)) if idx >= columns.len() => Err(self.count_error(start, text)),
            Err((idx, message)) => Err(self.error(start, idx as u64 + 1, self.field_name(idx), message)),
        }
    }
}

// ---------------------------------------------------------------------------
// The writer.

/// Writes the canonical header ([`HEADER`]) and a line break.
pub fn write_header(w: &mut impl Write) -> io::Result<()> {
    w.write_all(HEADER.as_bytes())?;
    w.write_all(b"\n")
}

/// Writes `row` as one CSV record under [`HEADER`]: `t` as exact decimal
/// seconds (offsets) or RFC 3339 (absolute), strings quoted when they hold a
/// comma, quote or line break. Reading the output back with [`CsvTrace`]
/// yields the same row (with `line` set and the synthetic-only fields
/// `items`, `poll_every`, `poll_endpoint` at their defaults), provided the
/// key is not empty and the rows are in time order with one time form.
pub fn write_row(w: &mut impl Write, row: &TraceRow) -> io::Result<()> {
    match row.t {
        TraceTime::Offset(ns) => write_seconds(w, ns)?,
        TraceTime::Absolute(ns) => w.write_all(format_rfc3339(ns).as_bytes())?,
    }
    for text in [&row.key, &row.user, &row.workspace, &row.endpoint] {
        w.write_all(b",")?;
        write_text(w, text)?;
    }
    write!(w, ",{},{},{},", row.auth, row.tokens, row.cost)?;
    write_seconds(w, row.duration)?;
    w.write_all(b"\n")
}

/// Exact decimal seconds, trailing zeros trimmed, without allocating.
fn write_seconds(w: &mut impl Write, ns: Nanos) -> io::Result<()> {
    let (secs, mut frac) = (ns / SECOND, ns % SECOND);
    if frac == 0 {
        return write!(w, "{secs}");
    }
    let mut width = 9;
    while frac % 10 == 0 {
        frac /= 10;
        width -= 1;
    }
    write!(w, "{secs}.{frac:0width$}")
}

/// A field, quoted if it holds a comma, quote or line break (RFC 4180).
pub(crate) fn write_text(w: &mut impl Write, text: &str) -> io::Result<()> {
    if !text.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        return w.write_all(text.as_bytes());
    }
    w.write_all(b"\"")?;
    for (i, part) in text.split('"').enumerate() {
        if i > 0 {
            w.write_all(b"\"\"")?;
        }
        w.write_all(part.as_bytes())?;
    }
    w.write_all(b"\"")
}
