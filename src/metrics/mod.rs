//! What a simulation measures: per-bucket time series and a run summary.
//!
//! Counters are integers. The time series is produced bucket by bucket as
//! virtual time passes each bucket's end and handed to a [`BucketSink`], so
//! memory does not grow with the length of the run. Time-to-success
//! quantiles ([`Latencies`]) are exact while at most [`EXACT_LATENCIES`]
//! requests succeed (every latency is kept, 8 MiB at most); beyond, they
//! come from a log-linear histogram with 1/1024 relative precision. The
//! maximum is always exact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Nanos;

/// Counters of one time bucket `[start, start + width)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Bucket start, nanoseconds since the trace start.
    pub start_ns: Nanos,
    /// New requests (trace rows) arriving.
    pub requests: u64,
    /// Attempts sent (first attempts, retries and polls).
    pub attempts: u64,
    /// Retries among the attempts.
    pub retries: u64,
    /// Job status polls among the attempts.
    pub polls: u64,
    /// Attempts admitted.
    pub admitted: u64,
    /// Admitted attempts the server held before serving them (nginx
    /// `limit_req` without `nodelay`).
    pub delayed: u64,
    /// Attempts denied with 429.
    pub denied_429: u64,
    /// Attempts denied with 402.
    pub denied_402: u64,
    /// Attempts denied with 503.
    pub denied_503: u64,
    /// Attempts denied with another status.
    pub denied_other: u64,
    /// Attempts the client itself held back (adaptive throttling).
    pub throttled: u64,
    /// Denials per limit, in plan order.
    pub denied_by_limit: Vec<u64>,
    /// Requests that gave up.
    pub give_ups: u64,
    /// Requests that succeeded.
    pub successes: u64,
    /// Sum of the times to success of the requests that succeeded in the
    /// bucket (see [`Summary::time_to_success`]), nanoseconds.
    pub time_to_success_sum_ns: u128,
    /// Longest of those times to success (0 without successes).
    pub time_to_success_max_ns: Nanos,
    /// Requests in flight at the bucket's end.
    pub in_flight: u64,
    /// Requests outstanding at the bucket's end: in service, waiting to
    /// retry, polling, or queued by the client (as
    /// [`Summary::peak_outstanding`]).
    pub outstanding: u64,
    /// Money settled (minor units). A `u128`: a sum of `u64` amounts never wraps.
    pub spend: u128,
    /// Tokens settled (`u128`, as `spend`).
    pub tokens: u128,
}

/// Receives time buckets in order as they close.
pub trait BucketSink {
    /// One closed bucket.
    fn bucket(&mut self, bucket: &Bucket) -> std::io::Result<()>;

    /// Called once when the run ends, after the last bucket, with the
    /// distribution of time to success of every request that succeeded
    /// (charts draw it as a CDF). The default ignores it.
    fn time_to_success(&mut self, _distribution: &Latencies) -> std::io::Result<()> {
        Ok(())
    }

    /// `count` consecutive buckets in which nothing happened, `width` apart:
    /// `first` is the earliest (every counter 0; `start_ns`, `in_flight` and
    /// `outstanding` set, and the same levels for all). The simulator hands a quiet
    /// stretch over in one call, so a long stretch costs a sink no more than
    /// it chooses to spend on it. The default passes each bucket to
    /// [`BucketSink::bucket`].
    fn idle(&mut self, first: &Bucket, count: u64, width: Nanos) -> std::io::Result<()> {
        let mut b = first.clone();
        for i in 0..count {
            b.start_ns = first.start_ns + i * width;
            self.bucket(&b)?;
        }
        Ok(())
    }
}

