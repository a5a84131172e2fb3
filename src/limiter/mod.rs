//! The production limiter: a thread-safe, keyed limiter over one plan.
//!
//! [`KeyedLimiter`] holds the state of every limit for every scope identity
//! (API key, user, workspace) in a sharded map, reads the time from a
//! [`Clock`], and runs the very same [`Plan::check`] as the simulator. Only
//! the clock differs: [`SystemClock`] in production, [`ManualClock`] in tests.
//!
//! - **Atomic across limits and threads.** A request locks the shards of all
//!   its states (in ascending shard order, so two requests never deadlock),
//!   decides every limit, commits only if all admit, then unlocks.
//! - **Idle keys are evicted losslessly.** A state that is at rest (bucket
//!   drained, window over, nothing in flight; see [`Engine::is_idle`](crate::engines::Engine::is_idle)) is
//!   indistinguishable from a fresh one, so dropping it changes no answer.
//!   A state is dropped only once it has been at rest for [`IDLE_GRACE`]
//!   (60 s), so a request decided with a slightly older `now` (another
//!   thread's clock read, a wall clock stepped back by less than that) still
//!   finds it. Each shard sweeps itself when it has doubled since its last
//!   sweep; call [`KeyedLimiter::evict_idle`] to sweep everything. A ticket
//!   completed twice is ignored, before eviction or after it (concurrency
//!   permit ids are grant instants, see [`crate::engines::Permit`]).
//! - **String or integer identities.** `KeyedLimiter<C>` takes requests
//!   whose identities are `&str`; `KeyedLimiter<C, u64>` (built with
//!   [`KeyedLimiter::build`], fed [`Request::with_id`]) takes `u64`s, for a
//!   service that has already resolved an API key to an account number. It
//!   keeps a GCRA state in 24 bytes and its table 75–90% full: about 31
//!   bytes per key, against about 100 for 20-byte string keys (see
//!   `docs/PERFORMANCE.md`). Both give the same decisions for the same
//!   identities.
//! - **Permits release themselves.** An admitted request returns an
//!   [`Admission`] guard; dropping it releases concurrency permits and
//!   settles budgets (with actual amounts if given to [`Admission::finish`]).
//!
//! # Example: a service answering like a provider's plan
//!
//! ```
//! use std::sync::Arc;
//! use ratesim::limiter::{KeyedLimiter, ManualClock};
//! use ratesim::policy::{self, Request};
//!
//! let policy = Arc::new(policy::parse(r#"
//!     provider = "Example"
//!     [[plan]]
//!     name = "pro"
//!     [[plan.limit]]
//!     id = "rpm"
//!     algorithm = "gcra"
//!     rate = "500/min"
//!     burst = 50
//! "#, "example.toml").unwrap());
//! // In production: KeyedLimiter::new(policy, "pro") reads the system clock.
//! let clock = ManualClock::new(1_767_225_600_000_000_000); // 2026-01-01T00:00:00Z
//! let limiter = KeyedLimiter::with_clock(policy, "pro", clock).unwrap();
//!
//! // In a request handler:
//! let req = Request { endpoint: "chat", ..Request::new("key-123") };
//! for _ in 0..50 {
//!     let admission = limiter.check(&req).expect("the burst is admitted");
//!     let response = admission.response(); // 200, X-RateLimit-* headers
//!     assert_eq!(response.status, 200);
//!     // ... serve the request; dropping `admission` completes it.
//! }
//! let denial = limiter.check(&req).unwrap_err();
//! let response = denial.response();
//! assert_eq!(response.status, 429);
//! assert_eq!(response.header("Retry-After"), Some("1")); // 120 ms, rounded up
//! assert!(response.body.unwrap().contains("RATE_LIMIT_EXCEEDED"));
//! ```

mod int_map;
mod redis;
mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::engines::{Completion, Decision};
use crate::policy::{render, Plan, PlanDecision, Policy, Rendered, Request, Tickets, MAX_LIMITS_PER_PLAN};
use crate::time::{Nanos, SECOND};

pub use redis::{FailMode, RedisDecision, RedisLimiter, RedisLimiterConfig, RedisLimiterError, RedisLimiterStats};
pub use store::Key;
use store::{Shards, SharedStore};

/// A source of the current instant.
pub trait Clock: Send + Sync {
    /// Nanoseconds since the Unix epoch.
    fn now(&self) -> Nanos;
}

/// The system's wall clock. Engines stay correct (conservative) if it steps
/// back; calendar budgets and Unix-timestamp headers need wall time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Nanos {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
    }
}

