//! Property tests for the dialect options and engines
//! (`ratesim::engines::dialect`), each against a brute-force reference
//! written from the documented semantics, never from the engine's code:
//!
//! - first-hit fixed windows (Python `limits`, Redis `INCR` + `EXPIRE`), with
//!   and without counting denied requests, against a replay of every counted
//!   request that opens and closes windows;
//! - the closed rolling window against the list of admitted requests;
//! - the floored sliding estimate against `floor(prev·(P - e)/P) + cur`;
//! - the token bucket with steps against its envelope (in every interval
//!   `[s, now]`, admitted cost at most `max` plus the refills in `(s, now]`);
//! - nginx `limit_req` against a line-by-line transcription of nginx 1.22.1's
//!   `ngx_http_limit_req_lookup`, one request at a time.
//!
//! Every denial's `Retry::At` is checked exact, and `remaining` against the
//! reference. The protocol (decide consumes nothing, lossless idleness,
//! monotonicity, stepping back) is checked for these engines with all the
//! others in `tests/engine_properties.rs`. `RATESIM_SOAK` runs more cases.

mod common;

use std::collections::HashMap;

use common::arrivals::{check_retry, gap, period, pick, rate, start, Clock};
use common::config;
use proptest::collection::vec;
use proptest::prelude::*;

use ratesim::engines::{
    Engine, FixedWindow, FixedWindowState, NginxLimitReq, NginxLimitReqState, Retry, SlidingCounter,
    SlidingCounterState, SlidingLog, SlidingLogState, StateMut, TokenBucketSteps, TokenBucketStepsState, WindowAlign,
};
use ratesim::time::{Nanos, Rate, MILLISECOND, MINUTE, SECOND};

// ---------------------------------------------------------------------------
// First-hit fixed windows
// ---------------------------------------------------------------------------

/// The end of a first-hit window opened at `s`, as documented.
fn window_end(align: WindowAlign, period: Nanos, s: Nanos) -> Nanos {
    match align {
        WindowAlign::FirstHitRedis => (s / MILLISECOND + period / MILLISECOND + 1) * MILLISECOND,
        _ => s + period,
    }
}

/// Replays every counted request (cost > 0): a counted request opens a
/// window when none is open. Returns every window's `(end, used)`.
fn windows(align: WindowAlign, period: Nanos, counted: &[(Nanos, u64)]) -> Vec<(Nanos, u64)> {
    let mut out: Vec<(Nanos, u64)> = Vec::new();
    for &(t, c) in counted {
        match out.last_mut() {
            Some((end, used)) if t < *end => *used += c,
            _ => out.push((window_end(align, period, t), c)),
        }
    }
    out
}

/// The window open at `now`, if any: `(end, used)`.
fn open_window(align: WindowAlign, period: Nanos, counted: &[(Nanos, u64)], now: Nanos) -> Option<(Nanos, u64)> {
    windows(align, period, counted).last().copied().filter(|&(end, _)| now < end)
}

proptest! {
    #![proptest_config(config(256))]

    /// A first-hit window admits iff the counted cost of the window open at
    /// `now` (if any) plus the request fits; with `count_denied`, denied
    /// requests are counted too and the figures follow the count.
    #[test]
    fn first_hit_windows_replay_their_history(
        limit in 1..=10u64,
        period in period(),
        redis in any::<bool>(),
        count_denied in any::<bool>(),
        start in start(),
        steps in vec((gap(), any::<u64>()), 1..200),
    ) {
        let (align, period) = if redis {
            (WindowAlign::FirstHitRedis, period.div_ceil(MILLISECOND) * MILLISECOND)
        } else {
            (WindowAlign::FirstHit, period)
        };
        let w = FixedWindow::new(limit, period).unwrap().with_align(align).unwrap().with_count_denied(count_denied);
        let e = Engine::FixedWindow(w.clone());
        let mut state = FixedWindowState::default();
        let mut counted: Vec<(Nanos, u64)> = Vec::new();
        let mut clock = Clock::new(start, period / limit, period);
        for (i, &(gap, sel)) in steps.iter().enumerate() {
            let now = clock.advance(gap);
            let cost = pick(sel, 0, limit + 1);
            let before = open_window(align, period, &counted, now);
            let used = before.map_or(0, |(_, u)| u);
            let (d, _) = e.acquire(StateMut::FixedWindow(&mut state), now, cost);
            prop_assert_eq!(
                d.allowed, used + cost <= limit,
                "request {} (cost {}) at {} with {} counted in the open window {:?}: {:?}", i, cost, now, used, before, d
            );
            if (d.allowed || count_denied) && cost > 0 {
                counted.push((now, cost));
            }
            let after = open_window(align, period, &counted, now);
            prop_assert_eq!(d.remaining, limit.saturating_sub(after.map_or(0, |(_, u)| u)), "remaining after request {}", i);
            prop_assert_eq!(d.reset, after.map_or(now, |(end, _)| end), "reset after request {}", i);
            if !d.allowed {
                let expected = if cost > limit { Retry::Never } else { Retry::At(after.expect("a denial within the limit has a window").0) };
                prop_assert_eq!(d.retry, expected);
                check_retry("first-hit window", now, d.retry, |t| w.decide(&mut state.clone(), t, cost).allowed)?;
            }
            clock.note(&d);
        }
        if !count_denied {
            // Admitted requests never exceed the limit within one window.
            prop_assert!(windows(align, period, &counted).iter().all(|&(_, used)| used <= limit));
        }
    }
}

