//! Client behaviours in the simulator: retry budgets, adaptive throttling,
//! client-side limiters, asynchronous jobs with polling, batching.

use ratesim::client::ClientSpec;
use ratesim::metrics::{NoBuckets, Summary};
use ratesim::policy::{self, Policy};
use ratesim::sim::{DecisionRecord, DecisionSink, NoDecisions, SimConfig, Simulation};
use ratesim::time::{MILLISECOND, SECOND};
use ratesim::trace::{MemoryTrace, TraceRow, TraceTime};

fn policy(text: &str) -> Policy {
    policy::parse(text, "test.toml").unwrap()
}

fn window(rate: &str) -> Policy {
    policy(&format!(
        "provider = \"t\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"w\"\nalgorithm = \"fixed-window\"\nrate = \"{rate}\"\n"
    ))
}

fn row(t: u64, key: &str) -> TraceRow {
    TraceRow { t: TraceTime::Offset(t), key: key.into(), ..TraceRow::default() }
}

fn run_with(p: &Policy, rows: Vec<TraceRow>, client: &str, sink: &mut dyn DecisionSink) -> Summary {
    let config = SimConfig { seed: 9, client: ClientSpec::parse(client).unwrap(), ..SimConfig::default() };
    Simulation::new(p, &p.plans[0], config).run(&mut MemoryTrace::new(rows), &mut NoBuckets, sink).unwrap()
}

fn run(p: &Policy, rows: Vec<TraceRow>, client: &str) -> Summary {
    run_with(p, rows, client, &mut NoDecisions)
}

/// Attempt instants (ns since the trace start), in decision order.
struct Times(Vec<u64>);

impl DecisionSink for Times {
    fn decision(&mut self, d: &DecisionRecord<'_>) -> std::io::Result<()> {
        self.0.push(d.t_ns);
        Ok(())
    }
}

/// One key sending 5 requests per second for 10 minutes.
fn steady(per_second: u64, minutes: u64) -> Vec<TraceRow> {
    (0..per_second * 60 * minutes).map(|i| row(i * SECOND / per_second, "k")).collect()
}

#[test]
fn a_retry_budget_caps_retries_at_its_ratio() {
    // 1 req/s allowed, 5 req/s sent: every client wants to retry a lot.
    let p = window("1/s");
    let free = run(&p, steady(5, 10), "fixed-1s");
    let budgeted = run(&p, steady(5, 10), "fixed-1s,retry_budget=0.1");
    assert!(free.retries as f64 > 0.5 * free.requests as f64, "{}", free.retries);
    // Retries stay within 10% of requests (over the two-minute window; the
    // whole run can exceed it only by the window edge).
    assert!(budgeted.retries as f64 <= 0.1 * budgeted.requests as f64 + 60.0, "{}", budgeted.retries);
    assert!(budgeted.retries > 0);
    assert!(budgeted.retry_amplification < free.retry_amplification);
}

#[test]
fn adaptive_throttling_rejects_locally_in_proportion() {
    // Accepts at 1/s, offered 10/s: with K = 2 the client rejects locally
    // about (requests - 2·accepts)/(requests + 1) ≈ 80% of its attempts.
    let p = window("1/s");
    let s = run(&p, steady(10, 10), "none,adaptive=2");
    let local = s.throttled as f64 / (s.throttled + s.attempts) as f64;
    assert!((0.7..0.9).contains(&local), "locally rejected share {local:.3}");
    // The server sees far fewer attempts than without throttling.
    let open = run(&p, steady(10, 10), "none");
    assert!(s.attempts * 3 < open.attempts, "{} vs {}", s.attempts, open.attempts);
    // The price: some capacity goes unused (a second in which every attempt
    // was held back locally admits nothing).
    assert!(s.admitted as f64 >= 0.8 * 600.0, "admitted {}", s.admitted);
    assert!(s.admitted <= open.admitted);
}

