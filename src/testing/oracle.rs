//! [`Oracle`]: ratesim's exact answer for any plan, one request at a time.

use crate::policy::{Plan, PlanDecision, Request, Tickets};
use crate::time::Nanos;
use crate::verify::ReplayStore;

/// The exact model of a plan: one limit (each algorithm on its own) or
/// several composed atomically, answering requests in the order given, at
/// the instants given, through [`Plan::check`] — the code the simulator and
/// the production limiter run.
///
/// ```
/// use ratesim::policy::{self, Request};
/// use ratesim::testing::Oracle;
/// use ratesim::time::{MILLISECOND, SECOND};
///
/// let policy = policy::parse(
///     "provider = \"x\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"rps\"\nalgorithm = \"gcra\"\nrate = \"10/s\"\nburst = 2\n",
///     "x.toml",
/// )?;
/// let mut oracle = Oracle::new(&policy.plans[0]);
/// let req = Request::new("key-1");
/// assert!(oracle.check(SECOND, &req).allowed);
/// assert!(oracle.check(SECOND, &req).allowed);
/// let denied = oracle.check(SECOND, &req);
/// assert_eq!(denied.retry.at(), Some(SECOND + 100 * MILLISECOND)); // exact: admitted then, not 1 ns before
/// assert!(!oracle.would_admit(SECOND + 100 * MILLISECOND - 1, &req));
/// assert!(oracle.would_admit(SECOND + 100 * MILLISECOND, &req));
/// # Ok::<(), ratesim::policy::PolicyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Oracle<'p> {
    plan: &'p Plan,
    store: ReplayStore,
}

impl<'p> Oracle<'p> {
    /// A fresh model of `plan`: every bucket empty, every window unused.
    pub fn new(plan: &'p Plan) -> Oracle<'p> {
        Oracle { plan, store: ReplayStore::new(plan) }
    }

    /// The plan's decision for `req` at `now`, committed if admitted (keep
    /// its `tickets` for [`Oracle::complete`] when the plan has concurrency
    /// caps or budgets).
    pub fn check(&mut self, now: Nanos, req: &Request<'_>) -> PlanDecision {
        self.plan.check(&mut self.store, now, req)
    }

    /// Whether `req` would be admitted at `now`, consuming nothing.
    pub fn would_admit(&self, now: Nanos, req: &Request<'_>) -> bool {
        self.plan.check(&mut self.store.copy_for(self.plan, req), now, req).allowed
    }

    /// An admitted request finished at `now`: releases its concurrency
    /// permits and settles its budgets with the request's amounts.
    pub fn complete(&mut self, now: Nanos, req: &Request<'_>, tickets: &Tickets) {
        self.plan.complete(&mut self.store, now, req, tickets);
    }

    /// The plan.
    pub fn plan(&self) -> &'p Plan {
        self.plan
    }
}
