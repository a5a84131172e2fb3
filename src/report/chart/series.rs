//! The time series a chart draws, collected while the simulation runs.
//!
//! [`Coarse`] keeps at most [`MAX_POINTS`] points over a window of time
//! buckets: each point sums (or takes the extremes of) `factor`
//! consecutive buckets, and when the window needs more points than that,
//! neighbours are merged and `factor` doubles. Memory is bounded however
//! long the run, and a window (`--from`/`--to`) is collected at full
//! resolution up to that bound, since buckets outside it are never kept.
//!
//! [`RunSeries`] is the run's series (a [`BucketSink`]); the headroom of one
//! key ([`super::headroom::Headroom`]) uses the same [`Coarse`] over the
//! decisions.

use crate::metrics::{Bucket, BucketSink, Latencies};
use crate::time::Nanos;

/// Most points a series keeps while collecting.
pub const MAX_POINTS: usize = 2048;

/// A point that can absorb the next one.
pub trait Merge: Clone + Default {
    /// Adds `later`, which covers the buckets right after `self`'s.
    fn merge(&mut self, later: &Self);
}

/// Points over a window of buckets, merged as needed (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Coarse<P> {
    /// Bucket width, ns.
    pub bucket: Nanos,
    /// First bucket of the window.
    pub from: u64,
    /// Bucket after the window's last (`u64::MAX`: open).
    pub to: u64,
    /// Buckets per point (a power of two).
    pub factor: u64,
    /// The points, the first starting at bucket `from`.
    pub points: Vec<P>,
    /// One past the last bucket seen in the window.
    pub end: u64,
}

impl<P: Merge> Coarse<P> {
    /// Points over buckets `from..to` of width `bucket`.
    pub fn new(bucket: Nanos, from: u64, to: u64) -> Coarse<P> {
        Coarse { bucket, from, to, factor: 1, points: Vec::new(), end: from }
    }

    /// The point holding bucket `index`, if it is in the window.
    pub fn at(&mut self, index: u64) -> Option<&mut P> {
        if index < self.from || index >= self.to {
            return None;
        }
        let rel = index - self.from;
        while rel / self.factor >= MAX_POINTS as u64 {
            self.coarsen();
        }
        let slot = (rel / self.factor) as usize;
        if self.points.len() <= slot {
            self.points.resize(slot + 1, P::default());
        }
        self.end = self.end.max(index + 1);
        Some(&mut self.points[slot])
    }

    /// Marks buckets up to `index` (exclusive) as seen, in the window.
    pub fn reach(&mut self, index: u64) {
        let index = index.min(self.to);
        if index > self.end {
            let _ = self.at(index - 1);
        }
    }

    fn coarsen(&mut self) {
        let mut merged = Vec::with_capacity(self.points.len() / 2 + 1);
        for pair in self.points.chunks(2) {
            let mut p = pair[0].clone();
            if let Some(q) = pair.get(1) {
                p.merge(q);
            }
            merged.push(p);
        }
        self.points = merged;
        self.factor *= 2;
    }

    /// This series merged down to at most `max` points.
    pub fn coarsened(&self, max: usize) -> Coarse<P> {
        let mut c = self.clone();
        while c.points.len() > max {
            c.coarsen();
        }
        c
    }

    /// Width of a point, ns.
    pub fn width(&self) -> Nanos {
        self.bucket.saturating_mul(self.factor)
    }

    /// Start of point `i`, seconds since the trace start.
    pub fn x(&self, i: usize) -> f64 {
        (self.from + i as u64 * self.factor) as f64 * self.bucket as f64 / 1e9
    }

    /// Buckets point `i` covers (the last may be cut short by the run's end).
    pub fn buckets_in(&self, i: usize) -> u64 {
        let start = self.from + i as u64 * self.factor;
        self.end.saturating_sub(start).min(self.factor).max(1)
    }

    /// The window drawn: from the first bucket to the end of the last seen,
    /// seconds since the trace start.
    pub fn span(&self) -> (f64, f64) {
        let to = self.end.max(self.from + 1);
        (self.from as f64 * self.bucket as f64 / 1e9, to as f64 * self.bucket as f64 / 1e9)
    }
}

