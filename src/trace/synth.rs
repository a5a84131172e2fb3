//! Synthetic traces: client populations described in TOML, expanded lazily
//! into a deterministic, time-ordered stream of [`TraceRow`]s.
//!
//! A recorded trace shows what happened once. A synthetic spec says what
//! *kind* of traffic to expect (a key just under its limit, a morning burst,
//! a day of diurnal load, a flash crowd, a workspace with many keys, async
//! jobs that poll) so a policy can be tried against it at any length and
//! reproduced exactly from a seed.
//!
//! # Example
//!
//! ```toml
//! horizon = "1h"
//! seed = 7
//!
//! [[population]]
//! name = "web"
//! clients = 20
//! arrival = { kind = "poisson", rate = "2/s" }
//! endpoints = { invoke = 0.8, stream = 0.15, health = 0.05 }
//! tokens = { dist = "lognormal", median = 400, sigma = 0.8 }
//! duration = { dist = "exponential", mean = 1.5 }
//! ```
//!
//! # Format
//!
//! Unknown keys are errors everywhere. Durations are strings with a unit
//! (`"250ms"`, `"10s"`, `"1.5min"`, `"24h"`; see [`parse_duration`]); rates
//! are strings such as `"2/s"`, `"500/min"`, `"10/30s"` (see [`Rate::parse`]).
//! Every error names the file, line, column and field and says what was
//! expected.
//!
//! ## Top level
//!
//! | key | required | meaning |
//! |---|---|---|
//! | `horizon` | yes | duration; rows have offsets in `[0, horizon)` |
//! | `seed` | no | default seed, a non-negative integer; a seed passed to [`Spec::generate`] (the CLI's `--seed`) is used instead, see [`Spec::seed`] |
//! | `description` | no | free text |
//! | `[[population]]` | yes, at least one | a group of clients that behave alike |
//!
//! ## Population
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `name` | required | unique within the spec |
//! | `description` | none | free text |
//! | `clients` | required | number of clients, at least 1 (at most [`MAX_CLIENTS`] over the whole spec) |
//! | `prefix` | `name` | prefix of the generated key, user and workspace names; two populations with the same prefix share identities |
//! | `start` | `"0s"` | offset at which the population starts sending |
//! | `end` | `horizon` | offset at which it stops (exclusive); `start < end <= horizon` |
//! | `arrival` | required | the arrival process of *each* client, see below |
//! | `endpoint` | none | a single endpoint name for every request |
//! | `endpoints` | none | endpoint mix as weights, e.g. `{ invoke = 0.8, stream = 0.15, health = 0.05 }` (not with `endpoint`; neither means an empty endpoint) |
//! | `auth` | `true` | whether requests are authenticated |
//! | `batch` | `1` | items per request (`row.items`), at least 1 |
//! | `tokens` | `0` | distribution of tokens per request |
//! | `cost` | `0` | distribution of cost per request, in money minor units |
//! | `duration` | `0` | distribution of the service time (or job run time) in seconds |
//! | `job` | none | makes every request an asynchronous job, see below |
//! | `keys`, `shared_keys`, `users`, `workspaces`, `users_per_workspace` | | identities, see below |
//!
//! ## Identities
//!
//! Clients are numbered `0..clients`. Names are `{prefix}-k{i}` for keys,
//! `{prefix}-u{i}` for users and `{prefix}-w{i}` for workspaces.
//!
//! - `keys = "per-client"` (default): client `c` uses key `c`; there are
//!   `clients` keys.
//! - `keys = "shared"` with `shared_keys = K` (default 1, at most `clients`):
//!   client `c` uses key `c mod K`, so the clients are spread round-robin over
//!   `K` keys.
//! - `users = U` (default: one user per key, at most the number of keys): key
//!   `k` belongs to user `k mod U`.
//! - `workspaces = W` (at most the number of users): user `u` is in workspace
//!   `u mod W` (`workspaces = 1` puts every key in one workspace); or
//!   `users_per_workspace = n`: user `u` is in workspace `u / n` (consecutive
//!   users share one). Neither: each user has its own workspace.
//!
//! ## Arrival processes
//!
//! `arrival` is a table with a `kind`. Rates are *per client*. Times in the
//! process (`at`, `over`, `peak_at`, the on/off cycle) are measured from the
//! population's `start`; arrivals at or after `end` are dropped.
//!
//! | kind | keys | process |
//! |---|---|---|
//! | `constant` | `rate`, `phase` | one request every `1/rate` exactly (integer arithmetic: over a span of `N/rate` a client sends exactly `N` requests). `phase = "random"` (default) offsets each client by a uniform fraction of the interval so clients do not fire in lockstep; `"zero"` sends the first request at `start` |
//! | `poisson` | `rate` | exponential gaps with mean `1/rate` |
//! | `on-off` | `rate`, `on`, `off`, `durations`, `phase` | Poisson at `rate` during on periods, silent during off periods. `durations = "fixed"` (default): periods last exactly `on` and `off`; `"exponential"`: each period's length is exponential with mean `on` / `off`. `phase = "random"` (default): each client starts at a uniform point of its cycle (fixed) or in the stationary state (exponential); `"zero"`: each client starts at the beginning of an on period |
//! | `diurnal` | `rate`, `peak_ratio`, `period`, `peak_at` | Poisson with the sinusoidal rate `λ(t) = rate · (1 + a·cos(2π (t − peak_at) / period))`, `a = (r − 1)/(r + 1)` with `r = peak_ratio` = peak rate / trough rate (≥ 1). `rate` is the mean over a period; `period` defaults to `"24h"`, `peak_at` to half the period |
//! | `ramp` | `from`, `to`, `over` | Poisson whose rate goes linearly from `from` to `to` over `over` (default: from `start` to `end`), then stays at `to`. Either rate may be `"0/s"`, not both |
//! | `flash-crowd` | `rate`, `at`, `peak`, `decay` | Poisson at the base `rate` (may be `"0/s"`) until `at`, where it jumps to `peak` (≥ `rate`) and decays back exponentially: `λ(t) = rate + (peak − rate)·e^(−(t − at)/decay)` |
//!
//! Non-homogeneous processes (`diurnal`, `ramp`, `flash-crowd`) are generated
//! by thinning (Lewis–Shedler): candidates from a Poisson process at an upper
//! bound of `λ`, each kept with probability `λ(t)/bound`. The bound is
//! piecewise: the peak rate for `diurnal`, a 32-step staircase for a rising
//! ramp, and the current rate wherever `λ` only falls (a falling ramp, a
//! flash crowd after `at`), re-taken after every candidate. This is exact, not
//! an approximation, and deterministic.
//!
//! ## Distributions
//!
//! `tokens`, `cost` and `duration` take a table with a `dist`:
//!
//! | dist | keys | sample |
//! |---|---|---|
//! | `constant` | `value` | `value` |
//! | `exponential` | `mean` (> 0) | exponential by inversion |
//! | `lognormal` | `median` (> 0) and `sigma` (≥ 0), or `mu` and `sigma` | `exp(mu + sigma·Z)`, `Z` standard normal (Box–Muller); `median = e^mu`, mean `= median·e^(sigma²/2)`. For `duration`, `mu` is the log of seconds |
//! | `uniform` | `min`, `max` (`0 <= min <= max`) | uniform on `[min, max)` |
//!
//! Parameters are non-negative numbers. For `duration` they are seconds, and
//! may also be duration strings (`value = "250ms"`). Tokens and cost are
//! rounded to the nearest whole number, durations to the nearest nanosecond;
//! samples are never negative.
//!
//! ## Jobs
//!
//! `job = { poll_every = "1s", poll_endpoint = "jobs.get" }` marks each
//! request as creating an asynchronous job that runs for `duration` and that
//! the client polls every `poll_every` on `poll_endpoint` (sets
//! `row.poll_every` and `row.poll_endpoint`; the simulator issues the polls).
//! `job = { mode = "webhook" }` is a job whose result is pushed, so nobody
//! polls (`poll_every = 0`). `mode` defaults to `"poll"`.
//!
//! # Determinism
//!
//! Every client owns two [`ChaCha8Rng`] streams, both keyed by
//! `ChaCha8Rng::seed_from_u64(seed)` and told apart by the ChaCha stream
//! number `(population << 33) | (client << 1) | s`, where `s = 0` drives the
//! arrival process and `s = 1` the request attributes (endpoint, tokens, cost,
//! duration, in that order, each drawn only when it is random). A client's
//! rows depend only on the seed, its population's settings and its indices:
//! adding a population at the end, or changing the endpoint mix, leaves the
//! other clients' rows and this client's arrival times unchanged. Uniform
//! numbers are built from the top 53 bits of `next_u64`, so the output does
//! not depend on `rand`'s distribution code; `ln`, `exp` and `cos` come from
//! the platform's math library, which is correctly rounded or nearly so on
//! every tier-1 target.
//!
//! # Order
//!
//! Rows come out with [`TraceTime::Offset`] in non-decreasing time order.
//! Rows at the same nanosecond come in order of population index, then client
//! index (then the client's own order).
//!
//! # Memory
//!
//! Generation is lazy: a binary heap holds each active client's next
//! arrival, and the next arrival is computed only when the previous one is
//! emitted. Memory is O(clients) (about 0.7 KB per client, dominated by the
//! two ChaCha buffers) and does not grow with the number of rows.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::Path;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use toml::Spanned;

