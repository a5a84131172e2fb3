//! The HTTP server: hyper (HTTP/1.1) on a tokio runtime.
//!
//! ## A request's path
//!
//! 1. **Route** ([`super::routes`]): unknown path `404`, known path with
//!    another method `405` (with `Allow`). `GET /health` answers at once.
//! 2. **Identity** ([`super::identity`]): a malformed `Authorization`,
//!    an unknown or revoked key, or a missing key where the plan has no
//!    limit for unauthenticated requests: `401`.
//! 3. **Body**: read whole before the limiter is asked, at most
//!    `max_body` bytes (`413`) within `body_timeout` (`408`); then checked
//!    per endpoint (`400` naming the parameter). A slow client therefore
//!    never holds a permit while it dawdles over its request.
//! 4. **Decision** by the [`Backend`]; the status, rate-limit headers and
//!    JSON error body come from [`render`], as in the simulator. A denial is
//!    logged at once.
//! 5. **Service**: an admission is held by an in-flight guard that lives
//!    in the response body (or, for a prediction, in the task that runs it).
//!    The guard completes the request (releasing concurrency permits,
//!    settling budgets with the real tokens and money, writing the log
//!    line) when the body has been sent, when the client disconnects and
//!    hyper drops the body, or at the latest `write_timeout` after the
//!    service time, whichever comes first, so a client that stops reading
//!    cannot keep a permit forever.
//!
//! Errors of the emulator itself (not of the limiter) are OpenAI-style JSON
//! (`{"error": {"message", "type", "param", "code"}}`) and are not logged:
//! the log holds the limiter's decisions only.
//!
//! ## Shutdown
//!
//! On SIGINT (Ctrl-C) or SIGTERM the listener closes, open connections are
//! asked to finish their current request, and in-flight requests and
//! running predictions get `grace` to end. Whatever is still running then is
//! dropped, which completes it (its log line records the truncated
//! duration). Only then is the log closed, so every decision is in it.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use parking_lot::Mutex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinSet;

use super::backend::Backend;
use super::endpoints::{self, ApiError, ChatRequest, Prediction, Predictions};
use super::identity::{identify, Caller, Keys};
use super::inflight::{Body, Call, InFlight};
use super::log::DecisionLog;
use super::routes::{Handler, Resolved, Route, Routes};
use super::service_time::ServiceTime;
use crate::limiter::{Clock, SystemClock};
use crate::metrics::{Histogram, Latency};
use crate::policy::{render, AuthMatch};
use crate::time::{Nanos, SECOND};

