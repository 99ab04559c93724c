//! The HTTP plumbing both API clients share: pacing, timeouts, retries with `Retry-After` and
//! jittered exponential backoff, outcome classification into typed errors, and call counting.
//!
//! Retries are hand-rolled (a dozen lines) rather than taken from a crate because the rules are
//! ours: `Retry-After` wins over backoff, non-idempotent calls are retried only when the server
//! certainly did not act (429), and each attempt passes through the limiter because each
//! attempt is a call against the API's budget.

use crate::rate_limit::RateLimiter;
use crate::tolerant::BodyError;
use reqwest::StatusCode;
use std::collections::BTreeMap;
use std::fmt;
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
            ApiError::Server { status, .. } | ApiError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff ceiling; doubled on each attempt.
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this ends the call instead of sleeping through it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(65),
        }
    }
}

impl RetryPolicy {
    /// Full-jitter backoff for the given attempt (1-based): uniform in `[0, min(max, base·2ⁿ⁻¹)]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        ceiling.mul_f64(fastrand::f64())
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

    /// Calls made so far per operation.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// Whether a request may safely be sent again after an ambiguous failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads, upserts and deletes: retried on any transient failure.
    Idempotent,
    /// Writes whose effect may already have happened: retried only on 429, when the server
    /// certainly did not act. Other failures go back to the caller to decide (read back).
    NotIdempotent,
}

/// One API host: the HTTP client, its limiter, retry policy and call counter.
pub struct Endpoint {
    pub service: Service,
    http: reqwest::Client,
    limiter: Arc<dyn RateLimiter>,
    retry: RetryPolicy,
    calls: CallCounter,
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
    pub timeout: Duration,
    pub connect_timeout: Duration,
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
    /// Builds the HTTP client (rustls, explicit timeouts) once.
    pub fn new(config: EndpointConfig) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("cin7-gss/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::InvalidRequest {
                service: config.service,
                operation: "client setup",
                detail: e.to_string(),
            })?;
        Ok(Self {
            service: config.service,
            http,
            limiter: config.limiter,
            retry: config.retry,
            calls: CallCounter::default(),
            auth_hint: config.auth_hint,
            permission_hint: config.permission_hint,
        })
    }

    /// The call counter (shared with clones).
    pub fn calls(&self) -> &CallCounter {
        &self.calls
    }

    /// The underlying HTTP client, for building requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends a request built by `build` (called once per attempt) and parses a 2xx body with
    /// `parse`. Retries transient failures per `idempotency`; for idempotent calls a body that
    /// does not parse is retried too (a truncated answer). `accept` lists extra non-2xx statuses
    /// handed to `parse` instead of failing (e.g. 404 for a lookup).
    pub async fn call<T>(
        &self,
        operation: &'static str,
        idempotency: Idempotency,
        accept: &[StatusCode],
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        parse: impl Fn(&Answer) -> Result<T, BodyError>,
    ) -> Result<T, ApiError> {
        let service = self.service;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.limiter
                .acquire()
                .await
                .map_err(|e| ApiError::Limiter {
                    service,
                    operation,
                    detail: e.to_string(),
                })?;
            self.calls.record(operation);
            let outcome = match build(&self.http).send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    match response.bytes().await {
                        Ok(body) => Outcome::Answered(Answer { status, body }, retry_after),
                        Err(e) => Outcome::NoAnswer(describe_transport(e), true),
                    }
                }
                Err(e) => {
                    let unsent = e.is_connect();
                    Outcome::NoAnswer(describe_transport(e), unsent)
                }
            };
            let last = attempt >= self.retry.max_attempts;
            let (error, wait) = match outcome {
                Outcome::Answered(answer, retry_after) => {
                    let status = answer.status;
                    if status.is_success() || accept.contains(&status) {
                        match parse(&answer) {
                            Ok(value) => return Ok(value),
                            Err(e) => {
                                let err = ApiError::Malformed {
                                    service,
                                    operation,
                                    detail: e.to_string(),
                                };
                                if idempotency == Idempotency::NotIdempotent {
                                    return Err(err);
                                }
                                (err, None)
                            }
                        }
                    } else {
                        let detail = truncate_text(&String::from_utf8_lossy(&answer.body), 300);
                        match status.as_u16() {
                            401 => {
                                return Err(ApiError::Unauthorized {
                                    service,
                                    operation,
                                    hint: self.auth_hint,
                                });
                            }
                            403 => {
                                return Err(ApiError::Forbidden {
                                    service,
                                    operation,
                                    hint: self.permission_hint,
                                });
                            }
                            429 => (
                                ApiError::RateLimited {
                                    service,
                                    operation,
                                    attempts: attempt,
                                },
                                retry_after,
                            ),
                            code @ (408 | 500..=599) => {
                                let err = ApiError::Server {
                                    service,
                                    operation,
                                    status: code,
                                    attempts: attempt,
                                    detail,
                                };
                                if idempotency == Idempotency::NotIdempotent {
                                    return Err(err);
                                }
                                (err, retry_after)
                            }
                            code => {
                                return Err(ApiError::Rejected {
                                    service,
                                    operation,
                                    status: code,
                                    detail,
                                });
                            }
                        }
                    }
                }
                Outcome::NoAnswer(detail, certainly_unsent) => {
                    let err = ApiError::Transport {
                        service,
                        operation,
                        attempts: attempt,
                        detail,
                    };
                    if idempotency == Idempotency::NotIdempotent && !certainly_unsent {
                        return Err(err);
                    }
                    (err, None)
                }
            };
            if last {
                tracing::warn!(%service, operation, attempts = attempt, error = %error, "giving up");
                return Err(error);
            }
            let delay = match wait {
                Some(after) if after > self.retry.max_retry_after => {
                    tracing::warn!(%service, operation, retry_after_s = after.as_secs(), "Retry-After beyond our patience; giving up");
                    return Err(error);
                }
                // Honour Retry-After, plus a little jitter so parallel callers do not return
                // in lockstep.
                Some(after) => after + self.retry.backoff(1) / 4,
                None => self.retry.backoff(attempt),
            };
            tracing::info!(%service, operation, attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

enum Outcome {
    Answered(Answer, Option<Duration>),
    /// No usable answer; the flag says whether the request certainly never reached the server.
    NoAnswer(String, bool),
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
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        };
        for attempt in 1..12 {
            let ceiling = Duration::from_millis(100 * (1 << (attempt - 1))).min(p.max_delay);
            for _ in 0..50 {
                assert!(p.backoff(attempt) <= ceiling);
            }
        }
    }

    #[test]
    fn truncation_is_char_safe() {
        assert_eq!(truncate_text("héllo", 2), "hé…");
        assert_eq!(truncate_text("hi", 5), "hi");
    }
}
