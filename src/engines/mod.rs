//! Limiter engines: pure state machines that take `now` as an argument.
//!
//! Each engine is split in two, as in `governor`: an immutable *configuration*
//! (the rate, the window, the limit) and a small mutable *state* per key. The
//! configuration's methods take the state and the current instant and answer a
//! [`Decision`]. No engine reads a clock: production passes the wall clock,
//! the simulator its virtual clock, and both run this same code.
//!
//! Every engine follows one two-step protocol, which is what makes atomic
//! composition across several limits possible (see [`crate::policy`]):
//!
//! 1. [`Engine::decide`] looks at the state at `now` for a request of `cost`
//!    units and says whether it would be admitted. It never consumes
//!    allowance; it may only forget what has expired by `now`.
//! 2. [`Engine::commit`] consumes the allowance of an admitted request and
//!    returns a [`Ticket`]. Call it only after `decide` said yes at the same
//!    `now` with no other change in between.
//! 3. [`Engine::complete`] is called when an admitted request finishes: it
//!    releases a concurrency permit or settles a budget reservation.
//!
//! And one step for denials: [`Engine::deny`] is called after a request was
//! denied (by this limit or another of the plan). It changes nothing, except
//! on a limit that counts denied requests (a fixed window with
//! `count_denied`, as `INCR`-then-compare counters do), which adds the cost.
//!
//! ## Dialects
//!
//! Where a widely deployed limiter differs from the textbook algorithm,
//! options of the engines model it (a fixed window opened by a key's first
//! request, denied requests that count, a floored sliding estimate, a closed
//! rolling window) and two engines are its own ([`TokenBucketSteps`] for
//! Envoy's local rate limit, [`NginxLimitReq`] for nginx `limit_req`). Named
//! presets set them as each implementation behaves: [`dialect`].
//!
//! ## Time
//!
//! Instants are [`Nanos`] since the Unix epoch. Instants given to one state
//! should not decrease; if one does (a wall clock stepped back, two threads
//! racing), every engine answers conservatively: an earlier instant never
//! admits more than the latest instant already seen would.
//!
//! ## Retry instants
//!
//! A denial carries [`Retry`]: the exact earliest instant at which the *same*
//! request would be admitted if nothing else arrived, `Never` if it cannot be
//! admitted at all (cost above capacity), or `Unknown` where it depends on
//! events the engine cannot foresee (a concurrency permit without a lease).
//! The admission condition of every engine is monotone in time when nothing
//! arrives, so the instant for several limits together is the latest of the
//! individual instants.

mod budget;
mod concurrency;
pub mod dialect;
mod fixed_window;
mod gcra;
mod nginx_limit_req;
mod sliding_counter;
mod sliding_log;
mod token_bucket_steps;

pub use budget::{Budget, BudgetPeriod, BudgetState};
pub use concurrency::{Concurrency, ConcurrencyState, Permit};
pub use dialect::Dialect;
pub use fixed_window::{FixedWindow, FixedWindowState, WindowAlign};
pub use gcra::{Gcra, GcraState};
pub use nginx_limit_req::{NginxLimitReq, NginxLimitReqState};
pub use sliding_counter::{SlidingCounter, SlidingCounterState};
pub use sliding_log::{SlidingLog, SlidingLogState};
pub use token_bucket_steps::{TokenBucketSteps, TokenBucketStepsState};

use crate::time::Nanos;

/// When a denied request could be admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Retry {
    /// The request was admitted; there is nothing to wait for.
    Now,
    /// The earliest instant at which the same request would be admitted if
    /// nothing else arrived (admitted exactly then, denied one nanosecond
    /// before).
    At(Nanos),
    /// Admission depends on events the engine cannot foresee (a permit
    /// released by a client). Production omits `Retry-After` unless the
    /// policy configures a hint (see [`crate::policy::ResponseStyle`]).
    Unknown,
    /// The request can never be admitted: its cost exceeds the capacity.
    Never,
}

impl Retry {
    /// The instant as an option: `Some` only for [`Retry::At`].
    pub fn at(self) -> Option<Nanos> {
        match self {
            Retry::At(t) => Some(t),
            _ => None,
        }
    }

