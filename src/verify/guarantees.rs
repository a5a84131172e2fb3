//! Guarantees that hold whatever a limiter's internal choices: checked on
//! the requests the *log* says were admitted, independently of the exact
//! model.
//!
//! Two correct implementations of "60 per minute" may disagree on single
//! decisions (rounding, which instant a window boundary belongs to, when a
//! bucket is refilled), but none may admit more than the limit allows over
//! a span. For each limit of the plan, over the admitted requests it
//! applies to, per scope identity:
//!
//! | algorithm | guarantee | worst case reported |
//! |---|---|---|
//! | `gcra` | admitted cost in any closed span `[s, t]` at most `burst + (t − s)·rate` (the `(σ, ρ)` envelope) | the span with the largest excess |
//! | `sliding-log` | admitted cost in any window `(t − P, t]` at most `limit` | the fullest window |
//! | `fixed-window`, `sliding-counter` | admitted cost in any clock-aligned window `[k·P, (k+1)·P)` at most `limit` (the counter's estimate counts the current window in full) | the fullest window |
//! | `fixed-window` opened at the first hit (dialects) | admitted cost in any window `(t − P, t]` at most `2·limit` (a span of one window length meets at most two windows) | the fullest window |
//! | `token-bucket-steps` | admitted cost in any closed span `[s, t]` at most `max + per_fill + (t − s)·rate` (the span meets at most `(t − s)/interval + 1` refills) | the span with the largest excess |
//! | `nginx-limit-req` | admitted requests in any closed span `[s, t]` at most `burst + 1 + (t − s + 1 ms)·rate` (it leaks by whole milliseconds, at a truncated rate) | the span with the largest excess |
//! | `concurrency` | requests in flight at an admission (counting it) at most `max`, a request being in flight for its `duration` (at most its `lease`) | the most in flight |
//! | `budget` | at an admission, the amount settled in the period so far plus the reservation at most `limit` (reservations of requests still running only add to this) | the largest overshoot |
//!
//! Each is computed in one pass in time order with constant work per
//! request: a running minimum for the envelope (the excess over `[s, t]` is
//! `(S_t − S_s⁻)·P − (t − s)·count − burst·P` with `S` the cumulative cost,
//! so its maximum over `s` needs only the minimum of `S_s⁻·P − s·count`),
//! a queue of the last window's admissions for rolling windows, a count per
//! aligned window, a heap of end instants for concurrency, and a heap of
//! pending settlements for budgets. Memory is per identity, and for rolling
//! windows and concurrency the requests of one window or in flight.
//!
//! ## Tolerance
//!
//! With `--tolerance δ` every logged instant may be off by up to `δ`, so
//! only certain violations count: a span `[s, t]` may really be `2δ` longer
//! (the envelope allows `burst + (t − s + 2δ)·rate`); a rolling window is
//! checked over `P − 2δ` (not at all if `P <= 2δ`); a request within `δ` of
//! an aligned window's or calendar period's boundary is not counted in
//! either; a request counts as in flight at a later admission only if it
//! ends more than `2δ` after it, and a settlement counts only if it came
//! more than `2δ` before.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use hashbrown::HashMap;

use crate::engines::{BudgetPeriod, Engine, WindowAlign};
use crate::policy::{Limit, Request};
use crate::time::{month_start, Nanos, DAY, MILLISECOND};

type Map<V> = HashMap<Box<str>, V, foldhash::fast::FixedState>;

/// The state of one identity, created on first use.
fn entry<'m, V: Default>(map: &'m mut Map<V>, who: &str) -> &'m mut V {
    map.entry_ref(who).or_default()
}

/// The worst case found for one limit: the largest excess over its bound
/// (negative or zero while the guarantee holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worst {
    /// The scope identity (empty for the global scope).
    pub identity: String,
    /// Start of the span: inclusive for `gcra` and aligned windows,
    /// exclusive for rolling windows; `None` for an instant (concurrency,
    /// budgets).
    pub from: Option<Nanos>,
    /// End of the span (inclusive; exclusive for aligned windows), or the
    /// instant.
    pub to: Nanos,
    /// Admitted requests in the span (in flight, for concurrency).
    pub requests: u64,
    /// Their cost in the limit's units (budgets: the amount already
    /// settled).
    pub units: u64,
    /// How far the bound is exceeded, in units divided by [`Worst::scale`].
    pub excess: i128,
    /// The denominator of `excess` (the rate's period for bucket
    /// guarantees, else 1).
    pub scale: u128,
    /// How `from` and `to` bound the span.
    pub span: SpanKind,
}

