//! `ratesim serve` as a client meets it: curl byte-checks of the rendered
//! responses, exact replay of the decision log through the simulator,
//! graceful shutdown without a lost line, clear 4xx answers to bad input,
//! permits released by disconnects and stalled readers, the usage and
//! prediction endpoints. Every server here is the real binary on a free
//! loopback port, stopped by its pid.

#[allow(dead_code)] // the property-test helpers of `common` are not used here
mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::peer::{free_port, require};
use common::serve::*;
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Seconds rounded up, as the policy renders them.
fn ceil_s(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}

/// The absolute instant (ns since the epoch) of a log line's `t_ns`-relative
/// field `field` (e.g. `reset_ns`).
fn absolute(line: &Value, field: &str) -> u64 {
    let at = ratesim::time::parse_rfc3339(line["time"].as_str().unwrap()).unwrap();
    let origin = at - line["t_ns"].as_u64().unwrap();
    origin + line[field].as_u64().unwrap()
}

/// Runs curl with `args` and parses what `curl -i` prints.
fn curl(args: &[&str]) -> Reply {
    let out = Command::new(require("curl")).args(["-sS", "-i", "--max-time", "10"]).args(args).output().unwrap();
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    parse_reply(&out.stdout)
}

/// The headers of a reply without the ones that vary by the second (`date`),
/// checking `content-length` against the body.
fn headers_of(r: &Reply) -> Vec<(String, String)> {
    if let Some(n) = r.header("content-length") {
        assert_eq!(n.parse::<usize>().unwrap(), r.body.len(), "content-length");
    }
    r.headers.iter().filter(|(n, _)| n != "date" && n != "content-length").cloned().collect()
}

fn pairs(items: &[(&str, String)]) -> Vec<(String, String)> {
    items.iter().map(|(n, v)| (n.to_string(), v.clone())).collect()
}