impl Bucket {
    /// Whether nothing was counted in the bucket (the levels `in_flight` and
    /// `outstanding` aside).
    pub fn is_quiet(&self) -> bool {
        let Bucket {
            start_ns: _,
            requests,
            attempts,
            retries,
            polls,
            admitted,
            delayed,
            denied_429,
            denied_402,
            denied_503,
            denied_other,
            throttled,
            denied_by_limit,
            give_ups,
            successes,
            time_to_success_sum_ns,
            time_to_success_max_ns,
            in_flight: _,
            outstanding: _,
            spend,
            tokens,
        } = self;
        [requests, attempts, retries, polls, admitted, delayed, denied_429, denied_402, denied_503, denied_other]
            .into_iter()
            .chain([throttled, give_ups, successes])
            .all(|&n| n == 0)
            && *time_to_success_sum_ns == 0
            && *time_to_success_max_ns == 0
            && *spend == 0
            && *tokens == 0
            && denied_by_limit.iter().all(|&n| n == 0)
    }
}

/// Keeps every bucket in memory (tests, charts of short runs).
#[derive(Clone, Debug, Default)]
pub struct KeepBuckets(pub Vec<Bucket>);

impl BucketSink for KeepBuckets {
    fn bucket(&mut self, bucket: &Bucket) -> std::io::Result<()> {
        self.0.push(bucket.clone());
        Ok(())
    }
}

/// Discards buckets.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoBuckets;

impl BucketSink for NoBuckets {
    fn bucket(&mut self, _: &Bucket) -> std::io::Result<()> {
        Ok(())
    }

    fn idle(&mut self, _: &Bucket, _: u64, _: Nanos) -> std::io::Result<()> {
        Ok(())
    }
}

const SUB_BITS: u32 = 10;
const SUB: usize = 1 << SUB_BITS;

/// A log-linear histogram of nanosecond values: exact below 1024 ns, then
/// 1024 sub-buckets per power of two. A quantile is reported as the smallest
/// value recorded in its sub-bucket: always a value that occurred, at most
/// 0.1% below the exact quantile (exact when the sub-bucket holds one value,
/// e.g. every wait of exactly `Retry-After: 1`).
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    /// Smallest value recorded in each sub-bucket.
    mins: Vec<u64>,
    total: u64,
    max: Nanos,
    min: Nanos,
}

impl Default for Histogram {
    fn default() -> Self {
        let n = (64 - SUB_BITS as usize + 1) * SUB;
        Histogram { counts: vec![0; n], mins: vec![u64::MAX; n], total: 0, max: 0, min: u64::MAX }
    }
}

impl Histogram {
    fn index(v: Nanos) -> usize {
        if v < SUB as u64 {
            v as usize
        } else {
            // v in [2^msb, 2^(msb+1)): keep the top SUB_BITS + 1 bits.
            let shift = (63 - v.leading_zeros()) - SUB_BITS;
            (shift as usize + 1) * SUB + ((v >> shift) as usize - SUB)
        }
    }

    #[cfg(test)]
    fn lower_bound(index: usize) -> Nanos {
        let group = index / SUB;
        let m = (index % SUB) as u64;
        if group == 0 {
            m
        } else {
            (SUB as u64 + m) << (group - 1)
        }
    }

    /// Records one value.
    pub fn record(&mut self, v: Nanos) {
        let i = Self::index(v);
        self.counts[i] += 1;
        self.mins[i] = self.mins[i].min(v);
        self.total += 1;
        self.max = self.max.max(v);
        self.min = self.min.min(v);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value, exactly.
    pub fn max(&self) -> Option<Nanos> {
        (self.total > 0).then_some(self.max)
    }

    /// The distribution as steps: for each sub-bucket holding values, in
    /// increasing order, the smallest value recorded in it and how many
    /// values are at most the sub-bucket's top (its count and all below).
    /// So `count / self.count()` is the empirical CDF just after the
    /// value, to the histogram's precision (1/1024).
    pub fn steps(&self) -> Vec<(Nanos, u64)> {
        let mut seen = 0;
        let mut out = Vec::new();
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                seen += c;
                out.push((self.mins[i], seen));
            }
        }
        out
    }

    /// The `q` quantile (0 < q <= 1): the smallest recorded value in the
    /// sub-bucket holding the `ceil(q · n)`-th smallest value.
    pub fn quantile(&self, q: f64) -> Option<Nanos> {
        if self.total == 0 {
            return None;
        }
        let rank = rank(q, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(self.mins[i]);
            }
        }
        Some(self.max)
    }
}