/// How a [`Worst`] span is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// `[from, to]`: a bucket's envelope.
    Closed,
    /// `(from, to]`: a rolling window.
    Rolling,
    /// `[from, to)`: a clock-aligned window.
    Aligned,
    /// The instant `to` (concurrency, budgets).
    Instant,
}

impl Worst {
    /// The excess in the limit's units, for display.
    pub fn excess_units(&self) -> f64 {
        self.excess as f64 / self.scale as f64
    }
}

/// Per-identity state of each kind of check.
#[derive(Default)]
struct Envelope {
    base: Nanos,
    sum: u128,
    n: u64,
    last: Option<Nanos>,
    /// The minimum of `S⁻·P − s·count` over span starts `s`: the term, `s`,
    /// and the cost and count admitted before `s`.
    best: (i128, Nanos, u128, u64),
}

#[derive(Default)]
struct Rolling {
    entries: VecDeque<(Nanos, u64)>,
    sum: u64,
}

#[derive(Default)]
struct Aligned {
    window: u64,
    sum: u64,
    n: u64,
}

#[derive(Default)]
struct Budgeted {
    pending: BinaryHeap<Reverse<(Nanos, u64)>>,
    /// Calendar: the period (its start) and the amount settled in it;
    /// rolling: the amount in `log`; lifetime: everything settled.
    period: Nanos,
    settled: u64,
    /// Rolling: settlements still in the window.
    log: VecDeque<(Nanos, u64)>,
}

enum Kind {
    /// `burst + (d + slack)·count/period` in any closed span of length `d`.
    Envelope {
        count: u128,
        period: u128,
        burst: u128,
        slack: Nanos,
        ids: Map<Envelope>,
    },
    Rolling {
        limit: u64,
        window: Nanos,
        ids: Map<Rolling>,
    },
    Aligned {
        limit: u64,
        period: Nanos,
        ids: Map<Aligned>,
    },
    InFlight {
        max: u64,
        lease: Option<Nanos>,
        ids: Map<BinaryHeap<Reverse<Nanos>>>,
    },
    Budget {
        limit: u64,
        period: BudgetPeriod,
        ids: Map<Budgeted>,
    },
}

/// The outcome of one limit's guarantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuaranteeResult {
    /// The limit's id.
    pub limit: String,
    /// Its algorithm's name.
    pub algorithm: &'static str,
    /// The guarantee, in words.
    pub rule: String,
    /// Admitted requests it was checked on.
    pub checked: u64,
    /// Why it could not be checked (e.g. the tolerance is at least half the
    /// window), if so.
    pub not_checked: Option<String>,
    /// A remark on what the check could see (e.g. no durations in the log).
    pub note: Option<String>,
    /// The worst case found; violated iff its excess is above zero.
    pub worst: Option<Worst>,
}

impl GuaranteeResult {
    /// Whether the guarantee held (or could not be checked).
    pub fn holds(&self) -> bool {
        self.worst.as_ref().is_none_or(|w| w.excess <= 0)
    }
}

struct LimitCheck {
    kind: Kind,
    checked: u64,
    worst: Option<Worst>,
    not_checked: Option<String>,
    /// Whether an admitted request had a service time (concurrency).
    saw_duration: bool,
}

/// The guarantees of every limit of a plan, fed the admitted requests in
/// time order.
pub struct Guarantees {
    checks: Vec<LimitCheck>,
    tolerance: Nanos,
}

