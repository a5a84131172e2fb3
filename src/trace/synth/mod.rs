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
//! (`"250ms"`, `"10s"`, `"1.5min"`, `"24h"`; see [`parse_duration`](crate::time::parse_duration)); rates
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
//! samples are never negative. A parameter giving a size (`value`, `mean`,
//! `median`, `min`, `max`; `e^mu` for `mu`) may be at most
//! [`MAX_AMOUNT`] (10^15) for tokens and cost and
//! 100 years for durations, and a sample in the far tail of a distribution
//! (a lognormal with a large `sigma`) is capped at that maximum.
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
use std::collections::BinaryHeap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod parse;
mod sample;

pub use parse::{load_spec, parse_spec};
use sample::{next_arrival, to_whole, uniform};

use super::{TraceError, TraceRow, TraceSource, TraceTime, MAX_AMOUNT};
use crate::time::{Nanos, Rate, MAX_DURATION};
use crate::trace::scale::Factor;

/// Most clients one spec may define (over all populations): each costs
/// about 0.7 KB while its trace is generated.
pub const MAX_CLIENTS: u64 = 1_000_000;

/// The most rows a spec may be expected to produce (over its horizon, or up
/// to a `--until`) before the command line asks for a confirmation
/// (`--allow-huge`): a billion rows, about ten minutes of `ratesim run` on
/// one core. See [`Spec::expected_rows`].
pub const MAX_ROWS_UNCONFIRMED: f64 = 1e9;

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

    /// The expected number of rows with an offset below `until` (the whole
    /// horizon if `None`): each client's expected arrivals in its active
    /// span, from the mean rate of its arrival process. An estimate for
    /// random processes (the count varies around it from seed to seed), a
    /// little above the exact count for `constant`; cheap to compute however
    /// long the trace, so a caller can refuse a spec that would run for days
    /// before generating any of it.
    pub fn expected_rows(&self, until: Option<Nanos>) -> f64 {
        let until = until.unwrap_or(self.horizon).min(self.horizon);
        self.populations
            .iter()
            .map(|p| {
                let span = p.end.min(until).saturating_sub(p.start) as f64;
                p.clients as f64 * p.arrival.expected_arrivals(span)
            })
            .sum()
    }

    /// This spec at `factor` times the offered load: every population's
    /// per-client arrival rate multiplied (see [`crate::trace::scale`]).
    /// `constant` rates are scaled exactly (`count·num / period·den`); the
    /// other processes' rates (the on-period rate of `on-off`, the mean of
    /// `diurnal`, both ends of a `ramp`, the base and peak of a
    /// `flash-crowd`) as floats. Times (`on`, `off`, `at`, `decay`,
    /// `period`) and attributes stay; 1 changes nothing.
    pub fn scaled(&self, factor: Factor) -> Result<Spec, String> {
        let (num, den) = factor.ratio();
        let f = factor.as_f64();
        let mut spec = self.clone();
        for pop in &mut spec.populations {
            pop.arrival = match pop.arrival {
                Arrival::Constant { rate, random_phase } => {
                    let count = rate.count() as u128 * num as u128;
                    let period = rate.period() as u128 * den as u128;
                    let g = crate::trace::scale::gcd(
                        u64::try_from(count).unwrap_or(u64::MAX),
                        u64::try_from(period).unwrap_or(u64::MAX),
                    )
                    .max(1) as u128;
                    let scaled = u64::try_from(count / g)
                        .ok()
                        .zip(u64::try_from(period / g).ok())
                        .and_then(|(c, p)| Rate::new(c, p))
                        .ok_or_else(|| {
                            format!("population {:?}: the rate {rate} scaled by {factor} does not fit", pop.name)
                        })?;
                    Arrival::Constant { rate: scaled, random_phase }
                }
                Arrival::Poisson { rate } => Arrival::Poisson { rate: rate * f },
                Arrival::OnOff { rate, on, off, exponential, random_phase } => {
                    Arrival::OnOff { rate: rate * f, on, off, exponential, random_phase }
                }
                Arrival::Diurnal { rate, amplitude, period, peak_at } => {
                    Arrival::Diurnal { rate: rate * f, amplitude, period, peak_at }
                }
                Arrival::Ramp { from, to, over } => Arrival::Ramp { from: from * f, to: to * f, over },
                Arrival::FlashCrowd { base, at, peak, decay } => {
                    Arrival::FlashCrowd { base: base * f, at, peak: peak * f, decay }
                }
            };
        }
        Ok(spec)
    }

    /// This spec with `n` times as many clients in every population, and
    /// `n` times as many keys, users and workspaces (`shared_keys`, `users`
    /// and a `workspaces` count multiplied), so each key, user and workspace
    /// sends what it sent before (see [`crate::trace::scale`]). Clients
    /// `0..clients` keep their streams and so their rows' times and
    /// attributes. At most [`MAX_CLIENTS`] clients in all.
    pub fn with_key_copies(&self, n: u32) -> Result<Spec, String> {
        let mut spec = self.clone();
        let total = self.clients().saturating_mul(n as u64);
        if total > MAX_CLIENTS {
            return Err(format!(
                "{n} times the {} clients of the spec is {total} clients; at most {MAX_CLIENTS}",
                self.clients()
            ));
        }
        for pop in &mut spec.populations {
            pop.clients *= n;
            pop.shared_keys = pop.shared_keys.map(|k| k * n);
            pop.users *= n;
            if let Workspaces::Modulo(w) = pop.workspaces {
                pop.workspaces = Workspaces::Modulo(w * n);
            }
        }
        Ok(spec)
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
        row.tokens = to_whole(d.sample(rng), MAX_AMOUNT);
    }
    if let Some(d) = &pop.cost {
        row.cost = to_whole(d.sample(rng), MAX_AMOUNT);
    }
    if let Some(d) = &pop.duration {
        row.duration = to_whole(d.sample(rng), MAX_DURATION);
    }
    if let Some(job) = &pop.job {
        row.poll_every = job.poll_every;
        row.poll_endpoint.push_str(&job.poll_endpoint);
    }
}
