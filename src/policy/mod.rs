//! Policies: a provider's plans, their limits, and how decisions are answered.
//!
//! A [`Policy`] is read from a TOML file (see [`parse`] and the format
//! reference in README.md). It holds [`Plan`]s; a plan holds [`Limit`]s. Each
//! limit is one [`Engine`] plus where it applies:
//!
//! - a [`Selector`] picks the requests it sees (endpoints, authentication
//!   state; e.g. the health endpoint is not limited, WriftAI's unauthenticated
//!   clients have their own limit);
//! - a [`Scope`] picks whose state a request uses (API key, user, workspace,
//!   or one global state);
//! - a [`Measure`] says what a request costs on it (one request, a weight per
//!   endpoint, its tokens, its money).
//!
//! ## Atomic composition
//!
//! [`Plan::check`] admits a request iff **every** applicable limit admits it.
//! All applicable limits are decided first (consuming nothing); only if all
//! admit is each one committed. A denied request therefore consumes nothing
//! anywhere: no minute-limit allowance leaks when the hour limit denies.
//!
//! The denial names the *binding* limit: the denying limit whose retry answer
//! is the latest ([`Retry::Never`] before [`Retry::Unknown`] before the latest
//! instant), the first declared among equals. Its status and code answer the
//! request. The combined retry instant holds for all limits together: every
//! engine's admission is monotone in time when nothing arrives, so the
//! request is admitted at the latest of the individual instants.
//!
//! ## Denied requests that count
//!
//! A fixed window with `count_denied` (the `python-limits` and
//! `redis-incr-expire` dialects) models an `INCR`-then-compare counter, which
//! is not atomic: the real implementation adds every request to the counter
//! before comparing. In a plan, such a limit therefore also counts a request
//! that the plan denies, whichever limit denied it; limits that do not count
//! denials still consume nothing. So a composed plan means: *decide every
//! limit; if all admit, commit all; otherwise deny, and add the request to
//! every applicable counting limit* — what a gateway does that increments
//! all of a request's counters in one round trip and then compares each
//! (Envoy's global rate limit service, a Redis pipeline of `INCR`s), and
//! independent of the limits' order. (Flask-Limiter, which hits its limits
//! one after another and stops at the first that refuses, also charges the
//! limits before the refusing one and none after it: that order-dependent
//! variant is not modelled.) The denial's figures are then those after the
//! counts: the binding limit is chosen as above, among the limits that
//! denied before counting; its `remaining`, `reset` and retry instant, the
//! reported limit's figures, and the plan's retry instant are computed after
//! every count was added, so the retry instant stays exact for the same
//! request arriving again with nothing else in between.
//!
//! ## Delayed admissions
//!
//! An nginx `limit_req` limit may admit a request after a wait
//! ([`Decision::delay`]). A plan's admission waits for the longest delay of
//! its limits ([`PlanDecision::delay`]), as nginx does with several
//! `limit_req` zones; a denial never waits.

mod explain;
pub mod overrides;
mod parse;
mod response;

pub use overrides::{Override, PolicyDocument};
pub use parse::{load, parse, PolicyError};
pub(crate) use response::status_listed;
pub use response::{
    render, retry_headers, Rendered, ResetFormat, ResponseStyle, RetryAfterFormat, RetryAfterValue, RetryHeaders,
    ShouldRetry, RETRY_AFTER_MS, X_SHOULD_RETRY,
};

use crate::engines::{Completion, Decision, Engine, Retry, StateMut, Ticket};
use crate::time::Nanos;

/// Most limits in one plan (keeps a decision allocation-free).
pub const MAX_LIMITS_PER_PLAN: usize = 16;

/// A provider's policy: its plans and how responses look.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The provider's name, e.g. `RunInfra`.
    pub provider: String,
    /// The documentation page the policy models, if given.
    pub source: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// How decisions are rendered as HTTP responses.
    pub response: ResponseStyle,
    /// The plans, in file order.
    pub plans: Vec<Plan>,
}

