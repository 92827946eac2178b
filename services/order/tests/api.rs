//! The order API in process against the real item service binary on
//! loopback, run once on the in-memory stores and once on PostgreSQL.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use berth_service_kit::both_stores;
use berth_service_kit::testing::items::{create_item, reserve, stock};
use berth_service_kit::testing::{
    Api, Backend, Process, Reply, assert_get_statuses, workspace_binary,
};
use order_service::model::{LineInput, NewOrder, Order};
use order_service::store::Inserted;
use serde_json::{Value, json};
use uuid::Uuid;

struct Harness {
    _item_service: Process,
    item: Api,
    order_service: order_service::Service,
    order: Api,
}

async fn harness(backend: &Backend) -> Harness {
    let item_service = Process::start(
        &workspace_binary("item-service"),
        0,
        &backend.sibling("item").env(),
    );
    let item_url = item_service.url();
    let config = backend.config(&[
        ("ITEM_URL", &item_url),
        ("ITEM_TIMEOUT_MS", "2000"),
        ("RECONCILE_INTERVAL_MS", "3600000"),
    ]);
    let order_service = order_service::build(&config).await.unwrap();
    Harness {
        item: item_service.api(),
        _item_service: item_service,
        order: Api::in_process(order_service.router.clone()),
        order_service,
    }
}

/// `POST /v1/orders` of `lines`, under the idempotency `key` if given.
async fn order(api: &Api, lines: Value, key: Option<&str>) -> Reply {
    let headers: Vec<_> = key
        .map(|key| ("idempotency-key", key))
        .into_iter()
        .collect();
    api.json_with_headers(
        Method::POST,
        "/v1/orders",
        &headers,
        &json!({ "lines": lines }),
    )
    .await
}

