//! Fuzzing every reader of user input: the policy and spec readers (TOML),
//! the CSV and JSON Lines trace readers, and the time, duration, rate and
//! RFC 3339 parsers.
//!
//! Each target runs twice: over arbitrary bytes, and over mutations of a
//! corpus seeded from the shipped files (`policies/`, `examples/`, `traces/`) plus a few
//! hand-written seeds that hold every column and time form. Mutations flip
//! bits, delete, duplicate and truncate ranges, and insert bytes and tokens
//! that broke readers before: multi-byte characters next to digits,
//! integers beyond 64 bits, `-0`, `1e30`, 100-year durations, date-times,
//! deep nesting. Every target asserts that the reader never panics, that
//! every error is located (a line and column inside the input, a field
//! where one applies, a message), and that whatever is accepted is in range
//! (amounts, durations, offsets, instants, time order).
//!
//! A normal `cargo test --release` runs a few hundred cases per target (a
//! few seconds in all); `RATESIM_SOAK=1` (or `RATESIM_SOAK=N` cases) runs
//! far more. A failure is printed shrunk: add it to the named regression
//! tests of the reader's own test file.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use ratesim::policy::{self, PolicyError};
use ratesim::time::{
    format_rfc3339, parse_decimal_seconds, parse_duration, parse_rfc3339, Rate, MAX_DURATION, MAX_INSTANT,
};
use ratesim::trace::csv::CsvTrace;
use ratesim::trace::jsonl::JsonlTrace;
use ratesim::trace::synth::parse_spec;
use ratesim::trace::{TraceError, TraceRow, TraceSource, TraceTime, MAX_AMOUNT};

/// Cases per target and input kind in a normal run.
const CASES: u32 = 1_000;

/// Rows read from one fuzzed trace at most (a mutation can duplicate a
/// range many times; the readers stream, so this only bounds test time).
const MAX_ROWS: usize = 2_000;

// ---------------------------------------------------------------------------
// The corpus and its mutations.

/// The shipped files with extension `ext`, and `extra` seeds.
fn corpus_of(dir: &str, ext: &str, extra: &[&str]) -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {ext} files in {dir}/");
    let mut corpus: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).expect("readable")).collect();
    corpus.extend(extra.iter().map(|s| s.as_bytes().to_vec()));
    corpus
}

fn policies() -> &'static [Vec<u8>] {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        let mut corpus = corpus_of("policies", "toml", &[]);
        corpus.extend(corpus_of("examples", "toml", &[])); // the limiter dialects' options
        corpus
    })
}

fn specs() -> &'static [Vec<u8>] {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        corpus_of(
            "traces",
            "toml",
            &["horizon = \"1min\"\nseed = 3\n[[population]]\nname = \"a\"\nclients = 2\n\
               arrival = { kind = \"ramp\", from = \"0/s\", to = \"5/s\", over = \"30s\" }\n\
               tokens = { dist = \"lognormal\", mu = 3, sigma = 2 }\n\
               cost = { dist = \"uniform\", min = 0, max = 1e6 }\n\
               duration = { dist = \"constant\", value = \"250ms\" }\n"],
        )
    })
}

fn csvs() -> &'static [Vec<u8>] {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        corpus_of(
            "traces",
            "csv",
            &[
                "t,key,tokens,duration\n2026-01-01T00:00:00Z,a,5,0.5\n2026-01-01T00:00:00.25+01:00,\"b,c\",7,1\n",
                "duration,cost,tokens,auth,endpoint,workspace,user,key,t\r\n0.25,12,300,false,/v1/x,w,u,k,1.5\r\n",
            ],
        )
    })
}

fn jsonls() -> &'static [Vec<u8>] {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        corpus_of(
            "traces",
            "jsonl",
            &["{\"t\": \"2026-01-01T00:00:00Z\", \"key\": \"a\", \"tokens\": 1e3, \"duration\": \"0.5\"}\n\
               {\"t\": \"2026-01-01T00:00:01.5Z\", \"key\": 42, \"auth\": 0, \"cost\": null}\n"],
        )
    })
}

