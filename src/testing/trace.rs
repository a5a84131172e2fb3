//! Traces that find boundary bugs, as proptest strategies.
//!
//! A generated trace is a list of [`Step`]s; each says how far the clock
//! moves ([`Gap`]), who sends, to which endpoint, with how many tokens and
//! how much money, and how long the request runs. Gaps are measured on the
//! plan's own scales — for each limit its *fine* scale (one unit's worth of
//! time: the emission interval, a window over its limit), its *coarse*
//! scale (the whole capacity's worth: `burst·T`, the window, the lease, the
//! budget period) and its *edges* (window and period boundaries aligned to
//! the Unix epoch) — so that whatever the plan, traces land where limiters
//! go wrong:
//!
//! - same-instant ties ([`Gap::Same`]) and 1–3 ns steps ([`Gap::Tiny`]);
//! - arrivals exactly on a window edge, and 1 ns before and after
//!   ([`Gap::Edge`]);
//! - arrivals exactly at the last denial's retry instant, and 1 ns before
//!   ([`Gap::ToRetry`]: the instant comes from the exact model, so the step
//!   stays on the boundary while the trace shrinks);
//! - exactly one interval (± 1 ns) later ([`Gap::Near`]);
//! - long quiet spells in which everything drains ([`Gap::Quiet`]);
//! - costs at the capacity and one either side, in tokens and money
//!   ([`Amount::Capacity`]), on token and money limits; per-endpoint costs
//!   through the plan's endpoints;
//! - requests that hold their concurrency permits for a while, or forever
//!   ([`Service`]).
//!
//! Steps become concrete [`Arrival`]s when they are run against the model
//! ([`super::materialize`], or [`super::check`]), because a retry instant is only
//! known once the denial has happened. Shrinking removes steps and
//! simplifies each (a gap becomes [`Gap::Same`], an amount [`Amount::One`]),
//! and the instants follow.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::engines::{BudgetPeriod, Engine};
use crate::policy::{AuthMatch, Measure, Plan, Request, Scope};
use crate::time::{Nanos, DAY, HOUR, SECOND};

use super::Config;

/// How far the clock moves before an arrival. `limit` fields pick one of
/// the plan's limits (modulo their number) whose scales apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gap {
    /// The same instant as the previous arrival.
    Same,
    /// 1 to 3 ns.
    Tiny(u8),
    /// Uniform in `0..=2·fine`.
    Fine {
        /// Which limit's scale.
        limit: u8,
        /// A random draw.
        draw: u64,
    },
    /// Uniform in `0..=coarse`.
    Coarse {
        /// Which limit's scale.
        limit: u8,
        /// A random draw.
        draw: u64,
    },
    /// Exactly `fine − 1, fine, fine + 1, coarse − 1, coarse, coarse + 1`
    /// (`which` picks one).
    Near {
        /// Which limit's scale.
        limit: u8,
        /// Which of the six.
        which: u8,
    },
    /// To the next epoch-aligned edge of the limit's window or period: 1 ns
    /// before it, at it, or 1 ns after (`which` 0, 1, 2).
    Edge {
        /// Which limit's edges.
        limit: u8,
        /// Before, at or after.
        which: u8,
    },
    /// Uniform in `0..=4·(the largest coarse scale)`: everything drains.
    Quiet(u64),
    /// To the retry instant of the last denial (`true`: 1 ns before it); no
    /// move if there is none ahead.
    ToRetry(bool),
}

/// An amount of tokens or money.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amount {
    /// 1.
    One,
    /// 0.
    Zero,
    /// The capacity of a limit, plus `delta` (−1, 0 or 1; at least 0).
    Capacity {
        /// Which limit (modulo the plan's).
        limit: u8,
        /// −1, 0 or +1.
        delta: i8,
    },
    /// Uniform in `0..=capacity + 1` of a limit.
    Any {
        /// Which limit.
        limit: u8,
        /// A random draw.
        draw: u64,
    },
}

/// How long an admitted request runs (holds its permits and reservations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// It completes at once (at its admission instant, before any later
    /// arrival at that instant).
    Instant,
    /// Uniform in `0..=coarse` of a limit.
    For {
        /// Which limit's scale.
        limit: u8,
        /// A random draw.
        draw: u64,
    },
    /// It never completes (a client that vanished).
    Never,
}

/// One generated arrival, before it is placed in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// How far the clock moves first.
    pub gap: Gap,
    /// Which key sends (modulo [`Config::keys`]).
    pub key: u8,
    /// Which of the plan's endpoints (modulo their number).
    pub endpoint: u8,
    /// Whether the request is unauthenticated (only generated when a limit
    /// selects on authentication).
    pub unauthenticated: bool,
    /// Its tokens.
    pub tokens: Amount,
    /// Its money, in minor units.
    pub money: Amount,
    /// How long it runs once admitted.
    pub service: Service,
}