    /// Combines the retry answers of several limits for one request: the
    /// request is admitted once every limit admits it, so the latest instant
    /// wins, `Never` dominates, and `Unknown` dominates any instant.
    pub fn and(self, other: Retry) -> Retry {
        use Retry::*;
        match (self, other) {
            (Never, _) | (_, Never) => Never,
            (Unknown, _) | (_, Unknown) => Unknown,
            (At(a), At(b)) => At(a.max(b)),
            (At(a), Now) | (Now, At(a)) => At(a),
            (Now, Now) => Now,
        }
    }
}

/// What an engine answers for one request at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The engine's capacity in cost units: the burst of a bucket, the limit
    /// of a window, the maximum in flight, the budget.
    pub limit: u64,
    /// Cost units that could still be admitted at this instant, after this
    /// request if it was admitted.
    pub remaining: u64,
    /// The instant at which the engine is back to its full allowance if
    /// nothing else arrives: the bucket empty (GCRA), the newest entry out of
    /// the window (sliding log), the end of the current window (fixed window;
    /// sliding counter: when both counts have decayed), the last lease ended
    /// (concurrency with leases; `now` without), the end of the period
    /// (calendar budgets; `u64::MAX` for lifetime budgets). Engines whose
    /// state can be empty report `now` when nothing is in use.
    pub reset: Nanos,
    /// For a denial, when the same request could be admitted; [`Retry::Now`]
    /// when allowed.
    pub retry: Retry,
    /// For an admission, how long the server holds the request before
    /// serving it: nginx `limit_req` without `nodelay` admits excess requests
    /// *after a wait* instead of refusing them (see [`NginxLimitReq`]). Zero
    /// for every other engine, and for denials.
    pub delay: Nanos,
}

/// What [`Engine::commit`] hands back, to be given to [`Engine::complete`]
/// when the request finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Ticket {
    /// Nothing to release or settle (rate and window engines).
    #[default]
    None,
    /// A concurrency permit.
    Permit(Permit),
    /// A budget reservation: `amount` reserved in budget period `period`.
    Reservation {
        /// The period index the reservation belongs to.
        period: u64,
        /// The reserved (estimated) amount.
        amount: u64,
    },
}

/// What [`Engine::complete`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Completion {
    /// The settle overshoot: how far the actual amount exceeded the amount
    /// reserved for it, `max(0, actual - estimate)`. Budgets only; see
    /// [`Budget::excess`] for how far spending exceeds the limit.
    pub overshoot: u64,
}

/// One limit's algorithm and parameters: a closed set, dispatched by `match`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Leaky bucket / GCRA.
    Gcra(Gcra),
    /// Fixed window aligned to the Unix epoch.
    FixedWindow(FixedWindow),
    /// Exact rolling window.
    SlidingLog(SlidingLog),
    /// Two-window weighted estimate.
    SlidingCounter(SlidingCounter),
    /// Cap on requests in flight.
    Concurrency(Concurrency),
    /// Spend or token budget per calendar day, month or rolling period.
    Budget(Budget),
    /// Token bucket refilled in steps (Envoy's local rate limit).
    TokenBucketSteps(TokenBucketSteps),
    /// nginx `limit_req`: milli-requests, whole milliseconds, delays.
    NginxLimitReq(NginxLimitReq),
}

/// The state of one [`Engine`] for one key.
///
/// States serialize with `serde` (field by field, in declaration order): the
/// Redis module stores them in RDB snapshots and AOF rewrites, and guards
/// that encoding with a golden test (`crates/ratesim-redis`), so a change to
/// a state's fields is noticed and versioned there.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EngineState {
    /// State of a [`Gcra`].
    Gcra(GcraState),
    /// State of a [`FixedWindow`].
    FixedWindow(FixedWindowState),
    /// State of a [`SlidingLog`].
    SlidingLog(SlidingLogState),
    /// State of a [`SlidingCounter`].
    SlidingCounter(SlidingCounterState),
    /// State of a [`Concurrency`].
    Concurrency(ConcurrencyState),
    /// State of a [`Budget`].
    Budget(BudgetState),
    /// State of a [`TokenBucketSteps`].
    TokenBucketSteps(TokenBucketStepsState),
    /// State of a [`NginxLimitReq`].
    NginxLimitReq(NginxLimitReqState),
}