/// Text that broke a reader once, or sits on a boundary.
const TOKENS: &[&str] = &[
    "\u{e9}",
    "\u{1F600}",
    "\u{feff}",
    "\u{0}",
    "99999999999999999999",
    "-99999999999999999999",
    "18446744073709551616",
    "18446744073709551615",
    "9223372036854775808",
    "1000000000000001",
    "-0",
    "-1",
    "1e30",
    "1e3",
    "2.5",
    "0.0000000001",
    ".",
    "nan",
    "inf",
    "3155760001",
    "18446744073.709551615",
    "36525day",
    "40000day",
    "1/36525day",
    "0/s",
    "1/100y",
    "1979-05-27T07:32:00Z",
    "2026-01-01T00:00:0\u{e9}Z",
    "2201-01-01T00:00:00Z",
    "+99:99",
    "\"",
    "'",
    ",",
    "\n",
    "\r\n",
    "{",
    "}",
    "[",
    "]",
    "=",
    ".",
    "a.b.c.d.e.f",
    "[[plan]]\nname = \"x\"\n",
    "[[plan.limit]]\n",
    "[[population]]\n",
    "null",
    "true",
    "\\",
    "#",
];

#[derive(Clone, Debug)]
enum Mutation {
    /// Flip bit `bit` of the byte at `at`.
    Flip { at: usize, bit: u8 },
    /// Insert bytes at `at`.
    Insert { at: usize, bytes: Vec<u8> },
    /// Insert `TOKENS[token]` at `at`.
    Token { at: usize, token: usize },
    /// Delete `len` bytes from `at`.
    Delete { at: usize, len: usize },
    /// Copy `len` bytes from `from` to `at`, `times` times.
    Duplicate { from: usize, len: usize, at: usize, times: usize },
    /// Keep the first `at` bytes.
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        1 => (at, 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        1 => (at, prop::collection::vec(any::<u8>(), 1..6)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        3 => (at, 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Token { at, token }),
        1 => (at, 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (at, 1usize..80, any::<usize>(), 1usize..4)
            .prop_map(|(from, len, at, times)| Mutation::Duplicate { from, len, at, times }),
        1 => at.prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let pos = |at: usize, len: usize| if len == 0 { 0 } else { at % (len + 1) };
        match m {
            Mutation::Flip { at, bit } => {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] ^= 1 << bit;
                }
            }
            Mutation::Insert { at, bytes: b } => {
                let i = pos(*at, bytes.len());
                bytes.splice(i..i, b.iter().copied());
            }
            Mutation::Token { at, token } => {
                let i = pos(*at, bytes.len());
                bytes.splice(i..i, TOKENS[*token].bytes());
            }
            Mutation::Delete { at, len } => {
                let i = pos(*at, bytes.len());
                let end = (i + len).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Duplicate { from, len, at, times } => {
                let i = pos(*from, bytes.len());
                let end = (i + len).min(bytes.len());
                let piece: Vec<u8> = bytes[i..end].repeat(*times);
                let j = pos(*at, bytes.len());
                bytes.splice(j..j, piece);
            }
            Mutation::Truncate { at } => {
                let i = pos(*at, bytes.len());
                bytes.truncate(i);
            }
        }
    }
    bytes
}

/// A mutant of one of `corpus`.
fn mutant(corpus: &'static [Vec<u8>]) -> impl Strategy<Value = Vec<u8>> {
    (0..corpus.len(), prop::collection::vec(mutation(), 1..6)).prop_map(move |(i, m)| apply(corpus[i].clone(), &m))
}

/// Arbitrary bytes, mostly printable so that some of it parses a little.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        prop::collection::vec(prop::sample::select(b" \n=[]{}\",.:-+0123456789aeTZ#/".to_vec()), 0..400),
    ]
}

