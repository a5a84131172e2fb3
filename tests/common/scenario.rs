//! Random plans and arrival sequences shared by the property tests that
//! drive whole plans: `tests/composition.rs` (atomic composition, on a
//! [`MapStore`](super::map_store)) and the Redis module's conformance test
//! (`crates/ratesim-redis/tests/conformance.rs`: the same scenarios through
//! Redis, decision for decision against the in-process limiter).
//!
//! A [`Scenario`] is a plan of 1 to 4 limits (GCRA, fixed window, sliding
//! log, sliding counter, concurrency with and without a lease, request
//! budgets per day or rolling, with a fixed reservation) written as policy
//! TOML, and arrivals on a few keys and users (limits scoped per key, per
//! user or globally), with costs 1 to 3 per endpoint, partial selectors, ties
//! and completions of admitted requests at later instants. Include it with
//! `#[path = "common/scenario.rs"] mod scenario;`.
#![allow(dead_code)]

use proptest::collection::vec;
use proptest::prelude::*;

use ratesim::policy::Request;
use ratesim::time::{Nanos, DAY, SECOND};

/// 2026-01-01T00:00:00Z.
pub const START: Nanos = 1_767_225_600_000_000_000;

// ---------------------------------------------------------------------------
// Plans
// ---------------------------------------------------------------------------

/// The endpoints requests go to; each limit has its own cost per endpoint.
pub const ENDPOINTS: [&str; 3] = ["e1", "e2", "e3"];

/// Keys and the user owning each (`None`: the key is limited on its own by
/// user-scoped limits too).
pub const KEYS: [(&str, Option<&str>); 4] = [("k0", Some("u0")), ("k1", Some("u0")), ("k2", Some("u1")), ("k3", None)];

#[derive(Clone, Copy, Debug)]
pub enum BudgetPeriodSpec {
    Day,
    /// Rolling, in seconds.
    Rolling(u64),
}

#[derive(Clone, Copy, Debug)]
pub enum Algo {
    /// `rate = "count/{period}s"`, `burst`.
    Gcra { count: u64, period: u64, burst: u64 },
    /// `rate = "limit/{period}s"`; `counting`: 0 textbook, 1
    /// `count_denied = true`, 2 `dialect = "python-limits"`, 3
    /// `dialect = "redis-incr-expire"` (the last three count denials).
    FixedWindow { limit: u64, period: u64, counting: u8 },
    /// `limit`, `period = "{period}s"`; `python`: the python-limits dialect.
    SlidingLog { limit: u64, period: u64, python: bool },
    /// `rate = "limit/{period}s"`; `python`: the python-limits dialect.
    SlidingCounter { limit: u64, period: u64, python: bool },
    /// `algorithm = "token-bucket-steps"`, `rate = "count/{period}s"`, `burst = max`.
    Steps { count: u64, period: u64, max: u64 },
    /// `dialect = "nginx"`, `rate = "count/s"`, `burst`, `delay` (`None`: nodelay).
    Nginx { count: u64, burst: u64, delay: Option<u64> },
    /// `max`, optional `lease = "{lease}s"`.
    Concurrency { max: u64, lease: Option<u64> },
    /// Requests budget with a fixed reservation.
    Budget { limit: u64, reserve: u64, period: BudgetPeriodSpec },
}

impl Algo {
    pub fn capacity(self) -> u64 {
        match self {
            Algo::Gcra { burst, .. } => burst,
            Algo::Steps { max, .. } => max,
            Algo::Nginx { burst, .. } => burst + 1,
            Algo::FixedWindow { limit, .. }
            | Algo::SlidingLog { limit, .. }
            | Algo::SlidingCounter { limit, .. }
            | Algo::Budget { limit, .. } => limit,
            Algo::Concurrency { max, .. } => max,
        }
    }
}

/// Whose state a limit keeps (the key's, its user's, or one for all).
#[derive(Clone, Copy, Debug)]
pub enum ScopeSpec {
    Key,
    User,
    Global,
}