impl Guarantees {
    /// Checks for each of `limits`, with timestamps good to `tolerance`.
    pub fn new(limits: &[Limit], tolerance: Nanos) -> Guarantees {
        let two = tolerance.saturating_mul(2);
        let checks = limits
            .iter()
            .map(|l| {
                let mut not_checked = None;
                let kind = match &l.engine {
                    Engine::Gcra(g) => Kind::Envelope {
                        count: g.rate().count() as u128,
                        period: g.rate().period() as u128,
                        burst: g.burst() as u128,
                        slack: 0,
                        ids: Map::default(),
                    },
                    // Refills at interval edges: a span of `d` sees at most
                    // `d/interval + 1` of them.
                    Engine::TokenBucketSteps(b) => Kind::Envelope {
                        count: b.rate().count() as u128,
                        period: b.rate().period() as u128,
                        burst: b.max() as u128 + b.rate().count() as u128,
                        slack: 0,
                        ids: Map::default(),
                    },
                    // Leaks over whole milliseconds, at a truncated rate: at
                    // most `(d + 1 ms)·rate`.
                    Engine::NginxLimitReq(n) => Kind::Envelope {
                        count: n.rate().count() as u128,
                        period: n.rate().period() as u128,
                        burst: n.capacity() as u128,
                        slack: MILLISECOND,
                        ids: Map::default(),
                    },
                    Engine::SlidingLog(w) => {
                        if w.period() <= two {
                            not_checked = Some(format!(
                                "the tolerance is at least half the {} window",
                                crate::time::format_duration(w.period())
                            ));
                        }
                        Kind::Rolling { limit: w.limit(), window: w.period().saturating_sub(two), ids: Map::default() }
                    }
                    Engine::FixedWindow(w) if w.align() == WindowAlign::Epoch => {
                        Kind::Aligned { limit: w.limit(), period: w.period(), ids: Map::default() }
                    }
                    // Windows opened by a key's first request: any span of
                    // one window length meets at most two of them.
                    Engine::FixedWindow(w) => {
                        if w.period() <= two {
                            not_checked = Some(format!(
                                "the tolerance is at least half the {} window",
                                crate::time::format_duration(w.period())
                            ));
                        }
                        Kind::Rolling {
                            limit: w.limit().saturating_mul(2),
                            window: w.period().saturating_sub(two),
                            ids: Map::default(),
                        }
                    }
                    Engine::SlidingCounter(w) => {
                        Kind::Aligned { limit: w.limit(), period: w.period(), ids: Map::default() }
                    }
                    Engine::Concurrency(c) => Kind::InFlight { max: c.max(), lease: c.lease(), ids: Map::default() },
                    Engine::Budget(b) => Kind::Budget { limit: b.limit(), period: b.period(), ids: Map::default() },
                };
                LimitCheck { kind, checked: 0, worst: None, not_checked, saw_duration: false }
            })
            .collect();
        Guarantees { checks, tolerance }
    }

