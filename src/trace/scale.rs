//! Traffic scaling: the same traffic at another offered load (`--scale`) or
//! over more customers (`--scale-keys`), deterministic for a seed.
//!
//! # Synthetic specs
//!
//! A spec is scaled in its own terms ([`Spec::scaled`](super::synth::Spec::scaled),
//! [`Spec::with_key_copies`](super::synth::Spec::with_key_copies)): `--scale F` multiplies every population's
//! per-client arrival rate by `F` (exactly, for `constant` arrivals); the
//! clients, their keys and their request attributes stay. `--scale-keys N`
//! runs `N` times as many clients of every population with the same per-client
//! process, and as many keys, users and workspaces (`shared_keys`, `users`
//! and a `workspaces` count are multiplied too), so per-key, per-user and
//! per-workspace traffic is the same and only their number grows. Clients
//! `0..clients` keep their random streams, so the original clients send
//! exactly what they sent before.
//!
//! # Recorded traces: superposed, shifted, thinned copies
//!
//! A recorded trace has no rate to turn up, so [`Superposed`] builds the
//! scaled trace from copies of the recorded one. Let the trace's span be
//! `P` (from its first instant — offset 0 for decimal-second traces, the
//! first row for RFC 3339 ones — to one nanosecond past its last row).
//!
//! - **`--scale F`** (keeping the keys: the same customers send `F` times as
//!   much). Below 1, each row is kept independently with probability `F`
//!   (independent thinning, which keeps a Poisson stream Poisson at rate
//!   `F·λ`). Above 1, `floor(F)` full copies are superposed, plus one copy
//!   thinned to the fractional part; expected rows are `F` times the
//!   original.
//! - **`--scale-keys N`** (new customers with the same behaviour): `N` copies,
//!   copy `j ≥ 1` with its key, user and workspace renamed `NAME~j`, so every
//!   per-key (per-user, per-workspace) limit sees the original traffic `N`
//!   times over, while global limits see `N` times the load.
//! - **Shifts.** Copy 0 is the trace itself. Every other copy is shifted in
//!   time by its own offset `δ`, uniform in `[0, W)`, and wrapped around the
//!   span: a row at `t` moves to `(t + δ) mod P`. Every copy therefore covers
//!   the span once, no row falls outside it, and the run keeps its length.
//!   `W` (`--scale-window`) defaults to `P`: the copies are then in
//!   independent phases, which suits traffic that is stationary over the
//!   trace. For a trace with a daily shape, a short window (say `5min`)
//!   keeps the copies' peaks together (the wrap then moves at most `W` of
//!   the trace's end to its start).
//!
//! `F = 1` with `N = 1` is the trace itself, row for row. Each copy draws its
//! offset and its thinning from its own ChaCha8 stream of the seed (stream
//! number `2^62 + 4·copy + k`: apart from the simulator's client streams,
//! which have the top bit set, and from a spec's streams), so the result
//! depends only on the trace, the seed and the scaling, never on threads.
//!
//! Memory stays constant: each shifted copy reads the file through two
//! readers (the wrapped tail, then the head), merged by time with the
//! others (ties: copy order, then file order); at most [`MAX_COPIES`]
//! copies.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{TraceError, TraceRow, TraceSource, TraceTime};
use crate::time::Nanos;

/// Most superposed copies of a recorded trace (`ceil(scale) × scale-keys`):
/// each holds two open readers of the file.
pub const MAX_COPIES: u64 = 256;

/// An exact positive scale factor `num / den`, written as a decimal
/// (`0.5`, `2`, `1.25`, at most 9 decimals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Factor {
    num: u64,
    den: u64,
}

impl Factor {
    /// 1: no scaling.
    pub const ONE: Factor = Factor { num: 1, den: 1 };