// ---------------------------------------------------------------------------
// Closed rolling window
// ---------------------------------------------------------------------------

/// Cost admitted in `[now - period, now]`.
fn closed_window(admitted: &[(Nanos, u64)], period: Nanos, now: Nanos) -> u64 {
    admitted.iter().filter(|&&(s, _)| s as u128 + period as u128 >= now as u128).map(|&(_, c)| c).sum()
}

proptest! {
    #![proptest_config(config(256))]

    /// The closed sliding log admits iff the cost in `[now - P, now]` plus
    /// the request fits; `remaining` and retries follow the same window.
    #[test]
    fn closed_sliding_log_is_a_closed_rolling_window(
        limit in 1..=10u64,
        period in period(),
        start in start(),
        steps in vec((gap(), any::<u64>()), 1..200),
    ) {
        let w = SlidingLog::new(limit, period).unwrap().with_closed_boundary(true);
        let mut state = SlidingLogState::default();
        let mut admitted: Vec<(Nanos, u64)> = Vec::new();
        // Coarse gaps of exactly P land on the closed boundary.
        let mut clock = Clock::new(start, period / limit, period);
        for (i, &(gap, sel)) in steps.iter().enumerate() {
            let now = clock.advance(gap);
            let cost = pick(sel, 0, limit + 1);
            let used = closed_window(&admitted, period, now);
            let d = w.decide(&mut state, now, cost);
            prop_assert_eq!(d.allowed, used + cost <= limit, "request {} (cost {}) at {} with {} in [now - P, now]", i, cost, now, used);
            if d.allowed {
                w.commit(&mut state, now, cost);
                admitted.push((now, cost));
                prop_assert_eq!(d.remaining, limit - used - cost);
            } else {
                prop_assert_eq!(d.remaining, limit - used);
                check_retry("closed log", now, d.retry, |t| w.decide(&mut state.clone(), t, cost).allowed)?;
                check_retry("closed log reference", now, d.retry, |t| closed_window(&admitted, period, t) + cost <= limit)?;
            }
            clock.note(&d);
        }
    }
}

// ---------------------------------------------------------------------------
// Floored sliding estimate
// ---------------------------------------------------------------------------

/// `floor(prev·(P - e)/P) + cur` at `now` from the admitted cost of every
/// epoch-aligned window.
fn floored_estimate(used: &HashMap<u64, u64>, period: Nanos, now: Nanos) -> u64 {
    let k = now / period;
    let elapsed = (now - k * period) as u128;
    let prev = if k == 0 { 0 } else { used.get(&(k - 1)).copied().unwrap_or(0) };
    let cur = used.get(&k).copied().unwrap_or(0);
    (prev as u128 * (period as u128 - elapsed) / period as u128) as u64 + cur
}

