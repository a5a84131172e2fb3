//! A client of the ratesim Redis module: one plan's limits shared by every
//! instance of a service.
//!
//! [`RedisLimiter`] asks `RATESIM.CHECK` (see the `ratesim-redis` crate in
//! this repository) on a pool of connections and hands back the module's
//! [`RedisDecision`]: the same decision and the same rendered headers and
//! body as [`KeyedLimiter`](super::KeyedLimiter) gives in one process,
//! decided on the Redis server's clock for all instances at once.
//!
//! - **Pooling.** Connections come from an `r2d2` pool of
//!   [`RedisLimiterConfig::pool_size`], opened lazily; a connection that
//!   failed is dropped and replaced.
//! - **Timeout.** Connecting, each command and waiting for a pooled
//!   connection are each bounded by [`RedisLimiterConfig::timeout`].
//! - **Fail mode.** When no decision can be had (Redis unreachable, timed
//!   out, or answering an error), [`RedisLimiter::check`] answers as
//!   [`FailMode`] says: admit (`Open`) or refuse with 503 (`Closed`), marks
//!   the decision as a fallback, counts it ([`RedisLimiter::stats`]) and
//!   logs (through the `log` crate) when Redis becomes unreachable and when
//!   it is back, not once per request. After a connection failure it does
//!   not try Redis again for [`RedisLimiterConfig::retry_every`], so an
//!   outage costs each request nothing; then it reconnects by itself.
//! - **Policy.** With [`RedisLimiterConfig::policy_toml`], the limiter loads
//!   the policy into Redis when it is missing (a restarted Redis without
//!   persistence, a fresh server), so a service brings its own policy.
//!
//! ```no_run
//! use ratesim::limiter::{FailMode, RedisLimiter, RedisLimiterConfig};
//! use ratesim::policy::Request;
//!
//! let config = RedisLimiterConfig {
//!     fail_mode: FailMode::Open,
//!     policy_toml: Some(std::fs::read_to_string("policies/runinfra.toml").unwrap()),
//!     ..RedisLimiterConfig::default()
//! };
//! let limiter = RedisLimiter::new("redis://127.0.0.1:6379/", "runinfra", "pro", config).unwrap();
//! let decision = limiter.check(&Request::new("key-123"));
//! let response = decision.response(); // status, headers, body: as KeyedLimiter renders them
//! if let Some(ticket) = &decision.ticket {
//!     // ... serve the request, then release its permits / settle its budgets:
//!     limiter.complete(&Request::new("key-123"), ticket).unwrap();
//! }
//! # let _ = response;
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::{ConnectionLike, ErrorKind, RedisError, Value};

use crate::policy::{Rendered, Request};
use crate::time::Nanos;

/// What [`RedisLimiter::check`] answers when it cannot get a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Admit the request (availability first: an outage lifts the limits).
    Open,
    /// Refuse it with 503 Service Unavailable and `Retry-After` (limits
    /// first: an outage stops the traffic).
    Closed,
}

/// How a [`RedisLimiter`] talks to Redis.
#[derive(Clone, Debug)]
pub struct RedisLimiterConfig {
    /// Bound on connecting, on each command, and on waiting for a pooled
    /// connection (default 50 ms).
    pub timeout: Duration,
    /// Most connections open at once (default 16).
    pub pool_size: u32,
    /// The answer when no decision can be had (default [`FailMode::Open`]).
    pub fail_mode: FailMode,
    /// After a connection failure, answer by the fail mode without trying
    /// Redis for this long (default 250 ms).
    pub retry_every: Duration,
    /// The policy's TOML, loaded into Redis under the limiter's policy name
    /// at start and whenever Redis no longer has it (default: none; the
    /// policy must then be loaded by other means).
    pub policy_toml: Option<String>,
}

