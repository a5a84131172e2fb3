//! Conformance: every decision through the Redis module, at explicit
//! instants (`AT`), equals the in-process limiter's, field for field.
//!
//! Two sources of requests, each driven through a real `redis-server` with
//! the module and through a [`KeyedLimiter`] (`check_at` / `complete_at`)
//! side by side:
//!
//! 1. the random plans and arrivals of `tests/composition.rs` (shared in
//!    `tests/common/scenario.rs`): every algorithm, 1 to 4 limits per plan,
//!    key, user and global scopes, per-endpoint costs, partial selectors,
//!    ties and instants one nanosecond either side of boundaries and retry
//!    instants, completions of admitted requests;
//! 2. every plan of every shipped policy (`policies/*.toml`), with random
//!    keys, users, workspaces, endpoints (those the policies name, and
//!    others), authentication, tokens and money: token and money budgets,
//!    provider headers (reset formats, IETF fields), bodies.
//!
//! Compared on every request: admitted, status, binding limit, remaining,
//! reset, exact retry wait, rendered headers (names, order, values), body,
//! and the completion ticket; on every completion, the overshoot.
//!
//! `RATESIM_SOAK` (to anything, or to a number of cases) runs many more.

mod common;

#[path = "../../../tests/common/scenario.rs"]
mod scenario;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use ratesim::engines::Ticket;
use ratesim::limiter::{KeyedLimiter, ManualClock, RedisDecision};
use ratesim::policy::{self, render, PlanDecision, Policy, Request, Tickets};
use ratesim::time::{Nanos, SECOND};
use scenario::{scenario, Scenario, START};

use common::{Server, TempDir};

type TestResult = Result<(), TestCaseError>;

/// Cases per property (many more with `RATESIM_SOAK`).
fn cases(n: u32) -> ProptestConfig {
    let n = match std::env::var("RATESIM_SOAK") {
        Ok(v) => v.trim().parse::<u32>().ok().filter(|&k| k > 1).unwrap_or(5_000).max(n),
        Err(_) => n,
    };
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

/// One server for the whole file, and a connection to it.
fn server() -> &'static Mutex<(TempDir, Server, redis::Connection)> {
    static SERVER: OnceLock<Mutex<(TempDir, Server, redis::Connection)>> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = TempDir::new("conformance");
        let server = Server::start(&dir.0, &[]);
        let conn = server.conn();
        Mutex::new((dir, server, conn))
    })
}

/// A fresh policy name per case (states of different cases never meet).
fn fresh_name(what: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{what}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The ticket text the module documents for `tickets`.
fn ticket_text(tickets: &Tickets) -> Option<String> {
    if tickets.is_empty() {
        return None;
    }
    let items: Vec<String> = tickets
        .iter()
        .map(|(i, t)| match t {
            Ticket::Permit(p) => format!("{i}:p:{}:{}", p.expires, p.id),
            Ticket::Reservation { period, amount } => format!("{i}:r:{period}:{amount}"),
            Ticket::None => unreachable!("no ticket for limits that need no completion"),
        })
        .collect();
    Some(items.join(","))
}

/// What the module must answer for the in-process decision `d` at `now`.
fn expected(policy: &Policy, plan: usize, d: &PlanDecision, now: Nanos) -> RedisDecision {
    let plan = &policy.plans[plan];
    let figures = d.denial.or(d.reported.map(|(_, r)| r));
    let r = render(policy, plan, d, now);
    RedisDecision {
        allowed: d.allowed,
        status: d.status,
        limit: d.denied_by.map(|i| plan.limits[i].id.clone()),
        remaining: figures.map(|f| f.remaining),
        reset_ns: figures.map(|f| f.reset).filter(|&t| t != Nanos::MAX),
        retry_after_ns: d.retry.at().map(|t| t - now),
        headers: r.headers,
        body: r.body,
        ticket: ticket_text(&d.tickets),
        delay_ns: d.delay,
        fallback: None,
    }
}

/// The module's arguments for `req` (after the command name and, for
/// `RATESIM.COMPLETE`, before the ticket: key, policy, plan).
fn options(req: &Request<'_>, at: Nanos) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(u) = req.user {
        a.extend(["USER".into(), u.to_string()]);
    }
    if let Some(w) = req.workspace {
        a.extend(["WORKSPACE".into(), w.to_string()]);
    }
    if !req.endpoint.is_empty() {
        a.extend(["ENDPOINT".into(), req.endpoint.to_string()]);
    }
    if !req.authenticated {
        a.extend(["AUTH".into(), "0".into()]);
    }
    if req.tokens > 0 {
        a.extend(["TOKENS".into(), req.tokens.to_string()]);
    }
    if req.money > 0 {
        a.extend(["COST".into(), req.money.to_string()]);
    }
    a.extend(["AT".into(), at.to_string()]);
    a
}

