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
//!   drained, window over, nothing in flight; see [`Engine::is_idle`]) is
//!   indistinguishable from a fresh one, so dropping it changes no answer.
//!   A state is dropped only once it has been at rest for [`IDLE_GRACE`]
//!   (60 s), so a request decided with a slightly older `now` (another
//!   thread's clock read, a wall clock stepped back by less than that) still
//!   finds it. Each shard sweeps itself when it has doubled since its last
//!   sweep; call [`KeyedLimiter::evict_idle`] to sweep everything. A ticket
//!   completed twice is ignored, before eviction or after it (concurrency
//!   permit ids are grant instants, see [`crate::engines::Permit`]).
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

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashTable;

use crate::engines::{Completion, Engine, EngineState, FixedWindowState, GcraState, SlidingCounterState, StateMut};
use crate::ident::Ident;
use crate::policy::{render, Plan, PlanDecision, Policy, Rendered, Request, StateStore, Tickets, MAX_LIMITS_PER_PLAN};
use crate::time::{Nanos, SECOND};

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

/// One state: its scope identity, that identity's hash (computed once per
/// request and reused for the shard, the bucket and a cheap inequality test
/// before the key comparison), and the engine state.
struct Entry<S> {
    hash: u64,
    key: Ident,
    state: S,
}

/// One limit's states in one shard. Fixed-size states (GCRA, fixed window,
/// sliding counter) are stored unboxed, as in the simulator's store (a GCRA
/// entry is 48 bytes: hash, key, 16 bytes of state), and handed to the
/// engine as a typed [`StateMut`] reference.
enum Table {
    Gcra(HashTable<Entry<GcraState>>),
    FixedWindow(HashTable<Entry<FixedWindowState>>),
    SlidingCounter(HashTable<Entry<SlidingCounterState>>),
    Any(HashTable<Entry<EngineState>>),
}

/// The state of `key` in `table`, created by `fresh` if absent; `inserted`
/// counts a creation.
#[inline]
fn with_entry<S, R>(
    table: &mut HashTable<Entry<S>>,
    hash: u64,
    key: &str,
    inserted: &mut usize,
    fresh: impl FnOnce() -> S,
    f: impl FnOnce(&mut S) -> R,
) -> R {
    if let Some(e) = table.find_mut(hash, |e| e.hash == hash && e.key.is(key)) {
        return f(&mut e.state);
    }
    *inserted += 1;
    let entry = Entry { hash, key: Ident::new(key), state: fresh() };
    f(&mut table.insert_unique(hash, entry, |e| e.hash).into_mut().state)
}

