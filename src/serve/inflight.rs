//! The admission in flight and the response body that carries it.
//!
//! An admitted request's [`InFlight`] guard completes it exactly once
//! (releasing concurrency permits, settling budgets with the actual tokens
//! and money, writing its log line with the duration), whichever comes
//! first:
//!
//! - the [`Body`] holding it has produced its last byte or is dropped (hyper
//!   drops a body when the client disconnects);
//! - its watchdog fires: `service time + write timeout` after admission, for
//!   requests that hold permits or reservations, so a client that stops
//!   reading cannot keep them;
//! - the task holding it (a running prediction) ends or is aborted.

use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use parking_lot::Mutex;
use tokio::task::AbortHandle;

use super::backend::{Backend, Checked};
use super::log::{DecisionLog, LogEntry};
use crate::policy::{Plan, Request, Tickets};
use crate::sim::DecisionFigures;

/// The facts of one call, owned: what the limiter, the guard and the log
/// need.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    /// API key, or the client's address when unauthenticated.
    pub(crate) key: String,
    /// The key's user, if the keys file names one.
    pub(crate) user: Option<String>,
    /// The key's workspace, if the keys file names one.
    pub(crate) workspace: Option<String>,
    /// The endpoint name the route gives.
    pub(crate) endpoint: String,
    /// Whether the request carried an API key.
    pub(crate) auth: bool,
    /// Tokens counted (checked; settled on completion).
    pub(crate) tokens: u64,
    /// Money counted, minor units.
    pub(crate) money: u64,
    /// `X-Client-Request-Id`, if sent.
    pub(crate) client_request_id: Option<String>,
    /// `x-stainless-retry-count`, if sent.
    pub(crate) client_retry_count: Option<u32>,
}

impl Call {
    pub(crate) fn request(&self) -> Request<'_> {
        Request {
            key: &self.key,
            user: self.user.as_deref(),
            workspace: self.workspace.as_deref(),
            endpoint: &self.endpoint,
            authenticated: self.auth,
            tokens: self.tokens,
            money: self.money,
        }
    }

    pub(crate) fn log_entry(&self, plan: &Plan, checked: &Checked) -> LogEntry {
        let mut e = LogEntry {
            request: checked.request,
            at: checked.now,
            origin: checked.origin,
            key: self.key.clone(),
            user: self.user.clone(),
            workspace: self.workspace.clone(),
            endpoint: self.endpoint.clone(),
            auth: self.auth,
            tokens: self.tokens,
            cost: self.money,
            client_request_id: self.client_request_id.clone(),
            client_retry_count: self.client_retry_count,
            ..LogEntry::default()
        };
        e.set_figures(&DecisionFigures::of(plan, &checked.decision, checked.now, checked.origin));
        e
    }
}

/// What completes an admitted request: shared by the guard in the response
/// body and its watchdog, taken once.
struct Pending {
    backend: Arc<dyn Backend>,
    log: Option<Arc<DecisionLog>>,
    call: Call,
    tickets: Tickets,
    entry: Option<LogEntry>,
}

impl Pending {
    /// Completes the request with the actual `tokens` and `money`.
    fn complete(mut self, tokens: u64, money: u64) {
        self.call.tokens = tokens;
        self.call.money = money;
        let at = self.backend.complete(&self.call.request(), &self.tickets);
        if let (Some(log), Some(mut e)) = (&self.log, self.entry.take()) {
            e.tokens = tokens;
            e.cost = money;
            e.duration_ns = at - e.at;
            log.write(e);
        }
    }
}

/// An admitted request in flight. Dropping it completes the request with
/// the amounts it was admitted with; [`InFlight::finish`] with actual ones.
pub(crate) struct InFlight {
    pending: Arc<Mutex<Option<Pending>>>,
    watchdog: Option<AbortHandle>,
    amounts: (u64, u64),
}

impl InFlight {
    /// The guard of an admission of `call` with `tickets`; `entry` is its log
    /// line, written to `log` on completion.
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        log: Option<Arc<DecisionLog>>,
        call: Call,
        tickets: Tickets,
        entry: Option<LogEntry>,
    ) -> InFlight {
        let amounts = (call.tokens, call.money);
        let pending = Pending { backend, log, call, tickets, entry };
        InFlight { pending: Arc::new(Mutex::new(Some(pending))), watchdog: None, amounts }
    }

    /// Completes the request after `limit` at the latest, whatever its
    /// response is doing (only requests holding permits or reservations
    /// need this).
    pub(crate) fn watch(&mut self, limit: Duration) {
        let holds = self.pending.lock().as_ref().is_some_and(|p| !p.tickets.is_empty());
        if !holds {
            return;
        }
        let pending = self.pending.clone();
        let amounts = self.amounts;
        let handle = tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            let taken = pending.lock().take();
            if let Some(p) = taken {
                p.complete(amounts.0, amounts.1);
            }
        });
        self.watchdog = Some(handle.abort_handle());
    }

    pub(crate) fn finish(&mut self, tokens: u64, money: u64) {
        let taken = self.pending.lock().take();
        if let Some(p) = taken {
            p.complete(tokens, money);
        }
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let (tokens, money) = self.amounts;
        self.finish(tokens, money);
    }
}

