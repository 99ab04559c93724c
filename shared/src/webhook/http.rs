//! The webhook endpoint's HTTP behaviour, independent of the transport (the
//! [router](mod@super::router) serves it, in Lambda and in local mode): a [`WebhookRequest`]
//! in, a [`WebhookResponse`] (status and JSON body) out.
//!
//! The checks run cheapest first, and nothing is parsed before the sender is authenticated:
//!
//! | status | when |
//! |---|---|
//! | 405 | a method other than `POST` (with `Allow: POST`) |
//! | 413 | a body over [`MAX_BODY_BYTES`] |
//! | 401 | a missing, ambiguous or wrong signature, or an unknown or disabled integration: one body for all |
//! | 400 | a signed body that is not a delivery: not JSON, not a shipment object or list (or the legacy string of one), over 50 shipments |
//! | 202 | accepted: `{"queued": n, "ignored": m, "duplicates": k, "ignored_reasons": {…}}` |
//! | 500 | the jobs could not be queued (or the state store or secret could not be read), so GoSweetSpot retries |
//!
//! The content type is no gate: GoSweetSpot does not document the one it sends (its Legacy
//! webhooks post "stringified JSON"), so the signature and the JSON parse decide. Within a
//! delivery each shipment is judged alone (see [`super::parse`]): one that cannot be written
//! back is ignored with its reason and never fails the others.
//!
//! An unknown or disabled integration's delivery is checked against a secret nobody has, so it
//! costs what a real check costs and is refused exactly like a bad signature. Refusals are
//! logged with the names of the query parameters (never their values), so an operator can see
//! what GoSweetSpot calls its signature parameter.

use super::accept::{OUTCOME_INVALID, accept_delivery, body_sha256, record_audit};
use super::auth::{SignatureRefusal, parameter_names, signature_matches, signature_value};
use super::parse::parse_delivery;
use crate::clock::Clock;
use crate::metrics::{Counts, MetricsSink};
use crate::queue::JobQueue;
use crate::secrets::{ExposeSecret, SecretSource};
use crate::settings::{IntegrationSettings, is_valid_id};
use crate::sightings::{SightingDeps, SightingError, SightingSummary};
use crate::store::{DeliveryAudit, WebhookStore};
use serde_json::json;

/// The largest body accepted: 256 KiB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Every status [`handle`] can answer (the OpenAPI description documents exactly these).
pub const STATUS_CODES: [u16; 6] = [202, 400, 401, 405, 413, 500];

/// The function name on metrics.
pub const FUNCTION: &str = "consignment-webhook";

/// The `Integration` dimension of metrics about requests not (yet) authenticated: the id in
/// the path is the sender's input, and must neither mint metrics nor be confirmed.
pub const UNVERIFIED: &str = "unverified";

/// The body of every 401.
pub const UNAUTHORISED: &str = "unauthorised";

/// What an unknown or disabled integration's signature is checked against.
const NOBODY_S_SECRET: &[u8] = b"cin7-gss: the secret of no integration, for uniform refusals";

/// One webhook request, however it arrived.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The HTTP method, as sent.
    pub method: &'a str,
    /// The `{integration_id}` of the path, if there was one.
    pub integration_id: Option<&'a str>,
    /// The query parameters, URL-decoded, in order (see [`super::auth::parse_query`]).
    pub query: &'a [(String, String)],
    /// The raw body (after any transport Base64 decoding).
    pub body: &'a [u8],
    /// The body was longer than [`MAX_BODY_BYTES`] and left unread (`body` is then empty).
    pub oversized: bool,
}

/// The answer: a status and a JSON body (`{"error": …}` or the [`SightingSummary`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: String,
    /// The `Allow` header (on 405).
    pub allow: Option<&'static str>,
}

