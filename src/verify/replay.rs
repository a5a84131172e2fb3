//! The replay: each logged request through [`Plan::check`], compared with
//! what the limiter answered (see the [module docs](super)).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use hashbrown::HashMap;

use super::guarantees::Guarantees;
use super::log::{LogDecision, LogReader, Reported, ResetValue};
use super::report::{seconds, span};
use super::store::ReplayStore;
use super::{denial_statuses, Class, ClassCount, Compared, ContextRow, Divergence, Example, Options, Refusal, Report};
use crate::engines::{Decision, Engine, Retry};
use crate::policy::{retry_headers, Plan, PlanDecision, Policy, Request, RetryAfterValue, Tickets};
use crate::time::{ceil_seconds, Nanos, SECOND};
use crate::trace::{TraceError, TraceRow, TraceTime};

/// Rows shown before and after the first divergence.
const CONTEXT: usize = 3;

/// A request whose permits and reservations are still held.
struct Pending {
    at: Nanos,
    seq: u64,
    request: OwnedRequest,
    tickets: Tickets,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    /// Earliest first in a max-heap.
    fn cmp(&self, other: &Self) -> Ordering {
        Reverse((self.at, self.seq)).cmp(&Reverse((other.at, other.seq)))
    }
}

/// A request's facts, owned (kept until it completes).
struct OwnedRequest {
    key: String,
    user: String,
    workspace: String,
    endpoint: String,
    auth: bool,
    tokens: u64,
    money: u64,
}

impl OwnedRequest {
    fn of(row: &TraceRow) -> OwnedRequest {
        OwnedRequest {
            key: row.key.clone(),
            user: row.user.clone(),
            workspace: row.workspace.clone(),
            endpoint: row.endpoint.clone(),
            auth: row.auth,
            tokens: row.tokens,
            money: row.cost,
        }
    }

    fn request(&self) -> Request<'_> {
        request(&self.key, &self.user, &self.workspace, &self.endpoint, self.auth, self.tokens, self.money)
    }
}

fn request<'a>(
    key: &'a str,
    user: &'a str,
    workspace: &'a str,
    endpoint: &'a str,
    auth: bool,
    tokens: u64,
    money: u64,
) -> Request<'a> {
    Request {
        key,
        user: (!user.is_empty()).then_some(user),
        workspace: (!workspace.is_empty()).then_some(workspace),
        endpoint,
        authenticated: auth,
        tokens,
        money,
    }
}

fn row_request(row: &TraceRow) -> Request<'_> {
    request(&row.key, &row.user, &row.workspace, &row.endpoint, row.auth, row.tokens, row.cost)
}

/// One row as remembered for the context of the first divergence.
#[derive(Clone, Default)]
struct Seen {
    line: u64,
    t: Nanos,
    key: String,
    endpoint: String,
    log: LogDecision,
    log_allowed: bool,
    decision: PlanDecision,
    diverges: bool,
}

/// A disagreement found on the current row.
struct Finding {
    class: Class,
    excused: bool,
    detail: String,
}

/// An open run of wrongful refusals.
struct Run {
    from: Nanos,
    to: Nanos,
    requests: u64,
    lines: (u64, u64),
}

/// The verification in progress.
struct Replay<'p> {
    policy: &'p Policy,
    plan: &'p Plan,
    options: Options,
    denials: Vec<u16>,
    /// Whether a limit counts denied requests (its state changes on a denial).
    counts_denied: bool,
    store: ReplayStore,
    pending: BinaryHeap<Pending>,
    seq: u64,
    guarantees: Guarantees,
    origin: Option<Nanos>,
    /// Whether rows give `t_ns` (else `t`), and the line that decided it.
    t_ns_form: Option<(bool, u64)>,
    report: Report,
    counts: Vec<ClassCount>,
    /// The last rows, for the context of the first divergence.
    recent: VecDeque<Seen>,
    /// Rows still to be added after the first divergence.
    after: usize,
    runs: HashMap<String, Run, foldhash::fast::FixedState>,
}