/// A response body, holding the request's in-flight guard until it has
/// been sent (or dropped: the client went away).
pub(crate) struct Body {
    content: Content,
    guard: Option<InFlight>,
    /// Tokens counted when the body is done (a stream adds its words).
    tokens: u64,
    money: u64,
}

enum Content {
    Full(Option<Bytes>),
    Sse(Sse),
}

/// Server-sent events released on schedule.
struct Sse {
    events: std::collections::VecDeque<(tokio::time::Instant, u64, Bytes)>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Body {
    pub(crate) fn full(text: String) -> Body {
        Body { content: Content::Full(Some(Bytes::from(text))), guard: None, tokens: 0, money: 0 }
    }

    /// The body holds `guard`; the request counts `tokens` and `money`.
    pub(crate) fn guarded(mut self, guard: Option<InFlight>, tokens: u64, money: u64) -> Body {
        self.guard = guard;
        self.tokens = tokens;
        self.money = money;
        self
    }

    /// `chunks` spread evenly over `service`: the role at once, each word
    /// `service / words` after the previous, the rest with the last word.
    pub(crate) fn sse(
        chunks: Vec<(u64, String)>,
        service: Duration,
        prompt_tokens: u64,
        money: u64,
        guard: Option<InFlight>,
    ) -> Body {
        let words = chunks.iter().map(|c| c.0).sum::<u64>().max(1);
        let step = service / words as u32;
        let t0 = tokio::time::Instant::now();
        let mut at = t0;
        let events = chunks
            .into_iter()
            .map(|(tokens, text)| {
                at += step * tokens as u32;
                (at, tokens, Bytes::from(text))
            })
            .collect();
        Body {
            content: Content::Sse(Sse { events, sleep: Box::pin(tokio::time::sleep_until(t0)) }),
            guard,
            tokens: prompt_tokens,
            money,
        }
    }

    fn done(&mut self) {
        if let Some(mut g) = self.guard.take() {
            g.finish(self.tokens, self.money);
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        let next = match &mut this.content {
            Content::Full(data) => data.take(),
            Content::Sse(sse) => match sse.events.front() {
                None => None,
                Some(&(due, _, _)) => {
                    if tokio::time::Instant::now() < due {
                        sse.sleep.as_mut().reset(due);
                        if sse.sleep.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                    let (_, tokens, data) = sse.events.pop_front().expect("peeked");
                    this.tokens += tokens;
                    Some(data)
                }
            },
        };
        match next {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None => {
                this.done();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.content {
            Content::Full(data) => data.is_none(),
            Content::Sse(sse) => sse.events.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.content {
            Content::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            Content::Full(None) => SizeHint::with_exact(0),
            Content::Sse(_) => SizeHint::default(),
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        self.done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::KeyedLimiter;
    use crate::serve::LocalBackend;

    fn call(key: &str) -> Call {
        Call {
            key: key.into(),
            user: None,
            workspace: None,
            endpoint: "chat.completions".into(),
            auth: true,
            tokens: 10,
            money: 0,
            client_request_id: None,
            client_retry_count: None,
        }
    }

    #[test]
    fn the_watchdog_completes_a_stalled_request_once() {
        let policy = Arc::new(
            crate::policy::parse(
                "provider = \"T\"\n[[plan]]\nname = \"p\"\n[[plan.limit]]\nid = \"slot\"\nalgorithm = \"concurrency\"\nmax = 1\n",
                "t.toml",
            )
            .unwrap(),
        );
        let backend = Arc::new(LocalBackend::new(KeyedLimiter::new(policy, "p").unwrap()));
        let dir = std::env::temp_dir().join(format!("ratesim-inflight-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = Arc::new(DecisionLog::create(&dir.join("log.jsonl")).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let admit = |c: &Call| {
                let checked = backend.check(&c.request());
                let entry = c.log_entry(backend.plan(), &checked);
                (
                    checked.decision.allowed,
                    InFlight::new(backend.clone(), Some(log.clone()), c.clone(), checked.decision.tickets, Some(entry)),
                )
            };
            // A stalled response: its guard is never dropped, the watchdog
            // gives the permit back.
            let (allowed, mut stalled) = admit(&call("a"));
            assert!(allowed);
            stalled.watch(Duration::from_millis(30));
            assert!(!backend.check(&call("a").request()).decision.allowed, "held");
            tokio::time::sleep(Duration::from_millis(80)).await;
            let (allowed, mut next) = admit(&call("a"));
            assert!(allowed, "released by the watchdog");
            // Finished before its watchdog: completed once, the watchdog
            // cancelled (it would otherwise write a second line).
            next.watch(Duration::from_millis(30));
            next.finish(12, 0);
            tokio::time::sleep(Duration::from_millis(80)).await;
            drop(stalled);
            drop(next);
        });
        assert_eq!(log.close().unwrap(), 2, "one line per admission, however it completed");
        let text = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let durations: Vec<u64> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["duration_ns"].as_u64().unwrap())
            .collect();
        assert_eq!(durations.len(), 2, "{text}");
        assert!((30_000_000..80_000_000).contains(&durations[0]), "{durations:?}");
        assert!(durations[1] < 30_000_000, "{durations:?}");
    }
}
