//! What both sandboxes share: request recording, fault injection, optional rate limiting, and
//! starting an axum router on an ephemeral loopback port.
//!
//! Faults are applied by a middleware around every route, so each sandbox's handlers stay
//! faithful and simple: a fault can answer instead of the handler (a status for the next N
//! calls), or after it (a PUT that commits and then answers 500; a body cut short).

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use shared::rate_limit::{Window, max_in_any_window, wait_before};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The largest request body a sandbox reads.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request as a sandbox saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Time since the sandbox started.
    pub at: Duration,
    pub method: String,
    pub path: String,
    /// The raw (still encoded) query string.
    pub query: String,
    pub body: String,
    /// The status answered.
    pub status: u16,
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer this status (and `Retry-After` seconds, if given) without running the handler.
    Status {
        status: u16,
        retry_after: Option<u32>,
    },
    /// Run the handler (so a write commits), then answer 500.
    CommitThen500,
    /// Run the handler, then send its body cut in half (malformed JSON).
    Truncate,
    /// Answer 200 with a body that is not JSON at all.
    Garbage,
    /// Wait this long, then run the handler (a client that times out first leaves the server
    /// to act anyway).
    Hang(Duration),
    /// Run the handler (so a write commits), then wait this long before answering: a write
    /// that others can already see while its caller still waits.
    CommitThenWait(Duration),
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    pub method: Option<Method>,
    /// A path prefix, e.g. `/api/v1/SalesOrders`.
    pub path_prefix: Option<String>,
}

impl Matcher {
    /// Every request.
    pub fn any() -> Self {
        Self::default()
    }

    /// Requests with this method (any path).
    pub fn method(method: Method) -> Self {
        Self {
            method: Some(method),
            path_prefix: None,
        }
    }

    /// Requests with this method and path prefix.
    pub fn route(method: Method, path_prefix: &str) -> Self {
        Self {
            method: Some(method),
            path_prefix: Some(path_prefix.to_string()),
        }
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }
}

#[derive(Debug, Clone)]
struct Rule {
    matcher: Matcher,
    kind: FaultKind,
    /// Fixed count of remaining applications, or a probability per matching request.
    budget: Budget,
}

#[derive(Debug, Clone, Copy)]
enum Budget {
    Next(u32),
    Ratio(f64),
}

/// The shared recording, fault and rate-limit state of one sandbox.
#[derive(Debug)]
pub struct Harness {
    started: Instant,
    records: Mutex<Vec<Record>>,
    rules: Mutex<Vec<Rule>>,
    latency: Mutex<Duration>,
    limits: Mutex<Vec<Window>>,
    accepted: Mutex<VecDeque<Instant>>,
    /// Draws the ratio faults ([`Harness::seed`] makes them replayable).
    rng: Mutex<fastrand::Rng>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the sandbox for every later request.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for Harness {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            records: Mutex::default(),
            rules: Mutex::default(),
            latency: Mutex::default(),
            limits: Mutex::default(),
            accepted: Mutex::default(),
            rng: Mutex::new(fastrand::Rng::new()),
        }
    }
}

impl Harness {
    /// Every request so far, in arrival order.
    pub fn records(&self) -> Vec<Record> {
        lock(&self.records).clone()
    }