impl Table {
    fn new(engine: &Engine) -> Table {
        match engine {
            Engine::Gcra(_) => Table::Gcra(HashTable::new()),
            Engine::FixedWindow(_) => Table::FixedWindow(HashTable::new()),
            Engine::SlidingCounter(_) => Table::SlidingCounter(HashTable::new()),
            _ => Table::Any(HashTable::new()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Table::Gcra(t) => t.len(),
            Table::FixedWindow(t) => t.len(),
            Table::SlidingCounter(t) => t.len(),
            Table::Any(t) => t.len(),
        }
    }

    #[inline]
    fn with_state<R>(
        &mut self,
        engine: &Engine,
        hash: u64,
        key: &str,
        inserted: &mut usize,
        f: impl FnOnce(StateMut<'_>) -> R,
    ) -> R {
        match self {
            Table::Gcra(t) => with_entry(t, hash, key, inserted, GcraState::default, |s| f(StateMut::Gcra(s))),
            Table::FixedWindow(t) => {
                with_entry(t, hash, key, inserted, FixedWindowState::default, |s| f(StateMut::FixedWindow(s)))
            }
            Table::SlidingCounter(t) => {
                with_entry(t, hash, key, inserted, SlidingCounterState::default, |s| f(StateMut::SlidingCounter(s)))
            }
            Table::Any(t) => with_entry(t, hash, key, inserted, || engine.new_state(), |s| f(s.into())),
        }
    }

    /// Drops the states that are idle at `now`; returns how many.
    fn evict_idle(&mut self, engine: &Engine, now: Nanos) -> usize {
        let before = self.len();
        match self {
            Table::Gcra(t) => t.retain(|e| !engine.is_idle(&EngineState::Gcra(e.state), now)),
            Table::FixedWindow(t) => t.retain(|e| !engine.is_idle(&EngineState::FixedWindow(e.state), now)),
            Table::SlidingCounter(t) => t.retain(|e| !engine.is_idle(&EngineState::SlidingCounter(e.state), now)),
            Table::Any(t) => t.retain(|e| !engine.is_idle(&e.state, now)),
        }
        before - self.len()
    }
}

/// One shard: per limit, the states by scope identity.
struct Shard {
    tables: Vec<Table>,
    /// States held, all tables together.
    len: usize,
    /// States held at the end of the last sweep (sweep again at twice that).
    swept_len: usize,
}

impl Shard {
    fn new(plan: &Plan) -> Shard {
        Shard { tables: plan.limits.iter().map(|l| Table::new(&l.engine)).collect(), len: 0, swept_len: 0 }
    }

    /// Evicts the states that were already idle [`IDLE_GRACE`] before `now`.
    fn sweep(&mut self, plan: &Plan, now: Nanos) -> usize {
        let idle_at = now.saturating_sub(IDLE_GRACE);
        let evicted: usize =
            plan.limits.iter().zip(self.tables.iter_mut()).map(|(limit, t)| t.evict_idle(&limit.engine, idle_at)).sum();
        self.len -= evicted;
        self.swept_len = self.len;
        evicted
    }
}

/// A shard's lock on a cache line pair of its own: threads working on
/// different shards then never contend for the same line (128 bytes: the
/// adjacent-line prefetcher pulls lines in pairs).
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A thread-safe limiter enforcing one plan of a policy.
pub struct KeyedLimiter<C: Clock = SystemClock> {
    policy: Arc<Policy>,
    plan: usize,
    clock: C,
    shards: Box<[Padded<Mutex<Shard>>]>,
    hasher: foldhash::fast::RandomState,
}

const SHARDS: usize = 64;
const MIN_SWEEP_LEN: usize = 1024;

/// A state is evicted only once it has been idle for this long: requests
/// decided at instants up to this much before the sweep's `now` (threads
/// that read the clock a moment earlier, a wall clock stepped back by NTP)
/// still find it, so they get exactly the answers they would without
/// eviction.
pub const IDLE_GRACE: Nanos = 60 * SECOND;

impl KeyedLimiter<SystemClock> {
    /// A limiter for plan `plan` of `policy` on the system clock.
    pub fn new(policy: Arc<Policy>, plan: &str) -> Result<Self, String> {
        Self::with_clock(policy, plan, SystemClock)
    }
}

impl<C: Clock> KeyedLimiter<C> {
    /// A limiter for plan `plan` of `policy` reading time from `clock`.
    pub fn with_clock(policy: Arc<Policy>, plan: &str, clock: C) -> Result<Self, String> {
        let index = policy.plans.iter().position(|p| p.name == plan).ok_or_else(|| {
            format!(
                "no plan named {plan:?} in policy {:?}; its plans are: {}",
                policy.provider,
                policy.plan_names().join(", ")
            )
        })?;
        let plan = &policy.plans[index];
        let shards = (0..SHARDS).map(|_| Padded(Mutex::new(Shard::new(plan)))).collect();
        Ok(KeyedLimiter { policy, plan: index, clock, shards, hasher: foldhash::fast::RandomState::default() })
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

    /// The hash of (limit, scope identity): it picks the shard (from bits
    /// 32 and up, so the table inside a shard still sees well-spread low and
    /// top bits) and the bucket within the shard's table.
    fn hash_of(&self, limit: usize, scope_key: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        limit.hash(&mut h);
        scope_key.hash(&mut h);
        h.finish()
    }

    fn shard_of(hash: u64) -> usize {
        ((hash >> 32) as usize) % SHARDS
    }

    /// Decides `req` now. `Ok` holds the admission guard; `Err` the denial.
    // Both variants carry the plan's decision inline; boxing the denial would
    // allocate on every 429, the path an overloaded service takes most.
    #[allow(clippy::result_large_err)]
    pub fn check(&self, req: &Request<'_>) -> Result<Admission<'_, C>, Denial<'_, C>> {
        let now = self.clock.now();
        let decision = self.check_at(req, now);
        if decision.allowed {
            let tickets = decision.tickets;
            let owned = (!tickets.is_empty()).then(|| OwnedRequest::from(req));
            Ok(Admission { limiter: self, decision, now, request: owned, done: false })
        } else {
            Err(Denial { limiter: self, decision, now })
        }
    }

    /// Decides `req` at an explicit instant (the clock is not read).
    /// Completion of admitted requests is then the caller's job
    /// ([`KeyedLimiter::complete_at`]).
    pub fn check_at(&self, req: &Request<'_>, now: Nanos) -> PlanDecision {
        let plan = self.plan();
        let applicable = plan.limits.iter().enumerate().filter(|(_, l)| l.selector.matches(req)).map(|(i, _)| i);
        let mut store = LockedStore::lock(self, req, applicable);
        let decision = plan.check(&mut store, now, req);
        store.maybe_sweep(plan, now);
        decision
    }

    /// Completes an admission made with [`KeyedLimiter::check_at`]: releases
    /// its permits and settles its budgets with `req`'s amounts. The returned
    /// [`Completion`] reports any budget overshoot (actual above reserved).
    pub fn complete_at(&self, req: &Request<'_>, tickets: &Tickets, now: Nanos) -> Completion {
        let mut store = LockedStore::lock(self, req, tickets.iter().map(|(i, _)| i));
        self.plan().complete(&mut store, now, req, tickets)
    }

    /// Drops every state that has been idle for [`IDLE_GRACE`] (lossless; see
    /// the module docs). Returns how many were dropped.
    pub fn evict_idle(&self) -> usize {
        let now = self.clock.now();
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).sweep(self.plan(), now)).sum()
    }

    /// States held (one per limit per scope identity seen and not evicted).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len).sum()
    }