/// A clock that moves only when told to: for tests and examples.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock reading `now`.
    pub fn new(now: Nanos) -> ManualClock {
        ManualClock { now: AtomicU64::new(now) }
    }

    /// Sets the time.
    pub fn set(&self, now: Nanos) {
        self.now.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward by `by` nanoseconds.
    pub fn advance(&self, by: Nanos) {
        self.now.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Nanos {
        self.now.load(Ordering::SeqCst)
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn now(&self) -> Nanos {
        (**self).now()
    }
}

/// A thread-safe limiter enforcing one plan of a policy, keyed by string
/// identities (`K = str`, the default) or by integers (`K = u64`, 8 bytes
/// per identity; see [`Key`]).
pub struct KeyedLimiter<C: Clock = SystemClock, K: Key + ?Sized = str> {
    policy: Arc<Policy>,
    plan: usize,
    clock: C,
    shards: Shards<K>,
}

/// A state is evicted only once it has been idle for this long: requests
/// decided at instants up to this much before the sweep's `now` (threads
/// that read the clock a moment earlier, a wall clock stepped back by NTP)
/// still find it, so they get exactly the answers they would without
/// eviction.
pub const IDLE_GRACE: Nanos = 60 * SECOND;

impl KeyedLimiter<SystemClock> {
    /// A limiter for plan `plan` of `policy` on the system clock, keyed by
    /// strings.
    pub fn new(policy: Arc<Policy>, plan: &str) -> Result<Self, String> {
        Self::with_clock(policy, plan, SystemClock)
    }
}

impl<C: Clock> KeyedLimiter<C> {
    /// A limiter for plan `plan` of `policy` reading time from `clock`,
    /// keyed by strings.
    pub fn with_clock(policy: Arc<Policy>, plan: &str, clock: C) -> Result<Self, String> {
        Self::build(policy, plan, clock)
    }
}

impl<C: Clock, K: Key + ?Sized> KeyedLimiter<C, K> {
    /// A limiter for plan `plan` of `policy` reading time from `clock`, keyed
    /// by `K`: `KeyedLimiter::<_, u64>::build(policy, "pro", SystemClock)`
    /// takes requests whose identities are `u64`s.
    pub fn build(policy: Arc<Policy>, plan: &str, clock: C) -> Result<Self, String> {
        let index = policy.plans.iter().position(|p| p.name == plan).ok_or_else(|| {
            format!(
                "no plan named {plan:?} in policy {:?}; its plans are: {}",
                policy.provider,
                policy.plan_names().join(", ")
            )
        })?;
        if policy.plans[index].limits.len() > MAX_LIMITS_PER_PLAN {
            return Err(format!("plan {plan:?} has more than {MAX_LIMITS_PER_PLAN} limits"));
        }
        let shards = Shards::new(&policy.plans[index]);
        Ok(KeyedLimiter { policy, plan: index, clock, shards })
    }

    /// The plan being enforced.
    pub fn plan(&self) -> &Plan {
        &self.policy.plans[self.plan]
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Decides `req` now. `Ok` holds the admission guard; `Err` the denial.
    // Both variants carry the plan's decision inline; boxing the denial would
    // allocate on every 429, the path an overloaded service takes most.
    #[allow(clippy::result_large_err)]
    pub fn check(&self, req: &Request<'_, K::Ref<'_>>) -> Result<Admission<'_, C, K>, Denial<'_, C, K>> {
        let now = self.clock.now();
        let decision = self.check_at(req, now);
        if decision.allowed {
            let tickets = decision.tickets;
            let owned = (!tickets.is_empty()).then(|| OwnedRequest::of(req));
            Ok(Admission { limiter: self, decision, now, request: owned, done: false })
        } else {
            Err(Denial { limiter: self, decision, now })
        }
    }

    /// Decides `req` at an explicit instant (the clock is not read).
    /// Completion of admitted requests is then the caller's job
    /// ([`KeyedLimiter::complete_at`]).
    #[inline]
    pub fn check_at(&self, req: &Request<'_, K::Ref<'_>>, now: Nanos) -> PlanDecision {
        let plan = self.plan();
        plan.check(&mut self.store(now), now, req)
    }

    /// Completes an admission made with [`KeyedLimiter::check_at`]: releases
    /// its permits and settles its budgets with `req`'s amounts. The returned
    /// [`Completion`] reports any budget overshoot (actual above reserved).
    pub fn complete_at(&self, req: &Request<'_, K::Ref<'_>>, tickets: &Tickets, now: Nanos) -> Completion {
        self.plan().complete(&mut self.store(now), now, req, tickets)
    }

    /// What every limit applying to `req` would answer at `now` for a
    /// request of cost 0, consuming nothing (see [`Plan::inspect`]): a
    /// key's live figures, e.g. for a usage endpoint.
    pub fn inspect_at(&self, req: &Request<'_, K::Ref<'_>>, now: Nanos) -> Vec<(usize, Decision)> {
        self.plan().inspect(&mut self.store(now), now, req)
    }

    /// The states, for a request decided at `now`.
    #[inline]
    fn store(&self, now: Nanos) -> SharedStore<'_, K> {
        SharedStore { plan: self.plan(), shards: &self.shards, idle_at: now.saturating_sub(IDLE_GRACE) }
    }

    /// Drops every state that has been idle for [`IDLE_GRACE`] (lossless; see
    /// the module docs). Returns how many were dropped.
    pub fn evict_idle(&self) -> usize {
        let idle_at = self.clock.now().saturating_sub(IDLE_GRACE);
        let plan = self.plan();
        self.shards.sum(|limit, shard, hashes| shard.sweep(plan, limit, idle_at, hashes))
    }

    /// States held (one per limit per scope identity seen and not evicted).
    pub fn len(&self) -> usize {
        self.shards.sum(|_, shard, _| shard.len)
    }

    /// Whether no state is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An owned copy of a request, kept by an [`Admission`] that must complete.
struct OwnedRequest<K: Key + ?Sized> {
    key: K::Owned,
    user: Option<K::Owned>,
    workspace: Option<K::Owned>,
    endpoint: String,
    authenticated: bool,
    tokens: u64,
    money: u64,
}

impl<K: Key + ?Sized> OwnedRequest<K> {
    fn of(r: &Request<'_, K::Ref<'_>>) -> Self {
        OwnedRequest {
            key: K::owned(r.key),
            user: r.user.map(K::owned),
            workspace: r.workspace.map(K::owned),
            endpoint: r.endpoint.into(),
            authenticated: r.authenticated,
            tokens: r.tokens,
            money: r.money,
        }
    }

    fn as_request(&self) -> Request<'_, K::Ref<'_>> {
        Request {
            key: K::borrowed(&self.key),
            user: self.user.as_ref().map(K::borrowed),
            workspace: self.workspace.as_ref().map(K::borrowed),
            endpoint: &self.endpoint,
            authenticated: self.authenticated,
            tokens: self.tokens,
            money: self.money,
        }
    }
}

/// An admitted request. Dropping it completes the request: concurrency
/// permits are released and budgets settled with the amounts the request
/// was checked with; [`Admission::finish`] settles actual amounts instead.
pub struct Admission<'a, C: Clock, K: Key + ?Sized = str> {
    limiter: &'a KeyedLimiter<C, K>,
    decision: PlanDecision,
    now: Nanos,
    request: Option<OwnedRequest<K>>,
    done: bool,
}

impl<C: Clock, K: Key + ?Sized> Admission<'_, C, K> {
    /// The plan's decision.
    pub fn decision(&self) -> &PlanDecision {
        &self.decision
    }

    /// The HTTP status and headers to send (rendered from the policy).
    pub fn response(&self) -> Rendered {
        render(&self.limiter.policy, self.limiter.plan(), &self.decision, self.now)
    }

    /// How long to hold the request before serving it: nonzero only for a
    /// plan with an nginx `limit_req` limit that queues excess requests
    /// (`PlanDecision::delay`). The allowance is already counted; a server
    /// modelling nginx waits this long (keeping the request, and this guard,
    /// in flight) before it serves.
    pub fn delay(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.decision.delay)
    }

    /// Completes the request with its actual token count and money amount
    /// (minor units), as counted once it finished. The [`Completion`] reports
    /// by how much a budget's settlement exceeded what admission reserved
    /// (the spend above the limit that a service then has to absorb).
    pub fn finish(mut self, tokens: u64, money: u64) -> Completion {
        self.complete(Some((tokens, money)))
    }

    fn complete(&mut self, actual: Option<(u64, u64)>) -> Completion {
        if self.done {
            return Completion::default();
        }
        self.done = true;
        match &self.request {
            Some(owned) => {
                let mut req = owned.as_request();
                if let Some((tokens, money)) = actual {
                    req.tokens = tokens;
                    req.money = money;
                }
                let now = self.limiter.clock.now();
                self.limiter.complete_at(&req, &self.decision.tickets, now)
            }
            None => Completion::default(),
        }
    }
}

