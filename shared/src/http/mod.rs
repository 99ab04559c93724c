//! The HTTP plumbing both API clients share: pacing, timeouts, call counting, and each
//! attempt's outcome turned into a value or a typed error. Whether and when to retry is
//! [`retry`]'s.

pub mod retry;

pub use retry::{
    CallKind, Failure, GiveUp, Idempotency, Outcome, RetryPolicy, Schedule, Verdict, classify,
};

use crate::rate_limit::RateLimiter;
use crate::tolerant::BodyError;
use reqwest::StatusCode;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which API a call went to, for messages and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Cin7,
    Gss,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Cin7 => "CIN7",
            Service::Gss => "GoSweetSpot",
        })
    }
}

/// A failed API call. Messages name the service, the operation and what to fix; they never
/// carry a credential.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{service} rejected the credentials on {operation} (HTTP 401): {hint}")]
    Unauthorized {
        service: Service,
        operation: &'static str,
        hint: &'static str,
    },
    #[error("{service} refused {operation} (HTTP 403): {hint}")]
    Forbidden {
        service: Service,
        operation: &'static str,
        hint: &'static str,
    },
    #[error("{service} {operation} was still rate limited (HTTP 429) after {attempts} attempts")]
    RateLimited {
        service: Service,
        operation: &'static str,
        attempts: u32,
    },
    #[error("{service} {operation} failed with HTTP {status} after {attempts} attempts: {detail}")]
    Server {
        service: Service,
        operation: &'static str,
        status: u16,
        attempts: u32,
        detail: String,
    },
    #[error("{service} {operation} got no answer after {attempts} attempts: {detail}")]
    Transport {
        service: Service,
        operation: &'static str,
        attempts: u32,
        detail: String,
    },
    #[error("{service} {operation} was rejected with HTTP {status}: {detail}")]
    Rejected {
        service: Service,
        operation: &'static str,
        status: u16,
        detail: String,
    },
    #[error(
        "{service} refused the whole batch on {operation} (HTTP 400), likely for one of its items: {detail}"
    )]
    BatchRefused {
        service: Service,
        operation: &'static str,
        detail: String,
    },
    #[error("{service} {operation} answered with a body that is not the expected JSON: {detail}")]
    Malformed {
        service: Service,
        operation: &'static str,
        detail: String,
    },
    #[error("{service} {operation} not sent: {detail}")]
    InvalidRequest {
        service: Service,
        operation: &'static str,
        detail: String,
    },
    #[error("{service} {operation} not sent: {detail}")]
    Limiter {
        service: Service,
        operation: &'static str,
        detail: String,
    },
}

