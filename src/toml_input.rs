//! Reading TOML inputs (policies and synthetic trace specs): bounded file
//! reads, UTF-8 errors with a line and column, and `toml`/`serde` errors
//! turned into messages a person can act on, with the path of the key they
//! are about.
//!
//! Both readers ([`crate::policy::parse`] and [`crate::trace::synth`])
//! deserialize TOML into raw serde structs first. When that fails, the
//! error from the `toml` crate has a byte span and a message written for
//! Rust programmers (`invalid type: integer ... as i128, expected i64`,
//! `unknown field $__toml_private_datetime`, `recursion limit`). This module
//! rewrites those in words (`expected a whole number below 2^63, found ...`,
//! `found the date-time 1979-05-27T07:32:00Z`) and names the key by its path
//! through the document, labelling array-of-tables entries by their `name`
//! or `id` (`plan "pro" > limit "rpm" > burst`), as the validation errors of
//! both readers do.
//!
//! A TOML file is read whole, and the parser holds several copies of its
//! contents while it works (about 7 bytes per byte of input), so files are
//! capped at [`MAX_TOML_BYTES`]: a multi-gigabyte file is refused with an
//! error instead of aborting the process when memory runs out.

use std::io::Read;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The largest policy or spec file read (4 MiB): a thousand times the
/// largest shipped file, and about 30 MB of parser memory.
pub const MAX_TOML_BYTES: u64 = 4 << 20;

