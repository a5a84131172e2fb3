//! Property tests for the atomic composition of limits in a plan
//! ([`Plan::check`], [`Plan::complete`]).
//!
//! Random plans of 1 to 4 limits (GCRA, fixed window, sliding log, sliding
//! counter, concurrency with and without a lease, request budgets per day or
//! rolling, with a fixed reservation) are written as policy TOML, parsed, and
//! driven through random arrivals on a few keys and users (limits scoped per
//! key, per user or globally), with costs 1 to 3 per endpoint, partial
//! selectors, and completions of admitted requests at later instants (in
//! time order with the checks). Before each check, every
//! applicable limit's own answer is computed here, on a copy of the store,
//! from the limit's engine alone; the plan's answer is then compared with it:
//!
//! 1. a denied request changes no state anywhere: states of limits that do
//!    not apply, and of other identities, are untouched; the states the
//!    request looked at may only have forgotten what expired by `now` (they
//!    are compared after letting both copies forget it);
//! 2. admission is the conjunction: the plan admits iff every applicable
//!    limit's engine admits, and an admission commits exactly once on each
//!    applicable limit (the store equals the copy on which each engine was
//!    committed by hand; the tickets are those commits' tickets);
//! 3. a denial names a limit that itself denies, the binding one (latest
//!    retry; `Never` before `Unknown` before instants; first declared among
//!    equals), answers with its status and decision, and the plan's retry is
//!    the combination of every limit's retry. A `Retry::At(t)` holds for all
//!    limits together: on a copy of the store with nothing else happening,
//!    the same request is admitted at `t` and denied at `t - 1`.
//!
//! Limits include the dialects (`ratesim::engines::dialect`): fixed windows
//! that count denied requests (the `INCR`-then-compare counters, which a
//! plan charges even for a request another limit denies: property 1 expects
//! exactly those counts, and property 3 takes the denial's figures and retry
//! after them), the python-limits rolling windows, token buckets with
//! steps, and nginx `limit_req`, whose admissions may wait (the plan's delay
//! is the longest of its limits').
//!
//! Further tests run the same properties against deliberately broken plan
//! checks (a leaking one, one that forgets a limit, one whose retry is a
//! nanosecond early, one that does not count denials, one that drops
//! delays) and require the properties to catch each.
//!
//! Set `RATESIM_SOAK` (to anything, or to a number of cases) for a long run:
//! `RATESIM_SOAK=1 cargo test --release --test composition`.

mod common;
#[path = "common/map_store.rs"]
mod map_store;
#[path = "common/scenario.rs"]
mod scenario;

use map_store::MapStore;
use scenario::*;

use common::config;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

use ratesim::engines::{Decision, Engine, Retry, Ticket};
use ratesim::policy::{self, Plan, PlanDecision, Request};
use ratesim::time::{Nanos, SECOND};

type TestResult = Result<(), TestCaseError>;

// ---------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------

/// A plan check under test: [`Plan::check`], or a broken one.
type Check<'a> = &'a dyn Fn(&Plan, &mut MapStore, Nanos, &Request<'_>) -> PlanDecision;

fn plan_check(plan: &Plan, store: &mut MapStore, now: Nanos, req: &Request<'_>) -> PlanDecision {
    plan.check(store, now, req)
}

/// Which properties a run asserts.
#[derive(Clone, Copy, Debug)]
struct Props {
    denial_changes_nothing: bool,
    conjunction: bool,
    binding_and_retry: bool,
}

const ALL: Props = Props { denial_changes_nothing: true, conjunction: true, binding_and_retry: true };

/// The order of bindingness: `Now` < instants (later is more binding) <
/// `Unknown` < `Never`.
fn severity(r: Retry) -> (u8, Nanos) {
    match r {
        Retry::Now => (0, 0),
        Retry::At(t) => (1, t),
        Retry::Unknown => (2, 0),
        Retry::Never => (3, 0),
    }
}

/// Combines retries by the documented rule, written out: `Never` dominates,
/// then `Unknown`, then the latest instant.
fn combine(rs: impl Iterator<Item = Retry>) -> Retry {
    let mut out = Retry::Now;
    for r in rs {
        out = match (out, r) {
            (Retry::Never, _) | (_, Retry::Never) => Retry::Never,
            (Retry::Unknown, _) | (_, Retry::Unknown) => Retry::Unknown,
            (Retry::At(a), Retry::At(b)) => Retry::At(a.max(b)),
            (Retry::At(a), Retry::Now) | (Retry::Now, Retry::At(a)) => Retry::At(a),
            (Retry::Now, Retry::Now) => Retry::Now,
        };
    }
    out
}

/// Every limit's own answer for arrival `a` at `now`, from its engine on a
/// copy of its state (`None`: the limit does not apply).
fn own_answers(plan: &Plan, specs: &[LimitSpec], store: &MapStore, now: Nanos, a: &Arrival) -> Vec<Option<Decision>> {
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            spec.sel.matches(a.endpoint).then(|| {
                let mut s = store.state(i, spec.who(a.key));
                plan.limits[i].engine.decide(&mut s, now, spec.admission_cost(a.endpoint))
            })
        })
        .collect()
}

