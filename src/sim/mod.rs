//! The discrete-event simulator: a trace and a client behaviour against a
//! plan, on a virtual clock.
//!
//! The simulator runs the production engines through the same
//! [`Plan::check`] as [`crate::limiter::KeyedLimiter`]; only the clock (an
//! integer the event loop advances) and the state store (dense vectors
//! indexed by interned identities) differ.
//!
//! ## Event order
//!
//! Events are processed in order of `(time, class, sequence)`:
//!
//! 1. **class 0 — completions**: a request's service time ended; its
//!    concurrency permits are released and its budgets settled. Releases at
//!    an instant happen before any admission at that instant.
//! 2. **class 1 — timers**: retries, job status polls and paced sends, in
//!    the order they were scheduled.
//! 3. **class 2 — arrivals**: new trace rows, in file order.
//!
//! Trace rows are read lazily and merged with the event queue, so the queue
//! holds only outstanding timers and completions, never the trace.
//!
//! ## Delayed admissions
//!
//! A limit may admit a request after a server-side wait (nginx `limit_req`
//! without `nodelay`: [`PlanDecision::delay`]). The limits count the
//! request when it is decided, as nginx does; the request then occupies the
//! server for its wait and its service time (it is in flight, holds its
//! concurrency permits and the client's semaphore slot, and completes at
//! `decided + wait + duration`); the client gets its answer after the wait,
//! so time to success includes it, and a polled job starts then.
//!
//! ## Time
//!
//! Virtual time is nanoseconds since the Unix epoch, so calendar budgets and
//! Unix-timestamp headers are real. A trace with offsets starts at
//! [`SimConfig::start`] (default 2026-01-01T00:00:00Z); a trace with RFC 3339
//! times uses them as they are, and starts at its first row.
//!
//! ## Randomness
//!
//! Each client (an API key) draws from its own ChaCha8 stream:
//! `ChaCha8Rng::seed_from_u64(seed)` with stream number = 2^63 + the key's
//! index in order of first appearance (the top bit keeps these streams apart
//! from a synthetic trace's, which share the seed). Same trace, seed and
//! client: byte-identical results, whatever else runs in parallel.

mod client_state;
mod decisions;
mod intern;
mod queue;
mod store;
pub mod sweep;
#[cfg(test)]
mod tests;

use rand::Rng;

use crate::client::cubic::Cubic;
use crate::client::{ClientSpec, Pacing, Response, RetryChoice};
use crate::engines::{Engine, Gcra, SlidingLog};
use crate::metrics::{ratio, Bucket, BucketSink, Delays, KeyDenials, Latencies, Summary};
use crate::policy::{retry_headers, Plan, PlanDecision, Policy, Request, RetryHeaders, Tickets};
use crate::time::{format_decimal_seconds, format_rfc3339, Nanos, Rate, SECOND};
use crate::trace::{TraceError, TraceRow, TraceSource, TraceTime};

use client_state::{client_of, rng_of, ClientState};
pub use decisions::{
    AttemptKind, DecisionFigures, DecisionRecord, DecisionSink, JsonlDecisions, NoDecisions, RequestFacts, TeeDecisions,
};
use intern::{named, own_identity, Interner};
use queue::EventQueue;
pub use store::SimStore;

/// 2026-01-01T00:00:00Z, the default virtual start.
pub const DEFAULT_START: Nanos = 1_767_225_600 * SECOND;

/// How a simulation runs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Virtual instant of trace offset 0.
    pub start: Nanos,
    /// Seed of every client's random stream.
    pub seed: u64,
    /// Width of a time-series bucket.
    pub bucket: Nanos,
    /// How clients behave.
    pub client: ClientSpec,
    /// How many keys the summary lists by denials.
    pub top_keys: usize,
    /// Stop at this much virtual time after the trace start: rows and events
    /// after it are not processed, and requests still waiting (a client
    /// told to come back next month) are counted as unresolved. `None`
    /// drains every retry, poll and completion.
    pub until: Option<Nanos>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            start: DEFAULT_START,
            seed: 0,
            bucket: SECOND,
            client: ClientSpec::none(),
            top_keys: 10,
            until: None,
        }
    }
}

/// Why a simulation stopped early.
#[derive(Debug)]
pub enum SimError {
    /// The trace could not be read.
    Trace(TraceError),
    /// The trace has no rows: there is nothing to simulate (and no start).
    /// [`TraceError::no_rows`] says so about a named file.
    EmptyTrace,
    /// An event would happen at or after [`Nanos::MAX`]
    /// (2554-07-21T23:34:33.709551615Z), past the last instant a `u64` of
    /// nanoseconds since 1970 holds; the text says which. Without
    /// [`SimConfig::until`] this ends the run; with it, such an event is
    /// never reached and its request ends unresolved.
    TimeOverflow(String),
    /// An output could not be written.
    Io(std::io::Error),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::Trace(e) => write!(f, "{e}"),
            SimError::EmptyTrace => write!(f, "the trace has no rows: there is nothing to simulate"),
            SimError::TimeOverflow(what) => write!(
                f,
                "virtual time would reach {}, the last instant ratesim can represent (u64 nanoseconds since \
                 1970): {what}; stop the run before it with --until (requests still waiting then count as unresolved)",
                format_rfc3339(Nanos::MAX)
            ),
            SimError::Io(e) => write!(f, "cannot write output: {e}"),
        }
    }
}

