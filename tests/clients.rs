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

// ---- Retry headers end to end: the policy renders, the client reads ----

/// One limit with `[response]` options, `extra` added to the limit.
fn with_response(response: &str, limit: &str) -> Policy {
    policy(&format!(
        "provider = \"t\"\n[response]\n{response}\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"l\"\n{limit}\n"
    ))
}

/// Attempt instants (ns since the trace start) of `rows` under `client`.
fn attempt_times(p: &Policy, rows: Vec<TraceRow>, client: &str) -> Vec<u64> {
    let mut times = Times(Vec::new());
    run_with(p, rows, client, &mut times);
    times.0
}

const GCRA_10: &str = "algorithm = \"gcra\"\nrate = \"10/s\"\nburst = 1";

#[test]
fn fractional_retry_after_and_retry_after_ms_reach_the_client() {
    // Two requests at once against 10/s, burst 1: the second may go 100 ms
    // later. Whole seconds round that up to 1 s; the SDK reads the rest.
    let two = || vec![row(0, "k"), row(0, "k")];
    let seconds = with_response("", GCRA_10);
    assert_eq!(attempt_times(&seconds, two(), "openai-python"), [0, 0, SECOND]);
    let fractional = with_response("retry_after_format = \"fractional\"", GCRA_10);
    assert_eq!(attempt_times(&fractional, two(), "openai-python"), [0, 0, 100 * MILLISECOND]);
    // retry-after-ms is read first by the OpenAI SDKs; a client reading
    // only Retry-After still waits the whole second.
    let ms = with_response("retry_after_ms = true", GCRA_10);
    assert_eq!(attempt_times(&ms, two(), "openai-node"), [0, 0, 100 * MILLISECOND]);
    assert_eq!(attempt_times(&ms, two(), "exp-full-jitter"), [0, 0, SECOND]);
    // urllib3 cannot read a fractional Retry-After: the request fails.
    let s = run(&fractional, two(), "urllib3-default");
    assert_eq!((s.attempts, s.give_ups), (2, 1));
}

#[test]
fn a_zero_retry_after_is_immediate_for_node_and_backoff_for_python() {
    // Seconds rounded down: the 100 ms wait is sent as `Retry-After: 0`.
    let p = with_response("retry_after_format = \"seconds-floor\"", GCRA_10);
    let two = || vec![row(0, "k"), row(0, "k")];
    // openai-node retries at once (and is denied again, twice).
    assert_eq!(attempt_times(&p, two(), "openai-node"), [0, 0, 0, 0]);
    // openai-python uses its backoff, 0.375-0.5 s, and gets through.
    let t = attempt_times(&p, two(), "openai-python");
    assert_eq!(t.len(), 3, "{t:?}");
    assert!((375 * MILLISECOND..=500 * MILLISECOND).contains(&t[2]), "{t:?}");
}

#[test]
fn an_http_date_retry_after_is_read_against_the_clock() {
    // 1/min, burst 1: a request at 0.25 s may go at 60 s. As seconds the
    // header says 60 (59.75 rounded up); as a date it says :01:00 exactly.
    let p = |format: &str| with_response(format, "algorithm = \"gcra\"\nrate = \"1/min\"\nburst = 1");
    let rows = || vec![row(0, "k"), row(250 * MILLISECOND, "k")];
    let q = 250 * MILLISECOND;
    assert_eq!(attempt_times(&p(""), rows(), "openai-python"), [0, q, q + 60 * SECOND]);
    assert_eq!(attempt_times(&p("retry_after_format = \"http-date\""), rows(), "openai-python"), [0, q, 60 * SECOND]);
    // urllib3 reads dates too.
    assert_eq!(attempt_times(&p("retry_after_format = \"http-date\""), rows(), "urllib3-default"), [0, q, 60 * SECOND]);
}

#[test]
fn x_should_retry_false_stops_a_client_that_would_back_off() {
    // A monthly budget of one request: the second is admitted only next
    // month. openai-node meets Retry-After above 60 s and backs off twice;
    // told `x-should-retry: false`, it stops at once.
    let limit = "algorithm = \"budget\"\nlimit = 1\nperiod = \"month\"\nreserve = 1";
    let rows = || vec![row(0, "k"), row(SECOND, "k")];
    let plain = run(&with_response("", limit), rows(), "openai-node");
    assert_eq!((plain.attempts, plain.give_ups), (4, 1));
    let told = run(&with_response("x_should_retry = \"1h\"", limit), rows(), "openai-node");
    assert_eq!((told.attempts, told.give_ups), (2, 1));
    // A client that does not read the header keeps backing off.
    let aws = run(&with_response("x_should_retry = \"1h\"", limit), rows(), "aws-legacy");
    assert_eq!(aws.attempts, 6);
}