/// Property 1: after a denial at `now`, the store equals the one before,
/// except that the states the request looked at may have forgotten what
/// expired by `now` (so those are compared after both copies are brought to
/// `now` by a `decide`, which consumes nothing), and that every applicable
/// limit that counts denied requests has counted this one, as its engine's
/// own `deny` does.
fn assert_unchanged(
    plan: &Plan,
    specs: &[LimitSpec],
    before: &MapStore,
    after: &MapStore,
    now: Nanos,
    a: &Arrival,
    d: &PlanDecision,
) -> TestResult {
    prop_assert!(d.tickets.is_empty(), "denied at {now}, yet tickets were handed out: {d:?}");
    let mut before = before.clone();
    for (i, spec) in specs.iter().enumerate() {
        if spec.sel.matches(a.endpoint) && plan.limits[i].engine.counts_denied() {
            let engine = &plan.limits[i].engine;
            before.with_state(i, spec.who(a.key), |s| engine.deny(s, now, spec.admission_cost(a.endpoint)));
        }
    }
    let before = &before;
    let looked_at: BTreeSet<(usize, String)> = specs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.sel.matches(a.endpoint))
        .map(|(i, s)| (i, s.who(a.key).to_string()))
        .collect();
    let keys: BTreeSet<&(usize, String)> = before.states.keys().chain(after.states.keys()).collect();
    for k in keys {
        let (i, who) = k;
        if looked_at.contains(k) {
            let settle = |store: &MapStore| {
                let mut s = store.state(*i, who);
                plan.limits[*i].engine.decide(&mut s, now, 1);
                s
            };
            let (b, x) = (settle(before), settle(after));
            prop_assert_eq!(
                &b,
                &x,
                "denied at {}: the state of limit {} for {:?} changed (beyond expiry and counting the denial)",
                now,
                plan.limits[*i].id,
                who
            );
        } else {
            prop_assert_eq!(
                before.states.get(k),
                after.states.get(k),
                "denied at {}: the state of limit {} for {:?}, which the request does not use, changed",
                now,
                plan.limits[*i].id,
                who
            );
        }
    }
    Ok(())
}