/// A file that could not be read as text: the 1-based line and column of the
/// first byte that is not UTF-8 (0 and 0 when the file could not be read at
/// all), and why.
#[derive(Debug)]
pub(crate) struct ReadError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Reads the TOML file at `path` (a `what`, e.g. "policy file") as UTF-8
/// text of at most [`MAX_TOML_BYTES`].
pub(crate) fn read(path: &Path, what: &str) -> Result<String, ReadError> {
    let io_error = |e: std::io::Error| ReadError {
        line: 0,
        column: 0,
        message: format!("cannot read the {what}: {e}{}", relative_hint(path)),
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let too_large = |size: String| ReadError {
        line: 0,
        column: 0,
        message: format!(
            "the {what} is {size}; a {what} may be at most {} MiB ({MAX_TOML_BYTES} bytes)",
            MAX_TOML_BYTES >> 20
        ),
    };
    let len = file.metadata().map_err(io_error)?.len();
    if len > MAX_TOML_BYTES {
        return Err(too_large(format!("{len} bytes")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_TOML_BYTES + 1).read_to_end(&mut bytes).map_err(io_error)?;
    if bytes.len() as u64 > MAX_TOML_BYTES {
        // It grew while being read, or it is not a regular file.
        return Err(too_large(format!("larger than {MAX_TOML_BYTES} bytes")));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        // Everything before `valid` is UTF-8, so it can be counted in characters.
        let before = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
        let (line, column) = line_column(before, before.len());
        ReadError {
            line,
            column,
            message: format!(
                "expected UTF-8 text, found the byte 0x{:02X}, which is not valid UTF-8; a {what} must be UTF-8",
                bytes[valid]
            ),
        }
    })
}

/// For a relative path that does not exist: where it was looked for.
pub(crate) fn relative_hint(path: &Path) -> String {
    if path.is_relative() && !path.exists() {
        match std::env::current_dir() {
            Ok(dir) => format!(
                " (a relative path is read from the current directory, {}; the shipped policies/ and \
                 traces/ are in the ratesim repository)",
                dir.display()
            ),
            Err(_) => String::new(),
        }
    } else {
        String::new()
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A `toml` deserialization error of `text`, made readable: the byte offset
/// it points at, the path of the key there (empty for the whole document)
/// and the message.
pub(crate) fn serde_error(text: &str, e: &toml::de::Error) -> (usize, String, String) {
    let raw = e.message().trim();
    let Some(span) = e.span() else {
        if raw.contains("recursion") {
            // The parser gives no position: point at the most deeply nested line.
            return (deepest_line(text), String::new(), nested_too_deeply());
        }
        return (0, String::new(), human_message(raw, ""));
    };
    let offset = span.start.min(text.len());
    let shown = text.get(span.clone()).unwrap_or("").trim();
    if raw.contains("recursion") {
        return (offset, String::new(), nested_too_deeply());
    }
    if raw == "duplicate key" {
        return (offset, key_path(text, offset), duplicate_message(text, offset));
    }
    // An error about the whole document (a missing top-level key) is about
    // the top level, not about the first table in the file. (toml reports
    // those with an empty span at offset 0.)
    let whole_document = span.start == 0 && (span.end == 0 || span.end >= text.trim_end().len());
    let field = if whole_document { String::new() } else { key_path(text, offset) };
    (offset, field, human_message(raw, shown))
}

fn nested_too_deeply() -> String {
    "nested too deeply: tables, arrays and dotted keys nest more levels here than the TOML reader \
     follows (a policy or spec needs only a few)"
        .to_string()
}

/// The start of the line whose tables, arrays and dotted keys nest deepest.
fn deepest_line(text: &str) -> usize {
    let mut best = (0, 0);
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let mut depth = 0;
        let mut quote: Option<char> = None;
        for c in line.chars() {
            match (quote, c) {
                (None, '#') => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '.' | '[' | '{') => depth += 1,
                _ => {}
            }
        }
        if depth > best.1 {
            best = (start, depth);
        }
        start += line.len();
    }
    best.0
}

/// Names what a "duplicate key" error at `offset` repeats: a table header
/// (`[response]` twice) or a key (quoted keys may contain `=`).
fn duplicate_message(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text.get(..offset).and_then(|t| t.rfind('\n')).map_or(0, |i| i + 1);
    let line = text.get(line_start..).unwrap_or("").lines().next().unwrap_or("").trim();
    if line.starts_with('[') {
        let header = line.split('#').next().unwrap_or(line).trim();
        return format!("duplicate table `{header}`: it is already defined above");
    }
    let rest = text.get(offset..).unwrap_or("");
    let key = match rest.strip_prefix(['"', '\'']) {
        Some(quoted) => {
            let close = rest.as_bytes()[0] as char;
            quoted.find(close).map_or(quoted, |end| &quoted[..end])
        }
        None => rest[..rest.find(['=', '\n']).unwrap_or(rest.len())].trim(),
    };
    if key.is_empty() {
        "duplicate key: it is already set earlier in this table".to_string()
    } else {
        format!("duplicate key `{key}`: it is already set earlier in this table")
    }
}

/// Whether `text` is a TOML date, time or date-time (what `toml` hands
/// serde as a table with a private key).
fn looks_like_datetime(text: &str) -> bool {
    let b = text.as_bytes();
    let date = b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-';
    let time = b.len() >= 8 && b[..2].iter().all(u8::is_ascii_digit) && b[2] == b':' && b[5] == b':';
    date || time
}

/// serde's wording made readable: Rust type names become words, integers
/// outside the TOML range and date-times say what they are. `shown` is the
/// offending value as written.
fn human_message(message: &str, shown: &str) -> String {
    let words = |t: &str| -> String {
        match t.trim() {
            "i64" | "u64" | "i32" | "u32" | "u16" => "a whole number".into(),
            "a sequence" => "an array".into(),
            "a map" | "struct" => "a table".into(),
            "a boolean" => "true or false".into(),
            "any valid TOML value" => "a value".into(),
            other if other.starts_with("struct ") => "a table".into(),
            other => other.to_string(),
        }
    };
    let m = message.trim();
    if m == "u64 value was too large" {
        // `toml::Value` refuses an integer between 2^63 and 2^64.
        return format!("integer `{shown}` is outside the range of TOML integers (-2^63 to 2^63 - 1)");
    }
    let datetime = looks_like_datetime(shown);
    if datetime && m.contains("$__toml_private_datetime") {
        return format!("expected a table, found the date-time {shown}");
    }
    if let Some(rest) = m.strip_prefix("invalid type: ").or_else(|| m.strip_prefix("invalid value: ")) {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            if datetime && found == "map" {
                return format!(
                    "expected {}, found the date-time {shown} (quote it if it is meant as text)",
                    words(expected)
                );
            }
            let big = found.strip_suffix(" as i128");
            if expected == "i64" && (big.is_some() || found.starts_with("integer")) {
                return format!("expected a whole number below 2^63, found {}", big.unwrap_or(found));
            }
            if let Some(big) = big {
                if expected == "any valid TOML value" {
                    return format!("{big} is outside the range of TOML integers (-2^63 to 2^63 - 1)");
                }
                return format!(
                    "expected {}, found {big}, which is outside the range of TOML integers (-2^63 to 2^63 - 1)",
                    words(expected)
                );
            }
            return format!("expected {}, found {found}", words(expected));
        }
    }
    m.replace("unknown variant", "unknown value")
}

/// The path of the key at byte `offset` of `text`, e.g.
/// `plan "pro" > limit "rpm" > burst`: the deepest key whose name or value
/// holds the offset. Entries of an array of tables are named by their
/// `name` or `id` (`plan "pro"`), else numbered (`plan #2`). Empty if no key
/// holds the offset.
pub(crate) fn key_path(text: &str, offset: usize) -> String {
    let (doc, _) = DeTable::parse_recoverable(text);
    let mut walk = Walk { offset, path: Vec::new(), best: Vec::new() };
    walk.table(doc.get_ref());
    walk.best.join(" > ")
}

struct Walk {
    offset: usize,
    path: Vec<String>,
    best: Vec<String>,
}

impl Walk {
    fn holds(&self, span: std::ops::Range<usize>) -> bool {
        span.start == self.offset || span.contains(&self.offset)
    }

    fn hit(&mut self) {
        if self.path.len() >= self.best.len() {
            self.best = self.path.clone();
        }
    }

    fn table(&mut self, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            self.path.push(key.get_ref().to_string());
            if self.holds(key.span()) {
                self.hit();
            }
            self.value(value);
            self.path.pop();
        }
    }

    /// A value whose key is the last element of `path`.
    fn value(&mut self, value: &Spanned<DeValue<'_>>) {
        if self.holds(value.span()) {
            self.hit();
        }
        match value.get_ref() {
            DeValue::Table(t) => self.table(t),
            DeValue::Array(items) => {
                let key = self.path.pop().unwrap_or_default();
                for (i, item) in items.iter().enumerate() {
                    let label = match item.get_ref() {
                        DeValue::Table(t) => match ["name", "id"].iter().find_map(|k| t.get(*k)) {
                            Some(v) => match v.get_ref() {
                                DeValue::String(s) => format!("{key} {s:?}"),
                                _ => format!("{key} #{}", i + 1),
                            },
                            None => format!("{key} #{}", i + 1),
                        },
                        _ => key.clone(),
                    };
                    self.path.push(label);
                    self.value(item);
                    self.path.pop();
                }
                self.path.push(key);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_name_array_entries() {
        let text = "provider = \"x\"\n[[plan]]\nname = \"pro\"\n[[plan.limit]]\nid = \"rpm\"\nburst = 5\n\
                    match.except = [\"a\"]\ntokens = { dist = \"c\", value = 1e30 }\n[[plan]]\nname = \"b\"\n";
        let at = |needle: &str| key_path(text, text.find(needle).unwrap());
        assert_eq!(at("5\n"), "plan \"pro\" > limit \"rpm\" > burst");
        assert_eq!(at("burst"), "plan \"pro\" > limit \"rpm\" > burst");
        assert_eq!(at("\"a\""), "plan \"pro\" > limit \"rpm\" > match > except");
        assert_eq!(at("1e30"), "plan \"pro\" > limit \"rpm\" > tokens > value");
        assert_eq!(at("[[plan.limit]]"), "plan \"pro\" > limit \"rpm\"");
        assert_eq!(at("\"b\""), "plan \"b\" > name");
        assert_eq!(at("provider"), "provider");
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\ncé d", 7), (2, 4));
        assert_eq!(line_column("é", 1), (1, 1));
    }
}