    /// Parses a decimal above zero.
    pub fn parse(text: &str) -> Result<Factor, String> {
        let t = text.trim();
        let expected = || format!("expected a scale factor above 0 such as 0.5, 2 or 1.25, found {t:?}");
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 9
        {
            return Err(expected());
        }
        let den = 10u64.pow(frac.len() as u32);
        let int: u64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| expected())? };
        let frac_v: u64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| expected())? };
        let num = int.checked_mul(den).and_then(|n| n.checked_add(frac_v)).ok_or_else(expected)?;
        if num == 0 {
            return Err(format!("{} (0 would remove all traffic)", expected()));
        }
        if num > 1_000_000 * den {
            return Err(format!("expected a scale factor of at most 1000000, found {t:?}"));
        }
        let g = gcd(num, den);
        Ok(Factor { num: num / g, den: den / g })
    }

    /// Numerator and denominator in lowest terms.
    pub fn ratio(self) -> (u64, u64) {
        (self.num, self.den)
    }

    /// The factor as a float (rates of random processes).
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Whole copies and the fractional part (`2.5` → `(2, 0.5)`).
    fn split(self) -> (u64, f64) {
        (self.num / self.den, (self.num % self.den) as f64 / self.den as f64)
    }
}

impl fmt::Display for Factor {
    /// Shortest exact decimal (`0.5`, `2`, `1.25`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let int = self.num / self.den;
        let rem = self.num % self.den;
        if rem == 0 {
            return write!(f, "{int}");
        }
        // den divides a power of ten (parsed from a decimal).
        let mut digits = String::new();
        let mut r = rem;
        while r != 0 && digits.len() < 9 {
            r *= 10;
            digits.push(char::from(b'0' + (r / self.den) as u8));
            r %= self.den;
        }
        write!(f, "{int}.{digits}")
    }
}

pub(crate) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// How a trace is scaled: `--scale`, `--scale-keys`, `--scale-window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scaling {
    /// Offered load multiplier (same keys).
    pub factor: Factor,
    /// Key multiplier (same per-key traffic over more keys), at least 1.
    pub key_copies: u32,
    /// Shift window of recorded-trace copies (`None`: the whole span).
    pub window: Option<Nanos>,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling { factor: Factor::ONE, key_copies: 1, window: None }
    }
}

impl Scaling {
    /// Whether this leaves the trace as it is.
    pub fn is_identity(&self) -> bool {
        self.factor == Factor::ONE && self.key_copies == 1
    }

    /// Copies of a recorded trace this takes: `ceil(factor) × key_copies`.
    pub fn copies(&self) -> u64 {
        let (whole, frac) = self.factor.split();
        (whole + u64::from(frac > 0.0)) * self.key_copies as u64
    }
}

/// The extent of a recorded trace, from one streaming pass ([`span_of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Instant of relative time 0: 0 for offsets, the first row's instant
    /// for absolute times.
    pub origin: TraceTime,
    /// One nanosecond past the last row, relative to the origin (`P`).
    pub length: Nanos,
    /// Rows in the trace.
    pub rows: u64,
}

/// Reads `source` to its end and measures its span (also checking every row).
pub fn span_of(source: &mut dyn TraceSource) -> Result<Span, TraceError> {
    let mut row = TraceRow::default();
    let mut origin = None;
    let mut last = 0;
    let mut rows = 0;
    while source.next_row(&mut row)? {
        rows += 1;
        let origin = *origin.get_or_insert(match row.t {
            TraceTime::Offset(_) => TraceTime::Offset(0),
            t @ TraceTime::Absolute(_) => t,
        });
        last = relative(origin, row.t);
    }
    Ok(Span { origin: origin.unwrap_or(TraceTime::Offset(0)), length: last.saturating_add(1), rows })
}

fn relative(origin: TraceTime, t: TraceTime) -> Nanos {
    match (origin, t) {
        (TraceTime::Absolute(o), TraceTime::Absolute(a)) => a.saturating_sub(o),
        (_, TraceTime::Offset(o)) | (_, TraceTime::Absolute(o)) => o,
    }
}