/// Property 2: the plan admits iff every applicable limit admits; an
/// admission commits each applicable limit exactly once, as the engines'
/// own protocol (`decide`, then `commit`) does, and nothing else.
#[allow(clippy::too_many_arguments)]
fn assert_conjunction(
    plan: &Plan,
    specs: &[LimitSpec],
    own: &[Option<Decision>],
    before: &MapStore,
    after: &MapStore,
    now: Nanos,
    a: &Arrival,
    d: &PlanDecision,
) -> TestResult {
    let applied = own.iter().flatten().count();
    let all_admit = own.iter().flatten().all(|o| o.allowed);
    prop_assert_eq!(d.applied as usize, applied, "at {}: applied count", now);
    prop_assert_eq!(
        d.allowed,
        all_admit,
        "at {}: the plan {} but the limits' own answers are {:?}",
        now,
        if d.allowed { "admits" } else { "denies" },
        own.iter().map(|o| o.map(|o| o.allowed)).collect::<Vec<_>>()
    );
    let delay = if d.allowed { own.iter().flatten().map(|o| o.delay).max().unwrap_or(0) } else { 0 };
    prop_assert_eq!(d.delay, delay, "at {}: the plan's delay is not the longest of the limits'", now);
    if d.allowed {
        prop_assert_eq!(d.status, 200);
        prop_assert_eq!(d.denied_by, None);
        prop_assert_eq!(d.retry, Retry::Now);
        let mut expected = before.clone();
        let mut tickets = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            if own[i].is_none() {
                continue;
            }
            let engine = &plan.limits[i].engine;
            let cost = spec.admission_cost(a.endpoint);
            let t = expected.with_state(i, spec.who(a.key), |mut s| {
                engine.decide(s.reborrow(), now, cost);
                engine.commit(s, now, cost)
            });
            if t != Ticket::None {
                tickets.push((i, t));
            }
        }
        prop_assert_eq!(&expected, after, "at {}: an admission did not commit exactly each applicable limit", now);
        prop_assert_eq!(d.tickets.iter().collect::<Vec<_>>(), tickets, "at {}: tickets", now);
    }
    Ok(())
}

/// Property 3: the denial names the binding denying limit (chosen on the
/// limits' answers before the denial was counted) and carries its answer
/// (after the count, where it counts); the plan's retry combines every
/// limit's answer after the counts, and a `Retry::At(t)` is exact for the
/// plan as a whole with nothing else happening (checked on copies of the
/// store after the denial).
#[allow(clippy::too_many_arguments)]
fn assert_binding_and_retry(
    plan: &Plan,
    specs: &[LimitSpec],
    own: &[Option<Decision>],
    after: &MapStore,
    now: Nanos,
    a: &Arrival,
    d: &PlanDecision,
    check: Check,
) -> TestResult {
    if d.allowed {
        return Ok(());
    }
    let counted = own_answers(plan, specs, after, now, a);
    let Some(i) = d.denied_by else {
        return Err(TestCaseError::fail(format!("denied at {now} without naming a limit: {d:?}")));
    };
    let Some(Some(mine)) = own.get(i) else {
        return Err(TestCaseError::fail(format!("denied at {now} by limit {i}, which does not apply: {d:?}")));
    };
    prop_assert!(!mine.allowed, "denied at {} by limit {}, which itself admits: {:?}", now, plan.limits[i].id, mine);
    prop_assert_eq!(d.denial, counted[i], "at {}: the denial is not the binding limit's own decision", now);
    prop_assert_eq!(d.status, plan.limits[i].status, "at {}: status of the binding limit", now);
    for (j, o) in own.iter().enumerate() {
        let Some(o) = o.filter(|o| !o.allowed) else { continue };
        let (sj, si) = (severity(o.retry), severity(mine.retry));
        prop_assert!(
            sj < si || (sj == si && j >= i),
            "at {}: limit {} (retry {:?}) binds more than the named limit {} (retry {:?})",
            now,
            plan.limits[j].id,
            o.retry,
            plan.limits[i].id,
            mine.retry
        );
    }
    let joint = combine(counted.iter().flatten().map(|o| o.retry));
    prop_assert_eq!(d.retry, joint, "at {}: the plan's retry is not the combination of the limits'", now);
    if let Retry::At(t) = d.retry {
        prop_assert!(t > now, "denied at {} with Retry::At({}), not later", now, t);
        let req = a.request();
        let at_t = check(plan, &mut after.clone(), t, &req);
        prop_assert!(
            at_t.allowed,
            "denied at {} with Retry::At({}), but denied again at {} by {:?} (nothing else happening)",
            now,
            t,
            t,
            at_t.denied_by.map(|k| &plan.limits[k].id)
        );
        let early = check(plan, &mut after.clone(), t - 1, &req);
        prop_assert!(!early.allowed, "denied at {} with Retry::At({}), but already admitted at {}", now, t, t - 1);
    }
    Ok(())
}