/// Which requests a limit sees.
#[derive(Clone, Copy, Debug)]
pub enum Sel {
    All,
    /// Every endpoint but `e3`.
    ExceptE3,
    /// Only `e1` and `e2`.
    OnlyE1E2,
}

impl Sel {
    pub fn matches(self, endpoint: usize) -> bool {
        match self {
            Sel::All => true,
            Sel::ExceptE3 | Sel::OnlyE1E2 => endpoint != 2,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct LimitSpec {
    pub algo: Algo,
    pub scope: ScopeSpec,
    /// Cost per endpoint (request measure); clamped to the capacity.
    pub costs: [u64; 3],
    pub sel: Sel,
    pub status: u16,
}

impl LimitSpec {
    pub fn costs(&self) -> [u64; 3] {
        self.costs.map(|c| c.min(self.algo.capacity()))
    }

    /// What the request counts on this limit (its measured amount).
    pub fn amount(&self, endpoint: usize) -> u64 {
        match self.algo {
            Algo::Concurrency { .. } => 1,
            _ => self.costs()[endpoint],
        }
    }

    /// What admission consumes, from the documented semantics: the amount
    /// for rate and window limits, one permit, the fixed reservation.
    pub fn admission_cost(&self, endpoint: usize) -> u64 {
        match self.algo {
            Algo::Concurrency { .. } => 1,
            Algo::Budget { reserve, .. } => reserve,
            _ => self.amount(endpoint),
        }
    }

    /// The identity whose state this limit uses for a request from `key`.
    pub fn who(&self, key: usize) -> &'static str {
        let (k, user) = KEYS[key];
        match self.scope {
            ScopeSpec::Key => k,
            ScopeSpec::User => user.unwrap_or(k),
            ScopeSpec::Global => "",
        }
    }

    pub fn toml(&self, id: usize) -> String {
        let mut t = format!("\n[[plan.limit]]\nid = \"l{id}\"\nstatus = {}\n", self.status);
        let costs = |t: &mut String| {
            let c = self.costs();
            t.push_str(&format!("cost_by_endpoint = {{ e1 = {}, e2 = {}, e3 = {} }}\n", c[0], c[1], c[2]));
        };
        match self.algo {
            Algo::Gcra { count, period, burst } => {
                t.push_str(&format!("algorithm = \"gcra\"\nrate = \"{count}/{period}s\"\nburst = {burst}\n"));
                costs(&mut t);
            }
            Algo::FixedWindow { limit, period, counting } => {
                t.push_str(&format!("algorithm = \"fixed-window\"\nrate = \"{limit}/{period}s\"\n"));
                t.push_str(
                    ["", "count_denied = true\n", "dialect = \"python-limits\"\n", "dialect = \"redis-incr-expire\"\n"]
                        [counting as usize],
                );
                costs(&mut t);
            }
            Algo::SlidingLog { limit, period, python } => {
                t.push_str(&format!("algorithm = \"sliding-log\"\nlimit = {limit}\nperiod = \"{period}s\"\n"));
                if python {
                    t.push_str("dialect = \"python-limits\"\n");
                }
                costs(&mut t);
            }
            Algo::SlidingCounter { limit, period, python } => {
                t.push_str(&format!("algorithm = \"sliding-counter\"\nrate = \"{limit}/{period}s\"\n"));
                if python {
                    t.push_str("dialect = \"python-limits\"\n");
                }
                costs(&mut t);
            }
            Algo::Steps { count, period, max } => {
                t.push_str(&format!(
                    "algorithm = \"token-bucket-steps\"\nrate = \"{count}/{period}s\"\nburst = {max}\n"
                ));
                costs(&mut t);
            }
            Algo::Nginx { count, burst, delay } => {
                t.push_str(&format!("dialect = \"nginx\"\nrate = \"{count}/s\"\nburst = {burst}\n"));
                match delay {
                    Some(k) => t.push_str(&format!("delay = {k}\n")),
                    None => t.push_str("nodelay = true\n"),
                }
                costs(&mut t);
            }
            Algo::Concurrency { max, lease } => {
                t.push_str(&format!("algorithm = \"concurrency\"\nmax = {max}\n"));
                if let Some(l) = lease {
                    t.push_str(&format!("lease = \"{l}s\"\n"));
                }
            }
            Algo::Budget { limit, reserve, period } => {
                let period = match period {
                    BudgetPeriodSpec::Day => "day".to_string(),
                    BudgetPeriodSpec::Rolling(s) => format!("{s}s"),
                };
                t.push_str(&format!(
                    "algorithm = \"budget\"\nunit = \"requests\"\nlimit = {limit}\nreserve = {}\nperiod = \"{period}\"\n",
                    reserve.min(limit)
                ));
                costs(&mut t);
            }
        }
        match self.scope {
            ScopeSpec::Key => {}
            ScopeSpec::User => t.push_str("scope = \"user\"\n"),
            ScopeSpec::Global => t.push_str("scope = \"global\"\n"),
        }
        match self.sel {
            Sel::All => {}
            Sel::ExceptE3 => t.push_str("match = { except = [\"e3\"] }\n"),
            Sel::OnlyE1E2 => t.push_str("match = { endpoints = [\"e1\", \"e2\"] }\n"),
        }
        t
    }
}

pub fn algo() -> impl Strategy<Value = Algo> {
    let period = prop_oneof![Just(10u64), Just(5), 1..=20u64];
    prop_oneof![
        (1..=7u64, period.clone(), 1..=5u64).prop_map(|(count, period, burst)| Algo::Gcra { count, period, burst }),
        (1..=6u64, period.clone(), prop_oneof![2 => Just(0u8), 1 => 1..=3u8])
            .prop_map(|(limit, period, counting)| Algo::FixedWindow { limit, period, counting }),
        (1..=6u64, period.clone(), any::<bool>()).prop_map(|(limit, period, python)| Algo::SlidingLog {
            limit,
            period,
            python
        }),
        (1..=6u64, period.clone(), any::<bool>()).prop_map(|(limit, period, python)| Algo::SlidingCounter {
            limit,
            period,
            python
        }),
        (1..=4u64, period, 1..=6u64).prop_map(|(count, period, max)| Algo::Steps { count, period, max }),
        (1..=5u64, 0..=4u64, prop::option::of(0..=3u64)).prop_map(|(count, burst, delay)| Algo::Nginx {
            count,
            burst,
            delay
        }),
        (1..=3u64, prop::option::of(prop_oneof![Just(3u64), Just(7), 1..=15u64]))
            .prop_map(|(max, lease)| Algo::Concurrency { max, lease }),
        (2..=8u64, 0..=2u64, prop_oneof![Just(BudgetPeriodSpec::Day), (5..=30u64).prop_map(BudgetPeriodSpec::Rolling)])
            .prop_map(|(limit, reserve, period)| Algo::Budget { limit, reserve, period }),
    ]
}

pub fn limit_spec() -> impl Strategy<Value = LimitSpec> {
    let costs = prop_oneof![2 => Just([1u64, 1, 1]), 3 => [1..=3u64, 1..=3u64, 1..=3u64]];
    let sel = prop_oneof![4 => Just(Sel::All), 1 => Just(Sel::ExceptE3), 1 => Just(Sel::OnlyE1E2)];
    let status = prop_oneof![3 => Just(429u16), 1 => Just(402u16), 1 => Just(403u16), 1 => Just(503u16)];
    let scope = prop_oneof![3 => Just(ScopeSpec::Key), 2 => Just(ScopeSpec::User), 1 => Just(ScopeSpec::Global)];
    (algo(), scope, costs, sel, status).prop_map(|(algo, scope, costs, sel, status)| LimitSpec {
        algo,
        scope,
        costs,
        sel,
        status,
    })
}

// ---------------------------------------------------------------------------
// Arrivals
// ---------------------------------------------------------------------------

/// How far the clock moves before the next arrival.
#[derive(Clone, Copy, Debug)]
pub enum Gap {
    /// Same instant as the previous arrival.
    Same,
    /// 1 to 3 ns.
    Tiny(u8),
    /// Uniform in `0..=2 s`.
    Short(u64),
    /// Uniform in `0..=15 s`.
    Medium(u64),
    /// Uniform in `0..=90 s`.
    Long(u64),
    /// One ns before, at, or one ns after the next multiple of 5 s (window
    /// boundaries: every period generated divides or straddles them).
    Boundary(u8),
    /// To the plan's last announced retry instant (`true`: one ns before).
    ToRetry(bool),
}

impl Gap {
    /// The instant after `now` this gap leads to. `last_retry` is the plan's
    /// last announced retry instant; [`Gap::ToRetry`] uses it up.
    pub fn advance(self, now: Nanos, last_retry: &mut Option<Nanos>) -> Nanos {
        match self {
            Gap::Same => now,
            Gap::Tiny(k) => now + 1 + k as u64,
            Gap::Short(x) => now + x % (2 * SECOND + 1),
            Gap::Medium(x) => now + x % (15 * SECOND + 1),
            Gap::Long(x) => now + x % (90 * SECOND + 1),
            Gap::Boundary(k) => ((now / (5 * SECOND) + 1) * 5 * SECOND + k as u64 - 1).max(now),
            Gap::ToRetry(early) => match last_retry.take() {
                Some(t) if t > now => t - early as u64,
                _ => now,
            },
        }
    }
}

pub fn gap() -> impl Strategy<Value = Gap> {
    prop_oneof![
        3 => Just(Gap::Same),
        1 => (0u8..3).prop_map(Gap::Tiny),
        4 => any::<u64>().prop_map(Gap::Short),
        3 => any::<u64>().prop_map(Gap::Medium),
        1 => any::<u64>().prop_map(Gap::Long),
        1 => (0u8..3).prop_map(Gap::Boundary),
        3 => any::<bool>().prop_map(Gap::ToRetry),
    ]
}

#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub gap: Gap,
    /// Index into [`KEYS`].
    pub key: usize,
    /// Index into [`ENDPOINTS`].
    pub endpoint: usize,
    /// If admitted, completes this many ns later (`None`: never).
    pub done_after: Option<Nanos>,
}

impl Arrival {
    pub fn request(&self) -> Request<'static> {
        let (key, user) = KEYS[self.key];
        Request { user, endpoint: ENDPOINTS[self.endpoint], ..Request::new(key) }
    }
}

