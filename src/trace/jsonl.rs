//! JSON Lines traces: one JSON object per line, one request per object.
//!
//! ```text
//! {"t": 0, "key": "key-a", "endpoint": "/v1/chat", "tokens": 120}
//! {"t": "0.25", "key": "key-b", "endpoint": "/v1/embed", "tokens": 8}
//! ```
//!
//! The keys are the CSV columns (see the table in [`crate::trace`]): `t` and
//! `key` are required, the others optional, and any other key is an error.
//! Objects must be in non-decreasing time order, as in CSV, and give times
//! in one form per file. Blank lines are skipped.
//!
//! [`JsonlTrace`] streams the file through one reused line buffer and
//! deserializes each object straight into the reused [`TraceRow`] (a serde
//! `DeserializeSeed`), so no intermediate `serde_json::Value` is built.
//!
//! Values:
//!
//! - `t`: seconds since the trace start as a JSON number (`12.5`) or a
//!   string (`"12.5"`), or an RFC 3339 timestamp string. serde_json (without
//!   its `arbitrary_precision` feature) hands a fractional number over as an
//!   `f64`; the reader turns it back into decimal text with Rust's shortest
//!   round-trip formatting and parses that exactly, which gives back the
//!   number as written whenever it has at most 15 significant digits
//!   (`0.000000001` is 1 ns, `86399.999999999` is exact). A number with more
//!   digits than that may already have been rounded, so it is an error:
//!   write such times as strings (`"t": "1767225600.123456789"`) or as
//!   RFC 3339. Integers are always exact.
//! - `duration`: decimal seconds, a number or a string, by the same rule.
//! - `key`, `user`, `workspace`, `endpoint`: strings (integers are accepted
//!   and used as their decimal text); `key` must not be empty.
//! - `auth`: `true`/`false` (or `1`/`0`); `tokens`, `cost`: whole numbers
//!   from 0 to [`MAX_AMOUNT`], written as integers or, like `t`, in any JSON
//!   number form that is whole (`1e3` is 1000; `1.5` is an error).
//! - A number the reader refuses is quoted in the error as the file writes
//!   it (not as the `f64` it was parsed into).
//! - `null` for an optional key means its default.
//!
//! Every error is a [`TraceError`] naming the file, the 1-based line, the
//! 1-based character column where serde_json detected the problem (for a bad
//! value, its last character) and, when known, the key.

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Unexpected, Visitor};

use super::csv::{
    accepted, amount_expected, amount_too_large, cap_duration, decimal_seconds, parse_duration, required_columns,
    time_names, Column, Form, TimeCheck,
};
use super::{ExtraColumns, NoExtra, TraceError, TraceRow, TraceSource, TraceTime, MAX_AMOUNT};
use crate::time::{Nanos, MAX_DURATION, SECOND};

/// A streaming reader of a JSON Lines trace; see the [module docs](self).
///
/// [`JsonlTrace::with_extra`] reads a file whose objects hold further keys
/// (see [`ExtraColumns`]).
#[derive(Debug)]
pub struct JsonlTrace<R: BufRead, X: ExtraColumns = NoExtra> {
    reader: R,
    name: String,
    buf: Vec<u8>,
    line: u64,
    times: TimeCheck,
    /// Decimal text of a JSON number.
    scratch: String,
    /// The key whose value is being read, for errors.
    field: String,
    extra: X,
}

impl JsonlTrace<BufReader<File>> {
    /// Opens a JSON Lines trace file.
    pub fn open(path: &Path) -> Result<JsonlTrace<BufReader<File>>, TraceError> {
        let (reader, name) = super::open_file(path)?;
        JsonlTrace::new(reader, &name)
    }
}

impl<R: BufRead> JsonlTrace<R> {
    /// A reader of `reader`; `name` is the file name used in errors. (A
    /// JSONL file has no header, so this cannot fail; it returns a `Result`
    /// to match [`CsvTrace::new`](super::csv::CsvTrace::new).)
    pub fn new(reader: R, name: &str) -> Result<Self, TraceError> {
        JsonlTrace::with_extra(reader, name, NoExtra)
    }
}

