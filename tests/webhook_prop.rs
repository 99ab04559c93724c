//! Property tests of the consignment webhook: arbitrary bytes as a body, with arbitrary content
//! types and query strings, through the Lambda adapter (as API Gateway would deliver them,
//! Base64-encoded when not UTF-8) never panic and are answered 400, 401 or 413 — or 202 when a
//! correctly signed body happens to be a delivery, whatever its content type (the content type
//! is no gate). No log line carries a secret.

#[path = "webhook_support.rs"]
mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shared::webhook::{MAX_BODY_BYTES, parse_delivery};
use support::*;

/// Bodies: mostly small arbitrary bytes, some JSON-ish text, and some around the size limit.
fn bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..512),
        3 => "[\\[\\]{}\",:0-9a-zA-Z \\\\]{0,200}".prop_map(String::into_bytes),
        1 => (MAX_BODY_BYTES - 2..MAX_BODY_BYTES + 3, any::<u8>())
            .prop_map(|(n, b)| vec![b; n]),
    ]
}

fn content_types() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(Some("application/json".to_string())),
        Just(Some("application/json; charset=utf-8".to_string())),
        Just(Some("text/plain".to_string())),
        Just(None),
        "[a-z/+;= -]{0,30}".prop_map(Some),
    ]
}

/// How the request is signed: correctly, not at all, or with random query text.
#[derive(Debug, Clone)]
enum Signing {
    Correct,
    Unsigned,
    Query(String),
}

fn signings() -> impl Strategy<Value = Signing> {
    prop_oneof![
        Just(Signing::Correct),
        Just(Signing::Unsigned),
        "[a-zA-Z0-9%+/=&_.~-]{0,60}".prop_map(Signing::Query),
    ]
}

#[test]
fn arbitrary_bodies_never_panic_and_get_a_client_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let world = runtime.block_on(World::new());
    let mut runner = TestRunner::new(Config {
        cases: integration_tests::prop_cases(400),
        failure_persistence: None,
        ..Config::default()
    });
    let seen = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let strategy = (
        bodies(),
        content_types(),
        signings(),
        any::<bool>(),
        prop_oneof![Just("POST"), Just("POST"), Just("POST"), Just("PATCH")],
    );
    runner
        .run(
            &strategy,
            |(body, content_type, signing, base64, method)| {
                let mut post = Post::signed(body.clone())
                    .content_type(content_type.as_deref())
                    .method(method)
                    .base64(base64);
                match &signing {
                    Signing::Correct => {}
                    Signing::Unsigned => post.raw_query = None,
                    Signing::Query(q) => post.raw_query = Some(q.clone()),
                }
                let reply = runtime.block_on(world.call(post.request()));
                seen.borrow_mut().insert(reply.status);
                let delivery = matches!(signing, Signing::Correct)
                    && body.len() <= MAX_BODY_BYTES
                    && method == "POST"
                    && parse_delivery(&body).is_ok();
                if delivery {
                    prop_assert_eq!(reply.status, 202);
                } else if method != "POST" {
                    prop_assert_eq!(reply.status, 405);
                } else {
                    prop_assert!(
                        [400, 401, 413].contains(&reply.status),
                        "answered {} {}",
                        reply.status,
                        reply.body
                    );
                }
                prop_assert!(reply.body.is_object());
                Ok(())
            },
        )
        .unwrap();
    assert_no_secret_logged();
}

#[test]
fn arbitrary_bodies_straight_into_the_shared_handler() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let world = runtime.block_on(World::new());
    let mut runner = TestRunner::new(Config {
        cases: integration_tests::prop_cases(400),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..1024),
        any::<bool>(),
        proptest::option::of("[ -~]{0,40}"),
    );
    runner
        .run(&strategy, |(body, signed, id)| {
            let query = if signed {
                shared::webhook::parse_query(&signed_query(&body))
            } else {
                Vec::new()
            };
            let request = shared::webhook::WebhookRequest {
                method: "POST",
                integration_id: id.as_deref().or(Some("acme")),
                query: &query,
                body: &body,
                oversized: false,
            };
            let reply = runtime.block_on(shared::webhook::handle(world.ports(), &request));
            let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            prop_assert!(json.is_object());
            if reply.status == 202 {
                prop_assert!(signed && parse_delivery(&body).is_ok());
            } else {
                prop_assert!([400, 401].contains(&reply.status), "{}", reply.status);
            }
            Ok(())
        })
        .unwrap();
    assert_no_secret_logged();
}