/// The 1-based rank of the `q` quantile of `n` values: `ceil(q · n)`,
/// within `1..=n`. The quantile is the value of that rank in sorted order.
fn rank(q: f64, n: u64) -> u64 {
    ((q * n as f64).ceil() as u64).clamp(1, n)
}

/// How many latencies [`Latencies`] keeps for exact quantiles (8 MiB).
pub const EXACT_LATENCIES: usize = 1 << 20;

/// Time-to-success values: every one while there are at most
/// [`EXACT_LATENCIES`] (exact quantiles), then a [`Histogram`] of them all
/// (quantiles at most 1/1024 below the exact ones). Memory is bounded either
/// way: up to 8 MiB of values, or the histogram's fixed 900 KiB.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    /// Every value recorded, until there are too many.
    values: Vec<Nanos>,
    /// All values, once there were too many to keep.
    histogram: Option<Box<Histogram>>,
}

impl Latencies {
    /// Values recorded.
    pub fn count(&self) -> u64 {
        match &self.histogram {
            Some(h) => h.count(),
            None => self.values.len() as u64,
        }
    }

    /// The values as a [`Histogram`] (charts draw its steps as a CDF).
    pub fn histogram(&self) -> Histogram {
        match &self.histogram {
            Some(h) => (**h).clone(),
            None => {
                let mut h = Histogram::default();
                for &v in &self.values {
                    h.record(v);
                }
                h
            }
        }
    }

    /// Records one value.
    pub fn record(&mut self, v: Nanos) {
        match &mut self.histogram {
            Some(h) => h.record(v),
            None if self.values.len() < EXACT_LATENCIES => self.values.push(v),
            None => {
                let mut h = Box::<Histogram>::default();
                for &kept in &self.values {
                    h.record(kept);
                }
                h.record(v);
                self.values = Vec::new();
                self.histogram = Some(h);
            }
        }
    }

    /// The quantiles: exact from the values kept, else from the histogram.
    pub fn summary(mut self) -> Latency {
        if let Some(h) = &self.histogram {
            return Latency {
                p50_ns: h.quantile(0.5),
                p90_ns: h.quantile(0.9),
                p99_ns: h.quantile(0.99),
                max_ns: h.max(),
                exact: false,
            };
        }
        let n = self.values.len() as u64;
        if n == 0 {
            return Latency { exact: true, ..Latency::default() };
        }
        // Increasing ranks: each selection looks only above the previous.
        let mut quantiles = [0; 3];
        let mut from = 0;
        for (out, q) in quantiles.iter_mut().zip([0.5, 0.9, 0.99]) {
            let r = rank(q, n) as usize - 1;
            let (_, &mut v, _) = self.values[from..].select_nth_unstable(r - from);
            *out = v;
            from = r;
        }
        let max = self.values[from..].iter().copied().max();
        Latency {
            p50_ns: Some(quantiles[0]),
            p90_ns: Some(quantiles[1]),
            p99_ns: Some(quantiles[2]),
            max_ns: max,
            exact: true,
        }
    }
}

/// Time-to-success quantiles in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_ns: Option<Nanos>,
    /// 90th percentile.
    pub p90_ns: Option<Nanos>,
    /// 99th percentile.
    pub p99_ns: Option<Nanos>,
    /// Maximum (always exact).
    pub max_ns: Option<Nanos>,
    /// Whether the quantiles are exact: the value of rank `ceil(q · n)`
    /// among the `n` successes (true up to [`EXACT_LATENCIES`] successes).
    /// Otherwise each is the smallest value recorded in its histogram
    /// sub-bucket: one that occurred, at most 1/1024 (0.1%) below the exact
    /// quantile, never above.
    pub exact: bool,
}