impl Policy {
    /// The plan called `name`.
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }

    /// The plan names, in file order.
    pub fn plan_names(&self) -> Vec<&str> {
        self.plans.iter().map(|p| p.name.as_str()).collect()
    }

    /// A one-line summary, as `ratesim policy check` prints it:
    /// `RunInfra, 5 plans (pro, pro-max, team, team-max, enterprise), 5 limits`.
    pub fn summary(&self) -> String {
        let limits: usize = self.plans.iter().map(|pl| pl.limits.len()).sum();
        format!(
            "{}, {} plan{} ({}), {} limit{}",
            self.provider,
            self.plans.len(),
            if self.plans.len() == 1 { "" } else { "s" },
            self.plan_names().join(", "),
            limits,
            if limits == 1 { "" } else { "s" }
        )
    }

    /// A human summary of every plan (or one), as `ratesim policy explain` prints it.
    pub fn explain(&self, plan: Option<&str>) -> Result<String, String> {
        explain::explain(self, plan)
    }
}

/// One plan: a named set of limits that all apply together.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The plan's name, unique within its policy.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The limits, in declared order: at most [`MAX_LIMITS_PER_PLAN`]
    /// (`parse` refuses more; [`Plan::check`] panics on a plan built by hand
    /// with more).
    pub limits: Vec<Limit>,
}

/// Whose state a limit keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// One state per API key (the default).
    Key,
    /// One state per user, shared by the user's keys.
    User,
    /// One state per workspace (organisation), shared by its users and keys.
    Workspace,
    /// One state for all requests.
    Global,
}

impl Scope {
    /// The scope's name as written in policy files.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::User => "user",
            Scope::Workspace => "workspace",
            Scope::Global => "global",
        }
    }

    /// The identity this scope keys on for `req`. A request without a user
    /// (or workspace) falls back to its key, so it is limited on its own.
    /// The global scope has one identity, [`Identity::GLOBAL`].
    #[inline]
    pub fn key_of<I: Identity>(self, req: &Request<'_, I>) -> I {
        match self {
            Scope::Key => req.key,
            Scope::User => req.user.unwrap_or(req.key),
            Scope::Workspace => req.workspace.unwrap_or(req.key),
            Scope::Global => I::GLOBAL,
        }
    }
}

/// Which authentication state a limit applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMatch {
    /// Any request.
    Any,
    /// Authenticated requests only.
    Authenticated,
    /// Unauthenticated requests only.
    Unauthenticated,
}

/// Which requests a limit applies to.
///
/// Endpoint patterns are exact names or prefixes ending in `*`
/// (`"registry.*"`). A request matches if its endpoint matches one of
/// `endpoints` (or `endpoints` is empty), matches none of `except`, and its
/// authentication state matches `auth`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// Endpoints the limit applies to; empty means all.
    pub endpoints: Vec<String>,
    /// Endpoints it never applies to (e.g. `health`).
    pub except: Vec<String>,
    /// Authentication state.
    pub auth: AuthMatch,
}

impl Default for Selector {
    fn default() -> Self {
        Selector { endpoints: Vec::new(), except: Vec::new(), auth: AuthMatch::Any }
    }
}

fn pattern_matches(pattern: &str, endpoint: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => endpoint.starts_with(prefix),
        None => pattern == endpoint,
    }
}

impl Selector {
    /// Whether the limit applies to `req`.
    #[inline]
    pub fn matches<I>(&self, req: &Request<'_, I>) -> bool {
        let auth_ok = match self.auth {
            AuthMatch::Any => true,
            AuthMatch::Authenticated => req.authenticated,
            AuthMatch::Unauthenticated => !req.authenticated,
        };
        auth_ok
            && (self.endpoints.is_empty() || self.endpoints.iter().any(|p| pattern_matches(p, req.endpoint)))
            && !self.except.iter().any(|p| pattern_matches(p, req.endpoint))
    }
}

/// What one request costs on a limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Measure {
    /// A fixed cost per request (default 1), with per-endpoint overrides
    /// (exact endpoint names).
    Requests {
        /// Cost of a request on any other endpoint.
        cost: u64,
        /// `(endpoint, cost)` overrides.
        by_endpoint: Vec<(String, u64)>,
    },
    /// The request's tokens.
    Tokens,
    /// The request's money amount in integer minor units of `currency`.
    Money {
        /// ISO 4217 code, e.g. `INR`, `USD`.
        currency: String,
    },
}