/// The run's counters over one point.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunPoint {
    /// New requests.
    pub requests: u64,
    /// Attempts (first attempts, retries, polls).
    pub attempts: u64,
    /// Retries.
    pub retries: u64,
    /// Polls.
    pub polls: u64,
    /// Admitted attempts.
    pub admitted: u64,
    /// Admitted after a server-side delay.
    pub delayed: u64,
    /// Denials by status: 429, 402, 503, other.
    pub denied: [u64; 4],
    /// Attempts the client held back.
    pub throttled: u64,
    /// Requests that gave up.
    pub give_ups: u64,
    /// Requests that succeeded.
    pub successes: u64,
    /// Sum of their times to success, ns.
    pub tts_sum_ns: u128,
    /// The longest of them, ns.
    pub tts_max_ns: Nanos,
    /// Most requests in flight at a bucket end.
    pub in_flight_max: u64,
    /// Most requests outstanding at a bucket end.
    pub outstanding_max: u64,
    /// Denials per limit, in plan order.
    pub denied_by_limit: Vec<u64>,
    /// Attempts in the busiest single bucket.
    pub peak_attempts: u64,
}

impl Merge for RunPoint {
    fn merge(&mut self, b: &RunPoint) {
        self.requests += b.requests;
        self.attempts += b.attempts;
        self.retries += b.retries;
        self.polls += b.polls;
        self.admitted += b.admitted;
        self.delayed += b.delayed;
        for (a, b) in self.denied.iter_mut().zip(b.denied) {
            *a += b;
        }
        self.throttled += b.throttled;
        self.give_ups += b.give_ups;
        self.successes += b.successes;
        self.tts_sum_ns += b.tts_sum_ns;
        self.tts_max_ns = self.tts_max_ns.max(b.tts_max_ns);
        self.in_flight_max = self.in_flight_max.max(b.in_flight_max);
        self.outstanding_max = self.outstanding_max.max(b.outstanding_max);
        if self.denied_by_limit.len() < b.denied_by_limit.len() {
            self.denied_by_limit.resize(b.denied_by_limit.len(), 0);
        }
        for (a, b) in self.denied_by_limit.iter_mut().zip(&b.denied_by_limit) {
            *a += b;
        }
        self.peak_attempts = self.peak_attempts.max(b.peak_attempts);
    }
}

impl RunPoint {
    /// First attempts: attempts that are neither retries nor polls.
    pub fn first_attempts(&self) -> u64 {
        self.attempts - self.retries - self.polls
    }

    /// All denials.
    pub fn denials(&self) -> u64 {
        self.denied.iter().sum()
    }
}

/// The statuses [`RunPoint::denied`] counts, in order (0: any other).
pub const STATUSES: [u16; 4] = [429, 402, 503, 0];

/// The run's time series and time-to-success distribution, collected as a
/// [`BucketSink`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunSeries {
    /// The points.
    pub coarse: Coarse<RunPoint>,
    /// The time-to-success distribution: smallest value and cumulative
    /// count per histogram step (see [`crate::metrics::Histogram::steps`]).
    pub time_to_success: Vec<(Nanos, u64)>,
}

impl RunSeries {
    /// A series of buckets `bucket` ns wide, keeping those that start in
    /// `[from_ns, to_ns)` after the trace start.
    pub fn new(bucket: Nanos, from_ns: Nanos, to_ns: Option<Nanos>) -> RunSeries {
        let from = from_ns / bucket;
        let to = to_ns.map_or(u64::MAX, |t| t.div_ceil(bucket).max(from + 1));
        RunSeries { coarse: Coarse::new(bucket, from, to), time_to_success: Vec::new() }
    }
}

impl BucketSink for RunSeries {
    fn bucket(&mut self, b: &Bucket) -> std::io::Result<()> {
        let index = b.start_ns / self.coarse.bucket;
        let Some(p) = self.coarse.at(index) else { return Ok(()) };
        p.merge(&RunPoint {
            requests: b.requests,
            attempts: b.attempts,
            retries: b.retries,
            polls: b.polls,
            admitted: b.admitted,
            delayed: b.delayed,
            denied: [b.denied_429, b.denied_402, b.denied_503, b.denied_other],
            throttled: b.throttled,
            give_ups: b.give_ups,
            successes: b.successes,
            tts_sum_ns: b.time_to_success_sum_ns,
            tts_max_ns: b.time_to_success_max_ns,
            in_flight_max: b.in_flight,
            outstanding_max: b.outstanding,
            denied_by_limit: b.denied_by_limit.clone(),
            peak_attempts: b.attempts,
        });
        Ok(())
    }

    fn time_to_success(&mut self, l: &Latencies) -> std::io::Result<()> {
        self.time_to_success = l.histogram().steps();
        Ok(())
    }