impl<C: Clock, K: Key + ?Sized> Drop for Admission<'_, C, K> {
    fn drop(&mut self) {
        let _ = self.complete(None);
    }
}

/// A denied request.
pub struct Denial<'a, C: Clock, K: Key + ?Sized = str> {
    limiter: &'a KeyedLimiter<C, K>,
    decision: PlanDecision,
    now: Nanos,
}

impl<C: Clock, K: Key + ?Sized> Denial<'_, C, K> {
    /// The plan's decision (which limit denied, when to retry).
    pub fn decision(&self) -> &PlanDecision {
        &self.decision
    }

    /// The id of the limit that denied the request.
    pub fn limit_id(&self) -> &str {
        let i = self.decision.denied_by.expect("a denial names its limit");
        &self.limiter.plan().limits[i].id
    }

    /// The HTTP status, headers and JSON body to send.
    pub fn response(&self) -> Rendered {
        render(&self.limiter.policy, self.limiter.plan(), &self.decision, self.now)
    }
}

impl<C: Clock, K: Key + ?Sized> std::fmt::Debug for Admission<'_, C, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("decision", &self.decision).field("now", &self.now).finish()
    }
}

impl<C: Clock, K: Key + ?Sized> std::fmt::Debug for Denial<'_, C, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Denial").field("decision", &self.decision).field("now", &self.now).finish()
    }
}
