//! A real Redis Cluster of three local primaries (Debian's redis-server,
//! joined by `redis-cli --cluster create`): a request whose identities
//! share a hash tag is routed by Redis to the shard owning that slot and
//! decided there, atomically, with its states in that slot; identities
//! without a tag, tags that differ, and global limits are refused with an
//! error that says why.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::peer::{free_port, require};
use common::{Server, TempDir};
use redis::Value;

const POLICY: &str = r#"
provider = "Cluster"
[[plan]]
name = "pro"
[[plan.limit]]
id = "burst"
algorithm = "gcra"
rate = "1/h"
burst = 5
[[plan.limit]]
id = "team"
algorithm = "fixed-window"
rate = "7/h"
scope = "workspace"
[[plan]]
name = "global"
[[plan.limit]]
id = "everyone"
algorithm = "gcra"
rate = "1/s"
burst = 100
scope = "global"
"#;

/// A port whose cluster bus port (port + 10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let p = free_port();
        if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

fn cmd(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    redis::cmd(args[0]).arg(&args[1..]).query(c)
}

#[test]
fn a_three_node_cluster_decides_each_owner_in_its_slot() {
    let dirs: Vec<TempDir> = (0..3).map(|i| TempDir::new(&format!("cluster{i}"))).collect();
    let nodes: Vec<Server> = dirs
        .iter()
        .map(|d| {
            let port = cluster_port();
            let conf = format!("nodes-{port}.conf");
            Server::start_on(
                port,
                &d.0,
                &["--cluster-enabled", "yes", "--cluster-config-file", &conf, "--cluster-node-timeout", "5000"],
            )
        })
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    let out = Command::new(require("redis-cli"))
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("run redis-cli --cluster create");
    assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
    let mut conns: Vec<redis::Connection> = nodes.iter().map(|n| n.conn()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for c in conns.iter_mut() {
        loop {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(c).unwrap();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not converge: {info}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Every primary needs the policy (it is configuration, not a key).
    for c in conns.iter_mut() {
        common::load_policy(c, "cl", POLICY);
    }

    let at = "1767225600000000000";
    let request = ["RATESIM.CHECK", "{acme}key-1", "cl", "pro", "USER", "{acme}alice", "WORKSPACE", "{acme}", "AT", at];
    // Redis routes by the declared identities: one node decides, the
    // others redirect to it.
    let mut owner = None;
    for (i, c) in conns.iter_mut().enumerate() {
        match cmd(c, &request) {
            Ok(v) => {
                assert!(owner.is_none(), "two nodes decided");
                assert!(ratesim::limiter::RedisDecision::from_reply(&v).unwrap().allowed);
                owner = Some(i);
            }
            Err(e) => assert_eq!(e.kind(), redis::ErrorKind::Moved, "node {i}: {e}"),
        }
    }
    let owner = owner.expect("one node owns the slot of acme");
    let c = &mut conns[owner];
    // On the owner: the burst, exactly, then the binding limit's denial.
    let mut admitted = 1;
    let mut last = None;
    for _ in 0..10 {
        let d = ratesim::limiter::RedisDecision::from_reply(&cmd(c, &request).unwrap()).unwrap();
        admitted += d.allowed as u32;
        last = Some(d);
    }
    assert_eq!(admitted, 5, "the key's burst");
    assert_eq!(last.unwrap().limit.as_deref(), Some("burst"));
    // A second key of the workspace: the team's hour has 7, 5 are used.
    let mut second = request;
    second[1] = "{acme}key-2";
    let admitted2 = (0..5)
        .filter(|_| ratesim::limiter::RedisDecision::from_reply(&cmd(c, &second).unwrap()).unwrap().allowed)
        .count();
    assert_eq!(admitted2, 2, "the workspace's 7, shared by both keys");
    // The states live in acme's slot, on this node.
    let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg("acme").query(c).unwrap();
    for key in ["ratesim:cl:pro:{acme}key-1", "ratesim:cl:pro:{acme}", "ratesim:cl:pro:{acme}key-2"] {
        let s: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(c).unwrap();
        assert_eq!(s, slot, "{key}");
        let exists: i64 = redis::cmd("EXISTS").arg(key).query(c).unwrap();
        assert_eq!(exists, 1, "{key} on the owner");
    }
    let in_slot: i64 = redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query(c).unwrap();
    assert_eq!(in_slot, 3);

    // Different tags: Redis refuses, nothing is decided across shards.
    let mixed = ["RATESIM.CHECK", "{acme}key-1", "cl", "pro", "WORKSPACE", "{globex}", "AT", at];
    let e = cmd(c, &mixed).unwrap_err();
    assert_eq!(e.kind(), redis::ErrorKind::CrossSlot, "{e}");
    // No tag: refused by the module on the node that owns the identity.
    let untagged = ["RATESIM.CHECK", "key-9", "cl", "pro", "AT", at];
    let errors: Vec<String> = conns.iter_mut().filter_map(|c| cmd(c, &untagged).err()).map(|e| e.to_string()).collect();
    assert!(errors.iter().any(|e| e.contains("every identity needs a hash tag naming its scope owner")), "{errors:?}");
    // A global limit: refused.
    let global = ["RATESIM.CHECK", "{acme}key-1", "cl", "global", "AT", at];
    let errors: Vec<String> = conns.iter_mut().filter_map(|c| cmd(c, &global).err()).map(|e| e.to_string()).collect();
    assert!(errors.iter().any(|e| e.contains("has global scope")), "{errors:?}");
    drop(nodes);
}
