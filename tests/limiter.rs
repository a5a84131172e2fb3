//! The production limiter: thread safety, atomic composition under
//! contention, permit guards, lossless eviction, and agreement with the
//! simulator (one engine, two clocks).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use ratesim::client::ClientSpec;
use ratesim::limiter::{Clock, KeyedLimiter, ManualClock, IDLE_GRACE};
use ratesim::metrics::NoBuckets;
use ratesim::policy::{self, Policy, Request};
use ratesim::sim::{DecisionRecord, DecisionSink, SimConfig, Simulation, DEFAULT_START};
use ratesim::time::{MILLISECOND, SECOND};
use ratesim::trace::{MemoryTrace, TraceRow, TraceTime};

fn policy(text: &str) -> Arc<Policy> {
    Arc::new(policy::parse(text, "test.toml").unwrap())
}

const BUCKET_AND_CAP: &str = r#"
provider = "test"
[[plan]]
name = "pro"
[[plan.limit]]
id = "rpm"
algorithm = "gcra"
rate = "500/min"
burst = 50
[[plan.limit]]
id = "inflight"
algorithm = "concurrency"
max = 3
"#;

/// 4 threads × 1,000 calls of `check` at one instant; returns how many
/// were admitted.
fn admitted_by_racing_threads(check: impl Fn() -> bool + Send + Sync + 'static) -> u64 {
    let check = Arc::new(check);
    let admitted = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let check = check.clone();
            let admitted = admitted.clone();
            thread::spawn(move || {
                for _ in 0..1_000 {
                    if check() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    admitted.load(Ordering::Relaxed)
}

/// A bucket of 50 alone ("pro"), and with a global limit that never binds
/// ("pro-global": two shards locked per request).
const BUCKET_OF_50: &str = r#"
provider = "test"
[[plan]]
name = "pro"
[[plan.limit]]
id = "rpm"
algorithm = "gcra"
rate = "500/min"
burst = 50
[[plan]]
name = "pro-global"
[[plan.limit]]
id = "rpm"
algorithm = "gcra"
rate = "500/min"
burst = 50
[[plan.limit]]
id = "everyone"
algorithm = "fixed-window"
rate = "1000000/h"
scope = "global"
"#;

#[test]
fn threads_racing_at_one_instant_get_exactly_the_burst() {
    for plan in ["pro", "pro-global"] {
        let limiter = KeyedLimiter::with_clock(policy(BUCKET_OF_50), plan, ManualClock::new(DEFAULT_START)).unwrap();
        let admitted = admitted_by_racing_threads(move || limiter.check(&Request::new("shared-key")).is_ok());
        assert_eq!(admitted, 50, "plan {plan}");
    }
}

#[test]
fn threads_racing_on_an_integer_key_get_exactly_the_burst() {
    // u64::MAX is the integer table's empty-slot marker, kept beside it.
    for (plan, key) in [("pro", 7), ("pro", u64::MAX), ("pro-global", 7), ("pro-global", u64::MAX)] {
        let clock = ManualClock::new(DEFAULT_START);
        let limiter = KeyedLimiter::<_, u64>::build(policy(BUCKET_OF_50), plan, clock).unwrap();
        let admitted = admitted_by_racing_threads(move || limiter.check(&Request::with_id(key)).is_ok());
        assert_eq!(admitted, 50, "plan {plan}, key {key}");
    }
}

#[test]
fn concurrency_permits_never_exceed_the_cap_and_release_on_drop() {
    let limiter =
        Arc::new(KeyedLimiter::with_clock(policy(BUCKET_AND_CAP), "pro", ManualClock::new(DEFAULT_START)).unwrap());
    let in_flight = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (limiter, in_flight, peak) = (limiter.clone(), in_flight.clone(), peak.clone());
            thread::spawn(move || {
                for _ in 0..2_000 {
                    limiter.clock().advance(MILLISECOND);
                    if let Ok(admission) = limiter.check(&Request::new("k")) {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        thread::yield_now();
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        drop(admission);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 3, "peak {}", peak.load(Ordering::SeqCst));
    // Every permit came back: three can be held at once again.
    let clock_now = limiter.clock().now();
    limiter.clock().set(clock_now + 10 * SECOND);
    let held: Vec<_> = (0..3).map(|_| limiter.check(&Request::new("k")).unwrap()).collect();
    let denial = limiter.check(&Request::new("k")).unwrap_err();
    assert_eq!(denial.limit_id(), "inflight");
    drop(held);
    assert!(limiter.check(&Request::new("k")).is_ok());
}

#[test]
fn a_denial_consumes_nothing_in_any_limit() {
    let limiter = KeyedLimiter::with_clock(policy(BUCKET_AND_CAP), "pro", ManualClock::new(DEFAULT_START)).unwrap();
    let req = Request::new("k");
    let held: Vec<_> = (0..3).map(|_| limiter.check(&req).unwrap()).collect();
    // The concurrency cap denies 100 times; the bucket must not be drained by them.
    for _ in 0..100 {
        assert_eq!(limiter.check(&req).unwrap_err().limit_id(), "inflight");
    }
    drop(held);
    // 50 - 3 units left in the bucket, taken one at a time (each released at once).
    let mut admitted = 0;
    while limiter.check(&req).is_ok() {
        admitted += 1;
    }
    assert_eq!(admitted, 47);
}

#[test]
fn eviction_is_lossless() {
    let p = policy(
        r#"
        provider = "test"
        [[plan]]
        name = "pro"
        [[plan.limit]]
        id = "rpm"
        algorithm = "gcra"
        rate = "60/min"
        burst = 5
        "#,
    );
    let limiter = KeyedLimiter::with_clock(p, "pro", ManualClock::new(DEFAULT_START)).unwrap();
    for i in 0..100 {
        let key = format!("k{i}");
        for _ in 0..(i % 7) {
            let _ = limiter.check(&Request::new(&key));
        }
    }
    assert_eq!(limiter.len(), 85); // the 15 keys with i % 7 == 0 made no request
                                   // Nothing is idle yet: nothing may be evicted.
    assert_eq!(limiter.evict_idle(), 0);
    // 3 s later, buckets holding at most 3 units have drained. (A key that
    // asked i % 7 times holds min(i % 7, 5) units: the burst is 5.) A sweep
    // then still evicts nothing: a state goes only after IDLE_GRACE at rest.
    limiter.clock().advance(3 * SECOND);
    assert_eq!(limiter.evict_idle(), 0);
    // A sweep IDLE_GRACE later evicts exactly the states that were idle at
    // +3 s, so a clock stepped back to +3 s gets the answers it would have
    // got without eviction.
    limiter.clock().advance(IDLE_GRACE);
    let evicted = limiter.evict_idle();
    assert_eq!(evicted, (0..100).filter(|i| i % 7 != 0 && i % 7 <= 3).count());
    limiter.clock().set(DEFAULT_START + 3 * SECOND);
    let held = |i: usize| (i % 7).min(5) as u64;
    let before: Vec<bool> = (0..100).map(|i| held(i) > 3).collect();
    // Keys that held 4 or 5 units still have 1 or 2 in their bucket.
    for (i, busy) in before.iter().enumerate() {
        let key = format!("k{i}");
        let d = limiter.check(&Request::new(&key)).map(|a| a.decision().reported.unwrap().1.remaining).unwrap();
        let level = if *busy { held(i) - 3 } else { 0 };
        assert_eq!(d, 5 - level - 1, "key {key}");
    }
}

/// Collects (allowed, status) per attempt.
struct Collect(Vec<(bool, u16)>);

impl DecisionSink for Collect {
    fn decision(&mut self, d: &DecisionRecord<'_>) -> std::io::Result<()> {
        self.0.push((d.allowed, d.status));
        Ok(())
    }
}

#[test]
fn production_and_simulator_agree_decision_for_decision() {
    let p = policy::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/runagent.toml"))).unwrap();
    let plan = p.plan("free").unwrap();
    // A bursty sequence over two keys, with durations so concurrency matters.
    let mut rows = Vec::new();
    let mut t = 0;
    for i in 0..400u64 {
        t += (i * 7919) % 900 * MILLISECOND;
        rows.push(TraceRow {
            t: TraceTime::Offset(t),
            key: format!("key-{}", i % 2),
            endpoint: "invoke".into(),
            duration: (i % 5) * 700 * MILLISECOND,
            ..TraceRow::default()
        });
    }
    let mut sim_out = Collect(Vec::new());
    Simulation::new(&p, plan, SimConfig { client: ClientSpec::none(), ..SimConfig::default() })
        .run(&mut MemoryTrace::new(rows.clone()), &mut NoBuckets, &mut sim_out)
        .unwrap();

    // Replay on the production limiter with a manual clock, completing each
    // admitted request when its duration ends (completions first at a tie).
    let limiter = KeyedLimiter::with_clock(Arc::new(p.clone()), "free", ManualClock::new(DEFAULT_START)).unwrap();
    let mut pending: Vec<(u64, usize, ratesim::policy::Tickets)> = Vec::new();
    let mut prod = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let TraceTime::Offset(off) = r.t else { unreachable!() };
        let now = DEFAULT_START + off;
        pending.sort_by_key(|p| (p.0, p.1));
        while pending.first().is_some_and(|p| p.0 <= now) {
            let (at, j, tickets) = pending.remove(0);
            let req = Request { endpoint: &rows[j].endpoint, ..Request::new(&rows[j].key) };
            limiter.complete_at(&req, &tickets, at);
        }
        let req = Request { endpoint: &r.endpoint, ..Request::new(&r.key) };
        let d = limiter.check_at(&req, now);
        prod.push((d.allowed, d.status));
        if d.allowed && (r.duration > 0 || !d.tickets.is_empty()) {
            pending.push((now + r.duration, i, d.tickets));
        }
    }
    assert_eq!(prod.len(), sim_out.0.len());
    assert_eq!(prod, sim_out.0);
    assert!(prod.iter().any(|d| !d.0), "the sequence must provoke denials");
}

#[test]
fn finishing_with_actual_amounts_reports_the_budget_overshoot() {
    let p = policy(
        r#"
provider = "test"
[[plan]]
name = "pro"
[[plan.limit]]
id = "tokens"
algorithm = "budget"
unit = "tokens"
limit = 1000
period = "day"
reserve = 100
"#,
    );
    let clock = Arc::new(ManualClock::new(DEFAULT_START));
    let lim = KeyedLimiter::with_clock(p, "pro", clock.clone()).unwrap();
    let req = Request::new("k");
    // Reserved 100, used 250: 150 over the reservation.
    let c = lim.check(&req).expect("admitted").finish(250, 0);
    assert_eq!(c.overshoot, 150);
    // Used less than reserved: no overshoot.
    let c = lim.check(&req).expect("admitted").finish(40, 0);
    assert_eq!(c.overshoot, 0);
    // 290 spent of 1,000: seven more reservations of 100 fit, the eighth not.
    let held: Vec<_> = (0..7).map(|_| lim.check(&req).expect("fits")).collect();
    assert!(lim.check(&req).is_err(), "the eighth reservation does not fit");
    drop(held);
}

/// Issue 9, point 13: a rolling budget of 100 tokens per 10 s, settled 5
/// and then 2^64 − 1 tokens, was stuck at zero for ever (the settled sum
/// saturated, so expiring the entries took more than was added). The rows
/// at 30 s and 31 s find the window empty, in production and in the
/// simulator alike.
#[test]
fn a_rolling_budget_forgets_a_huge_settlement_in_both_clocks() {
    let p = policy(
        r#"
provider = "test"
[[plan]]
name = "pro"
[[plan.limit]]
id = "tokens"
algorithm = "budget"
unit = "tokens"
limit = 100
period = "10s"
"#,
    );
    let rows: Vec<TraceRow> = [(0, 5), (SECOND / 2, u64::MAX), (30 * SECOND, 1), (31 * SECOND, 1)]
        .into_iter()
        .map(|(t, tokens)| TraceRow { t: TraceTime::Offset(t), key: "a".into(), tokens, ..TraceRow::default() })
        .collect();
    let mut sim_out = Collect(Vec::new());
    let summary = Simulation::new(&p, p.plan("pro").unwrap(), SimConfig::default())
        .run(&mut MemoryTrace::new(rows.clone()), &mut NoBuckets, &mut sim_out)
        .unwrap();
    assert_eq!(sim_out.0, vec![(true, 200); 4]);
    assert_eq!(summary.tokens, u64::MAX as u128 + 7, "the total does not wrap either");

    let clock = Arc::new(ManualClock::new(DEFAULT_START));
    let lim = KeyedLimiter::with_clock(p, "pro", clock.clone()).unwrap();
    let mut at = 0;
    for r in &rows {
        let TraceTime::Offset(t) = r.t else { unreachable!() };
        clock.advance(t - at);
        at = t;
        let admission = lim.check(&Request::new("a")).expect("the window is empty or within budget");
        admission.finish(r.tokens, 0);
    }
}

#[test]
fn every_identity_is_its_own_however_it_is_stored() {
    // Short identities are stored inline, long ones on the heap; identities
    // that differ only by length or by a trailing NUL are still different.
    let p = policy(
        r#"
provider = "test"
[[plan]]
name = "pro"
[[plan.limit]]
id = "rpm"
algorithm = "gcra"
rate = "1/h"
burst = 2
[[plan.limit]]
id = "per-user"
algorithm = "fixed-window"
rate = "100/h"
scope = "user"
"#,
    );
    let lim = KeyedLimiter::with_clock(p, "pro", ManualClock::new(DEFAULT_START)).unwrap();
    let keys = [
        String::new(),
        "a".to_string(),
        "ab".to_string(),
        "ab\0".to_string(),
        "k".repeat(21),
        "k".repeat(22),
        "k".repeat(23),
        "k".repeat(200),
        format!("{}x", "k".repeat(199)),
    ];
    for key in &keys {
        for n in 0..2 {
            assert!(lim.check(&Request::new(key)).is_ok(), "{key:?}: request {n} is within its own burst");
        }
    }
    for key in &keys {
        let denial = lim.check(&Request::new(key)).expect_err("the third request exceeds the burst");
        assert_eq!(denial.limit_id(), "rpm", "{key:?}");
    }
    // Two limits per identity (the user is the key here).
    assert_eq!(lim.len(), 2 * keys.len());
}

#[test]
fn a_limit_that_never_resets_sends_no_reset() {
    // A reported lifetime budget: limit and remaining, but no reset instant
    // (and no IETF `t`), in headers and body alike.
    let p = policy(
        r#"
provider = "test"
[response]
reset_after_header = "X-RateLimit-Reset-After"
ietf = true
body = '{"reset": "{reset}", "reset_at": "{reset_at}", "reset_after": "{reset_after}"}'
[[plan]]
name = "pro"
[[plan.limit]]
id = "lifetime"
algorithm = "budget"
limit = 2
period = "lifetime"
reserve = 1
report = true
"#,
    );
    let lim = KeyedLimiter::with_clock(p, "pro", ManualClock::new(DEFAULT_START)).unwrap();
    let req = Request::new("k");
    let ok = lim.check(&req).expect("admitted");
    let r = ok.response();
    assert_eq!(r.header("X-RateLimit-Limit"), Some("2"));
    assert_eq!(r.header("X-RateLimit-Remaining"), Some("1"));
    assert_eq!(r.header("X-RateLimit-Reset"), None);
    assert_eq!(r.header("X-RateLimit-Reset-After"), None);
    assert_eq!(r.header("RateLimit"), Some("\"lifetime\";r=1"));
    drop(ok);
    drop(lim.check(&req).expect("the second fits"));
    let denial = lim.check(&req).expect_err("the budget is spent for good");
    let r = denial.response();
    assert_eq!(r.header("X-RateLimit-Reset"), None);
    assert_eq!(r.header("Retry-After"), None, "never admitted again: no Retry-After");
    let body: serde_json::Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"reset": null, "reset_at": null, "reset_after": null}));
}

#[test]
fn a_permit_released_twice_frees_nothing_even_after_eviction() {
    let p = policy(
        r#"
provider = "test"
[[plan]]
name = "pro"
[[plan.limit]]
id = "inflight"
algorithm = "concurrency"
max = 1
"#,
    );
    let clock = Arc::new(ManualClock::new(DEFAULT_START));
    let lim = KeyedLimiter::with_clock(p, "pro", clock.clone()).unwrap();
    let req = Request::new("k");
    let a = lim.check_at(&req, clock.now());
    assert!(a.allowed);
    lim.complete_at(&req, &a.tickets, clock.now());
    // The key's state is idle; once the grace period is over it is evicted.
    clock.advance(IDLE_GRACE + SECOND);
    assert_eq!(lim.evict_idle(), 1);
    let b = lim.check_at(&req, clock.now());
    assert!(b.allowed, "a fresh state admits");
    // A stale second completion of `a` must not free `b`'s permit.
    lim.complete_at(&req, &a.tickets, clock.now());
    assert!(!lim.check_at(&req, clock.now()).allowed, "b still holds the only permit");
    lim.complete_at(&req, &b.tickets, clock.now());
    assert!(lim.check_at(&req, clock.now()).allowed);
}

#[test]
fn integer_keys_decide_exactly_as_their_string_forms() {
    // The same workload through a limiter keyed by u64 and one keyed by the
    // decimal strings of the same numbers: every decision, every completion
    // and every sweep must agree. Keys include 0 and u64::MAX (the integer
    // table's empty-slot marker, kept beside the table) and enough others to
    // make the tables grow; the plan has a limit per key, per user, per
    // workspace and a global one, and a concurrency cap with tickets.
    let p = policy(
        r#"
provider = "test"
[[plan]]
name = "pro"
[[plan.limit]]
id = "rpm"
algorithm = "gcra"
rate = "120/min"
burst = 4
[[plan.limit]]
id = "user-hour"
algorithm = "fixed-window"
rate = "40/h"
scope = "user"
[[plan.limit]]
id = "workspace-minute"
algorithm = "sliding-counter"
rate = "300/min"
scope = "workspace"
[[plan.limit]]
id = "inflight"
algorithm = "concurrency"
max = 2
[[plan.limit]]
id = "everyone"
algorithm = "sliding-log"
rate = "2000/min"
scope = "global"
"#,
    );
    let clock = Arc::new(ManualClock::new(DEFAULT_START));
    let by_int = KeyedLimiter::<_, u64>::build(p.clone(), "pro", clock.clone()).unwrap();
    let by_str = KeyedLimiter::with_clock(p, "pro", clock.clone()).unwrap();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let special = [0, 1, u64::MAX, u64::MAX - 1];
    let mut open: Vec<(u64, u64, u64, ratesim::policy::Tickets)> = Vec::new();
    let (mut admitted, mut denied) = (0, 0);
    for step in 0..30_000u32 {
        let r = next();
        let key = if r % 10 == 0 { special[(r / 10 % 4) as usize] } else { r % 3_000 };
        let (user, workspace) = (key % 500, key % 37);
        let (ks, us, ws) = (key.to_string(), user.to_string(), workspace.to_string());
        let now = clock.now();
        let ri = Request { user: Some(user), workspace: Some(workspace), ..Request::with_id(key) };
        let rs = Request::new(&ks).with_user(&us).with_workspace(&ws);
        let di = by_int.check_at(&ri, now);
        let ds = by_str.check_at(&rs, now);
        assert_eq!(di, ds, "step {step}: key {key}");
        if di.allowed {
            admitted += 1;
            open.push((key, user, workspace, di.tickets));
        } else {
            denied += 1;
        }
        // Complete the oldest open request now and then.
        if next() % 3 == 0 && !open.is_empty() {
            let (key, user, workspace, tickets) = open.remove(0);
            let (ks, us, ws) = (key.to_string(), user.to_string(), workspace.to_string());
            let ri = Request { user: Some(user), workspace: Some(workspace), ..Request::with_id(key) };
            let rs = Request::new(&ks).with_user(&us).with_workspace(&ws);
            assert_eq!(by_int.complete_at(&ri, &tickets, now), by_str.complete_at(&rs, &tickets, now));
        }
        clock.advance(next() % (40 * MILLISECOND));
        if step % 5_000 == 4_999 {
            clock.advance(2 * IDLE_GRACE);
            assert_eq!(by_int.evict_idle(), by_str.evict_idle(), "step {step}: sweeps");
            assert_eq!(by_int.len(), by_str.len(), "step {step}: states held");
        }
    }
    assert!(admitted > 1_000 && denied > 1_000, "both answers exercised: {admitted} admitted, {denied} denied");
}
