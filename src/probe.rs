//! `ratesim probe`: a live limiter checked against its plan.
//!
//! The probe sends a trace's requests to an HTTP endpoint at their real
//! times (offset `t` is sent `t / speed` after the probe starts), with the
//! trace's identities in headers, records each response's status and
//! rate-limit headers (named as the policy's `[response]` names them) with
//! the instant the request was sent and the instant the answer arrived, and
//! writes that as a decision log ([`crate::verify::log`]). `verify` then
//! replays it against the plan.
//!
//! ## Bounds and targets
//!
//! The trace is read and checked in full before anything is sent, and cut
//! at [`Probe::max_requests`] rows and [`Probe::max_duration`] of trace
//! time. Only `http://` URLs are sent to, and only to a loopback host
//! (`127.0.0.0/8`, `::1`, `localhost`) unless the caller allows a remote
//! host explicitly; redirects are not followed and proxies not used, so
//! nothing goes anywhere but the URL given.
//!
//! ## Instants
//!
//! A request is logged at the instant it was handed to the connection
//! (`t_ns`, ns since the probe started) and its answer at `received_ns`;
//! the limiter decided somewhere in between. Requests go out on up to
//! [`Probe::connections`] connections in parallel, each key always on the
//! same one, so one key's requests reach the limiter in trace order, each
//! after the previous one's answer (requests of *different* keys that are
//! due at once may reach it in another order: for limits shared between
//! keys — user, workspace or global scope — use one connection). A request
//! sent late (its connection busy) is logged at its real instant. So
//! `verify` uses, unless told otherwise, the longest round trip as its
//! tolerance: the probe cannot tell the limiter's instant more precisely.
//! Offsets start at the wall-clock instant the probe started, which
//! `verify` is given as its start (aligned windows and calendar budgets are
//! the server's wall clock's).

use std::hash::BuildHasher;
use std::io::Write;
use std::net::IpAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::policy::{ResetFormat, ResponseStyle};
use crate::time::{format_decimal_seconds, Nanos, SECOND};
use crate::trace::{TraceRow, TraceSource, TraceTime};

/// Most rows a probe may send.
pub const MAX_REQUESTS: usize = 100_000;

/// Longest trace time a probe may cover.
pub const MAX_DURATION: Nanos = 3600 * SECOND;

/// What to probe and how.
#[derive(Clone, Debug)]
pub struct Probe {
    /// `http://host:port/path`; `{endpoint}` in it is replaced by the
    /// row's endpoint.
    pub url: String,
    /// HTTP method.
    pub method: String,
    /// Headers sent for authenticated rows: name and a value template with
    /// `{key}`, `{user}`, `{workspace}` (`Authorization: Bearer {key}` by
    /// default).
    pub identity: Vec<(String, String)>,
    /// Trace time per real time: 2 sends twice as fast.
    pub speed: f64,
    /// Rows sent at most.
    pub max_requests: usize,
    /// Trace time covered at most.
    pub max_duration: Nanos,
    /// Parallel connections.
    pub connections: usize,
    /// Whether a host that is not loopback may be probed.
    pub allow_remote: bool,
    /// Timeout of one request.
    pub timeout: Duration,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            url: String::new(),
            method: "GET".into(),
            identity: vec![("Authorization".into(), "Bearer {key}".into())],
            speed: 1.0,
            max_requests: 1000,
            max_duration: 60 * SECOND,
            connections: 32,
            allow_remote: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// One request sent and its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The trace row sent.
    pub row: TraceRow,
    /// When it was due, ns since the probe started.
    pub due: Nanos,
    /// When it was sent.
    pub sent: Nanos,
    /// When the answer arrived.
    pub received: Nanos,
    /// The HTTP status.
    pub status: u16,
    /// The rate-limit headers (absent: `None`).
    pub remaining: Option<String>,
    /// The reset header.
    pub reset: Option<String>,
    /// The retry header.
    pub retry_after: Option<String>,
}