impl Latency {
    /// Quantiles of `h` (not exact).
    pub fn of(h: &Histogram) -> Latency {
        Latency {
            p50_ns: h.quantile(0.5),
            p90_ns: h.quantile(0.9),
            p99_ns: h.quantile(0.99),
            max_ns: h.max(),
            exact: false,
        }
    }
}

/// Admissions that waited on the server (nginx `limit_req` without
/// `nodelay`): how many, and how long they waited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delays {
    /// Admitted attempts held before being served.
    pub attempts: u64,
    /// Quantiles of those waits.
    pub wait: Latency,
}

/// A key and its denial count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDenials {
    /// The API key.
    pub key: String,
    /// Attempts denied.
    pub denied: u64,
    /// Attempts sent.
    pub attempts: u64,
}

/// Totals of a run and the ratios a planner reads. (`Deserialize` reads
/// back a results file: `ratesim sweep merge`.)
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Requests (trace rows).
    pub requests: u64,
    /// Items carried by the requests (more than `requests` when batching).
    pub items: u64,
    /// Items carried by requests that succeeded.
    pub items_delivered: u64,
    /// Attempts sent (including retries and polls).
    pub attempts: u64,
    /// Retries sent.
    pub retries: u64,
    /// Polls sent.
    pub polls: u64,
    /// Attempts admitted.
    pub admitted: u64,
    /// Attempts denied, by HTTP status.
    pub denied_by_status: BTreeMap<u16, u64>,
    /// Attempts denied, by limit id.
    pub denied_by_limit: BTreeMap<String, u64>,
    /// Attempts held back by the client itself.
    pub throttled: u64,
    /// Requests that eventually succeeded.
    pub successes: u64,
    /// Requests that gave up.
    pub give_ups: u64,
    /// Requests still unresolved when the trace ended (none after a full drain).
    pub unresolved: u64,
    /// First attempts denied.
    pub first_attempt_denied: u64,
    /// successes / requests.
    pub success_ratio: f64,
    /// first attempts denied / requests.
    pub first_attempt_denial_rate: f64,
    /// 429 denials / attempts.
    pub rate_429: f64,
    /// (first attempts + retries) / requests: what retries add to the
    /// traffic; 1 when nothing is retried. Polls are not counted (see
    /// `polls_per_request`).
    pub retry_amplification: f64,
    /// polls / requests: the polling load of asynchronous jobs.
    pub polls_per_request: f64,
    /// give-ups / requests.
    pub give_up_ratio: f64,
    /// Time from a request's arrival to its admitted attempt (for a polled
    /// job, to the admitted poll that finds it done), backoff and client-side
    /// waits included, and the server-side wait of a delayed admission; the
    /// service time of the admitted attempt is not.
    pub time_to_success: Latency,
    /// Delayed admissions, for a plan whose limits can delay (nginx
    /// `limit_req`); absent otherwise (and then not in `summary.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delayed: Option<Delays>,
    /// Most requests in flight at once.
    pub peak_in_flight: u64,
    /// Most requests outstanding at once: in service, waiting to retry,
    /// polling, or queued by the client. The simulator's memory for
    /// requests is proportional to this, not to the trace length.
    pub peak_outstanding: u64,
    /// Most attempts in one time bucket (the height of a retry wave).
    pub peak_bucket_attempts: u64,
    /// Money settled, minor units. A `u128`: the sum of any number of `u64`
    /// amounts a run can settle never wraps.
    pub spend: u128,
    /// Tokens settled (`u128`, as `spend`).
    pub tokens: u128,
    /// Largest budget settle overshoot seen.
    pub max_budget_overshoot: u64,
    /// Keys with the most denials (most first, then by name).
    pub top_denied_keys: Vec<KeyDenials>,
    /// Virtual time from the trace start to the last event, ns.
    pub duration_ns: Nanos,
}