impl Measure {
    /// The amount `req` counts on this limit (for budgets: the actual amount,
    /// settled at completion).
    #[inline]
    pub fn amount<I>(&self, req: &Request<'_, I>) -> u64 {
        match self {
            Measure::Requests { cost, by_endpoint } => {
                by_endpoint.iter().find(|(e, _)| e == req.endpoint).map_or(*cost, |(_, c)| *c)
            }
            Measure::Tokens => req.tokens,
            Measure::Money { .. } => req.money,
        }
    }

    /// The unit's name for people: `requests`, `tokens`, `INR`.
    pub fn unit(&self) -> &str {
        match self {
            Measure::Requests { .. } => "requests",
            Measure::Tokens => "tokens",
            Measure::Money { currency } => currency,
        }
    }
}

/// One limit of a plan.
#[derive(Clone, Debug)]
pub struct Limit {
    /// Identifier, unique within the plan, e.g. `rpm`.
    pub id: String,
    /// The algorithm and its parameters.
    pub engine: Engine,
    /// Whose state it keeps.
    pub scope: Scope,
    /// Which requests it sees.
    pub selector: Selector,
    /// What a request costs on it.
    pub measure: Measure,
    /// Budgets: what is reserved at admission (the actual amount is settled
    /// at completion).
    pub reserve: Reserve,
    /// HTTP status of a denial (429; 402 for a payment budget).
    pub status: u16,
    /// Machine-readable error code of a denial.
    pub code: String,
    /// Human message of a denial.
    pub message: String,
    /// A JSON body template for this limit's denials, overriding the policy's.
    pub body: Option<serde_json::Value>,
    /// Whether this limit's figures may appear in rate-limit headers.
    pub report: bool,
    /// Overrides the policy's reset header format for this limit.
    pub reset_format: Option<ResetFormat>,
    /// The value advertised in the limit header instead of the engine's
    /// capacity (e.g. a leaky bucket of 500/min with burst 50 advertised as
    /// `X-RateLimit-Limit: 500`, as RunInfra's page shows).
    pub header_limit: Option<u64>,
    /// Line in the policy file where the limit is declared.
    pub line: usize,
}

/// What a budget reserves when it admits a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserve {
    /// A fixed estimate per request. `Fixed(0)` reserves nothing: requests
    /// are admitted while usage has not exceeded the budget.
    Fixed(u64),
    /// The request's own measured amount (known in advance, e.g. a price).
    Measured,
}

/// A scope identity: what a limit's state is keyed on (an API key, a user,
/// a workspace). Strings (`&str`) as requests carry them, or integers
/// (`u64`) for a service that has already resolved a key to an account
/// number: the production limiter then stores 8 bytes per identity (see
/// [`crate::limiter`]). Two identities are the same state iff they are
/// equal.
pub trait Identity: Copy + Eq + std::hash::Hash + std::fmt::Debug {
    /// The one identity of the global scope. It never meets a request's own
    /// identities: each limit's states are kept apart.
    const GLOBAL: Self;
}

impl Identity for &str {
    const GLOBAL: Self = "";
}

impl Identity for u64 {
    const GLOBAL: Self = 0;
}

/// The facts about a request that policies look at. `I` is the type of its
/// identities: `&str` by default, or `u64` (see [`Identity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a, I = &'a str> {
    /// API key (or client identity for unauthenticated requests).
    pub key: I,
    /// User owning the key, if known.
    pub user: Option<I>,
    /// Workspace owning the key, if known.
    pub workspace: Option<I>,
    /// Endpoint name, e.g. `invoke`; empty if unknown.
    pub endpoint: &'a str,
    /// Whether the request is authenticated.
    pub authenticated: bool,
    /// Tokens the request uses (for token budgets).
    pub tokens: u64,
    /// Money the request costs, in minor units (for spend budgets).
    pub money: u64,
}

impl<'a> Request<'a> {
    /// An authenticated request on `key` to no particular endpoint.
    pub fn new(key: &'a str) -> Request<'a> {
        Request { key, user: None, workspace: None, endpoint: "", authenticated: true, tokens: 0, money: 0 }
    }
}

impl<'a, I: Identity> Request<'a, I> {
    /// The same request from user `user` (builder style; unlike struct update
    /// syntax, it takes a `&String` where `I` is `&str`).
    pub fn with_user(mut self, user: I) -> Self {
        self.user = Some(user);
        self
    }