    /// Whether no state is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The shards one request needs, locked in ascending order.
struct LockedStore<'a, C: Clock> {
    limiter: &'a KeyedLimiter<C>,
    /// The first `locked` entries hold (shard index, guard).
    guards: [Option<(usize, MutexGuard<'a, Shard>)>; MAX_LIMITS_PER_PLAN],
    locked: usize,
    /// Per limit, the hash of this request's identity, if computed.
    hashes: [Option<u64>; MAX_LIMITS_PER_PLAN],
}

impl<'a, C: Clock> LockedStore<'a, C> {
    /// Hashes `req`'s identity for each of `limits` and locks their shards,
    /// in ascending order (so two requests never deadlock).
    fn lock(limiter: &'a KeyedLimiter<C>, req: &Request<'_>, limits: impl Iterator<Item = usize>) -> Self {
        let plan = limiter.plan();
        let mut wanted = [usize::MAX; MAX_LIMITS_PER_PLAN];
        let mut hashes = [None; MAX_LIMITS_PER_PLAN];
        let mut n = 0;
        for i in limits {
            let h = limiter.hash_of(i, plan.limits[i].scope.key_of(req));
            hashes[i] = Some(h);
            wanted[n] = KeyedLimiter::<C>::shard_of(h);
            n += 1;
        }
        let wanted = &mut wanted[..n];
        wanted.sort_unstable();
        let mut guards: [Option<(usize, MutexGuard<'a, Shard>)>; MAX_LIMITS_PER_PLAN] = Default::default();
        let mut last = usize::MAX;
        let mut locked = 0;
        for &s in wanted.iter() {
            if s != last {
                let g = limiter.shards[s].lock().unwrap_or_else(|e| e.into_inner());
                guards[locked] = Some((s, g));
                locked += 1;
                last = s;
            }
        }
        LockedStore { limiter, guards, locked, hashes }
    }

    fn shard(&mut self, index: usize) -> &mut Shard {
        self.guards[..self.locked]
            .iter_mut()
            .flatten()
            .find(|(s, _)| *s == index)
            .map(|(_, g)| &mut **g)
            .expect("the shard was locked for this request")
    }

    fn maybe_sweep(&mut self, plan: &Plan, now: Nanos) {
        for (_, g) in self.guards[..self.locked].iter_mut().flatten() {
            if g.len >= MIN_SWEEP_LEN && g.len >= 2 * g.swept_len {
                g.sweep(plan, now);
            }
        }
    }
}

impl<C: Clock> StateStore for LockedStore<'_, C> {
    fn with_state<R>(&mut self, limit: usize, scope_key: &str, f: impl FnOnce(StateMut<'_>) -> R) -> R {
        let engine: &Engine = &self.limiter.plan().limits[limit].engine;
        let hash = self.hashes[limit].expect("the request's limits were hashed and locked first");
        let shard = self.shard(KeyedLimiter::<C>::shard_of(hash));
        shard.tables[limit].with_state(engine, hash, scope_key, &mut shard.len, f)
    }
}

/// An owned copy of a request, kept by an [`Admission`] that must complete.
#[derive(Clone, Debug)]
struct OwnedRequest {
    key: String,
    user: Option<String>,
    workspace: Option<String>,
    endpoint: String,
    authenticated: bool,
    tokens: u64,
    money: u64,
}

impl From<&Request<'_>> for OwnedRequest {
    fn from(r: &Request<'_>) -> Self {
        OwnedRequest {
            key: r.key.into(),
            user: r.user.map(Into::into),
            workspace: r.workspace.map(Into::into),
            endpoint: r.endpoint.into(),
            authenticated: r.authenticated,
            tokens: r.tokens,
            money: r.money,
        }
    }
}

impl OwnedRequest {
    fn as_request(&self) -> Request<'_> {
        Request {
            key: &self.key,
            user: self.user.as_deref(),
            workspace: self.workspace.as_deref(),
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
pub struct Admission<'a, C: Clock> {
    limiter: &'a KeyedLimiter<C>,
    decision: PlanDecision,
    now: Nanos,
    request: Option<OwnedRequest>,
    done: bool,
}

impl<C: Clock> Admission<'_, C> {
    /// The plan's decision.
    pub fn decision(&self) -> &PlanDecision {
        &self.decision
    }

    /// The HTTP status and headers to send (rendered from the policy).
    pub fn response(&self) -> Rendered {
        render(&self.limiter.policy, self.limiter.plan(), &self.decision, self.now)
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

impl<C: Clock> Drop for Admission<'_, C> {
    fn drop(&mut self) {
        let _ = self.complete(None);
    }
}

/// A denied request.
pub struct Denial<'a, C: Clock> {
    limiter: &'a KeyedLimiter<C>,
    decision: PlanDecision,
    now: Nanos,
}

impl<C: Clock> Denial<'_, C> {
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

impl<C: Clock> std::fmt::Debug for Admission<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("decision", &self.decision).field("now", &self.now).finish()
    }
}

impl<C: Clock> std::fmt::Debug for Denial<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Denial").field("decision", &self.decision).field("now", &self.now).finish()
    }
}