/// A concrete request of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// When it arrives (ns since the Unix epoch).
    pub at: Nanos,
    /// Its API key: `k0`, `k1`, ...
    pub key: String,
    /// Its user, when a limit is scoped per user or workspace: keys `k0`
    /// and `k1` belong to `u0`, `k2` and `k3` to `u1`, and so on; the last
    /// key of an odd count has none.
    pub user: Option<String>,
    /// Its endpoint (empty, or one the plan names).
    pub endpoint: String,
    /// Whether it is authenticated.
    pub authenticated: bool,
    /// Tokens.
    pub tokens: u64,
    /// Money in minor units.
    pub money: u64,
    /// Service time once admitted; `None`: never completes.
    pub service: Option<Nanos>,
}

impl Arrival {
    /// The request as the policy (and your limiter) sees it.
    pub fn request(&self) -> Request<'_> {
        Request {
            key: &self.key,
            user: self.user.as_deref(),
            workspace: None,
            endpoint: &self.endpoint,
            authenticated: self.authenticated,
            tokens: self.tokens,
            money: self.money,
        }
    }
}

/// The time scales and capacity of one limit.
#[derive(Clone, Copy, Debug)]
struct Scale {
    fine: Nanos,
    coarse: Nanos,
    edge: Nanos,
    capacity: u64,
}

fn scale(engine: &Engine) -> Scale {
    let per = |period: Nanos, count: u64| period.div_ceil(count).max(1);
    let (fine, coarse, edge) = match engine {
        Engine::Gcra(g) => {
            let t = per(g.rate().period(), g.rate().count());
            (t, t.saturating_mul(g.burst()), g.rate().period())
        }
        Engine::TokenBucketSteps(b) => {
            let interval = b.rate().period();
            (per(interval, b.rate().count()), interval.saturating_mul(b.max().div_ceil(b.rate().count())), interval)
        }
        // nginx leaks by the millisecond: its edges are milliseconds.
        Engine::NginxLimitReq(n) => {
            let t = per(n.rate().period(), n.rate().count());
            (t, t.saturating_mul(n.capacity()), crate::time::MILLISECOND)
        }
        Engine::FixedWindow(w) => (per(w.period(), w.limit()), w.period(), w.period()),
        Engine::SlidingLog(w) => (per(w.period(), w.limit()), w.period(), w.period()),
        Engine::SlidingCounter(w) => (per(w.period(), w.limit()), w.period(), w.period()),
        Engine::Concurrency(c) => match c.lease() {
            Some(l) => (per(l, c.max()), l, l),
            None => (SECOND / c.max().max(1), 10 * SECOND, SECOND),
        },
        Engine::Budget(b) => match b.period() {
            BudgetPeriod::Day => (HOUR, DAY, DAY),
            BudgetPeriod::Month => (DAY, 31 * DAY, DAY),
            BudgetPeriod::Rolling(p) => ((p / 8).max(1), p, p),
            BudgetPeriod::Lifetime => (SECOND, HOUR, HOUR),
        },
    };
    Scale { fine: fine.max(1), coarse: coarse.max(1), edge: edge.max(1), capacity: engine.capacity() }
}

/// What the steps of one plan are generated and placed from.
#[derive(Clone, Debug)]
pub(crate) struct Shape {
    scales: Vec<Scale>,
    /// The endpoints: empty, then every name the plan's selectors and
    /// per-endpoint costs mention (a prefix pattern as `prefix` + `x`).
    pub(crate) endpoints: Vec<String>,
    /// Whether some limit selects on authentication.
    auth: bool,
    /// Whether some limit counts tokens, money.
    tokens: bool,
    money: bool,
    /// Whether some limit is scoped per user or workspace.
    users: bool,
    /// Whether some limit needs completions.
    completions: bool,
    keys: usize,
}

impl Shape {
    pub(crate) fn of(plan: &Plan, config: &Config) -> Shape {
        let mut endpoints = vec![String::new()];
        let mut add = |e: &str| {
            let e = e.strip_suffix('*').map_or(e.to_string(), |p| format!("{p}x"));
            if !endpoints.contains(&e) {
                endpoints.push(e);
            }
        };
        for l in &plan.limits {
            l.selector.endpoints.iter().chain(&l.selector.except).for_each(|e| add(e));
            if let Measure::Requests { by_endpoint, .. } = &l.measure {
                by_endpoint.iter().for_each(|(e, _)| add(e));
            }
        }
        Shape {
            scales: plan.limits.iter().map(|l| scale(&l.engine)).collect(),
            endpoints,
            auth: plan.limits.iter().any(|l| l.selector.auth != AuthMatch::Any),
            tokens: plan.limits.iter().any(|l| l.measure == Measure::Tokens),
            money: plan.limits.iter().any(|l| matches!(l.measure, Measure::Money { .. })),
            users: plan.limits.iter().any(|l| matches!(l.scope, Scope::User | Scope::Workspace)),
            completions: plan.limits.iter().any(|l| matches!(l.engine, Engine::Concurrency(_) | Engine::Budget(_))),
            keys: config.keys.max(1),
        }
    }

    fn scale(&self, limit: u8) -> Scale {
        self.scales[limit as usize % self.scales.len()]
    }