/// How to run the emulator.
pub struct ServeOptions {
    /// The limiter; `None` answers every request as admitted without asking
    /// one (a baseline for measuring what the limiter adds; nothing is
    /// logged).
    pub backend: Option<Arc<dyn Backend>>,
    /// Where to listen.
    pub addr: SocketAddr,
    /// The keys file, if any.
    pub keys: Option<Keys>,
    /// The routes.
    pub routes: Routes,
    /// Service time of admitted requests.
    pub service_time: ServiceTime,
    /// Seed of the service-time draws.
    pub seed: u64,
    /// The decision log.
    pub log: Option<Arc<DecisionLog>>,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Money (minor units) each chat completion and prediction costs.
    pub price: u64,
    /// Longest wait for a request's headers.
    pub header_timeout: Duration,
    /// Longest wait for a request's body.
    pub body_timeout: Duration,
    /// How long after its service time a response may take to be sent
    /// before its permits are released anyway.
    pub write_timeout: Duration,
    /// How long in-flight requests get to finish at shutdown.
    pub grace: Duration,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

impl ServeOptions {
    /// Options with the defaults of `ratesim serve`.
    pub fn new(backend: Option<Arc<dyn Backend>>, addr: SocketAddr) -> ServeOptions {
        ServeOptions {
            backend,
            addr,
            keys: None,
            routes: Routes::builtin(),
            service_time: ServiceTime::default(),
            seed: 42,
            log: None,
            max_body: 1 << 20,
            price: 0,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(10),
            threads: 0,
        }
    }
}

/// What a run of the emulator did, reported at shutdown.
#[derive(Clone, Debug, Default)]
pub struct ServeReport {
    /// Requests the limiter decided.
    pub decided: u64,
    /// Of which admitted.
    pub admitted: u64,
    /// Of which denied.
    pub denied: u64,
    /// Requests answered with an error before the limiter (4xx).
    pub rejected: u64,
    /// Requests answered without a limiter (`--no-limiter`) or health checks.
    pub unlimited: u64,
    /// Lines in the log, if there is one.
    pub log_lines: Option<u64>,
    /// From listening to the end of shutdown.
    pub elapsed: Duration,
    /// Server time per request from its body having arrived to its answer
    /// being ready (service time excluded).
    pub server_time: Latency,
    /// Time in the backend's decision and rendering per decided request.
    pub decide_time: Latency,
    /// Requests still running when the grace period ended (cut short).
    pub cut_short: u64,
}

/// Counters and latency histograms.
struct Stats {
    decided: AtomicU64,
    admitted: AtomicU64,
    denied: AtomicU64,
    rejected: AtomicU64,
    unlimited: AtomicU64,
    server_time: Mutex<Histogram>,
    decide_time: Mutex<Histogram>,
}

/// Everything a request handler reads.
struct App {
    backend: Option<Arc<dyn Backend>>,
    routes: Routes,
    keys: Option<Keys>,
    anonymous_ok: bool,
    service_time: ServiceTime,
    rng: Mutex<ChaCha8Rng>,
    log: Option<Arc<DecisionLog>>,
    max_body: usize,
    price: u64,
    body_timeout: Duration,
    write_timeout: Duration,
    stats: Stats,
    predictions: Mutex<Predictions>,
    /// Running predictions (each holds its in-flight guard).
    tasks: Mutex<JoinSet<()>>,
}

impl App {
    fn service_time(&self) -> Duration {
        if self.service_time.is_zero() {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.service_time.sample(&mut self.rng.lock()))
    }
}

/// Runs the emulator until SIGINT or SIGTERM; `ready` is called with the
/// bound address once it accepts connections.
pub fn run(options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<ServeReport, String> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if options.threads > 0 {
        runtime.worker_threads(options.threads);
    }
    let runtime = runtime.enable_all().build().map_err(|e| format!("cannot start the server runtime: {e}"))?;
    runtime.block_on(serve(options, ready))
}

async fn serve(options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<ServeReport, String> {
    // The signal handlers first: a signal sent as soon as the port accepts
    // connections must find them.
    let mut stop = Box::pin(stop_signal().map_err(|e| format!("cannot install the signal handlers: {e}"))?);
    let cannot = |e: std::io::Error| format!("cannot listen on {}: {e}", options.addr);
    let listener = tokio::net::TcpListener::bind(options.addr).await.map_err(cannot)?;
    let addr = listener.local_addr().map_err(cannot)?;
    let anonymous_ok = options
        .backend
        .as_ref()
        .is_none_or(|b| b.plan().limits.iter().any(|l| l.selector.auth == AuthMatch::Unauthenticated));
    let app = Arc::new(App {
        backend: options.backend,
        routes: options.routes,
        keys: options.keys,
        anonymous_ok,
        service_time: options.service_time,
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(options.seed)),
        log: options.log,
        max_body: options.max_body,
        price: options.price,
        body_timeout: options.body_timeout,
        write_timeout: options.write_timeout,
        stats: Stats {
            decided: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            unlimited: AtomicU64::new(0),
            server_time: Mutex::new(Histogram::default()),
            decide_time: Mutex::new(Histogram::default()),
        },
        predictions: Mutex::new(Predictions::default()),
        tasks: Mutex::new(JoinSet::new()),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(options.header_timeout).keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let started = Instant::now();
    ready(addr);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let app = app.clone();
                    let service = hyper::service::service_fn(move |req| handle(app.clone(), peer.ip(), req));
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    let watched = graceful.watch(conn);
                    connections.spawn(async move {
                        let _ = watched.await;
                    });
                    while connections.try_join_next().is_some() {}
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving.
                    eprintln!("ratesim serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = &mut stop => break,
        }
    }
    drop(listener);
    let deadline = tokio::time::Instant::now() + options.grace;
    let drained = tokio::time::timeout_at(deadline, graceful.shutdown()).await.is_ok();
    let mut tasks = std::mem::take(&mut *app.tasks.lock());
    let predictions_done =
        tokio::time::timeout_at(deadline, async { while tasks.join_next().await.is_some() {} }).await.is_ok();
    // Past the grace period: drop what still runs; dropping completes it.
    while connections.try_join_next().is_some() {}
    while tasks.try_join_next().is_some() {}
    let cut_short = (connections.len() * usize::from(!drained) + tasks.len() * usize::from(!predictions_done)) as u64;
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let s = &app.stats;
    let log_lines = match &app.log {
        Some(log) => {
            let lines = log.close()?;
            if lines != s.decided.load(Ordering::SeqCst) || log.refused() > 0 {
                return Err(format!(
                    "the log {} holds {lines} lines for {} decisions ({} refused after closing)",
                    log.path(),
                    s.decided.load(Ordering::SeqCst),
                    log.refused()
                ));
            }
            Some(lines)
        }
        None => None,
    };
    let report = ServeReport {
        decided: s.decided.load(Ordering::SeqCst),
        admitted: s.admitted.load(Ordering::SeqCst),
        denied: s.denied.load(Ordering::SeqCst),
        rejected: s.rejected.load(Ordering::SeqCst),
        unlimited: s.unlimited.load(Ordering::SeqCst),
        log_lines,
        elapsed,
        server_time: Latency::of(&s.server_time.lock()),
        decide_time: Latency::of(&s.decide_time.lock()),
        cut_short,
    };
    Ok(report)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed before this
/// returns, so a signal sent as soon as the server is ready is not missed.
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// One request, answered.
async fn handle(app: Arc<App>, peer: IpAddr, req: hyper::Request<Incoming>) -> Result<Response<Body>, Infallible> {
    Ok(match answer(&app, peer, req).await {
        Ok(response) => response,
        Err((e, headers)) => {
            app.stats.rejected.fetch_add(1, Ordering::Relaxed);
            error_response(&e, &headers)
        }
    })
}

/// Extra headers of an error response (`Allow`, rate-limit headers).
type Headers = Vec<(String, String)>;

fn error_response(e: &ApiError, headers: &[(String, String)]) -> Response<Body> {
    respond(e.status, headers, Body::full(e.body()))
}

/// A JSON response with `headers` (names from the policy; a name or value
/// that is not valid in HTTP is skipped, never a panic).
fn respond(status: u16, headers: &[(String, String)], body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(CONTENT_TYPE.as_str())) {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            h.append(n, v);
        }
    }
    r
}

/// What a request asks of the limiter and the endpoint, once checked.
enum Work {
    Chat(ChatRequest),
    PredictionCreate,
    PredictionGet(String),
    /// The usage report; the limit the call's own headers report.
    Usage(Option<usize>),
    Generic,
}

async fn answer(
    app: &Arc<App>,
    peer: IpAddr,
    req: hyper::Request<Incoming>,
) -> Result<Response<Body>, (ApiError, Headers)> {
    let plain = |e: ApiError| (e, Vec::new());
    let path = req.uri().path().to_string();
    let (route, param): (&Route, Option<String>) = match app.routes.resolve(req.method().as_str(), &path) {
        Resolved::Found(route, param) => (route, param.map(str::to_string)),
        Resolved::WrongMethod(allowed) => {
            let e = ApiError::new(
                405,
                "method_not_allowed",
                format!("{} {path}: this path answers {} only", req.method(), allowed.join(", ")),
            );
            return Err((e, vec![(ALLOW.as_str().to_string(), allowed.join(", "))]));
        }
        Resolved::NotFound => {
            let known: Vec<String> = app.routes.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
            return Err(plain(ApiError::new(
                404,
                "unknown_url",
                format!("no route for {} {path}; this emulator answers {}", req.method(), known.join(", ")),
            )));
        }
    };
    if route.handler == Handler::Health {
        app.stats.unlimited.fetch_add(1, Ordering::Relaxed);
        return Ok(respond(200, &[], Body::full("{\"status\":\"ok\"}".to_string())));
    }
    let auth_headers: Vec<&HeaderValue> = req.headers().get_all(AUTHORIZATION).iter().collect();
    if auth_headers.len() > 1 {
        return Err(plain(ApiError::unauthorized(
            "invalid_authorization_header",
            "Authorization header: sent more than once; send exactly one `Authorization: Bearer <API key>`",
        )));
    }
    let caller = identify(auth_headers.first().map(|v| v.as_bytes()), peer, app.keys.as_ref()).map_err(plain)?;
    if let Caller::Anonymous { .. } = caller {
        if !app.anonymous_ok || route.handler == Handler::Usage {
            let why = if route.handler == Handler::Usage {
                "the usage report is per API key"
            } else {
                "this plan has no limit for unauthenticated requests"
            };
            return Err(plain(ApiError::unauthorized(
                "missing_api_key",
                format!("no API key: send `Authorization: Bearer <API key>` ({why})"),
            )));
        }
    }
    let client_request_id = header_text(&req, "x-client-request-id");
    let client_retry_count = header_text(&req, "x-stainless-retry-count").and_then(|v| v.parse::<u32>().ok());
    let reads_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    let body = read_body(app, req).await.map_err(plain)?;
    // Server time runs from here: what the client takes to send its
    // request is not the server's.
    let start = Instant::now();
    let work = match route.handler {
        Handler::ChatCompletions => Work::Chat(endpoints::parse_chat(&body).map_err(plain)?),
        Handler::PredictionCreate => {
            endpoints::json_object(&body, true).map_err(plain)?;
            Work::PredictionCreate
        }
        Handler::PredictionGet => Work::PredictionGet(param.unwrap_or_default()),
        Handler::Usage => Work::Usage(None),
        Handler::Generic => {
            if reads_body {
                endpoints::json_object(&body, true).map_err(plain)?;
            }
            Work::Generic
        }
        Handler::Health => unreachable!("answered above"),
    };
    let (key, user, workspace, auth) = match caller {
        Caller::Key { key, user, workspace } => (key, user, workspace, true),
        Caller::Anonymous { address } => (address, None, None, false),
    };
    let (tokens, money) = match &work {
        Work::Chat(chat) => (chat.total_tokens(), app.price),
        Work::PredictionCreate => (0, app.price),
        _ => (0, 0),
    };
    let call = Call {
        key,
        user,
        workspace,
        endpoint: route.endpoint.clone(),
        auth,
        tokens,
        money,
        client_request_id,
        client_retry_count,
    };
    let Some(backend) = app.backend.clone() else {
        let number = app.stats.unlimited.fetch_add(1, Ordering::Relaxed);
        let now = SystemClock.now();
        let admitted = Admitted { call, guard: None, headers: Vec::new(), number, now, delay: Duration::ZERO, start };
        return Ok(serve_admitted(app, work, admitted).await);
    };
    let decide_start = Instant::now();
    let checked = backend.check(&call.request());
    let rendered = render(backend.policy(), backend.plan(), &checked.decision, checked.now);
    app.stats.decide_time.lock().record(decide_start.elapsed().as_nanos() as u64);
    app.stats.decided.fetch_add(1, Ordering::Relaxed);
    let entry = app.log.as_ref().map(|_| call.log_entry(backend.plan(), &checked));
    let mut headers = rendered.headers;
    headers.push(("x-request-id".into(), format!("req_{}", checked.request)));
    if !checked.decision.allowed {
        app.stats.denied.fetch_add(1, Ordering::Relaxed);
        if let (Some(log), Some(e)) = (&app.log, entry) {
            log.write(e);
        }
        app.stats.server_time.lock().record(start.elapsed().as_nanos() as u64);
        return Ok(respond(rendered.status, &headers, Body::full(rendered.body.unwrap_or_default())));
    }
    app.stats.admitted.fetch_add(1, Ordering::Relaxed);
    let work = match work {
        Work::Usage(_) => Work::Usage(checked.decision.reported.map(|(i, _)| i)),
        other => other,
    };
    let guard = InFlight::new(backend, app.log.clone(), call.clone(), checked.decision.tickets, entry);
    let delay = Duration::from_nanos(checked.decision.delay);
    let admitted =
        Admitted { call, guard: Some(guard), headers, number: checked.request, now: checked.now, delay, start };
    Ok(serve_admitted(app, work, admitted).await)
}

/// The first value of header `name` as text, if it is visible ASCII of at
/// most 512 bytes (anything else is ignored).
fn header_text(req: &hyper::Request<Incoming>, name: &str) -> Option<String> {
    let v = req.headers().get(name)?;
    let s = v.to_str().ok()?.trim();
    (!s.is_empty() && s.len() <= 512).then(|| s.to_string())
}

/// Reads the whole body: at most `max_body` bytes, within `body_timeout`.
async fn read_body(app: &App, req: hyper::Request<Incoming>) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(413, "request_too_large", format!("the request body exceeds the limit of {} bytes", app.max_body))
    };
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_body as u64) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(req.into_body(), app.max_body);
    match tokio::time::timeout(app.body_timeout, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            408,
            "request_timeout",
            format!("the request body did not arrive within {} s", app.body_timeout.as_secs_f64()),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::new(400, "invalid_body", format!("cannot read the request body: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// An admitted request, before its answer.
struct Admitted {
    call: Call,
    /// Its admission (`None` without a limiter).
    guard: Option<InFlight>,
    /// Rate-limit headers and `x-request-id`.
    headers: Headers,
    /// Its number (the log's `request`).
    number: u64,
    /// The instant of its decision.
    now: Nanos,
    /// How long the plan holds it before serving it (nginx `limit_req`).
    delay: Duration,
    /// When its body had arrived (server time starts).
    start: Instant,
}

/// Answers an admitted request.
async fn serve_admitted(app: &Arc<App>, work: Work, admitted: Admitted) -> Response<Body> {
    let Admitted { call, mut guard, headers, number, now, delay, start } = admitted;
    let service = app.service_time();
    if let Some(g) = &mut guard {
        g.watch(delay + service + app.write_timeout);
    }
    // Server time ends here: what follows is waiting (the plan's delay, the
    // service time) and writing the answer.
    app.stats.server_time.lock().record(start.elapsed().as_nanos() as u64);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let served = now + delay.as_nanos() as Nanos;
    let created = served / SECOND;
    match work {
        Work::Chat(chat) if chat.stream => {
            let id = format!("chatcmpl-ratesim-{number}");
            let chunks = chat.chunks(&id, created);
            let mut h = headers;
            h.push((CONTENT_TYPE.as_str().into(), "text/event-stream".into()));
            h.push(("cache-control".into(), "no-cache".into()));
            respond(200, &h, Body::sse(chunks, service, chat.prompt_tokens, call.money, guard))
        }
        Work::Chat(chat) => {
            tokio::time::sleep(service).await;
            let body = chat.completion(&format!("chatcmpl-ratesim-{number}"), created);
            respond(200, &headers, Body::full(body).guarded(guard, call.tokens, call.money))
        }
        Work::PredictionCreate => {
            let p =
                Prediction { key: call.key.clone(), created: served, done_at: served + service.as_nanos() as Nanos };
            let body = endpoints::prediction_created_json(number, &p);
            app.predictions.lock().insert(number, p);
            if let Some(g) = guard {
                let mut tasks = app.tasks.lock();
                while tasks.try_join_next().is_some() {}
                tasks.spawn(async move {
                    tokio::time::sleep(service).await;
                    drop(g);
                });
            }
            respond(201, &headers, Body::full(body))
        }
        Work::PredictionGet(id) => {
            let now = SystemClock.now();
            let found = app.predictions.lock().get(&id, &call.key).map(|(n, p)| endpoints::prediction_json(n, p, now));
            drop(guard);
            match found {
                Some(body) => respond(200, &headers, Body::full(body)),
                None => error_response(
                    &ApiError::new(404, "prediction_not_found", format!("no prediction {id:?} for this API key")),
                    &headers,
                ),
            }
        }
        Work::Usage(reported) => {
            // The call itself completes first: its own reservations are settled.
            drop(guard);
            let body = match &app.backend {
                Some(b) => {
                    let (now, figures) = b.inspect(&call.request());
                    endpoints::usage_json(b.plan(), &figures, reported, now)
                }
                None => "{\"period\":null,\"requests\":null,\"tokens\":null,\"limits\":[]}".to_string(),
            };
            respond(200, &headers, Body::full(body))
        }
        Work::Generic => {
            tokio::time::sleep(service).await;
            let body = serde_json::json!({"object": "ratesim.response", "endpoint": call.endpoint}).to_string();
            respond(200, &headers, Body::full(body).guarded(guard, call.tokens, call.money))
        }
    }
}