    /// Requests so far matching a method and path prefix.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        lock(&self.records)
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .count()
    }

    /// Forgets the recorded requests (faults and limits stay).
    pub fn clear_records(&self) {
        lock(&self.records).clear();
    }

    /// The most requests that arrived in any window of `length`.
    pub fn max_in_window(&self, length: Duration) -> usize {
        let times: Vec<Duration> = lock(&self.records).iter().map(|r| r.at).collect();
        max_in_any_window(&times, length)
    }

    /// How many requests were answered 429.
    pub fn throttled(&self) -> usize {
        lock(&self.records)
            .iter()
            .filter(|r| r.status == 429)
            .count()
    }

    /// Applies `kind` to the next `n` matching requests.
    pub fn inject(&self, matcher: Matcher, kind: FaultKind, n: u32) {
        lock(&self.rules).push(Rule {
            matcher,
            kind,
            budget: Budget::Next(n),
        });
    }

    /// Seeds the draws of the ratio faults: the same seed draws the same sequence (which
    /// request meets which draw still depends on the order requests arrive in).
    pub fn seed(&self, seed: u64) {
        *lock(&self.rng) = fastrand::Rng::with_seed(seed);
    }

    /// Applies `kind` to each matching request with probability `ratio`, until cleared.
    pub fn inject_ratio(&self, matcher: Matcher, kind: FaultKind, ratio: f64) {
        lock(&self.rules).push(Rule {
            matcher,
            kind,
            budget: Budget::Ratio(ratio.clamp(0.0, 1.0)),
        });
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.rules).clear();
    }

    /// Delays every answer by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.latency) = latency;
    }

    /// Enforces these windows with 429 + `Retry-After` (counting the requests it serves).
    pub fn set_limits(&self, windows: Vec<Window>) {
        *lock(&self.limits) = windows;
    }

    fn take_fault(&self, method: &Method, path: &str) -> Option<FaultKind> {
        let mut rules = lock(&self.rules);
        let mut fired = None;
        for rule in rules.iter_mut() {
            if !rule.matcher.matches(method, path) {
                continue;
            }
            match &mut rule.budget {
                Budget::Next(n) if *n > 0 => {
                    *n -= 1;
                    fired = Some(rule.kind.clone());
                }
                Budget::Ratio(p) if lock(&self.rng).f64() < *p => fired = Some(rule.kind.clone()),
                _ => continue,
            }
            break;
        }
        rules.retain(|r| !matches!(r.budget, Budget::Next(0)));
        fired
    }

    /// `Some(retry_after)` when serving one more request now would break a limit.
    fn over_limit(&self) -> Option<Duration> {
        let limits = lock(&self.limits).clone();
        if limits.is_empty() {
            return None;
        }
        let mut accepted = lock(&self.accepted);
        let now = Instant::now();
        let wait = wait_before(accepted.make_contiguous(), &limits, now);
        if wait.is_none() {
            accepted.push_back(now);
            let keep = limits.iter().map(|w| w.max as usize).max().unwrap_or(0);
            while accepted.len() > keep {
                accepted.pop_front();
            }
        }
        wait
    }

    fn record(&self, record: Record) {
        lock(&self.records).push(record);
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

async fn apply(State(h): State<Arc<Harness>>, request: Request, next: Next) -> Response {
    let at = h.started.elapsed();
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let body_text = String::from_utf8_lossy(&bytes).into_owned();

    let latency = *lock(&h.latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = if let Some(wait) = h.over_limit() {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = json_error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert("retry-after", v);
        }
        r
    } else {
        match h.take_fault(&method, &path) {
            Some(FaultKind::Status {
                status,
                retry_after,
            }) => {
                let code =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut r = json_error(code, "injected fault");
                if let Some(secs) = retry_after
                    && let Ok(v) = HeaderValue::from_str(&secs.to_string())
                {
                    r.headers_mut().insert("retry-after", v);
                }
                r
            }
            Some(FaultKind::CommitThen500) => {
                let _committed = next
                    .run(Request::from_parts(parts, Body::from(bytes)))
                    .await;
                json_error(StatusCode::INTERNAL_SERVER_ERROR, "An error has occurred.")
            }
            Some(FaultKind::Truncate) => {
                let inner = next
                    .run(Request::from_parts(parts, Body::from(bytes)))
                    .await;
                let (parts, body) = inner.into_parts();
                let full: Bytes = to_bytes(body, MAX_BODY).await.unwrap_or_default();
                let cut = full.slice(..full.len() / 2);
                let mut r = Response::from_parts(parts, Body::from(cut));
                r.headers_mut().remove(axum::http::header::CONTENT_LENGTH);
                r
            }
            Some(FaultKind::CommitThenWait(pause)) => {
                let committed = next
                    .run(Request::from_parts(parts, Body::from(bytes)))
                    .await;
                tokio::time::sleep(pause).await;
                committed
            }
            Some(FaultKind::Hang(pause)) => {
                tokio::time::sleep(pause).await;
                next.run(Request::from_parts(parts, Body::from(bytes)))
                    .await
            }
            Some(FaultKind::Garbage) => (
                StatusCode::OK,
                [("content-type", "application/json")],
                "<html>Service Unavailable</html>",
            )
                .into_response(),
            None => {
                next.run(Request::from_parts(parts, Body::from(bytes)))
                    .await
            }
        }
    };
    h.record(Record {
        at,
        method: method.to_string(),
        path,
        query,
        body: body_text,
        status: response.status().as_u16(),
    });
    response
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `router` (wrapped in the harness middleware) on 127.0.0.1 and an ephemeral port.
pub async fn serve(router: Router, harness: Arc<Harness>) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let app = router.layer(middleware::from_fn_with_state(harness, apply));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "sandbox server stopped");
        }
    });
    Ok(Running {
        addr,
        stop: Some(stop),
    })
}
