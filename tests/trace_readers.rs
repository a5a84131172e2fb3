//! Recorded trace readers: exact values, located errors, the CSV round trip
//! and streaming of a long trace.

use std::io::{self, BufReader, Read};

use proptest::prelude::*;
use ratesim::time::{parse_rfc3339, MAX_DURATION, SECOND};
use ratesim::trace::csv::{write_header, write_row, CsvTrace, HEADER};
use ratesim::trace::jsonl::JsonlTrace;
use ratesim::trace::{TraceError, TraceRow, TraceSource, TraceTime, MAX_AMOUNT, MAX_LINE_BYTES};

fn drain(source: &mut impl TraceSource) -> Result<Vec<TraceRow>, TraceError> {
    let mut rows = Vec::new();
    let mut row = TraceRow::default();
    while source.next_row(&mut row)? {
        rows.push(row.clone());
    }
    Ok(rows)
}

fn csv(text: impl AsRef<[u8]>) -> Result<Vec<TraceRow>, TraceError> {
    drain(&mut CsvTrace::new(text.as_ref(), "traces/x.csv")?)
}

fn jsonl(text: impl AsRef<[u8]>) -> Result<Vec<TraceRow>, TraceError> {
    drain(&mut JsonlTrace::new(text.as_ref(), "traces/x.jsonl")?)
}

fn csv_err(text: impl AsRef<[u8]>) -> TraceError {
    csv(text).expect_err("expected an error")
}

fn jsonl_err(text: impl AsRef<[u8]>) -> TraceError {
    jsonl(text).expect_err("expected an error")
}

/// Asserts where an error is and that its message mentions each of `says`.
#[track_caller]
fn located(err: &TraceError, line: u64, column: u64, field: &str, says: &[&str]) {
    let shown = err.to_string();
    assert_eq!((err.line, err.column, err.field.as_str()), (line, column, field), "wrong place: {shown}");
    for s in says {
        assert!(shown.contains(s), "{shown:?} does not mention {s:?}");
    }
}

fn row(t: TraceTime, key: &str, line: u64) -> TraceRow {
    TraceRow { t, key: key.to_string(), line, ..TraceRow::default() }
}

// ---------------------------------------------------------------------------
// CSV: valid input.

#[test]
fn csv_decimal_seconds_are_exact() {
    let rows = csv("t,key\n0.000000001,a\n12.5,b\n12.5,c\n86399.999999999,d\n86400,e\n").unwrap();
    let ts: Vec<TraceTime> = rows.iter().map(|r| r.t).collect();
    assert_eq!(
        ts,
        [
            TraceTime::Offset(1),
            TraceTime::Offset(12_500_000_000),
            TraceTime::Offset(12_500_000_000),
            TraceTime::Offset(86_399_999_999_999),
            TraceTime::Offset(86_400 * SECOND),
        ]
    );
    assert_eq!(rows[0], row(TraceTime::Offset(1), "a", 2));
}

#[test]
fn csv_reads_every_column_in_any_order() {
    let text = "duration,cost,tokens,auth,endpoint,workspace,user,key,t\r\n\
                0.25,12,300,false,/v1/chat,acme,alice,k1,1.5\r\n\
                ,,,,,,,k2,2\r\n\
                1,0,0,TRUE,/v1/x,,,k3,2\r\n\
                0,1,1,0,e,w,u,k4,3\r\n";
    let rows = csv(text).unwrap();
    assert_eq!(
        rows[0],
        TraceRow {
            t: TraceTime::Offset(1_500_000_000),
            key: "k1".into(),
            user: "alice".into(),
            workspace: "acme".into(),
            endpoint: "/v1/chat".into(),
            auth: false,
            tokens: 300,
            cost: 12,
            duration: 250_000_000,
            line: 2,
            ..TraceRow::default()
        }
    );
    // Empty optional fields take the defaults.
    assert_eq!(rows[1], row(TraceTime::Offset(2 * SECOND), "k2", 3));
    assert!(rows[2].auth);
    assert_eq!(rows[2].duration, SECOND);
    assert!(!rows[3].auth);
}