impl Summary {
    /// The summary as a JSON value, to read fields by name. Never fails: a
    /// total beyond `u64::MAX` (`tokens`, `spend`), which a JSON value can
    /// hold only as a float, becomes the nearest `f64` (`summary.json`
    /// itself keeps every digit).
    pub fn to_json_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|_| {
            // Only a u128 total out of u64 range fails above; as text it is
            // digits, which parse back as a float.
            let text = serde_json::to_string(self).unwrap_or_default();
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
        })
    }
}

/// Ratio with 0/0 = 0.
pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_tight() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1_000);
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!((49_950_000..=50_000_000).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99).unwrap();
        assert!((98_900_000..=99_000_000).contains(&p99), "{p99}");
        assert_eq!(h.max(), Some(100_000_000));
        let top = h.quantile(1.0).unwrap();
        assert!((99_900_000..=100_000_000).contains(&top), "{top}");
        let mut ones = Histogram::default();
        for _ in 0..10 {
            ones.record(1_000_000_000);
        }
        assert_eq!(ones.quantile(0.5), Some(1_000_000_000));
        let mut small = Histogram::default();
        for v in [3, 3, 7] {
            small.record(v);
        }
        assert_eq!(small.quantile(0.5), Some(3));
        assert_eq!(small.quantile(1.0), Some(7));
    }

    /// Issue 9, point 10: quantiles were up to 0.1% off (from the
    /// histogram) even for a handful of successes. They are exact now while
    /// every latency is kept, and the histogram's beyond, flagged as such.
    #[test]
    fn latencies_are_exact_while_kept() {
        let exact = |values: &[u64], q: f64| {
            let mut sorted = values.to_vec();
            sorted.sort_unstable();
            sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
        };
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for n in [1usize, 2, 3, 10, 99, 100, 101, 1_000, 54_321] {
            let mut values = Vec::new();
            let mut l = Latencies::default();
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Repeats and near neighbours, as waits of whole seconds give.
                let v = if x % 3 == 0 { 1_000_000_000 } else { 1_000_000_000 + x % 5_000_000 };
                values.push(v);
                l.record(v);
            }
            let s = l.summary();
            assert!(s.exact);
            assert_eq!(s.p50_ns, Some(exact(&values, 0.5)), "n = {n}");
            assert_eq!(s.p90_ns, Some(exact(&values, 0.9)), "n = {n}");
            assert_eq!(s.p99_ns, Some(exact(&values, 0.99)), "n = {n}");
            assert_eq!(s.max_ns, values.iter().copied().max());
        }
        // 1..=100,000 µs: the histogram's median is 49.95 ms, the exact 50 ms.
        let mut l = Latencies::default();
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            l.record(v * 1_000);
            h.record(v * 1_000);
        }
        assert!(h.quantile(0.5) < Some(50_000_000));
        let s = l.summary();
        assert_eq!(
            (s.p50_ns, s.p90_ns, s.p99_ns, s.max_ns),
            (Some(50_000_000), Some(90_000_000), Some(99_000_000), Some(100_000_000))
        );
        assert_eq!(Latencies::default().summary(), Latency { exact: true, ..Latency::default() });
    }

    #[test]
    fn latencies_beyond_the_cap_come_from_the_histogram() {
        let n = EXACT_LATENCIES as u64 + 1;
        let mut l = Latencies::default();
        let mut h = Histogram::default();
        for v in 0..n {
            let v = v * 7_919 % n * 1_000 + 1;
            l.record(v);
            h.record(v);
        }
        assert!(l.values.is_empty(), "the kept values are released");
        assert_eq!(l.summary(), Latency { exact: false, ..Latency::of(&h) });
    }

    #[test]
    fn histogram_index_is_monotone() {
        let mut last = 0;
        for v in (0..5_000_000u64).step_by(997).chain([u64::MAX / 3, u64::MAX]) {
            let i = Histogram::index(v);
            assert!(i >= last);
            assert!(Histogram::lower_bound(i) <= v, "{v}");
            last = i;
        }
    }
}