use super::{TraceError, TraceRow, TraceSource, TraceTime};
use crate::time::{parse_duration, Nanos, Rate, HOUR, SECOND};

/// Most clients one spec may define (over all populations): each costs
/// about 0.7 KB while its trace is generated.
pub const MAX_CLIENTS: u64 = 1_000_000;

/// A validated synthetic trace spec. Build one with [`load_spec`] or
/// [`parse_spec`]; expand it with [`Spec::generate`].
#[derive(Clone, Debug)]
pub struct Spec {
    horizon: Nanos,
    seed: Option<u64>,
    description: Option<String>,
    populations: Vec<Population>,
}

impl Spec {
    /// The trace length: rows have offsets in `[0, horizon)`.
    pub fn horizon(&self) -> Nanos {
        self.horizon
    }

    /// The spec's own `seed`, if it has one. A caller with a seed of its own
    /// (a `--seed` flag) should prefer it; with neither, 0 is customary.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// The spec's `description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The populations, in file order.
    pub fn populations(&self) -> &[Population] {
        &self.populations
    }

    /// Total clients over all populations.
    pub fn clients(&self) -> u64 {
        self.populations.iter().map(|p| p.clients as u64).sum()
    }

    /// The trace this spec describes for `seed`: a lazy, deterministic
    /// [`TraceSource`]. The same spec and seed always give the same rows.
    pub fn generate(&self, seed: u64) -> SynthTrace {
        let mut clients = Vec::with_capacity(self.clients() as usize);
        let mut heap = BinaryHeap::with_capacity(clients.capacity());
        for (pi, pop) in self.populations.iter().enumerate() {
            for ci in 0..pop.clients {
                let stream = ((pi as u64) << 33) | ((ci as u64) << 1);
                let mut arrivals = ChaCha8Rng::seed_from_u64(seed);
                arrivals.set_stream(stream);
                let mut attrs = ChaCha8Rng::seed_from_u64(seed);
                attrs.set_stream(stream | 1);
                let state = pop.arrival.initial_state(&mut arrivals);
                let mut client = Client { pop: pi as u32, index: ci, arrivals, attrs, state, names: None };
                let id = clients.len() as u32;
                if let Some(t) = next_arrival(pop, &mut client) {
                    heap.push(Reverse((t, id)));
                }
                clients.push(client);
            }
        }
        SynthTrace { populations: self.populations.clone(), clients, heap }
    }
}

/// One validated population of a [`Spec`].
#[derive(Clone, Debug)]
pub struct Population {
    name: String,
    description: Option<String>,
    prefix: String,
    clients: u32,
    start: Nanos,
    end: Nanos,
    shared_keys: Option<u32>,
    users: u32,
    workspaces: Workspaces,
    arrival: Arrival,
    /// Endpoint names with cumulative weights (name order); one entry with
    /// weight 1 for `endpoint`, empty for neither.
    endpoints: Vec<(String, f64)>,
    auth: bool,
    batch: u32,
    tokens: Option<Dist>,
    cost: Option<Dist>,
    duration: Option<Dist>,
    job: Option<Job>,
}

impl Population {
    /// The population's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The population's `description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Number of clients.
    pub fn clients(&self) -> u32 {
        self.clients
    }

    /// Number of distinct keys.
    pub fn keys(&self) -> u32 {
        self.shared_keys.unwrap_or(self.clients)
    }

    /// Offset at which the population starts sending.
    pub fn start(&self) -> Nanos {
        self.start
    }

    /// Offset at which it stops (exclusive).
    pub fn end(&self) -> Nanos {
        self.end
    }
}

#[derive(Clone, Copy, Debug)]
enum Workspaces {
    PerUser,
    Modulo(u32),
    Blocks(u32),
}

