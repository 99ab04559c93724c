//! The webhook's one transport: an axum [`Router`] serving [`ROUTE`] with [`super::http`]. The
//! Lambda runs it under `lambda_http` (through `for_api_gateway`), local mode with
//! `axum::serve`, and tests call it with `tower::ServiceExt::oneshot`; the console mounts
//! beside it.
//!
//! The integration id is the path segment after [`ROUTE_PREFIX`], wherever that prefix sits
//! (an API Gateway stage or a custom domain's base path may come before it), URL-decoded; a
//! path with more segments after it has no id (and is refused like a bad signature). The
//! query string is read raw, so a literal `+` in a signature stays a `+`. The body is read up
//! to [`MAX_BODY_BYTES`]; a longer one is refused unread.

use super::auth::{parse_query, percent_decode};
use super::http::{MAX_BODY_BYTES, WebhookPorts, WebhookRequest, WebhookResponse, handle};
use crate::clock::Clock;
use crate::metrics::MetricsSink;
use crate::queue::JobQueue;
use crate::secrets::SecretSource;
use crate::store::WebhookStore;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use std::sync::Arc;

/// The path before the integration id.
pub const ROUTE_PREFIX: &str = "/webhooks/gosweetspot/";

/// The route, as axum and API Gateway write it.
pub const ROUTE: &str = "/webhooks/gosweetspot/{integration_id}";

/// What the router serves from: owned, shared by every request.
#[derive(Clone)]
pub struct WebhookState {
    pub store: Arc<dyn WebhookStore>,
    pub secrets: Arc<dyn SecretSource>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn MetricsSink>,
}

impl WebhookState {
    /// The ports one request borrows.
    pub fn ports(&self) -> WebhookPorts<'_> {
        WebhookPorts {
            store: self.store.as_ref(),
            secrets: self.secrets.as_ref(),
            queue: self.queue.as_ref(),
            clock: self.clock.as_ref(),
            metrics: self.metrics.as_ref(),
        }
    }
}

/// The webhook router: [`ROUTE`], any method (a wrong one is answered 405 by the endpoint), and
/// the same endpoint under any prefix before [`ROUTE_PREFIX`]; other paths are 404.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(ROUTE, any(deliver))
        .fallback(deliver)
        // The endpoint reads the body itself, up to its own limit.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// The integration id of a request path: the segment after [`ROUTE_PREFIX`] when it is the
/// last one, URL-decoded. `None` when the path has no such segment; `Err` when the path is not
/// one of the webhook's at all.
fn integration_id(path: &str) -> Result<Option<String>, ()> {
    let (_, rest) = path.split_once(ROUTE_PREFIX).ok_or(())?;
    let segment = rest.strip_suffix('/').unwrap_or(rest);
    if segment.is_empty() || segment.contains('/') {
        return Ok(None);
    }
    Ok(Some(percent_decode(segment)))
}

async fn deliver(
    State(state): State<WebhookState>,
    method: Method,
    uri: Uri,
    body: Body,
) -> Response {
    let Ok(id) = integration_id(uri.path()) else {
        return json(
            StatusCode::NOT_FOUND,
            r#"{"error":"not found"}"#.into(),
            None,
        );
    };
    let query = parse_query(uri.query().unwrap_or(""));
    let (body, oversized) = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => (bytes, false),
        Err(e) if is_length_limit(&e) => (Default::default(), true),
        Err(e) => {
            tracing::warn!(error = %e, "webhook body could not be read");
            let body = r#"{"error":"the body could not be read"}"#.into();
            return json(StatusCode::BAD_REQUEST, body, None);
        }
    };
    let answer = handle(
        state.ports(),
        &WebhookRequest {
            method: method.as_str(),
            integration_id: id.as_deref(),
            query: &query,
            body: &body,
            oversized,
        },
    )
    .await;
    respond(answer)
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// An answer as an HTTP response: its status, `Content-Type: application/json`, `Allow` when
/// set, and the JSON body.
fn respond(answer: WebhookResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, answer.body, answer.allow)
}

fn json(status: StatusCode, body: String, allow: Option<&'static str>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(allow) = allow {
        headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    response
}

/// The router as the Lambda serves it behind API Gateway, each event's request made the one
/// the router reads, before routing: the path is [`ROUTE_PREFIX`] and the `integration_id`
/// API Gateway matched (when it passed one; it is authoritative for the route it matched), and
/// a request whose event carried no raw query string gets one written from the parameters API
/// Gateway decoded.
#[cfg(feature = "aws")]
pub fn for_api_gateway(
    router: Router,
) -> tower::util::MapRequest<Router, fn(lambda_http::Request) -> lambda_http::Request> {
    use tower::ServiceExt;
    router.map_request(api_gateway_request as fn(_) -> _)
}

#[cfg(feature = "aws")]
fn api_gateway_request(mut request: lambda_http::Request) -> lambda_http::Request {
    use lambda_http::RequestExt;
    let encode = |text: &str| {
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let path = match request
        .path_parameters_ref()
        .and_then(|p| p.first("integration_id"))
    {
        Some(id) => format!("{ROUTE_PREFIX}{}", encode(id)),
        None => request.uri().path().to_string(),
    };
    let query = match request.uri().query() {
        Some(raw) => raw.to_string(),
        None => request
            .query_string_parameters_ref()
            .map(|q| {
                q.iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .unwrap_or_default(),
    };
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    match uri.parse::<Uri>() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(e) => tracing::warn!(error = %e, "API Gateway's path and query make no URI"),
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_last_segment_after_the_prefix() {
        let id = |p| integration_id(p);
        assert_eq!(
            id("/webhooks/gosweetspot/acme"),
            Ok(Some("acme".to_string()))
        );
        assert_eq!(
            id("/prod/webhooks/gosweetspot/acme/"),
            Ok(Some("acme".to_string()))
        );
        assert_eq!(
            id("/webhooks/gosweetspot/a%2Fb"),
            Ok(Some("a/b".to_string()))
        );
        assert_eq!(id("/webhooks/gosweetspot/"), Ok(None));
        assert_eq!(id("/webhooks/gosweetspot/../acme"), Ok(None));
        assert_eq!(id("/elsewhere"), Err(()));
    }
}