/// Runs the scenario, checking `props` at every arrival.
fn drive(sc: &Scenario, props: Props, check: Check) -> TestResult {
    let text = sc.toml();
    let policy = policy::parse(&text, "composition.toml")
        .map_err(|e| TestCaseError::fail(format!("generated policy rejected: {e}\n{text}")))?;
    let plan = &policy.plans[0];
    prop_assert_eq!(plan.limits.len(), sc.limits.len());
    let specs = &sc.limits;
    let mut store = MapStore::new(plan);
    // Completions due: (instant, sequence) -> (arrival index, tickets).
    let mut pending = BTreeMap::new();
    let mut now = sc.start;
    let mut last_retry: Option<Nanos> = None;
    for (n, a) in sc.arrivals.iter().enumerate() {
        now = a.gap.advance(now, &mut last_retry);
        // Completions due by now, in time order, before the arrival.
        while let Some(entry) = pending.first_entry() {
            let &(t, _) = entry.key();
            if t > now {
                break;
            }
            let (k, tickets): (usize, _) = entry.remove();
            plan.complete(&mut store, t, &sc.arrivals[k].request(), &tickets);
        }

        let req = a.request();
        let before = store.clone();
        let own = own_answers(plan, specs, &before, now, a);
        let d = check(plan, &mut store, now, &req);
        let ctx = |e: TestCaseError| match e {
            TestCaseError::Fail(m) => TestCaseError::fail(format!("arrival #{n} {a:?}: {m}\ndecision: {d:?}\n{text}")),
            other => other,
        };
        if props.conjunction {
            assert_conjunction(plan, specs, &own, &before, &store, now, a, &d).map_err(ctx)?;
        }
        if props.denial_changes_nothing && !d.allowed {
            assert_unchanged(plan, specs, &before, &store, now, a, &d).map_err(ctx)?;
        }
        if props.binding_and_retry {
            assert_binding_and_retry(plan, specs, &own, &store, now, a, &d, check).map_err(ctx)?;
        }

        if let Retry::At(t) = d.retry {
            last_retry = Some(t);
        }
        if let (true, Some(after)) = (d.allowed && !d.tickets.is_empty(), a.done_after) {
            pending.insert((now + after, n), (n, d.tickets));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1000))]

    /// Property 1: a denied request consumes nothing anywhere.
    #[test]
    fn a_denied_request_changes_no_state(sc in scenario()) {
        drive(&sc, Props { denial_changes_nothing: true, conjunction: false, binding_and_retry: false }, &plan_check)?;
    }

    /// Property 2: admitted iff every applicable limit admits; an admission
    /// commits each applicable limit once.
    #[test]
    fn admission_is_the_conjunction_of_the_limits(sc in scenario()) {
        drive(&sc, Props { denial_changes_nothing: false, conjunction: true, binding_and_retry: false }, &plan_check)?;
    }

    /// Property 3: the denial names the binding limit, and the plan's retry
    /// instant is exact for all limits together.
    #[test]
    fn the_denial_binds_and_its_retry_holds_for_all_limits(sc in scenario()) {
        drive(&sc, Props { denial_changes_nothing: false, conjunction: false, binding_and_retry: true }, &plan_check)?;
    }
}

// ---------------------------------------------------------------------------
// The properties catch broken compositions
// ---------------------------------------------------------------------------

/// Runs all three properties over random scenarios with a broken `check`
/// and requires a failure.
fn assert_caught(what: &str, check: Check) {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        max_shrink_iters: 0,
        ..ProptestConfig::default()
    });
    let result = runner.run(&scenario(), |sc| drive(&sc, ALL, check));
    assert!(result.is_err(), "the properties did not catch {what}");
}