#[test]
fn curl_sees_the_policy_headers_and_bodies_byte_for_byte() {
    let dir = scratch("curl");
    // RunInfra's page, slowed to one request a minute so the 429 does not
    // depend on timing: the same [response] section and limit texts.
    let runinfra = std::fs::read_to_string(repo("policies/runinfra.toml")).unwrap();
    let slow = runinfra.replacen("rate = \"500/min\"", "rate = \"1/min\"", 1).replacen("burst = 50 ", "burst = 1 ", 1);
    assert_ne!(slow, runinfra);
    let slow = write(&dir, "runinfra-slow.toml", &slow);
    let server = Server::start(&dir, "runinfra", &slow, "pro", &[]);
    let url = format!("{}/v1/chat/completions", server.url());
    let body = chat_body("hello", "");
    let ok = curl(&[&url, "-H", "Authorization: Bearer sk-curl", "-H", "Content-Type: application/json", "-d", &body]);
    let denied =
        curl(&[&url, "-H", "Authorization: Bearer sk-curl", "-H", "Content-Type: application/json", "-d", &body]);
    let (_, log) = server.stop();
    assert_eq!(log.len(), 2);
    assert_eq!(ok.status, 200);
    assert_eq!(
        headers_of(&ok),
        pairs(&[
            ("content-type", "application/json".into()),
            ("x-ratelimit-limit", "500".into()),
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", ceil_s(absolute(&log[0], "reset_ns")).to_string()),
            ("x-request-id", "req_0".into()),
        ])
    );
    let completion = ok.json();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "test-model");
    assert_eq!(
        completion["usage"],
        serde_json::json!({"prompt_tokens": 2, "completion_tokens": 16, "total_tokens": 18})
    );
    // The headers of the second request's 429, with `retry` (the retry
    // headers) in their place.
    let denial_headers = |line: &Value, retry: &[(&str, String)]| -> Vec<(String, String)> {
        let mut h = vec![
            ("content-type", "application/json".to_string()),
            ("x-ratelimit-limit", "500".into()),
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", ceil_s(absolute(line, "reset_ns")).to_string()),
        ];
        h.extend_from_slice(retry);
        h.push(("x-request-id", "req_1".into()));
        pairs(&h)
    };
    assert_eq!(denied.status, 429);
    let retry_after = ceil_s(log[1]["retry_after_ns"].as_u64().unwrap());
    assert!((59..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(headers_of(&denied), denial_headers(&log[1], &[("retry-after", retry_after.to_string())]));
    // The policy's body template, filled: its `limit` is `{header_limit}`, the
    // 500 of the header (the bucket, 1 here, is `{limit}`).
    assert_eq!(
        denied.body,
        format!(
            r#"{{"error":{{"code":"RATE_LIMIT_EXCEEDED","message":"Rate limit exceeded for this API key","limit":500,"retry_after":{retry_after}}}}}"#
        )
    );

    // The same plan asking for the retry headers real SDKs read:
    // `retry-after-ms` (the exact wait, rounded up to the millisecond) and
    // `x-should-retry` (`false` with a 30 s threshold: the wait is a minute).
    for (should_retry, sent) in [("true", "true"), ("\"30s\"", "false")] {
        let text = std::fs::read_to_string(&slow).unwrap().replacen(
            "[response]\n",
            &format!("[response]\nretry_after_ms = true\nx_should_retry = {should_retry}\n"),
            1,
        );
        let name = format!("runinfra-should-retry-{sent}");
        let policy = write(&dir, &format!("{name}.toml"), &text);
        let server = Server::start(&dir, &name, &policy, "pro", &[]);
        let url = format!("{}/v1/chat/completions", server.url());
        let ok = curl(&[&url, "-H", "Authorization: Bearer sk-curl", "-d", &body]);
        let denied = curl(&[&url, "-H", "Authorization: Bearer sk-curl", "-d", &body]);
        let (_, log) = server.stop();
        assert_eq!((ok.status, ok.header("retry-after-ms"), ok.header("x-should-retry")), (200, None, None));
        let wait = log[1]["retry_after_ns"].as_u64().unwrap();
        let retry = [
            ("retry-after", ceil_s(wait).to_string()),
            ("retry-after-ms", wait.div_ceil(1_000_000).to_string()),
            ("x-should-retry", sent.to_string()),
        ];
        assert_eq!(headers_of(&denied), denial_headers(&log[1], &retry));
    }

    // AICredits' budget plan: a first completion costing more than the whole
    // budget is admitted (reserve 0), the next is refused with 402.
    let keys =
        write(&dir, "keys.toml", "unknown_keys = \"accept\"\n\n[[key]]\nkey = \"sk-revoked-key\"\ninvalid = true\n");
    let server = Server::start(
        &dir,
        "aicredits",
        &repo("policies/aicredits.toml"),
        "budget",
        &["--price", "50001", "--keys", keys.to_str().unwrap()],
    );
    let url = format!("{}/v1/chat/completions", server.url());
    let first = curl(&[&url, "-H", "Authorization: Bearer sk-spender", "-d", &body]);
    let broke = curl(&[&url, "-H", "Authorization: Bearer sk-spender", "-d", &body]);
    let revoked = curl(&[&url, "-H", "Authorization: Bearer sk-revoked-key", "-d", &body]);
    let anonymous = curl(&[&url, "-d", &body]);
    let (_, log) = server.stop();
    assert_eq!(log.len(), 2, "401s never reach the limiter");
    assert_eq!((first.status, log[0]["cost"].as_u64()), (200, Some(50001)));
    assert_eq!(broke.status, 402);
    // A 402 from the budget (not reportable) shows the per-minute window in
    // the headers: 58 left after two requests, reset in seconds.
    let since_first = log[1]["t_ns"].as_u64().unwrap() - log[0]["t_ns"].as_u64().unwrap();
    assert_eq!(
        headers_of(&broke),
        pairs(&[
            ("content-type", "application/json".into()),
            ("x-ratelimit-limit", "60".into()),
            ("x-ratelimit-remaining", "58".into()),
            ("x-ratelimit-reset", ceil_s(60_000_000_000 - since_first).to_string()),
            ("x-request-id", "req_1".into()),
        ])
    );
    assert_eq!(
        broke.body,
        r#"{"error":{"message":"This API key has exceeded its budget limit","type":"insufficient_quota","code":"BUDGET_EXCEEDED"}}"#
    );
    assert_eq!((log[1]["status"].as_u64(), log[1]["limit"].as_str()), (Some(402), Some("budget")));
    assert_eq!(revoked.status, 401);
    assert_eq!(headers_of(&revoked), pairs(&[("content-type", "application/json".into())]));
    assert_eq!(
        revoked.body,
        format!(
            r#"{{"error":{{"message":"API key sk-rev…-key is revoked (marked invalid in {})","type":"authentication_error","param":null,"code":"invalid_api_key"}}}}"#,
            keys.display()
        )
    );
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.body,
        r#"{"error":{"message":"no API key: send `Authorization: Bearer <API key>` (this plan has no limit for unauthenticated requests)","type":"authentication_error","param":null,"code":"missing_api_key"}}"#
    );
}