/// What a probe did.
#[derive(Clone, Debug)]
pub struct Probed {
    /// Every exchange, in order of sending.
    pub exchanges: Vec<Exchange>,
    /// The wall-clock instant the probe started (ns since the Unix epoch).
    pub started: Nanos,
    /// Rows of the trace left out by the bounds.
    pub left_out: u64,
    /// The latest a request went out after it was due.
    pub max_late: Nanos,
    /// The longest round trip.
    pub max_round_trip: Nanos,
}

/// The host of an `http://` URL, checked; the error says what is wrong.
pub fn check_target(url: &str, allow_remote: bool) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("expected an http:// URL (the probe speaks plain HTTP to a local limiter), found {url:?}")
    })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.is_empty() {
        return Err(format!("no host in {url:?}"));
    }
    let loopback = host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback || allow_remote {
        Ok(())
    } else {
        Err(format!(
            "{host} is not a loopback address; the probe sends only to 127.0.0.0/8, ::1 or localhost \
             unless --allow-remote is given for a host you run"
        ))
    }
}

/// Reads the rows to send from `trace`, within the bounds: offsets from the
/// trace start in ns (RFC 3339 traces start at their first row). Errors are
/// the trace's own.
pub fn rows(
    trace: &mut dyn TraceSource,
    probe: &Probe,
) -> Result<(Vec<(Nanos, TraceRow)>, u64), crate::trace::TraceError> {
    let mut out = Vec::new();
    let mut left_out = 0;
    let mut first_absolute = None;
    let mut row = TraceRow::default();
    while trace.next_row(&mut row)? {
        let t = match row.t {
            TraceTime::Offset(o) => o,
            TraceTime::Absolute(a) => a - *first_absolute.get_or_insert(a),
        };
        if out.len() >= probe.max_requests || t > probe.max_duration {
            left_out += 1;
            continue;
        }
        out.push((t, row.clone()));
    }
    Ok((out, left_out))
}

fn fill(template: &str, row: &TraceRow) -> String {
    let or_key = |s: &str| if s.is_empty() { row.key.clone() } else { s.to_string() };
    template
        .replace("{key}", &row.key)
        .replace("{user}", &or_key(&row.user))
        .replace("{workspace}", &or_key(&row.workspace))
}

/// The methods the probe sends: those without a body, and those with an
/// empty one.
pub const METHODS: [&str; 6] = ["GET", "HEAD", "DELETE", "POST", "PUT", "PATCH"];

/// One request, its answer whatever its status.
fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(String, String)],
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    macro_rules! with_headers {
        ($builder:expr) => {{
            let mut b = $builder;
            for (name, value) in headers {
                b = b.header(name.as_str(), value.as_str());
            }
            b
        }};
    }
    match method {
        "HEAD" => with_headers!(agent.head(url)).call(),
        "DELETE" => with_headers!(agent.delete(url)).call(),
        "POST" => with_headers!(agent.post(url)).send_empty(),
        "PUT" => with_headers!(agent.put(url)).send_empty(),
        "PATCH" => with_headers!(agent.patch(url)).send_empty(),
        _ => with_headers!(agent.get(url)).call(),
    }
}