/// Lines of `bytes` as the readers count them (a last line without a break counts).
fn line_count(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

// ---------------------------------------------------------------------------
// Policies.

/// A scratch file for readers that take a path (the UTF-8 check is there).
fn load_policy_bytes(bytes: &[u8]) -> Result<(), PolicyError> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("ratesim-fuzz-{}-{n}.toml", std::process::id()));
    std::fs::File::create(&path).and_then(|mut f| f.write_all(bytes)).expect("write a scratch policy");
    let result = policy::load(&path).map(|_| ());
    let _ = std::fs::remove_file(&path);
    result
}

fn check_policy(bytes: &[u8]) -> Result<(), TestCaseError> {
    let lines = line_count(bytes) as usize;
    let result = match std::str::from_utf8(bytes) {
        Ok(text) => policy::parse(text, "fuzz.toml").map(|p| {
            // What a user does next with a policy that reads must not panic either.
            let _ = p.explain(None);
        }),
        Err(_) => load_policy_bytes(bytes),
    };
    if let Err(e) = result {
        prop_assert!(!e.message.is_empty(), "no message: {e}");
        prop_assert!((1..=lines).contains(&e.line), "line outside the text: {e}");
        prop_assert!(e.column >= 1, "no column: {e}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(common::config(CASES))]

    #[test]
    fn policy_reader_over_bytes(b in bytes()) {
        check_policy(&b)?;
    }

    #[test]
    fn policy_reader_over_mutants(b in mutant(policies())) {
        check_policy(&b)?;
    }
}

// ---------------------------------------------------------------------------
// Synthetic specs.

fn check_spec(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(()); // load_spec's UTF-8 check is the policy's (toml_input), fuzzed above.
    };
    let lines = line_count(bytes);
    match parse_spec(text, "fuzz.toml") {
        Err(e) => {
            prop_assert!(!e.message.is_empty(), "no message: {e}");
            prop_assert!((1..=lines).contains(&e.line), "line outside the text: {e}");
            prop_assert!(e.column >= 1, "no column: {e}");
        }
        Ok(spec) => {
            let expected = spec.expected_rows(None);
            prop_assert!(expected.is_finite() && expected >= 0.0, "expected rows {expected}");
            // Generate the start of small specs: every row in range and in order.
            if spec.clients() <= 1_000 {
                let mut source = spec.generate(spec.seed().unwrap_or(0));
                let mut row = TraceRow::default();
                let mut last = 0;
                for _ in 0..200 {
                    if !source.next_row(&mut row).map_err(|e| TestCaseError::fail(e.to_string()))? {
                        break;
                    }
                    let TraceTime::Offset(t) = row.t else {
                        return Err(TestCaseError::fail("a spec gives offsets"));
                    };
                    prop_assert!(t >= last && t < spec.horizon(), "t {t} after {last}, horizon {}", spec.horizon());
                    prop_assert!(row.tokens <= MAX_AMOUNT && row.cost <= MAX_AMOUNT, "{row:?}");
                    prop_assert!(row.duration <= MAX_DURATION, "{row:?}");
                    last = t;
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(common::config(CASES))]

    #[test]
    fn spec_reader_over_bytes(b in bytes()) {
        check_spec(&b)?;
    }

    #[test]
    fn spec_reader_over_mutants(b in mutant(specs())) {
        check_spec(&b)?;
    }
}

// ---------------------------------------------------------------------------
// Recorded traces.

const COLUMNS: [&str; 10] = ["", "t", "key", "user", "workspace", "endpoint", "auth", "tokens", "cost", "duration"];

/// Reads a whole trace; checks every row and, if it fails, the error.
fn check_trace(bytes: &[u8], mut source: impl TraceSource) -> Result<(), TestCaseError> {
    let lines = line_count(bytes);
    let mut row = TraceRow::default();
    let mut last: Option<TraceTime> = None;
    for _ in 0..MAX_ROWS {
        match source.next_row(&mut row) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                prop_assert!(row.tokens <= MAX_AMOUNT && row.cost <= MAX_AMOUNT, "{row:?}");
                prop_assert!(row.duration <= MAX_DURATION, "{row:?}");
                prop_assert!(!row.key.is_empty(), "{row:?}");
                match row.t {
                    TraceTime::Offset(t) => prop_assert!(t <= MAX_DURATION, "{row:?}"),
                    TraceTime::Absolute(t) => prop_assert!(t <= MAX_INSTANT, "{row:?}"),
                }
                if let Some(prev) = last {
                    prop_assert!(prev <= row.t, "out of order: {prev:?} then {row:?}");
                }
                last = Some(row.t);
                prop_assert!((1..=lines).contains(&row.line), "row line {} of {lines}", row.line);
            }
            Err(e) => return check_trace_error(&e, lines),
        }
    }
    Ok(())
}

fn check_trace_error(e: &TraceError, lines: u64) -> Result<(), TestCaseError> {
    prop_assert!(!e.message.is_empty(), "no message: {e}");
    // The field is a column, or the unknown column (key) the error is about.
    prop_assert!(COLUMNS.contains(&e.field.as_str()) || e.message.starts_with("unknown"), "not a column: {e}");
    // Only an empty CSV file has no line ("the file is empty").
    if e.line == 0 {
        prop_assert!(e.message.contains("the file is empty"), "unlocated: {e}");
    } else {
        prop_assert!(e.line <= lines, "line outside the text: {e}");
    }
    Ok(())
}

fn check_csv(bytes: &[u8]) -> Result<(), TestCaseError> {
    match CsvTrace::new(bytes, "fuzz.csv") {
        Ok(trace) => check_trace(bytes, trace),
        Err(e) => check_trace_error(&e, line_count(bytes)),
    }
}

fn check_jsonl(bytes: &[u8]) -> Result<(), TestCaseError> {
    let trace = JsonlTrace::new(bytes, "fuzz.jsonl").map_err(|e| TestCaseError::fail(e.to_string()))?;
    check_trace(bytes, trace)
}

proptest! {
    #![proptest_config(common::config(CASES))]

    #[test]
    fn csv_reader_over_bytes(b in bytes()) {
        check_csv(&b)?;
    }

    #[test]
    fn csv_reader_over_mutants(b in mutant(csvs())) {
        check_csv(&b)?;
    }

    #[test]
    fn jsonl_reader_over_bytes(b in bytes()) {
        check_jsonl(&b)?;
    }

    #[test]
    fn jsonl_reader_over_mutants(b in mutant(jsonls())) {
        check_jsonl(&b)?;
    }
}

// ---------------------------------------------------------------------------
// Times, durations, rates.

/// Valid examples of each form, to mutate.
const TIME_SEEDS: &[&str] = &[
    "2026-01-01T00:00:00Z",
    "2028-02-29T23:59:59.999999999+05:30",
    "1970-01-01 00:00:00z",
    "1.5min",
    "250ms",
    "36525day",
    "0.000000001s",
    "12.000000001",
    "500/min",
    "10/30s",
    "1/1.5s",
];

fn time_text() -> impl Strategy<Value = String> {
    let seeds = TIME_SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    let seeds: &'static [Vec<u8>] = Box::leak(seeds.into_boxed_slice());
    prop_oneof![".{0,40}", mutant(seeds).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),]
}

proptest! {
    #![proptest_config(common::config(CASES * 4))]

    #[test]
    fn time_parsers_never_panic_and_stay_in_range(text in time_text()) {
        if let Ok(t) = parse_rfc3339(&text) {
            prop_assert!(t <= MAX_INSTANT, "{text:?} -> {t}");
            prop_assert_eq!(parse_rfc3339(&format_rfc3339(t)), Ok(t), "round trip of {:?}", text);
        }
        if let Ok(d) = parse_duration(&text) {
            prop_assert!(d <= MAX_DURATION, "{text:?} -> {d}");
        }
        let _ = parse_decimal_seconds(&text);
        if let Ok(r) = Rate::parse(&text) {
            prop_assert!(r.count() >= 1 && r.period() >= 1 && r.period() <= MAX_DURATION, "{text:?} -> {r:?}");
        }
        for e in [parse_rfc3339(&text).err(), parse_duration(&text).err(), Rate::parse(&text).err()].into_iter().flatten() {
            prop_assert!(e.contains("expected"), "an error says what was expected: {e}");
        }
    }
}