/// A plan where every kind of limit denies something: a bucket per key, a
/// concurrency cap per user, a window per workspace, a token budget per
/// workspace answered with 402.
const MIXED: &str = r#"
provider = "Replay test"
[response]
retry_after_on = [429]
[[plan]]
name = "mixed"
[[plan.limit]]
id = "bucket"
algorithm = "gcra"
rate = "10/s"
burst = 3
match.except = ["usage"]
[[plan.limit]]
id = "per-user"
algorithm = "concurrency"
max = 2
scope = "user"
match.endpoints = ["chat.*", "predictions.create"]
[[plan.limit]]
id = "window"
algorithm = "fixed-window"
rate = "6/10s"
scope = "workspace"
match.endpoints = ["predictions.*", "usage"]
[[plan.limit]]
id = "tokens"
algorithm = "budget"
unit = "tokens"
limit = 400
period = "day"
reserve = 20
scope = "workspace"
match.endpoints = ["chat.*"]
status = 402
code = "TOKENS_EXHAUSTED"
"#;

const MIXED_KEYS: &str = r#"
[[key]]
key = "k0"
user = "u0"
workspace = "w0"
[[key]]
key = "k1"
user = "u1"
workspace = "w1"
[[key]]
key = "k2"
user = "u2"
workspace = "w0"
[[key]]
key = "k3"
user = "u0"
workspace = "w0"
[[key]]
key = "k4"
user = "u1"
workspace = "w1"
[[key]]
key = "k5"
user = "u2"
workspace = "w0"
"#;