impl std::error::Error for SimError {}

impl SimError {
    /// The message, naming `trace` where the error is about the trace as a
    /// whole (no rows: [`TraceError::no_rows`]).
    pub fn about_trace(self, trace: &std::path::Path) -> String {
        match self {
            SimError::EmptyTrace => TraceError::no_rows(trace).to_string(),
            e => e.to_string(),
        }
    }
}

impl From<TraceError> for SimError {
    fn from(e: TraceError) -> Self {
        SimError::Trace(e)
    }
}

impl From<std::io::Error> for SimError {
    fn from(e: std::io::Error) -> Self {
        SimError::Io(e)
    }
}

/// The facts of a request, copied freely.
#[derive(Clone, Copy, Debug, Default)]
struct ReqInfo {
    index: u64,
    arrival: Nanos,
    key: u32,
    user: u32,
    workspace: u32,
    endpoint: u32,
    poll_endpoint: u32,
    auth: bool,
    tokens: u64,
    money: u64,
    duration: Nanos,
    poll_every: Nanos,
    items: u32,
}

/// A request that still has something pending.
#[derive(Clone, Debug, Default)]
struct Live {
    info: ReqInfo,
    attempt: u32,
    prev_delay: Nanos,
    tickets: Tickets,
    /// Job done at (polling jobs), once admitted.
    job_done: Option<Nanos>,
    /// Events outstanding that name this slot.
    pending: u8,
    /// Resolved (success or give-up) — the slot is freed when nothing is pending.
    resolved: bool,
    /// Holds a client-semaphore slot.
    holds_client_slot: bool,
    /// What its last retry took from the client's retry quota (0: none).
    quota_cost: u32,
}

/// The policy's view of a request (a poll carries no tokens or money).
fn request_of<'a>(keys: &'a Interner, endpoints: &'a Interner, info: &ReqInfo, poll: bool) -> Request<'a> {
    Request {
        key: keys.names[info.key as usize].as_str(),
        user: None,
        workspace: None,
        endpoint: endpoints.names[if poll { info.poll_endpoint } else { info.endpoint } as usize].as_str(),
        authenticated: info.auth,
        tokens: if poll { 0 } else { info.tokens },
        money: if poll { 0 } else { info.money },
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EventKind {
    Complete,
    Retry,
    Poll,
    /// A send let through by the client's semaphore (`pace=semaphore`).
    Send,
    /// The head of a client's pace queue: its own limiter admits a send now.
    PacedSend,
}

/// A pending event, ordered by (time, class, sequence) in the [`EventQueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Event {
    time: Nanos,
    order: u64,
    slot: u32,
    kind: EventKind,
}

impl queue::Keyed for Event {
    #[inline]
    fn key(&self) -> (u64, u64) {
        (self.time, self.order)
    }
}

const CLASS_SHIFT: u32 = 62;

/// The instant a trace starts, given its first row's time: `start` (the
/// instant of offset 0, [`SimConfig::start`]) for a trace of offsets, the
/// row's own instant for a trace of RFC 3339 times. Reports (duration,
/// decision and bucket times) count from it.
pub fn trace_start(first_row: TraceTime, start: Nanos) -> Nanos {
    match first_row {
        TraceTime::Offset(_) => start,
        TraceTime::Absolute(a) => a,
    }
}

/// The refusal of a `--start` given (as `given`) with `trace`, whose first
/// row is at the RFC 3339 instant `first`: such a trace starts there, and
/// `--start` applies only to traces of offsets (`run`, `sweep`, `solve`).
pub fn start_refused(given: &str, trace: &std::path::Path, first: Nanos) -> String {
    format!(
        "--start {}: {} has RFC 3339 times, which are used as they are (it starts at its first row, {}); \
         --start applies only to traces of offsets: leave it out",
        given.trim(),
        trace.display(),
        format_rfc3339(first)
    )
}

/// How far a running simulation has come (for progress displays).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Virtual time since the trace start.
    pub elapsed: Nanos,
    /// Requests read so far.
    pub requests: u64,
    /// Attempts decided so far.
    pub attempts: u64,
}

/// Events between two progress reports.
const PROGRESS_EVERY: u64 = 1 << 16;