proptest! {
    #![proptest_config(config(256))]

    /// The floored counter admits iff `floor(prev·(P - e)/P) + cur + c <=
    /// limit`, reports `remaining = limit - floor(estimate)` (at least 0) as
    /// Python `limits` does, and its retries solve the floored inequality.
    #[test]
    fn floored_sliding_counter_matches_its_formula(
        limit in 1..=10u64,
        period in period(),
        start in start(),
        steps in vec((gap(), any::<u64>()), 1..200),
    ) {
        let w = SlidingCounter::new(limit, period).unwrap().with_floor_estimate(true);
        let mut state = SlidingCounterState::default();
        let mut used: HashMap<u64, u64> = HashMap::new();
        let mut clock = Clock::new(start, period / limit, period);
        for (i, &(gap, sel)) in steps.iter().enumerate() {
            let now = clock.advance(gap);
            let cost = pick(sel, 0, limit + 1);
            let estimate = floored_estimate(&used, period, now);
            let d = w.decide(&mut state, now, cost);
            prop_assert_eq!(d.allowed, estimate + cost <= limit, "request {} (cost {}) at {}, floored estimate {}", i, cost, now, estimate);
            if d.allowed {
                w.commit(&mut state, now, cost);
                *used.entry(now / period).or_insert(0) += cost;
            } else {
                check_retry("floored counter", now, d.retry, |t| w.decide(&mut state.clone(), t, cost).allowed)?;
                check_retry("floored formula", now, d.retry, |t| floored_estimate(&used, period, t) + cost <= limit)?;
            }
            prop_assert_eq!(d.remaining, limit.saturating_sub(floored_estimate(&used, period, now)));
            clock.note(&d);
        }
    }
}

// ---------------------------------------------------------------------------
// Token bucket with steps
// ---------------------------------------------------------------------------

/// Tokens at `now` from the envelope: the bucket starts full at `start`, and
/// for every instant `s` at which it may last have been full (the start, or
/// the last refill at or before an event), `max` plus the refills in
/// `(s, now]` minus the cost admitted in `[s, now]` bounds the tokens; the
/// least bound is exact.
fn envelope_tokens(max: u64, rate: Rate, start: Nanos, admitted: &[(Nanos, u64)], now: Nanos) -> u64 {
    let interval = rate.period();
    let refills = |s: Nanos| (now / interval - s / interval) as u128 * rate.count() as u128;
    let candidates = std::iter::once(start)
        .chain(admitted.iter().map(|&(t, _)| t).chain([now]).map(|t| (t / interval * interval).max(start)));
    candidates
        .map(|s| {
            let spent: u128 = admitted.iter().filter(|&&(t, _)| t >= s).map(|&(_, c)| c as u128).sum();
            (max as u128 + refills(s)).saturating_sub(spent)
        })
        .min()
        .unwrap()
        .min(max as u128) as u64
}

proptest! {
    #![proptest_config(config(256))]

    /// The steps bucket admits iff the envelope leaves `cost` tokens; its
    /// `remaining` is those tokens; retries are exact and fall on refills.
    #[test]
    fn token_bucket_steps_is_its_envelope(
        rate in rate(),
        max in 1..=20u64,
        start in start(),
        steps in vec((gap(), any::<u64>()), 1..150),
    ) {
        let b = TokenBucketSteps::new(rate, max).unwrap();
        let mut state = TokenBucketStepsState::default();
        let mut admitted: Vec<(Nanos, u64)> = Vec::new();
        let refills = max.div_ceil(rate.count());
        let mut clock = Clock::new(start, rate.period(), rate.period().saturating_mul(refills));
        for (i, &(gap, sel)) in steps.iter().enumerate() {
            let now = clock.advance(gap);
            let cost = pick(sel, 0, max + 1);
            let tokens = envelope_tokens(max, rate, start, &admitted, now);
            let d = b.decide(&mut state, now, cost);
            prop_assert_eq!(d.allowed, cost <= tokens, "request {} (cost {}) at {} with {} tokens", i, cost, now, tokens);
            if d.allowed {
                b.commit(&mut state, now, cost);
                admitted.push((now, cost));
                prop_assert_eq!(d.remaining, tokens - cost);
            } else {
                prop_assert_eq!(d.remaining, tokens);
                if let Retry::At(t) = d.retry {
                    prop_assert_eq!(t % rate.period(), 0, "retry {} is not a refill instant", t);
                }
                check_retry("steps bucket", now, d.retry, |t| b.decide(&mut state.clone(), t, cost).allowed)?;
                check_retry("steps envelope", now, d.retry, |t| cost <= envelope_tokens(max, rate, start, &admitted, t))?;
            }
            clock.note(&d);
        }
    }
}

// ---------------------------------------------------------------------------
// nginx limit_req
// ---------------------------------------------------------------------------