    /// The same request from workspace `workspace`.
    pub fn with_workspace(mut self, workspace: I) -> Self {
        self.workspace = Some(workspace);
        self
    }

    /// The same request to endpoint `endpoint`.
    pub fn with_endpoint(mut self, endpoint: &'a str) -> Self {
        self.endpoint = endpoint;
        self
    }
}

impl<'a> Request<'a, u64> {
    /// An authenticated request on the integer identity `key` to no
    /// particular endpoint.
    pub fn with_id(key: u64) -> Request<'a, u64> {
        Request { key, user: None, workspace: None, endpoint: "", authenticated: true, tokens: 0, money: 0 }
    }
}

/// The states one request touches: entry `i` is limit `i`'s state for the
/// request's identity, `Some` exactly for the limits asked for.
pub type States<'s> = [Option<StateMut<'s>>; MAX_LIMITS_PER_PLAN];

/// A set of limits of one plan: bit `i` is limit `i` (an index into
/// [`Plan::limits`]).
pub type LimitSet = u32;

/// Gives [`Plan::check`] the states of the limits a request touches.
///
/// The simulator keeps states in dense columns indexed by interned
/// identities; the production limiter in locked shards. Both run the same
/// [`Plan::check`].
pub trait StateStore<I: Identity> {
    /// Runs `f` on the states of the limits in `limits`, each for its scope
    /// identity `key_of(i)`, all at once: `states[i]` is `Some` exactly for
    /// the limits in the set. A state the store does not hold yet is created
    /// with [`Engine::new_state`]. Each limit keeps its own states, so the
    /// references are distinct, and a plan decides every limit and then
    /// commits each with one lookup per state. A concurrent store keeps the
    /// states to itself until `f` returns (the production limiter holds their
    /// shards' locks).
    fn with_states<R>(
        &mut self,
        limits: LimitSet,
        key_of: impl Fn(usize) -> I,
        f: impl FnOnce(&mut States<'_>) -> R,
    ) -> R;
}

/// A [`States`] with no state in it. (A function, not a constant: copying
/// a constant array is a call to `memcpy`; this writes 16 tags in place.)
#[inline(always)]
pub fn no_states<'s>() -> States<'s> {
    std::array::from_fn(|_| None)
}

/// The indices of the limits in `set`, ascending.
#[inline]
pub fn limits_in(mut set: LimitSet) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (set != 0).then(|| {
            let i = set.trailing_zeros() as usize;
            set &= set - 1;
            i
        })
    })
}

/// Most limits needing a completion (concurrency caps and budgets) in one plan.
pub const MAX_COMPLETING_LIMITS_PER_PLAN: usize = 4;

/// The completion tickets of an admitted request, one per limit that needs
/// a completion (concurrency permits, budget reservations). Inline, no heap.
///
/// Two `Tickets` are equal when they hold the same tickets in the same order
/// (entries past the length are not compared: a cleared list keeps them).
#[derive(Clone, Copy, Default)]
pub struct Tickets {
    len: u8,
    items: [(u8, Ticket); MAX_COMPLETING_LIMITS_PER_PLAN],
}

impl PartialEq for Tickets {
    fn eq(&self, other: &Tickets) -> bool {
        self.items[..self.len as usize] == other.items[..other.len as usize]
    }
}

impl Eq for Tickets {}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Tickets {
    const EMPTY: Tickets = Tickets { len: 0, items: [(0, Ticket::None); MAX_COMPLETING_LIMITS_PER_PLAN] };

    /// Adds the ticket `t` of limit `limit` (for a caller rebuilding an
    /// admission's tickets, e.g. from a Redis reply).
    ///
    /// # Panics
    /// If the list already holds [`MAX_COMPLETING_LIMITS_PER_PLAN`] tickets.
    pub fn push(&mut self, limit: usize, t: Ticket) {
        self.items[self.len as usize] = (limit as u8, t);
        self.len += 1;
    }

