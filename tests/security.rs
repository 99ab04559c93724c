//! Tenant isolation and secrecy: one integration's webhook cannot touch another's orders, a
//! job for one never uses another's credentials, and no secret shows in errors or `Debug`.

use chrono::{TimeZone, Utc};
use integration_tests::*;
use rust_decimal::Decimal;
use sandbox::Ticket;
use serde_json::json;
use shared::app::ClientProvider;
use shared::store::prelude::*;
use shared::webhook::http::{WebhookPorts, WebhookRequest, handle};

#[tokio::test]
async fn a_webhook_signed_for_one_integration_cannot_touch_another() {
    let rig = WriteBackRig::new().await;
    rig.integration("acme", json!({"send_ticket_number": true}))
        .await;
    let mut bolt = sandbox_settings("bolt", &rig.cin7, &rig.gss);
    bolt.webhook.secret.0 = "BOLT_SECRET".into();
    rig.store.put_integration(&bolt).await.unwrap();
    let job = rig
        .ticketed(
            "acme",
            order(
                1,
                "SO-1",
                Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap(),
            ),
            Ticket::default(),
        )
        .await;
    let mut secrets = sandbox_secrets();
    secrets
        .0
        .insert("BOLT_SECRET".into(), "bolt-secret-9f8e".into());
    let queue_dir = tempfile::tempdir().unwrap();
    let queue =
        shared::queue::embedded::EmbeddedQueue::open(&queue_dir.path().join("q"), 5).unwrap();
    let body = serde_json::to_string(
        &json!([{"ConsignmentNo": job.connote, "PackingSlipNo": "SO-1",
        "TotalCost": 8.5, "CreatedUtc": "2026-11-27T01:02:03", "ManualTicket": false}]),
    )
    .unwrap();
    let post = |integration: &'static str, secret: &'static str| {
        let sig = shared::signature::sign(secret.as_bytes(), body.as_bytes()).unwrap();
        (integration, vec![("signature".to_string(), sig)])
    };
    let deps = WebhookPorts {
        store: &rig.store,
        secrets: &secrets,
        queue: &queue,
        clock: &shared::clock::SystemClock,
        metrics: &shared::metrics::LogMetrics,
    };
    // acme's signature on bolt's route: refused.
    let (id, query) = post("bolt", "whsec-3c1d5e");
    let r = handle(
        deps,
        &WebhookRequest {
            method: "POST",
            integration_id: Some(id),
            query: &query,
            body: body.as_bytes(),
            oversized: false,
        },
    )
    .await;
    assert_eq!(r.status, 401);
    // bolt's own signature: bolt has no such order, so nothing is queued for acme's order.
    let (id, query) = post("bolt", "bolt-secret-9f8e");
    let r = handle(
        deps,
        &WebhookRequest {
            method: "POST",
            integration_id: Some(id),
            query: &query,
            body: body.as_bytes(),
            oversized: false,
        },
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["queued"],
        0
    );
    assert_eq!(queue.depth().await.unwrap(), 0);
}

#[tokio::test]
async fn a_job_uses_only_its_own_integrations_credentials_and_sandboxes() {
    let a = WriteBackRig::new().await;
    a.integration("acme", json!({"send_ticket_number": true}))
        .await;
    let b = WriteBackRig::new().await;
    let bolt = sandbox_settings("bolt", &b.cin7, &b.gss);
    a.store.put_integration(&bolt).await.unwrap();
    let job = a
        .ticketed(
            "acme",
            order(
                1,
                "SO-1",
                Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap(),
            ),
            Ticket {
                cost: Decimal::new(100, 2),
                carrier: "Post Haste".into(),
            },
        )
        .await;
    b.cin7.harness().clear_records();
    b.gss.harness().clear_records();
    assert!(
        a.run(a.messages(std::slice::from_ref(&job), 1))
            .await
            .is_empty()
    );
    assert_eq!(a.cin7.order(1).unwrap()["stage"], "Dispatched");
    assert!(
        b.cin7.harness().records().is_empty(),
        "bolt's CIN7 untouched"
    );
    assert!(
        b.gss.harness().records().is_empty(),
        "bolt's GoSweetSpot untouched"
    );
}

#[tokio::test]
async fn no_secret_in_debug_output_or_errors() {
    let rig = WriteBackRig::new().await;
    let settings = rig.integration("acme", json!({})).await;
    let clients = shared::app::ClientCache::new(
        std::sync::Arc::new(rig.store.clone()),
        std::sync::Arc::new(sandbox_secrets()),
        shared::app::Pacing::InProcess,
    );
    let built = clients.clients(&settings).await.unwrap();
    for text in [
        format!("{built:?}"),
        format!("{clients:?}"),
        format!(
            "{:?}",
            shared::secrets::SecretString::from(CIN7_KEY.to_string())
        ),
    ] {
        for secret in [CIN7_KEY, GSS_KEY, "whsec-3c1d5e"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
    let missing = MapSecrets::default();
    let err = shared::secrets::SecretSource::get(&missing, "acme/cin7")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("acme/cin7"));
}