/// Both sides of one policy: the module (policy `name` in Redis) and the
/// in-process limiter of one of its plans.
struct Pair<'a> {
    conn: &'a mut redis::Connection,
    name: String,
    policy: Arc<Policy>,
    plan: usize,
    local: KeyedLimiter<ManualClock>,
}

impl<'a> Pair<'a> {
    fn new(conn: &'a mut redis::Connection, name: String, text: &str, policy: Arc<Policy>, plan: usize) -> Pair<'a> {
        common::load_policy(conn, &name, text);
        let local = KeyedLimiter::with_clock(policy.clone(), &policy.plans[plan].name, ManualClock::new(START))
            .expect("the plan exists");
        Pair { conn, name, policy, plan, local }
    }

    /// Decides `req` at `now` on both sides and compares; the in-process
    /// decision and the module's ticket.
    fn check(&mut self, req: &Request<'_>, now: Nanos) -> Result<(PlanDecision, Option<String>), TestCaseError> {
        let d = self.local.check_at(req, now);
        let plan_name = &self.policy.plans[self.plan].name;
        let mut args = vec![req.key.to_string(), self.name.clone(), plan_name.clone()];
        args.extend(options(req, now));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let got = common::check(self.conn, &args);
        let want = expected(&self.policy, self.plan, &d, now);
        prop_assert_eq!(&got, &want, "RATESIM.CHECK {:?} (in-process decision {:?})", args, d);
        Ok((d, got.ticket))
    }

    /// Completes on both sides at `t` and compares the overshoots.
    fn complete(&mut self, req: &Request<'_>, tickets: &Tickets, ticket: &str, t: Nanos) -> TestResult {
        let local = self.local.complete_at(req, tickets, t).overshoot;
        let plan_name = &self.policy.plans[self.plan].name;
        let mut args = vec![req.key.to_string(), self.name.clone(), plan_name.clone(), ticket.to_string()];
        args.extend(options(req, t));
        let got: i64 = redis::cmd("RATESIM.COMPLETE")
            .arg(&args)
            .query(self.conn)
            .map_err(|e| TestCaseError::fail(format!("RATESIM.COMPLETE {args:?}: {e}")))?;
        prop_assert_eq!(got as u64, local, "RATESIM.COMPLETE {:?}: overshoot", args);
        Ok(())
    }
}

/// Drives a composition scenario through both sides.
fn drive(sc: &Scenario) -> TestResult {
    let text = sc.toml();
    let policy = Arc::new(policy::parse(&text, "conformance.toml").expect("generated policies are valid"));
    let mut guard = server().lock().unwrap_or_else(|e| e.into_inner());
    let mut pair = Pair::new(&mut guard.2, fresh_name("case"), &text, policy, 0);
    // Completions due: (instant, arrival) -> (tickets, ticket text).
    let mut pending: BTreeMap<(Nanos, usize), (Tickets, String)> = BTreeMap::new();
    let mut now = sc.start;
    let mut last_retry = None;
    for (n, a) in sc.arrivals.iter().enumerate() {
        now = a.gap.advance(now, &mut last_retry);
        while let Some(entry) = pending.first_entry() {
            let (t, k) = *entry.key();
            if t > now {
                break;
            }
            let (tickets, ticket) = entry.remove();
            pair.complete(&sc.arrivals[k].request(), &tickets, &ticket, t)?;
        }
        let (d, ticket) = pair.check(&a.request(), now).map_err(|e| match e {
            TestCaseError::Fail(m) => TestCaseError::fail(format!("arrival #{n} {a:?}: {m}\n{text}")),
            other => other,
        })?;
        if let Some(t) = d.retry.at() {
            last_retry = Some(t);
        }
        if let (Some(ticket), Some(after)) = (ticket, a.done_after) {
            pending.insert((now + after, n), (d.tickets, ticket));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(300))]

    /// Random plans of every algorithm, composed: the module decides as the
    /// in-process limiter does, request for request.
    #[test]
    fn random_plans_decide_as_in_process(sc in scenario()) {
        drive(&sc)?;
    }
}

// ---------------------------------------------------------------------------
// The shipped policies
// ---------------------------------------------------------------------------

/// The shipped policies: (file name, text, parsed).
fn shipped() -> &'static Vec<(String, String, Arc<Policy>)> {
    static POLICIES: OnceLock<Vec<(String, String, Arc<Policy>)>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("policies/")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("read policy");
                let policy = policy::parse(&text, &p.display().to_string()).expect("shipped policies are valid");
                (p.file_stem().unwrap().to_string_lossy().into_owned(), text, Arc::new(policy))
            })
            .collect()
    })
}