    /// `(limit index, ticket)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Ticket)> + '_ {
        self.items[..self.len as usize].iter().map(|&(i, t)| (i as usize, t))
    }

    /// Whether no limit needs a completion.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A plan's answer to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanDecision {
    /// Whether every applicable limit admitted the request.
    pub allowed: bool,
    /// HTTP status: 200 when allowed, else the binding limit's status.
    pub status: u16,
    /// Index of the binding (denying) limit.
    pub denied_by: Option<usize>,
    /// The binding limit's own decision (its figures fill the error body).
    pub denial: Option<Decision>,
    /// The limit whose figures the rate-limit headers show, and its decision:
    /// when denied by a reportable or rate-like limit (GCRA, windows), that
    /// limit; otherwise the reportable applicable limit with the fewest
    /// remaining units (first declared among equals), if any. So a
    /// concurrency cap or a budget (`report = false` by default) never
    /// appears in `X-RateLimit-*` headers; its figures go in the error body.
    pub reported: Option<(usize, Decision)>,
    /// When the same request would be admitted by all limits together.
    pub retry: Retry,
    /// Completion tickets (empty when denied).
    pub tickets: Tickets,
    /// How many limits applied.
    pub applied: u8,
    /// For an admission, how long the server holds the request before
    /// serving it: the longest [`Decision::delay`] of the limits (nginx
    /// `limit_req`); 0 for every other admission and for denials.
    pub delay: Nanos,
}

/// Fills `out` from the decision `d` (and ticket `t`, if admitted) of the
/// only applicable limit, `limit` (index `i`).
#[inline(always)]
fn one_limit(out: &mut PlanDecision, limit: &Limit, i: usize, d: Decision, t: Ticket) {
    out.applied = 1;
    if d.allowed {
        if t != Ticket::None {
            out.tickets.push(i, t);
        }
        out.reported = limit.report.then_some((i, d));
        out.delay = d.delay;
    } else {
        out.allowed = false;
        out.status = limit.status;
        out.denied_by = Some(i);
        out.denial = Some(d);
        out.reported = (limit.report || limit.is_rate_like()).then_some((i, d));
        out.retry = d.retry;
    }
}

impl PlanDecision {
    /// Admitted, no limit applied: what a plan answers before any limit
    /// has a say.
    const EMPTY: PlanDecision = PlanDecision {
        allowed: true,
        status: 200,
        denied_by: None,
        denial: None,
        reported: None,
        retry: Retry::Now,
        tickets: Tickets::EMPTY,
        applied: 0,
        delay: 0,
    };
}

impl PlanDecision {
    /// Makes this [`PlanDecision::EMPTY`] again, field by field (copying
    /// a whole default decision would be a call to `memcpy`; unused ticket
    /// entries are left as they are, and compare as absent). A unit test
    /// checks that the two agree.
    #[inline(always)]
    fn clear(&mut self) {
        self.allowed = true;
        self.status = 200;
        self.denied_by = None;
        self.denial = None;
        self.reported = None;
        self.retry = Retry::Now;
        self.tickets.len = 0;
        self.applied = 0;
        self.delay = 0;
    }
}

impl Default for PlanDecision {
    /// Admitted, no limit applied (what a plan with no applicable limit
    /// answers).
    fn default() -> Self {
        PlanDecision::EMPTY
    }
}

fn severity(r: Retry) -> (u8, Nanos) {
    match r {
        Retry::Now => (0, 0),
        Retry::At(t) => (1, t),
        Retry::Unknown => (2, 0),
        Retry::Never => (3, 0),
    }
}

impl Plan {
    /// The limit with identifier `id`.
    pub fn limit(&self, id: &str) -> Option<&Limit> {
        self.limits.iter().find(|l| l.id == id)
    }

    /// The limits whose selector matches `req`: bit `i` is limit `i`.
    #[inline]
    pub fn applicable<I>(&self, req: &Request<'_, I>) -> LimitSet {
        let mut set: LimitSet = 0;
        for (i, limit) in self.limits.iter().enumerate() {
            if limit.selector.matches(req) {
                set |= 1 << i;
            }
        }
        set
    }

    /// Decides `req` at `now` against every applicable limit, atomically
    /// (see the module docs), committing the admission if all admit.
    pub fn check<I: Identity, S: StateStore<I>>(
        &self,
        store: &mut S,
        now: Nanos,
        req: &Request<'_, I>,
    ) -> PlanDecision {
        let mut out = PlanDecision::EMPTY;
        self.decide_into(store, now, req, &mut out);
        out
    }

