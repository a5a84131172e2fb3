//! `ratesim serve` in tests: started on a free loopback port, stopped by
//! its pid with a signal, its decision log read back; and a minimal
//! HTTP/1.1 client over a raw socket, so tests can also send what no proper
//! client would (malformed headers, slow bodies).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::peer::{free_port, Peer};

/// A running `ratesim serve`.
pub struct Server {
    /// The process.
    pub peer: Peer,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its decision log.
    pub log: PathBuf,
    /// Its stdout and stderr.
    pub output: PathBuf,
}

/// The ratesim binary under test.
pub fn ratesim() -> &'static str {
    env!("CARGO_BIN_EXE_ratesim")
}

impl Server {
    /// Starts `ratesim serve --policy POLICY --plan PLAN --log DIR/NAME.jsonl
    /// ARGS...` on a free port (without `--log` if ARGS has `--no-limiter`).
    pub fn start(dir: &Path, name: &str, policy: &Path, plan: &str, args: &[&str]) -> Server {
        let port = free_port();
        let log = dir.join(format!("{name}.jsonl"));
        let output = dir.join(format!("{name}.out"));
        let mut cmd = Command::new(ratesim());
        cmd.args(["serve", "--policy"]).arg(policy).args(["--plan", plan, "--addr", &format!("127.0.0.1:{port}")]);
        if !args.contains(&"--no-limiter") {
            cmd.arg("--log").arg(&log);
        }
        cmd.args(args);
        let mut peer = Peer::spawn(&format!("ratesim serve ({name})"), &mut cmd, Some(&output));
        peer.wait_for_port(port, Duration::from_secs(10));
        Server { peer, port, log, output }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it with `signal` (SIGTERM, SIGINT) and returns what it printed
    /// and its log's lines. Panics if it does not exit 0 within 20 s.
    pub fn stop_with(mut self, signal: i32) -> (String, Vec<serde_json::Value>) {
        let status = self.peer.signal_and_wait(signal, Duration::from_secs(20));
        let output = std::fs::read_to_string(&self.output).unwrap_or_default();
        assert!(status.is_some_and(|s| s.success()), "{} did not stop cleanly ({status:?}):\n{output}", self.peer.name);
        let log = if self.log.exists() { read_log(&self.log) } else { Vec::new() };
        (output, log)
    }

    /// [`Server::stop_with`] SIGTERM.
    pub fn stop(self) -> (String, Vec<serde_json::Value>) {
        self.stop_with(libc::SIGTERM)
    }
}

/// The lines of a decision log, parsed.
pub fn read_log(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}"))).collect()
}

/// An HTTP response.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: String,
}

impl Reply {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body {:?}: {e}", self.body))
    }
}

/// Sends `raw` (a whole request, which should say `Connection: close`) and
/// reads the response to the end.
pub fn send_raw(port: u16, raw: &[u8]) -> Reply {
    let mut s = connect(port);
    s.write_all(raw).expect("send request");
    read_reply(&mut s)
}

/// A connection to 127.0.0.1:`port` with 30 s read and write timeouts.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Reads a whole response (the server closes after it).
pub fn read_reply(s: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    parse_reply(&buf)
}

/// Parses a response: status line, headers, body (chunked or not).
pub fn parse_reply(buf: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Reply { status, headers, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// A request `METHOD path` with `key` (if any) and JSON `body` (if any).
pub fn request(method: &str, path: &str, key: Option<&str>, body: Option<&str>) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(k) = key {
        r.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    if let Some(b) = body {
        r.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", b.len()));
    } else {
        r.push_str("\r\n");
    }
    r.into_bytes()
}

/// A chat completion request body with one user message.
pub fn chat_body(content: &str, extra: &str) -> String {
    format!(
        r#"{{"model":"test-model","messages":[{{"role":"user","content":{}}}]{extra}}}"#,
        serde_json::json!(content)
    )
}

/// `POST /v1/chat/completions` as `key`.
pub fn chat(port: u16, key: Option<&str>, content: &str, extra: &str) -> Reply {
    send_raw(port, &request("POST", "/v1/chat/completions", key, Some(&chat_body(content, extra))))
}

/// The decisions-schema fields of a log line, as `ratesim run --decisions`
/// writes them (same order).
pub const SCHEMA: &[&str] = &[
    "t_ns",
    "request",
    "attempt",
    "kind",
    "key",
    "endpoint",
    "allowed",
    "status",
    "limit",
    "remaining",
    "reset_ns",
    "retry_after_ns",
];

/// The log's lines in arrival order, cut to the decisions schema (with
/// `delay_ns` where the plan delays, and the request facts where they are
/// not the default) and written as `ratesim run --decisions` writes them.
pub fn schema_lines(log: &[serde_json::Value]) -> Vec<String> {
    let mut lines: Vec<&serde_json::Value> = log.iter().collect();
    lines.sort_by_key(|l| l["t_ns"].as_u64().expect("t_ns"));
    lines
        .iter()
        .map(|l| {
            let mut fields: Vec<String> = SCHEMA.iter().map(|k| format!("\"{k}\":{}", l[*k])).collect();
            // Only plans that delay admissions (nginx) have this field.
            if let Some(delay) = l.get("delay_ns") {
                fields.push(format!("\"delay_ns\":{delay}"));
            }
            // The request facts, as `run --decisions` writes them: only where
            // not the default, the service time without the plan's delay.
            for k in ["user", "workspace"] {
                if l[k].is_string() {
                    fields.push(format!("\"{k}\":{}", l[k]));
                }
            }
            if l["auth"] == false {
                fields.push("\"auth\":false".to_string());
            }
            let delay = l.get("delay_ns").and_then(serde_json::Value::as_u64).unwrap_or(0);
            let service = l["duration_ns"].as_u64().expect("duration_ns").saturating_sub(delay);
            for (k, v) in
                [("tokens", l["tokens"].as_u64()), ("cost", l["cost"].as_u64()), ("duration_ns", Some(service))]
            {
                if let Some(v) = v.filter(|v| *v > 0) {
                    fields.push(format!("\"{k}\":{v}"));
                }
            }
            format!("{{{}}}", fields.join(","))
        })
        .collect()
}

/// Replays `log` with `ratesim trace from-log` and `ratesim run --client
/// none` against `policy`/`plan`; returns the decisions file's lines.
pub fn replay(dir: &Path, log: &Path, policy: &Path, plan: &str) -> Vec<String> {
    let trace = dir.join("replay-trace.jsonl");
    let decisions = dir.join("replay-decisions.jsonl");
    let out = Command::new(ratesim()).args(["trace", "from-log"]).arg(log).arg("-o").arg(&trace).output().unwrap();
    assert!(out.status.success(), "from-log: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(ratesim())
        .args(["run", "--quiet", "--client", "none", "--policy"])
        .arg(policy)
        .args(["--plan", plan, "--trace"])
        .arg(&trace)
        .arg("--decisions")
        .arg(&decisions)
        .output()
        .unwrap();
    assert!(out.status.success(), "run: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(&decisions).unwrap().lines().map(str::to_string).collect()
}

/// A fresh directory under the target dir for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