impl Default for RedisLimiterConfig {
    fn default() -> Self {
        RedisLimiterConfig {
            timeout: Duration::from_millis(50),
            pool_size: 16,
            fail_mode: FailMode::Open,
            retry_every: Duration::from_millis(250),
            policy_toml: None,
        }
    }
}

/// The module's answer to one request (see `RATESIM.CHECK` in the
/// `ratesim-redis` crate), or the fail mode's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisDecision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// 200, or the binding limit's status (503 for a closed fallback).
    pub status: u16,
    /// The binding limit's id, for a denial.
    pub limit: Option<String>,
    /// Remaining units of the binding limit (denial) or of the limit the
    /// headers report (admission).
    pub remaining: Option<u64>,
    /// That limit's reset instant, nanoseconds since the Unix epoch.
    pub reset_ns: Option<Nanos>,
    /// For a denial, the exact wait until the same request would be admitted.
    pub retry_after_ns: Option<Nanos>,
    /// The rendered headers, in order.
    pub headers: Vec<(String, String)>,
    /// The rendered JSON body of a denial.
    pub body: Option<String>,
    /// The completion ticket, when permits or budgets await completion.
    pub ticket: Option<String>,
    /// For an admission, how long to hold the request before serving it
    /// (nginx `limit_req` delays); 0 otherwise.
    pub delay_ns: Nanos,
    /// `Some(why)` when this is the fail mode's answer, not Redis's.
    pub fallback: Option<String>,
}