#[test]
fn aws_clients_retry_on_the_limits_error_code() {
    // DynamoDB-style throttling: 400 ThrottlingException. Another code on a
    // 400 is not retried.
    let limit = |code: &str| format!("algorithm = \"fixed-window\"\nrate = \"1/min\"\nstatus = 400\ncode = \"{code}\"");
    let rows = || vec![row(0, "k"), row(0, "k")];
    let throttled = run(&with_response("", &limit("ThrottlingException")), rows(), "aws-standard");
    assert_eq!(throttled.attempts, 4);
    let other = run(&with_response("", &limit("RATE_LIMIT_EXCEEDED")), rows(), "aws-standard");
    assert_eq!(other.attempts, 2);
    let legacy = run(&with_response("", &limit("ThrottlingException")), rows(), "aws-legacy");
    assert_eq!(legacy.attempts, 6);
}

#[test]
fn the_aws_retry_quota_drains_to_nothing() {
    // 1 per hour: after the first, every request is denied with every
    // retry. Each costs two throttling retries of 5 tokens: 500 tokens pay
    // for 50 such requests, then no request is retried again.
    let p = window("1/h");
    let rows: Vec<TraceRow> = (0..200).map(|i| row(i * 10 * SECOND, "k")).collect();
    let s = run(&p, rows.clone(), "aws-standard");
    assert_eq!(s.retries, 100);
    assert_eq!(s.attempts, 300);
    // Each key has its own quota.
    let two_keys: Vec<TraceRow> = (0..400).map(|i| row(i * 5 * SECOND, if i % 2 == 0 { "a" } else { "b" })).collect();
    assert_eq!(run(&p, two_keys, "aws-standard").retries, 200);
    // Without the quota every request retries twice.
    assert_eq!(run(&p, rows, "aws-standard,retry_quota=none").retries, 398);
}

#[test]
fn the_aws_retry_quota_refills_with_successes() {
    // One request in service at a time. A 1000 s request holds the slot
    // while 50 others are denied and retried twice (10 tokens each): the
    // 500 tokens are gone, and the 51st is not retried. After it, 20
    // requests pass without retries (1 token back each), and one more long
    // request (1 more): 21 tokens pay for the retries of two denied
    // requests (20), not for a third.
    let p = with_response("", "algorithm = \"concurrency\"\nmax = 1");
    let long = |t: u64| TraceRow { duration: 1000 * SECOND, ..row(t * SECOND, "k") };
    let mut rows = vec![long(0)];
    rows.extend((1..=51).map(|i| row(i * 10 * SECOND, "k")));
    rows.extend((0..20).map(|i| row((1100 + i) * SECOND, "k")));
    rows.push(long(1200));
    rows.extend((1..=3).map(|i| row((1200 + i * 10) * SECOND, "k")));
    let s = run(&p, rows, "aws-standard");
    assert_eq!(s.retries, 100 + 4, "{s:?}");
    assert_eq!(s.give_ups, 51 + 3);
    assert_eq!(s.successes, 1 + 20 + 1);
}

#[test]
fn aws_adaptive_paces_itself_after_the_first_throttle() {
    // 10/s allowed (burst 10), 40/s offered for a minute.
    let p = with_response("", "algorithm = \"gcra\"\nrate = \"10/s\"\nburst = 10");
    let rows: Vec<TraceRow> = (0..2400).map(|i| row(i * 25 * MILLISECOND, "k")).collect();
    let standard = run(&p, rows.clone(), "aws-standard");
    let adaptive = run(&p, rows, "aws-adaptive");
    let denied = |s: &Summary| s.denied_by_status.get(&429).copied().unwrap_or(0);
    // The limiter holds sends back instead of letting them be denied.
    assert!(denied(&adaptive) * 4 < denied(&standard), "{} vs {}", denied(&adaptive), denied(&standard));
    assert!(adaptive.admitted >= standard.admitted * 9 / 10, "{} vs {}", adaptive.admitted, standard.admitted);
    // It keeps every request and sends it later: the queue grows.
    assert!(adaptive.peak_outstanding > standard.peak_outstanding);
}

// ---- Issue 9, point 3: client options that do nothing; point 8: messages ----

#[test]
fn options_that_do_nothing_are_refused() {
    // `none` retries no status: retry options would be accepted and ignored.
    for opts in ["none,max_retries=3", "none,max_attempts=4", "none,backoff=fixed:1s", "none,retry_budget=0.1"] {
        let err = ClientSpec::parse(opts).unwrap_err();
        assert!(err.contains("does nothing") && err.contains("retry_on=429"), "{opts}: {err}");
    }
    // With something to retry, they mean something.
    let c = ClientSpec::parse("none,retry_on=429,max_retries=3").unwrap();
    assert_eq!(c.describe(), "4 attempts on 429; retries at once; ignores Retry-After");
    // A client that makes one attempt.
    let err = ClientSpec::parse("openai-python,max_retries=0,retry_after=ignore").unwrap_err();
    assert!(err.contains("`retry_after=ignore` does nothing") && err.contains("1 attempt"), "{err}");
    // Jitter on a zero backoff.
    let err = ClientSpec::parse("naive-immediate,jitter=full").unwrap_err();
    assert!(err.contains("does nothing"), "{err}");
}

#[test]
fn max_retries_and_max_attempts_together_are_refused() {
    for opts in ["openai-python,max_retries=3,max_attempts=5", "fixed-1s,max_attempts=2,max_retries=1"] {
        let err = ClientSpec::parse(opts).unwrap_err();
        assert!(err.contains("not both"), "{opts}: {err}");
    }
    let err = ClientSpec::parse("fixed-1s,max_retries=3,max_retries=4").unwrap_err();
    assert!(err.contains("given twice"), "{err}");
}

