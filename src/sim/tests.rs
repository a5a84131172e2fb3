//! The event loop's own costs, counted rather than timed: a run must cost a
//! bounded number of steps and pacer decisions per request.

use super::*;
use crate::metrics::NoBuckets;
use crate::policy;
use crate::trace::MemoryTrace;

fn unlimited() -> Policy {
    // Far above anything sent: only the client's own limiter holds requests.
    policy::parse(
        "provider = \"t\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"rps\"\nalgorithm = \"gcra\"\nrate = \"1000000/s\"\nburst = 1000000\n",
        "t.toml",
    )
    .unwrap()
}

fn rows(n: u64, every: Nanos) -> MemoryTrace {
    MemoryTrace::new(
        (0..n).map(|i| TraceRow { t: TraceTime::Offset(i * every), key: "k".into(), ..TraceRow::default() }).collect(),
    )
}

/// Runs `n` requests arriving `every` apart through `client`; returns the
/// loop's steps and pacer decisions, and the send instants.
fn counted(client: &str, n: u64, every: Nanos) -> (u64, u64, Vec<Nanos>) {
    let p = unlimited();
    let config = SimConfig { client: ClientSpec::parse(client).unwrap(), ..SimConfig::default() };
    let mut sim = Simulation::new(&p, &p.plans[0], config);
    let mut sent = Sent(Vec::new());
    sim.drive(&mut rows(n, every), &mut NoBuckets, &mut sent).unwrap();
    assert_eq!(sim.summary.admitted, n);
    (sim.steps, sim.pace_checks, sent.0)
}

struct Sent(Vec<Nanos>);

impl DecisionSink for Sent {
    fn decision(&mut self, d: &DecisionRecord<'_>) -> std::io::Result<()> {
        self.0.push(d.t_ns);
        Ok(())
    }
}

/// Issue 9, point 1: every request queued behind a client's own limiter
/// woke and asked the limiter again at each admission, so a queue of n cost
/// n²/2 decisions (50 s of CPU for the README's paced hour). Each request
/// now costs at most two loop steps and three pacer decisions, however
/// long the queue, and requests still leave at the limiter's exact instants.
#[test]
fn a_paced_queue_costs_a_constant_per_request() {
    let n = 3_000;
    for (client, spacing) in [("none,pace=bucket:10:1s:5", SECOND / 10), ("none,pace=window:10:1s", SECOND / 10)] {
        // All at once: the whole trace queues behind the limiter.
        let (steps, checks, sent) = counted(client, n, 0);
        assert!(
            steps <= 2 * n && checks <= 3 * n,
            "{client}: {steps} steps, {checks} pacer decisions for {n} requests"
        );
        assert_eq!(sent.len() as u64, n);
        // 5 (bucket burst) or 10 (window) at once, then 10 per second.
        let burst = if client.contains("bucket") { 5 } else { 10 };
        for (i, &t) in sent.iter().enumerate() {
            let i = i as u64;
            let expected = if i < burst {
                0
            } else if burst == 5 {
                (i - burst + 1) * spacing
            } else {
                i / 10 * SECOND
            };
            assert_eq!(t, expected, "{client}: send {i}");
        }
    }
}