impl RedisDecision {
    /// Reads a `RATESIM.CHECK` reply.
    pub fn from_reply(v: &Value) -> Result<RedisDecision, String> {
        let Value::Array(items) = v else { return Err(format!("expected an array of 10, got {v:?}")) };
        let [allowed, status, limit, remaining, reset, retry, headers, body, ticket, delay] = &items[..] else {
            return Err(format!("expected an array of 10, got {} items", items.len()));
        };
        let int = |v: &Value, what: &str| match v {
            Value::Int(i) if *i >= 0 => Ok(*i as u64),
            other => Err(format!("{what}: expected a non-negative integer, got {other:?}")),
        };
        let opt_int = |v: &Value, what: &str| match v {
            Value::Nil => Ok(None),
            other => int(other, what).map(Some),
        };
        let text = |v: &Value, what: &str| match v {
            Value::BulkString(b) => String::from_utf8(b.clone()).map_err(|_| format!("{what}: not UTF-8")),
            other => Err(format!("{what}: expected a string, got {other:?}")),
        };
        let opt_text = |v: &Value, what: &str| match v {
            Value::Nil => Ok(None),
            other => text(other, what).map(Some),
        };
        let Value::Array(flat) = headers else { return Err(format!("headers: expected an array, got {headers:?}")) };
        if flat.len() % 2 != 0 {
            return Err("headers: expected name, value pairs".into());
        }
        let headers = flat
            .chunks(2)
            .map(|p| Ok((text(&p[0], "header name")?, text(&p[1], "header value")?)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(RedisDecision {
            allowed: int(allowed, "allowed")? == 1,
            status: u16::try_from(int(status, "status")?).map_err(|_| "status: out of range".to_string())?,
            limit: opt_text(limit, "limit")?,
            remaining: opt_int(remaining, "remaining")?,
            reset_ns: opt_int(reset, "reset")?,
            retry_after_ns: opt_int(retry, "retry after")?,
            headers,
            body: opt_text(body, "body")?,
            ticket: opt_text(ticket, "ticket")?,
            delay_ns: int(delay, "delay")?,
            fallback: None,
        })
    }

    /// The HTTP answer to send: status, headers, body.
    pub fn response(&self) -> Rendered {
        Rendered { status: self.status, headers: self.headers.clone(), body: self.body.clone() }
    }

    /// The fail mode's answer.
    fn fallback(mode: FailMode, retry_every: Duration, why: String) -> RedisDecision {
        let (allowed, status, headers, body) = match mode {
            FailMode::Open => (true, 200, Vec::new(), None),
            FailMode::Closed => (
                false,
                503,
                vec![("Retry-After".to_string(), retry_every.as_secs().max(1).to_string())],
                Some(r#"{"error":{"code":"RATE_LIMITER_UNAVAILABLE","message":"Rate limiter unavailable","status":503}}"#.to_string()),
            ),
        };
        RedisDecision {
            allowed,
            status,
            limit: None,
            remaining: None,
            reset_ns: None,
            retry_after_ns: None,
            headers,
            body,
            ticket: None,
            delay_ns: 0,
            fallback: Some(why),
        }
    }
}

/// Counters of a [`RedisLimiter`] since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedisLimiterStats {
    /// Decisions Redis made.
    pub decided: u64,
    /// Commands that failed (connection, timeout or error reply).
    pub errors: u64,
    /// Requests admitted by the open fail mode.
    pub failed_open: u64,
    /// Requests refused by the closed fail mode.
    pub failed_closed: u64,
    /// Times the policy was loaded into Redis.
    pub policy_loads: u64,
}

/// Opens pooled connections with the limiter's timeout.
struct Connector {
    client: ::redis::Client,
    timeout: Duration,
}

impl r2d2::ManageConnection for Connector {
    type Connection = ::redis::Connection;
    type Error = RedisError;

    fn connect(&self) -> Result<::redis::Connection, RedisError> {
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut ::redis::Connection) -> Result<(), RedisError> {
        ::redis::cmd("PING").query(conn)
    }

    fn has_broken(&self, conn: &mut ::redis::Connection) -> bool {
        !conn.is_open()
    }
}

/// Why a command got no answer.
#[derive(Debug)]
pub enum RedisLimiterError {
    /// No connection: Redis unreachable or the pool exhausted for the timeout.
    Connection(String),
    /// The command failed: an I/O error or a timeout.
    Io(RedisError),
    /// Redis answered with an error (e.g. an unknown policy or plan).
    Reply(RedisError),
    /// The reply was not what the module answers (a wrong module version?).
    Malformed(String),
}

impl std::fmt::Display for RedisLimiterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisLimiterError::Connection(e) => write!(f, "no connection to Redis: {e}"),
            RedisLimiterError::Io(e) => write!(f, "Redis did not answer: {e}"),
            RedisLimiterError::Reply(e) => write!(f, "Redis answered an error: {e}"),
            RedisLimiterError::Malformed(e) => {
                write!(f, "unexpected reply from Redis (is the ratesim module loaded?): {e}")
            }
        }
    }
}

impl std::error::Error for RedisLimiterError {}

impl RedisLimiterError {
    /// Whether the connection failed (rather than the command).
    fn is_connection(&self) -> bool {
        matches!(self, RedisLimiterError::Connection(_) | RedisLimiterError::Io(_))
    }
}

/// One plan of a policy, enforced by the ratesim module in Redis for every
/// process that asks. Thread-safe; share one per process.
pub struct RedisLimiter {
    pool: r2d2::Pool<Connector>,
    url: String,
    policy: String,
    plan: String,
    config: RedisLimiterConfig,
    started: Instant,
    /// No Redis until this many ns after `started` (after a failure).
    quiet_until: AtomicU64,
    /// Whether the last attempt failed (for logging transitions).
    failing: AtomicBool,
    decided: AtomicU64,
    errors: AtomicU64,
    failed_open: AtomicU64,
    failed_closed: AtomicU64,
    policy_loads: AtomicU64,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("url", &self.url)
            .field("policy", &self.policy)
            .field("plan", &self.plan)
            .field("stats", &self.stats())
            .finish()
    }
}

