//! The dialects against the real implementations they model
//! (`ratesim::engines::dialect`), decision by decision:
//!
//! - **python-limits** against the Python `limits` package (5.8.0, from
//!   PyPI), driven on a virtual clock by `tests/peers/python_limits_driver.py`
//!   on random traces with same-instant ties, sub-millisecond gaps and rows
//!   exactly on window boundaries: every decision and every `remaining` must
//!   agree, except the one documented inconsistency of `limits` itself;
//! - **redis-incr-expire** against a real `redis-server` running the
//!   `INCRBY` + `EXPIRE` script on loopback, on bursts placed well inside
//!   windows and gaps well past their ends, with the instants taken from the
//!   server's own clock (`TIME`), so wall-clock jitter cannot change the
//!   answer;
//! - **nginx** against a real nginx with `limit_req` on loopback: the
//!   arrival instants nginx logged are replayed through the engine, and its
//!   statuses and delays compared with nginx's.
//!
//! Each test prints its agreement figures (`cargo test --release --test
//! dialect_peers -- --nocapture`). A missing peer fails the test with the
//! command that installs it (`bash .ci/install-peers`).

#[allow(dead_code)] // (the property-test helpers are not used here)
mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use common::peer::require;
use ratesim::engines::{Dialect, Engine, FixedWindow, SlidingCounter, SlidingLog};
use ratesim::time::{format_decimal_seconds, Nanos, MILLISECOND, SECOND};

/// 2026-01-01T00:00:00Z: traces start near a realistic Unix instant.
const Y2026: Nanos = 1_767_225_600 * SECOND;

// ---------------------------------------------------------------------------
// Python `limits`
// ---------------------------------------------------------------------------

/// One request of a random trace.
#[derive(Clone, Copy, Debug)]
struct Req {
    t: Nanos,
    key: usize,
    cost: u64,
}

/// A random trace for a limit of `limit` per `period`: ties, gaps of a few
/// nanoseconds to under a millisecond, gaps of about one request's share of
/// the period, long idle gaps, instants exactly on an epoch-aligned window
/// boundary and instants exactly one period after an earlier request (a
/// first-hit window's end, a moving-window entry's last instant). With
/// `grid`, every instant is a multiple of `grid` nanoseconds instead.
fn random_trace(rng: &mut ChaCha8Rng, limit: u64, period: Nanos, len: usize, grid: Option<Nanos>) -> Vec<Req> {
    let keys = rng.random_range(1..=3);
    let mut t = Y2026 + rng.random_range(0..3 * period);
    let mut out: Vec<Req> = Vec::with_capacity(len);
    for _ in 0..len {
        let next = match rng.random_range(0..100) {
            0..25 => t,
            25..40 => t + rng.random_range(1..MILLISECOND),
            40..45 => t + [1, 2, 999_999][rng.random_range(0..3)],
            45..70 => t + rng.random_range(0..2 * period / limit),
            70..78 => (t / period + 1) * period,
            78..92 => match out.iter().map(|r| r.t + period).filter(|&b| b >= t).min() {
                Some(b) if rng.random_bool(0.7) => b,
                _ => out.get(rng.random_range(0..out.len().max(1))).map_or(t, |r| (r.t + period).max(t)),
            },
            _ => t + rng.random_range(0..3 * period),
        };
        t = match grid {
            Some(g) => next.div_ceil(g) * g,
            None => next,
        };
        let cost = if rng.random_bool(0.7) { 1 } else { rng.random_range(1..=limit + 1) };
        out.push(Req { t, key: rng.random_range(0..keys), cost });
    }
    out
}

/// The `limits` strategy a policy algorithm corresponds to.
fn strategy_of(engine: &Engine) -> &'static str {
    match engine {
        Engine::FixedWindow(_) => "fixed-window",
        Engine::SlidingLog(_) => "moving-window",
        Engine::SlidingCounter(_) => "sliding-window-counter",
        other => panic!("no limits strategy for {other:?}"),
    }
}

