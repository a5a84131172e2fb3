//! Time and rates: integer nanoseconds and exact rational rates.
//!
//! Every instant in ratesim is a [`Nanos`]: nanoseconds since the Unix epoch
//! (1970-01-01T00:00:00Z), as an unsigned 64-bit integer (good until 2554).
//! The production limiter reads them from a real clock, the simulator from
//! its virtual clock; the engines only ever receive them as arguments.
//!
//! A [`Rate`] is `count` units per `period` nanoseconds, kept as the exact
//! fraction. 7 requests per second stays 7/1e9 per nanosecond forever; no
//! floating point value is ever stored, so a 30-day run admits exactly what
//! the arithmetic says.
//!
//! This module also parses the human forms used in policies and traces:
//! durations (`"60s"`, `"1.5min"`, `"250ms"`), rates (`"500/min"`, `"3/h"`),
//! decimal seconds parsed exactly to nanoseconds (`"12.000000001"`) and
//! RFC 3339 timestamps (`"2026-01-01T00:00:00Z"`).

use std::fmt;

/// Nanoseconds: an instant since the Unix epoch, or a span of time.
pub type Nanos = u64;

/// One microsecond in nanoseconds.
pub const MICROSECOND: Nanos = 1_000;
/// One millisecond in nanoseconds.
pub const MILLISECOND: Nanos = 1_000_000;
/// One second in nanoseconds.
pub const SECOND: Nanos = 1_000_000_000;
/// One minute in nanoseconds.
pub const MINUTE: Nanos = 60 * SECOND;
/// One hour in nanoseconds.
pub const HOUR: Nanos = 60 * MINUTE;
/// One day (86 400 s; UTC has no leap seconds in Unix time) in nanoseconds.
pub const DAY: Nanos = 24 * HOUR;

/// An exact rate: `count` units per `period` nanoseconds.
///
/// Both are at least one. The emission interval `T = period / count` is a
/// rational number of nanoseconds and is never rounded; engines scale their
/// arithmetic by `count` instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u64,
    period: Nanos,
}

impl Rate {
    /// `count` per `period` nanoseconds; `None` if either is zero.
    pub fn new(count: u64, period: Nanos) -> Option<Rate> {
        if count == 0 || period == 0 {
            None
        } else {
            Some(Rate { count, period })
        }
    }

    /// Units admitted per period.
    pub fn count(self) -> u64 {
        self.count
    }

    /// The period in nanoseconds.
    pub fn period(self) -> Nanos {
        self.period
    }

    /// Units per second as a float, for display only.
    pub fn per_second(self) -> f64 {
        self.count as f64 * SECOND as f64 / self.period as f64
    }

    /// Parses `"500/min"`, `"7/s"`, `"3/h"`, `"100/day"`, `"10/30s"`, `"1/1.5s"`.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let expected = "expected a rate such as \"500/min\", \"7/s\", \"3/h\", \"100/day\" or \"10/30s\"";
        let (count, unit) = text.split_once('/').ok_or_else(|| format!("{expected}, found {text:?}"))?;
        let count = count.trim();
        let count: u64 = count.parse().map_err(|_| {
            let why = if count.starts_with('-') && count.len() > 1 {
                "the count must be at least 1; it is negative".to_string()
            } else if !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()) {
                format!("the count is too large: at most {}", u64::MAX)
            } else {
                "the count must be a whole number".to_string()
            };
            format!("{expected}, found {text:?} ({why})")
        })?;
        if count == 0 {
            return Err(format!("{expected}, found {text:?} (the count must be at least 1)"));
        }
        let unit = unit.trim();
        let period = match unit_nanos(unit) {
            Some(n) => n,
            None => parse_duration(unit).map_err(|e| {
                if e.contains("at most 100 years") {
                    format!("{expected}, found {text:?} (the period must be at most 100 years)")
                } else {
                    format!("{expected}, found {text:?} (unknown unit {unit:?}; use s, min, h, day or a duration)")
                }
            })?,
        };
        Rate::new(count, period).ok_or_else(|| format!("{expected}, found {text:?} (the period must be positive)"))
    }
}

impl fmt::Display for Rate {
    /// Formats as `count/unit` with the largest unit that divides the period.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period {
            SECOND => "s".to_string(),
            MINUTE => "min".to_string(),
            HOUR => "h".to_string(),
            DAY => "day".to_string(),
            p => format_duration(p),
        };
        write!(f, "{}/{}", self.count, unit)
    }
}