/// Arrival processes; rates in requests per nanosecond, times in
/// nanoseconds since the population start.
#[derive(Clone, Copy, Debug)]
enum Arrival {
    Constant { rate: Rate, random_phase: bool },
    Poisson { rate: f64 },
    OnOff { rate: f64, on: f64, off: f64, exponential: bool, random_phase: bool },
    Diurnal { rate: f64, amplitude: f64, period: f64, peak_at: f64 },
    Ramp { from: f64, to: f64, over: f64 },
    FlashCrowd { base: f64, at: f64, peak: f64, decay: f64 },
}

/// A distribution of values (tokens, minor units, or nanoseconds for
/// durations); also the emulator's `--service-time`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Dist {
    Constant(f64),
    Exponential { mean: f64 },
    LogNormal { mu: f64, sigma: f64 },
    Uniform { min: f64, max: f64 },
}

#[derive(Clone, Debug)]
struct Job {
    poll_every: Nanos,
    poll_endpoint: String,
}

/// A client's position in its arrival process.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Next request is number `k`, at `phase + floor(k · period / count)`.
    Constant { k: u64, phase: Nanos },
    /// Time of the last arrival (or candidate), in nanoseconds.
    Poisson { t: f64 },
    /// Current time and the end of the current (or next) on period.
    OnOff { t: f64, on_end: f64 },
    /// Current time of a thinned process.
    Thinned { t: f64 },
}

struct Client {
    pop: u32,
    index: u32,
    arrivals: ChaCha8Rng,
    attrs: ChaCha8Rng,
    state: State,
    /// The client's key, user and workspace names, formatted on first use.
    names: Option<Box<[String; 3]>>,
}

/// A synthetic trace being generated: a [`TraceSource`] made by
/// [`Spec::generate`].
pub struct SynthTrace {
    populations: Vec<Population>,
    clients: Vec<Client>,
    /// Next arrival (absolute offset) of each active client, by client id
    /// (ids follow population then client index, so ties break that way).
    heap: BinaryHeap<Reverse<(Nanos, u32)>>,
}

impl std::fmt::Debug for SynthTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynthTrace").field("clients", &self.clients.len()).field("active", &self.heap.len()).finish()
    }
}

impl TraceSource for SynthTrace {
    fn next_row(&mut self, row: &mut TraceRow) -> Result<bool, TraceError> {
        let Some(Reverse((t, id))) = self.heap.pop() else {
            return Ok(false);
        };
        let client = &mut self.clients[id as usize];
        let pop = &self.populations[client.pop as usize];
        fill_row(pop, client, t, row);
        if let Some(next) = next_arrival(pop, client) {
            self.heap.push(Reverse((next, id)));
        }
        Ok(true)
    }
}

fn fill_row(pop: &Population, client: &mut Client, t: Nanos, row: &mut TraceRow) {
    row.clear();
    row.t = TraceTime::Offset(t);
    let names = client.names.get_or_insert_with(|| {
        let key = match pop.shared_keys {
            Some(k) => client.index % k,
            None => client.index,
        };
        let user = key % pop.users;
        let workspace = match pop.workspaces {
            Workspaces::PerUser => user,
            Workspaces::Modulo(w) => user % w,
            Workspaces::Blocks(n) => user / n,
        };
        Box::new([
            format!("{}-k{key}", pop.prefix),
            format!("{}-u{user}", pop.prefix),
            format!("{}-w{workspace}", pop.prefix),
        ])
    });
    row.key.push_str(&names[0]);
    row.user.push_str(&names[1]);
    row.workspace.push_str(&names[2]);
    let rng = &mut client.attrs;
    match pop.endpoints.len() {
        0 => {}
        1 => row.endpoint.push_str(&pop.endpoints[0].0),
        _ => {
            let total = pop.endpoints.last().map_or(0.0, |e| e.1);
            let u = uniform(rng) * total;
            let chosen = pop
                .endpoints
                .iter()
                .find(|e| u < e.1)
                .or_else(|| pop.endpoints.iter().rev().find(|e| e.1 > 0.0))
                .expect("validated: some weight is positive");
            row.endpoint.push_str(&chosen.0);
        }
    }
    row.auth = pop.auth;
    row.items = pop.batch;
    if let Some(d) = &pop.tokens {
        row.tokens = to_whole(d.sample(rng));
    }
    if let Some(d) = &pop.cost {
        row.cost = to_whole(d.sample(rng));
    }
    if let Some(d) = &pop.duration {
        row.duration = to_whole(d.sample(rng));
    }
    if let Some(job) = &pop.job {
        row.poll_every = job.poll_every;
        row.poll_endpoint.push_str(&job.poll_endpoint);
    }
}

/// Rounds to the nearest whole number, never negative (saturating).
fn to_whole(x: f64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        x.round() as u64
    }
}

/// Uniform on `[0, 1)` from the top 53 bits of one `u64`.
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Exponential with mean 1, by inversion: `-ln(1 - U)`, `1 - U` in `(0, 1]`.
fn exp1(rng: &mut ChaCha8Rng) -> f64 {
    -(1.0 - uniform(rng)).ln()
}

/// Standard normal by Box–Muller (the cosine branch; one pair per sample).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - uniform(rng);
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Dist {
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        match *self {
            Dist::Constant(v) => v,
            Dist::Exponential { mean } => mean * exp1(rng),
            Dist::LogNormal { mu, sigma } => {
                if sigma == 0.0 {
                    mu.exp()
                } else {
                    (mu + sigma * normal(rng)).exp()
                }
            }
            Dist::Uniform { min, max } => min + (max - min) * uniform(rng),
        }
    }
}

impl Arrival {
    fn initial_state(&self, rng: &mut ChaCha8Rng) -> State {
        match *self {
            Arrival::Constant { rate, random_phase } => {
                let phase = if random_phase {
                    // floor(U · T), kept strictly below the interval T.
                    let interval = rate.period() as f64 / rate.count() as f64;
                    let p = (uniform(rng) * interval).floor() as u64;
                    let max = rate.period().div_ceil(rate.count()).saturating_sub(1);
                    p.min(max)
                } else {
                    0
                };
                State::Constant { k: 0, phase }
            }
            Arrival::Poisson { .. } => State::Poisson { t: 0.0 },
            Arrival::OnOff { on, off, exponential, random_phase, .. } => {
                let (t, on_end) = match (exponential, random_phase) {
                    (false, false) => (0.0, on),
                    (false, true) => {
                        let o = uniform(rng) * (on + off);
                        if o < on {
                            (0.0, on - o)
                        } else {
                            let next_on = on + off - o;
                            (next_on, next_on + on)
                        }
                    }
                    (true, false) => (0.0, on * exp1(rng)),
                    (true, true) => {
                        // Stationary start: on with probability on/(on+off);
                        // the remaining period is exponential (memoryless).
                        if uniform(rng) * (on + off) < on {
                            (0.0, on * exp1(rng))
                        } else {
                            let next_on = off * exp1(rng);
                            (next_on, next_on + on * exp1(rng))
                        }
                    }
                };
                State::OnOff { t, on_end }
            }
            Arrival::Diurnal { .. } | Arrival::Ramp { .. } | Arrival::FlashCrowd { .. } => State::Thinned { t: 0.0 },
        }
    }