impl ApiError {
    /// True when trying again later may succeed (throttling, server errors, timeouts, garbled
    /// bodies); false for credential, permission and validation problems.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. }
                | ApiError::Server { .. }
                | ApiError::Transport { .. }
                | ApiError::Malformed { .. }
                | ApiError::Limiter { .. }
        )
    }

    /// The HTTP status that ended the call, if one did.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Unauthorized { .. } => Some(401),
            ApiError::Forbidden { .. } => Some(403),
            ApiError::RateLimited { .. } => Some(429),
            ApiError::BatchRefused { .. } => Some(400),
            ApiError::Server { status, .. } | ApiError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Counts calls per operation (every attempt is a call). Cheap to clone; clones share counts.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl CallCounter {
    fn record(&self, operation: &'static str) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(operation).or_default() += 1;
        }
    }

    /// Calls made so far, all operations together.
    pub fn total(&self) -> u64 {
        self.counts.lock().map(|c| c.values().sum()).unwrap_or(0)
    }

    /// Calls made so far for one operation.
    pub fn get(&self, operation: &str) -> u64 {
        self.counts
            .lock()
            .map(|c| c.get(operation).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// An HTTP client for one API (rustls, explicit timeouts: `timeout` for a whole request, at
/// most 5 s of it to connect). Build one per API per process and share it: each client has
/// its own connection pool and root-certificate store; credentials go on each request.
pub fn client(service: Service, timeout: Duration) -> Result<reqwest::Client, ApiError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .user_agent(concat!("cin7-gss/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ApiError::InvalidRequest {
            service,
            operation: "client setup",
            detail: e.to_string(),
        })
}

/// One API host: the HTTP client, its limiter, retry policy and call counter.
pub struct Endpoint {
    pub service: Service,
    http: reqwest::Client,
    limiter: Arc<dyn RateLimiter>,
    retry: RetryPolicy,
    calls: CallCounter,
    /// Set when the API answered 401 or 403: the credentials this endpoint's owner holds may
    /// have been rotated.
    rejected: AtomicBool,
    /// Shown on 401.
    pub auth_hint: &'static str,
    /// Shown on 403.
    pub permission_hint: &'static str,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("service", &self.service)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What an [`Endpoint`] is built from.
pub struct EndpointConfig {
    pub service: Service,
    /// The shared HTTP client ([`client`]).
    pub http: reqwest::Client,
    pub limiter: Arc<dyn RateLimiter>,
    pub retry: RetryPolicy,
    pub auth_hint: &'static str,
    pub permission_hint: &'static str,
}

/// A response that passed status checks: its status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: bytes::Bytes,
}

impl Endpoint {
    /// An endpoint over a shared HTTP client.
    pub fn new(config: EndpointConfig) -> Self {
        Self {
            service: config.service,
            http: config.http,
            limiter: config.limiter,
            retry: config.retry,
            calls: CallCounter::default(),
            rejected: AtomicBool::new(false),
            auth_hint: config.auth_hint,
            permission_hint: config.permission_hint,
        }
    }

    /// The call counter (shared with clones).
    pub fn calls(&self) -> &CallCounter {
        &self.calls
    }

    /// True once the API has answered 401 or 403 to this endpoint.
    pub fn credentials_rejected(&self) -> bool {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Sends a request built by `build` (called once per attempt) and parses an accepted
    /// answer with `parse`. Each attempt passes the limiter (it is a call against the API's
    /// budget) and is counted; [`classify`] judges it and the policy's [`Schedule`] paces the
    /// next.
    pub async fn call<T>(
        &self,
        operation: &'static str,
        kind: CallKind<'_>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        parse: impl Fn(&Answer) -> Result<T, BodyError>,
    ) -> Result<T, ApiError> {
        let service = self.service;
        let mut schedule = self.retry.schedule();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            self.limiter
                .acquire()
                .await
                .map_err(|e| ApiError::Limiter {
                    service,
                    operation,
                    detail: e.to_string(),
                })?;
            self.calls.record(operation);
            let (outcome, detail) = match self.send(&build).await {
                Ok((answer, retry_after)) => {
                    let status = answer.status.as_u16();
                    if matches!(status, 401 | 403) {
                        self.rejected.store(true, Ordering::Relaxed);
                    }
                    let outcome = Outcome::Answered {
                        status,
                        retry_after,
                    };
                    if classify(outcome, kind) == Verdict::Accept {
                        match parse(&answer) {
                            Ok(value) => return Ok(value),
                            Err(e) => (Outcome::Unparsable, e.to_string()),
                        }
                    } else {
                        let body = truncate_text(&String::from_utf8_lossy(&answer.body), 300);
                        (outcome, body)
                    }
                }
                Err((detail, unsent)) => (Outcome::NoAnswer { unsent }, detail),
            };
            let failed = Failed {
                service,
                operation,
                attempts,
                detail,
            };
            let retry_after = match classify(outcome, kind) {
                Verdict::Accept => None,
                Verdict::Retry => None,
                Verdict::RetryAfter(after) => Some(after),
                Verdict::PartialFailure => return Err(failed.batch_refused()),
                Verdict::Fail(failure) => return Err(failed.error(outcome, Some(failure), self)),
            };
            let error = failed.error(outcome, None, self);
            let delay = match schedule.next_wait(retry_after) {
                Ok(delay) => delay,
                Err(GiveUp::Exhausted) => {
                    tracing::warn!(%service, operation, attempts, error = %error, "giving up");
                    return Err(error);
                }
                Err(GiveUp::TooLongToWait(after)) => {
                    tracing::warn!(%service, operation, retry_after_s = after.as_secs(), "Retry-After beyond our patience; giving up");
                    return Err(error);
                }
            };
            tracing::info!(%service, operation, attempt = attempts, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt on the wire: the answer and its `Retry-After`, or why there is none and
    /// whether the request certainly never left.
    async fn send(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<(Answer, Option<Duration>), (String, bool)> {
        match build(&self.http).send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = retry_after(response.headers());
                match response.bytes().await {
                    Ok(body) => Ok((Answer { status, body }, retry_after)),
                    Err(e) => Err((describe_transport(e), false)),
                }
            }
            Err(e) => {
                let unsent = e.is_connect();
                Err((describe_transport(e), unsent))
            }
        }
    }
}

/// What a failed attempt leaves for its error.
struct Failed {
    service: Service,
    operation: &'static str,
    attempts: u32,
    detail: String,
}

impl Failed {
    fn batch_refused(self) -> ApiError {
        ApiError::BatchRefused {
            service: self.service,
            operation: self.operation,
            detail: self.detail,
        }
    }

    /// The error for an outcome: the final one when `failure` is given, else the transient one
    /// a retry is about (and, once attempts run out, the call's error).
    fn error(self, outcome: Outcome, failure: Option<Failure>, endpoint: &Endpoint) -> ApiError {
        let Failed {
            service,
            operation,
            attempts,
            detail,
        } = self;
        match (outcome, failure) {
            (_, Some(Failure::Unauthorized)) => ApiError::Unauthorized {
                service,
                operation,
                hint: endpoint.auth_hint,
            },
            (_, Some(Failure::Forbidden)) => ApiError::Forbidden {
                service,
                operation,
                hint: endpoint.permission_hint,
            },
            (Outcome::Answered { status, .. }, Some(Failure::Rejected)) => ApiError::Rejected {
                service,
                operation,
                status,
                detail,
            },
            (Outcome::Answered { status: 429, .. }, _) => ApiError::RateLimited {
                service,
                operation,
                attempts,
            },
            (Outcome::Answered { status, .. }, _) => ApiError::Server {
                service,
                operation,
                status,
                attempts,
                detail,
            },
            (Outcome::Unparsable, _) => ApiError::Malformed {
                service,
                operation,
                detail,
            },
            (Outcome::NoAnswer { .. }, _) => ApiError::Transport {
                service,
                operation,
                attempts,
                detail,
            },
        }
    }
}

fn describe_transport(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        // reqwest errors name the URL; ours carry no credentials in URLs, but keep it short.
        truncate_text(&e.without_url().to_string(), 200)
    }
}

/// Reads `Retry-After` as delta-seconds (integer or decimal). HTTP-dates fall back to backoff.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = text.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Shortens text to at most `max` characters for error messages.
pub fn truncate_text(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_is_char_safe() {
        assert_eq!(truncate_text("héllo", 2), "hé…");
        assert_eq!(truncate_text("hi", 5), "hi");
    }
}
