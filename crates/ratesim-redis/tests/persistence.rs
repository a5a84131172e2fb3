//! States and policies survive what Redis does to data: a replica holds the
//! primary's states after a run (full sync, then the replicated stream), a
//! restart reloads them from an RDB snapshot or from the AOF (with and
//! without its RDB preamble, before and after a rewrite), and idle states
//! expire like the in-process limiter's.
//!
//! "The same state" is checked with `RATESIM.STATE` at one instant on both
//! sides (every limit's state that is not at rest, after forgetting what
//! expired), and by deciding the same requests on both.

mod common;

use std::time::{Duration, Instant};

use common::{check, load_policy, Server, TempDir};
use redis::Value;

/// Every algorithm, composed, over key, user and workspace scopes.
const POLICY: &str = r#"
provider = "Everything"
[[plan]]
name = "all"
[[plan.limit]]
id = "burst"
algorithm = "gcra"
rate = "30/min"
burst = 5
[[plan.limit]]
id = "minute"
algorithm = "fixed-window"
rate = "8/min"
scope = "user"
[[plan.limit]]
id = "rolling"
algorithm = "sliding-log"
limit = 60
period = "10min"
scope = "workspace"
[[plan.limit]]
id = "estimate"
algorithm = "sliding-counter"
rate = "10/min"
[[plan.limit]]
id = "inflight"
algorithm = "concurrency"
max = 3
lease = "2min"
[[plan.limit]]
id = "tokens"
algorithm = "budget"
unit = "tokens"
limit = 60000
period = "1h"
reserve = 100
"#;

const T0: u64 = 1_767_225_600_000_000_000;
const KEYS: [&str; 4] = ["k1", "k2", "k3", "k4"];
const USERS: [&str; 2] = ["alice", "bob"];

/// Identities whose states the tests compare.
fn identities() -> Vec<String> {
    let live = ["1", "2"].iter().flat_map(|s| [format!("live{s}"), format!("live-user{s}"), format!("live-team{s}")]);
    KEYS.iter().chain(&USERS).chain(&["acme"]).map(|s| s.to_string()).chain(live).collect()
}

/// A run of requests at explicit instants and, with `live`, every fifth on
/// the server's clock from the identities `live`, `live-user`, `live-team`
/// with that suffix; completions of most admissions. Returns the last
/// instant used.
fn traffic(c: &mut redis::Connection, from: u64, n: usize, live: Option<&str>) -> u64 {
    let live_ids = live.map(|s| (format!("live{s}"), format!("live-user{s}"), format!("live-team{s}")));
    let mut t = from;
    let mut admitted = 0;
    for i in 0..n {
        t += [0, 137_000_000, 2_900_000_000, 11_000_000_000][i % 4];
        // Live requests (on the server's clock, replicated with the instant
        // used) go to identities of their own: mixing them with the
        // explicit instants would send those states' time back and forth.
        let on_clock = live.is_some() && i % 5 == 0;
        let (key, user, workspace) = match (&live_ids, on_clock) {
            (Some((k, u, w)), true) => (k.as_str(), u.as_str(), w.as_str()),
            _ => (KEYS[i % 4], USERS[i % 2], "acme"),
        };
        let tokens = (300 + 97 * i % 900).to_string();
        let at = t.to_string();
        let mut args = vec![key, "every", "all", "USER", user, "WORKSPACE", workspace, "TOKENS", &tokens];
        if !on_clock {
            args.extend(["AT", &at]);
        }
        let d = check(c, &args);
        if let (true, Some(ticket)) = (d.allowed, &d.ticket) {
            admitted += 1;
            if i % 3 != 0 {
                let mut done =
                    vec![key, "every", "all", ticket.as_str(), "USER", user, "WORKSPACE", workspace, "TOKENS", &tokens];
                let end = (t + 400_000_000).to_string();
                if !on_clock {
                    done.extend(["AT", &end]);
                }
                let _: i64 = redis::cmd("RATESIM.COMPLETE").arg(&done).query(c).unwrap();
            }
        }
    }
    assert!(admitted > 2, "the run admits some requests ({admitted})");
    t
}

/// Every identity's states at `at`.
fn states(c: &mut redis::Connection, at: u64) -> Vec<(String, Value)> {
    identities()
        .into_iter()
        .map(|id| {
            let v: Value =
                redis::cmd("RATESIM.STATE").arg(&id).arg("every").arg("all").arg("AT").arg(at).query(c).unwrap();
            (id, v)
        })
        .collect()
}