impl<R: BufRead, X: ExtraColumns> JsonlTrace<R, X> {
    /// Like [`JsonlTrace::new`], accepting the keys of `extra` too: each
    /// object's values of those keys go to `extra` (read them after
    /// [`TraceSource::next_row`] through [`JsonlTrace::extra`]).
    pub fn with_extra(reader: R, name: &str, extra: X) -> Result<Self, TraceError> {
        Ok(JsonlTrace {
            reader,
            name: name.to_string(),
            buf: Vec::with_capacity(256),
            line: 0,
            times: TimeCheck::default(),
            scratch: String::new(),
            field: String::new(),
            extra,
        })
    }

    /// The extra keys' values of the object read last.
    pub fn extra(&self) -> &X {
        &self.extra
    }

    /// The file name used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn json_error(&self, e: serde_json::Error) -> TraceError {
        let mut message = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        if message.ends_with(&suffix) {
            message.truncate(message.len() - suffix.len());
        }
        if message.starts_with("invalid unicode code point") {
            message = "expected UTF-8 text, found a byte that is not valid UTF-8; trace files must be UTF-8".into();
        }
        // A number the reader refused is shown as written in the file (a
        // JSON number reaches the reader as an `f64`, whose shortest form
        // may differ: 18446744073709551616 prints as 18446744073709552000).
        if let Some((before, rest)) = message.split_once(AS_WRITTEN) {
            if let Some((parsed, after)) = rest.split_once(AS_WRITTEN) {
                let end = e.column().min(self.buf.len());
                let start = self.buf[..end]
                    .iter()
                    .rposition(|b| !matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                    .map_or(0, |i| i + 1);
                let literal = std::str::from_utf8(&self.buf[start..end]).unwrap_or("");
                let shown = if literal.is_empty() { parsed } else { literal };
                message = format!("{before}{shown}{after}");
            }
        }
        // serde_json counts bytes; report characters.
        let bytes = &self.buf[..e.column().min(self.buf.len())];
        let column = bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count().max(1) as u64;
        TraceError { file: self.name.clone(), line: self.line, column, field: self.field.clone(), message }
    }
}

impl<R: BufRead, X: ExtraColumns> TraceSource for JsonlTrace<R, X> {
    fn next_row(&mut self, row: &mut TraceRow) -> Result<bool, TraceError> {
        loop {
            self.buf.clear();
            match super::read_line(&mut self.reader, &mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(_) => self.line += 1,
                Err(message) => {
                    return Err(TraceError {
                        file: self.name.clone(),
                        line: self.line + 1,
                        column: 0,
                        field: String::new(),
                        message,
                    })
                }
            }
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
            }
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            // A byte-order mark on the first line, as some editors write.
            if self.line == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
                self.buf.drain(..3);
            }
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                break;
            }
        }
        row.clear();
        row.line = self.line;
        self.field.clear();
        self.extra.clear();
        let seed = RowSeed {
            row,
            times: &mut self.times,
            line: self.line,
            scratch: &mut self.scratch,
            field: &mut self.field,
            extra: &mut self.extra,
        };
        let mut de = serde_json::Deserializer::from_slice(&self.buf);
        match seed.deserialize(&mut de).and_then(|()| de.end()) {
            Ok(()) => Ok(true),
            Err(e) => Err(self.json_error(e)),
        }
    }
}

/// Deserializes one object into a row (and its extra keys into `extra`).
struct RowSeed<'a, X> {
    row: &'a mut TraceRow,
    times: &'a mut TimeCheck,
    line: u64,
    scratch: &'a mut String,
    field: &'a mut String,
    extra: &'a mut X,
}