impl RedisLimiter {
    /// A limiter for plan `plan` of the policy loaded in Redis as `policy`,
    /// at `url` (`redis://host:port/db`). Connects lazily: a Redis that is
    /// down now is not an error (requests get the fail mode's answer until
    /// it is up). With `config.policy_toml`, the policy is parsed here (its
    /// errors are returned, located) and loaded if Redis is reachable.
    pub fn new(url: &str, policy: &str, plan: &str, config: RedisLimiterConfig) -> Result<RedisLimiter, String> {
        let client = ::redis::Client::open(url).map_err(|e| format!("bad Redis URL {url:?}: {e}"))?;
        if let Some(text) = &config.policy_toml {
            let parsed = crate::policy::parse(text, policy).map_err(|e| e.to_string())?;
            if parsed.plan(plan).is_none() {
                return Err(format!(
                    "no plan named {plan:?} in policy {policy:?}; its plans are: {}",
                    parsed.plan_names().join(", ")
                ));
            }
        }
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(config.timeout)
            .test_on_check_out(false)
            .build_unchecked(Connector { client, timeout: config.timeout });
        let limiter = RedisLimiter {
            pool,
            url: url.to_string(),
            policy: policy.to_string(),
            plan: plan.to_string(),
            config,
            started: Instant::now(),
            quiet_until: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            decided: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            failed_open: AtomicU64::new(0),
            failed_closed: AtomicU64::new(0),
            policy_loads: AtomicU64::new(0),
        };
        if limiter.config.policy_toml.is_some() {
            // Best effort: if Redis is down, the first check loads it later.
            let _ = limiter.load_policy();
        }
        Ok(limiter)
    }

    /// The counters.
    pub fn stats(&self) -> RedisLimiterStats {
        RedisLimiterStats {
            decided: self.decided.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            failed_open: self.failed_open.load(Ordering::Relaxed),
            failed_closed: self.failed_closed.load(Ordering::Relaxed),
            policy_loads: self.policy_loads.load(Ordering::Relaxed),
        }
    }

    /// Loads [`RedisLimiterConfig::policy_toml`] into Redis now.
    pub fn load_policy(&self) -> Result<(), RedisLimiterError> {
        let Some(text) = &self.config.policy_toml else { return Ok(()) };
        let mut cmd = ::redis::cmd("RATESIM.POLICY.LOAD");
        cmd.arg(&self.policy).arg(text);
        let v = self.query(&cmd)?;
        self.policy_loads.fetch_add(1, Ordering::Relaxed);
        match v {
            Value::SimpleString(_) | Value::Okay => Ok(()),
            other => Err(RedisLimiterError::Malformed(format!("{other:?}"))),
        }
    }

    fn query(&self, cmd: &::redis::Cmd) -> Result<Value, RedisLimiterError> {
        let mut conn = self.pool.get().map_err(|e| RedisLimiterError::Connection(e.to_string()))?;
        cmd.query::<Value>(&mut *conn).map_err(|e| match e.kind() {
            ErrorKind::IoError => RedisLimiterError::Io(e),
            _ if e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() => RedisLimiterError::Io(e),
            _ => RedisLimiterError::Reply(e),
        })
    }

    /// Runs `cmd`; if Redis says the policy is not loaded and the limiter
    /// has its text, loads it and runs `cmd` again.
    fn query_with_policy(&self, cmd: &::redis::Cmd) -> Result<Value, RedisLimiterError> {
        match self.query(cmd) {
            Err(RedisLimiterError::Reply(e))
                if self.config.policy_toml.is_some() && e.detail().is_some_and(|d| d.contains("no policy named")) =>
            {
                self.load_policy()?;
                self.query(cmd)
            }
            other => other,
        }
    }