pub fn arrival() -> impl Strategy<Value = Arrival> {
    let done_after = prop_oneof![
        1 => Just(None),
        1 => Just(Some(0)),
        4 => (0..=20 * SECOND).prop_map(Some),
    ];
    (gap(), 0..KEYS.len(), prop_oneof![3 => Just(0usize), 1 => 1..3usize], done_after)
        .prop_map(|(gap, key, endpoint, done_after)| Arrival { gap, key, endpoint, done_after })
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub limits: Vec<LimitSpec>,
    /// The first instant: 2026-01-01, or 20 s before the next midnight (day
    /// budgets roll over).
    pub start: Nanos,
    pub arrivals: Vec<Arrival>,
}

impl Scenario {
    pub fn toml(&self) -> String {
        let mut t = String::from("provider = \"test\"\n[[plan]]\nname = \"p\"\n");
        for (i, l) in self.limits.iter().enumerate() {
            t.push_str(&l.toml(i));
        }
        t
    }
}

pub fn scenario() -> impl Strategy<Value = Scenario> {
    (
        vec(limit_spec(), 1..=4),
        prop_oneof![3 => Just(START), 1 => Just(START + DAY - 20 * SECOND)],
        vec(arrival(), 1..=40),
    )
        .prop_map(|(limits, start, arrivals)| Scenario { limits, start, arrivals })
}