/// A simulation of one plan, one trace, one client behaviour.
pub struct Simulation<'p> {
    progress: Option<Box<dyn FnMut(Progress) + 'p>>,
    policy: &'p Policy,
    plan: &'p Plan,
    config: SimConfig,
    /// The client-side rate limiter (sliding window or token bucket), if any.
    pace_engine: Option<Engine>,
    store: SimStore,
    keys: Interner,
    users: Interner,
    /// Per key id, its id among users (workspaces) when a row names none.
    key_as_user: Vec<u32>,
    key_as_workspace: Vec<u32>,
    workspaces: Interner,
    endpoints: Interner,
    clients: Vec<ClientState>,
    slots: Vec<Live>,
    free: Vec<u32>,
    heap: EventQueue<Event>,
    /// The decision of the attempt being handled (reused: see `Plan::check_into`).
    decision: PlanDecision,
    /// Whether the decision sink keeps decisions (asked once per run).
    recording: bool,
    /// Whether the client reads retry headers (asked once).
    reads_headers: bool,
    seq: u64,
    /// Steps of the event loop so far: one per trace row and per queued event.
    steps: u64,
    /// Decisions asked of the client's own limiter (`pace`) so far.
    pace_checks: u64,
    origin: Option<Nanos>,
    now: Nanos,
    // metrics
    bucket: Bucket,
    bucket_index: u64,
    /// When the current bucket ends (0: not known yet).
    next_bucket_at: Nanos,
    in_flight: u64,
    summary: Summary,
    latency: Latencies,
    /// Whether the plan can delay admissions (then delays are measured and
    /// written), and the waits of the delayed ones.
    can_delay: bool,
    delays: Latencies,
    denied_by_limit: Vec<u64>,
    /// Denials per status, in first-seen order (a handful of statuses: a
    /// list is faster than a map).
    denied_by_status: Vec<(u16, u64)>,
}