#[test]
fn a_plan_check_that_leaks_allowance_on_denial_is_caught() {
    // Non-atomic: on a denial, the first applicable limit that admitted
    // consumes its allowance anyway (the classic minute-limit leak).
    assert_caught("a leaking plan check", &|plan, store, now, req| {
        let d = plan.check(store, now, req);
        if !d.allowed {
            for (i, l) in plan.limits.iter().enumerate() {
                if !l.selector.matches(req) {
                    continue;
                }
                let cost = l.admission_cost(req);
                let leaked = store.with_state(i, l.scope.key_of(req), |mut s| {
                    let o = l.engine.decide(s.reborrow(), now, cost);
                    if o.allowed {
                        l.engine.commit(s, now, cost);
                    }
                    o.allowed
                });
                if leaked {
                    break;
                }
            }
        }
        d
    });
}

#[test]
fn a_plan_check_that_ignores_a_limit_is_caught() {
    assert_caught("a plan check ignoring its last limit", &|plan, store, now, req| {
        let mut fewer = plan.clone();
        fewer.limits.pop();
        fewer.check(store, now, req)
    });
}

#[test]
fn a_plan_check_that_does_not_count_denials_is_caught() {
    // Atomic where the limits are not: denials leave counting windows alone.
    assert_caught("a plan check that ignores count_denied", &|plan, store, now, req| {
        let mut atomic = plan.clone();
        for l in &mut atomic.limits {
            if let Engine::FixedWindow(w) = &l.engine {
                l.engine = Engine::FixedWindow(w.clone().with_count_denied(false));
            }
        }
        atomic.check(store, now, req)
    });
}

#[test]
fn a_plan_check_that_drops_delays_is_caught() {
    assert_caught("a plan check whose admissions never wait", &|plan, store, now, req| {
        let mut d = plan.check(store, now, req);
        d.delay = 0;
        d
    });
}

#[test]
fn a_retry_one_nanosecond_early_is_caught() {
    assert_caught("a retry instant one ns early", &|plan, store, now, req| {
        let mut d = plan.check(store, now, req);
        if let Retry::At(t) = d.retry {
            d.retry = Retry::At(t - 1);
        }
        d
    });
}

// ---------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------

/// The motivating case: a burst limit and an hourly window. Once the hour is
/// used up, denials must not drain the burst bucket.
#[test]
fn hour_limit_denials_leave_the_minute_bucket_alone() {
    let sc = Scenario {
        limits: vec![
            LimitSpec {
                algo: Algo::Gcra { count: 1, period: 10, burst: 3 },
                scope: ScopeSpec::Key,
                costs: [1, 1, 1],
                sel: Sel::All,
                status: 429,
            },
            LimitSpec {
                algo: Algo::FixedWindow { limit: 2, period: 20, counting: 0 },
                scope: ScopeSpec::User,
                costs: [1, 1, 1],
                sel: Sel::All,
                status: 403,
            },
        ],
        start: START,
        arrivals: (0..6).map(|_| Arrival { gap: Gap::Same, key: 0, endpoint: 0, done_after: None }).collect(),
    };
    drive(&sc, ALL, &plan_check).unwrap();
    let policy = policy::parse(&sc.toml(), "x.toml").unwrap();
    let plan = &policy.plans[0];
    let mut store = MapStore::new(plan);
    let req = sc.arrivals[0].request();
    assert!(plan.check(&mut store, START, &req).allowed);
    assert!(plan.check(&mut store, START, &req).allowed);
    let d = plan.check(&mut store, START, &req);
    assert!(!d.allowed);
    assert_eq!((d.denied_by, d.status, d.retry), (Some(1), 403, Retry::At(START + 20 * SECOND)));
    for _ in 0..3 {
        assert!(!plan.check(&mut store, START + 5 * SECOND, &req).allowed);
    }
    // The bucket holds exactly the two admitted units.
    let gcra = &plan.limits[0].engine;
    let mut two = gcra.new_state();
    for _ in 0..2 {
        gcra.commit(&mut two, START, 1);
    }
    assert_eq!(store.state(0, "k0"), two);
    // So at the next window two pass (the bucket drained them by then).
    for _ in 0..2 {
        assert!(plan.check(&mut store, START + 20 * SECOND, &req).allowed);
    }
}
