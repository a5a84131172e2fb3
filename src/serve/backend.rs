//! The seam between the emulator and the limiter that decides.
//!
//! The server asks a [`Backend`] three things: decide a request
//! ([`Backend::check`]), complete an admitted one when its response has been
//! sent or its client has gone ([`Backend::complete`]: release permits,
//! settle budgets with the real amounts), and report a key's live figures
//! ([`Backend::inspect`], for the usage endpoint). [`LocalBackend`] answers
//! with the production [`KeyedLimiter`] in this process; a backend keeping
//! the states elsewhere (Redis) implements the same trait.
//!
//! ## One instant per event, in order
//!
//! `LocalBackend` takes decisions and completions one at a time under one
//! lock, and gives each its own instant: the clock's reading, or one
//! nanosecond after the previous event's if the clock has not moved on (or
//! stepped back). Requests are numbered in the same order. So the log's
//! instants are strictly increasing in decision order, and a replay of the
//! log's arrivals through the simulator, which decides events in time order,
//! meets every limiter state exactly as the server did. The limiter itself
//! stays sharded; the lock only orders events (a few hundred nanoseconds
//! each, see `docs/PERFORMANCE.md`).

use parking_lot::Mutex;

use crate::engines::Decision;
use crate::limiter::{Clock, KeyedLimiter, SystemClock};
use crate::policy::{Plan, PlanDecision, Policy, Request, Tickets};
use crate::time::Nanos;

/// A decision and when it was made.
#[derive(Clone, Copy, Debug)]
pub struct Checked {
    /// The request's number: 0 for the first decision, in decision order.
    pub request: u64,
    /// The instant of the decision (ns since the Unix epoch).
    pub now: Nanos,
    /// The instant of the first decision: the log's `t_ns` origin.
    pub origin: Nanos,
    /// The plan's decision.
    pub decision: PlanDecision,
}

/// What the server needs from a limiter.
pub trait Backend: Send + Sync {
    /// The policy being enforced.
    fn policy(&self) -> &Policy;
    /// The plan being enforced.
    fn plan(&self) -> &Plan;
    /// Decides `req` now; an admission consumes its allowance.
    fn check(&self, req: &Request<'_>) -> Checked;
    /// Completes an admitted request now (its `tickets` from the decision;
    /// `req` carrying the actual tokens and money). Returns the instant.
    fn complete(&self, req: &Request<'_>, tickets: &Tickets) -> Nanos;
    /// What every limit applying to `req` would answer now for a request of
    /// cost 0 (see [`Plan::inspect`]), and the instant.
    fn inspect(&self, req: &Request<'_>) -> (Nanos, Vec<(usize, Decision)>);
}

/// The order of events: the last instant given out, the next request number.
#[derive(Debug, Default)]
struct Sequence {
    last: Nanos,
    next_request: u64,
    origin: Option<Nanos>,
}

impl Sequence {
    /// The next event's instant: the clock, or 1 ns after the previous one.
    fn tick(&mut self, clock: Nanos) -> Nanos {
        self.last = clock.max(self.last + 1);
        self.last
    }
}

/// The production limiter in this process (see the module docs).
pub struct LocalBackend<C: Clock = SystemClock> {
    limiter: KeyedLimiter<C>,
    sequence: Mutex<Sequence>,
}

impl<C: Clock> LocalBackend<C> {
    /// A backend deciding with `limiter`.
    pub fn new(limiter: KeyedLimiter<C>) -> LocalBackend<C> {
        LocalBackend { limiter, sequence: Mutex::new(Sequence::default()) }
    }

    /// The limiter.
    pub fn limiter(&self) -> &KeyedLimiter<C> {
        &self.limiter
    }
}

impl<C: Clock> Backend for LocalBackend<C> {
    fn policy(&self) -> &Policy {
        self.limiter.policy()
    }

    fn plan(&self) -> &Plan {
        self.limiter.plan()
    }

    fn check(&self, req: &Request<'_>) -> Checked {
        let mut seq = self.sequence.lock();
        let now = seq.tick(self.limiter.clock().now());
        let origin = *seq.origin.get_or_insert(now);
        let request = seq.next_request;
        seq.next_request += 1;
        let decision = self.limiter.check_at(req, now);
        Checked { request, now, origin, decision }
    }

    fn complete(&self, req: &Request<'_>, tickets: &Tickets) -> Nanos {
        let mut seq = self.sequence.lock();
        let now = seq.tick(self.limiter.clock().now());
        if !tickets.is_empty() {
            self.limiter.complete_at(req, tickets, now);
        }
        now
    }

    fn inspect(&self, req: &Request<'_>) -> (Nanos, Vec<(usize, Decision)>) {
        let seq = self.sequence.lock();
        let now = self.limiter.clock().now().max(seq.last);
        (now, self.limiter.inspect_at(req, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::ManualClock;
    use std::sync::Arc;

    #[test]
    fn events_get_strictly_increasing_instants_and_numbers() {
        let policy = Arc::new(
            crate::policy::parse(
                "provider = \"X\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"c\"\nalgorithm = \"concurrency\"\nmax = 1\n",
                "x.toml",
            )
            .unwrap(),
        );
        let clock = Arc::new(ManualClock::new(1_000));
        let b = LocalBackend::new(KeyedLimiter::with_clock(policy, "p", clock.clone()).unwrap());
        let req = Request::new("k");
        let first = b.check(&req);
        let second = b.check(&req);
        assert_eq!((first.request, first.now, first.origin), (0, 1_000, 1_000));
        assert_eq!((second.request, second.now, second.origin), (1, 1_001, 1_000));
        assert!(first.decision.allowed && !second.decision.allowed);
        clock.set(500); // the clock steps back: instants still increase
        assert_eq!(b.complete(&req, &first.decision.tickets), 1_002);
        let third = b.check(&req);
        assert_eq!(third.now, 1_003);
        assert!(third.decision.allowed, "the permit was released");
    }
}