impl<'de, X: ExtraColumns> DeserializeSeed<'de> for RowSeed<'_, X> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, X: ExtraColumns> Visitor<'de> for RowSeed<'_, X> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON object with keys among {}", accepted(self.extra.names()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let RowSeed { row, times, line, scratch, field, extra } = self;
        let names = extra.names();
        let mut seen = 0u64;
        while let Some(col) = map.next_key_seed(KeySeed { field, extra: names })? {
            if seen & col.bit() != 0 {
                return Err(de::Error::custom("duplicate key; give each key once per object"));
            }
            seen |= col.bit();
            match col {
                Column::T => {
                    row.t = map.next_value_seed(TimeSeed { times, line, scratch })?;
                }
                Column::Key => {
                    map.next_value_seed(StrSeed { out: &mut row.key, nullable: false })?;
                    if row.key.is_empty() {
                        return Err(de::Error::custom(
                            "expected an API key (or client identity), found an empty string",
                        ));
                    }
                }
                Column::User => map.next_value_seed(StrSeed { out: &mut row.user, nullable: true })?,
                Column::Workspace => map.next_value_seed(StrSeed { out: &mut row.workspace, nullable: true })?,
                Column::Endpoint => map.next_value_seed(StrSeed { out: &mut row.endpoint, nullable: true })?,
                Column::Auth => row.auth = map.next_value_seed(BoolSeed)?,
                Column::Tokens => row.tokens = map.next_value_seed(CountSeed("tokens"))?,
                Column::Cost => row.cost = map.next_value_seed(CountSeed("minor currency units"))?,
                Column::Duration => row.duration = map.next_value_seed(DurationSeed { scratch })?,
                Column::Extra(i) => {
                    scratch.clear();
                    map.next_value_seed(TextSeed { out: scratch })?;
                    extra.set(i as usize, scratch, line).map_err(de::Error::custom)?;
                }
            }
            field.clear();
        }
        let time = extra.time_column();
        if let Err((name, message)) = required_columns(seen, names, time) {
            field.push_str(name);
            let message = message.unwrap_or_else(|| {
                format!("missing required key; every object needs {} and `key`", time_names(names, time))
            });
            return Err(de::Error::custom(message));
        }
        Ok(())
    }
}

/// Reads a key, remembering it for errors.
struct KeySeed<'a> {
    field: &'a mut String,
    /// The reader's extra keys.
    extra: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Column;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Column, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Column;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of the keys {}", accepted(self.extra))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Column, E> {
        self.field.clear();
        self.field.push_str(v);
        Column::from_name_in(v, self.extra)
            .ok_or_else(|| E::custom(format!("unknown key; the accepted keys are {}", accepted(self.extra))))
    }
}

/// Appends a string value to a row field.
struct StrSeed<'a> {
    out: &'a mut String,
    nullable: bool,
}

impl<'de> DeserializeSeed<'de> for StrSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.out.push_str(v);
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let _ = write!(self.out, "{v}");
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        let _ = write!(self.out, "{v}");
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.nullable {
            Ok(())
        } else {
            Err(E::invalid_type(Unexpected::Unit, &self))
        }
    }
}

/// An extra key's value as text: a string as it is, a number or boolean as
/// written, `null` as empty.
struct TextSeed<'a> {
    out: &'a mut String,
}

impl<'de> DeserializeSeed<'de> for TextSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.out.push_str(v);
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let _ = write!(self.out, "{v}");
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        let _ = write!(self.out, "{v}");
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let _ = write!(self.out, "{v}");
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// `auth`: a boolean, 1 or 0, or null (the default, true).
struct BoolSeed;

impl<'de> DeserializeSeed<'de> for BoolSeed {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BoolSeed {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("true or false (or 1 or 0)")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(E::invalid_value(Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(true)
    }
}

/// `tokens`, `cost`: a whole number (the name of its unit), or null (0).
struct CountSeed(&'static str);

impl<'de> DeserializeSeed<'de> for CountSeed {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CountSeed {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a whole number of {} (0 or more)", self.0)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        if v > MAX_AMOUNT {
            return Err(E::custom(amount_too_large(&v, self.0)));
        }
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        Err(E::custom(format!("{}, found {v}, which is negative", amount_expected(self.0))))
    }

    /// A number with a fraction or an exponent: accepted when it is a whole
    /// number in range (`1e3` is 1000, as for `t`).
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        let shown = AsWritten(v);
        if v.is_sign_negative() {
            let why = if v == 0.0 { ", which has a minus sign; write it without one" } else { ", which is negative" };
            return Err(E::custom(format!("{}, found {shown}{why}", amount_expected(self.0))));
        }
        if v > MAX_AMOUNT as f64 {
            return Err(E::custom(amount_too_large(&shown, self.0)));
        }
        if v.fract() != 0.0 {
            return Err(E::custom(format!("{}, found {shown}, which is not a whole number", amount_expected(self.0))));
        }
        Ok(v as u64)
    }

    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }
}