/// One reader of one copy: the wrapped tail (`rel >= P − δ`, moved to
/// `rel + δ − P`) or the head (`rel < P − δ`, moved to `rel + δ`).
struct Segment {
    source: Box<dyn TraceSource>,
    copy: u32,
    /// Rows with `rel` below this are skipped (tail) / end the segment (head).
    cut: Nanos,
    tail: bool,
    shift: Nanos,
    keep: f64,
    rng: ChaCha8Rng,
    rename: Option<u32>,
    head: TraceRow,
    done: bool,
}

/// A recorded trace scaled by superposed, shifted, thinned copies (see the
/// module docs). A [`TraceSource`].
pub struct Superposed {
    segments: Vec<Segment>,
    span: Span,
    heap: BinaryHeap<Reverse<(Nanos, u32, usize)>>,
}

impl Superposed {
    /// The scaled trace: `open` opens the recorded trace afresh (it is
    /// called twice per shifted copy), `span` is its [`span_of`].
    pub fn new(
        open: &dyn Fn() -> Result<Box<dyn TraceSource>, TraceError>,
        span: Span,
        scaling: &Scaling,
        seed: u64,
    ) -> Result<Superposed, TraceError> {
        let copies = scaling.copies();
        if copies > MAX_COPIES {
            return Err(TraceError {
                file: String::new(),
                line: 0,
                column: 0,
                field: String::new(),
                message: format!(
                    "scaling a recorded trace by {} with {} key copies takes {copies} superposed copies of it; at most {MAX_COPIES} (each reads the file)",
                    scaling.factor, scaling.key_copies
                ),
            });
        }
        let (whole, frac) = scaling.factor.split();
        let window = scaling.window.unwrap_or(span.length).clamp(1, span.length.max(1));
        let mut segments = Vec::new();
        let mut copy = 0u32;
        for key_copy in 0..scaling.key_copies {
            let rename = (key_copy > 0).then_some(key_copy);
            let traffic: Vec<f64> = (0..whole).map(|_| 1.0).chain((frac > 0.0).then_some(frac)).collect();
            for keep in traffic {
                let stream = |k: u64| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream((1 << 62) | ((copy as u64) << 2) | k);
                    rng
                };
                let shift = if copy == 0 { 0 } else { (uniform(&mut stream(0)) * window as f64) as Nanos % window };
                let segment = |tail: bool, source: Box<dyn TraceSource>| Segment {
                    source,
                    copy,
                    cut: span.length - shift,
                    tail,
                    shift,
                    keep,
                    rng: stream(if tail { 1 } else { 2 }),
                    rename,
                    head: TraceRow::default(),
                    done: false,
                };
                if shift > 0 {
                    segments.push(segment(true, open()?));
                }
                segments.push(segment(false, open()?));
                copy += 1;
            }
        }
        let mut s = Superposed { segments, span, heap: BinaryHeap::new() };
        for i in 0..s.segments.len() {
            s.advance(i)?;
        }
        Ok(s)
    }

    /// Reads segment `i`'s next row into its head and queues it.
    fn advance(&mut self, i: usize) -> Result<(), TraceError> {
        let origin = self.span.origin;
        let period = self.span.length;
        let seg = &mut self.segments[i];
        while !seg.done {
            if !seg.source.next_row(&mut seg.head)? {
                seg.done = true;
                break;
            }
            let rel = relative(origin, seg.head.t);
            let out = if seg.tail {
                if rel < seg.cut {
                    continue;
                }
                rel + seg.shift - period
            } else {
                if rel >= seg.cut {
                    seg.done = true;
                    break;
                }
                rel + seg.shift
            };
            if seg.keep < 1.0 && uniform(&mut seg.rng) >= seg.keep {
                continue;
            }
            seg.head.t = match origin {
                TraceTime::Offset(_) => TraceTime::Offset(out),
                TraceTime::Absolute(o) => TraceTime::Absolute(o + out),
            };
            if let Some(j) = seg.rename {
                for name in [&mut seg.head.key, &mut seg.head.user, &mut seg.head.workspace] {
                    if !name.is_empty() {
                        name.push_str(&format!("~{j}"));
                    }
                }
            }
            self.heap.push(Reverse((out, seg.copy, i)));
            return Ok(());
        }
        Ok(())
    }
}