    /// The instant after `now` that `gap` leads to; `retry` is the last
    /// denial's retry instant.
    pub(crate) fn advance(&self, now: Nanos, gap: Gap, retry: Option<Nanos>) -> Nanos {
        let quiet = self.scales.iter().map(|s| s.coarse).max().unwrap_or(SECOND);
        let next = match gap {
            Gap::Same => now,
            Gap::Tiny(k) => now.saturating_add(1 + k as u64 % 3),
            Gap::Fine { limit, draw } => now.saturating_add(draw % (2 * self.scale(limit).fine + 1)),
            Gap::Coarse { limit, draw } => now.saturating_add(draw % (self.scale(limit).coarse + 1)),
            Gap::Near { limit, which } => {
                let s = self.scale(limit);
                let d = [s.fine - 1, s.fine, s.fine + 1, s.coarse - 1, s.coarse, s.coarse + 1][which as usize % 6];
                now.saturating_add(d)
            }
            Gap::Edge { limit, which } => {
                let e = self.scale(limit).edge;
                let edge = (now / e).saturating_add(1).saturating_mul(e);
                (edge + (which % 3) as u64).saturating_sub(1).max(now)
            }
            Gap::Quiet(draw) => now.saturating_add(draw % (4 * quiet + 1)),
            Gap::ToRetry(early) => match retry {
                Some(t) if t > now => t - early as u64,
                _ => now,
            },
        };
        next.max(now)
    }

    fn amount(&self, a: Amount) -> u64 {
        match a {
            Amount::One => 1,
            Amount::Zero => 0,
            Amount::Capacity { limit, delta } => self.scale(limit).capacity.saturating_add_signed(delta as i64),
            Amount::Any { limit, draw } => draw % (self.scale(limit).capacity.saturating_add(2)),
        }
    }

    /// The arrival of `step` at `at`.
    pub(crate) fn arrival(&self, step: &Step, at: Nanos) -> Arrival {
        let k = step.key as usize % self.keys;
        // Keys pair up into users; the last of an odd count is alone.
        let user = (self.users && k / 2 * 2 + 1 < self.keys).then(|| format!("u{}", k / 2));
        Arrival {
            at,
            key: format!("k{k}"),
            user,
            endpoint: self.endpoints[step.endpoint as usize % self.endpoints.len()].clone(),
            authenticated: !(self.auth && step.unauthenticated),
            tokens: if self.tokens { self.amount(step.tokens) } else { 0 },
            money: if self.money { self.amount(step.money) } else { 0 },
            service: match step.service {
                _ if !self.completions => Some(0),
                Service::Instant => Some(0),
                Service::For { limit, draw } => Some(draw % (self.scale(limit).coarse + 1)),
                Service::Never => None,
            },
        }
    }
}

fn gap() -> impl Strategy<Value = Gap> {
    prop_oneof![
        3 => Just(Gap::Same),
        1 => any::<u8>().prop_map(Gap::Tiny),
        4 => (any::<u8>(), any::<u64>()).prop_map(|(limit, draw)| Gap::Fine { limit, draw }),
        2 => (any::<u8>(), any::<u64>()).prop_map(|(limit, draw)| Gap::Coarse { limit, draw }),
        2 => (any::<u8>(), 0u8..6).prop_map(|(limit, which)| Gap::Near { limit, which }),
        2 => (any::<u8>(), 0u8..3).prop_map(|(limit, which)| Gap::Edge { limit, which }),
        1 => any::<u64>().prop_map(Gap::Quiet),
        3 => any::<bool>().prop_map(Gap::ToRetry),
    ]
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        2 => Just(Amount::One),
        1 => Just(Amount::Zero),
        2 => (any::<u8>(), -1i8..=1).prop_map(|(limit, delta)| Amount::Capacity { limit, delta }),
        3 => (any::<u8>(), any::<u64>()).prop_map(|(limit, draw)| Amount::Any { limit, draw }),
    ]
}

fn service() -> impl Strategy<Value = Service> {
    prop_oneof![
        2 => Just(Service::Instant),
        4 => (any::<u8>(), any::<u64>()).prop_map(|(limit, draw)| Service::For { limit, draw }),
        1 => Just(Service::Never),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        gap(),
        any::<u8>(),
        prop_oneof![3 => Just(0u8), 2 => any::<u8>()],
        prop::bool::weighted(0.2),
        amount(),
        amount(),
        service(),
    )
        .prop_map(|(gap, key, endpoint, unauthenticated, tokens, money, service)| Step {
            gap,
            key,
            endpoint,
            unauthenticated,
            tokens,
            money,
            service,
        })
}

/// Traces of 1 to [`Config::max_arrivals`] steps (see the [module
/// docs](self)). The steps are independent of the plan;
/// [`super::materialize`] (or [`super::check`]) places them on the plan's
/// scales.
pub fn steps(config: &Config) -> impl Strategy<Value = Vec<Step>> {
    vec(step(), 1..=config.max_arrivals.max(1))
}