/// Sends `rows` (offsets from the trace start) to the probe's URL at their
/// times. Fails on the first request that gets no HTTP answer.
pub fn run(
    probe: &Probe,
    style: &ResponseStyle,
    rows: Vec<(Nanos, TraceRow)>,
    left_out: u64,
) -> Result<Probed, String> {
    check_target(&probe.url, probe.allow_remote)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(probe.timeout))
        .build()
        .into();
    let started_wall = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_nanos() as Nanos;
    let origin = Instant::now();
    let since = move |i: Instant| i.duration_since(origin).as_nanos() as Nanos;
    let results: Arc<Mutex<Vec<Result<Exchange, String>>>> = Arc::new(Mutex::new(Vec::with_capacity(rows.len())));
    let headers = [style.remaining_header.clone(), style.reset_header.clone(), style.retry_after_header.clone()];
    // One queue per connection; a key always goes to the same one, so its
    // requests reach the limiter one after another, in trace order.
    let mut jobs = Vec::new();
    let workers: Vec<_> = (0..probe.connections.max(1))
        .map(|_| {
            let (results, agent, headers) = (results.clone(), agent.clone(), headers.clone());
            let (tx, queue) = mpsc::channel::<(Nanos, TraceRow)>();
            jobs.push(tx);
            let probe = probe.clone();
            std::thread::spawn(move || loop {
                let Ok((due, row)) = queue.recv() else { return };
                let url = probe.url.replace("{endpoint}", &row.endpoint);
                let identity: Vec<(String, String)> = if row.auth {
                    probe.identity.iter().map(|(name, value)| (name.clone(), fill(value, &row))).collect()
                } else {
                    Vec::new()
                };
                let sent = since(Instant::now());
                let answer =
                    send(&agent, &probe.method, &url, &identity).map_err(|e| format!("no answer from {url}: {e}"));
                let received = since(Instant::now());
                let exchange = answer.map(|mut response| {
                    // Read the body so the connection can be reused.
                    let _ = response.body_mut().read_to_vec();
                    let header =
                        |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
                    Exchange {
                        status: response.status().as_u16(),
                        remaining: header(&headers[0]),
                        reset: header(&headers[1]),
                        retry_after: header(&headers[2]),
                        row,
                        due,
                        sent,
                        received,
                    }
                });
                results.lock().expect("results lock").push(exchange);
            })
        })
        .collect();
    for (t, row) in rows {
        let due = (t as f64 / probe.speed) as Nanos;
        let now = since(Instant::now());
        if due > now {
            std::thread::sleep(Duration::from_nanos(due - now));
        }
        let connection = foldhash::fast::FixedState::default().hash_one(row.key.as_str()) as usize % jobs.len();
        if jobs[connection].send((due, row)).is_err() {
            break;
        }
    }
    drop(jobs);
    for w in workers {
        let _ = w.join();
    }
    let results = std::mem::take(&mut *results.lock().expect("results lock"));
    let mut exchanges = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    exchanges.sort_by_key(|e| (e.sent, e.due));
    let max_late = exchanges.iter().map(|e| e.sent.saturating_sub(e.due)).max().unwrap_or(0);
    let max_round_trip = exchanges.iter().map(|e| e.received - e.sent).max().unwrap_or(0);
    Ok(Probed { exchanges, started: started_wall, left_out, max_late, max_round_trip })
}

/// Writes `probed` as a decision log (JSON Lines, the columns of
/// [`crate::verify::log`]): the request's facts, the status, the headers the
/// policy names (`remaining`; `reset` as a Unix timestamp or `reset_after`
/// in seconds, as the policy formats it; `retry_after`), `received_ns`.
/// Header values that are not numbers are left out.
pub fn write_log(out: &mut impl Write, probed: &Probed, style: &ResponseStyle) -> std::io::Result<()> {
    for e in &probed.exchanges {
        let r = &e.row;
        let mut line = serde_json::Map::new();
        line.insert("t_ns".into(), e.sent.into());
        line.insert("key".into(), r.key.as_str().into());
        for (name, v) in [("user", &r.user), ("workspace", &r.workspace), ("endpoint", &r.endpoint)] {
            if !v.is_empty() {
                line.insert(name.into(), v.as_str().into());
            }
        }
        if !r.auth {
            line.insert("auth".into(), false.into());
        }
        for (name, v) in [("tokens", r.tokens), ("cost", r.cost)] {
            if v > 0 {
                line.insert(name.into(), v.into());
            }
        }
        if r.duration > 0 {
            line.insert("duration".into(), format_decimal_seconds(r.duration).into());
        }
        line.insert("status".into(), e.status.into());
        if let Some(v) = number(&e.remaining) {
            line.insert("remaining".into(), v.into());
        }
        if let Some(v) = number(&e.reset) {
            let column = match style.reset_format {
                ResetFormat::Unix => "reset",
                ResetFormat::Seconds => "reset_after",
            };
            line.insert(column.into(), v.into());
        }
        if let Some(v) = number(&e.retry_after) {
            line.insert("retry_after".into(), v.into());
        }
        line.insert("received_ns".into(), e.received.into());
        writeln!(out, "{}", serde_json::Value::Object(line))?;
    }
    Ok(())
}

/// A header value that is a whole number.
fn number(v: &Option<String>) -> Option<u64> {
    v.as_deref().and_then(|s| s.trim().parse().ok())
}