#[test]
fn client_behaviour_names_everything_that_was_simulated() {
    let d = ClientSpec::parse("none,pace=semaphore:1").unwrap().describe();
    assert_eq!(d, "1 attempt, no retries; at most 1 in flight");
    let d = ClientSpec::parse("none,adaptive=2").unwrap().describe();
    assert_eq!(d, "1 attempt, no retries; adaptive throttling K=2");
    let d = ClientSpec::parse("google-genai,pace=cubic").unwrap().describe();
    assert!(d.starts_with("1 attempt, no retries; once throttled, paces itself"), "{d}");
}

#[test]
fn client_option_messages_say_what_to_write() {
    // A list of statuses written with commas.
    let err = ClientSpec::parse("fixed-1s,retry_on=429,503").unwrap_err();
    assert!(
        err.contains("found \"503\"") && err.contains("joined with `+`") && err.contains("retry_on=429+503"),
        "{err}"
    );
    // A number out of range says the range.
    let err = ClientSpec::parse("openai-python,max_retries=99999999999").unwrap_err();
    assert!(err.contains("from 0 to 4294967294") && err.contains("99999999999"), "{err}");
    let err = ClientSpec::parse("openai-python,max_attempts=0").unwrap_err();
    assert!(err.contains("from 1 to 4294967295"), "{err}");
}

// ---- AWS adaptive mode: the CUBIC limiter on a constructed sequence ----

#[test]
fn cubic_follows_its_published_curve() {
    use ratesim::client::cubic::Cubic;
    let t0: u64 = 1_767_225_600 * SECOND;
    let secs = |t: u64| t as f64 / SECOND as f64;
    let mut c = Cubic::new(t0);
    // 20 responses a second for 10 s: the measured rate settles at 20/s.
    let mut t = t0;
    for _ in 0..200 {
        c.on_response(t, false);
        t += 50 * MILLISECOND;
    }
    assert!((c.measured_rate - 20.0).abs() < 1e-6, "{}", c.measured_rate);
    assert!(!c.enabled);
    // A throttle: w_max = the measured rate, the new rate β·w_max = 0.7·20,
    // K = ∛(w_max·(1 − β)/C) = ∛(20·0.3/0.4) = ∛15.
    let failed_at = t;
    c.on_response(t, true);
    let w_max = c.measured_rate;
    let k = (w_max * 0.3 / 0.4).cbrt();
    assert!(c.enabled);
    assert!((c.fill_rate - 0.7 * w_max).abs() < 1e-9, "{}", c.fill_rate);
    assert!((c.k - 15f64.cbrt()).abs() < 1e-6);
    // The bucket's capacity follows the rate: a burst of 14 goes at once
    // (13 when the float sum of refills lands a hair below 14), then each
    // send waits a token's time.
    let burst = (0..20).take_while(|_| c.acquire(t).is_none()).count();
    assert!((13..=14).contains(&burst), "{burst}");
    let wait = c.acquire(t).expect("the bucket is empty");
    assert!(wait > 0 && wait <= SECOND / 14 + 1, "at most one token's time: {wait}");
    // Waiting that long gives the token back (a nanosecond more at most:
    // the sum is in floating point, as in botocore).
    let back =
        (0..3).scan(t + wait, |at, _| Some(c.acquire(*at).map(|w| *at += w))).take_while(Option::is_some).count();
    assert!(back <= 1, "{back}");
    // Successes at 20/s: the rate is C·(x − K)³ + w_max, x seconds after
    // the throttle — below w_max and rising (concave) before K, w_max at K,
    // above it (convex) after — until it meets 2 × the measured rate.
    let mut below = 0;
    let mut above = 0;
    for _ in 0..200 {
        t += 50 * MILLISECOND;
        c.on_response(t, false);
        let x = secs(t) - secs(failed_at);
        let curve = 0.4 * (x - k).powi(3) + w_max;
        let cap = 2.0 * c.measured_rate;
        let want = curve.min(cap).max(0.5);
        assert!((c.fill_rate - want).abs() < 1e-6 * want, "x {x}: rate {} want {want}", c.fill_rate);
        if x < k - 0.1 {
            assert!(c.fill_rate < w_max);
            below += 1;
        } else if x > k + 0.1 && curve < cap {
            assert!(c.fill_rate > w_max);
            above += 1;
        }
    }
    assert!(below > 20 && above > 20, "{below} {above}");
    // Ten seconds on, the cap of twice the measured rate binds.
    assert!((c.fill_rate - 2.0 * c.measured_rate).abs() < 1e-9, "{} {}", c.fill_rate, c.measured_rate);
    // A second throttle starts again from the bucket's rate, if lower than
    // the measured one.
    let before = c.fill_rate.min(c.measured_rate);
    c.on_response(t, true);
    assert!((c.w_max - before).abs() < 1e-9 && (c.fill_rate - 0.7 * before).abs() < 1e-9);
}
