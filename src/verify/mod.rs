//! `ratesim verify`: ratesim's exact model as an oracle for other people's
//! limiters.
//!
//! A limiter (an Envoy or nginx config, a Redis script, a gateway plugin, a
//! hand-written middleware) writes down what it decided for each request: a
//! **decision log** ([`log`]). `verify` replays the log's arrivals through
//! the plan — through [`Plan::check`], the one engine the simulator and the
//! production limiter run — and reports two things:
//!
//! 1. **Exact agreement.** For every row, the policy's decision for that
//!    request at that instant, given the same arrivals before it, is
//!    compared with the limiter's. The replay is open loop: the model
//!    follows its own decisions (it is the oracle of what *should* have
//!    happened to these arrivals), so a limiter that once admits too much
//!    usually also shows a refusal the model would not have made a little
//!    later, until the two are in step again. Disagreements are classified
//!    ([`Class`]): over-admission (the limiter admitted, the policy denies),
//!    under-admission (the reverse), wrong status (or denying limit), wrong
//!    remaining, wrong retry-after, wrong reset, wrong delay (nginx
//!    `limit_req` holds some admissions before serving them). The report
//!    gives the counts,
//!    the first example of each class, and the first divergence with the
//!    requests around it.
//! 2. **Guarantees** that hold whatever the implementation's internal
//!    choices ([`guarantees`]): the worst window of each limit (e.g.
//!    "admitted 61 in (3.2 s, 63.2 s] for at most 60 in any rolling 1min"),
//!    computed from the admissions in the log alone; and the longest run of
//!    wrongful refusals of one key.
//!
//! ## Dialects
//!
//! A limiter that implements a plan the way a known implementation does
//! (Python `limits`, Redis `INCR` + `EXPIRE`, Envoy's local rate limit,
//! nginx `limit_req`) is verified against [`in_dialect`]: the same plan with
//! each limit read as that implementation enforces it
//! ([`crate::engines::Dialect`]). The guarantees follow the engine: a
//! window opened at a key's first request is held to `2·limit` per rolling
//! window, nginx's bucket to its millisecond leak.
//!
//! ## Comparing values
//!
//! Columns a log does not give, and empty values, are not compared.
//! `remaining` and the reset are those of the limit the denial names
//! (`ratesim run --decisions`) or of the limit the rate-limit headers
//! report (HTTP, `ratesim probe`); either agrees. Values in whole seconds
//! (`retry_after`, `reset`, `reset_after` without a fraction) are compared
//! with what the policy's headers say, rounded up; values in nanoseconds
//! (`retry_after_ns`, `reset_ns`) exactly.
//!
//! ## Tolerance
//!
//! Real logs have jittery timestamps: the limiter read its clock a little
//! before or after the instant logged. With a tolerance `δ`, a disagreement
//! at `t` is **excused** (counted apart, not against the limiter) when the
//! model, from the state it had reached at `t`, would have answered as the
//! limiter did at some instant in `[t − δ, t + δ]`. Admission is monotone in
//! time when nothing arrives, so this is decided exactly at the two ends: an
//! over-admission is excused iff the policy's retry instant is at most
//! `t + δ`; an under-admission iff the policy denies the request at `t − δ`
//! (decided by [`Plan::check`] on copies of the states it touches); a
//! remaining is excused if it lies between the model's values at `t − δ` and
//! `t + δ`, and a retry-after or reset if it is within `δ` of the model's
//! (after rounding). An excused decision is then *followed*: the model
//! takes the limiter's answer (an excused admission is admitted at the
//! policy's retry instant; an excused refusal leaves the states as they
//! were), so that one jittered timestamp does not set the model and the
//! limiter apart for the rows after it. The guarantees count only certain
//! violations (see [`guarantees`]).
//!
//! ## Order and instants
//!
//! Rows are replayed in file order (non-decreasing time). A request's
//! concurrency permits are released and its budgets settled `duration`
//! after it is served (its admission, plus the policy's delay if any),
//! before any arrival at that instant, as in the simulator. Offsets (`t_ns`, decimal `t`) start at [`Options::start`] (as
//! in `ratesim run --start`, default 2026-01-01T00:00:00Z: aligned windows
//! and calendar budgets depend on it); RFC 3339 times are used as they are,
//! and the log then starts at its first row.

pub mod guarantees;
pub mod log;
mod replay;
pub mod report;
mod store;

pub use guarantees::{GuaranteeResult, Worst};
pub use log::{LogDecision, LogReader};
pub use replay::verify;
pub use store::ReplayStore;

use crate::engines::Dialect;
use crate::policy::Plan;
use crate::time::Nanos;

/// How to verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The instant of offset 0 (as `ratesim run --start`).
    pub start: Nanos,
    /// How far a logged instant may be from the limiter's own.
    pub tolerance: Nanos,
}

impl Default for Options {
    fn default() -> Self {
        Options { start: crate::sim::DEFAULT_START, tolerance: 0 }
    }
}