/// What the endpoint works through.
#[derive(Clone, Copy)]
pub struct WebhookPorts<'a> {
    /// Integrations, orders by packing slip, consignment sightings, the audit.
    pub store: &'a dyn WebhookStore,
    /// The webhook secrets the settings refer to.
    pub secrets: &'a dyn SecretSource,
    /// The write-back queue.
    pub queue: &'a dyn JobQueue,
    /// Stamps the audit and the sightings.
    pub clock: &'a dyn Clock,
    pub metrics: &'a dyn MetricsSink,
}

enum Rejection {
    Method,
    TooLarge,
    Unauthorised(SignatureRefusal),
    Invalid(String),
    Unavailable,
}

impl Rejection {
    fn status(&self) -> u16 {
        match self {
            Self::Method => 405,
            Self::TooLarge => 413,
            Self::Unauthorised(_) => 401,
            Self::Invalid(_) => 400,
            Self::Unavailable => 500,
        }
    }

    fn metric(&self) -> &'static str {
        match self {
            Self::Method => "RejectedMethod",
            Self::TooLarge => "RejectedTooLarge",
            Self::Unauthorised(_) => "RejectedSignature",
            Self::Invalid(_) => "RejectedInvalid",
            Self::Unavailable => "RejectedUnavailable",
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Method => "method_not_allowed",
            Self::TooLarge => "too_large",
            Self::Unauthorised(r) => r.code(),
            Self::Invalid(_) => "invalid_body",
            Self::Unavailable => "unavailable",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Method => "method not allowed; use POST".into(),
            Self::TooLarge => format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            Self::Unauthorised(_) => UNAUTHORISED.into(),
            Self::Invalid(message) => message.clone(),
            Self::Unavailable => "the delivery could not be queued; please retry".into(),
        }
    }
}

fn respond(status: u16, body: serde_json::Value) -> WebhookResponse {
    WebhookResponse {
        status,
        body: body.to_string(),
        allow: None,
    }
}

/// Rejects a request, logging and counting why.
fn reject(
    ports: WebhookPorts<'_>,
    rejection: Rejection,
    request: &WebhookRequest<'_>,
    verified: Option<&str>,
) -> WebhookResponse {
    let logged_id = request
        .integration_id
        .filter(|id| is_valid_id(id))
        .unwrap_or("<none>");
    let names = parameter_names(request.query);
    let message = rejection.message();
    match &rejection {
        Rejection::Unavailable => tracing::error!(
            integration = logged_id,
            status = rejection.status(),
            reason = rejection.code(),
            "webhook delivery not taken"
        ),
        Rejection::Invalid(_) => tracing::warn!(
            integration = logged_id,
            status = rejection.status(),
            reason = rejection.code(),
            error = %message,
            "webhook delivery refused"
        ),
        _ => tracing::warn!(
            integration = logged_id,
            status = rejection.status(),
            reason = rejection.code(),
            method = request.method.chars().take(16).collect::<String>(),
            query_parameter_names = ?names,
            "webhook delivery refused"
        ),
    }
    ports.metrics.emit(Counts::of(
        FUNCTION,
        verified.unwrap_or(UNVERIFIED),
        &[(rejection.metric(), 1)],
    ));
    let mut response = respond(rejection.status(), json!({ "error": message }));
    if matches!(rejection, Rejection::Method) {
        response.allow = Some("POST");
    }
    response
}

enum AuthFailure {
    Refused(SignatureRefusal),
    Unavailable,
}