#[test]
fn csv_quoting_bom_crlf_and_trailing_blank_lines() {
    let text = "\u{feff}\"t\",key,endpoint\r\n\
                1,\"a,b\",\"say \"\"hi\"\"\"\r\n\
                2,\"multi\r\nline\",\"\"\r\n\
                3,plain,x\n\
                \n\r\n  \n";
    let rows = csv(text).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].key, "a,b");
    assert_eq!(rows[0].endpoint, "say \"hi\"");
    assert_eq!(rows[1].key, "multi\r\nline");
    assert_eq!(rows[1].endpoint, "");
    assert_eq!((rows[1].line, rows[2].line), (3, 5));
    assert_eq!(rows[2].key, "plain");
    // No final line break at all is fine too.
    assert_eq!(csv("t,key\n1,a").unwrap().len(), 1);
    // A header and nothing else is an empty trace.
    assert_eq!(csv("t,key\n").unwrap().len(), 0);
}

#[test]
fn csv_rfc3339_times() {
    let rows = csv("t,key\n2026-01-01T00:00:00Z,a\n2026-01-01T00:00:12.5Z,b\n2026-01-01T05:30:13+05:30,c\n").unwrap();
    let start = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    assert_eq!(rows[0].t, TraceTime::Absolute(start));
    assert_eq!(rows[1].t, TraceTime::Absolute(start + 12_500_000_000));
    assert_eq!(rows[2].t, TraceTime::Absolute(start + 13 * SECOND));
}

// ---------------------------------------------------------------------------
// CSV: errors.

#[test]
fn csv_bad_time() {
    let err = csv_err("t,key\n1,a\n2,a\nabc,a\n");
    located(&err, 4, 1, "t", &["expected seconds since the trace start as a decimal", "found \"abc\""]);
    assert_eq!(
        err.to_string(),
        "traces/x.csv:4:1: field `t`: expected seconds since the trace start as a decimal \
         (e.g. 12.5), found \"abc\""
    );
    // Before the form is known, both forms are offered.
    let err = csv_err("key,t\na,abc\n");
    assert_eq!(
        err.to_string(),
        "traces/x.csv:2:2: field `t`: expected seconds since the trace start as a decimal \
         (e.g. 12.5) or an RFC 3339 timestamp, found \"abc\""
    );
    located(&csv_err("t,key\n-1.5,a\n"), 2, 1, "t", &["negative"]);
    located(&csv_err("t,key\n1.0000000001,a\n"), 2, 1, "t", &["finer than a nanosecond"]);
    located(&csv_err("t,key\n1.2.3,a\n"), 2, 1, "t", &["\"1.2.3\""]);
    located(&csv_err("t,key\n,a\n"), 2, 1, "t", &["found \"\""]);
    located(&csv_err("t,key\n2026-02-30T00:00:00Z,a\n"), 2, 1, "t", &["RFC 3339", "out of range"]);
}

#[test]
fn csv_out_of_order() {
    let err = csv_err("t,key\n1,a\n13,a\n12.5,b\n");
    located(&err, 4, 1, "t", &["out of time order", "t = 12.5", "t = 13 on line 3"]);
    let err = csv_err("key,t\na,2026-01-01T00:00:01Z\nb,2026-01-01T00:00:00.5Z\n");
    located(&err, 3, 2, "t", &["2026-01-01T00:00:00.5Z", "2026-01-01T00:00:01Z on line 2"]);
}

#[test]
fn csv_mixed_time_forms() {
    let err = csv_err("t,key\n1,a\n2026-01-01T00:00:00Z,b\n");
    located(&err, 3, 1, "t", &["mixed time forms", "since line 2", "one form per file"]);
    let err = csv_err("t,key\n2026-01-01T00:00:00Z,b\n5,a\n");
    located(&err, 3, 1, "t", &["mixed time forms", "RFC 3339"]);
}

#[test]
fn csv_header_errors() {
    let err = csv_err("key,endpoint\na,b\n");
    located(&err, 1, 0, "t", &["missing required column", "key, endpoint"]);
    let err = csv_err("t,endpoint\n");
    located(&err, 1, 0, "key", &["missing required column"]);
    let err = csv_err("t,key,tokns\n1,a,5\n");
    located(
        &err,
        1,
        3,
        "tokns",
        &["unknown column", "t, key, user, workspace, endpoint, auth, tokens, cost, duration"],
    );
    let err = csv_err("t,key,t\n");
    located(&err, 1, 3, "t", &["duplicate column (also column 1)", "tokens"]);
    located(&csv_err("t,key,\n"), 1, 3, "", &["empty column name"]);
    located(&csv_err(""), 0, 0, "", &["empty", "header"]);
    located(&csv_err("\nt,key\n"), 1, 0, "", &["blank line"]);
}