impl TraceSource for Superposed {
    fn next_row(&mut self, row: &mut TraceRow) -> Result<bool, TraceError> {
        let Some(Reverse((_, _, i))) = self.heap.pop() else { return Ok(false) };
        std::mem::swap(row, &mut self.segments[i].head);
        self.advance(i)?;
        Ok(true)
    }
}

/// Uniform on `[0, 1)` from the top 53 bits.
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::MemoryTrace;

    fn rows(n: u64) -> Vec<TraceRow> {
        (0..n)
            .map(|i| TraceRow {
                t: TraceTime::Offset(i * 1_000_000),
                key: format!("k{}", i % 3),
                user: if i % 2 == 0 { "u".into() } else { String::new() },
                ..TraceRow::default()
            })
            .collect()
    }

    fn scaled(n: u64, scaling: Scaling, seed: u64) -> Vec<TraceRow> {
        let open = || Ok(Box::new(MemoryTrace::new(rows(n))) as Box<dyn TraceSource>);
        let span = span_of(&mut *open().unwrap()).unwrap();
        let mut s = Superposed::new(&open, span, &scaling, seed).unwrap();
        let mut out = Vec::new();
        let mut row = TraceRow::default();
        while s.next_row(&mut row).unwrap() {
            out.push(row.clone());
        }
        out
    }

    fn scaling(f: &str, keys: u32) -> Scaling {
        Scaling { factor: Factor::parse(f).unwrap(), key_copies: keys, window: None }
    }

    #[test]
    fn factors_are_exact() {
        assert_eq!(Factor::parse("0.5").unwrap().ratio(), (1, 2));
        assert_eq!(Factor::parse("2").unwrap().ratio(), (2, 1));
        assert_eq!(Factor::parse("1.25").unwrap().to_string(), "1.25");
        assert_eq!(Factor::parse(".5").unwrap().to_string(), "0.5");
        for bad in ["0", "-1", "x", "1.0000000001", "1e3", "", "."] {
            assert!(Factor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scale_one_is_the_trace() {
        assert_eq!(scaled(1000, scaling("1", 1), 7), rows(1000));
    }

    #[test]
    fn copies_stay_in_the_span_in_time_order_with_their_own_keys() {
        let out = scaled(1000, scaling("1", 3), 7);
        assert_eq!(out.len(), 3000);
        assert!(out.windows(2).all(|w| w[0].t <= w[1].t));
        assert!(out.iter().all(|r| r.t < TraceTime::Offset(1_000_000_000)));
        let keys: std::collections::BTreeSet<&str> = out.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys.len(), 9, "{keys:?}");
        assert!(out.iter().any(|r| r.user == "u~2") && out.iter().all(|r| r.user != "~1"));
        // Each copy is the trace, shifted: its rows per key are the original's.
        for j in 1..3 {
            let copy: Vec<_> = out.iter().filter(|r| r.key.ends_with(&format!("~{j}"))).collect();
            assert_eq!(copy.len(), 1000);
        }
        assert_eq!(out, scaled(1000, scaling("1", 3), 7), "deterministic for a seed");
        assert_ne!(out, scaled(1000, scaling("1", 3), 8));
    }

    #[test]
    fn thinning_and_superposition_scale_the_rows() {
        let n = 20_000;
        let half = scaled(n, scaling("0.5", 1), 3).len() as f64;
        assert!((half - 10_000.0).abs() < 4.0 * (n as f64 * 0.25).sqrt(), "{half}");
        let more = scaled(n, scaling("2.5", 1), 3).len() as f64;
        assert!((more - 50_000.0).abs() < 4.0 * (n as f64 * 0.25).sqrt(), "{more}");
        assert!(scaled(n, scaling("2", 1), 3).len() == 40_000);
    }
}