/// Replays `log` through `plan` (of `policy`) and reports agreement and
/// guarantees. Fails on the first row that cannot be read or makes no sense
/// (with its file, line and field).
pub fn verify(policy: &Policy, plan: &Plan, log: &mut LogReader, options: &Options) -> Result<Report, TraceError> {
    let mut replay = Replay {
        policy,
        plan,
        options: *options,
        denials: denial_statuses(plan),
        counts_denied: plan.limits.iter().any(|l| matches!(&l.engine, Engine::FixedWindow(w) if w.counts_denied())),
        store: ReplayStore::new(plan),
        pending: BinaryHeap::new(),
        seq: 0,
        guarantees: Guarantees::new(&plan.limits, options.tolerance),
        origin: None,
        t_ns_form: None,
        report: Report {
            log: log.name().to_string(),
            provider: policy.provider.clone(),
            plan: plan.name.clone(),
            dialect: None,
            options: *options,
            origin: options.start,
            decisions: 0,
            span: (0, 0),
            limiter_admitted: 0,
            policy_admitted: 0,
            agree: 0,
            disagree: 0,
            excused: 0,
            compared: Compared::default(),
            classes: Vec::new(),
            first_divergence: None,
            guarantees: Vec::new(),
            longest_refusal: None,
        },
        counts: Class::ALL.iter().map(|&class| ClassCount { class, count: 0, excused: 0, first: None }).collect(),
        recent: VecDeque::with_capacity(CONTEXT + 1),
        after: 0,
        runs: HashMap::default(),
    };
    let mut row = TraceRow::default();
    while log.next_row(&mut row)? {
        let error = |field: &str, message: String| TraceError {
            file: log.name().to_string(),
            line: row.line,
            column: 0,
            field: field.to_string(),
            message,
        };
        let decision = log.decision();
        let t = replay.instant(&row, decision).map_err(|(f, m)| error(f, m))?;
        if let Some(ns) = decision.duration_ns {
            if row.duration > 0 {
                return Err(error(
                    "duration_ns",
                    "give the service time once, in `duration` (seconds) or in `duration_ns`, not both".into(),
                ));
            }
            row.duration = ns;
        }
        let allowed = match (decision.allowed, decision.status) {
            (Some(a), _) => a,
            (None, Some(s)) => !replay.denials.contains(&s),
            (None, None) => {
                return Err(error(
                    "allowed",
                    "expected `allowed` (true or false) or the HTTP `status` in every row; this row gives \
                     neither"
                        .into(),
                ))
            }
        };
        replay.row(&row, decision, allowed, t);
    }
    Ok(replay.finish())
}