/// nginx 1.22.1's node for one key: `excess` and `last`, as
/// `ngx_http_limit_req_lookup` keeps them (signed arithmetic as in C).
#[derive(Clone, Copy, Debug)]
struct NginxNode {
    excess: i64,
    last: i64,
}

/// One request through `ngx_http_limit_req_lookup` with `account = 1` (the
/// only limit), transcribed: returns `Some(excess)` if passed (and updates
/// the node), `None` if refused (`NGX_BUSY`, nothing changes).
fn nginx_lookup(node: &mut Option<NginxNode>, rate: i64, burst: i64, now: i64) -> Option<i64> {
    match node {
        Some(lr) => {
            let mut ms = now - lr.last;
            if ms < -60000 {
                ms = 1;
            } else if ms < 0 {
                ms = 0;
            }
            let mut excess = lr.excess - rate * ms / 1000 + 1000;
            if excess < 0 {
                excess = 0;
            }
            if excess > burst {
                return None;
            }
            lr.excess = excess;
            if ms != 0 {
                lr.last = now;
            }
            Some(excess)
        }
        None => {
            *node = Some(NginxNode { excess: 0, last: now });
            Some(0)
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// The engine answers as nginx's own code would, request by request (a
    /// cost `c` is `c` requests at one instant, all or none), including the
    /// delay nginx puts on the admission; retries and `remaining` are exact.
    #[test]
    fn nginx_limit_req_is_nginx(
        count in prop_oneof![Just(1u64), Just(7), Just(10), Just(500), 1..=100u64],
        per_minute in any::<bool>(),
        burst in 0..=10u64,
        delay in prop::option::of(0..=12u64),
        start in start(),
        steps in vec((gap(), any::<u64>()), 1..200),
    ) {
        let rate = Rate::new(count, if per_minute { MINUTE } else { SECOND }).unwrap();
        let n = NginxLimitReq::new(rate, burst, delay).unwrap();
        // nginx: rate * 1000 / scale; burst * 1000; delay * 1000 (nodelay: no delay).
        let rate_m = (count * 1000 / if per_minute { 60 } else { 1 }) as i64;
        prop_assert_eq!(n.rate_milli() as i64, rate_m);
        let mut state = NginxLimitReqState::default();
        let mut node: Option<NginxNode> = None;
        let fine = 1_000_000u64.div_ceil(rate_m as u64) * MILLISECOND;
        let mut clock = Clock::new(start, fine, fine * (burst + 1));
        for (i, &(gap, sel)) in steps.iter().enumerate() {
            let now = clock.advance(gap);
            let now_ms = (now / MILLISECOND) as i64;
            let cost = pick(sel, 0, burst + 2);
            // `cost` requests at one instant, all or none.
            let mut trial = node;
            let mut last_excess = None;
            for _ in 0..cost {
                last_excess = nginx_lookup(&mut trial, rate_m, (burst * 1000) as i64, now_ms);
                if last_excess.is_none() {
                    break;
                }
            }
            let passes = cost == 0 || last_excess.is_some();
            let d = n.decide(&state, now, cost);
            prop_assert_eq!(d.allowed, passes, "request {} (cost {}) at {} ms: nginx node {:?}, engine {:?}", i, cost, now_ms, node, d);
            // How many more would pass now.
            let mut probe = if passes { trial } else { node };
            let mut room = 0;
            while nginx_lookup(&mut probe, rate_m, (burst * 1000) as i64, now_ms).is_some() && room <= burst + 1 {
                room += 1;
            }
            prop_assert_eq!(d.remaining, room, "remaining after request {}", i);
            if passes && cost > 0 {
                node = trial;
                n.commit(&mut state, now, cost);
                // ngx_http_limit_req_account: delay = (excess - delay) * 1000 / rate ms.
                let excess = last_excess.unwrap();
                let delay_ms = match delay {
                    Some(k) if excess > (k * 1000) as i64 => (excess - (k * 1000) as i64) * 1000 / rate_m,
                    _ => 0,
                };
                let expected = if delay_ms == 0 { 0 } else { (now_ms + delay_ms) as u64 * MILLISECOND - now };
                prop_assert_eq!(d.delay, expected, "delay of request {} (excess {})", i, excess);
            } else if !passes {
                prop_assert_eq!(d.retry == Retry::Never, cost > burst + 1);
                check_retry("nginx", now, d.retry, |t| n.decide(&state, t, cost).allowed)?;
            }
            clock.note(&d);
        }
    }
}