/// A mutable reference to the state of one [`Engine`] for one key: what the
/// engine methods work on. A store may keep states as [`EngineState`]s
/// (`&mut EngineState` converts into this) or unboxed in columns of one
/// algorithm's state type (then it hands out the matching variant, with no
/// copy in or out).
#[derive(Debug)]
pub enum StateMut<'a> {
    /// State of a [`Gcra`].
    Gcra(&'a mut GcraState),
    /// State of a [`FixedWindow`].
    FixedWindow(&'a mut FixedWindowState),
    /// State of a [`SlidingLog`].
    SlidingLog(&'a mut SlidingLogState),
    /// State of a [`SlidingCounter`].
    SlidingCounter(&'a mut SlidingCounterState),
    /// State of a [`Concurrency`].
    Concurrency(&'a mut ConcurrencyState),
    /// State of a [`Budget`].
    Budget(&'a mut BudgetState),
    /// State of a [`TokenBucketSteps`].
    TokenBucketSteps(&'a mut TokenBucketStepsState),
    /// State of a [`NginxLimitReq`].
    NginxLimitReq(&'a mut NginxLimitReqState),
}

impl<'a> From<&'a mut EngineState> for StateMut<'a> {
    #[inline]
    fn from(state: &'a mut EngineState) -> StateMut<'a> {
        match state {
            EngineState::Gcra(s) => StateMut::Gcra(s),
            EngineState::FixedWindow(s) => StateMut::FixedWindow(s),
            EngineState::SlidingLog(s) => StateMut::SlidingLog(s),
            EngineState::SlidingCounter(s) => StateMut::SlidingCounter(s),
            EngineState::Concurrency(s) => StateMut::Concurrency(s),
            EngineState::Budget(s) => StateMut::Budget(s),
            EngineState::TokenBucketSteps(s) => StateMut::TokenBucketSteps(s),
            EngineState::NginxLimitReq(s) => StateMut::NginxLimitReq(s),
        }
    }
}

impl StateMut<'_> {
    /// The same reference for a shorter time (to call two engine methods on
    /// one state).
    #[inline]
    pub fn reborrow(&mut self) -> StateMut<'_> {
        match self {
            StateMut::Gcra(s) => StateMut::Gcra(s),
            StateMut::FixedWindow(s) => StateMut::FixedWindow(s),
            StateMut::SlidingLog(s) => StateMut::SlidingLog(s),
            StateMut::SlidingCounter(s) => StateMut::SlidingCounter(s),
            StateMut::Concurrency(s) => StateMut::Concurrency(s),
            StateMut::Budget(s) => StateMut::Budget(s),
            StateMut::TokenBucketSteps(s) => StateMut::TokenBucketSteps(s),
            StateMut::NginxLimitReq(s) => StateMut::NginxLimitReq(s),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $state:ident, $e:ident, $s:ident => $body:expr) => {
        match ($self, $state) {
            (Engine::Gcra($e), StateMut::Gcra($s)) => $body,
            (Engine::FixedWindow($e), StateMut::FixedWindow($s)) => $body,
            (Engine::SlidingLog($e), StateMut::SlidingLog($s)) => $body,
            (Engine::SlidingCounter($e), StateMut::SlidingCounter($s)) => $body,
            (Engine::Concurrency($e), StateMut::Concurrency($s)) => $body,
            (Engine::Budget($e), StateMut::Budget($s)) => $body,
            (Engine::TokenBucketSteps($e), StateMut::TokenBucketSteps($s)) => $body,
            (Engine::NginxLimitReq($e), StateMut::NginxLimitReq($s)) => $body,
            _ => panic!("engine state of another algorithm: a state must come from its own engine's new_state"),
        }
    };
}

impl Engine {
    /// A fresh state: empty bucket, empty window, nothing in flight.
    pub fn new_state(&self) -> EngineState {
        match self {
            Engine::Gcra(_) => EngineState::Gcra(GcraState::default()),
            Engine::FixedWindow(_) => EngineState::FixedWindow(FixedWindowState::default()),
            Engine::SlidingLog(_) => EngineState::SlidingLog(SlidingLogState::default()),
            Engine::SlidingCounter(_) => EngineState::SlidingCounter(SlidingCounterState::default()),
            Engine::Concurrency(_) => EngineState::Concurrency(ConcurrencyState::default()),
            Engine::Budget(_) => EngineState::Budget(BudgetState::default()),
            Engine::TokenBucketSteps(_) => EngineState::TokenBucketSteps(TokenBucketStepsState::default()),
            Engine::NginxLimitReq(_) => EngineState::NginxLimitReq(NginxLimitReqState::default()),
        }
    }

    /// Would a request of `cost` units be admitted at `now`? Consumes nothing.
    ///
    /// # Panics
    /// If `state` was made by an engine of another algorithm (a programming
    /// error; states are created by [`Engine::new_state`]).
    #[inline(always)]
    pub fn decide<'s>(&self, state: impl Into<StateMut<'s>>, now: Nanos, cost: u64) -> Decision {
        let state = state.into();
        dispatch!(self, state, e, s => e.decide(s, now, cost))
    }

    /// Consumes the allowance of an admitted request. Call only right after
    /// [`Engine::decide`] admitted the same request at the same `now`.
    #[inline]
    pub fn commit<'s>(&self, state: impl Into<StateMut<'s>>, now: Nanos, cost: u64) -> Ticket {
        match (self, state.into()) {
            (Engine::Gcra(e), StateMut::Gcra(s)) => {
                e.commit(s, now, cost);
                Ticket::None
            }
            (Engine::FixedWindow(e), StateMut::FixedWindow(s)) => {
                e.commit(s, now, cost);
                Ticket::None
            }
            (Engine::SlidingLog(e), StateMut::SlidingLog(s)) => {
                e.commit(s, now, cost);
                Ticket::None
            }
            (Engine::SlidingCounter(e), StateMut::SlidingCounter(s)) => {
                e.commit(s, now, cost);
                Ticket::None
            }
            (Engine::Concurrency(e), StateMut::Concurrency(s)) => Ticket::Permit(e.commit(s, now)),
            (Engine::Budget(e), StateMut::Budget(s)) => {
                let period = e.commit(s, now, cost);
                Ticket::Reservation { period, amount: cost }
            }
            (Engine::TokenBucketSteps(e), StateMut::TokenBucketSteps(s)) => {
                e.commit(s, now, cost);
                Ticket::None
            }
            (Engine::NginxLimitReq(e), StateMut::NginxLimitReq(s)) => {
                e.commit(s, now, cost);
                Ticket::None
            }
            _ => panic!("engine state of another algorithm"),
        }
    }

    /// `decide`, then `commit` if admitted or [`Engine::deny`] if not: the
    /// one-limit convenience. A denial's figures are those after `deny`
    /// (they differ only where denied requests count).
    #[inline]
    pub fn acquire<'s>(&self, state: impl Into<StateMut<'s>>, now: Nanos, cost: u64) -> (Decision, Ticket) {
        let mut state = state.into();
        let d = self.decide(state.reborrow(), now, cost);
        if d.allowed {
            (d, self.commit(state, now, cost))
        } else {
            (self.deny(state, now, cost).unwrap_or(d), Ticket::None)
        }
    }

    /// A request of `cost` was denied at `now`, by this limit or another one
    /// of the plan. A limit that counts denied requests (a fixed window with
    /// `count_denied`) adds the cost and returns its answer for the same
    /// request after counting it, as [`Engine::decide`] would give it now
    /// (remaining units, reset and retry instant as they are after the
    /// count; a denial if this limit denied the request); every other limit
    /// changes nothing and answers `None`.
    #[inline]
    pub fn deny<'s>(&self, state: impl Into<StateMut<'s>>, now: Nanos, cost: u64) -> Option<Decision> {
        match (self, state.into()) {
            (Engine::FixedWindow(e), StateMut::FixedWindow(s)) => e.deny(s, now, cost),
            _ => None,
        }
    }

    /// Whether [`Engine::deny`] can change this limit's state.
    pub fn counts_denied(&self) -> bool {
        matches!(self, Engine::FixedWindow(e) if e.counts_denied())
    }

    /// Whether an admission can carry a [`Decision::delay`] (nginx
    /// `limit_req` without `nodelay`).
    pub fn can_delay(&self) -> bool {
        matches!(self, Engine::NginxLimitReq(e) if e.can_delay())
    }

    /// An admitted request finished at `now`; `actual` is its real cost for a
    /// budget (ignored by the others). Releases permits, settles budgets.
    pub fn complete<'s>(&self, state: impl Into<StateMut<'s>>, now: Nanos, ticket: Ticket, actual: u64) -> Completion {
        match (self, state.into(), ticket) {
            (Engine::Concurrency(e), StateMut::Concurrency(s), Ticket::Permit(p)) => {
                e.release(s, now, p);
                Completion::default()
            }
            (Engine::Budget(e), StateMut::Budget(s), Ticket::Reservation { period, amount }) => {
                Completion { overshoot: e.settle(s, now, period, amount, actual) }
            }
            _ => Completion::default(),
        }
    }

    /// Whether `state` is at rest at `now`: indistinguishable from a fresh
    /// state for every future decision (bucket drained, window over, nothing
    /// in flight, budget period over). Dropping such a state loses nothing,
    /// which is how the production limiter evicts idle keys without changing
    /// any answer.
    pub fn is_idle(&self, state: &EngineState, now: Nanos) -> bool {
        match (self, state) {
            (Engine::Gcra(e), EngineState::Gcra(s)) => e.is_idle(s, now),
            (Engine::FixedWindow(e), EngineState::FixedWindow(s)) => e.is_idle(s, now),
            (Engine::SlidingLog(e), EngineState::SlidingLog(s)) => e.is_idle(s, now),
            (Engine::SlidingCounter(e), EngineState::SlidingCounter(s)) => e.is_idle(s, now),
            (Engine::Concurrency(_), EngineState::Concurrency(s)) => s.in_flight() == 0,
            (Engine::Budget(e), EngineState::Budget(s)) => e.is_idle(s, now),
            (Engine::TokenBucketSteps(e), EngineState::TokenBucketSteps(s)) => e.is_idle(s, now),
            (Engine::NginxLimitReq(e), EngineState::NginxLimitReq(s)) => e.is_idle(s, now),
            _ => false,
        }
    }

    /// The capacity in cost units (burst, window limit, max in flight,
    /// budget, bucket size; `burst + 1` for nginx `limit_req`).
    pub fn capacity(&self) -> u64 {
        match self {
            Engine::Gcra(e) => e.burst(),
            Engine::FixedWindow(e) => e.limit(),
            Engine::SlidingLog(e) => e.limit(),
            Engine::SlidingCounter(e) => e.limit(),
            Engine::Concurrency(e) => e.max(),
            Engine::Budget(e) => e.limit(),
            Engine::TokenBucketSteps(e) => e.max(),
            Engine::NginxLimitReq(e) => e.capacity(),
        }
    }
}

/// `a / b` for a u128 dividend, on the cheap u64 path when it fits.
#[inline]
pub(crate) fn div_u128(a: u128, b: u64) -> u128 {
    if a <= u64::MAX as u128 {
        ((a as u64) / b) as u128
    } else {
        a / b as u128
    }
}

/// `ceil(a / b)` for a u128 dividend.
#[inline]
pub(crate) fn div_ceil_u128(a: u128, b: u64) -> u128 {
    if a <= u64::MAX as u128 {
        ((a as u64).div_ceil(b)) as u128
    } else {
        a.div_ceil(b as u128)
    }
}

/// Saturating conversion of a computed instant to [`Nanos`].
#[inline]
pub(crate) fn sat_nanos(v: u128) -> Nanos {
    if v > u64::MAX as u128 {
        u64::MAX
    } else {
        v as u64
    }
}