#[test]
fn the_log_replays_through_the_simulator_to_the_same_decisions() {
    let dir = scratch("replay");
    let policy = write(&dir, "mixed.toml", MIXED);
    let keys = write(&dir, "keys.toml", MIXED_KEYS);
    let server = Server::start(
        &dir,
        "mixed",
        &policy,
        "mixed",
        &["--keys", keys.to_str().unwrap(), "--service-time", "uniform:20ms:60ms", "--price", "3"],
    );
    let port = server.port;
    // Two threads per key, each a fixed mix of endpoints.
    let clients: Vec<_> = (0..12)
        .map(|c| {
            thread::spawn(move || {
                let key = format!("k{}", c % 6);
                for i in 0..25u32 {
                    match (c + i) % 10 {
                        0 => send_raw(port, &request("POST", "/v1/predictions", Some(&key), Some("{}"))),
                        1 => send_raw(port, &request("GET", "/v1/usage", Some(&key), None)),
                        2 => send_raw(port, &request("GET", &format!("/v1/predictions/p-{i}"), Some(&key), None)),
                        3 => chat(port, Some(&key), "stream me", r#","stream":true,"max_tokens":5"#),
                        n => chat(port, Some(&key), &"word ".repeat(n as usize), ""),
                    };
                    thread::sleep(Duration::from_millis(u64::from(20 + (c * 7 + i * 3) % 21)));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    // Whatever the timing above, a workspace's token budget runs out here.
    thread::sleep(Duration::from_millis(400));
    assert_ne!(chat(port, Some("k1"), "long", r#","max_tokens":4096"#).status, 429);
    thread::sleep(Duration::from_millis(200));
    assert_eq!(chat(port, Some("k4"), "more", "").status, 402);
    let (out, log) = server.stop();
    assert_eq!(log.len(), 302, "{out}");
    assert!(out.contains("302 decisions"), "{out}");
    for limit in ["bucket", "per-user", "window", "tokens"] {
        assert!(log.iter().any(|l| l["limit"] == limit), "no denial by {limit}");
    }
    assert!(log.iter().any(|l| l["status"] == 402));
    assert!(log.iter().all(|l| l["user"].is_string() && l["workspace"].is_string() && l["auth"] == true));
    let replayed = replay(&dir, &server_log(&dir, "mixed"), &policy, "mixed");
    let logged = schema_lines(&log);
    assert_eq!(logged.len(), replayed.len());
    for (i, (a, b)) in logged.iter().zip(&replayed).enumerate() {
        assert_eq!(a, b, "decision {i} differs between the server and the simulator");
    }
}

fn server_log(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.jsonl"))
}

const HOLDING: &str = r#"
provider = "Shutdown test"
[[plan]]
name = "p"
[[plan.limit]]
id = "slots"
algorithm = "concurrency"
max = 8
[[plan.limit]]
id = "bucket"
algorithm = "gcra"
rate = "1/min"
burst = 10
"#;

/// Starts `n` slow requests (and some denied ones), signals the server while
/// they are in flight, and returns what each client got and the log.
#[allow(clippy::type_complexity)]
fn signal_mid_flight(name: &str, signal: i32, grace: &str) -> (Vec<Result<u16, String>>, String, Vec<Value>, PathBuf) {
    let dir = scratch(name);
    let policy = write(&dir, "holding.toml", HOLDING);
    let server = Server::start(&dir, name, &policy, "p", &["--service-time", "1500ms", "--grace", grace]);
    let port = server.port;
    let clients: Vec<_> = (0..12)
        .map(|i| {
            thread::spawn(move || {
                let mut s = connect(port);
                let extra = if i % 2 == 0 { r#","stream":true"# } else { "" };
                s.write_all(&request("POST", "/v1/chat/completions", Some("k"), Some(&chat_body("hi", extra))))
                    .unwrap();
                let mut buf = Vec::new();
                match s.read_to_end(&mut buf) {
                    Ok(_) if !buf.is_empty() => {
                        let r = parse_reply(&buf);
                        // A stream cut short lacks its [DONE].
                        if r.status == 200 && extra.is_empty() == r.body.contains("[DONE]") {
                            Err(format!("incomplete body {:?}", r.body))
                        } else {
                            Ok(r.status)
                        }
                    }
                    Ok(_) => Err("closed without an answer".into()),
                    Err(e) => Err(e.to_string()),
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(400));
    let (out, log) = server.stop_with(signal);
    let replies = clients.into_iter().map(|c| c.join().unwrap()).collect();
    (replies, out, log, dir)
}

#[test]
fn sigterm_lets_requests_in_flight_finish_and_loses_no_line() {
    let started = Instant::now();
    let (replies, out, log, _) = signal_mid_flight("sigterm", libc::SIGTERM, "10s");
    assert!(started.elapsed() >= Duration::from_millis(1500), "the server waited for its requests");
    // 8 hold the permits, 4 are denied by the cap (consuming nothing of the bucket).
    let mut statuses: Vec<u16> = replies.iter().map(|r| *r.as_ref().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 429, 429, 429, 429]);
    assert_eq!(log.len(), 12, "{out}");
    assert!(out.contains("12 decisions (8 admitted, 4 denied"), "{out}");
    for l in log.iter().filter(|l| l["allowed"] == true) {
        let d = l["duration_ns"].as_u64().unwrap();
        assert!((1_500_000_000..3_000_000_000).contains(&d), "held for the whole service time: {d}");
    }
}

#[test]
fn sigint_after_the_grace_period_cuts_requests_short_and_still_logs_them() {
    let (replies, out, log, dir) = signal_mid_flight("sigint", libc::SIGINT, "200ms");
    assert_eq!(replies.iter().filter(|r| r.is_err()).count(), 8, "{replies:?}");
    assert_eq!(log.len(), 12, "{out}");
    assert!(out.contains("8 requests cut short"), "{out}");
    for l in log.iter().filter(|l| l["allowed"] == true) {
        let d = l["duration_ns"].as_u64().unwrap();
        assert!((400_000_000..1_500_000_000).contains(&d), "cut short at the end of the grace: {d}");
    }
    // The cut-short durations are in the log, and the log still replays.
    let replayed = replay(&dir, &server_log(&dir, "sigint"), &dir.join("holding.toml"), "p");
    assert_eq!(schema_lines(&log), replayed);
}

#[test]
fn malformed_requests_get_a_clear_4xx_and_never_a_permit() {
    let dir = scratch("malformed");
    let policy = write(&dir, "one-slot.toml", "provider = \"T\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"slot\"\nalgorithm = \"concurrency\"\nmax = 1\n");
    let server = Server::start(&dir, "malformed", &policy, "p", &["--max-body", "200", "--read-timeout", "300ms"]);
    let port = server.port;
    let good = chat_body("hi", "");
    let post = |headers: &str, body: &str| {
        format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}", body.len())
            .into_bytes()
    };
    let cases: Vec<(Vec<u8>, u16, &str, &str)> = vec![
        (post("", &good), 401, "missing_api_key", "no API key"),
        (post("Authorization: Basic dTpw\r\n", &good), 401, "invalid_authorization_header", "Bearer scheme"),
        (post("Authorization: Bearer\r\n", &good), 401, "invalid_authorization_header", "is empty"),
        (
            post("Authorization: Bearer a\r\nAuthorization: Bearer b\r\n", &good),
            401,
            "invalid_authorization_header",
            "more than once",
        ),
        (post("Authorization: Bearer k\r\n", &"x".repeat(300)), 413, "request_too_large", "limit of 200 bytes"),
        (post("Authorization: Bearer k\r\n", "{\"model\": "), 400, "invalid_json", "not valid JSON"),
        (post("Authorization: Bearer k\r\n", "{\"model\":\"m\"}"), 400, "invalid_request", "messages: missing"),
        (request("GET", "/v1/chat/completions", Some("k"), None), 405, "method_not_allowed", "answers POST only"),
        (request("GET", "/v2/models", Some("k"), None), 404, "unknown_url", "no route for GET /v2/models"),
        (request("DELETE", "/v1/usage", Some("k"), None), 405, "method_not_allowed", "answers GET only"),
    ];
    for (raw, status, code, why) in &cases {
        let r = send_raw(port, raw);
        assert_eq!(r.status, *status, "{}: {}", String::from_utf8_lossy(raw), r.body);
        let e = &r.json()["error"];
        assert_eq!(e["code"], *code);
        assert!(e["message"].as_str().unwrap().contains(why), "{}", e["message"]);
        if *status == 405 {
            assert!(r.header("allow").is_some());
        }
    }
    // A body that never finishes: 408 after the read timeout. Meanwhile
    // the only permit is free: the limiter is asked only once the body is in.
    let mut slow = connect(port);
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer k\r\nContent-Length: 100\r\n\r\n{\"mo").unwrap();
    let meanwhile = chat(port, Some("k"), "hi", "");
    assert_eq!(meanwhile.status, 200);
    let timed_out = read_reply(&mut slow);
    assert_eq!(timed_out.status, 408);
    assert_eq!(timed_out.json()["error"]["code"], "request_timeout");
    // Not HTTP at all: hyper answers 400 and closes.
    let garbage = send_raw(port, b"HELLO\r\n\r\n");
    assert_eq!(garbage.status, 400);
    let (out, log) = server.stop();
    assert_eq!(log.len(), 1, "only the good request reached the limiter: {out}");
    assert!(out.contains("11 refused before it"), "{out}");
}

#[test]
fn a_client_that_disconnects_gives_its_permit_back_at_once() {
    let dir = scratch("release");
    let policy = write(&dir, "one-slot.toml", "provider = \"T\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"slot\"\nalgorithm = \"concurrency\"\nmax = 1\n");
    let server = Server::start(&dir, "release", &policy, "p", &["--service-time", "3s"]);
    let port = server.port;
    // A client that gives up after 300 ms of a 3 s service time, and one
    // that drops its stream after 300 ms.
    for extra in ["", r#","stream":true"#] {
        let mut gone = connect(port);
        gone.write_all(&request("POST", "/v1/chat/completions", Some("k"), Some(&chat_body("hi", extra)))).unwrap();
        thread::sleep(Duration::from_millis(300));
        assert_eq!(chat(port, Some("k"), "hi", "").status, 429, "the slot is held");
        drop(gone);
        thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    assert_eq!(chat(port, Some("k"), "hi", "").status, 200, "the slot came back");
    assert!(started.elapsed() >= Duration::from_secs(3), "served in full");
    let (out, log) = server.stop();
    let held: Vec<(u64, u64)> = log
        .iter()
        .filter(|l| l["allowed"] == true)
        .map(|l| (l["duration_ns"].as_u64().unwrap(), l["tokens"].as_u64().unwrap()))
        .collect();
    assert_eq!(held.len(), 3, "{out}");
    for (d, _) in &held[..2] {
        assert!((300_000_000..1_000_000_000).contains(d), "released at the disconnect: {held:?}");
    }
    // The stream cut short settles the prompt and the words it delivered.
    assert!(held[1].1 > 1 && held[1].1 < 17, "{held:?}");
    assert_eq!(held[2].1, 17);
}

#[test]
fn usage_reports_the_live_figures_of_a_runagent_key() {
    let dir = scratch("usage");
    let server = Server::start(&dir, "runagent", &repo("policies/runagent.toml"), "free", &[]);
    for _ in 0..3 {
        assert_eq!(chat(server.port, Some("sk-ra"), "abcdefgh", "").status, 200);
        // 2 + 16 tokens
    }
    let usage = send_raw(server.port, &request("GET", "/v1/usage", Some("sk-ra"), None));
    let anonymous = send_raw(server.port, &request("GET", "/v1/usage", None, None));
    let (_, log) = server.stop();
    assert_eq!(usage.status, 200);
    assert_eq!(anonymous.status, 401);
    let u = usage.json();
    // The page's shape: four requests this hour (the usage call counts),
    // 54 tokens settled this month.
    assert_eq!(u["requests"], serde_json::json!({"used": 4, "limit": 100, "remaining": 96}));
    assert_eq!(u["tokens"], serde_json::json!({"used": 54, "limit": 100000, "remaining": 99946}));
    assert!(u["period"].as_str().unwrap().ends_with("-01T00:00:00Z"), "{u}");
    let ids: Vec<&str> = u["limits"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["rph", "rpm", "inflight", "tokens"]);
    assert_eq!(u["limits"][2]["used"], 0, "no request in flight");
    assert_eq!(usage.header("x-ratelimit-limit"), Some("100"));
    assert_eq!(usage.header("x-ratelimit-remaining"), Some("96"));
    assert_eq!(log.len(), 4);
    assert_eq!(log[3]["endpoint"], "usage");
}

#[test]
fn predictions_hold_their_permit_until_they_finish() {
    let dir = scratch("predictions");
    let server = Server::start(
        &dir,
        "predictions",
        &repo("policies/predictions-api.toml"),
        "default",
        &["--service-time", "1s"],
    );
    let port = server.port;
    let create = || send_raw(port, &request("POST", "/v1/predictions", Some("sk-p"), Some("{\"input\":{}}")));
    let started = Instant::now();
    for i in 0..5 {
        let r = create();
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.json()["id"], format!("p-{i}"));
        assert_eq!(r.json()["status"], "starting");
    }
    let sixth = create();
    assert_eq!(sixth.status, 429);
    assert_eq!(
        sixth.body,
        r#"{"error":{"type":"rate_limit_error","message":"Concurrent prediction limit exceeded. 5/5 predictions running.","code":"CONCURRENT_LIMIT_EXCEEDED","details":{"limit":5,"active":5}}}"#
    );
    assert_eq!(sixth.header("retry-after"), None, "the page's cap has no retry instant");
    let poll = send_raw(port, &request("GET", "/v1/predictions/p-0", Some("sk-p"), None));
    assert_eq!((poll.status, poll.json()["status"].as_str()), (200, Some("processing")));
    let stranger = send_raw(port, &request("GET", "/v1/predictions/p-0", Some("sk-other"), None));
    assert_eq!(stranger.status, 404);
    assert!(started.elapsed() < Duration::from_millis(900), "the checks above ran within the predictions' second");
    thread::sleep(Duration::from_millis(1200).saturating_sub(started.elapsed()));
    let done = send_raw(port, &request("GET", "/v1/predictions/p-0", Some("sk-p"), None));
    assert_eq!(done.json()["status"], "succeeded");
    assert_eq!(create().status, 201, "the finished predictions gave their slots back");
    let (_, log) = server.stop();
    let creates: Vec<&Value> =
        log.iter().filter(|l| l["endpoint"] == "predictions.create" && l["allowed"] == true).collect();
    assert_eq!(creates.len(), 6);
    for c in creates {
        assert!(c["duration_ns"].as_u64().unwrap() >= 1_000_000_000, "held for the prediction's run: {c}");
    }
}

#[test]
fn anonymous_callers_are_limited_by_their_address() {
    let dir = scratch("anonymous");
    let server = Server::start(
        &dir,
        "wriftai",
        &repo("policies/wriftai.toml"),
        "default",
        &["--route", "GET /v1/models=models.list"],
    );
    let port = server.port;
    let statuses: Vec<u16> = (0..4).map(|_| send_raw(port, &request("GET", "/v1/models", None, None)).status).collect();
    let keyed = send_raw(port, &request("GET", "/v1/models", Some("sk-w"), None));
    // The address is out of requests, its health checks are not.
    let health: Vec<Reply> = (0..5).map(|_| send_raw(port, &request("GET", "/health", None, None))).collect();
    let (_, log) = server.stop();
    for h in &health {
        assert_eq!((h.status, h.body.as_str()), (200, r#"{"status":"ok"}"#));
        assert_eq!(h.header("retry-after"), None);
    }
    assert_eq!(log.len(), 5, "health checks are never logged: {log:?}");
    assert_eq!(statuses[..3], [200, 200, 200]);
    assert_eq!(statuses[3], 429, "1/s with a burst of 3 for an anonymous client");
    assert_eq!(keyed.status, 200, "a key has its own, higher limit");
    assert_eq!(keyed.json(), serde_json::json!({"object": "ratesim.response", "endpoint": "models.list"}));
    assert_eq!(keyed.header("x-ratelimit-limit"), Some("9"));
    assert_eq!((log[0]["key"].as_str(), log[0]["auth"].as_bool()), (Some("127.0.0.1"), Some(false)));
    assert_eq!(log[3]["limit"], "api-unauthenticated");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let dir = scratch("args");
    let bad_keys = write(&dir, "keys.toml", "[[key]]\nkey = \"a\"\nrole = \"admin\"\n");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let runinfra = repo("policies/runinfra.toml");
    let runinfra = runinfra.to_str().unwrap();
    let free = format!("127.0.0.1:{}", free_port());
    for (args, code, why) in [
        (vec!["--policy", "/nonexistent/p.toml"], 1, "cannot read the policy file"),
        (vec!["--policy", runinfra, "--plan", "gold"], 1, "no plan named \"gold\""),
        (vec!["--policy", runinfra, "--route", "GET v1=x"], 1, "--route \"GET v1=x\": path \"v1\""),
        (vec!["--policy", runinfra, "--service-time", "fast"], 1, "--service-time:"),
        (vec!["--policy", runinfra, "--keys", bad_keys.to_str().unwrap()], 1, "keys.toml:3:1"),
        (vec!["--policy", runinfra, "--addr", &busy_addr], 1, "cannot listen on"),
        (vec!["--policy", runinfra, "--grace", "0s"], 1, "--grace: expected a duration above zero"),
        (vec!["--policy", runinfra, "--no-limiter", "--log", "x.jsonl"], 2, "cannot be used with"),
    ] {
        let mut cmd = Command::new(ratesim());
        cmd.arg("serve").args(&args);
        if !args.contains(&"--addr") {
            cmd.args(["--addr", &free]);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    drop(busy);
    // A policy limit on an endpoint no route is named: a warning, not an error.
    let server = Server::start(
        &dir,
        "warn",
        &repo("policies/predictions-api.toml"),
        "default",
        &["--route", "POST /v1/predictions=jobs.create"],
    );
    let (out, _) = server.stop();
    assert!(
        out.contains(
            "warning: limit \"predictions\" applies to endpoint \"predictions.create\", which no route is named"
        ),
        "{out}"
    );
}

#[test]
fn an_nginx_plan_holds_requests_and_its_log_still_replays() {
    let dir = scratch("nginx");
    // nginx `limit_req rate=10r/s burst=5`: excess requests wait in the
    // server, up to five of them; beyond, 503. Four at most in flight.
    let policy = write(
        &dir,
        "nginx.toml",
        "provider = \"T\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"req\"\ndialect = \"nginx\"\nrate = \"10/s\"\nburst = 5\n[[plan.limit]]\nid = \"slots\"\nalgorithm = \"concurrency\"\nmax = 4\n",
    );
    let server = Server::start(&dir, "nginx", &policy, "p", &["--service-time", "20ms"]);
    let port = server.port;
    let clients: Vec<_> = (0..9)
        .map(|i| {
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(i * 5));
                let started = Instant::now();
                (chat(port, Some("k"), "hi", "").status, started.elapsed())
            })
        })
        .collect();
    let answers: Vec<(u16, Duration)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let (out, log) = server.stop();
    let delays: Vec<u64> = log.iter().filter_map(|l| l["delay_ns"].as_u64()).filter(|d| *d > 0).collect();
    assert!(!delays.is_empty(), "some requests were held: {out}");
    for (status, took) in &answers {
        if *status == 200 {
            assert!(*took >= Duration::from_millis(20), "served after the service time: {took:?}");
        }
    }
    let longest = answers.iter().filter(|a| a.0 == 200).map(|a| a.1).max().unwrap();
    assert!(
        longest >= Duration::from_nanos(*delays.iter().max().unwrap()),
        "held for its delay: {longest:?} {delays:?}"
    );
    assert_eq!(schema_lines(&log), replay(&dir, &server_log(&dir, "nginx"), &policy, "p"));
}
