//! The consignment webhook: GoSweetSpot posts shipments (consignments) when they are created,
//! picked up and delivered; each newly seen consignment of an order we published becomes one
//! write-back job on the queue.
//!
//! - [`parse`]: the body (a list of up to 50 shipments, one shipment, or the legacy stringified
//!   form) into typed shipments, each judged alone, with the event inferred (pure).
//! - [`auth`]: which query parameter carries the signature, and the constant-time check (pure).
//! - [`accept`]: the use-case: the delivery's sightings queued (see [`crate::sightings`]), and
//!   the delivery audited.
//! - [`http`]: the endpoint's statuses and JSON bodies, whatever the transport.
//! - [`router`](mod@router): the one transport, an axum router: the Lambda's (under
//!   `lambda_http`), local mode's and the tests'.

pub mod accept;
pub mod auth;
pub mod http;
pub mod parse;
pub mod router;

pub use accept::accept_delivery;
pub use auth::{SignatureRefusal, parse_query};
pub use http::{
    MAX_BODY_BYTES, STATUS_CODES, WebhookPorts, WebhookRequest, WebhookResponse, handle,
};
pub use parse::{Delivery, MAX_SHIPMENTS, ParseError, parse_delivery};
pub use router::{ROUTE, ROUTE_PREFIX, WebhookState, router};