impl Replay<'_> {
    /// The row's absolute instant; checks that every row gives its time in
    /// the same column.
    fn instant(&mut self, row: &TraceRow, d: &LogDecision) -> Result<Nanos, (&'static str, String)> {
        let uses_t_ns = d.t_ns.is_some();
        match self.t_ns_form {
            None => self.t_ns_form = Some((uses_t_ns, row.line)),
            Some((form, line)) if form != uses_t_ns => {
                let (this, that) = if uses_t_ns { ("t_ns", "t") } else { ("t", "t_ns") };
                return Err((
                    this,
                    format!("this row gives its time in `{this}`, but the log gives `{that}` (since line {line}); use one per file"),
                ));
            }
            Some(_) => {}
        }
        let start = self.options.start;
        Ok(match (d.t_ns, row.t) {
            (Some(ns), _) | (None, TraceTime::Offset(ns)) => {
                self.origin.get_or_insert(start);
                start.saturating_add(ns)
            }
            (None, TraceTime::Absolute(a)) => {
                self.origin.get_or_insert(a);
                a
            }
        })
    }

    fn origin(&self) -> Nanos {
        self.origin.unwrap_or(self.options.start)
    }

    fn row(&mut self, row: &TraceRow, log: &LogDecision, log_allowed: bool, t: Nanos) {
        let plan = self.plan;
        let tol = self.options.tolerance;
        // Permits released and budgets settled by `t`, before the arrival.
        while self.pending.peek().is_some_and(|p| p.at <= t) {
            let p = self.pending.pop().expect("peeked");
            plan.complete(&mut self.store, p.at, &p.request.request(), &p.tickets);
        }
        let req = row_request(row);
        // Copies of the states before the decision, for what the tolerance
        // may excuse: a refusal (checked at `t − δ`), and an admission when a
        // limit counts denied requests (the model's denial changed it).
        let before = (tol > 0 && (!log_allowed || self.counts_denied)).then(|| self.store.copy_for(plan, &req));
        let d = plan.check(&mut self.store, t, &req);
        if log_allowed {
            self.report.limiter_admitted += 1;
            self.guarantees.admitted(&plan.limits, &req, t, row.duration);
        }
        let findings = self.compare(&req, log, log_allowed, &d, t, before.as_ref());
        // An excused decision is followed: the model takes the limiter's
        // answer, at the nearest instant it would have given it, so that
        // one jittered timestamp does not set the two apart for later rows.
        let excused_admission = findings.iter().any(|f| f.excused && f.class == Class::OverAdmission);
        let excused_refusal = findings.iter().any(|f| f.excused && f.class == Class::UnderAdmission);
        let held = if excused_admission {
            let at = d.retry.at().expect("excused only with a retry instant");
            if let Some(b) = before {
                self.store.restore(b);
            }
            let again = plan.check(&mut self.store, at, &req);
            Some((at.saturating_add(again.delay), again.tickets))
        } else if excused_refusal {
            self.store.restore(before.expect("copied for a logged denial"));
            None
        } else {
            d.allowed.then_some((t.saturating_add(d.delay), d.tickets))
        };
        if d.allowed {
            self.report.policy_admitted += 1;
        }
        if let Some((at, tickets)) = held.filter(|(_, tickets)| !tickets.is_empty()) {
            self.seq += 1;
            self.pending.push(Pending {
                at: at.saturating_add(row.duration),
                seq: self.seq,
                request: OwnedRequest::of(row),
                tickets,
            });
        }

        let rel = t - self.origin();
        if self.report.decisions == 0 {
            self.report.span.0 = rel;
        }
        self.report.decisions += 1;
        self.report.span.1 = rel;
        let diverges = findings.iter().any(|f| !f.excused);
        if findings.is_empty() {
            self.report.agree += 1;
        } else if diverges {
            self.report.disagree += 1;
        } else {
            self.report.excused += 1;
        }
        for f in &findings {
            let c = &mut self.counts[Class::ALL.iter().position(|&c| c == f.class).expect("a class")];
            if f.excused {
                c.excused += 1;
            } else {
                c.count += 1;
                if c.first.is_none() {
                    c.first = Some(Example { line: row.line, t: rel, key: row.key.clone(), detail: f.detail.clone() });
                }
            }
        }
        self.track_refusals(row, rel, findings.iter().any(|f| f.class == Class::UnderAdmission && !f.excused));
        self.track_context(row, log, log_allowed, &d, rel, diverges, &findings);
    }

    /// Compares the limiter's answer with the policy's `d` for `req` at `t`;
    /// `before` holds copies of the states before the decision (for an
    /// under-admission's tolerance).
    fn compare(
        &mut self,
        req: &Request<'_>,
        log: &LogDecision,
        log_allowed: bool,
        d: &PlanDecision,
        t: Nanos,
        before: Option<&ReplayStore>,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let tol = self.options.tolerance;
        let plan = self.plan;
        let limit_id = |i: Option<usize>| i.map_or("?", |i| plan.limits[i].id.as_str());
        match (log_allowed, d.allowed) {
            (true, false) => {
                let until = match d.retry {
                    Retry::At(r) => format!(
                        "until {} ({} later)",
                        seconds(r.saturating_sub(self.origin())),
                        span(r.saturating_sub(t))
                    ),
                    Retry::Unknown => "with no known retry instant".into(),
                    Retry::Never => "always (its cost exceeds the capacity)".into(),
                    Retry::Now => String::new(),
                };
                out.push(Finding {
                    class: Class::OverAdmission,
                    excused: matches!(d.retry, Retry::At(r) if r <= t.saturating_add(tol)),
                    detail: format!(
                        "the limiter admitted; the policy denies it ({} {}) {until}",
                        limit_id(d.denied_by),
                        d.status
                    ),
                });
                return out;
            }
            (false, true) => {
                let excused =
                    before.is_some_and(|b| !self.plan.check(&mut b.clone(), t.saturating_sub(tol), req).allowed);
                let shown = d.reported.map(|(i, r)| format!(" ({} remaining on {})", r.remaining, limit_id(Some(i))));
                out.push(Finding {
                    class: Class::UnderAdmission,
                    excused,
                    detail: format!(
                        "the limiter denied{}; the policy admits it{}",
                        log.status.map_or(String::new(), |s| format!(" with {s}")),
                        shown.unwrap_or_default()
                    ),
                });
                return out;
            }
            _ => {}
        }
        let denied = !d.allowed;
        if denied {
            let (id, status) = (limit_id(d.denied_by), d.status);
            if let Some(s) = log.status {
                self.report.compared.status += 1;
                if s != status {
                    out.push(Finding {
                        class: Class::WrongStatus,
                        excused: false,
                        detail: format!("denied with {s}; the policy denies with {status} ({id})"),
                    });
                }
            }
            if !log.limit.is_empty() {
                if log.status.is_none() {
                    self.report.compared.status += 1;
                }
                if log.limit != id {
                    out.push(Finding {
                        class: Class::WrongStatus,
                        excused: false,
                        detail: format!("denied by `{}`; the policy's binding limit is `{id}`", log.limit),
                    });
                }
            }
        }
        // The limits whose figures a log may show: the denying one, the
        // one the headers report.
        let shown: Vec<(usize, Decision)> = [d.denied_by.zip(d.denial), d.reported].into_iter().flatten().collect();
        if let Some(v) = log.remaining {
            self.report.compared.remaining += 1;
            if !shown.iter().any(|(_, x)| x.remaining == v) {
                let excused = tol > 0 && shown.iter().any(|&(i, _)| self.remaining_within(i, req, t, v));
                let detail = match shown.first() {
                    Some((i, x)) => format!("remaining {v}; the policy says {} ({})", x.remaining, limit_id(Some(*i))),
                    None => format!("remaining {v}; the policy reports none (no reportable limit applies)"),
                };
                out.push(Finding { class: Class::WrongRemaining, excused, detail });
            }
        }
        if let Some(r) = log.reset {
            self.report.compared.reset += 1;
            let origin = self.origin();
            if !shown.iter().any(|(_, x)| reset_agrees(r, x.reset, t, origin, 0)) {
                let excused = tol > 0 && shown.iter().any(|(_, x)| reset_agrees(r, x.reset, t, origin, tol));
                let logged = match r {
                    ResetValue::Offset(v) => seconds(v),
                    ResetValue::Absolute(a) => format!("{} (Unix)", seconds(a.ns)),
                    ResetValue::After(a) => format!("in {}", span(a.ns)),
                };
                let detail = match shown.first() {
                    Some((i, x)) if x.reset == Nanos::MAX => {
                        format!("reset {logged}; the policy's {} never resets", limit_id(Some(*i)))
                    }
                    Some((i, x)) => format!(
                        "reset {logged}; the policy says {} ({} later, {})",
                        seconds(x.reset.saturating_sub(origin)),
                        span(x.reset.saturating_sub(t)),
                        limit_id(Some(*i))
                    ),
                    None => format!("reset {logged}; the policy reports none (no reportable limit applies)"),
                };
                out.push(Finding { class: Class::WrongReset, excused, detail });
            }
        }
        if let (true, Some(r)) = (denied, log.retry_after) {
            self.report.compared.retry_after += 1;
            let exact = d.retry.at().map(|at| at - t);
            // The policy's `Retry-After` in whole seconds, if it sends that.
            let header = match retry_headers(&self.policy.response, d, t).retry_after {
                Some(RetryAfterValue::Seconds(s)) => Some(s),
                _ => None,
            };
            let agrees =
                Some(r.ns) == exact || (r.whole_seconds && r.ns % SECOND == 0 && Some(r.ns / SECOND) == header);
            if !agrees {
                let excused = tol > 0 && exact.is_some_and(|e| retry_within(r, e, tol));
                let detail = match exact {
                    Some(e) => {
                        let (said, policy) = if r.whole_seconds {
                            let h = header.map_or(ceil_seconds(e).max(1), |h| h) * SECOND;
                            (r.ns, h)
                        } else {
                            (r.ns, e)
                        };
                        let how = if said < policy {
                            format!("{} early", span(policy - said))
                        } else {
                            format!("{} late", span(said - policy))
                        };
                        format!(
                            "retry-after {}; the policy says {} (exactly {}): {how}",
                            span(said),
                            span(policy),
                            span(e)
                        )
                    }
                    None => format!(
                        "retry-after {}; the policy gives none ({})",
                        span(r.ns),
                        if d.retry == Retry::Never { "never admitted" } else { "no known retry instant" }
                    ),
                };
                out.push(Finding { class: Class::WrongRetryAfter, excused, detail });
            }
        }
        if let (false, Some(v)) = (denied, log.delay_ns) {
            self.report.compared.delay += 1;
            if v != d.delay {
                let how = if v < d.delay {
                    format!("{} short", span(d.delay - v))
                } else {
                    format!("{} long", span(v - d.delay))
                };
                out.push(Finding {
                    class: Class::WrongDelay,
                    excused: v.abs_diff(d.delay) <= tol,
                    detail: format!("held {} before serving; the policy holds it {}: {how}", span(v), span(d.delay)),
                });
            }
        }
        out
    }

    /// Whether `v` lies between limit `i`'s remaining at `t − δ` and
    /// `t + δ` (after this request), from copies of its state.
    fn remaining_within(&self, i: usize, req: &Request<'_>, t: Nanos, v: u64) -> bool {
        let limit = &self.plan.limits[i];
        let who = limit.scope.key_of(req);
        let tol = self.options.tolerance;
        let at = |when: Nanos| limit.engine.decide(&mut self.store.state(i, who), when, 0).remaining;
        let (a, b) = (at(t.saturating_sub(tol)), at(t.saturating_add(tol)));
        (a.min(b)..=a.max(b)).contains(&v)
    }

    fn track_refusals(&mut self, row: &TraceRow, t: Nanos, wrongful: bool) {
        if wrongful {
            let run = self.runs.entry_ref(row.key.as_str()).or_insert(Run {
                from: t,
                to: t,
                requests: 0,
                lines: (row.line, row.line),
            });
            run.to = t;
            run.requests += 1;
            run.lines.1 = row.line;
        } else if !self.runs.is_empty() {
            if let Some(run) = self.runs.remove(row.key.as_str()) {
                self.close_run(row.key.clone(), run);
            }
        }
    }

    fn close_run(&mut self, key: String, run: Run) {
        let longer = self
            .report
            .longest_refusal
            .as_ref()
            .is_none_or(|best| (run.to - run.from, run.requests) > (best.to - best.from, best.requests));
        if longer {
            self.report.longest_refusal =
                Some(Refusal { key, from: run.from, to: run.to, requests: run.requests, lines: run.lines });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn track_context(
        &mut self,
        row: &TraceRow,
        log: &LogDecision,
        log_allowed: bool,
        d: &PlanDecision,
        t: Nanos,
        diverges: bool,
        findings: &[Finding],
    ) {
        let found = self.report.first_divergence.is_some();
        if found && self.after == 0 {
            return;
        }
        let mut seen = if self.recent.len() > CONTEXT && !found {
            self.recent.pop_front().expect("not empty")
        } else {
            Seen::default()
        };
        seen.line = row.line;
        seen.t = t;
        seen.key.clone_from(&row.key);
        seen.endpoint.clone_from(&row.endpoint);
        seen.log.clone_from(log);
        seen.log_allowed = log_allowed;
        seen.decision = *d;
        seen.diverges = diverges;
        if found {
            let context = self.context_row(&seen);
            self.report.first_divergence.as_mut().expect("found").context.push(context);
            self.after -= 1;
            return;
        }
        self.recent.push_back(seen);
        if diverges {
            let context = self.recent.iter().map(|s| self.context_row(s)).collect();
            let detail =
                findings.iter().filter(|f| !f.excused).map(|f| f.detail.as_str()).collect::<Vec<_>>().join("; ");
            self.report.first_divergence = Some(Divergence {
                at: Example { line: row.line, t, key: row.key.clone(), detail },
                classes: findings.iter().filter(|f| !f.excused).map(|f| f.class).collect(),
                context,
            });
            self.after = CONTEXT;
            self.recent.clear();
        }
    }

    fn context_row(&self, s: &Seen) -> ContextRow {
        let plan = self.plan;
        let mut limiter = String::from(if s.log_allowed { "admitted" } else { "denied" });
        if let Some(st) = s.log.status {
            limiter.push_str(&format!(" {st}"));
        }
        if !s.log.limit.is_empty() {
            limiter.push_str(&format!(" by {}", s.log.limit));
        }
        if let Some(r) = s.log.remaining {
            limiter.push_str(&format!(", remaining {r}"));
        }
        if let Some(r) = s.log.retry_after {
            limiter.push_str(&format!(", retry-after {}", span(r.ns)));
        }
        if let Some(v) = s.log.delay_ns.filter(|&v| v > 0) {
            limiter.push_str(&format!(", held {}", span(v)));
        }
        let d = &s.decision;
        let mut policy = if d.allowed {
            "admitted".to_string()
        } else {
            format!("denied {} by {}", d.status, d.denied_by.map_or("?", |i| plan.limits[i].id.as_str()))
        };
        if let Some(x) = d.denial.or(d.reported.map(|r| r.1)) {
            policy.push_str(&format!(", remaining {}", x.remaining));
        }
        if let Retry::At(r) = d.retry {
            let at = self.origin().saturating_add(s.t);
            policy.push_str(&format!(", retry-after {}", span(r.saturating_sub(at))));
        }
        if d.delay > 0 {
            policy.push_str(&format!(", held {}", span(d.delay)));
        }
        ContextRow {
            line: s.line,
            t: s.t,
            key: s.key.clone(),
            endpoint: s.endpoint.clone(),
            limiter,
            policy,
            diverges: s.diverges,
        }
    }

    fn finish(mut self) -> Report {
        let mut open: Vec<(String, Run)> = self.runs.drain().collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, run) in open {
            self.close_run(key, run);
        }
        self.report.origin = self.origin();
        self.report.classes = self.counts;
        self.report.guarantees = self.guarantees.results(&self.plan.limits);
        self.report
    }
}