    /// [`Plan::check`], writing the decision into `out` (whatever it held
    /// before): a decision is a few hundred bytes, and a caller deciding
    /// millions of requests saves moving each one.
    #[inline]
    pub fn check_into<I: Identity, S: StateStore<I>>(
        &self,
        store: &mut S,
        now: Nanos,
        req: &Request<'_, I>,
        out: &mut PlanDecision,
    ) {
        out.clear();
        self.decide_into(store, now, req, out);
    }

    /// [`Plan::check`] into an `out` that is [`PlanDecision::EMPTY`].
    #[inline]
    fn decide_into<I: Identity, S: StateStore<I>>(
        &self,
        store: &mut S,
        now: Nanos,
        req: &Request<'_, I>,
        out: &mut PlanDecision,
    ) {
        assert!(self.limits.len() <= MAX_LIMITS_PER_PLAN, "a plan has at most {MAX_LIMITS_PER_PLAN} limits");
        let applicable = self.applicable(req);
        store.with_states(
            applicable,
            |i| self.limits[i].scope.key_of(req),
            |states| self.decide_and_commit(states, applicable, now, req, out),
        );
    }

    /// [`Plan::check`] on the states of the applicable limits.
    #[inline]
    fn decide_and_commit<I>(
        &self,
        states: &mut States<'_>,
        applicable: LimitSet,
        now: Nanos,
        req: &Request<'_, I>,
        out: &mut PlanDecision,
    ) {
        if applicable.is_power_of_two() {
            // One limit applies (the common case): the same answer as the
            // general path below, without merging several decisions. A GCRA
            // is decided inline here, so its figures go straight into `out`
            // (through a copy of the engine's `Decision`, the processor
            // would wait on the load of the just-written fields).
            let i = applicable.trailing_zeros() as usize;
            let limit = &self.limits[i];
            let cost = limit.admission_cost(req);
            let mut state = states[i].take().expect("the store gives every applicable limit's state");
            if let (Engine::Gcra(g), StateMut::Gcra(s)) = (&limit.engine, state.reborrow()) {
                let d = g.decide(s, now, cost);
                if d.allowed {
                    g.commit(s, now, cost);
                }
                one_limit(out, limit, i, d, Ticket::None);
            } else {
                let (d, t) = limit.engine.acquire(state, now, cost);
                one_limit(out, limit, i, d, t);
            }
            return;
        }
        let mut allowed = true;
        let mut retry = Retry::Now;
        let mut delay: Nanos = 0;
        let mut binding: Option<(usize, Decision)> = None;
        let mut reported: Option<(usize, Decision)> = None;
        for i in limits_in(applicable) {
            let limit = &self.limits[i];
            let state = states[i].as_mut().expect("the store gives every applicable limit's state");
            let d = limit.engine.decide(state.reborrow(), now, limit.admission_cost(req));
            retry = retry.and(d.retry);
            delay = delay.max(d.delay);
            if !d.allowed {
                allowed = false;
                if binding.is_none_or(|(_, b)| severity(d.retry) > severity(b.retry)) {
                    binding = Some((i, d));
                }
            }
            if limit.report && reported.is_none_or(|(_, r)| d.remaining < r.remaining) {
                reported = Some((i, d));
            }
        }
        let applied = applicable.count_ones() as u8;
        if allowed {
            for i in limits_in(applicable) {
                let limit = &self.limits[i];
                let state = states[i].as_mut().expect("the store gives every applicable limit's state");
                let t = limit.engine.commit(state.reborrow(), now, limit.admission_cost(req));
                if t != Ticket::None {
                    out.tickets.push(i, t);
                }
            }
            out.reported = reported;
            out.applied = applied;
            out.delay = delay;
        } else {
            let (i, mut d) = binding.expect("a denial has a binding limit");
            if limits_in(applicable).any(|j| self.limits[j].engine.counts_denied()) {
                // Count the denial where it counts, then take every figure
                // from the states as they are now (see the module docs).
                (retry, reported) = (Retry::Now, None);
                for j in limits_in(applicable) {
                    let limit = &self.limits[j];
                    let cost = limit.admission_cost(req);
                    let state = states[j].as_mut().expect("the store gives every applicable limit's state");
                    let dj = match limit.engine.deny(state.reborrow(), now, cost) {
                        Some(after) => after,
                        None => limit.engine.decide(state.reborrow(), now, cost),
                    };
                    retry = retry.and(dj.retry);
                    if j == i {
                        d = dj;
                    }
                    if limit.report && reported.is_none_or(|(_, r)| dj.remaining < r.remaining) {
                        reported = Some((j, dj));
                    }
                }
            }
            let binding = Some((i, d));
            out.allowed = false;
            out.status = self.limits[i].status;
            out.denied_by = Some(i);
            out.denial = Some(d);
            out.reported = if self.limits[i].report || self.limits[i].is_rate_like() { binding } else { reported };
            out.retry = retry;
            out.applied = applied;
        }
    }