    /// The rate at `t` (per nanosecond) of a thinned process.
    fn lambda(&self, t: f64) -> f64 {
        match *self {
            Arrival::Diurnal { rate, amplitude, period, peak_at } => {
                let phase = ((t - peak_at) / period).rem_euclid(1.0);
                rate * (1.0 + amplitude * (std::f64::consts::TAU * phase).cos())
            }
            Arrival::Ramp { from, to, over } => from + (to - from) * (t / over).min(1.0),
            Arrival::FlashCrowd { base, at, peak, decay } => {
                if t < at {
                    base
                } else {
                    base + (peak - base) * (-(t - at) / decay).exp()
                }
            }
            _ => 0.0,
        }
    }

    /// An upper bound of `lambda` on `[t, until)`: `(bound, until)`. The
    /// thinning loop asks again after every candidate, so a bound taken at
    /// the current time adapts as a decreasing rate falls.
    fn majorant(&self, t: f64) -> (f64, f64) {
        match *self {
            Arrival::Diurnal { rate, amplitude, .. } => (rate * (1.0 + amplitude), f64::INFINITY),
            Arrival::Ramp { from, to, over } => {
                if from >= to || t >= over {
                    // Non-increasing from here on: the current rate bounds it.
                    (self.lambda(t), f64::INFINITY)
                } else {
                    // Increasing: bound each 1/32 of the ramp by its end value.
                    let until = (t + over / RAMP_SEGMENTS).min(over);
                    (self.lambda(until), until)
                }
            }
            Arrival::FlashCrowd { base, at, .. } => {
                if t < at {
                    (base, at)
                } else {
                    // λ never increases after `at`, so λ(t) bounds all of [t, ∞).
                    (self.lambda(t), f64::INFINITY)
                }
            }
            _ => (0.0, f64::INFINITY),
        }
    }
}

/// An increasing ramp is thinned against a staircase of this many steps.
const RAMP_SEGMENTS: f64 = 32.0;

/// Computes the client's next arrival as an absolute offset, or `None` when
/// it has no more before its population's end.
fn next_arrival(pop: &Population, client: &mut Client) -> Option<Nanos> {
    let span = pop.end - pop.start;
    let spanf = span as f64;
    let rng = &mut client.arrivals;
    let rel = match (&pop.arrival, &mut client.state) {
        (Arrival::Constant { rate, .. }, State::Constant { k, phase }) => {
            let offset = (*k as u128 * rate.period() as u128) / rate.count() as u128;
            let t = *phase as u128 + offset;
            *k += 1;
            if t >= span as u128 {
                return None;
            }
            t as Nanos
        }
        (Arrival::Poisson { rate }, State::Poisson { t }) => {
            *t += exp1(rng) / rate;
            if *t >= spanf {
                return None;
            }
            *t as Nanos
        }
        (Arrival::OnOff { rate, on, off, exponential, .. }, State::OnOff { t, on_end }) => loop {
            if *t >= spanf {
                return None;
            }
            if *t >= *on_end {
                let (off_len, on_len) = if *exponential {
                    let off_len = off * exp1(rng);
                    (off_len, on * exp1(rng))
                } else {
                    (*off, *on)
                };
                *t = *on_end + off_len;
                *on_end = *t + on_len;
                continue;
            }
            let cand = *t + exp1(rng) / rate;
            if cand < *on_end {
                *t = cand;
                if cand >= spanf {
                    return None;
                }
                break cand as Nanos;
            }
            *t = *on_end;
        },
        (arrival, State::Thinned { t }) => loop {
            if *t >= spanf {
                return None;
            }
            let (bound, until) = arrival.majorant(*t);
            if bound <= 0.0 {
                if until.is_infinite() {
                    return None;
                }
                *t = until;
                continue;
            }
            let cand = *t + exp1(rng) / bound;
            if cand >= until {
                // Memoryless: restart from the boundary with the next bound.
                *t = until;
                continue;
            }
            *t = cand;
            if cand >= spanf {
                return None;
            }
            if uniform(rng) * bound < arrival.lambda(cand) {
                break cand as Nanos;
            }
        },
        _ => unreachable!("state matches its arrival kind"),
    };
    Some(pop.start + rel)
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Reads and validates the spec file at `path`.
pub fn load_spec(path: &Path) -> Result<Spec, TraceError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TraceError {
        file: file.clone(),
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read the synthetic trace spec: {e}"),
    })?;
    parse_spec(&text, &file)
}

/// Validates spec TOML `text`; `file` names it in errors.
pub fn parse_spec(text: &str, file: &str) -> Result<Spec, TraceError> {
    let cx = Cx { text, file };
    let raw: RawSpec = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_string();
        let message = message.replace("unknown variant", "unknown value").replace("invalid type", "wrong type");
        cx.err(e.span().map_or(0, |s| s.start), "", message)
    })?;
    cx.spec(raw)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    horizon: Option<Spanned<String>>,
    seed: Option<Spanned<i64>>,
    description: Option<String>,
    #[serde(default)]
    population: Vec<Spanned<RawPopulation>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPopulation {
    name: Option<Spanned<String>>,
    description: Option<String>,
    clients: Option<Spanned<i64>>,
    prefix: Option<Spanned<String>>,
    start: Option<Spanned<String>>,
    end: Option<Spanned<String>>,
    keys: Option<Spanned<String>>,
    shared_keys: Option<Spanned<i64>>,
    users: Option<Spanned<i64>>,
    workspaces: Option<Spanned<i64>>,
    users_per_workspace: Option<Spanned<i64>>,
    arrival: Option<Spanned<RawArrival>>,
    endpoint: Option<Spanned<String>>,
    endpoints: Option<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    auth: Option<bool>,
    batch: Option<Spanned<i64>>,
    tokens: Option<Spanned<RawDist>>,
    cost: Option<Spanned<RawDist>>,
    duration: Option<Spanned<RawDist>>,
    job: Option<Spanned<RawJob>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArrival {
    kind: Option<Spanned<String>>,
    rate: Option<Spanned<String>>,
    phase: Option<Spanned<String>>,
    on: Option<Spanned<String>>,
    off: Option<Spanned<String>>,
    durations: Option<Spanned<String>>,
    peak_ratio: Option<Spanned<toml::Value>>,
    period: Option<Spanned<String>>,
    peak_at: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    over: Option<Spanned<String>>,
    at: Option<Spanned<String>>,
    peak: Option<Spanned<String>>,
    decay: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDist {
    dist: Option<Spanned<String>>,
    value: Option<Spanned<toml::Value>>,
    mean: Option<Spanned<toml::Value>>,
    median: Option<Spanned<toml::Value>>,
    mu: Option<Spanned<toml::Value>>,
    sigma: Option<Spanned<toml::Value>>,
    min: Option<Spanned<toml::Value>>,
    max: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    mode: Option<Spanned<String>>,
    poll_every: Option<Spanned<String>>,
    poll_endpoint: Option<Spanned<String>>,
}

/// Parsing context: the text (for line numbers) and the file name.
struct Cx<'a> {
    text: &'a str,
    file: &'a str,
}

/// What a distribution measures, for units and messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Tokens,
    Cost,
    Seconds,
}