/// A kind of disagreement between the limiter and the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// The limiter admitted a request the policy denies.
    OverAdmission,
    /// The limiter denied a request the policy admits.
    UnderAdmission,
    /// Both denied, with another status or naming another limit.
    WrongStatus,
    /// Both agreed on admission, but the remaining units differ.
    WrongRemaining,
    /// Both denied, but the retry-after differs.
    WrongRetryAfter,
    /// Both agreed on admission, but the reset differs.
    WrongReset,
    /// Both admitted, but the server-side delay differs (nginx `limit_req`).
    WrongDelay,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 7] = [
        Class::OverAdmission,
        Class::UnderAdmission,
        Class::WrongStatus,
        Class::WrongRemaining,
        Class::WrongRetryAfter,
        Class::WrongReset,
        Class::WrongDelay,
    ];

    /// The class's name in reports: `over-admission`, ...
    pub fn name(self) -> &'static str {
        match self {
            Class::OverAdmission => "over-admission",
            Class::UnderAdmission => "under-admission",
            Class::WrongStatus => "wrong status",
            Class::WrongRemaining => "wrong remaining",
            Class::WrongRetryAfter => "wrong retry-after",
            Class::WrongReset => "wrong reset",
            Class::WrongDelay => "wrong delay",
        }
    }

    /// The class's key in JSON: `over_admission`, ...
    pub fn key(self) -> &'static str {
        match self {
            Class::OverAdmission => "over_admission",
            Class::UnderAdmission => "under_admission",
            Class::WrongStatus => "wrong_status",
            Class::WrongRemaining => "wrong_remaining",
            Class::WrongRetryAfter => "wrong_retry_after",
            Class::WrongReset => "wrong_reset",
            Class::WrongDelay => "wrong_delay",
        }
    }
}

/// One disagreement, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// Line of the row in the log.
    pub line: u64,
    /// The row's instant, ns since the log's start.
    pub t: Nanos,
    /// The request's key.
    pub key: String,
    /// What differs, in words.
    pub detail: String,
}

/// Disagreements of one class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassCount {
    /// The class.
    pub class: Class,
    /// Disagreements not excused by the tolerance.
    pub count: u64,
    /// Disagreements the tolerance excused.
    pub excused: u64,
    /// The first one not excused.
    pub first: Option<Example>,
}

/// A row shown around the first divergence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextRow {
    /// Line in the log.
    pub line: u64,
    /// Instant, ns since the log's start.
    pub t: Nanos,
    /// Key and endpoint.
    pub key: String,
    /// The endpoint.
    pub endpoint: String,
    /// What the limiter answered, in words.
    pub limiter: String,
    /// What the policy answers, in words.
    pub policy: String,
    /// Whether this row disagrees (and is not excused).
    pub diverges: bool,
}

/// The first row that disagrees, with the rows around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The row.
    pub at: Example,
    /// Its classes.
    pub classes: Vec<Class>,
    /// Up to three rows before it, the row, and up to three after.
    pub context: Vec<ContextRow>,
}

/// A run of wrongful refusals of one key: consecutive requests of the key
/// that the limiter denied and the policy admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The key.
    pub key: String,
    /// First and last refused instant, ns since the log's start.
    pub from: Nanos,
    /// The last.
    pub to: Nanos,
    /// Requests refused in the run.
    pub requests: u64,
    /// Lines of the first and last refusal.
    pub lines: (u64, u64),
}

/// How many rows had each optional value compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compared {
    /// Rows with a status or limit compared (both denied).
    pub status: u64,
    /// Rows with `remaining` compared.
    pub remaining: u64,
    /// Rows with a retry-after compared (both denied).
    pub retry_after: u64,
    /// Rows with a reset compared.
    pub reset: u64,
    /// Rows with a server-side delay compared (both admitted).
    pub delay: u64,
}

/// What `verify` found.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The log's name.
    pub log: String,
    /// The policy's provider and the plan.
    pub provider: String,
    /// The plan's name.
    pub plan: String,
    /// The dialect the plan was read in ([`in_dialect`]), if any: set by the
    /// caller.
    pub dialect: Option<String>,
    /// The options used.
    pub options: Options,
    /// The instant of the log's offset 0.
    pub origin: Nanos,
    /// Rows (decisions) read.
    pub decisions: u64,
    /// First and last instant, ns since the log's start.
    pub span: (Nanos, Nanos),
    /// Requests the limiter admitted.
    pub limiter_admitted: u64,
    /// Requests the policy admits.
    pub policy_admitted: u64,
    /// Rows with no disagreement at all.
    pub agree: u64,
    /// Rows with a disagreement not excused.
    pub disagree: u64,
    /// Rows whose every disagreement the tolerance excused.
    pub excused: u64,
    /// What was compared beyond admission.
    pub compared: Compared,
    /// Counts per class, in [`Class::ALL`] order.
    pub classes: Vec<ClassCount>,
    /// The first divergence.
    pub first_divergence: Option<Divergence>,
    /// Each limit's guarantee.
    pub guarantees: Vec<GuaranteeResult>,
    /// The longest run of wrongful refusals (by span, then count).
    pub longest_refusal: Option<Refusal>,
}

impl Report {
    /// Whether the limiter conforms: no disagreement beyond the tolerance
    /// and every guarantee holds.
    pub fn pass(&self) -> bool {
        self.disagree == 0 && self.guarantees.iter().all(GuaranteeResult::holds)
    }

    /// The count of `class`.
    pub fn count(&self, class: Class) -> u64 {
        self.classes.iter().find(|c| c.class == class).map_or(0, |c| c.count)
    }
}

/// `plan` as the implementation `dialect` enforces it ([`Dialect::apply`] on
/// every limit; concurrency caps and budgets unchanged; statuses, scopes
/// and selectors as the policy says). The error names the limit the
/// dialect has no limiter for.
pub fn in_dialect(plan: &Plan, dialect: Dialect) -> Result<Plan, String> {
    let mut out = plan.clone();
    for limit in &mut out.limits {
        limit.engine = dialect.apply(&limit.engine).map_err(|e| format!("limit {:?}: {e}", limit.id))?;
    }
    Ok(out)
}

/// The statuses `plan` denies with: a logged status among them means
/// denied, any other admitted.
pub fn denial_statuses(plan: &Plan) -> Vec<u16> {
    let mut s: Vec<u16> = plan.limits.iter().map(|l| l.status).collect();
    s.sort_unstable();
    s.dedup();
    s
}