    /// What every limit that applies to `req` would answer at `now` for a
    /// request of cost 0, consuming nothing: `(limit index, decision)` in
    /// plan order. A decision's `remaining` is then the room left now
    /// (for a concurrency cap, which ignores cost, the room after one more
    /// permit). The emulator's usage endpoint reports these live figures.
    pub fn inspect<I: Identity, S: StateStore<I>>(
        &self,
        store: &mut S,
        now: Nanos,
        req: &Request<'_, I>,
    ) -> Vec<(usize, Decision)> {
        let applicable = self.applicable(req);
        store.with_states(
            applicable,
            |i| self.limits[i].scope.key_of(req),
            |states| {
                limits_in(applicable)
                    .map(|i| {
                        let state = states[i].as_mut().expect("the store gives every applicable limit's state");
                        (i, self.limits[i].engine.decide(state.reborrow(), now, 0))
                    })
                    .collect()
            },
        )
    }

    /// An admitted request finished at `now`: releases its permits and
    /// settles its budgets with the request's actual amounts. Returns the
    /// largest settle overshoot (see [`crate::engines::Budget`]).
    pub fn complete<I: Identity, S: StateStore<I>>(
        &self,
        store: &mut S,
        now: Nanos,
        req: &Request<'_, I>,
        tickets: &Tickets,
    ) -> Completion {
        let mut set: LimitSet = 0;
        for (i, _) in tickets.iter() {
            set |= 1 << i;
        }
        if set == 0 {
            return Completion::default();
        }
        store.with_states(
            set,
            |i| self.limits[i].scope.key_of(req),
            |states| {
                let mut out = Completion::default();
                for (i, ticket) in tickets.iter() {
                    let limit = &self.limits[i];
                    let actual = limit.measure.amount(req);
                    let state = states[i].as_mut().expect("the store gives every ticket's state");
                    let c = limit.engine.complete(state.reborrow(), now, ticket, actual);
                    out.overshoot = out.overshoot.max(c.overshoot);
                }
                out
            },
        )
    }
}

impl Limit {
    /// Whether the limit counts requests over time (GCRA or a window), as
    /// `X-RateLimit-*` headers describe; concurrency caps and budgets do not.
    pub fn is_rate_like(&self) -> bool {
        !matches!(self.engine, Engine::Concurrency(_) | Engine::Budget(_))
    }

    /// What admission consumes for `req`: the measured amount for rate and
    /// window limits, the configured reservation for budgets, one permit for
    /// concurrency.
    #[inline]
    pub fn admission_cost<I>(&self, req: &Request<'_, I>) -> u64 {
        match self.engine {
            Engine::Budget(_) => match self.reserve {
                Reserve::Fixed(n) => n,
                Reserve::Measured => self.measure.amount(req),
            },
            Engine::Concurrency(_) => 1,
            _ => self.measure.amount(req),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PlanDecision, Tickets};
    use crate::engines::{Decision, Permit, Retry, Ticket};

    #[test]
    fn a_cleared_decision_is_the_empty_one() {
        let d = Decision { allowed: false, limit: 5, remaining: 0, reset: 9, retry: Retry::At(7), delay: 0 };
        let mut tickets = Tickets::default();
        tickets.push(1, Ticket::Permit(Permit { expires: u64::MAX, id: 4 }));
        let mut out = PlanDecision {
            allowed: false,
            status: 429,
            denied_by: Some(2),
            denial: Some(d),
            reported: Some((2, d)),
            retry: Retry::Never,
            tickets,
            applied: 3,
            delay: 5,
        };
        out.clear();
        assert_eq!(out, PlanDecision::EMPTY);
        assert_eq!(out, PlanDecision::default());
        assert_eq!(out.tickets.iter().count(), 0);
    }
}
