//! A local Lambda Runtime API (`/2018-06-01/runtime/…`): hands events to a function process
//! on `invocation/next`, and collects its `response`, `error` and `init/error` posts — what
//! Lambda does for a `provided.al2023` function.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    Error(Value),
}

#[derive(Default)]
struct StubState {
    pending: Mutex<VecDeque<(String, Value)>>,
    arrived: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_errors: Mutex<Vec<(String, Value)>>,
    next_calls: Mutex<usize>,
    first_next: Mutex<Option<std::time::Instant>>,
}

/// A running Runtime API stub.
pub struct RuntimeStub {
    pub addr: SocketAddr,
    state: Arc<StubState>,
    counter: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn next(State(state): State<Arc<StubState>>) -> Response {
    lock(&state.first_next).get_or_insert_with(std::time::Instant::now);
    *lock(&state.next_calls) += 1;
    loop {
        let item = lock(&state.pending).pop_front();
        if let Some((id, event)) = item {
            let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
            let mut response = axum::Json(event).into_response();
            let headers = response.headers_mut();
            let set = |h: &mut HeaderMap, k: &'static str, v: String| {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            };
            set(headers, "lambda-runtime-aws-request-id", id);
            set(headers, "lambda-runtime-deadline-ms", deadline.to_string());
            set(
                headers,
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:ap-southeast-2:123456789012:function:test".into(),
            );
            set(
                headers,
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".into(),
            );
            return response;
        }
        state.arrived.notified().await;
    }
}

async fn respond(
    State(state): State<Arc<StubState>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    if let Some(tx) = lock(&state.waiting).remove(&id) {
        let _ = tx.send(Outcome::Response(value));
    }
    StatusCode::ACCEPTED
}

async fn error(
    State(state): State<Arc<StubState>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    if let Some(tx) = lock(&state.waiting).remove(&id) {
        let _ = tx.send(Outcome::Error(value));
    }
    StatusCode::ACCEPTED
}

async fn init_error(
    State(state): State<Arc<StubState>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let kind = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    lock(&state.init_errors).push((kind, value));
    StatusCode::ACCEPTED
}

impl RuntimeStub {
    /// Starts the stub on 127.0.0.1 and an ephemeral port.
    pub async fn start() -> Self {
        let state = Arc::new(StubState::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            state,
            counter: Mutex::new(0),
        }
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Outcome {
        let id = {
            let mut c = lock(&self.counter);
            *c += 1;
            format!("req-{}", *c)
        };
        let (tx, rx) = oneshot::channel();
        lock(&self.state.waiting).insert(id.clone(), tx);
        lock(&self.state.pending).push_back((id, event));
        self.state.arrived.notify_waiters();
        self.state.arrived.notify_one();
        tokio::time::timeout(timeout, rx)
            .await
            .expect("the function answered in time")
            .expect("an answer")
    }

    /// The `init/error` posts so far: the error type header and the body.
    pub fn init_errors(&self) -> Vec<(String, Value)> {
        lock(&self.state.init_errors).clone()
    }

    /// When the function first asked for an event (the end of its init), if it has.
    pub fn first_next_at(&self) -> Option<std::time::Instant> {
        *lock(&self.state.first_next)
    }

    /// How many times the function asked for the next event.
    pub fn next_calls(&self) -> usize {
        *lock(&self.state.next_calls)
    }
}

/// A function binary running against a [`RuntimeStub`]; killed when dropped.
pub struct FunctionProcess(pub std::process::Child);

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the function binary at `path` as Lambda would (`AWS_LAMBDA_*`, JSON logs at INFO,
/// output discarded) against `stub`, with `env` added.
pub fn start_function(
    path: &std::path::Path,
    name: &str,
    stub: &RuntimeStub,
    env: &[(&str, String)],
) -> FunctionProcess {
    function_command(std::process::Command::new(path), name, stub, env)
}

/// Whether this machine lets the tests start a process in a PID namespace of its own
/// (`unshare --pid`, root on Linux).
pub fn pid_namespaces_available() -> bool {
    std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the function binary as [`start_function`] does, in a PID namespace of its own, where
/// it is PID 1 — as Lambda's execution environments, separate microVMs, typically run their
/// bootstrap under the same small PID. Needs [`pid_namespaces_available`].
pub fn start_function_as_pid_one(
    path: &std::path::Path,
    name: &str,
    stub: &RuntimeStub,
    env: &[(&str, String)],
) -> FunctionProcess {
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child"]).arg(path);
    function_command(cmd, name, stub, env)
}

fn function_command(
    mut cmd: std::process::Command,
    name: &str,
    stub: &RuntimeStub,
    env: &[(&str, String)],
) -> FunctionProcess {
    cmd.env("AWS_LAMBDA_RUNTIME_API", stub.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    FunctionProcess(cmd.spawn().expect("the function starts"))
}