fn unit_nanos(unit: &str) -> Option<Nanos> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" => MICROSECOND,
        "ms" => MILLISECOND,
        "s" | "sec" | "second" => SECOND,
        "min" | "minute" | "m" => MINUTE,
        "h" | "hour" => HOUR,
        "d" | "day" => DAY,
        _ => return None,
    })
}

/// Parses a duration: a decimal number and a unit (`ns`, `us`, `ms`, `s`,
/// `min`, `h`, `day`), e.g. `"60s"`, `"1.5min"`, `"250ms"`. The result must be
/// a whole number of nanoseconds (`"0.5ns"` is an error), and is exact.
pub fn parse_duration(text: &str) -> Result<Nanos, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("expected a duration of at least zero, found the negative {text:?}"));
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(|| {
        format!("expected a duration with a unit such as \"60s\", \"1.5min\" or \"250ms\", found {text:?}")
    })?;
    let (number, unit) = t.split_at(split);
    let unit_ns = unit_nanos(unit.trim()).ok_or_else(|| {
        format!("expected a duration unit ns, us, ms, s, min, h or day, found {:?} in {text:?}", unit.trim())
    })?;
    let too_long = || format!("expected a duration of at most 100 years (36525day), found {text:?}");
    let ns = scale_decimal(number, unit_ns).map_err(|why| match why {
        Invalid::TooLarge => too_long(),
        why => format!("expected a duration such as \"60s\", \"1.5min\" or \"250ms\", found {text:?} ({why})"),
    })?;
    if ns > MAX_DURATION {
        return Err(too_long());
    }
    Ok(ns)
}

/// The longest duration accepted anywhere (100 years): instants plus two
/// such periods stay far inside `u64` nanoseconds, so no engine overflows.
pub const MAX_DURATION: Nanos = 36_525 * DAY;

/// Parses decimal seconds exactly to nanoseconds: `"12"`, `"0.25"`,
/// `"1.000000001"`. More than nine decimals is an error, not a rounding.
pub fn parse_decimal_seconds(text: &str) -> Result<Nanos, String> {
    scale_decimal(text, SECOND)
        .map_err(|why| format!("expected decimal seconds such as \"12.5\", found {text:?} ({why})"))
}

/// Why a decimal number was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Invalid {
    NotDecimal,
    TooLarge,
    TooManyDecimals,
    FinerThanNanosecond,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invalid::NotDecimal => "not a non-negative decimal number",
            Invalid::TooLarge => "too large",
            Invalid::TooManyDecimals => "more than 18 decimals",
            Invalid::FinerThanNanosecond => "not a whole number of nanoseconds",
        })
    }
}

/// `number` (digits with at most one dot) times `unit` nanoseconds, exactly.
fn scale_decimal(number: &str, unit: Nanos) -> Result<Nanos, Invalid> {
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits_ok(int) || !digits_ok(frac) {
        return Err(Invalid::NotDecimal);
    }
    let int_val: u64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| Invalid::TooLarge)? };
    let mut total = (int_val as u128) * unit as u128;
    // Fraction: frac / 10^len * unit must be a whole number of nanoseconds.
    if !frac.is_empty() {
        if frac.len() > 18 {
            return Err(Invalid::TooManyDecimals);
        }
        let f: u128 = frac.parse().map_err(|_| Invalid::NotDecimal)?;
        let denom = 10u128.pow(frac.len() as u32);
        let scaled = f * unit as u128;
        if scaled % denom != 0 {
            return Err(Invalid::FinerThanNanosecond);
        }
        total += scaled / denom;
    }
    u64::try_from(total).map_err(|_| Invalid::TooLarge)
}

/// Formats a span with the largest unit that divides it exactly:
/// `60s` → `"1min"`, `1500ms` → `"1500ms"`, `7ns` → `"7ns"`.
pub fn format_duration(ns: Nanos) -> String {
    for (unit, name) in
        [(DAY, "day"), (HOUR, "h"), (MINUTE, "min"), (SECOND, "s"), (MILLISECOND, "ms"), (MICROSECOND, "us")]
    {
        if ns >= unit && ns % unit == 0 {
            return format!("{}{}", ns / unit, name);
        }
    }
    format!("{ns}ns")
}

/// Formats nanoseconds as decimal seconds with trailing zeros trimmed:
/// `1_500_000_000` → `"1.5"`. Exact (no float).
pub fn format_decimal_seconds(ns: Nanos) -> String {
    let s = ns / SECOND;
    let frac = ns % SECOND;
    if frac == 0 {
        return s.to_string();
    }
    let f = format!("{frac:09}");
    format!("{s}.{}", f.trim_end_matches('0'))
}