/// Whether a logged reset agrees with the policy's reset instant `reset`
/// for a request at `t`, within `tol`.
fn reset_agrees(logged: ResetValue, reset: Nanos, t: Nanos, origin: Nanos, tol: Nanos) -> bool {
    let near = |v: Nanos, exact: Nanos| v.abs_diff(exact) <= tol;
    let rounded = |v: Reported, exact: Nanos| {
        if v.whole_seconds && v.ns % SECOND == 0 {
            let s = v.ns / SECOND;
            (ceil_seconds(exact.saturating_sub(tol))..=ceil_seconds(exact.saturating_add(tol))).contains(&s)
        } else {
            near(v.ns, exact)
        }
    };
    match logged {
        ResetValue::Offset(v) => near(v, reset.saturating_sub(origin)),
        ResetValue::Absolute(a) => rounded(a, reset),
        ResetValue::After(a) => rounded(a, reset.saturating_sub(t)),
    }
}

/// Whether a logged retry-after is within `tol` of the exact wait `exact`
/// (after rounding up to whole seconds, at least 1, for a header value).
fn retry_within(logged: Reported, exact: Nanos, tol: Nanos) -> bool {
    if logged.whole_seconds && logged.ns % SECOND == 0 {
        let s = logged.ns / SECOND;
        let lo = ceil_seconds(exact.saturating_sub(tol)).max(1);
        let hi = ceil_seconds(exact.saturating_add(tol)).max(1);
        (lo..=hi).contains(&s)
    } else {
        logged.ns.abs_diff(exact) <= tol
    }
}