    /// A request the limiter admitted at `t`, holding its permits for
    /// `duration`.
    pub fn admitted(&mut self, limits: &[Limit], req: &Request<'_>, t: Nanos, duration: Nanos) {
        let tol = self.tolerance;
        let two = tol.saturating_mul(2);
        for (limit, check) in limits.iter().zip(self.checks.iter_mut()) {
            if !limit.selector.matches(req) || check.not_checked.is_some() {
                continue;
            }
            let limit_cost = limit;
            let who = limit.scope.key_of(req);
            let cost = limit.measure.amount(req);
            check.saw_duration |= duration > 0;
            let found = match &mut check.kind {
                Kind::Envelope { count, period, burst, slack, ids } => {
                    let e = entry(ids, who);
                    if e.n == 0 {
                        e.base = t;
                    }
                    let rel = (t - e.base) as i128;
                    let (count, period) = (*count as i128, *period as i128);
                    if e.last != Some(t) {
                        let term = (e.sum as i128).saturating_mul(period).saturating_sub(rel.saturating_mul(count));
                        if e.n == 0 || term < e.best.0 {
                            e.best = (term, t, e.sum, e.n);
                        }
                        e.last = Some(t);
                    }
                    e.sum += cost as u128;
                    e.n += 1;
                    let (_, from, sum_before, n_before) = e.best;
                    let units = e.sum - sum_before;
                    let span = (t - from) as i128 + two as i128 + *slack as i128;
                    let excess = (units as i128)
                        .saturating_mul(period)
                        .saturating_sub(span.saturating_mul(count))
                        .saturating_sub((*burst as i128).saturating_mul(period));
                    Some(Worst {
                        identity: String::new(),
                        from: Some(from),
                        to: t,
                        requests: e.n - n_before,
                        units: units as u64,
                        excess,
                        scale: period as u128,
                        span: SpanKind::Closed,
                    })
                }
                Kind::Rolling { limit, window, ids } => {
                    let r = entry(ids, who);
                    r.entries.push_back((t, cost));
                    r.sum += cost;
                    while let Some(&(s, c)) = r.entries.front() {
                        if s.saturating_add(*window) > t {
                            break;
                        }
                        r.entries.pop_front();
                        r.sum -= c;
                    }
                    Some(Worst {
                        identity: String::new(),
                        from: Some(t.saturating_sub(*window)),
                        to: t,
                        requests: r.entries.len() as u64,
                        units: r.sum,
                        excess: r.sum as i128 - *limit as i128,
                        scale: 1,
                        span: SpanKind::Rolling,
                    })
                }
                Kind::Aligned { limit, period, ids } => {
                    let k = t / *period;
                    // Counted only if certainly in window k.
                    let certain = t.saturating_sub(tol) / *period == k && t.saturating_add(tol) / *period == k;
                    certain.then(|| {
                        let a = entry(ids, who);
                        if a.window != k || a.n == 0 {
                            *a = Aligned { window: k, sum: 0, n: 0 };
                        }
                        a.sum += cost;
                        a.n += 1;
                        Worst {
                            identity: String::new(),
                            from: Some(k * *period),
                            to: (k + 1).saturating_mul(*period),
                            requests: a.n,
                            units: a.sum,
                            excess: a.sum as i128 - *limit as i128,
                            scale: 1,
                            span: SpanKind::Aligned,
                        }
                    })
                }
                Kind::InFlight { max, lease, ids } => {
                    let ends = entry(ids, who);
                    while ends.peek().is_some_and(|&Reverse(e)| e <= t.saturating_add(two)) {
                        ends.pop();
                    }
                    let n = ends.len() as u64 + 1;
                    let held = lease.map_or(duration, |l| duration.min(l));
                    ends.push(Reverse(t.saturating_add(held)));
                    Some(Worst {
                        identity: String::new(),
                        from: None,
                        to: t,
                        requests: n,
                        units: n,
                        excess: n as i128 - *max as i128,
                        scale: 1,
                        span: SpanKind::Instant,
                    })
                }
                Kind::Budget { limit, period, ids } => {
                    let estimate = limit_cost.admission_cost(req);
                    budget_admitted(entry(ids, who), *period, *limit, t, tol, estimate, cost, duration)
                }
            };
            check.checked += 1;
            if let Some(mut w) = found {
                if check.worst.as_ref().is_none_or(|old| w.excess > old.excess) {
                    w.identity = who.to_string();
                    check.worst = Some(w);
                }
            }
        }
    }
}

impl Guarantees {
    /// The outcome for each of `limits` (the plan's, as given to
    /// [`Guarantees::new`]).
    pub fn results(&self, limits: &[Limit]) -> Vec<GuaranteeResult> {
        limits
            .iter()
            .zip(&self.checks)
            .map(|(limit, check)| {
                let note = match check.kind {
                    Kind::InFlight { .. } if check.checked > 0 && !check.saw_duration => Some(
                        "the log gives no durations: each request was taken to end at once, \
                         so nothing overlapped"
                            .to_string(),
                    ),
                    _ => None,
                };
                GuaranteeResult {
                    limit: limit.id.clone(),
                    algorithm: algorithm_name(&limit.engine),
                    rule: rule(limit),
                    checked: check.checked,
                    not_checked: check.not_checked.clone(),
                    note,
                    worst: check.worst.clone(),
                }
            })
            .collect()
    }
}

/// The policy-file name of an engine's algorithm.
pub(crate) fn algorithm_name(engine: &Engine) -> &'static str {
    match engine {
        Engine::Gcra(_) => "gcra",
        Engine::FixedWindow(_) => "fixed-window",
        Engine::SlidingLog(_) => "sliding-log",
        Engine::SlidingCounter(_) => "sliding-counter",
        Engine::Concurrency(_) => "concurrency",
        Engine::Budget(_) => "budget",
        Engine::TokenBucketSteps(_) => "token-bucket-steps",
        Engine::NginxLimitReq(_) => "nginx-limit-req",
    }
}

