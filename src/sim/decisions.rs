//! Per-attempt decision records and where they go: the `--decisions` JSONL
//! schema (one object per attempt, times relative to the trace start).

use std::io::Write;

use crate::policy::{Plan, PlanDecision};
use crate::time::Nanos;

/// Where per-attempt decisions go (`--decisions FILE.jsonl`).
pub trait DecisionSink {
    /// One attempt's decision.
    fn decision(&mut self, d: &DecisionRecord<'_>) -> std::io::Result<()>;

    /// Whether this sink keeps decisions at all (the simulator does not build
    /// records for one that does not).
    fn enabled(&self) -> bool {
        true
    }
}

/// Discards decisions.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDecisions;

impl DecisionSink for NoDecisions {
    fn decision(&mut self, _: &DecisionRecord<'_>) -> std::io::Result<()> {
        Ok(())
    }

    fn enabled(&self) -> bool {
        false
    }
}

/// One attempt's decision, as written to the decisions JSONL.
#[derive(Clone, Copy, Debug)]
pub struct DecisionRecord<'a> {
    /// Nanoseconds since the trace start.
    pub t_ns: Nanos,
    /// 0-based request (data row) number.
    pub request: u64,
    /// 0-based attempt number of the request (polls continue the count).
    pub attempt: u32,
    /// What the attempt is.
    pub kind: AttemptKind,
    /// The API key.
    pub key: &'a str,
    /// The endpoint.
    pub endpoint: &'a str,
    /// Admitted or not.
    pub allowed: bool,
    /// 200 or the denying status.
    pub status: u16,
    /// The denying limit's id.
    pub limit: Option<&'a str>,
    /// Remaining units: of the denying limit for a denial, of the limit the
    /// headers report for an admission (none if no reportable limit applied).
    pub remaining: Option<u64>,
    /// Reset instant of that same limit, nanoseconds since the trace start.
    pub reset_ns: Option<Nanos>,
    /// For a denial: exact wait until the request would be admitted.
    pub retry_after_ns: Option<Nanos>,
    /// For a plan whose limits can delay admissions (nginx `limit_req`):
    /// how long the server held the attempt before serving it (0 if it did
    /// not, or denied). `None` for every other plan, whose records have no
    /// such field.
    pub delay_ns: Option<Nanos>,
    /// The instant of the decision (ns since the Unix epoch), for sinks that
    /// render it (not written to the JSONL).
    pub at: Nanos,
    /// The plan's decision itself, for sinks that render the response the
    /// client saw with [`crate::policy::render`] (not written to the JSONL;
    /// `None` where only the figures are known, as in `ratesim serve`'s
    /// log).
    pub decision: Option<&'a PlanDecision>,
    /// What else the policy looked at (written only where not the default).
    pub facts: RequestFacts<'a>,
}

/// The facts of an attempt beyond its key and endpoint that a policy looks
/// at: written to the decisions file only where they differ from the
/// default, so that the file is a complete record of what the limiter
/// decided on (`ratesim verify` replays it) and traces without such
/// columns give the same lines as before. The names are the trace columns
/// (`duration_ns` in nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    /// The user the row named (`None`: the key is its own user).
    pub user: Option<&'a str>,
    /// The workspace the row named.
    pub workspace: Option<&'a str>,
    /// Whether the request was authenticated (written when `false`).
    pub auth: bool,
    /// Tokens counted (written when above 0).
    pub tokens: u64,
    /// Money counted, minor units (written when above 0).
    pub cost: u64,
    /// Its service time: once admitted (and served, after any server-side
    /// delay), how long it holds its permits and reservations (written
    /// when above 0).
    pub duration_ns: Nanos,
}

impl RequestFacts<'_> {
    /// Nothing beyond the defaults: no user or workspace, authenticated,
    /// no tokens, no money, no service time.
    pub const NONE: RequestFacts<'static> =
        RequestFacts { user: None, workspace: None, auth: true, tokens: 0, cost: 0, duration_ns: 0 };
}