async fn place_get_list_and_cancel(backend: Backend) {
    let h = harness(&backend).await;
    let cup = create_item(&h.item, "Cup", 250, "EUR", 5).await;
    let pot = create_item(&h.item, "Teapot", 1000, "EUR", 2).await;

    let placed = order(
        &h.order,
        json!([{"item_id": cup, "quantity": 2}, {"item_id": pot, "quantity": 1}]),
        None,
    )
    .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{:?}", placed.json());
    let body = placed.json();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        placed.header("location"),
        Some(format!("/v1/orders/{id}").as_str())
    );
    assert_eq!(body["status"], "placed");
    assert_eq!(body["currency"], "EUR");
    assert_eq!(body["total_minor"], 1500);
    assert_eq!(body["lines"][0]["name"], "Cup");
    assert_eq!(body["lines"][0]["unit_price_minor"], 250);
    assert_eq!(body["lines"][0]["line_total_minor"], 500);
    assert_eq!(stock(&h.item, &cup).await, 3);
    assert_eq!(stock(&h.item, &pot).await, 1);
    let hold = h
        .item
        .get(&format!("/v1/reservations/order:{id}:0"))
        .await
        .json();
    assert_eq!(hold["status"], "confirmed");

    assert_eq!(h.order.get(&format!("/v1/orders/{id}")).await.json(), body);
    for _ in 0..2 {
        assert_eq!(
            order(&h.order, json!([{"item_id": cup, "quantity": 1}]), None)
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let page = h.order.get("/v1/orders?limit=2").await.json();
    assert_eq!(page["orders"].as_array().unwrap().len(), 2);
    assert_eq!(page["orders"][0]["id"], id.as_str());
    let rest = h.order.next_page("/v1/orders?limit=2", &page).await;
    assert_eq!(rest["orders"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());

    let cancelled = h.order.post(&format!("/v1/orders/{id}/cancel")).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.json()["status"], "cancelled");
    assert_eq!(
        stock(&h.item, &cup).await,
        3,
        "2 of the cup's units came back, 2 remain in the other orders"
    );
    assert_eq!(stock(&h.item, &pot).await, 2);
    let again = h.order.post(&format!("/v1/orders/{id}/cancel")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(stock(&h.item, &pot).await, 2);
    let missing = h
        .order
        .post(&format!("/v1/orders/{}/cancel", Uuid::now_v7()))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn invalid_orders_are_refused(backend: Backend) {
    let h = harness(&backend).await;
    let euro = create_item(&h.item, "Euro thing", 100, "EUR", 5).await;
    let pound = create_item(&h.item, "Pound thing", 100, "GBP", 5).await;
    let cases = [
        (json!([]), "lines"),
        (
            json!([{"item_id": euro, "quantity": 0}]),
            "lines[0].quantity",
        ),
        (
            json!([{"item_id": euro, "quantity": 1}, {"item_id": euro, "quantity": 2}]),
            "lines[1].item_id",
        ),
        (
            json!([{"item_id": Uuid::now_v7(), "quantity": 1}]),
            "lines[0].item_id",
        ),
        (
            json!([{"item_id": euro, "quantity": 1}, {"item_id": pound, "quantity": 1}]),
            "lines[1].item_id",
        ),
        (
            json!([{"item_id": "nope", "quantity": 1}]),
            "lines[0].item_id",
        ),
    ];
    for (lines, field) in cases {
        let reply = order(&h.order, lines.clone(), None).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{lines}: {:?}",
            reply.json()
        );
        assert_eq!(reply.json()["errors"][0]["field"], field, "{lines}");
    }
    assert_eq!(
        stock(&h.item, &euro).await,
        5,
        "refused orders hold nothing"
    );
    let malformed = h
        .order
        .raw(Method::POST, "/v1/orders", "application/json", b"{lines")
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    let long_key = "k".repeat(201);
    let bad_key = order(
        &h.order,
        json!([{"item_id": euro, "quantity": 1}]),
        Some(&long_key),
    )
    .await;
    assert!(
        bad_key.status == StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        bad_key.status
    );
    assert_get_statuses(
        &h.order,
        &[
            (
                &format!("/v1/orders/{}", Uuid::now_v7()),
                StatusCode::NOT_FOUND,
            ),
            ("/v1/orders/xyz", StatusCode::NOT_FOUND),
            ("/v1/orders?limit=1000", StatusCode::UNPROCESSABLE_ENTITY),
        ],
    )
    .await;
}

async fn partial_failure_is_compensated(backend: Backend) {
    let h = harness(&backend).await;
    let plenty = create_item(&h.item, "Plenty", 100, "EUR", 5).await;
    let scarce = create_item(&h.item, "Scarce", 100, "EUR", 1).await;
    let reply = order(
        &h.order,
        json!([{"item_id": plenty, "quantity": 2}, {"item_id": scarce, "quantity": 3}]),
        None,
    )
    .await;
    reply.assert_problem(StatusCode::CONFLICT, "insufficient-stock");
    assert!(reply.json()["detail"].as_str().unwrap().contains(&scarce));
    // The first line was reserved, then released by the compensation.
    assert_eq!(stock(&h.item, &plenty).await, 5);
    assert_eq!(stock(&h.item, &scarce).await, 1);
    let orders = h.order.get("/v1/orders").await.json();
    assert_eq!(orders["orders"][0]["status"], "failed");
    let id = orders["orders"][0]["id"].as_str().unwrap();
    assert_eq!(
        h.item
            .get(&format!("/v1/reservations/order:{id}:0"))
            .await
            .json()["status"],
        "released"
    );
}

async fn idempotency_key_replays_the_first_result(backend: Backend) {
    let h = harness(&backend).await;
    let lamp = create_item(&h.item, "Lamp", 700, "EUR", 10).await;
    let lines = json!([{"item_id": lamp, "quantity": 3}]);
    let first = order(&h.order, lines.clone(), Some("client-retry-1")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = order(&h.order, lines.clone(), Some("client-retry-1")).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.json()["id"], first.json()["id"]);
    assert_eq!(stock(&h.item, &lamp).await, 7);
    let other_body = order(
        &h.order,
        json!([{"item_id": lamp, "quantity": 1}]),
        Some("client-retry-1"),
    )
    .await;
    other_body.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");

    // The same key sent concurrently: one order, the others wait or replay.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let order_api = h.order.clone();
        let lines = json!([{"item_id": lamp, "quantity": 2}]);
        tasks.push(tokio::spawn(async move {
            order(&order_api, lines, Some("burst")).await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            StatusCode::CREATED => {
                ids.insert(reply.json()["id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => assert_eq!(reply.problem_slug(), "request-in-progress"),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(stock(&h.item, &lamp).await, 5);
    let orders = h.order.get("/v1/orders").await.json();
    assert_eq!(orders["orders"].as_array().unwrap().len(), 2);
}

async fn reconciler_releases_abandoned_orders(backend: Backend) {
    let h = harness(&backend).await;
    let sofa = create_item(&h.item, "Sofa", 90000, "EUR", 3).await;
    // A request that crashed after reserving: a pending order and a hold.
    let abandoned = Order::pending(&NewOrder {
        lines: vec![LineInput {
            item_id: sofa.parse().unwrap(),
            quantity: 2,
        }],
    });
    let saga = &h.order_service.saga;
    assert!(matches!(
        saga.store
            .insert_pending(&abandoned, None, "x")
            .await
            .unwrap(),
        Inserted::New
    ));
    let hold = reserve(&h.item, &abandoned.reservation_key(0), &sofa, 2).await;
    assert_eq!(hold.status, StatusCode::CREATED);
    assert_eq!(stock(&h.item, &sofa).await, 1);

    // Within the grace period a pending order may still be live: untouched.
    assert_eq!(saga.reconcile(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(stock(&h.item, &sofa).await, 1);

    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(saga.reconcile(Duration::from_millis(1)).await.unwrap(), 1);
    assert_eq!(stock(&h.item, &sofa).await, 3);
    let order = h
        .order
        .get(&format!("/v1/orders/{}", abandoned.id))
        .await
        .json();
    assert_eq!(order["status"], "failed");
    assert_eq!(saga.reconcile(Duration::from_millis(1)).await.unwrap(), 0);
}

async fn metrics_and_openapi(backend: Backend) {
    let h = harness(&backend).await;
    let mug = create_item(&h.item, "Mug", 100, "EUR", 1).await;
    assert_eq!(
        order(&h.order, json!([{"item_id": mug, "quantity": 1}]), None)
            .await
            .status,
        StatusCode::CREATED
    );
    let metrics = String::from_utf8(h.order.get("/metrics").await.body).unwrap();
    assert!(
        metrics.contains(r#"item_calls_total{operation="reserve",outcome="success"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("item_breaker_state 0"), "{metrics}");
    assert!(
        metrics.contains(r#"http_requests_total{route="/v1/orders",method="POST",status="201"} 1"#),
        "{metrics}"
    );
    let doc = h.order.get("/openapi.json").await.json();
    assert!(doc["paths"]["/v1/orders"]["post"].is_object());
    assert!(doc["paths"]["/v1/orders/{id}/cancel"].is_object());
    assert_eq!(h.order.get("/readyz").await.status, StatusCode::OK);
}

both_stores!(
    place_get_list_and_cancel,
    invalid_orders_are_refused,
    partial_failure_is_compensated,
    idempotency_key_replays_the_first_result,
    reconciler_releases_abandoned_orders,
    metrics_and_openapi,
);
