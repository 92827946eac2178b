//! The order API in process against the real item service binary on
//! loopback, run once on the in-memory stores and once on PostgreSQL.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use berth_service_kit::both_stores;
use berth_service_kit::testing::{Api, Backend, Process, Reply, workspace_binary};
use order_service::model::{Order, OrderLine, OrderStatus};
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

async fn item(h: &Harness, name: &str, price: i64, currency: &str, stock: i64) -> String {
    let reply = h
        .item
        .json(
            Method::POST,
            "/v1/items",
            &json!({"name": name, "price_minor": price, "currency": currency, "stock": stock}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    reply.json()["id"].as_str().unwrap().to_owned()
}

async fn stock(h: &Harness, id: &str) -> i64 {
    h.item.get(&format!("/v1/items/{id}")).await.json()["stock"]
        .as_i64()
        .unwrap()
}

async fn order(h: &Harness, lines: Value, key: Option<&str>) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    h.order
        .send(
            Method::POST,
            "/v1/orders",
            &headers,
            Some(json!({ "lines": lines }).to_string().into_bytes()),
        )
        .await
}

async fn place_get_list_and_cancel(backend: Backend) {
    let h = harness(&backend).await;
    let cup = item(&h, "Cup", 250, "EUR", 5).await;
    let pot = item(&h, "Teapot", 1000, "EUR", 2).await;

    let placed = order(
        &h,
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
    assert_eq!(stock(&h, &cup).await, 3);
    assert_eq!(stock(&h, &pot).await, 1);
    let hold = h
        .item
        .get(&format!("/v1/reservations/order:{id}:0"))
        .await
        .json();
    assert_eq!(hold["status"], "confirmed");

    assert_eq!(h.order.get(&format!("/v1/orders/{id}")).await.json(), body);
    for _ in 0..2 {
        assert_eq!(
            order(&h, json!([{"item_id": cup, "quantity": 1}]), None)
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let page = h.order.get("/v1/orders?limit=2").await.json();
    assert_eq!(page["orders"].as_array().unwrap().len(), 2);
    assert_eq!(page["orders"][0]["id"], id.as_str());
    let rest = h
        .order
        .get(&format!(
            "/v1/orders?limit=2&cursor={}",
            page["next_cursor"].as_str().unwrap()
        ))
        .await
        .json();
    assert_eq!(rest["orders"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());

    let cancelled = h
        .order
        .send(Method::POST, &format!("/v1/orders/{id}/cancel"), &[], None)
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.json()["status"], "cancelled");
    assert_eq!(
        stock(&h, &cup).await,
        3,
        "2 of the cup's units came back, 2 remain in the other orders"
    );
    assert_eq!(stock(&h, &pot).await, 2);
    let again = h
        .order
        .send(Method::POST, &format!("/v1/orders/{id}/cancel"), &[], None)
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(stock(&h, &pot).await, 2);
    let missing = h
        .order
        .send(
            Method::POST,
            &format!("/v1/orders/{}/cancel", Uuid::now_v7()),
            &[],
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn invalid_orders_are_refused(backend: Backend) {
    let h = harness(&backend).await;
    let euro = item(&h, "Euro thing", 100, "EUR", 5).await;
    let pound = item(&h, "Pound thing", 100, "GBP", 5).await;
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
        let reply = order(&h, lines.clone(), None).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{lines}: {:?}",
            reply.json()
        );
        assert_eq!(reply.json()["errors"][0]["field"], field, "{lines}");
    }
    assert_eq!(stock(&h, &euro).await, 5, "refused orders hold nothing");
    let malformed = h
        .order
        .send(
            Method::POST,
            "/v1/orders",
            &[("content-type", "application/json")],
            Some(b"{lines".to_vec()),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    let long_key = "k".repeat(201);
    let bad_key = order(
        &h,
        json!([{"item_id": euro, "quantity": 1}]),
        Some(&long_key),
    )
    .await;
    assert!(
        bad_key.status == StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        bad_key.status
    );
    assert_eq!(
        h.order
            .get(&format!("/v1/orders/{}", Uuid::now_v7()))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.order.get("/v1/orders/xyz").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.order.get("/v1/orders?limit=1000").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn partial_failure_is_compensated(backend: Backend) {
    let h = harness(&backend).await;
    let plenty = item(&h, "Plenty", 100, "EUR", 5).await;
    let scarce = item(&h, "Scarce", 100, "EUR", 1).await;
    let reply = order(
        &h,
        json!([{"item_id": plenty, "quantity": 2}, {"item_id": scarce, "quantity": 3}]),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.problem_slug(), "insufficient-stock");
    assert!(reply.json()["detail"].as_str().unwrap().contains(&scarce));
    // The first line was reserved, then released by the compensation.
    assert_eq!(stock(&h, &plenty).await, 5);
    assert_eq!(stock(&h, &scarce).await, 1);
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
    let lamp = item(&h, "Lamp", 700, "EUR", 10).await;
    let lines = json!([{"item_id": lamp, "quantity": 3}]);
    let first = order(&h, lines.clone(), Some("client-retry-1")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = order(&h, lines.clone(), Some("client-retry-1")).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.json()["id"], first.json()["id"]);
    assert_eq!(stock(&h, &lamp).await, 7);
    let other_body = order(
        &h,
        json!([{"item_id": lamp, "quantity": 1}]),
        Some("client-retry-1"),
    )
    .await;
    assert_eq!(other_body.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other_body.problem_slug(), "idempotency-key-reused");

    // The same key sent concurrently: one order, the others wait or replay.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let order_api = h.order.clone();
        let body = json!({"lines": [{"item_id": lamp, "quantity": 2}]})
            .to_string()
            .into_bytes();
        tasks.push(tokio::spawn(async move {
            order_api
                .send(
                    Method::POST,
                    "/v1/orders",
                    &[
                        ("content-type", "application/json"),
                        ("idempotency-key", "burst"),
                    ],
                    Some(body),
                )
                .await
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
    assert_eq!(stock(&h, &lamp).await, 5);
    let orders = h.order.get("/v1/orders").await.json();
    assert_eq!(orders["orders"].as_array().unwrap().len(), 2);
}

async fn reconciler_releases_abandoned_orders(backend: Backend) {
    let h = harness(&backend).await;
    let sofa = item(&h, "Sofa", 90000, "EUR", 3).await;
    // A request that crashed after reserving: a pending order and a hold.
    let now = order_service::store::now();
    let abandoned = Order {
        id: Uuid::now_v7(),
        status: OrderStatus::Pending,
        lines: vec![OrderLine {
            item_id: sofa.parse().unwrap(),
            quantity: 2,
            name: None,
            unit_price_minor: None,
            line_total_minor: None,
        }],
        currency: None,
        total_minor: None,
        created_at: now,
        updated_at: now,
    };
    let saga = &h.order_service.saga;
    assert!(matches!(
        saga.store
            .insert_pending(&abandoned, None, "x")
            .await
            .unwrap(),
        Inserted::New
    ));
    let hold = h
        .item
        .json(
            Method::PUT,
            &format!("/v1/reservations/{}", abandoned.reservation_key(0)),
            &json!({"item_id": sofa, "quantity": 2}),
        )
        .await;
    assert_eq!(hold.status, StatusCode::CREATED);
    assert_eq!(stock(&h, &sofa).await, 1);

    // Within the grace period a pending order may still be live: untouched.
    assert_eq!(saga.reconcile(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(stock(&h, &sofa).await, 1);

    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(saga.reconcile(Duration::from_millis(1)).await.unwrap(), 1);
    assert_eq!(stock(&h, &sofa).await, 3);
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
    let mug = item(&h, "Mug", 100, "EUR", 1).await;
    assert_eq!(
        order(&h, json!([{"item_id": mug, "quantity": 1}]), None)
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