type Res<T> = Result<T, TraceError>;

impl Cx<'_> {
    fn err(&self, offset: usize, field: &str, message: impl Into<String>) -> TraceError {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        TraceError {
            file: self.file.to_string(),
            line: line as u64,
            column: column as u64,
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn at<T>(&self, v: &Spanned<T>, field: &str, message: impl Into<String>) -> TraceError {
        self.err(v.span().start, field, message)
    }

    fn duration(&self, v: &Spanned<String>, field: &str) -> Res<Nanos> {
        parse_duration(v.get_ref()).map_err(|e| self.at(v, field, e))
    }

    fn positive_duration(&self, v: &Spanned<String>, field: &str) -> Res<Nanos> {
        let d = self.duration(v, field)?;
        if d == 0 {
            return Err(self.at(v, field, format!("expected a duration longer than zero, found {:?}", v.get_ref())));
        }
        Ok(d)
    }

    /// A rate in requests per nanosecond; `"0/s"` only if `allow_zero`.
    fn rate(&self, v: &Spanned<String>, field: &str, allow_zero: bool) -> Res<f64> {
        let text = v.get_ref();
        if allow_zero {
            if let Some((count, unit)) = text.split_once('/') {
                if count.trim() == "0" {
                    // Check the unit with a count of one.
                    Rate::parse(&format!("1/{unit}")).map_err(|e| self.at(v, field, e))?;
                    return Ok(0.0);
                }
            }
        }
        let rate = self.exact_rate(v, field)?;
        Ok(rate.count() as f64 / rate.period() as f64)
    }

    fn exact_rate(&self, v: &Spanned<String>, field: &str) -> Res<Rate> {
        Rate::parse(v.get_ref())
            .map_err(|e| self.at(v, field, format!("{e}; a rate must be positive (requests per client)")))
    }

    /// A whole number in `min..=max`.
    fn count(&self, v: &Spanned<i64>, field: &str, min: i64, max: i64, what: &str) -> Res<u64> {
        let n = *v.get_ref();
        if n < min || n > max {
            return Err(self.at(v, field, format!("expected {what} from {min} to {max}, found {n}")));
        }
        Ok(n as u64)
    }

    /// A finite number (integer or float).
    fn number(&self, v: &Spanned<toml::Value>, field: &str) -> Res<f64> {
        let x = match v.get_ref() {
            toml::Value::Integer(i) => *i as f64,
            toml::Value::Float(f) => *f,
            other => return Err(self.at(v, field, format!("expected a number, found {}", other.type_str()))),
        };
        if !x.is_finite() {
            return Err(self.at(v, field, format!("expected a finite number, found {x}")));
        }
        Ok(x)
    }

    fn non_negative(&self, v: &Spanned<toml::Value>, field: &str) -> Res<f64> {
        let x = self.number(v, field)?;
        if x < 0.0 {
            return Err(self.at(v, field, format!("expected a number of at least 0, found {x}")));
        }
        Ok(x)
    }

    fn spec(&self, raw: RawSpec) -> Res<Spec> {
        let horizon = match &raw.horizon {
            Some(h) => self.positive_duration(h, "horizon")?,
            None => {
                return Err(self.err(
                    0,
                    "horizon",
                    "missing field `horizon`: the trace length, e.g. `horizon = \"1h\"`",
                ))
            }
        };
        let seed = match &raw.seed {
            Some(s) => Some(self.count(s, "seed", 0, i64::MAX, "a seed")?),
            None => None,
        };
        if raw.population.is_empty() {
            return Err(self.err(
                self.text.len(),
                "population",
                "expected at least one [[population]] with `name`, `clients` and `arrival`",
            ));
        }
        let mut populations: Vec<Population> = Vec::new();
        let mut total: u64 = 0;
        for (i, rp) in raw.population.into_iter().enumerate() {
            // The error points at the `clients` that goes over the limit.
            let at = rp.get_ref().clients.as_ref().map_or(rp.span().start, |c| c.span().start);
            let pop = self.population(rp, i, horizon, &populations)?;
            total += pop.clients as u64;
            if total > MAX_CLIENTS {
                return Err(self.err(
                    at,
                    "population > clients",
                    format!("at most {MAX_CLIENTS} clients in one spec, found {total} so far"),
                ));
            }
            populations.push(pop);
        }
        Ok(Spec { horizon, seed, description: raw.description, populations })
    }

    fn population(
        &self,
        rp: Spanned<RawPopulation>,
        index: usize,
        horizon: Nanos,
        earlier: &[Population],
    ) -> Res<Population> {
        let start_at = rp.span().start;
        let rp = rp.into_inner();
        let name = match &rp.name {
            Some(n) => {
                let name = n.get_ref().trim().to_string();
                if name.is_empty() {
                    return Err(self.at(n, "population > name", "expected a population name, found an empty string"));
                }
                if earlier.iter().any(|p| p.name == name) {
                    return Err(self.at(
                        n,
                        "population > name",
                        format!("duplicate population name {name:?}: each needs its own name"),
                    ));
                }
                name
            }
            None => {
                return Err(self.err(
                    start_at,
                    "population > name",
                    format!("missing field `name` in population #{}", index + 1),
                ))
            }
        };
        let ctx = format!("population {name:?}");
        let f = |k: &str| format!("{ctx} > {k}");
        let missing = |k: &str, what: &str| self.err(start_at, &f(k), format!("missing field `{k}`: {what}"));

        let clients = match &rp.clients {
            Some(c) => self.count(c, &f("clients"), 1, u32::MAX as i64, "a number of clients")? as u32,
            None => return Err(missing("clients", "the number of clients, e.g. `clients = 10`")),
        };
        let prefix = match &rp.prefix {
            Some(p) if p.get_ref().trim().is_empty() => {
                return Err(self.at(p, &f("prefix"), "expected a non-empty name prefix"))
            }
            Some(p) => p.get_ref().trim().to_string(),
            None => name.clone(),
        };
        let start = match &rp.start {
            Some(s) => self.duration(s, &f("start"))?,
            None => 0,
        };
        let end = match &rp.end {
            Some(e) => {
                let end = self.duration(e, &f("end"))?;
                if end > horizon {
                    return Err(self.at(
                        e,
                        &f("end"),
                        format!(
                            "expected an end no later than the horizon ({}), found {:?}",
                            crate::time::format_duration(horizon),
                            e.get_ref()
                        ),
                    ));
                }
                end
            }
            None => horizon,
        };
        if start >= end {
            let at = rp.start.as_ref().map_or(start_at, |s| s.span().start);
            return Err(self.err(
                at,
                &f("start"),
                format!(
                    "expected a start before the population's end ({}), found {}",
                    crate::time::format_duration(end),
                    crate::time::format_duration(start)
                ),
            ));
        }

        // Identities.
        let shared_keys = match (&rp.keys, &rp.shared_keys) {
            (None, None) => None,
            (Some(k), sk) => match k.get_ref().as_str() {
                "per-client" => {
                    if let Some(sk) = sk {
                        return Err(self.at(sk, &f("shared_keys"), "`shared_keys` needs `keys = \"shared\"`"));
                    }
                    None
                }
                "shared" => Some(match sk {
                    Some(sk) => {
                        self.count(sk, &f("shared_keys"), 1, clients as i64, "a number of keys (at most `clients`)")?
                            as u32
                    }
                    None => 1,
                }),
                other => {
                    return Err(self.at(
                        k,
                        &f("keys"),
                        format!("expected \"per-client\" or \"shared\", found {other:?}"),
                    ))
                }
            },
            (None, Some(sk)) => return Err(self.at(sk, &f("shared_keys"), "`shared_keys` needs `keys = \"shared\"`")),
        };
        let keys = shared_keys.unwrap_or(clients);
        let users = match &rp.users {
            Some(u) => {
                self.count(u, &f("users"), 1, keys as i64, "a number of users (at most the number of keys)")? as u32
            }
            None => keys,
        };
        let workspaces = match (&rp.workspaces, &rp.users_per_workspace) {
            (None, None) => Workspaces::PerUser,
            (Some(w), None) => Workspaces::Modulo(self.count(
                w,
                &f("workspaces"),
                1,
                users as i64,
                "a number of workspaces (at most the number of users)",
            )? as u32),
            (None, Some(n)) => Workspaces::Blocks(self.count(
                n,
                &f("users_per_workspace"),
                1,
                users as i64,
                "a number of users per workspace (at most the number of users)",
            )? as u32),
            (Some(w), Some(_)) => {
                return Err(self.at(w, &f("workspaces"), "give `workspaces` or `users_per_workspace`, not both"))
            }
        };

        let arrival = match rp.arrival {
            Some(a) => self.arrival(a, &ctx, end - start)?,
            None => {
                return Err(missing(
                    "arrival",
                    "the arrival process, e.g. `arrival = { kind = \"poisson\", rate = \"2/s\" }`",
                ))
            }
        };

        let endpoints = match (&rp.endpoint, &rp.endpoints) {
            (Some(e), None) => {
                if e.get_ref().trim().is_empty() {
                    return Err(self.at(e, &f("endpoint"), "expected an endpoint name"));
                }
                vec![(e.get_ref().trim().to_string(), 1.0)]
            }
            (None, Some(map)) => self.endpoints(map, &f("endpoints"))?,
            (None, None) => Vec::new(),
            (Some(e), Some(_)) => {
                return Err(self.at(
                    e,
                    &f("endpoint"),
                    "give `endpoint` (one name) or `endpoints` (a weighted mix), not both",
                ))
            }
        };

        let batch = match &rp.batch {
            Some(b) => self.count(b, &f("batch"), 1, u32::MAX as i64, "items per request")? as u32,
            None => 1,
        };
        let tokens = match &rp.tokens {
            Some(d) => Some(self.dist(d, &f("tokens"), Unit::Tokens)?),
            None => None,
        };
        let cost = match &rp.cost {
            Some(d) => Some(self.dist(d, &f("cost"), Unit::Cost)?),
            None => None,
        };
        let duration = match &rp.duration {
            Some(d) => Some(self.dist(d, &f("duration"), Unit::Seconds)?),
            None => None,
        };
        let job = match &rp.job {
            Some(j) => Some(self.job(j, &f("job"))?),
            None => None,
        };
        Ok(Population {
            name,
            description: rp.description.clone(),
            prefix,
            clients,
            start,
            end,
            shared_keys,
            users,
            workspaces,
            arrival,
            endpoints,
            auth: rp.auth.unwrap_or(true),
            batch,
            tokens,
            cost,
            duration,
            job,
        })
    }

    fn endpoints(&self, map: &Spanned<BTreeMap<String, Spanned<toml::Value>>>, field: &str) -> Res<Vec<(String, f64)>> {
        if map.get_ref().is_empty() {
            return Err(self.at(
                map,
                field,
                "expected at least one endpoint weight, e.g. `{ invoke = 0.8, health = 0.2 }`",
            ));
        }
        let mut out = Vec::with_capacity(map.get_ref().len());
        let mut total = 0.0;
        for (name, w) in map.get_ref() {
            let fname = format!("{field} > {name}");
            if name.trim().is_empty() {
                return Err(self.at(w, &fname, "expected an endpoint name, found an empty key"));
            }
            if w.get_ref().is_table() {
                return Err(self.at(
                    w,
                    &fname,
                    format!(
                        "expected a weight, found a table; quote endpoint names that contain dots, e.g. `\"{name}.create\" = 0.8`"
                    ),
                ));
            }
            let x = self.number(w, &fname)?;
            if x < 0.0 {
                return Err(self.at(w, &fname, format!("expected a non-negative weight, found {x}")));
            }
            total += x;
            out.push((name.clone(), total));
        }
        if total <= 0.0 {
            return Err(self.at(map, field, "expected at least one positive weight; all endpoint weights are zero"));
        }
        if !total.is_finite() {
            return Err(self.at(map, field, "the endpoint weights are too large"));
        }
        Ok(out)
    }

    fn arrival(&self, ra: Spanned<RawArrival>, ctx: &str, span: Nanos) -> Res<Arrival> {
        let start_at = ra.span().start;
        let ra = ra.into_inner();
        let base = format!("{ctx} > arrival");
        let f = |k: &str| format!("{base} > {k}");
        let kind_v = match &ra.kind {
            Some(k) => k,
            None => {
                return Err(self.err(
                    start_at,
                    &f("kind"),
                    "missing field `kind`: one of constant, poisson, on-off, diurnal, ramp, flash-crowd",
                ))
            }
        };
        let kind = kind_v.get_ref().as_str();
        // Which optional keys each kind takes (besides `kind`).
        let allowed: &[&str] = match kind {
            "constant" => &["rate", "phase"],
            "poisson" => &["rate"],
            "on-off" => &["rate", "on", "off", "durations", "phase"],
            "diurnal" => &["rate", "peak_ratio", "period", "peak_at"],
            "ramp" => &["from", "to", "over"],
            "flash-crowd" => &["rate", "at", "peak", "decay"],
            other => {
                return Err(self.at(
                    kind_v,
                    &f("kind"),
                    format!("unknown arrival kind {other:?}; expected one of constant, poisson, on-off, diurnal, ramp, flash-crowd"),
                ))
            }
        };
        let present: [(&str, Option<usize>); 14] = [
            ("rate", ra.rate.as_ref().map(|v| v.span().start)),
            ("phase", ra.phase.as_ref().map(|v| v.span().start)),
            ("on", ra.on.as_ref().map(|v| v.span().start)),
            ("off", ra.off.as_ref().map(|v| v.span().start)),
            ("durations", ra.durations.as_ref().map(|v| v.span().start)),
            ("peak_ratio", ra.peak_ratio.as_ref().map(|v| v.span().start)),
            ("period", ra.period.as_ref().map(|v| v.span().start)),
            ("peak_at", ra.peak_at.as_ref().map(|v| v.span().start)),
            ("from", ra.from.as_ref().map(|v| v.span().start)),
            ("to", ra.to.as_ref().map(|v| v.span().start)),
            ("over", ra.over.as_ref().map(|v| v.span().start)),
            ("at", ra.at.as_ref().map(|v| v.span().start)),
            ("peak", ra.peak.as_ref().map(|v| v.span().start)),
            ("decay", ra.decay.as_ref().map(|v| v.span().start)),
        ];
        for (key, at) in present {
            if let Some(at) = at {
                if !allowed.contains(&key) {
                    return Err(self.err(
                        at,
                        &f(key),
                        format!(
                            "`{key}` does not apply to kind = {kind:?}; it takes {}",
                            allowed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        let need = |v: &Option<Spanned<String>>, key: &str, example: &str| -> Res<Spanned<String>> {
            v.clone().ok_or_else(|| {
                self.err(
                    start_at,
                    &f(key),
                    format!("missing field `{key}`: a {kind} arrival needs e.g. `{key} = {example}`"),
                )
            })
        };
        let phase = |v: &Option<Spanned<String>>| -> Res<bool> {
            match v {
                None => Ok(true),
                Some(p) => match p.get_ref().as_str() {
                    "random" => Ok(true),
                    "zero" => Ok(false),
                    other => Err(self.at(p, &f("phase"), format!("expected \"random\" or \"zero\", found {other:?}"))),
                },
            }
        };
        Ok(match kind {
            "constant" => Arrival::Constant {
                rate: self.exact_rate(&need(&ra.rate, "rate", "\"2/s\"")?, &f("rate"))?,
                random_phase: phase(&ra.phase)?,
            },
            "poisson" => Arrival::Poisson { rate: self.rate(&need(&ra.rate, "rate", "\"2/s\"")?, &f("rate"), false)? },
            "on-off" => {
                let rate = self.rate(&need(&ra.rate, "rate", "\"5/s\"")?, &f("rate"), false)?;
                let on = self.positive_duration(&need(&ra.on, "on", "\"10s\"")?, &f("on"))?;
                let off = self.duration(&need(&ra.off, "off", "\"50s\"")?, &f("off"))?;
                let exponential = match &ra.durations {
                    None => false,
                    Some(d) => match d.get_ref().as_str() {
                        "fixed" => false,
                        "exponential" => true,
                        other => {
                            return Err(self.at(
                                d,
                                &f("durations"),
                                format!("expected \"fixed\" or \"exponential\", found {other:?}"),
                            ))
                        }
                    },
                };
                Arrival::OnOff { rate, on: on as f64, off: off as f64, exponential, random_phase: phase(&ra.phase)? }
            }
            "diurnal" => {
                let rate = self.rate(&need(&ra.rate, "rate", "\"2/s\"")?, &f("rate"), false)?;
                let ratio = match &ra.peak_ratio {
                    Some(r) => {
                        let x = self.number(r, &f("peak_ratio"))?;
                        if x < 1.0 {
                            return Err(self.at(
                                r,
                                &f("peak_ratio"),
                                format!("expected the peak/trough rate ratio, at least 1, found {x}"),
                            ));
                        }
                        x
                    }
                    None => {
                        return Err(self.err(
                            start_at,
                            &f("peak_ratio"),
                            "missing field `peak_ratio`: peak rate / trough rate, e.g. `peak_ratio = 4`",
                        ))
                    }
                };
                let period = match &ra.period {
                    Some(p) => self.positive_duration(p, &f("period"))?,
                    None => 24 * HOUR,
                };
                let peak_at = match &ra.peak_at {
                    Some(p) => self.duration(p, &f("peak_at"))?,
                    None => period / 2,
                };
                Arrival::Diurnal {
                    rate,
                    amplitude: (ratio - 1.0) / (ratio + 1.0),
                    period: period as f64,
                    peak_at: peak_at as f64,
                }
            }
            "ramp" => {
                let from_v = need(&ra.from, "from", "\"1/s\"")?;
                let from = self.rate(&from_v, &f("from"), true)?;
                let to = self.rate(&need(&ra.to, "to", "\"20/s\"")?, &f("to"), true)?;
                if from == 0.0 && to == 0.0 {
                    return Err(self.at(&from_v, &f("from"), "expected a positive `from` or `to` rate; both are zero"));
                }
                let over = match &ra.over {
                    Some(o) => self.positive_duration(o, &f("over"))?,
                    None => span,
                };
                Arrival::Ramp { from, to, over: over as f64 }
            }
            "flash-crowd" => {
                let base = self.rate(&need(&ra.rate, "rate", "\"1/s\"")?, &f("rate"), true)?;
                let at = self.duration(&need(&ra.at, "at", "\"10min\"")?, &f("at"))?;
                let peak_v = need(&ra.peak, "peak", "\"50/s\"")?;
                let peak = self.rate(&peak_v, &f("peak"), false)?;
                if peak < base {
                    return Err(self.at(
                        &peak_v,
                        &f("peak"),
                        format!("expected a peak rate at least the base rate, found {:?}", peak_v.get_ref()),
                    ));
                }
                let decay = self.positive_duration(&need(&ra.decay, "decay", "\"2min\"")?, &f("decay"))?;
                Arrival::FlashCrowd { base, at: at as f64, peak, decay: decay as f64 }
            }
            _ => unreachable!("kind checked above"),
        })
    }

    fn dist(&self, rd: &Spanned<RawDist>, field: &str, unit: Unit) -> Res<Dist> {
        let start_at = rd.span().start;
        let rd = rd.get_ref();
        let f = |k: &str| format!("{field} > {k}");
        let kind_v = match &rd.dist {
            Some(k) => k,
            None => {
                return Err(self.err(
                    start_at,
                    &f("dist"),
                    "missing field `dist`: one of constant, exponential, lognormal, uniform",
                ))
            }
        };
        let kind = kind_v.get_ref().as_str();
        let allowed: &[&str] = match kind {
            "constant" => &["value"],
            "exponential" => &["mean"],
            "lognormal" => &["median", "mu", "sigma"],
            "uniform" => &["min", "max"],
            other => {
                return Err(self.at(
                    kind_v,
                    &f("dist"),
                    format!(
                        "unknown distribution {other:?}; expected one of constant, exponential, lognormal, uniform"
                    ),
                ))
            }
        };
        let present = [
            ("value", &rd.value),
            ("mean", &rd.mean),
            ("median", &rd.median),
            ("mu", &rd.mu),
            ("sigma", &rd.sigma),
            ("min", &rd.min),
            ("max", &rd.max),
        ];
        for (key, v) in present {
            if let Some(v) = v {
                if !allowed.contains(&key) {
                    return Err(self.at(
                        v,
                        &f(key),
                        format!(
                            "`{key}` does not apply to dist = {kind:?}; it takes {}",
                            allowed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        let need = |v: &Option<Spanned<toml::Value>>, key: &str| -> Res<Spanned<toml::Value>> {
            v.clone().ok_or_else(|| self.err(start_at, &f(key), format!("missing field `{key}` for dist = {kind:?}")))
        };
        // A parameter in output units (tokens, minor units, nanoseconds).
        let param = |v: &Spanned<toml::Value>, key: &str| -> Res<f64> {
            if unit == Unit::Seconds {
                if let toml::Value::String(s) = v.get_ref() {
                    return parse_duration(s).map(|d| d as f64).map_err(|e| self.at(v, &f(key), e));
                }
            }
            let x = self.non_negative(v, &f(key))?;
            Ok(if unit == Unit::Seconds { x * SECOND as f64 } else { x })
        };
        Ok(match kind {
            "constant" => Dist::Constant(param(&need(&rd.value, "value")?, "value")?),
            "exponential" => {
                let v = need(&rd.mean, "mean")?;
                let mean = param(&v, "mean")?;
                if mean <= 0.0 {
                    return Err(self.at(&v, &f("mean"), "expected a mean greater than 0"));
                }
                Dist::Exponential { mean }
            }
            "lognormal" => {
                let sigma_v = need(&rd.sigma, "sigma")?;
                let sigma = self.non_negative(&sigma_v, &f("sigma"))?;
                let mu = match (&rd.median, &rd.mu) {
                    (Some(m), None) => {
                        let median = param(m, "median")?;
                        if median <= 0.0 {
                            return Err(self.at(m, &f("median"), "expected a median greater than 0"));
                        }
                        median.ln()
                    }
                    (None, Some(m)) => {
                        let mu = self.number(m, &f("mu"))?;
                        if unit == Unit::Seconds {
                            mu + (SECOND as f64).ln()
                        } else {
                            mu
                        }
                    }
                    (Some(m), Some(_)) => return Err(self.at(m, &f("median"), "give `median` or `mu`, not both")),
                    (None, None) => {
                        return Err(self.err(
                            start_at,
                            &f("median"),
                            "missing field `median` (or `mu`) for dist = \"lognormal\"",
                        ))
                    }
                };
                Dist::LogNormal { mu, sigma }
            }
            "uniform" => {
                let min = param(&need(&rd.min, "min")?, "min")?;
                let max_v = need(&rd.max, "max")?;
                let max = param(&max_v, "max")?;
                if max < min {
                    return Err(self.at(&max_v, &f("max"), "expected `max` at least `min`"));
                }
                Dist::Uniform { min, max }
            }
            _ => unreachable!("kind checked above"),
        })
    }

    fn job(&self, rj: &Spanned<RawJob>, field: &str) -> Res<Job> {
        let start_at = rj.span().start;
        let rj = rj.get_ref();
        let f = |k: &str| format!("{field} > {k}");
        let webhook = match &rj.mode {
            None => false,
            Some(m) => match m.get_ref().as_str() {
                "poll" => false,
                "webhook" => true,
                other => {
                    return Err(self.at(m, &f("mode"), format!("expected \"poll\" or \"webhook\", found {other:?}")))
                }
            },
        };
        if webhook {
            if let Some(p) = &rj.poll_every {
                return Err(self.at(p, &f("poll_every"), "a webhook job does not poll"));
            }
            if let Some(p) = &rj.poll_endpoint {
                return Err(self.at(p, &f("poll_endpoint"), "a webhook job does not poll"));
            }
            return Ok(Job { poll_every: 0, poll_endpoint: String::new() });
        }
        let poll_every = match &rj.poll_every {
            Some(p) => self.positive_duration(p, &f("poll_every"))?,
            None => {
                return Err(self.err(
                    start_at,
                    &f("poll_every"),
                    "missing field `poll_every`: how often the client polls, e.g. `poll_every = \"1s\"` (or `mode = \"webhook\"`)",
                ))
            }
        };
        let poll_endpoint = match &rj.poll_endpoint {
            Some(p) if p.get_ref().trim().is_empty() => {
                return Err(self.at(p, &f("poll_endpoint"), "expected an endpoint name"))
            }
            Some(p) => p.get_ref().trim().to_string(),
            None => {
                return Err(self.err(
                    start_at,
                    &f("poll_endpoint"),
                    "missing field `poll_endpoint`: the endpoint polls go to, e.g. `poll_endpoint = \"jobs.get\"`",
                ))
            }
        };
        Ok(Job { poll_every, poll_endpoint })
    }
}
