//! The `consignment-webhook` function's adapter between API Gateway (HTTP API, payload 2.0, as
//! `lambda_http` presents it) and `shared::webhook::http`: it reads the method, the
//! `{integration_id}` path parameter, the query string and the body (which
//! `lambda_http` has already Base64-decoded when `isBase64Encoded` is set), and writes the
//! status and JSON body back.

use lambda_http::http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use lambda_http::http::{Response, StatusCode};
use lambda_http::{Body, Request, RequestExt};
use shared::webhook::auth::percent_decode;
use shared::webhook::{WebhookDeps, WebhookRequest, WebhookResponse, handle, parse_query};

/// The path the route serves; the integration id is the segment after it.
pub const ROUTE_PREFIX: &str = "/webhooks/gosweetspot/";

/// The integration id: the `integration_id` path parameter, or else the segment after
/// [`ROUTE_PREFIX`] in the raw path (URL-decoded), when it is the last segment.
pub fn integration_id(request: &Request) -> Option<String> {
    if let Some(id) = request
        .path_parameters_ref()
        .and_then(|p| p.first("integration_id"))
    {
        return Some(id.to_string());
    }
    let raw = request.raw_http_path();
    let path = if raw.is_empty() {
        request.uri().path()
    } else {
        raw
    };
    let (_, rest) = path.split_once(ROUTE_PREFIX)?;
    let segment = rest.strip_suffix('/').unwrap_or(rest);
    if segment.is_empty() || segment.contains('/') {
        return None;
    }
    Some(percent_decode(segment))
}

/// The query parameters: from the raw query string when there is one (so a literal `+` stays a
/// `+`), else from the parameters API Gateway decoded.
pub fn query_pairs(request: &Request) -> Vec<(String, String)> {
    match request.uri().query() {
        Some(raw) => parse_query(raw),
        None => request
            .query_string_parameters_ref()
            .map(|q| {
                q.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Answers one API Gateway request.
pub async fn handle_request(deps: WebhookDeps<'_>, request: Request) -> Response<Body> {
    let id = integration_id(&request);
    let query = query_pairs(&request);
    let body: &[u8] = request.body().as_ref();
    let answer = handle(
        deps,
        &WebhookRequest {
            method: request.method().as_str(),
            integration_id: id.as_deref(),
            query: &query,
            body,
        },
    )
    .await;
    to_response(answer)
}

/// The `lambda_http` response for an answer: its status, `Content-Type: application/json`,
/// `Allow` when set, and the JSON body.
pub fn to_response(answer: WebhookResponse) -> Response<Body> {
    let mut response = Response::new(Body::Text(answer.body));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(allow) = answer.allow {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    response
}