/// Runs the driver on `cases` (engine, trace) with the given clock; returns
/// `(allowed, remaining)` per request per case.
fn run_python_limits(cases: &[(Engine, Vec<Req>)], clock: &str) -> Vec<Vec<(bool, u64)>> {
    let python = require("python3");
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/python_limits_driver.py");
    let doc = json!({
        "clock": clock,
        "cases": cases.iter().map(|(e, reqs)| {
            let (limit, period) = match e {
                Engine::FixedWindow(w) => (w.limit(), w.period()),
                Engine::SlidingLog(w) => (w.limit(), w.period()),
                Engine::SlidingCounter(w) => (w.limit(), w.period()),
                _ => unreachable!(),
            };
            json!({
                "strategy": strategy_of(e),
                "limit": limit,
                "period_s": period / SECOND,
                "requests": reqs.iter().map(|r| json!({
                    "t": format_decimal_seconds(r.t), "key": format!("k{}", r.key), "cost": r.cost,
                })).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
    });
    let mut child = Command::new(&python)
        .arg(driver)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    child.stdin.take().unwrap().write_all(doc.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the limits driver failed ({}); is `limits==5.8.0` installed? run `bash .ci/install-peers`\n{stderr}",
        out.status
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("the driver writes JSON");
    assert_eq!(
        answer["version"], "5.8.0",
        "the python-limits dialect is read from limits 5.8.0: run `bash .ci/install-peers`"
    );
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            case.as_array()
                .unwrap()
                .iter()
                .map(|r| (r["allowed"].as_bool().unwrap(), r["remaining"].as_u64().unwrap()))
                .collect()
        })
        .collect()
}

/// ratesim's answers for one case: `(allowed, remaining)` per request, one
/// state per key, a denial's figures after it was counted (where it counts).
fn run_engine(engine: &Engine, reqs: &[Req]) -> Vec<(bool, u64)> {
    let mut states: Vec<_> = (0..3).map(|_| engine.new_state()).collect();
    reqs.iter()
        .map(|r| {
            let (d, _) = engine.acquire(&mut states[r.key], r.t, r.cost);
            (d.allowed, d.remaining)
        })
        .collect()
}

/// Cost admitted (per ratesim) at exactly `t - period` on `key`: what
/// `limits`' `get_window_stats` leaves out of its moving window.
fn exactly_one_period_old(reqs: &[Req], answers: &[(bool, u64)], i: usize, period: Nanos) -> u64 {
    let r = reqs[i];
    (0..i).filter(|&j| answers[j].0 && reqs[j].key == r.key && reqs[j].t + period == r.t).map(|j| reqs[j].cost).sum()
}

/// The python-limits dialect of every strategy, for random limits and
/// periods (whole seconds, as `limits` items are).
fn python_cases(rng: &mut ChaCha8Rng, n: usize, len: usize, grid: Option<Nanos>) -> Vec<(Engine, Vec<Req>)> {
    (0..n)
        .map(|i| {
            let limit = rng.random_range(1..=5u64);
            let period = rng.random_range(1..=10u64) * SECOND;
            let textbook = match i % 3 {
                0 => Engine::FixedWindow(FixedWindow::new(limit, period).unwrap()),
                1 => Engine::SlidingLog(SlidingLog::new(limit, period).unwrap()),
                _ => Engine::SlidingCounter(SlidingCounter::new(limit, period).unwrap()),
            };
            let engine = Dialect::PythonLimits.apply(&textbook).unwrap();
            (engine, random_trace(rng, limit, period, len, grid))
        })
        .collect()
}

/// Per strategy: requests, decisions agreeing, `remaining` agreeing, and
/// `remaining` differing only by the documented moving-window inconsistency.
#[derive(Default, Debug)]
struct Agreement {
    requests: usize,
    decisions: usize,
    remaining: usize,
    explained: usize,
}

fn compare(cases: &[(Engine, Vec<Req>)], python: &[Vec<(bool, u64)>]) -> Vec<(&'static str, Agreement)> {
    let mut by: Vec<(&'static str, Agreement)> = ["fixed-window", "moving-window", "sliding-window-counter"]
        .into_iter()
        .map(|s| (s, Agreement::default()))
        .collect();
    for ((engine, reqs), theirs) in cases.iter().zip(python) {
        let ours = run_engine(engine, reqs);
        let a = &mut by.iter_mut().find(|(s, _)| *s == strategy_of(engine)).unwrap().1;
        for i in 0..reqs.len() {
            a.requests += 1;
            a.decisions += (ours[i].0 == theirs[i].0) as usize;
            if ours[i].1 == theirs[i].1 {
                a.remaining += 1;
            } else if let Engine::SlidingLog(w) = engine {
                let old = exactly_one_period_old(reqs, &ours, i, w.period());
                if old > 0 && theirs[i].1 == (ours[i].1 + old).min(w.limit()) {
                    a.explained += 1;
                }
            }
        }
    }
    by
}

/// The python-limits dialect agrees with `limits` on every decision and
/// every `remaining`, on `limits`' own arithmetic (an exact rational clock).
/// The only differences are `remaining` values of the moving window at an
/// instant exactly one period after an admitted entry: `limits`' `hit`
/// counts that entry (`[now - P, now]`) but its `get_window_stats` does not
/// (`(now - P, now]`), so it reports more than `hit` would admit; ratesim
/// reports what would be admitted.
#[test]
fn python_limits_agrees_with_limits_on_an_exact_clock() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let cases = python_cases(&mut rng, 60, 120, None);
    let python = run_python_limits(&cases, "exact");
    let figures = compare(&cases, &python);
    for (strategy, a) in &figures {
        println!(
            "python-limits vs limits 5.8.0 (exact clock), {strategy}: {}/{} decisions, {}/{} remaining ({} more differ only by limits' moving-window stats)",
            a.decisions, a.requests, a.remaining, a.requests, a.explained
        );
        assert_eq!(a.decisions, a.requests, "{strategy}: decisions differ");
        assert_eq!(a.remaining + a.explained, a.requests, "{strategy}: unexplained remaining differences");
        if *strategy != "moving-window" {
            assert_eq!(a.explained, 0);
        }
    }
    // The traces do reach the boundary cases this test is about.
    let moving = &figures.iter().find(|(s, _)| *s == "moving-window").unwrap().1;
    assert!(moving.explained > 0, "no request fell exactly one period after an entry");
}

/// On a float wall clock (instants that are exact in both nanoseconds and
/// binary floats: multiples of 1/512 s), `limits` answers the same for the
/// fixed and moving windows, whose float arithmetic is exact on such
/// instants. Its sliding window counter weighs the previous window with
/// float divisions, and where the exact weight is a whole number the
/// rounding can fall just below it and `floor` gives one less: `limits` then
/// admits one more request than its own algorithm. Every float-clock
/// difference must be of that kind (ratesim agrees with the exact clock on
/// every trace), and the test shows one.
#[test]
fn python_limits_on_a_float_clock() {
    let grid = SECOND / 512;
    let mut rng = ChaCha8Rng::seed_from_u64(1414);
    let mut cases = python_cases(&mut rng, 45, 120, Some(grid));
    // 3 per 3 s: three requests at a window start (Y2026 is a multiple of
    // 3 s), then two 1 s into the next window, where the previous window
    // weighs exactly 3·2/3 = 2. In floats `limits` computes the weight as
    // 1.99999988..., floors it to 1, and admits the second one.
    let counter =
        Dialect::PythonLimits.apply(&Engine::SlidingCounter(SlidingCounter::new(3, 3 * SECOND).unwrap())).unwrap();
    let at = |t: Nanos| Req { t, key: 0, cost: 1 };
    let flip = vec![at(Y2026), at(Y2026), at(Y2026), at(Y2026 + 4 * SECOND), at(Y2026 + 4 * SECOND)];
    assert_eq!(run_engine(&counter, &flip).iter().map(|a| a.0).collect::<Vec<_>>(), [true, true, true, true, false]);
    cases.push((counter, flip));
    let float = run_python_limits(&cases, "float");
    let exact = run_python_limits(&cases, "exact");
    let figures = compare(&cases, &float);
    let mut float_flips = 0;
    for ((engine, reqs), (f, x)) in cases.iter().zip(float.iter().zip(&exact)) {
        assert_eq!(
            run_engine(engine, reqs).iter().map(|a| a.0).collect::<Vec<_>>(),
            x.iter().map(|a| a.0).collect::<Vec<_>>()
        );
        if f != x {
            assert_eq!(strategy_of(engine), "sliding-window-counter", "float rounding outside the sliding counter");
            float_flips += 1;
        }
    }
    for (strategy, a) in &figures {
        println!(
            "python-limits vs limits 5.8.0 (float clock, 1/512 s grid), {strategy}: {}/{} decisions, {}/{} remaining (+{} moving-window stats)",
            a.decisions, a.requests, a.remaining, a.requests, a.explained
        );
    }
    println!("sliding-window-counter traces where float rounding changed limits' answers: {float_flips}");
    let (f, x) = (&float[float.len() - 1], &exact[exact.len() - 1]);
    assert_eq!((f[4].0, x[4].0), (true, false), "the float weight 1.99999988 floors to 1");
    assert!(float_flips >= 1);
}

// ---------------------------------------------------------------------------
// Redis INCR + EXPIRE
// ---------------------------------------------------------------------------

/// The textbook fixed-window script: add the request's cost to the key and,
/// if that created the key, let it expire `ARGV[1]` seconds later (the
/// pattern of Redis' `INCR` documentation, with `INCRBY` for weighted
/// requests as Python `limits`' Redis storage has it). It also returns the
/// server's clock, so the engine is replayed on the instants Redis saw.
const INCR_EXPIRE: &str = r#"
local current = redis.call("INCRBY", KEYS[1], ARGV[2])
if current == tonumber(ARGV[2]) then
    redis.call("EXPIRE", KEYS[1], ARGV[1])
end
local now = redis.call("TIME")
return {current, now[1], now[2]}
"#;

/// The redis-incr-expire dialect agrees with a real redis-server running the
/// `INCRBY` + `EXPIRE` script on every decision and every remaining count.
/// Three keys (limits 3, 5 and 10 per second) each get four bursts of
/// requests with random costs: at the start of a window, half a second into
/// it (the counter keeps counting the refused ones: a lock-out), then the
/// same 1.3 s and 1.8 s after the first request (a new window). Every
/// instant is at least ~250 ms from a window's end, so the few microseconds
/// between Redis' clock reads cannot matter; the engine is replayed on the
/// server's own `TIME`.
#[test]
fn redis_incr_expire_agrees_with_redis_server() {
    use common::peer::{free_port, Peer};
    use common::resp::{Redis, Reply};
    use std::time::{Duration, Instant};

    let server = require("redis-server");
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ratesim-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut peer = Peer::spawn(
        "redis-server",
        Command::new(server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(&dir),
        Some(&dir.join("redis.log")),
    );
    peer.wait_for_port(port, Duration::from_secs(10));
    let mut redis = Redis::connect(port);
    let version = match redis.cmd(&["INFO", "server"]) {
        Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
        other => panic!("INFO: {other:?}"),
    };
    let sha = match redis.cmd(&["SCRIPT", "LOAD", INCR_EXPIRE]) {
        Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
        other => panic!("SCRIPT LOAD: {other:?}"),
    };

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let limits = [3u64, 5, 10];
    // (key, the server's clock, cost, the counter after the script)
    let mut seen: Vec<(usize, Nanos, u64, i64)> = Vec::new();
    let begin = Instant::now();
    for phase in [0u64, 500, 1_300, 1_800] {
        let due = begin + Duration::from_millis(phase);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        for (key, &limit) in limits.iter().enumerate() {
            for _ in 0..rng.random_range(limit..=limit + 4) {
                let cost = if rng.random_bool(0.6) { 1 } else { rng.random_range(1..=limit + 1) };
                let reply = redis.cmd(&["EVALSHA", &sha, "1", &format!("rl:{key}"), "1", &cost.to_string()]);
                let r = reply.array();
                let t = r[1].int() as u64 * SECOND + r[2].int() as u64 * 1_000;
                seen.push((key, t, cost, r[0].int()));
            }
        }
    }
    drop(redis);
    peer.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);

    let mut agree = (0, 0);
    for (key, &limit) in limits.iter().enumerate() {
        let engine =
            Dialect::RedisIncrExpire.apply(&Engine::FixedWindow(FixedWindow::new(limit, SECOND).unwrap())).unwrap();
        let mut state = engine.new_state();
        let mut window_end = 0;
        for &(_, t, cost, counter) in seen.iter().filter(|s| s.0 == key) {
            let (d, _) = engine.acquire(&mut state, t, cost);
            let allowed = counter <= limit as i64;
            let remaining = (limit as i64 - counter).max(0) as u64;
            assert!(
                t + 100 * MILLISECOND < window_end || t >= window_end + 100 * MILLISECOND,
                "request at {t} within 100 ms of a window end at {window_end}: the machine stalled, rerun"
            );
            window_end = d.reset;
            assert_eq!(
                (d.allowed, d.remaining),
                (allowed, remaining),
                "key {key} (limit {limit}/s), cost {cost} at {t}: redis counter {counter}"
            );
            agree.0 += (d.allowed == allowed) as usize;
            agree.1 += 1;
        }
    }
    let v = version.lines().find(|l| l.starts_with("redis_version:")).unwrap_or("redis_version:?");
    println!("redis-incr-expire vs redis-server ({v}): {}/{} decisions and remaining counts", agree.0, agree.1);
    assert!(v.starts_with("redis_version:7."), "the dialect is read from Redis 7.0: {v}");
    // The bursts went over every limit, so refusals (and counted refusals) were compared.
    assert!(seen.iter().any(|&(k, _, _, c)| c > limits[k] as i64 + 1));
}

// ---------------------------------------------------------------------------
// nginx limit_req
// ---------------------------------------------------------------------------

/// Three nginx limits, as a ratesim policy: a queue (excess requests wait),
/// `nodelay` at a per-minute rate that nginx truncates (100 r/m is 1666
/// milli-requests per second), and `delay=2`.
const NGINX_POLICY: &str = r#"
provider = "nginx"

[[plan]]
name = "q"
[[plan.limit]]
id = "q"
dialect = "nginx"
rate = "20/s"
burst = 5

[[plan]]
name = "n"
[[plan.limit]]
id = "n"
dialect = "nginx"
rate = "100/min"
burst = 3
nodelay = true

[[plan]]
name = "d"
[[plan.limit]]
id = "d"
dialect = "nginx"
rate = "10/s"
burst = 6
delay = 2
"#;

/// The same limits in nginx's configuration, one location per plan, keyed
/// by the `key` query argument; a static file answers admitted requests.
fn nginx_conf(dir: &std::path::Path, port: u16) -> String {
    let www = dir.join("www");
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid nginx.pid;
error_log logs/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    log_format ratesim '$msec $request_time $status $arg_key $arg_seq $uri';
    limit_req_zone $arg_key zone=q:1m rate=20r/s;
    limit_req_zone $arg_key zone=n:1m rate=100r/m;
    limit_req_zone $arg_key zone=d:1m rate=10r/s;
    server {{
        listen 127.0.0.1:{port};
        access_log logs/access.log ratesim;
        location /q/ {{ limit_req zone=q burst=5; alias {www}/; }}
        location /n/ {{ limit_req zone=n burst=3 nodelay; alias {www}/; }}
        location /d/ {{ limit_req zone=d burst=6 delay=2; alias {www}/; }}
    }}
}}
"#,
        www = www.display()
    )
}