#[test]
fn sliding_window_self_limiter_never_overruns_its_window() {
    // The RunAgent page's RateLimitedClient: at most 100 sends per rolling
    // hour, sleeping until the oldest leaves the window. Against a 100/h
    // rolling limit, it is never denied.
    let p = policy(
        "provider = \"t\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"rph\"\nalgorithm = \"sliding-log\"\nrate = \"100/h\"\n",
    );
    let rows: Vec<TraceRow> = (0..300).map(|i| row(i * 20 * SECOND, "k")).collect();
    let mut times = Times(Vec::new());
    let s = run_with(&p, rows, "none,pace=window:100:1h", &mut times);
    assert_eq!(s.denied_by_status.get(&429), None);
    assert_eq!(s.admitted, 300);
    // Sends 0-99 go out as they arrive; send 100 waits for send 0 to leave
    // the window, exactly one hour after it.
    assert_eq!(times.0[100], 3600 * SECOND);
    for w in times.0.windows(101) {
        assert!(w[100] - w[0] >= 3600 * SECOND);
    }
}

#[test]
fn token_bucket_pacing_spreads_a_burst() {
    let p = window("2/s");
    let rows: Vec<TraceRow> = (0..20).map(|_| row(0, "k")).collect();
    let mut times = Times(Vec::new());
    let s = run_with(&p, rows, "none,pace=bucket:2:1s:1", &mut times);
    assert_eq!(s.admitted, 20);
    let expected: Vec<u64> = (0..20).map(|i| i * 500 * MILLISECOND).collect();
    assert_eq!(times.0, expected);
}

#[test]
fn client_semaphore_caps_requests_in_flight() {
    let p = policy(
        "provider = \"t\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"c\"\nalgorithm = \"concurrency\"\nmax = 2\n",
    );
    let rows: Vec<TraceRow> = (0..10).map(|_| TraceRow { duration: SECOND, ..row(0, "k") }).collect();
    // Without the semaphore, 8 of 10 are denied; with it, none: the client
    // queues and sends two at a time.
    let open = run(&p, rows.clone(), "none");
    assert_eq!(open.admitted, 2);
    let mut times = Times(Vec::new());
    let paced = run_with(&p, rows, "none,pace=semaphore:2", &mut times);
    assert_eq!(paced.admitted, 10);
    assert_eq!(paced.peak_in_flight, 2);
    assert_eq!(
        times.0,
        vec![0, 0, SECOND, SECOND, 2 * SECOND, 2 * SECOND, 3 * SECOND, 3 * SECOND, 4 * SECOND, 4 * SECOND]
    );
}

#[test]
fn polling_jobs_spend_limits_that_webhooks_do_not() {
    let p = policy(
        r#"
        provider = "t"
        [[plan]]
        name = "p"
        [[plan.limit]]
        id = "rpm"
        algorithm = "sliding-log"
        rate = "120/min"
        "#,
    );
    // 20 jobs of 30 s each, created 3 s apart on two keys; polled every
    // second, or notified by a webhook.
    let job = |i: u64, poll: u64| TraceRow {
        endpoint: "predictions.create".into(),
        duration: 30 * SECOND,
        poll_every: poll,
        poll_endpoint: "predictions.get".into(),
        ..row(i * 3 * SECOND, &format!("k{}", i % 2))
    };
    let webhook = run(&p, (0..20).map(|i| job(i, 0)).collect(), "none");
    assert_eq!((webhook.attempts, webhook.polls, webhook.successes), (20, 0, 20));
    assert_eq!(webhook.time_to_success.max_ns, Some(0));

    let polling = run(&p, (0..20).map(|i| job(i, SECOND)).collect(), "none");
    // Five jobs per key poll at 1/s each against 2/s per key: the polls
    // crowd out job creations, which are denied (this client never retries).
    assert!(polling.attempts > 10 * webhook.attempts, "{}", polling.attempts);
    assert!(polling.denied_by_status.get(&429).copied().unwrap_or(0) > 0);
    assert!(polling.successes < webhook.successes, "{}", polling.successes);
    // A polled job is done at its first admitted poll at or after 30 s.
    assert!(polling.time_to_success.p50_ns.unwrap() >= 30 * SECOND);
    assert_eq!(polling.successes + polling.give_ups, 20);
}

#[test]
fn batching_carries_items_in_fewer_requests() {
    let p = window("10/min");
    // 100 items: one at a time, or 10 requests of 10.
    let single: Vec<TraceRow> = (0..100).map(|i| row(i * 100 * MILLISECOND, "k")).collect();
    let batched: Vec<TraceRow> = (0..10).map(|i| TraceRow { items: 10, ..row(i * SECOND, "k") }).collect();
    let a = run(&p, single, "none");
    let b = run(&p, batched, "none");
    assert_eq!((a.items, a.items_delivered), (100, 10));
    assert_eq!((b.items, b.items_delivered), (100, 100));
}