/// A limit's guarantee in words.
fn rule(limit: &Limit) -> String {
    let unit = limit.measure.unit();
    let span = crate::time::format_duration;
    match &limit.engine {
        Engine::Gcra(g) => {
            format!("at most burst + d·rate {unit} in any span d (burst {}, rate {})", g.burst(), g.rate())
        }
        Engine::SlidingLog(w) => format!("at most {} {unit} in any rolling {}", w.limit(), span(w.period())),
        Engine::FixedWindow(w) if w.align() == WindowAlign::Epoch => {
            format!("at most {} {unit} in any clock-aligned {} window", w.limit(), span(w.period()))
        }
        Engine::FixedWindow(w) => format!(
            "at most 2 × {} {unit} in any rolling {} (windows open at a key's first request, so a span meets two)",
            w.limit(),
            span(w.period())
        ),
        Engine::TokenBucketSteps(b) => {
            format!("at most max + per_fill + d·rate {unit} in any span d (max {}, refills {})", b.max(), b.rate())
        }
        Engine::NginxLimitReq(n) => format!(
            "at most burst + 1 + (d + 1 ms)·rate {unit} in any span d (burst {}, rate {}; leaks by the millisecond)",
            n.burst(),
            n.rate()
        ),
        Engine::SlidingCounter(w) => {
            format!("at most {} {unit} in any clock-aligned {} window", w.limit(), span(w.period()))
        }
        Engine::Concurrency(c) => format!("at most {} requests in flight", c.max()),
        Engine::Budget(b) => {
            let per = match b.period() {
                BudgetPeriod::Day => "UTC day".to_string(),
                BudgetPeriod::Month => "UTC month".to_string(),
                BudgetPeriod::Rolling(p) => format!("rolling {}", span(p)),
                BudgetPeriod::Lifetime => "lifetime".to_string(),
            };
            format!("no admission once the amount settled plus the reservation exceeds {} {unit} per {per}", b.limit())
        }
    }
}

/// A budget's check at an admission at `t` reserving `estimate`, which
/// settles `actual` after `duration`.
#[allow(clippy::too_many_arguments)]
fn budget_admitted(
    b: &mut Budgeted,
    period: BudgetPeriod,
    limit: u64,
    t: Nanos,
    tol: Nanos,
    estimate: u64,
    actual: u64,
    duration: Nanos,
) -> Option<Worst> {
    let two = tol.saturating_mul(2);
    let period_of = |t: Nanos| match period {
        BudgetPeriod::Day => t / DAY * DAY,
        BudgetPeriod::Month => month_start(t),
        BudgetPeriod::Rolling(_) | BudgetPeriod::Lifetime => 0,
    };
    // Settlements certainly before `t`.
    while let Some(&Reverse((end, amount))) = b.pending.peek() {
        if end > t.saturating_sub(two) {
            break;
        }
        b.pending.pop();
        match period {
            BudgetPeriod::Rolling(_) => {
                b.log.push_back((end, amount));
                b.settled = b.settled.saturating_add(amount);
            }
            _ => {
                let p = period_of(end);
                if p > b.period || b.settled == 0 {
                    b.period = p;
                    b.settled = amount;
                } else if p == b.period {
                    b.settled = b.settled.saturating_add(amount);
                }
            }
        }
    }
    b.pending.push(Reverse((t.saturating_add(duration), actual)));
    let spent = match period {
        BudgetPeriod::Rolling(p) => {
            while let Some(&(s, a)) = b.log.front() {
                if s.saturating_add(p) > t.saturating_add(two) {
                    break;
                }
                b.log.pop_front();
                b.settled -= a;
            }
            b.settled
        }
        BudgetPeriod::Lifetime => b.settled,
        BudgetPeriod::Day | BudgetPeriod::Month => {
            // Within the tolerance of a period boundary: uncertain.
            if period_of(t.saturating_sub(tol)) != period_of(t.saturating_add(tol)) {
                return None;
            }
            if b.period == period_of(t) {
                b.settled
            } else {
                0
            }
        }
    };
    Some(Worst {
        identity: String::new(),
        from: None,
        to: t,
        requests: 1,
        units: spent,
        excess: spent as i128 + estimate as i128 - limit as i128,
        scale: 1,
        span: SpanKind::Instant,
    })
}