fn assert_states_nonempty(s: &[(String, Value)]) {
    let nonempty = s.iter().filter(|(_, v)| matches!(v, Value::Array(a) if !a.is_empty())).count();
    assert!(nonempty >= 5, "most identities hold states: {s:?}");
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn info(c: &mut redis::Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(c).unwrap()
}

#[test]
fn a_replica_holds_the_primary_states() {
    let dir = TempDir::new("replica");
    let primary = Server::start(&dir.0, &["--dbfilename", "primary.rdb"]);
    let mut p = primary.conn();
    load_policy(&mut p, "every", POLICY);
    // Some states before the replica exists (they reach it by full sync,
    // with the policy as RDB auxiliary data), the rest after (replicated).
    let t = traffic(&mut p, T0, 40, Some("1"));
    let replica_dir = TempDir::new("replica-r");
    let replica = Server::start(&replica_dir.0, &["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    let mut r = replica.conn();
    wait_until("the replica's sync", || info(&mut r, "replication").contains("master_link_status:up"));
    let end = traffic(&mut p, t, 120, Some("2"));
    let synced: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut p).unwrap();
    assert_eq!(synced, 1, "the replica acknowledged the stream");
    let policies: Vec<String> = redis::cmd("RATESIM.POLICY.LIST").query(&mut r).unwrap();
    assert_eq!(policies, vec!["every: Everything, 1 plan (all), 6 limits".to_string()]);
    let at = end + 1;
    let on_primary = states(&mut p, at);
    assert_states_nonempty(&on_primary);
    assert_eq!(states(&mut r, at), on_primary, "the replica's states at {at}");
    // Replicas refuse writes: a check there is an error, not a decision.
    let refused = common::error_of(&mut r, "RATESIM.CHECK", &["k1", "every", "all"]);
    assert!(refused.to_lowercase().contains("read only replica"), "{refused}");
}

/// Restarts `server` in place with `extra` arguments after `stop`, and
/// checks that states and policies came back.
fn restart_and_compare(server: Server, dir: &std::path::Path, extra: &[&str], at: u64, stop: fn(Server)) {
    let port = server.port;
    let before = states(&mut server.conn(), at);
    assert_states_nonempty(&before);
    stop(server);
    let again = Server::start_on(port, dir, extra);
    let mut c = again.conn();
    // It listens while it still loads the snapshot or the AOF.
    wait_until("the data to load", || info(&mut c, "persistence").lines().any(|l| l == "loading:0"));
    let policies: Vec<String> = redis::cmd("RATESIM.POLICY.LIST").query(&mut c).unwrap();
    assert_eq!(policies.len(), 1, "the policy came back");
    assert_eq!(states(&mut c, at), before, "states after the restart");
}

#[test]
fn an_rdb_snapshot_brings_states_and_policies_back() {
    let dir = TempDir::new("rdb");
    let server = Server::start(&dir.0, &[]);
    let mut c = server.conn();
    load_policy(&mut c, "every", POLICY);
    let end = traffic(&mut c, T0, 150, Some("1"));
    let _: Value = redis::cmd("SAVE").query(&mut c).unwrap();
    restart_and_compare(server, &dir.0, &[], end + 1, Server::kill);
}

#[test]
fn the_aof_brings_states_back_after_a_crash_with_and_without_rewrites() {
    for preamble in ["yes", "no"] {
        let dir = TempDir::new("aof");
        let opts = ["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", preamble];
        let server = Server::start(&dir.0, &opts);
        let mut c = server.conn();
        load_policy(&mut c, "every", POLICY);
        let t = traffic(&mut c, T0, 80, Some("1"));
        // Rewrite half-way: the base file holds the states (RDB preamble, or
        // RATESIM.POLICY.LOAD and RATESIM.STATE.RESTORE commands), the
        // increment the rest of the run.
        let _: Value = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
        wait_until("the AOF rewrite", || info(&mut c, "persistence").contains("aof_rewrite_in_progress:0"));
        wait_until("the AOF rewrite's end", || !info(&mut c, "persistence").contains("aof_rewrite_scheduled:1"));
        let end = traffic(&mut c, t, 80, Some("2"));
        restart_and_compare(server, &dir.0, &opts, end + 1, Server::kill);
    }
}

#[test]
fn idle_states_expire_and_busy_ones_do_not() {
    let dir = TempDir::new("expiry");
    let server = Server::start(&dir.0, &[]);
    let mut c = server.conn();
    let policy = r#"
provider = "Expiry"
[[plan]]
name = "p"
[[plan.limit]]
id = "rpm"
algorithm = "gcra"
rate = "60/min"
burst = 10
[[plan.limit]]
id = "inflight"
algorithm = "concurrency"
max = 3
scope = "user"
[[plan.limit]]
id = "day"
algorithm = "fixed-window"
rate = "5/day"
scope = "global"
"#;
    load_policy(&mut c, "exp", policy);
    let pttl = |c: &mut redis::Connection, key: &str| -> i64 { redis::cmd("PTTL").arg(key).query(c).unwrap() };
    // Three requests from a full bucket: it drains 3 s later; the key's
    // TTL is those 3 s plus the 60 s grace of the in-process limiter.
    let at = "1767225600000000000";
    let mut tickets = Vec::new();
    for _ in 0..3 {
        let d = check(&mut c, &["k", "exp", "p", "USER", "u", "AT", at]);
        assert!(d.allowed, "{d:?}");
        tickets.push(d.ticket.expect("a permit to release"));
    }
    let ttl = pttl(&mut c, "ratesim:exp:p:k");
    assert!((62_000..=63_000).contains(&ttl), "bucket drained in 3 s + 60 s grace: PTTL {ttl}");
    // Permits without a lease keep the user's key: it never rests by itself.
    assert_eq!(pttl(&mut c, "ratesim:exp:p:u"), -1, "permits in flight: no TTL");
    for t in &tickets {
        let _: i64 =
            redis::cmd("RATESIM.COMPLETE").arg(&["k", "exp", "p", t, "USER", "u", "AT", at]).query(&mut c).unwrap();
    }
    let ttl = pttl(&mut c, "ratesim:exp:p:u");
    assert!((59_000..=60_000).contains(&ttl), "all released: idle now, 60 s grace: PTTL {ttl}");
    // The global day window: the key of its state lives until the day ends.
    let ttl = pttl(&mut c, "ratesim:exp:p:");
    assert!((86_459_000..=86_460_000).contains(&ttl), "a day and the grace: PTTL {ttl}");
    // A denial creates nothing: the day's 5 are used up, a newcomer is
    // denied and leaves no key behind.
    for n in 0..2 {
        assert!(check(&mut c, &["k2", "exp", "p", "AT", at]).allowed, "request {n}");
    }
    let denied = check(&mut c, &["newcomer", "exp", "p", "AT", at]);
    assert_eq!(denied.limit.as_deref(), Some("day"));
    let exists: i64 = redis::cmd("EXISTS").arg("ratesim:exp:p:newcomer").query(&mut c).unwrap();
    assert_eq!(exists, 0, "a denial wrote a key");
    // Expiry is lossless: once expired, the key answers as a fresh state
    // would (a full bucket).
    let _: () = redis::cmd("PEXPIRE").arg("ratesim:exp:p:k").arg(1).query(&mut c).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let state: Value =
        redis::cmd("RATESIM.STATE").arg("k").arg("exp").arg("p").arg("AT").arg(at).query(&mut c).unwrap();
    assert_eq!(state, Value::Array(vec![]), "expired");
    let next_day = (T0 + 86_400_000_000_000).to_string();
    let d = check(&mut c, &["k", "exp", "p", "AT", &next_day]);
    assert_eq!((d.allowed, d.remaining), (true, Some(4)), "a new day: {d:?}");
}

#[test]
fn denials_that_count_are_written_and_replicated() {
    // A counter that counts denied requests too (`INCR` then compare): a
    // denial changes it, so it must reach the replica like an admission.
    let policy = r#"
provider = "Counting"
[[plan]]
name = "p"
[[plan.limit]]
id = "minute"
algorithm = "fixed-window"
rate = "3/min"
count_denied = true
"#;
    let dir = TempDir::new("counting");
    let primary = Server::start(&dir.0, &[]);
    let mut p = primary.conn();
    load_policy(&mut p, "count", policy);
    let replica_dir = TempDir::new("counting-r");
    let replica = Server::start(&replica_dir.0, &["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    let mut r = replica.conn();
    wait_until("the replica's sync", || info(&mut r, "replication").contains("master_link_status:up"));
    let at = T0.to_string();
    let admitted = (0..10).filter(|_| check(&mut p, &["fresh", "count", "p", "AT", &at]).allowed).count();
    assert_eq!(admitted, 3);
    // On the server's clock too (replicated with the instant used).
    let live = (0..10).filter(|_| check(&mut p, &["live", "count", "p"]).allowed).count();
    assert!((3..=6).contains(&live), "3 per clock minute: {live}");
    let synced: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut p).unwrap();
    assert_eq!(synced, 1);
    // The live states compared at the primary's clock now.
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut p).unwrap();
    let now = (secs * 1_000_000 + micros) * 1_000;
    for (id, at) in [("fresh", T0), ("live", now)] {
        let state = |c: &mut redis::Connection| -> Value {
            redis::cmd("RATESIM.STATE").arg(id).arg("count").arg("p").arg("AT").arg(at).query(c).unwrap()
        };
        let on_primary = state(&mut p);
        if id == "fresh" {
            assert!(format!("{on_primary:?}").contains("used: 10"), "ten counted: {on_primary:?}");
        }
        assert_eq!(state(&mut r), on_primary, "{id} on the replica");
    }
}