#[test]
fn csv_wrong_field_counts() {
    let err = csv_err("t,key,tokens,cost\n1,a,2,3\n2,a\n");
    located(&err, 3, 3, "tokens", &["expected 4 fields (t,key,tokens,cost)", "found 2"]);
    let err = csv_err("t,key,tokens\n1,a,2,3,4\n");
    located(&err, 2, 4, "", &["expected 3 fields", "found 5"]);
    let err = csv_err("t,key,tokens\n1,\"a,b\",2,\"x\"\n");
    located(&err, 2, 4, "", &["expected 3 fields", "found 4"]);
}

#[test]
fn csv_bad_numbers_and_bools() {
    let err = csv_err("t,key,tokens\n1,a,12x\n");
    located(
        &err,
        2,
        3,
        "tokens",
        &["expected a whole number of tokens from 0 to 1000000000000000 (10^15), found \"12x\""],
    );
    let err = csv_err("t,key,tokens\n1,a,-5\n");
    located(&err, 2, 3, "tokens", &["\"-5\", which is negative"]);
    let err = csv_err("t,key,cost\n1,a,1.5\n");
    located(&err, 2, 3, "cost", &["whole number", "\"1.5\""]);
    let err = csv_err("t,key,cost\n1,a,99999999999999999999\n");
    located(&err, 2, 3, "cost", &["too large"]);
    let err = csv_err("t,key,duration\n1,a,-0.5\n");
    located(&err, 2, 3, "duration", &["decimal seconds", "negative"]);
    let err = csv_err("t,key,duration\n1,a,5ms\n");
    located(&err, 2, 3, "duration", &["found \"5ms\""]);
    let err = csv_err("t,key,auth\n1,a,true\n2,a,yes\n");
    located(&err, 3, 3, "auth", &["expected true or false (or 1 or 0), found \"yes\""]);
    let err = csv_err("t,key\n1,\n");
    located(&err, 2, 2, "key", &["empty field"]);
}

#[test]
fn csv_bad_utf8() {
    let err = csv_err(b"t,key,endpoint\n1,a,/v1/\xffchat\n".as_slice());
    located(&err, 2, 3, "endpoint", &["UTF-8", "0xFF", "byte 5 of the field"]);
    let err = csv_err(b"t,key,endpoint\n1,\"a\nb\",\"x\xc3\"\n".as_slice());
    located(&err, 3, 3, "endpoint", &["UTF-8"]);
    // Counted from the field's opening quote, commas inside quotes included.
    let err = csv_err(b"t,key,endpoint\n1,\"a,\xffb\",c\n".as_slice());
    located(&err, 2, 2, "key", &["byte 4 of the field"]);
    let err = csv_err(b"t,k\xe9y\n".as_slice());
    located(&err, 1, 2, "", &["UTF-8"]);
}

#[test]
fn csv_quote_errors() {
    let err = csv_err("t,key,endpoint\n1,a,b\n2,\"a,x\n3,b,c\n");
    located(&err, 3, 2, "key", &["unterminated quoted field"]);
    let err = csv_err("t,key,endpoint\n1,a\"b,c\n");
    located(&err, 2, 2, "key", &["quote inside an unquoted field"]);
    let err = csv_err("t,key,endpoint\n1,\"a\"b,c\n");
    located(&err, 2, 2, "key", &["after the closing quote", "found \"b,c\""]);
}

#[test]
fn csv_blank_line_between_rows_is_an_error() {
    let err = csv_err("t,key\n1,a\n\n\n2,b\n");
    located(&err, 3, 0, "", &["blank line", "row on line 5", "only at the end"]);
}

// ---------------------------------------------------------------------------
// CSV: writing and reading back.

fn text_strategy(min: usize) -> impl Strategy<Value = String> {
    let chars = vec!['a', 'Z', '0', ' ', ',', '"', '\n', '\r', '\t', '-', '\u{e9}', '\u{1f600}'];
    prop::collection::vec(prop::sample::select(chars), min..8).prop_map(|v| v.into_iter().collect::<String>())
}

