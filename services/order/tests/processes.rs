//! The order -> item path across two real processes on loopback: the happy
//! path with request-id propagation, the item service down (fast 503, the
//! breaker opens, then closes once it is back), the item service slow
//! (timeout), concurrent orders for the last units (never oversold), and a
//! retried order under one Idempotency-Key (one order). Each runs on both
//! stores.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::Method;
use berth_service_kit::both_stores;
use berth_service_kit::testing::{Backend, Process, items, workspace_binary};
use serde_json::{Value, json};

const ORDER_BINARY: &str = env!("CARGO_BIN_EXE_order-service");

struct Pair {
    item: Process,
    order: Process,
}

fn start(backend: &Backend, order_env: &[(&str, &str)]) -> Pair {
    let item = Process::start(
        &workspace_binary("item-service"),
        0,
        &backend.sibling("item").env(),
    );
    let mut env = backend.env();
    env.push(("ITEM_URL".to_owned(), item.url()));
    env.extend(
        order_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let order = Process::start(Path::new(ORDER_BINARY), 0, &env);
    Pair { item, order }
}

impl Pair {
    async fn create_item(&self, stock: i64) -> String {
        items::create_item(&self.item.api(), "Widget", 1999, "EUR", stock).await
    }

    async fn stock(&self, id: &str) -> i64 {
        items::stock(&self.item.api(), id).await
    }

    async fn order(
        &self,
        item: &str,
        quantity: i64,
        headers: &[(&str, &str)],
    ) -> (u16, Value, Duration) {
        let body = json!({"lines": [{"item_id": item, "quantity": quantity}]});
        let started = Instant::now();
        let reply = self
            .order
            .api()
            .json_with_headers(Method::POST, "/v1/orders", headers, &body)
            .await;
        let elapsed = started.elapsed();
        let status = reply.status.as_u16();
        if status >= 400 {
            assert_eq!(
                reply.header("content-type"),
                Some("application/problem+json")
            );
        }
        (status, reply.json(), elapsed)
    }

    async fn breaker_state(&self) -> String {
        let metrics = self.order.api().get("/metrics").await;
        String::from_utf8(metrics.body)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("item_breaker_state "))
            .unwrap_or("missing")
            .to_owned()
    }

    async fn orders(&self) -> Vec<Value> {
        let page = self.order.api().get("/v1/orders?limit=100").await.json();
        page["orders"].as_array().unwrap().clone()
    }
}

async fn happy_path_propagates_the_request_id(backend: Backend) {
    let mut pair = start(&backend, &[]);
    let widget = pair.create_item(4).await;
    let (status, body, _) = pair
        .order(&widget, 3, &[("x-request-id", "cross-process-42")])
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["total_minor"], 3 * 1999);
    assert_eq!(pair.stock(&widget).await, 1);
    let item_logs = pair.item.logs();
    let reserve = item_logs
        .lines()
        .find(|l| l.contains("cross-process-42") && l.contains("/v1/reservations/"))
        .expect("the item service logged the order's request id");
    assert!(reserve.contains("\"status\":201"), "{reserve}");
    let status = pair
        .order
        .terminate(Duration::from_secs(15))
        .expect("order-service exits on SIGTERM");
    assert!(status.success());
}

/// W3C Trace Context across the hop: the caller's trace id is on order's
/// log line for the order and on item's lines for the calls it caused, and
/// item saw order's span as their parent, not the caller's.
async fn one_order_is_followed_through_both_logs_by_its_trace_id(backend: Backend) {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let pair = start(&backend, &[]);
    let widget = pair.create_item(4).await;
    let traceparent = format!("00-{TRACE}-{caller_span}-01");
    let (status, body, _) = pair
        .order(&widget, 1, &[("traceparent", traceparent.as_str())])
        .await;
    assert_eq!(status, 201, "{body}");
    let order_logs = pair.order.logs();
    let placed = order_logs
        .lines()
        .find(|l| l.contains("request completed") && l.contains("\"path\":\"/v1/orders\""))
        .expect("order logged the request");
    assert!(
        placed.contains(&format!("\"trace_id\":\"{TRACE}\"")),
        "{placed}"
    );
    let item_logs = pair.item.logs();
    let calls: Vec<&str> = item_logs
        .lines()
        .filter(|l| l.contains("request completed") && l.contains(TRACE))
        .collect();
    // The item read for its price, the reservation, its confirmation.
    assert!(calls.len() >= 3, "item's lines with the trace: {calls:#?}");
    assert!(
        calls.iter().any(|l| l.contains("/v1/reservations/")),
        "{calls:#?}"
    );
    // A request without a trace starts its own, distinct per request.
    let (status, _, _) = pair.order(&widget, 1, &[]).await;
    assert_eq!(status, 201);
    let order_logs = pair.order.logs();
    let traces: std::collections::HashSet<&str> = order_logs
        .lines()
        .filter(|l| l.contains("request completed") && l.contains("\"path\":\"/v1/orders\""))
        .filter_map(|l| l.split("\"trace_id\":\"").nth(1)?.get(..32))
        .collect();
    assert_eq!(traces.len(), 2, "{traces:?}");
    assert!(
        !pair.item.logs().contains(caller_span),
        "order's span, not the caller's, is the parent"
    );
}