/// Ceiling of `ns` in whole seconds: what an HTTP `Retry-After` header carries
/// (waiting the rounded-up value is always enough).
pub fn ceil_seconds(ns: Nanos) -> u64 {
    ns.div_ceil(SECOND)
}

/// A civil (proleptic Gregorian, UTC) date and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month 1..=12.
    pub month: u32,
    /// Day of month 1..=31.
    pub day: u32,
    /// Nanoseconds into the day.
    pub nanos_of_day: u64,
}

/// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date for a number of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Splits an instant into its UTC civil date and time of day.
pub fn civil(t: Nanos) -> Civil {
    let days = (t / DAY) as i64;
    let (year, month, day) = civil_from_days(days);
    Civil { year, month, day, nanos_of_day: t % DAY }
}

/// The instant at which the UTC calendar month containing `t` starts.
pub fn month_start(t: Nanos) -> Nanos {
    let c = civil(t);
    days_from_civil(c.year, c.month, 1) as Nanos * DAY
}

/// The instant at which the UTC calendar month after the one containing `t` starts.
pub fn next_month_start(t: Nanos) -> Nanos {
    let c = civil(t);
    let (y, m) = if c.month == 12 { (c.year + 1, 1) } else { (c.year, c.month + 1) };
    days_from_civil(y, m, 1) as Nanos * DAY
}

/// Formats an instant as RFC 3339 UTC: `2026-01-01T13:00:00Z`, with
/// fractional seconds only when non-zero.
pub fn format_rfc3339(t: Nanos) -> String {
    let c = civil(t);
    let secs = c.nanos_of_day / SECOND;
    let frac = c.nanos_of_day % SECOND;
    let base =
        format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", c.year, c.month, c.day, secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{}Z", format!("{frac:09}").trim_end_matches('0'))
    }
}

/// The latest instant accepted from any input (`--start`, RFC 3339 trace
/// times): 2200-01-01T00:00:00Z. An accepted instant plus a trace of at most
/// [`MAX_DURATION`] plus two limit periods of at most [`MAX_DURATION`] each
/// stays below the end of `u64` nanoseconds (year 2554), so no engine or
/// simulator sum of such values overflows.
pub const MAX_INSTANT: Nanos = 7_258_118_400 * SECOND;

/// Parses an RFC 3339 timestamp (`2026-01-01T00:00:00Z`,
/// `2026-01-01T05:30:00.25+05:30`) to nanoseconds since the Unix epoch.
/// Instants before 1970 or after [`MAX_INSTANT`] (2200) are an error.
///
/// The text is read byte by byte: every position of the fixed layout
/// `YYYY-MM-DDTHH:MM:SS` is checked to be an ASCII digit or separator
/// before anything is read from it, so any text, whatever characters it
/// holds, gives a value or an error.
pub fn parse_rfc3339(text: &str) -> Result<Nanos, String> {
    let err = || format!("expected an RFC 3339 timestamp such as \"2026-01-01T00:00:00Z\", found {text:?}");
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(err());
    }
    let num = |bytes: &[u8]| ascii_number(bytes).ok_or_else(err);
    let (year, month, day) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > u64::from(days_in_month(year as i64, month as u32))
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(format!("{} (a field is out of range)", err()));
    }
    let mut rest = &b[19..];
    let mut frac_ns: u64 = 0;
    if let Some(r) = rest.strip_prefix(b".") {
        let digits = r.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return Err(format!("{} (1 to 9 fractional digits)", err()));
        }
        frac_ns = num(&r[..digits])? * 10u64.pow(9 - digits as u32);
        rest = &r[digits..];
    }
    let offset_s: i64 = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (num(&[*h1, *h2])?, num(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return Err(format!("{} (the offset is out of range)", err()));
            }
            let s = (h * 3600 + m * 60) as i64;
            if *sign == b'-' {
                -s
            } else {
                s
            }
        }
        _ => return Err(err()),
    };
    let days = days_from_civil(year as i64, month as u32, day as u32);
    let secs = days * 86_400 + hour as i64 * 3600 + minute as i64 * 60 + second.min(59) as i64 - offset_s;
    if secs < 0 {
        return Err(format!("{} (instants before 1970 are not supported)", err()));
    }
    let t = (secs as u64).saturating_mul(SECOND).saturating_add(frac_ns);
    if t > MAX_INSTANT {
        return Err(format!("{} (instants after 2200-01-01T00:00:00Z are not supported)", err()));
    }
    Ok(t)
}