#[allow(clippy::type_complexity)]
fn rows_strategy() -> impl Strategy<Value = Vec<TraceRow>> {
    let row = (
        0u64..10 * SECOND,
        text_strategy(1),
        text_strategy(0),
        text_strategy(0),
        text_strategy(0),
        any::<bool>(),
        prop_oneof![0..=MAX_AMOUNT, Just(MAX_AMOUNT)],
        prop_oneof![0..=MAX_AMOUNT, Just(MAX_AMOUNT)],
        prop_oneof![0u64..10 * SECOND, 0..=MAX_DURATION, Just(MAX_DURATION)],
    );
    // Offsets (and absolute times, from 1970) within the 100 years a trace may span.
    (any::<bool>(), 0u64..3_000_000_000 * SECOND, prop::collection::vec(row, 0..40)).prop_map(
        |(absolute, start, rows)| {
            let mut t = start;
            rows.into_iter()
                .enumerate()
                .map(|(i, (dt, key, user, workspace, endpoint, auth, tokens, cost, duration))| {
                    t += dt;
                    TraceRow {
                        t: if absolute { TraceTime::Absolute(t) } else { TraceTime::Offset(t) },
                        key,
                        user,
                        workspace,
                        endpoint,
                        auth,
                        tokens,
                        cost,
                        duration,
                        line: i as u64,
                        ..TraceRow::default()
                    }
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn csv_round_trip(rows in rows_strategy()) {
        let mut out = Vec::new();
        write_header(&mut out).unwrap();
        for r in &rows {
            write_row(&mut out, r).unwrap();
        }
        let back = csv(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.len(), rows.len());
        for (a, b) in rows.iter().zip(&back) {
            let mut b = b.clone();
            b.line = a.line;
            prop_assert_eq!(a, &b);
        }
    }
}

#[test]
fn csv_writer_output_is_canonical() {
    let mut out = Vec::new();
    write_header(&mut out).unwrap();
    let r = TraceRow {
        t: TraceTime::Offset(12_500_000_000),
        key: "k,1".into(),
        endpoint: "say \"hi\"".into(),
        tokens: 7,
        duration: 1,
        ..TraceRow::default()
    };
    write_row(&mut out, &r).unwrap();
    let r = TraceRow {
        t: TraceTime::Absolute(parse_rfc3339("2026-01-01T00:00:00.25Z").unwrap()),
        key: "k".into(),
        auth: false,
        ..TraceRow::default()
    };
    write_row(&mut out, &r).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            "{HEADER}\n12.5,\"k,1\",,,\"say \"\"hi\"\"\",true,7,0,0.000000001\n\
             2026-01-01T00:00:00.25Z,k,,,,false,0,0,0\n"
        )
    );
}

// ---------------------------------------------------------------------------
// CSV: a long trace, streamed.

/// A 1,000,000-row CSV trace produced on the fly, never held in memory.
struct Generated {
    next: u64,
    rows: u64,
    chunk: Vec<u8>,
    pos: usize,
}

impl Generated {
    fn new(rows: u64) -> Generated {
        Generated { next: 0, rows, chunk: b"t,key,tokens,cost,endpoint\n".to_vec(), pos: 0 }
    }
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        use std::io::Write;
        if self.pos == self.chunk.len() {
            self.chunk.clear();
            self.pos = 0;
            while self.chunk.len() < 16 * 1024 && self.next < self.rows {
                let i = self.next;
                writeln!(
                    self.chunk,
                    "{}.{:03},key-{},{},{},/v1/e{}",
                    i / 1000,
                    i % 1000,
                    i % 97,
                    i % 13,
                    i % 7,
                    i % 5
                )?;
                self.next += 1;
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn csv_streams_a_million_rows() {
    const ROWS: u64 = 1_000_000;
    let mut trace = CsvTrace::new(BufReader::new(Generated::new(ROWS)), "generated.csv").unwrap();
    let mut row = TraceRow::default();
    let mut count = 0u64;
    let mut tokens = 0u64;
    while trace.next_row(&mut row).unwrap() {
        count += 1;
        tokens += row.tokens;
    }
    assert_eq!(count, ROWS);
    let last = ROWS - 1;
    assert_eq!(row.line, ROWS + 1);
    assert_eq!(row.t, TraceTime::Offset(last * SECOND / 1000));
    assert_eq!(row.key, format!("key-{}", last % 97));
    assert_eq!(tokens, (0..ROWS).map(|i| i % 13).sum::<u64>());
    // The reused row's strings stay small: nothing accumulates.
    assert!(row.key.capacity() < 64 && row.endpoint.capacity() < 64);
}

// ---------------------------------------------------------------------------
// JSONL.

#[test]
fn jsonl_reads_exact_values() {
    let text = concat!(
        "{\"t\": 0.000000001, \"key\": \"a\"}\n",
        "\n",
        "{\"t\": 12.5, \"key\": \"b\", \"duration\": 0.25, \"tokens\": 3, \"cost\": 4}\r\n",
        "{\"t\": \"12.5\", \"key\": 42, \"auth\": false, \"endpoint\": \"/v1/\\u00e9\"}\n",
        "{\"t\": 86399.999999999, \"key\": \"d\", \"user\": null, \"auth\": 0, \"duration\": \"1.5\"}\n",
        "{\"key\": \"e\", \"t\": 86400, \"workspace\": \"w\", \"duration\": 2}\n",
        "   \n",
    );
    let rows = jsonl(text).unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0], row(TraceTime::Offset(1), "a", 1));
    assert_eq!(
        rows[1],
        TraceRow {
            t: TraceTime::Offset(12_500_000_000),
            key: "b".into(),
            duration: 250_000_000,
            tokens: 3,
            cost: 4,
            line: 3,
            ..TraceRow::default()
        }
    );
    assert_eq!(rows[2].t, TraceTime::Offset(12_500_000_000));
    assert_eq!((rows[2].key.as_str(), rows[2].auth), ("42", false));
    assert_eq!(rows[2].endpoint, "/v1/\u{e9}");
    assert_eq!(rows[3].t, TraceTime::Offset(86_399_999_999_999));
    assert_eq!(rows[3].duration, 1_500_000_000);
    assert!(!rows[3].auth);
    assert_eq!(rows[4].t, TraceTime::Offset(86_400 * SECOND));
    assert_eq!(rows[4].duration, 2 * SECOND);
    assert_eq!(rows[4].line, 6);

    let rows = jsonl(
        "{\"t\": \"2026-01-01T00:00:00Z\", \"key\": \"a\"}\n\
         {\"t\": \"2026-01-01T00:00:00.000000001Z\", \"key\": \"a\"}\n",
    )
    .unwrap();
    let start = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    assert_eq!(rows[1].t, TraceTime::Absolute(start + 1));
}

#[test]
fn jsonl_errors() {
    let err = jsonl_err("{\"t\": 1, \"key\": \"a\"}\n{\"t\": \"abc\", \"key\": \"a\"}\n");
    located(&err, 2, 11, "t", &["expected seconds since the trace start as a decimal", "found \"abc\""]);
    let err = jsonl_err("{\"t\": 2, \"key\": \"a\"}\n{\"t\": 1.5, \"key\": \"a\"}\n");
    located(&err, 2, 9, "t", &["out of time order", "t = 1.5", "t = 2 on line 1"]);
    let err = jsonl_err("{\"t\": 2, \"key\": \"a\"}\n{\"t\": \"2026-01-01T00:00:00Z\", \"key\": \"a\"}\n");
    located(&err, 2, 28, "t", &["mixed time forms", "since line 1"]);
    let err = jsonl_err("{\"t\": 1, \"key\": \"a\", \"tokns\": 5}\n");
    located(&err, 1, 28, "tokns", &["unknown key", "t, key, user, workspace, endpoint, auth, tokens, cost, duration"]);
    let err = jsonl_err("{\"t\": 1, \"user\": \"a\"}\n");
    located(&err, 1, 21, "key", &["missing required key"]);
    let err = jsonl_err("{\"t\": 1, \"key\": \"a\", \"t\": 2}\n");
    located(&err, 1, 24, "t", &["duplicate key"]);
    let err = jsonl_err("{\"t\": 1, \"key\": \"a\", \"tokens\": -5}\n");
    located(&err, 1, 33, "tokens", &["found -5, which is negative"]);
    let err = jsonl_err("{\"t\": 1, \"key\": \"a\", \"tokens\": 1.5}\n");
    located(&err, 1, 34, "tokens", &["whole number", "found 1.5"]);
    let err = jsonl_err("{\"t\": 1, \"key\": \"a\", \"tokens\": \"5\"}\n");
    located(&err, 1, 34, "tokens", &["invalid type: string \"5\""]);
    let err = jsonl_err("{\"t\": 1, \"key\": \"a\", \"auth\": \"yes\"}\n");
    located(&err, 1, 34, "auth", &["expected true or false"]);
    let err = jsonl_err("{\"t\": -1, \"key\": \"a\"}\n");
    located(&err, 1, 8, "t", &["negative"]);
    let err = jsonl_err("{\"t\": 1767225600.123456789, \"key\": \"a\"}\n");
    located(
        &err,
        1,
        26,
        "t",
        &["more than 15 significant digits", "as a string, e.g. \"t\": \"1767225600.123456789\""],
    );
    let err = jsonl_err("{\"t\": 1, \"key\": \"\"}\n");
    located(&err, 1, 19, "key", &["empty string"]);
    let err = jsonl_err("{\"t\": 1, \"key\": \"a\", \"duration\": \"5ms\"}\n");
    located(&err, 1, 38, "duration", &["found \"5ms\""]);
    // Syntax errors: serde_json's column, in characters.
    let err = jsonl_err("{\"t\": 1, \"key\": \"a\"}\n{\"t\": 2 \"key\": \"a\"}\n");
    located(&err, 2, 9, "", &["expected `,` or `}`"]);
    let err = jsonl_err("{\"t\": 1, \"key\": \"\u{e9}\u{e9}\", \"tokens\": x}\n");
    located(&err, 1, 33, "tokens", &["expected value"]);
    let err = jsonl_err("[1, 2]\n");
    located(&err, 1, 1, "", &["invalid type: sequence", "JSON object"]);
    let err = jsonl_err("{\"t\": 1, \"key\": \"a\"} x\n");
    located(&err, 1, 22, "", &["trailing characters"]);
    let err = jsonl_err(b"{\"t\": 1, \"key\": \"a\xff\"}\n".as_slice());
    located(&err, 1, 19, "key", &["expected UTF-8 text", "must be UTF-8"]);
}

// ---------------------------------------------------------------------------
// Values out of range, odd characters, overlong lines (issue 9).

#[test]
fn amounts_beyond_the_maximum_are_located_errors() {
    // Two rows of 2^63 tokens used to be accepted and wrapped the summary's total to 0.
    let err = csv_err("t,key,tokens\n0,a,9223372036854775808\n1,b,9223372036854775808\n");
    located(&err, 2, 3, "tokens", &["from 0 to 1000000000000000 (10^15)", "\"9223372036854775808\"", "too large"]);
    let err = csv_err(format!("t,key,cost\n0,a,{}\n", MAX_AMOUNT + 1));
    located(&err, 2, 3, "cost", &["minor currency units from 0 to 1000000000000000", "too large"]);
    let rows = csv(format!("t,key,tokens,cost\n0,a,{MAX_AMOUNT},{MAX_AMOUNT}\n")).unwrap();
    assert_eq!((rows[0].tokens, rows[0].cost), (MAX_AMOUNT, MAX_AMOUNT));

    let err = jsonl_err(format!("{{\"t\": 0, \"key\": \"a\", \"tokens\": {}}}\n", MAX_AMOUNT + 1));
    located(&err, 1, 47, "tokens", &["from 0 to 1000000000000000", "found 1000000000000001", "too large"]);
    // A number beyond u64 is quoted as the file writes it, not as the f64 it was read into.
    let err = jsonl_err("{\"t\": 0, \"key\": \"a\", \"cost\": 18446744073709551616}\n");
    located(&err, 1, 49, "cost", &["found 18446744073709551616 (too large"]);
    let rows = jsonl(format!("{{\"t\": 0, \"key\": \"a\", \"tokens\": {MAX_AMOUNT}}}\n")).unwrap();
    assert_eq!(rows[0].tokens, MAX_AMOUNT);
}

#[test]
fn times_and_durations_beyond_a_century_are_located_errors() {
    // A duration that overflowed the run's end, one that hung it, and the largest accepted.
    let err = csv_err("t,key,duration\n0,a,18446744073.709551615\n");
    located(&err, 2, 3, "duration", &["\"18446744073.709551615\"", "more than 100 years, 3155760000 s"]);
    let err = csv_err("t,key,duration\n0,a,3155760001\n");
    located(&err, 2, 3, "duration", &["\"3155760001\" (more than 100 years"]);
    assert_eq!(csv("t,key,duration\n0,a,3155760000\n").unwrap()[0].duration, MAX_DURATION);
    let err = jsonl_err("{\"t\": 0, \"key\": \"a\", \"duration\": 3.2e9}\n");
    located(&err, 1, 38, "duration", &["found 3.2e9 (more than 100 years"]);
    let err = jsonl_err("{\"t\": 0, \"key\": \"a\", \"duration\": 3155760001}\n");
    located(&err, 1, 43, "duration", &["found 3155760001 (more than 100 years"]);
    let err = jsonl_err("{\"t\": 0, \"key\": \"a\", \"duration\": \"3155760001\"}\n");
    located(&err, 1, 45, "duration", &["more than 100 years"]);

    // Offsets: at most 100 years after the trace start.
    let err = csv_err("t,key\n0,a\n3155760000.000000001,a\n");
    located(&err, 3, 1, "t", &["more than 100 years", "a trace spans at most 100 years"]);
    let err = csv_err("t,key\n18446744073.709551615,a\n");
    located(&err, 2, 1, "t", &["more than 100 years"]);
    let err = jsonl_err("{\"t\": 9999999999.5, \"key\": \"a\"}\n");
    located(&err, 1, 18, "t", &["found 9999999999.5", "more than 100 years"]);
    let err = jsonl_err("{\"t\": 3155760001, \"key\": \"a\"}\n");
    located(&err, 1, 16, "t", &["more than 100 years"]);
    // RFC 3339 times: at most 100 years after the first row, and not after 2200.
    let err = csv_err("t,key\n2026-01-01T00:00:00Z,a\n2126-01-02T00:00:00.000000001Z,a\n");
    located(&err, 3, 1, "t", &["more than 100 years after the first row's 2026-01-01T00:00:00Z (line 2)"]);
    let err = csv_err("t,key\n2201-01-01T00:00:00Z,a\n");
    located(&err, 2, 1, "t", &["after 2200-01-01T00:00:00Z are not supported"]);
    let err = jsonl_err(
        "{\"t\": \"2026-01-01T00:00:00Z\", \"key\": \"a\"}\n{\"t\": \"2127-01-01T00:00:00Z\", \"key\": \"a\"}\n",
    );
    located(&err, 2, 28, "t", &["more than 100 years after the first row's"]);
}

#[test]
fn multibyte_characters_in_times_are_errors_not_panics() {
    // Slicing the text by byte position used to panic inside the `é`.
    let err = csv_err("t,key\n2026-01-01T00:00:0\u{e9}Z,a\n");
    located(&err, 2, 1, "t", &["expected an RFC 3339 timestamp", "found \"2026-01-01T00:00:0\u{e9}Z\""]);
    let err = csv_err("t,key,duration\n0,a,0.\u{e9}\n");
    located(&err, 2, 3, "duration", &["decimal seconds"]);
    let err = jsonl_err("{\"t\": \"2026-01-01T00:00:0\u{e9}Z\", \"key\": \"a\"}\n");
    located(&err, 1, 28, "t", &["expected an RFC 3339 timestamp"]);
    let err = jsonl_err("{\"t\": \"2026-01-01T00:00:00+0\u{e9}:00\", \"key\": \"a\"}\n");
    located(&err, 1, 33, "t", &["expected an RFC 3339 timestamp"]);
}

#[test]
fn overlong_lines_are_located_errors() {
    // A line without an end used to be read whole: 2 GB aborted the process.
    let long = "a".repeat(MAX_LINE_BYTES + 1);
    let err = csv_err(format!("t,key\n0,a\n1,{long}\n"));
    located(&err, 3, 0, "", &["longer than 1 MiB (1048576 bytes)", "not a trace file"]);
    // Also a quoted field that never closes, and a header.
    let err = csv_err(format!("t,key\n0,\"{}", "a\n".repeat(MAX_LINE_BYTES / 2 + 1)));
    located(&err, 2, 2, "key", &["quoted field that opens here runs on for more than 1 MiB"]);
    let err = csv_err(format!("t,{long}\n"));
    located(&err, 1, 0, "", &["longer than 1 MiB"]);
    let err = jsonl_err(format!("{{\"t\": 0, \"key\": \"a\"}}\n{{\"t\": 0, \"key\": \"{long}\"}}\n"));
    located(&err, 2, 0, "", &["longer than 1 MiB"]);
    // Just below the cap is an ordinary row.
    let key = "k".repeat(MAX_LINE_BYTES - 3);
    assert_eq!(csv(format!("t,key\n0,{key}\n")).unwrap()[0].key.len(), key.len());
    // An endless line stops at the cap instead of filling memory.
    let endless = BufReader::new(io::Cursor::new(&b"t,key\n0,"[..]).chain(io::repeat(b'a')));
    let err = drain(&mut CsvTrace::new(endless, "traces/x.csv").unwrap()).unwrap_err();
    located(&err, 2, 0, "", &["longer than 1 MiB"]);
}

#[test]
fn jsonl_numbers_read_alike_for_every_key() {
    // `1e3` is 1000 for `tokens` and `cost` as for `t`; a fraction is not a whole number.
    let rows = jsonl("{\"t\": 1e3, \"key\": \"a\", \"tokens\": 1e3, \"cost\": 2.0E1}\n").unwrap();
    assert_eq!((rows[0].t, rows[0].tokens, rows[0].cost), (TraceTime::Offset(1000 * SECOND), 1000, 20));
    let err = jsonl_err("{\"t\": 0, \"key\": \"a\", \"tokens\": 2.5e0}\n");
    located(&err, 1, 36, "tokens", &["found 2.5e0, which is not a whole number"]);
    // A signed zero says why it is refused.
    let err = jsonl_err("{\"t\": -0, \"key\": \"a\"}\n");
    located(&err, 1, 8, "t", &["found -0, which has a minus sign; write it without one"]);
    let err = jsonl_err("{\"t\": 0, \"key\": \"a\", \"tokens\": -0.0}\n");
    located(&err, 1, 35, "tokens", &["found -0.0, which has a minus sign"]);
    let err = csv_err("t,key\n-0,a\n");
    located(&err, 2, 1, "t", &["found \"-0\", which has a minus sign"]);
    // Numbers too long for an f64 are quoted as written.
    let err = jsonl_err("{\"t\": 18446744073709551616, \"key\": \"a\"}\n");
    located(&err, 1, 26, "t", &["the JSON number 18446744073709551616, which has more than 15 significant digits"]);
}

// ---------------------------------------------------------------------------
// The sample traces.

#[test]
fn sample_traces_agree() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    let from_csv = drain(&mut CsvTrace::open(&dir.join("sample.csv")).unwrap()).unwrap();
    let from_jsonl = drain(&mut JsonlTrace::open(&dir.join("sample.jsonl")).unwrap()).unwrap();
    assert_eq!(from_csv.len(), 40);
    assert_eq!(from_csv.len(), from_jsonl.len());
    for (c, j) in from_csv.iter().zip(&from_jsonl) {
        assert_eq!(c.line, j.line + 1);
        let mut j = j.clone();
        j.line = c.line;
        assert_eq!(c, &j);
    }
    let keys: std::collections::BTreeSet<&str> = from_csv.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(from_csv.last().unwrap().t, TraceTime::Offset(25 * SECOND));
    let missing = CsvTrace::open(&dir.join("no-such-file.csv")).unwrap_err();
    assert!(missing.to_string().contains("cannot open the trace"));
}

#[test]
fn jsonl_bom_and_bad_utf8() {
    // A byte-order mark on the first line is skipped, as in CSV.
    let rows = jsonl(b"\xEF\xBB\xBF{\"t\": 0, \"key\": \"a\"}\n{\"t\": 1, \"key\": \"b\"}\n").unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].key, "a");
    // Invalid UTF-8 is named as such, at its line, column and field.
    let e = jsonl_err(b"{\"t\": 0, \"key\": \"a\"}\n{\"t\": 1, \"key\": \"b\xff\"}\n");
    located(&e, 2, 19, "key", &["expected UTF-8 text", "must be UTF-8"]);
}