/// Decimal seconds from a JSON number: exact integers, or an `f64` turned
/// back into its shortest decimal text (see the module docs).
fn number_seconds<E: de::Error>(v: f64, scratch: &mut String, expected: &str, key: &str) -> Result<Nanos, E> {
    let shown = AsWritten(v);
    if v.is_sign_negative() {
        let why = if v == 0.0 { ", which has a minus sign; write it without one" } else { ", which is negative" };
        return Err(E::custom(format!("{expected}, found {shown}{why}")));
    }
    scratch.clear();
    let _ = write!(scratch, "{v}");
    let b = scratch.as_bytes();
    let nonzero = |c: &u8| matches!(c, b'1'..=b'9');
    let digits = match (b.iter().position(nonzero), b.iter().rposition(nonzero)) {
        (Some(first), Some(last)) => b[first..=last].iter().filter(|c| c.is_ascii_digit()).count(),
        _ => 0,
    };
    if digits > 15 {
        return Err(E::custom(format!(
            "{expected}, found the JSON number {shown}, which has more than 15 significant digits \
             and may have been rounded; give it as a string, e.g. \"{key}\": \"1767225600.123456789\""
        )));
    }
    decimal_seconds(scratch).map_err(|why| E::custom(format!("{expected}, found {shown}{why}")))
}

fn whole_seconds<E: de::Error>(v: u64, expected: &str) -> Result<Nanos, E> {
    v.checked_mul(SECOND)
        .ok_or_else(|| E::custom(format!("{expected}, found {v} (more than 100 years, {} s)", MAX_DURATION / SECOND)))
}

/// Marks a number in a message, for [`JsonlTrace`] to replace with the
/// number as the file writes it.
const AS_WRITTEN: char = '\u{1}';

/// A JSON number in a message: shown as written in the file (see
/// [`AS_WRITTEN`]), else as the `f64` it was parsed into.
struct AsWritten(f64);

impl fmt::Display for AsWritten {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{AS_WRITTEN}{}{AS_WRITTEN}", self.0)
    }
}

const T_EXPECTED: &str = "expected seconds since the trace start (a number such as 12.5 or a \
                          string such as \"12.5\") or an RFC 3339 timestamp string";

/// `t`: a number, a decimal string or an RFC 3339 string, checked for form
/// and order.
struct TimeSeed<'a> {
    times: &'a mut TimeCheck,
    line: u64,
    scratch: &'a mut String,
}

impl<'de> DeserializeSeed<'de> for TimeSeed<'_> {
    type Value = TraceTime;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<TraceTime, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimeSeed<'_> {
    type Value = TraceTime;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&T_EXPECTED["expected ".len()..])
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<TraceTime, E> {
        let ns = whole_seconds(v, T_EXPECTED)?;
        self.times.admit(Form::Offset, TraceTime::Offset(ns), &v, self.line).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<TraceTime, E> {
        Err(E::custom(format!("{T_EXPECTED}, found {v}, which is negative")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<TraceTime, E> {
        let ns = number_seconds(v, self.scratch, T_EXPECTED, "t")?;
        self.times.admit(Form::Offset, TraceTime::Offset(ns), &AsWritten(v), self.line).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TraceTime, E> {
        self.times.admit_text(v, self.line).map_err(E::custom)
    }
}

const DURATION_EXPECTED: &str = "expected a service time in decimal seconds (e.g. 0.25)";

/// `duration`: decimal seconds as a number or string, or null (0).
struct DurationSeed<'a> {
    scratch: &'a mut String,
}

impl<'de> DeserializeSeed<'de> for DurationSeed<'_> {
    type Value = Nanos;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Nanos, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DurationSeed<'_> {
    type Value = Nanos;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&DURATION_EXPECTED["expected ".len()..])
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Nanos, E> {
        cap_duration(whole_seconds(v, DURATION_EXPECTED)?, DURATION_EXPECTED, &v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Nanos, E> {
        Err(E::custom(format!("{DURATION_EXPECTED}, found {v}, which is negative")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Nanos, E> {
        let ns = number_seconds(v, self.scratch, DURATION_EXPECTED, "duration")?;
        cap_duration(ns, DURATION_EXPECTED, &AsWritten(v)).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Nanos, E> {
        parse_duration(v).map_err(E::custom)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Nanos, E> {
        Ok(0)
    }
}