    /// A quiet stretch adds no counts, only the levels it held (in flight,
    /// outstanding): merged once into each point it covers, so a stretch
    /// costs one step per point, not per bucket.
    fn idle(&mut self, first: &Bucket, count: u64, _width: Nanos) -> std::io::Result<()> {
        let quiet =
            RunPoint { in_flight_max: first.in_flight, outstanding_max: first.outstanding, ..RunPoint::default() };
        let start = first.start_ns / self.coarse.bucket;
        let end = start.saturating_add(count).min(self.coarse.to);
        let mut index = start.max(self.coarse.from);
        while index < end {
            if let Some(p) = self.coarse.at(index) {
                p.merge(&quiet);
            }
            // The first bucket of the next point (`at` may have coarsened).
            let rel = index - self.coarse.from;
            index = self.coarse.from.saturating_add((rel / self.coarse.factor + 1).saturating_mul(self.coarse.factor));
        }
        self.coarse.reach(end);
        Ok(())
    }
}

/// Sends each bucket to two sinks.
pub struct Tee<'a>(pub &'a mut dyn BucketSink, pub &'a mut dyn BucketSink);

impl BucketSink for Tee<'_> {
    fn bucket(&mut self, b: &Bucket) -> std::io::Result<()> {
        self.0.bucket(b)?;
        self.1.bucket(b)
    }

    fn time_to_success(&mut self, l: &Latencies) -> std::io::Result<()> {
        self.0.time_to_success(l)?;
        self.1.time_to_success(l)
    }

    fn idle(&mut self, first: &Bucket, count: u64, width: Nanos) -> std::io::Result<()> {
        self.0.idle(first, count, width)?;
        self.1.idle(first, count, width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{MILLISECOND, SECOND};

    #[test]
    fn a_quiet_stretch_costs_one_step_per_point() {
        // A row, then 10^12 quiet 1 ms buckets (about 32 years) with 3
        // requests outstanding, then a row: walked bucket by bucket this
        // would not finish.
        let mut s = RunSeries::new(MILLISECOND, 0, None);
        s.bucket(&Bucket { start_ns: 0, requests: 1, attempts: 1, outstanding: 3, ..Bucket::default() }).unwrap();
        let quiet = Bucket { start_ns: MILLISECOND, outstanding: 3, ..Bucket::default() };
        let n = 1_000_000_000_000u64;
        s.idle(&quiet, n, MILLISECOND).unwrap();
        s.bucket(&Bucket { start_ns: (n + 1) * MILLISECOND, requests: 1, attempts: 1, ..Bucket::default() }).unwrap();
        let c = &s.coarse;
        assert!(c.points.len() <= MAX_POINTS && c.points.len() > MAX_POINTS / 2, "{}", c.points.len());
        assert_eq!(c.end, n + 2);
        assert_eq!(c.points.iter().map(|p| p.requests).sum::<u64>(), 2);
        // Every point the stretch covers held its 3 outstanding requests.
        assert!(
            c.points.iter().all(|p| p.outstanding_max == 3),
            "{:?}",
            c.points.iter().map(|p| p.outstanding_max).collect::<Vec<_>>()
        );
    }

    #[test]
    fn downsampling_keeps_totals_and_bounds_points() {
        let mut s = RunSeries::new(SECOND, 0, None);
        let n = 10_000u64;
        for i in 0..n {
            s.bucket(&Bucket { start_ns: i * SECOND, attempts: i % 7, requests: 1, ..Bucket::default() }).unwrap();
        }
        let c = &s.coarse;
        assert!(c.points.len() <= MAX_POINTS);
        assert_eq!(c.points.iter().map(|p| p.requests).sum::<u64>(), n);
        assert_eq!(c.points.iter().map(|p| p.attempts).sum::<u64>(), (0..n).map(|i| i % 7).sum::<u64>());
        assert_eq!(c.factor, 8);
        assert!(c.points.iter().all(|p| p.peak_attempts <= 6));
        assert_eq!(c.end, n);
        // The last point covers the 10,000 - 1,250 × 8 = 0... buckets left.
        assert_eq!(c.buckets_in(c.points.len() - 1), n - (c.points.len() as u64 - 1) * 8);
    }

    #[test]
    fn a_window_keeps_only_its_buckets_at_full_resolution() {
        // A month of 1 s buckets; the window is 3 hours from day 10.
        let from = 10 * 86_400 * SECOND;
        let mut s = RunSeries::new(SECOND, from, Some(from + 3 * 3_600 * SECOND));
        for i in 0..31 * 86_400u64 {
            s.bucket(&Bucket { start_ns: i * SECOND, requests: u64::from(i % 7 == 0), ..Bucket::default() }).unwrap();
        }
        let c = &s.coarse;
        assert_eq!(c.factor, 8, "10,800 buckets in 2,048 points");
        assert_eq!(
            c.points.iter().map(|p| p.requests).sum::<u64>(),
            (10 * 86_400..10 * 86_400 + 10_800).filter(|i| i % 7 == 0).count() as u64
        );
        assert_eq!(c.span(), (864_000.0, 864_000.0 + 10_800.0));
    }
}