/// The value of a short run of ASCII digits; `None` if any byte is not one.
fn ascii_number(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |n, &c| c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0')))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_exactly() {
        assert_eq!(Rate::parse("500/min").unwrap(), Rate::new(500, MINUTE).unwrap());
        assert_eq!(Rate::parse("7/s").unwrap(), Rate::new(7, SECOND).unwrap());
        assert_eq!(Rate::parse("3/h").unwrap(), Rate::new(3, HOUR).unwrap());
        assert_eq!(Rate::parse("10/30s").unwrap(), Rate::new(10, 30 * SECOND).unwrap());
        assert!(Rate::parse("0/s").is_err());
        assert!(Rate::parse("-1/s").is_err());
        assert!(Rate::parse("5/fortnight").is_err());
        assert!(Rate::parse("5").is_err());
        assert!(Rate::parse("5/0s").is_err());
        assert_eq!(Rate::parse("500/min").unwrap().to_string(), "500/min");
    }

    #[test]
    fn durations_and_decimals_are_exact() {
        assert_eq!(parse_duration("60s").unwrap(), MINUTE);
        assert_eq!(parse_duration("1.5min").unwrap(), 90 * SECOND);
        assert_eq!(parse_duration("250ms").unwrap(), 250 * MILLISECOND);
        assert!(parse_duration("0.5ns").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert_eq!(parse_decimal_seconds("1.000000001").unwrap(), SECOND + 1);
        assert_eq!(parse_decimal_seconds("0.1").unwrap(), 100 * MILLISECOND);
        assert!(parse_decimal_seconds("0.0000000001").is_err());
        assert!(parse_decimal_seconds("-1").is_err());
        assert!(parse_decimal_seconds("1e3").is_err());
        assert!(parse_decimal_seconds(".").is_err());
        assert_eq!(format_decimal_seconds(1_500_000_000), "1.5");
        assert_eq!(format_duration(MINUTE), "1min");
    }

    #[test]
    fn calendar_round_trips() {
        let t = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(t, 1_767_225_600 * SECOND);
        assert_eq!(format_rfc3339(t), "2026-01-01T00:00:00Z");
        assert_eq!(next_month_start(t), parse_rfc3339("2026-02-01T00:00:00Z").unwrap());
        let feb29 = parse_rfc3339("2028-02-29T23:59:59.5Z").unwrap();
        assert_eq!(month_start(feb29), parse_rfc3339("2028-02-01T00:00:00Z").unwrap());
        assert_eq!(next_month_start(feb29), parse_rfc3339("2028-03-01T00:00:00Z").unwrap());
        assert_eq!(parse_rfc3339("2026-01-01T05:30:00+05:30").unwrap(), t);
        assert!(parse_rfc3339("2026-02-30T00:00:00Z").is_err());
        assert!(parse_rfc3339("2026-01-01").is_err());
        assert!(parse_rfc3339("2026-01-01T00:00:00+24:00").is_err());
        assert_eq!(parse_rfc3339("2200-01-01T00:00:00Z").unwrap(), MAX_INSTANT);
        let late = parse_rfc3339("2200-01-01T00:00:00.000000001Z").unwrap_err();
        assert!(late.contains("after 2200"), "{late}");
        assert!(parse_rfc3339("9999-12-31T23:59:59Z").unwrap_err().contains("after 2200"));
        for days in [0i64, 59, 365, 10_957, 20_454, 47_482] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn rfc3339_reads_any_text_without_slicing_a_character() {
        // A multi-byte character where a digit belongs is an error, wherever it is.
        for text in [
            "2026-01-01T00:00:0\u{e9}Z",
            "2026-01-01T00:00:\u{e9}0Z",
            "\u{e9}026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.\u{e9}Z",
            "2026-01-01T00:00:00+0\u{e9}:00",
            "2026-01-01T00:00:00+\u{e9}:\u{e9}",
            "2026-01-01T00:00:00\u{1F600}",
            "2026-01-01T00:0\u{e9}00Z",
        ] {
            let e = parse_rfc3339(text).expect_err(text);
            assert!(e.contains("expected an RFC 3339 timestamp"), "{e}");
        }
    }

    #[test]
    fn rate_counts_say_why_they_are_refused() {
        let negative = Rate::parse("-1/s").unwrap_err();
        assert!(negative.contains("it is negative"), "{negative}");
        let huge = Rate::parse("18446744073709551616/1ns").unwrap_err();
        assert!(huge.contains("too large: at most 18446744073709551615"), "{huge}");
        let word = Rate::parse("many/s").unwrap_err();
        assert!(word.contains("must be a whole number"), "{word}");
    }
}