async fn item_down_fails_fast_then_recovers(backend: Backend) {
    let mut pair = start(
        &backend,
        &[
            ("ITEM_BREAKER_FAILURES", "3"),
            ("ITEM_BREAKER_OPEN_MS", "1000"),
            ("ITEM_RETRIES", "2"),
        ],
    );
    let widget = pair.create_item(10).await;
    assert_eq!(pair.order(&widget, 1, &[]).await.0, 201);
    assert_eq!(pair.breaker_state().await, "0");

    pair.item.kill();
    let (status, body, elapsed) = pair.order(&widget, 1, &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["type"],
        "https://berth.dev/problems/item-service-unavailable"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    // The retries of that request were the three failures that open it.
    assert_eq!(pair.breaker_state().await, "1");
    let (status, body, elapsed) = pair.order(&widget, 1, &[]).await;
    assert_eq!(status, 503);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("circuit breaker open"),
        "{body}"
    );
    assert!(
        elapsed < Duration::from_millis(200),
        "an open breaker answers at once, took {elapsed:?}"
    );

    pair.item.restart();
    // An in-memory item service restarted empty; PostgreSQL kept the item.
    let widget = match backend {
        Backend::Memory => pair.create_item(10).await,
        Backend::Postgres { .. } => widget,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body, _) = pair.order(&widget, 1, &[]).await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "the breaker never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pair.breaker_state().await, "0");
}

async fn slow_item_times_out(backend: Backend) {
    let pair = start(
        &backend,
        &[
            ("ITEM_TIMEOUT_MS", "300"),
            ("ITEM_RETRIES", "1"),
            ("ITEM_BREAKER_FAILURES", "10"),
        ],
    );
    let widget = pair.create_item(5).await;
    pair.item.pause();
    let (status, body, elapsed) = pair.order(&widget, 1, &[]).await;
    pair.item.resume();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("did not answer within 300 ms"),
        "{body}"
    );
    assert!(
        elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    let (status, body, _) = pair.order(&widget, 1, &[]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        pair.stock(&widget).await,
        4,
        "only the second order took stock"
    );
}

async fn concurrent_orders_never_oversell(backend: Backend) {
    let pair = std::sync::Arc::new(start(&backend, &[]));
    let widget = pair.create_item(5).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let pair = pair.clone();
        let widget = widget.clone();
        tasks.push(tokio::spawn(
            async move { pair.order(&widget, 1, &[]).await },
        ));
    }
    let (mut placed, mut refused) = (0, 0);
    for task in tasks {
        let (status, body, _) = task.await.unwrap();
        match status {
            201 => placed += 1,
            409 => {
                assert_eq!(
                    body["type"],
                    "https://berth.dev/problems/insufficient-stock"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((placed, refused), (5, 15));
    assert_eq!(pair.stock(&widget).await, 0);
    let orders = pair.orders().await;
    assert_eq!(orders.iter().filter(|o| o["status"] == "placed").count(), 5);
    assert_eq!(
        orders.iter().filter(|o| o["status"] == "failed").count(),
        15
    );
}

async fn retried_order_is_placed_once(backend: Backend) {
    let pair = start(&backend, &[]);
    let widget = pair.create_item(10).await;
    let key = [("idempotency-key", "checkout-7f3a")];
    let (first, body, _) = pair.order(&widget, 2, &key).await;
    assert_eq!(first, 201, "{body}");
    for _ in 0..3 {
        let (status, again, _) = pair.order(&widget, 2, &key).await;
        assert_eq!(status, 201);
        assert_eq!(again["id"], body["id"]);
    }
    assert_eq!(pair.stock(&widget).await, 8);
    assert_eq!(pair.orders().await.len(), 1);
}

async fn sigterm_lets_in_flight_orders_finish(backend: Backend) {
    let pair = start(
        &backend,
        &[("ITEM_TIMEOUT_MS", "1000"), ("ITEM_RETRIES", "0")],
    );
    let widget = pair.create_item(3).await;
    let order_api = pair.order.api();
    let Pair { item, mut order } = pair;
    // The item service hangs, so the order request stays in flight.
    item.pause();
    let in_flight = tokio::spawn(async move {
        order_api
            .json(
                Method::POST,
                "/v1/orders",
                &json!({"lines": [{"item_id": widget, "quantity": 1}]}),
            )
            .await
            .status
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exit = tokio::task::spawn_blocking(move || {
        let exit = order.terminate(Duration::from_secs(15));
        (exit, order.logs())
    });
    let answered = in_flight.await.unwrap();
    item.resume();
    let (exit, logs) = exit.await.unwrap();
    // Answered (503 after the item timeout), not cut off by the shutdown.
    assert_eq!(answered, 503);
    assert!(exit.expect("exited").success(), "{logs}");
    assert!(logs.contains("draining in-flight requests"), "{logs}");
}

both_stores!(
    happy_path_propagates_the_request_id,
    one_order_is_followed_through_both_logs_by_its_trace_id,
    item_down_fails_fast_then_recovers,
    slow_item_times_out,
    concurrent_orders_never_oversell,
    retried_order_is_placed_once,
    sigterm_lets_in_flight_orders_finish,
);