    /// The options describing `req` (and `AT`).
    fn request_options(cmd: &mut ::redis::Cmd, req: &Request<'_>, at: Option<Nanos>) {
        if let Some(u) = req.user {
            cmd.arg("USER").arg(u);
        }
        if let Some(w) = req.workspace {
            cmd.arg("WORKSPACE").arg(w);
        }
        if !req.endpoint.is_empty() {
            cmd.arg("ENDPOINT").arg(req.endpoint);
        }
        if !req.authenticated {
            cmd.arg("AUTH").arg(0);
        }
        if req.tokens > 0 {
            cmd.arg("TOKENS").arg(req.tokens);
        }
        if req.money > 0 {
            cmd.arg("COST").arg(req.money);
        }
        if let Some(at) = at {
            cmd.arg("AT").arg(at);
        }
    }

    /// Decides `req` on Redis's clock (or at `at`), without the fail mode:
    /// the module's decision or why there is none.
    pub fn try_check(&self, req: &Request<'_>, at: Option<Nanos>) -> Result<RedisDecision, RedisLimiterError> {
        let mut cmd = ::redis::cmd("RATESIM.CHECK");
        cmd.arg(req.key).arg(&self.policy).arg(&self.plan);
        Self::request_options(&mut cmd, req, at);
        let v = self.query_with_policy(&cmd)?;
        RedisDecision::from_reply(&v).map_err(RedisLimiterError::Malformed)
    }

    /// Decides `req` on Redis's clock. Never fails: without a decision from
    /// Redis, answers as the fail mode says (see the module docs).
    pub fn check(&self, req: &Request<'_>) -> RedisDecision {
        let elapsed = self.started.elapsed().as_nanos() as u64;
        if elapsed < self.quiet_until.load(Ordering::Relaxed) {
            return self.fall_back("Redis was unreachable moments ago".into());
        }
        match self.try_check(req, None) {
            Ok(d) => {
                self.decided.fetch_add(1, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::Relaxed) {
                    log::info!("ratesim: Redis at {} answers again", self.url);
                }
                d
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mode = match self.config.fail_mode {
                    FailMode::Open => "admitting",
                    FailMode::Closed => "refusing",
                };
                if e.is_connection() {
                    let quiet = elapsed + self.config.retry_every.as_nanos() as u64;
                    self.quiet_until.store(quiet, Ordering::Relaxed);
                    if !self.failing.swap(true, Ordering::Relaxed) {
                        log::warn!("ratesim: {e} (at {}); {mode} requests until it answers", self.url);
                    }
                } else {
                    log::warn!("ratesim: {e}; {mode} the request");
                }
                self.fall_back(e.to_string())
            }
        }
    }

    fn fall_back(&self, why: String) -> RedisDecision {
        match self.config.fail_mode {
            FailMode::Open => self.failed_open.fetch_add(1, Ordering::Relaxed),
            FailMode::Closed => self.failed_closed.fetch_add(1, Ordering::Relaxed),
        };
        RedisDecision::fallback(self.config.fail_mode, self.config.retry_every, why)
    }

    /// Completes an admitted request (its decision's `ticket`), on Redis's
    /// clock or at `at`: releases its permits and settles its budgets with
    /// `req`'s `tokens` and `money` (the actual amounts). Returns the budget
    /// overshoot. A failure here leaves permits held until their lease ends
    /// (give concurrency limits a `lease` when completions may be lost).
    pub fn complete_at(&self, req: &Request<'_>, ticket: &str, at: Option<Nanos>) -> Result<u64, RedisLimiterError> {
        let mut cmd = ::redis::cmd("RATESIM.COMPLETE");
        cmd.arg(req.key).arg(&self.policy).arg(&self.plan).arg(ticket);
        Self::request_options(&mut cmd, req, at);
        match self.query_with_policy(&cmd) {
            Ok(Value::Int(n)) if n >= 0 => Ok(n as u64),
            Ok(other) => Err(RedisLimiterError::Malformed(format!("{other:?}"))),
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// [`RedisLimiter::complete_at`] on Redis's clock.
    pub fn complete(&self, req: &Request<'_>, ticket: &str) -> Result<u64, RedisLimiterError> {
        self.complete_at(req, ticket, None)
    }
}