/// The endpoints a policy's limits name (prefix patterns completed), and two
/// it does not.
fn endpoints(policy: &Policy) -> Vec<String> {
    let mut out = vec![String::new(), "other.endpoint".to_string()];
    for plan in &policy.plans {
        for limit in &plan.limits {
            for p in limit.selector.endpoints.iter().chain(&limit.selector.except) {
                let e = p.strip_suffix('*').map_or(p.clone(), |prefix| format!("{prefix}x"));
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
    }
    out
}

#[derive(Clone, Debug)]
struct Call {
    /// Nanoseconds after the previous call (0: a tie).
    gap: Nanos,
    key: usize,
    user: Option<usize>,
    workspace: Option<usize>,
    endpoint: usize,
    auth: bool,
    tokens: u64,
    money: u64,
    /// Completes after this long, if admitted with a ticket.
    done_after: Option<Nanos>,
}

fn call() -> impl Strategy<Value = Call> {
    let gap = prop_oneof![3 => Just(0u64), 4 => 0..2 * SECOND, 2 => 0..90 * SECOND, 1 => 0..3_000 * SECOND];
    let tokens = prop_oneof![2 => Just(0u64), 3 => 1..5_000u64, 1 => 1..2_000_000u64];
    let money = prop_oneof![2 => Just(0u64), 3 => 1..500u64, 1 => 1..100_000u64];
    let done = prop_oneof![1 => Just(None), 3 => (0..30 * SECOND).prop_map(Some)];
    (
        gap,
        0..4usize,
        prop::option::of(0..3usize),
        prop::option::of(0..2usize),
        0..64usize,
        prop::bool::weighted(0.85),
        tokens,
        money,
        done,
    )
        .prop_map(|(gap, key, user, workspace, endpoint, auth, tokens, money, done_after)| Call {
            gap,
            key,
            user,
            workspace,
            endpoint,
            auth,
            tokens,
            money,
            done_after,
        })
}

const KEYS: [&str; 4] = ["key-a", "key-b", "key-c", "1.2.3.4"];
const USERS: [&str; 3] = ["alice", "bob", "carol"];
const WORKSPACES: [&str; 2] = ["acme", "globex"];

fn drive_shipped(policy_index: usize, plan: usize, start: Nanos, calls: &[Call]) -> TestResult {
    let (file, text, policy) = &shipped()[policy_index];
    let plan = plan % policy.plans.len();
    let names = endpoints(policy);
    let mut guard = server().lock().unwrap_or_else(|e| e.into_inner());
    let mut pair = Pair::new(&mut guard.2, fresh_name(file), text, policy.clone(), plan);
    let requests: Vec<Request<'_>> = calls
        .iter()
        .map(|c| Request {
            key: KEYS[c.key],
            user: c.user.map(|u| USERS[u]),
            workspace: c.workspace.map(|w| WORKSPACES[w]),
            endpoint: &names[c.endpoint % names.len()],
            authenticated: c.auth,
            tokens: c.tokens,
            money: c.money,
        })
        .collect();
    let mut pending: BTreeMap<(Nanos, usize), (Tickets, String)> = BTreeMap::new();
    let mut now = start;
    for (n, c) in calls.iter().enumerate() {
        now += c.gap;
        while let Some(entry) = pending.first_entry() {
            let (t, k) = *entry.key();
            if t > now {
                break;
            }
            let (tickets, ticket) = entry.remove();
            pair.complete(&requests[k], &tickets, &ticket, t)?;
        }
        let (d, ticket) = pair.check(&requests[n], now).map_err(|e| match e {
            TestCaseError::Fail(m) => TestCaseError::fail(format!("{file} plan #{plan}, call #{n} {c:?}: {m}")),
            other => other,
        })?;
        if let (Some(ticket), Some(after)) = (ticket, c.done_after) {
            pending.insert((now + after, n), (d.tickets, ticket));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(150))]

    /// Every plan of every shipped policy, with budgets, provider headers and
    /// bodies: the module renders exactly what the in-process limiter does.
    #[test]
    fn shipped_policies_decide_and_render_as_in_process(
        policy_index in 0..5usize,
        plan in 0..8usize,
        start in prop_oneof![Just(START), Just(START - 90 * SECOND), (START..START + 40 * 86_400 * SECOND)],
        calls in prop::collection::vec(call(), 1..60),
    ) {
        prop_assume!(policy_index < shipped().len());
        drive_shipped(policy_index, plan, start, &calls)?;
    }
}

#[test]
fn every_shipped_plan_is_exercised() {
    // The property above picks (policy, plan) pairs at random; this makes
    // sure each plan is driven at least once, deterministically.
    for (i, (_, _, policy)) in shipped().iter().enumerate() {
        for plan in 0..policy.plans.len() {
            let calls: Vec<Call> = (0..80)
                .map(|n| Call {
                    gap: [0, SECOND / 10, 7 * SECOND][n % 3],
                    key: n % 2,
                    user: Some(n % 3),
                    workspace: (n % 4 != 0).then_some(n % 2),
                    endpoint: n % 7,
                    auth: n % 9 != 0,
                    tokens: (n as u64 * 997) % 4_000,
                    money: (n as u64 * 31) % 300,
                    done_after: (n % 2 == 0).then_some(SECOND),
                })
                .collect();
            drive_shipped(i, plan, START, &calls).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