/// The decision fields of a [`DecisionRecord`] (`allowed` through
/// `retry_after_ns`), as the simulator and the emulator (`ratesim serve`)
/// both write them: one definition of what the decisions file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionFigures<'a> {
    /// Admitted or not.
    pub allowed: bool,
    /// 200 or the denying status.
    pub status: u16,
    /// The denying limit's id.
    pub limit: Option<&'a str>,
    /// Remaining units: of the denying limit for a denial, of the limit the
    /// headers report for an admission.
    pub remaining: Option<u64>,
    /// Reset instant of that same limit, nanoseconds since `origin`.
    pub reset_ns: Option<Nanos>,
    /// For a denial: exact wait until the request would be admitted.
    pub retry_after_ns: Option<Nanos>,
    /// For a plan whose limits can delay admissions: how long the server
    /// holds the request before serving it (see [`DecisionRecord::delay_ns`]);
    /// `None` for every other plan.
    pub delay_ns: Option<Nanos>,
}

impl<'a> DecisionFigures<'a> {
    /// The figures of `d`, decided at `now` against `plan`; instants are
    /// written as nanoseconds since `origin` (the trace start).
    pub fn of(plan: &'a Plan, d: &PlanDecision, now: Nanos, origin: Nanos) -> DecisionFigures<'a> {
        // A denial shows the binding limit's own figures; an admission those
        // of the limit the headers report.
        let reported = d.denial.or(d.reported.map(|(_, r)| r));
        DecisionFigures {
            allowed: d.allowed,
            status: d.status,
            limit: d.denied_by.map(|i| plan.limits[i].id.as_str()),
            remaining: reported.map(|r| r.remaining),
            reset_ns: reported.map(|r| r.reset.saturating_sub(origin)),
            retry_after_ns: d.retry.at().map(|t| t - now),
            delay_ns: plan.limits.iter().any(|l| l.engine.can_delay()).then_some(d.delay),
        }
    }
}

/// What an attempt is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptKind {
    /// A request's first attempt.
    First,
    /// A retry after a denial.
    Retry,
    /// A job status poll.
    Poll,
}

/// Writes decisions as JSON lines.
pub struct JsonlDecisions<W: Write>(pub W);

impl<W: Write> DecisionSink for JsonlDecisions<W> {
    fn decision(&mut self, d: &DecisionRecord<'_>) -> std::io::Result<()> {
        let opt = |v: Option<u64>| v.map_or("null".to_string(), |x| x.to_string());
        let kind = match d.kind {
            AttemptKind::First => "first",
            AttemptKind::Retry => "retry",
            AttemptKind::Poll => "poll",
        };
        write!(
            self.0,
            "{{\"t_ns\":{},\"request\":{},\"attempt\":{},\"kind\":\"{kind}\",\"key\":{},\"endpoint\":{},\"allowed\":{},\"status\":{},\"limit\":{},\"remaining\":{},\"reset_ns\":{},\"retry_after_ns\":{}",
            d.t_ns,
            d.request,
            d.attempt,
            serde_json::Value::from(d.key),
            serde_json::Value::from(d.endpoint),
            d.allowed,
            d.status,
            d.limit.map_or("null".to_string(), |l| serde_json::Value::from(l).to_string()),
            opt(d.remaining),
            opt(d.reset_ns),
            opt(d.retry_after_ns),
        )?;
        if let Some(delay) = d.delay_ns {
            write!(self.0, ",\"delay_ns\":{delay}")?;
        }
        let f = &d.facts;
        if let Some(user) = f.user {
            write!(self.0, ",\"user\":{}", serde_json::Value::from(user))?;
        }
        if let Some(workspace) = f.workspace {
            write!(self.0, ",\"workspace\":{}", serde_json::Value::from(workspace))?;
        }
        if !f.auth {
            write!(self.0, ",\"auth\":false")?;
        }
        for (name, v) in [("tokens", f.tokens), ("cost", f.cost), ("duration_ns", f.duration_ns)] {
            if v > 0 {
                write!(self.0, ",\"{name}\":{v}")?;
            }
        }
        writeln!(self.0, "}}")
    }
}

/// Sends each decision to two sinks (e.g. the JSONL file and a chart).
pub struct TeeDecisions<'a>(pub &'a mut dyn DecisionSink, pub &'a mut dyn DecisionSink);

impl DecisionSink for TeeDecisions<'_> {
    fn decision(&mut self, d: &DecisionRecord<'_>) -> std::io::Result<()> {
        if self.0.enabled() {
            self.0.decision(d)?;
        }
        if self.1.enabled() {
            self.1.decision(d)?;
        }
        Ok(())
    }

    fn enabled(&self) -> bool {
        self.0.enabled() || self.1.enabled()
    }
}