/// One line of nginx's access log: the arrival (`$msec - $request_time`, in
/// milliseconds), the time nginx held the request, its status, key and zone.
#[derive(Clone, Debug)]
struct Logged {
    arrival_ms: u64,
    held_ms: u64,
    status: u16,
    key: String,
    zone: String,
}

fn parse_access_log(text: &str) -> Vec<Logged> {
    let ms = |s: &str| -> u64 {
        let (sec, frac) = s.split_once('.').expect("seconds.milliseconds");
        sec.parse::<u64>().unwrap() * 1000 + frac.parse::<u64>().unwrap()
    };
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let (msec, held) = (ms(f[0]), ms(f[1]));
            Logged {
                arrival_ms: msec - held,
                held_ms: held,
                status: f[2].parse().unwrap(),
                key: f[3].to_string(),
                zone: f[5].trim_matches('/').split('/').next().unwrap().to_string(),
            }
        })
        .collect()
}

/// The nginx dialect against a real nginx 1.22 with `limit_req`: requests
/// are sent in bursts and trickles on fresh loopback connections; the
/// arrival instants nginx logged are replayed through the engine (per zone
/// and key, in the order nginx must have decided them: within one
/// millisecond, admitted ones by increasing delay, then refused ones), and
/// each status and delay is compared with nginx's.
///
/// nginx decides on its monotonic millisecond clock, but logs wall-clock
/// milliseconds; the two clocks' millisecond ticks are out of phase, so a
/// difference of arrivals can be off by one millisecond. A decision that
/// differs at the logged instant must therefore agree at one millisecond
/// before or after it (counted separately); anything else fails. The time
/// nginx held an admitted request (`$request_time`) must be at least the
/// engine's delay minus that millisecond; how much later nginx served it
/// (its timer and event loop) is reported.
#[test]
fn nginx_dialect_agrees_with_nginx() {
    use common::peer::{free_port, Peer};
    use std::io::Read;
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    let policy = ratesim::policy::parse(NGINX_POLICY, "nginx.toml").expect("the nginx policy parses");
    let nginx = require("nginx");
    let dir = std::env::temp_dir().join(format!("ratesim-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("www/ok.txt"), "ok\n").unwrap();
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&dir, port)).unwrap();
    let mut prefix = dir.display().to_string();
    prefix.push('/');
    let mut peer = Peer::spawn(
        "nginx",
        Command::new(&nginx).args(["-p", &prefix, "-c"]).arg(&conf).args(["-e"]).arg(dir.join("logs/error.log")),
        Some(&dir.join("nginx.out")),
    );
    peer.wait_for_port(port, Duration::from_secs(10));
    let version = String::from_utf8(Command::new(&nginx).arg("-v").output().unwrap().stderr).unwrap();

    // Bursts of 3 to 12 requests, trickles and idle gaps, per zone and key.
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let mut schedule: Vec<(u64, &str, usize)> = Vec::new(); // (ms after start, zone, key)
    for zone in ["q", "n", "d"] {
        for key in 0..2 {
            let mut t = rng.random_range(0..100u64);
            while t < 2_400 {
                let n = if rng.random_bool(0.4) { rng.random_range(3..=12) } else { 1 };
                for _ in 0..n {
                    schedule.push((t, zone, key));
                }
                t += match rng.random_range(0..10) {
                    0..6 => rng.random_range(10..120),
                    6..9 => rng.random_range(120..400),
                    _ => rng.random_range(600..1_200),
                };
            }
        }
    }
    schedule.sort();
    let begin = Instant::now();
    let mut open = Vec::new();
    for (seq, &(at, zone, key)) in schedule.iter().enumerate() {
        std::thread::sleep((begin + Duration::from_millis(at)).saturating_duration_since(Instant::now()));
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
        write!(s, "GET /{zone}/ok.txt?key=k{key}&seq={seq} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        open.push(s);
    }
    for mut s in open {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).expect("nginx answers every request");
    }
    let log = std::fs::read_to_string(dir.join("logs/access.log")).unwrap();
    peer.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    let mut logged = parse_access_log(&log);
    assert_eq!(logged.len(), schedule.len(), "nginx logged every request");
    logged.sort_by_key(|l| (l.zone.clone(), l.key.clone(), l.arrival_ms, l.status, l.held_ms));

    #[derive(Default)]
    struct Figures {
        requests: usize,
        exact: usize,
        off_by_one_ms: usize,
        refused: usize,
        delayed: usize,
        lateness: Vec<i64>,
    }
    let mut by_zone: Vec<(String, Figures)> = Vec::new();
    let mut i = 0;
    while i < logged.len() {
        let (zone, key) = (logged[i].zone.clone(), logged[i].key.clone());
        let limit = &policy.plan(&zone).unwrap().limits[0];
        assert_eq!(limit.status, 503, "nginx refuses with 503 (limit_req_status)");
        let engine = &limit.engine;
        let mut state = engine.new_state();
        let figures = match by_zone.iter().position(|(z, _)| *z == zone) {
            Some(p) => &mut by_zone[p].1,
            None => {
                by_zone.push((zone.clone(), Figures::default()));
                &mut by_zone.last_mut().unwrap().1
            }
        };
        while i < logged.len() && logged[i].zone == zone && logged[i].key == key {
            let l = &logged[i];
            let allowed = l.status == 200;
            // The logged instant first, then one millisecond either side.
            let mut matched = None;
            for (k, shift) in [0i64, -1, 1].into_iter().enumerate() {
                let t = (l.arrival_ms as i64 + shift) as u64 * MILLISECOND;
                let d = engine.decide(&mut state.clone(), t, 1);
                let delay_ms = (d.delay / MILLISECOND) as i64;
                if d.allowed == allowed && (!allowed || l.held_ms as i64 >= delay_ms - 1) {
                    matched = Some((k, t, delay_ms));
                    break;
                }
            }
            let (k, t, delay_ms) = matched.unwrap_or_else(|| {
                panic!("zone {zone} key {key}: nginx answered {} (held {} ms) at {} ms; the engine disagrees at that millisecond and either side", l.status, l.held_ms, l.arrival_ms)
            });
            engine.acquire(&mut state, t, 1);
            figures.requests += 1;
            figures.exact += (k == 0) as usize;
            figures.off_by_one_ms += (k > 0) as usize;
            figures.refused += !allowed as usize;
            if allowed && delay_ms > 0 {
                figures.delayed += 1;
                figures.lateness.push(l.held_ms as i64 - delay_ms);
            }
            i += 1;
        }
    }
    let v = version.trim();
    let mut total = (0, 0);
    for (zone, f) in &mut by_zone {
        f.lateness.sort();
        let q = |p: usize| f.lateness.get(f.lateness.len().saturating_sub(1) * p / 100).copied().unwrap_or(0);
        println!(
            "nginx dialect vs {v}, zone {zone}: {}/{} statuses at the logged millisecond, {} more at ±1 ms ({} refused, {} delayed; nginx served delayed requests p50 {} ms, p90 {} ms, max {} ms after the engine's delay)",
            f.exact, f.requests, f.off_by_one_ms, f.refused, f.delayed, q(50), q(90), q(100)
        );
        total = (total.0 + f.exact, total.1 + f.requests);
        assert!(f.refused > 0, "zone {zone}: the bursts exceeded the burst");
    }
    println!("nginx dialect vs {v}: {}/{} at the logged millisecond", total.0, total.1);
    assert!(v.contains("nginx/1.22"), "the dialect is read from nginx 1.22.1: {v}");
    for (zone, f) in &by_zone {
        // The engine's delays are nginx's: most delayed requests are served
        // within a few milliseconds of them (a wrong delay would be off by
        // tens or hundreds of milliseconds).
        let median = f.lateness.get(f.lateness.len() / 2).copied().unwrap_or(0);
        assert!(
            median <= 10,
            "zone {zone}: nginx served delayed requests a median {median} ms after the engine's delay"
        );
    }
    let q = &by_zone.iter().find(|(z, _)| z == "q").unwrap().1;
    assert!(q.delayed > 0, "the queue delayed requests");
    let _ = std::fs::remove_dir_all(&dir);
}