/// The enabled integration whose secret signs this body, or why not.
async fn authenticate(
    deps: WebhookPorts<'_>,
    request: &WebhookRequest<'_>,
) -> Result<IntegrationSettings, AuthFailure> {
    let settings = match request.integration_id.filter(|id| is_valid_id(id)) {
        Some(id) => deps.store.get_integration(id).await.map_err(|e| {
            tracing::error!(error = %e, "state store unavailable while reading an integration");
            AuthFailure::Unavailable
        })?,
        None => None,
    }
    .filter(|s| s.enabled);
    let configured = settings
        .as_ref()
        .and_then(|s| s.webhook.signature_param.as_deref());
    let given = signature_value(request.query, configured);
    let secret = match &settings {
        Some(s) => match deps.secrets.get(&s.webhook.secret.0).await {
            Ok(secret) => Some(secret),
            Err(e) if e.is_transient() => {
                tracing::error!(integration = %s.id, error = %e, "webhook secret unavailable");
                return Err(AuthFailure::Unavailable);
            }
            Err(e) => {
                tracing::error!(
                    integration = %s.id,
                    error = %e,
                    "webhook secret missing: deliveries are refused until webhook.secret names a secret"
                );
                None
            }
        },
        None => None,
    };
    let key = secret
        .as_ref()
        .map_or(NOBODY_S_SECRET, |s| s.expose_secret().as_bytes());
    // The MAC is computed on every path, so how long a refusal takes says nothing about the
    // integration (whether it exists, or has a signature parameter configured).
    let matches = signature_matches(key, request.body, given.unwrap_or_default());
    given.map_err(AuthFailure::Refused)?;
    match settings {
        Some(settings) if matches && secret.is_some() => Ok(settings),
        _ => Err(AuthFailure::Refused(SignatureRefusal::Mismatch)),
    }
}

/// Answers one webhook request.
pub async fn handle(deps: WebhookPorts<'_>, request: &WebhookRequest<'_>) -> WebhookResponse {
    if request.method != "POST" {
        return reject(deps, Rejection::Method, request, None);
    }
    if request.oversized || request.body.len() > MAX_BODY_BYTES {
        return reject(deps, Rejection::TooLarge, request, None);
    }
    let settings = match authenticate(deps, request).await {
        Ok(settings) => settings,
        Err(AuthFailure::Refused(refusal)) => {
            return reject(deps, Rejection::Unauthorised(refusal), request, None);
        }
        Err(AuthFailure::Unavailable) => {
            return reject(deps, Rejection::Unavailable, request, None);
        }
    };
    let id = settings.id.as_str();
    let now = deps.clock.now();
    let delivery = match parse_delivery(request.body) {
        Ok(delivery) => delivery,
        Err(e) => {
            let audit = DeliveryAudit {
                at: now,
                body_sha256: body_sha256(request.body),
                shipments: 0,
                queued: 0,
                ignored: 0,
                duplicates: 0,
                ignored_reasons: Default::default(),
                outcome: OUTCOME_INVALID.into(),
            };
            record_audit(deps.store, id, &audit).await;
            return reject(deps, Rejection::Invalid(e.to_string()), request, Some(id));
        }
    };
    let accept = SightingDeps {
        store: deps.store,
        queue: deps.queue,
        clock: deps.clock,
    };
    match accept_delivery(accept, deps.store, id, request.body, &delivery).await {
        Ok(summary) => accepted(deps.metrics, id, delivery.len(), summary),
        Err(e) => {
            if let SightingError::Store(e) = &e {
                tracing::error!(integration = id, error = %e, "state store unavailable");
            }
            reject(deps, Rejection::Unavailable, request, Some(id))
        }
    }
}

fn accepted(
    metrics: &dyn MetricsSink,
    id: &str,
    shipments: usize,
    summary: SightingSummary,
) -> WebhookResponse {
    tracing::info!(
        integration = id,
        shipments,
        queued = summary.queued,
        ignored = summary.ignored,
        duplicates = summary.duplicates,
        ignored_reasons = ?summary.ignored_reasons,
        "webhook delivery accepted"
    );
    metrics.emit(Counts::of(
        FUNCTION,
        id,
        &[
            ("DeliveriesAccepted", 1),
            ("JobsQueued", summary.queued as u64),
            ("ShipmentsIgnored", summary.ignored as u64),
            ("ShipmentsDuplicate", summary.duplicates as u64),
        ],
    ));
    respond(202, json!(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_can_name_an_integration() {
        assert!(is_valid_id("acme-nz_2"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id(&"a".repeat(65)));
    }
}