impl<'p> Simulation<'p> {
    /// A simulation of `plan` (of `policy`).
    pub fn new(policy: &'p Policy, plan: &'p Plan, config: SimConfig) -> Simulation<'p> {
        let n = plan.limits.len();
        let mut endpoints = Interner::default();
        endpoints.id(""); // id 0: no endpoint
        let pace_engine = match config.client.pacing {
            Some(Pacing::SlidingWindow { limit, period }) => SlidingLog::new(limit, period).map(Engine::SlidingLog),
            Some(Pacing::TokenBucket { count, period, burst }) => {
                Rate::new(count, period).and_then(|r| Gcra::new(r, burst)).map(Engine::Gcra)
            }
            _ => None,
        };
        Simulation {
            progress: None,
            policy,
            plan,
            pace_engine,
            store: SimStore::new(plan),
            keys: Interner::default(),
            users: Interner::default(),
            key_as_user: Vec::new(),
            key_as_workspace: Vec::new(),
            workspaces: Interner::default(),
            endpoints,
            clients: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            heap: EventQueue::new(),
            decision: PlanDecision::default(),
            recording: true,
            reads_headers: config.client.reads_retry_headers(),
            seq: 0,
            steps: 0,
            pace_checks: 0,
            origin: None,
            now: 0,
            bucket: Bucket { denied_by_limit: vec![0; n], ..Bucket::default() },
            bucket_index: 0,
            next_bucket_at: 0,
            in_flight: 0,
            summary: Summary::default(),
            latency: Latencies::default(),
            can_delay: plan.limits.iter().any(|l| l.engine.can_delay()),
            delays: Latencies::default(),
            denied_by_limit: vec![0; n],
            denied_by_status: Default::default(),
            config,
        }
    }

    /// Calls `report` every few tens of thousands of events while running.
    pub fn with_progress(mut self, report: impl FnMut(Progress) + 'p) -> Self {
        self.progress = Some(Box::new(report));
        self
    }

    /// Runs the whole trace, draining every retry, poll and completion.
    pub fn run(
        mut self,
        trace: &mut dyn TraceSource,
        buckets: &mut dyn BucketSink,
        decisions: &mut dyn DecisionSink,
    ) -> Result<Summary, SimError> {
        self.drive(trace, buckets, decisions)?;
        self.finish(buckets)
    }

    /// The event loop: rows and queued events in order, to the end.
    fn drive(
        &mut self,
        trace: &mut dyn TraceSource,
        buckets: &mut dyn BucketSink,
        decisions: &mut dyn DecisionSink,
    ) -> Result<(), SimError> {
        self.recording = decisions.enabled();
        let mut row = TraceRow::default();
        let mut have_row = trace.next_row(&mut row)?;
        if !have_row {
            return Err(SimError::EmptyTrace);
        }
        let mut row_time = self.absolute(row.t, 1)?;
        let mut last_row_time = row_time;
        loop {
            self.steps += 1;
            if self.steps % PROGRESS_EVERY == 0 {
                if let Some(report) = &mut self.progress {
                    let elapsed = self.now.saturating_sub(self.origin.unwrap_or(self.config.start));
                    report(Progress { elapsed, requests: self.summary.requests, attempts: self.summary.attempts });
                }
            }
            let next_event = self.heap.peek().map(|e| (e.time, e.order));
            if let Some(until) = self.config.until {
                let end = self.origin().saturating_add(until);
                have_row &= row_time < end;
                if next_event.is_some_and(|(t, _)| t >= end) && !have_row {
                    // Nothing left before the end: close the buckets up to it.
                    self.advance(end.max(self.now), buckets)?;
                    break;
                }
            }
            let take_row = match (have_row, next_event) {
                (false, None) => break,
                (true, None) => true,
                (false, Some(_)) => false,
                (true, Some((t, order))) => row_time < t || (row_time == t && (2u64 << CLASS_SHIFT) < order),
            };
            if take_row {
                self.advance(row_time, buckets)?;
                self.arrive(&row, decisions)?;
                have_row = trace.next_row(&mut row)?;
                if have_row {
                    row_time = self.absolute(row.t, self.summary.requests + 1)?;
                    if row_time < last_row_time {
                        return Err(SimError::Trace(TraceError {
                            file: String::new(),
                            line: row.line,
                            column: 0,
                            field: "t".into(),
                            message: "rows must be in time order".into(),
                        }));
                    }
                    last_row_time = row_time;
                }
            } else {
                let e = self.heap.pop().expect("peeked");
                self.advance(e.time, buckets)?;
                self.event(e, decisions)?;
            }
        }
        Ok(())
    }

    /// The instant of row number `n` (1-based), whose time is `t`.
    fn absolute(&mut self, t: TraceTime, n: u64) -> Result<Nanos, SimError> {
        if self.origin.is_none() {
            self.origin = Some(trace_start(t, self.config.start));
            self.next_bucket_at = 0;
        }
        match t {
            TraceTime::Offset(o) => self.instant(self.config.start, o, || {
                format!(
                    "trace row {n} is {} s after the start, {}",
                    format_decimal_seconds(o),
                    format_rfc3339(self.config.start)
                )
            }),
            TraceTime::Absolute(a) => Ok(a),
        }
    }

    /// `from + wait`, if that is before [`Nanos::MAX`]. Past it: with
    /// `--until` (which ends the run before), `Nanos::MAX`, an instant never
    /// reached; without, [`SimError::TimeOverflow`] saying `what`.
    fn instant(&self, from: Nanos, wait: Nanos, what: impl FnOnce() -> String) -> Result<Nanos, SimError> {
        match from.checked_add(wait) {
            Some(t) if t < Nanos::MAX => Ok(t),
            _ if self.config.until.is_some() => Ok(Nanos::MAX),
            _ => Err(SimError::TimeOverflow(what())),
        }
    }

    /// `now + wait` for an event of request `slot` (see [`Self::instant`]);
    /// `what` names the event, e.g. "retry".
    fn later(&self, wait: Nanos, slot: u32, what: &str) -> Result<Nanos, SimError> {
        self.after(self.now, wait, slot, what)
    }

    /// `from + wait` for an event of request `slot`, as [`Self::later`].
    fn after(&self, from: Nanos, wait: Nanos, slot: u32, what: &str) -> Result<Nanos, SimError> {
        self.instant(from, wait, || {
            let info = &self.slots[slot as usize].info;
            format!(
                "request {} (key {}) would {what} {} s after {}",
                info.index,
                self.keys.names[info.key as usize].as_str(),
                format_decimal_seconds(wait),
                format_rfc3339(from)
            )
        })
    }

    fn origin(&self) -> Nanos {
        self.origin.unwrap_or(self.config.start)
    }

    /// Moves virtual time to `t`, closing the buckets it passes.
    fn advance(&mut self, t: Nanos, buckets: &mut dyn BucketSink) -> std::io::Result<()> {
        self.now = t;
        if t < self.next_bucket_at {
            return Ok(());
        }
        let idx = (t - self.origin()) / self.config.bucket;
        if self.bucket_index < idx {
            self.close_bucket(buckets)?;
        }
        if self.bucket_index < idx {
            // Nothing happened in the buckets up to `idx`: one call for all.
            let n = self.plan.limits.len();
            let quiet = Bucket {
                start_ns: self.bucket_index * self.config.bucket,
                in_flight: self.in_flight,
                outstanding: (self.slots.len() - self.free.len()) as u64,
                denied_by_limit: vec![0; n],
                ..Bucket::default()
            };
            buckets.idle(&quiet, idx - self.bucket_index, self.config.bucket)?;
            self.bucket_index = idx;
        }
        self.next_bucket_at = self.origin().saturating_add((self.bucket_index + 1).saturating_mul(self.config.bucket));
        Ok(())
    }

    fn close_bucket(&mut self, buckets: &mut dyn BucketSink) -> std::io::Result<()> {
        self.bucket.start_ns = self.bucket_index * self.config.bucket;
        self.bucket.in_flight = self.in_flight;
        // Slots are recycled once a request is settled: the live ones are
        // the outstanding requests.
        self.bucket.outstanding = (self.slots.len() - self.free.len()) as u64;
        self.summary.peak_bucket_attempts = self.summary.peak_bucket_attempts.max(self.bucket.attempts);
        buckets.bucket(&self.bucket)?;
        let n = self.plan.limits.len();
        self.bucket = Bucket { denied_by_limit: vec![0; n], ..Bucket::default() };
        self.bucket_index += 1;
        Ok(())
    }

    #[inline]
    fn schedule(&mut self, time: Nanos, kind: EventKind, slot: u32) {
        let class = if kind == EventKind::Complete { 0u64 } else { 1 };
        self.seq += 1;
        self.heap.push(Event { time, order: (class << CLASS_SHIFT) | self.seq, slot, kind });
        self.slots[slot as usize].pending += 1;
    }

    fn arrive(&mut self, row: &TraceRow, decisions: &mut dyn DecisionSink) -> Result<(), SimError> {
        let key = self.keys.id(&row.key);
        // A request without a user (workspace) is its key's own user (workspace).
        // Remembered per key, so such rows cost one lookup, not three.
        let user = if row.user.is_empty() {
            own_identity(&mut self.key_as_user, key, &mut self.users, &row.key)
        } else {
            self.users.id(&row.user)
        };
        let workspace = if row.workspace.is_empty() {
            own_identity(&mut self.key_as_workspace, key, &mut self.workspaces, &row.key)
        } else {
            self.workspaces.id(&row.workspace)
        };
        let endpoint = self.endpoints.id(&row.endpoint);
        let poll_endpoint = if row.poll_endpoint.is_empty() { 0 } else { self.endpoints.id(&row.poll_endpoint) };
        let info = ReqInfo {
            index: self.summary.requests,
            arrival: self.now,
            key,
            user,
            workspace,
            endpoint,
            poll_endpoint,
            auth: row.auth,
            tokens: row.tokens,
            money: row.cost,
            duration: row.duration,
            poll_every: row.poll_every,
            items: row.items,
        };
        let live = Live { info, ..Live::default() };
        self.summary.requests += 1;
        self.summary.items += row.items as u64;
        self.bucket.requests += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = live;
                s
            }
            None => {
                self.slots.push(live);
                (self.slots.len() - 1) as u32
            }
        };
        let c = client_of(&mut self.clients, key);
        c.roll(self.now);
        c.requests[1] += 1;
        self.send(slot, decisions)?;
        // Settled at once (admitted without service time, or given up): the
        // slot is free for the next row.
        self.maybe_free(slot);
        Ok(())
    }

    fn event(&mut self, e: Event, decisions: &mut dyn DecisionSink) -> Result<(), SimError> {
        self.slots[e.slot as usize].pending -= 1;
        match e.kind {
            EventKind::Complete => self.complete(e.slot),
            EventKind::Retry | EventKind::Send => self.send(e.slot, decisions)?,
            EventKind::PacedSend => self.paced_send(e.slot, decisions)?,
            EventKind::Poll => self.attempt(e.slot, AttemptKind::Poll, decisions)?,
        }
        self.maybe_free(e.slot);
        Ok(())
    }

    fn maybe_free(&mut self, slot: u32) {
        let l = &self.slots[slot as usize];
        if l.resolved && l.pending == 0 {
            self.free.push(slot);
        }
    }

    /// Sends the request's next attempt, unless the client's own limiter
    /// holds it back (then it is rescheduled or queued).
    fn send(&mut self, slot: u32, decisions: &mut dyn DecisionSink) -> Result<(), SimError> {
        let key = self.slots[slot as usize].info.key;
        let now = self.now;
        if let Some(Pacing::Semaphore { max }) = self.config.client.pacing {
            if !self.slots[slot as usize].holds_client_slot {
                let c = client_of(&mut self.clients, key);
                if c.in_flight >= max {
                    c.queue.push_back(slot);
                    self.slots[slot as usize].pending += 1;
                    return Ok(());
                }
                c.in_flight += 1;
                self.slots[slot as usize].holds_client_slot = true;
            }
        }
        if self.config.client.pacing == Some(Pacing::Cubic) && !self.cubic_admits(slot, key) {
            return Ok(());
        }
        if let Some(engine) = &self.pace_engine {
            let c = client_of(&mut self.clients, key);
            let state = &mut **c.pace.get_or_insert_with(|| Box::new(engine.new_state()));
            let (d, _) = engine.acquire(state, now, 1);
            self.pace_checks += 1;
            if !d.allowed {
                if c.pace_waiting {
                    // Another send waits for the limiter's next admission:
                    // this one queues behind it (see `paced_send`).
                    c.queue.push_back(slot);
                    self.slots[slot as usize].pending += 1;
                    return Ok(());
                }
                // Wait until the client's own limiter admits the send (an
                // engine's instant of Nanos::MAX stands for one beyond it).
                let wait = d.retry.at().map_or(SECOND, |t| t.saturating_sub(now).max(1));
                let at = self.later(wait, slot, "be sent by its client's own limiter (pace)")?;
                client_of(&mut self.clients, key).pace_waiting = true;
                self.schedule(at, EventKind::PacedSend, slot);
                return Ok(());
            }
        }
        let kind = if self.slots[slot as usize].attempt == 0 { AttemptKind::First } else { AttemptKind::Retry };
        self.attempt(slot, kind, decisions)
    }

    /// The send that waits for its client's own limiter (`pace`) reaches the
    /// instant the limiter admits a send: it goes, and so do the sends queued
    /// behind it, in order, while the limiter admits them at this instant;
    /// the first one refused waits for the next admission. Each queued send
    /// is asked about once when it queues and once when it reaches the
    /// head, not at every admission before (which made a queue of n cost
    /// n²/2 decisions).
    ///
    /// Same-instant order is as if every waiting send were an event at the
    /// limiter's next instant, rescheduled at each admission (how this
    /// worked before, in O(n) per admission): a send whose own timer falls
    /// at that instant and was scheduled before the head's (a retry after
    /// exactly one second, say) is decided first and may take the room; the
    /// head then waits for the next admission. Two rarer ties may differ:
    /// when two keys' limiters admit at the same nanosecond, their next
    /// heads wait in the order the keys' heads were decided (they used to
    /// wait in the order they last queued); and when a limiter admits
    /// several sends at one instant, the queued ones go together, before a
    /// retry timed for that instant after some of them queued.
    fn paced_send(&mut self, slot: u32, decisions: &mut dyn DecisionSink) -> Result<(), SimError> {
        let key = self.slots[slot as usize].info.key;
        client_of(&mut self.clients, key).pace_waiting = false;
        self.send(slot, decisions)?;
        loop {
            let c = client_of(&mut self.clients, key);
            if c.pace_waiting {
                return Ok(());
            }
            let Some(next) = c.queue.pop_front() else { return Ok(()) };
            self.slots[next as usize].pending -= 1;
            self.send(next, decisions)?;
            self.maybe_free(next);
        }
    }

    /// Whether AWS's adaptive limiter lets `slot` send now. Sends waiting
    /// for a token queue in order (the client's `queue`); only the first
    /// has a timer, set for when its token is due and checked again then
    /// (responses meanwhile may have changed the rate). So a backlog costs
    /// a few events per send, not one per waiting send per token.
    fn cubic_admits(&mut self, slot: u32, key: u32) -> bool {
        let now = self.now;
        let c = client_of(&mut self.clients, key);
        let first = c.queue.front().copied();
        if first.is_some_and(|f| f != slot) {
            c.queue.push_back(slot);
            self.slots[slot as usize].pending += 1;
            return false;
        }
        let cubic = c.cubic.get_or_insert_with(|| Box::new(Cubic::new(now)));
        if let Some(wait) = cubic.acquire(now) {
            if first.is_none() {
                c.queue.push_back(slot);
            }
            self.schedule(now.saturating_add(wait), EventKind::Send, slot);
            return false;
        }
        if first.is_some() {
            c.queue.pop_front();
            if let Some(&next) = c.queue.front() {
                // Its turn: it asks for its token now, after this send.
                self.slots[next as usize].pending -= 1;
                self.schedule(now, EventKind::Send, next);
            }
        }
        true
    }

    fn attempt(&mut self, slot: u32, kind: AttemptKind, decisions: &mut dyn DecisionSink) -> Result<(), SimError> {
        let now = self.now;
        let live = &mut self.slots[slot as usize];
        let attempt_no = live.attempt;
        live.attempt += 1;
        let (key, poll_every) = (live.info.key, live.info.poll_every);
        let poll = kind == AttemptKind::Poll;

        // Adaptive throttling: the client may reject locally.
        if let (Some(adaptive), false) = (&self.config.client.adaptive, poll) {
            let c = client_of(&mut self.clients, key);
            c.roll(now);
            let requests = (c.attempts[0] + c.attempts[1]) as f64;
            let accepts = (c.accepts[0] + c.accepts[1]) as f64;
            c.attempts[1] += 1;
            let p = ((requests - adaptive.k * accepts) / (requests + 1.0)).max(0.0);
            if p > 0.0 && rng_of(&mut self.clients, self.config.seed, key).random::<f64>() < p {
                self.summary.throttled += 1;
                self.bucket.throttled += 1;
                let response = Response { status: 429, code: "", headers: RetryHeaders::default(), now };
                return self.failed(slot, attempt_no, &response);
            }
        }

        self.summary.attempts += 1;
        self.bucket.attempts += 1;
        match kind {
            AttemptKind::Retry => {
                self.summary.retries += 1;
                self.bucket.retries += 1;
            }
            AttemptKind::Poll => {
                self.summary.polls += 1;
                self.bucket.polls += 1;
            }
            AttemptKind::First => {}
        }
        let info = &self.slots[slot as usize].info;
        self.store.set_identity(key, info.user, info.workspace);
        let request = request_of(&self.keys, &self.endpoints, info, poll);
        self.plan.check_into(&mut self.store, now, &request, &mut self.decision);
        if self.recording {
            self.record(&self.slots[slot as usize].info, attempt_no, kind, &self.decision, decisions)?;
        }
        let (allowed, status, denied_by) = (self.decision.allowed, self.decision.status, self.decision.denied_by);
        let code = denied_by.map_or("", |i| self.plan.limits[i].code.as_str());
        let client = &self.config.client;
        let c = client_of(&mut self.clients, key);
        c.sent += 1;
        if !poll {
            if let Some(cubic) = &mut c.cubic {
                cubic.on_response(now, !allowed && client.throttling.matches(status, code));
            }
        }
        if allowed {
            if let (Some(q), false) = (&client.retry_quota, poll) {
                let cost = std::mem::take(&mut self.slots[slot as usize].quota_cost);
                c.quota.get_or_insert_with(|| q.new_state()).succeeded(q, cost);
            }
            c.accepts[1] += 1;
            self.summary.admitted += 1;
            self.bucket.admitted += 1;
            let (tickets, delay) = (self.decision.tickets, self.decision.delay);
            if delay > 0 {
                self.bucket.delayed += 1;
                self.delays.record(delay);
            }
            return self.admitted(slot, kind, tickets, delay);
        }
        c.denied += 1;
        if attempt_no == 0 {
            self.summary.first_attempt_denied += 1;
        }
        match self.denied_by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.denied_by_status.push((status, 1)),
        }
        match status {
            429 => self.bucket.denied_429 += 1,
            402 => self.bucket.denied_402 += 1,
            503 => self.bucket.denied_503 += 1,
            _ => self.bucket.denied_other += 1,
        }
        if let Some(i) = denied_by {
            self.denied_by_limit[i] += 1;
            self.bucket.denied_by_limit[i] += 1;
        }
        if poll {
            // A denied poll: the client polls again next interval.
            let at = self.later(poll_every, slot, "poll its job")?;
            self.schedule(at, EventKind::Poll, slot);
            return Ok(());
        }
        // A client out of attempts, or one that reads no retry header, gets none.
        let headers = if self.reads_headers && attempt_no.saturating_add(1) < self.config.client.max_attempts {
            retry_headers(&self.policy.response, &self.decision, now)
        } else {
            RetryHeaders::default()
        };
        self.failed(slot, attempt_no, &Response { status, code, headers, now })
    }

    fn record(
        &self,
        info: &ReqInfo,
        attempt: u32,
        kind: AttemptKind,
        d: &PlanDecision,
        sink: &mut dyn DecisionSink,
    ) -> std::io::Result<()> {
        let origin = self.origin();
        let poll = kind == AttemptKind::Poll;
        let endpoint = if poll { info.poll_endpoint } else { info.endpoint };
        let f = DecisionFigures::of(self.plan, d, self.now, origin);
        sink.decision(&DecisionRecord {
            t_ns: self.now - origin,
            request: info.index,
            attempt,
            kind,
            key: self.keys.names[info.key as usize].as_str(),
            endpoint: self.endpoints.names[endpoint as usize].as_str(),
            allowed: f.allowed,
            status: f.status,
            limit: f.limit,
            remaining: f.remaining,
            reset_ns: f.reset_ns,
            retry_after_ns: f.retry_after_ns,
            delay_ns: f.delay_ns,
            at: self.now,
            decision: Some(d),
            facts: RequestFacts {
                user: named(&self.users, info.user, &self.keys, info.key),
                workspace: named(&self.workspaces, info.workspace, &self.keys, info.key),
                auth: info.auth,
                tokens: if poll { 0 } else { info.tokens },
                cost: if poll { 0 } else { info.money },
                duration_ns: if poll { 0 } else { info.duration },
            },
        })
    }

    /// An admitted attempt, served `delay` after now (see the module docs).
    fn admitted(&mut self, slot: u32, kind: AttemptKind, tickets: Tickets, delay: Nanos) -> Result<(), SimError> {
        let served = self.later(delay, slot, "be served (the server holds it)")?;
        let info = self.slots[slot as usize].info;
        if kind == AttemptKind::Poll {
            if self.slots[slot as usize].job_done.is_some_and(|done| served >= done) {
                self.succeed(slot, delay);
            } else {
                let at = self.after(served, info.poll_every, slot, "poll its job")?;
                self.schedule(at, EventKind::Poll, slot);
            }
            return Ok(());
        }
        self.slots[slot as usize].tickets = tickets;
        let done = self.after(served, info.duration, slot, "complete (its service time)")?;
        if info.duration > 0 || !tickets.is_empty() || delay > 0 {
            self.in_flight += 1;
            self.summary.peak_in_flight = self.summary.peak_in_flight.max(self.in_flight);
            self.schedule(done, EventKind::Complete, slot);
        } else {
            self.settle_amounts(&info);
            self.release_client_slot(slot);
        }
        if info.poll_every > 0 {
            self.slots[slot as usize].job_done = Some(done);
            let at = self.after(served, info.poll_every, slot, "poll its job")?;
            self.schedule(at, EventKind::Poll, slot);
        } else {
            self.succeed(slot, delay);
        }
        Ok(())
    }

    fn settle_amounts(&mut self, info: &ReqInfo) {
        // u128 totals: sums of u64 amounts cannot wrap.
        self.summary.spend += info.money as u128;
        self.summary.tokens += info.tokens as u128;
        self.bucket.spend += info.money as u128;
        self.bucket.tokens += info.tokens as u128;
    }

    /// The request succeeded with the attempt admitted now, answered `delay`
    /// later.
    fn succeed(&mut self, slot: u32, delay: Nanos) {
        let s = &mut self.slots[slot as usize];
        if s.resolved {
            return;
        }
        s.resolved = true;
        let arrival = s.info.arrival;
        self.summary.items_delivered += s.info.items as u64;
        self.summary.successes += 1;
        self.bucket.successes += 1;
        let waited = self.now.saturating_add(delay) - arrival;
        self.latency.record(waited);
        self.bucket.time_to_success_sum_ns += waited as u128;
        self.bucket.time_to_success_max_ns = self.bucket.time_to_success_max_ns.max(waited);
    }

    fn complete(&mut self, slot: u32) {
        let info = self.slots[slot as usize].info;
        self.in_flight -= 1;
        let tickets = std::mem::take(&mut self.slots[slot as usize].tickets);
        if !tickets.is_empty() {
            self.store.set_identity(info.key, info.user, info.workspace);
            let plan = self.plan;
            let req = request_of(&self.keys, &self.endpoints, &info, false);
            let c = plan.complete(&mut self.store, self.now, &req, &tickets);
            self.summary.max_budget_overshoot = self.summary.max_budget_overshoot.max(c.overshoot);
        }
        self.settle_amounts(&info);
        self.release_client_slot(slot);
    }

    /// Frees the client-semaphore slot of `slot` and starts the next queued request.
    fn release_client_slot(&mut self, slot: u32) {
        if !std::mem::take(&mut self.slots[slot as usize].holds_client_slot) {
            return;
        }
        let key = self.slots[slot as usize].info.key;
        let now = self.now;
        let c = client_of(&mut self.clients, key);
        c.in_flight -= 1;
        if let Some(next) = c.queue.pop_front() {
            // Start it at this instant, after the release.
            self.slots[next as usize].pending -= 1;
            self.schedule(now, EventKind::Send, next);
        }
    }

    fn failed(&mut self, slot: u32, attempt: u32, response: &Response) -> Result<(), SimError> {
        let now = self.now;
        let (key, prev_delay) = {
            let l = &self.slots[slot as usize];
            (l.info.key, l.prev_delay)
        };
        let client = &self.config.client;
        let mut choice =
            client.after_failure(attempt, response, prev_delay, rng_of(&mut self.clients, self.config.seed, key));
        if let (RetryChoice::After(_), Some(budget)) = (choice, &client.retry_budget) {
            let c = client_of(&mut self.clients, key);
            c.roll(now);
            let requests = (c.requests[0] + c.requests[1]) as f64;
            let retries = (c.retries[0] + c.retries[1]) as f64;
            if retries + 1.0 > budget.ratio * requests {
                choice = RetryChoice::GiveUp;
            }
        }
        if let (RetryChoice::After(_), Some(q)) = (choice, &client.retry_quota) {
            let cost = q.cost(client.throttling.matches(response.status, response.code));
            if client_of(&mut self.clients, key).quota.get_or_insert_with(|| q.new_state()).acquire(cost) {
                self.slots[slot as usize].quota_cost = cost;
            } else {
                choice = RetryChoice::GiveUp;
            }
        }
        match choice {
            RetryChoice::After(delay) => {
                client_of(&mut self.clients, key).retries[1] += 1;
                self.slots[slot as usize].prev_delay = delay;
                let at = self.later(delay, slot, "retry")?;
                self.schedule(at, EventKind::Retry, slot);
            }
            RetryChoice::GiveUp => {
                self.slots[slot as usize].resolved = true;
                self.summary.give_ups += 1;
                self.bucket.give_ups += 1;
                self.release_client_slot(slot);
            }
        }
        Ok(())
    }

    fn finish(mut self, buckets: &mut dyn BucketSink) -> Result<Summary, SimError> {
        let origin = self.origin();
        self.close_bucket(buckets)?;
        buckets.time_to_success(&self.latency)?;
        let mut s = self.summary;
        // Slots are reused, so their count is the peak of live requests.
        s.peak_outstanding = self.slots.len() as u64;
        s.duration_ns = self.now.saturating_sub(origin);
        s.unresolved = s.requests - s.successes - s.give_ups;
        s.success_ratio = ratio(s.successes, s.requests);
        s.first_attempt_denial_rate = ratio(s.first_attempt_denied, s.requests);
        let denied_429 = self.denied_by_status.iter().find(|(status, _)| *status == 429).map_or(0, |&(_, n)| n);
        s.rate_429 = ratio(denied_429, s.attempts);
        s.retry_amplification = ratio(s.attempts - s.polls, s.requests);
        s.polls_per_request = ratio(s.polls, s.requests);
        s.give_up_ratio = ratio(s.give_ups, s.requests);
        s.time_to_success = self.latency.summary();
        s.delayed = self.can_delay.then(|| Delays { attempts: self.delays.count(), wait: self.delays.summary() });
        s.denied_by_status = self.denied_by_status.into_iter().collect();
        s.denied_by_limit =
            self.plan.limits.iter().zip(&self.denied_by_limit).map(|(l, &n)| (l.id.clone(), n)).collect();
        let mut top: Vec<KeyDenials> = self
            .clients
            .iter()
            .enumerate()
            .filter(|(_, c)| c.denied > 0)
            .map(|(i, c)| KeyDenials {
                key: self.keys.names[i].as_str().to_string(),
                denied: c.denied,
                attempts: c.sent,
            })
            .collect();
        top.sort_by(|a, b| b.denied.cmp(&a.denied).then_with(|| a.key.cmp(&b.key)));
        top.truncate(self.config.top_keys);
        s.top_denied_keys = top;
        Ok(s)
    }
}
