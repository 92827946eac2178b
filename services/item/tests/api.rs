//! The item API in process, run once on the in-memory store and once on
//! PostgreSQL: the same assertions prove the same behaviour on both.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use berth_service_kit::both_stores;
use berth_service_kit::testing::items::{create_item, reserve, stock};
use berth_service_kit::testing::{Api, Backend, Reply, assert_get_statuses};
use serde_json::{Value, json};

struct Harness {
    _service: item_service::Service,
    api: Api,
}

async fn harness(backend: &Backend, extra: &[(&str, &str)]) -> Harness {
    let config: item_service::Config = backend.config(extra);
    let service = item_service::build(&config).await.expect("service builds");
    Harness {
        api: Api::in_process(service.router.clone()),
        _service: service,
    }
}

/// `POST /v1/items` of `item`, valid or not.
async fn post_item(api: &Api, item: &Value) -> Reply {
    api.json(Method::POST, "/v1/items", item).await
}

/// `PUT /v1/items/{id}` of `item` if the item is at the version `etag`
/// names.
async fn replace_if_match(api: &Api, id: &str, etag: &str, item: &Value) -> Reply {
    api.json_with_headers(
        Method::PUT,
        &format!("/v1/items/{id}"),
        &[("if-match", etag)],
        item,
    )
    .await
}

/// `DELETE /v1/items/{id}` if the item is at the version `etag` names.
async fn delete_if_match(api: &Api, id: &str, etag: &str) -> Reply {
    api.send(
        Method::DELETE,
        &format!("/v1/items/{id}"),
        &[("if-match", etag)],
        None,
    )
    .await
}

async fn crud_and_pagination(backend: Backend) {
    let h = harness(&backend, &[]).await;
    let created = post_item(
        &h.api,
        &json!({"name": "Blue mug", "price_minor": 1250, "currency": "EUR", "stock": 7}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json());
    let created = created.json();
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["version"], 1);
    assert_eq!(created["price_minor"], 1250);

    let got = h.api.get(&format!("/v1/items/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("etag"), Some("\"1\""));
    assert_eq!(got.json(), created);

    for i in 0..4 {
        create_item(&h.api, &format!("Plate {i}"), 500, "EUR", 1).await;
    }
    let page = h.api.get("/v1/items?limit=2").await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let page2 = h.api.next_page("/v1/items?limit=2", &page).await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 2);
    assert_ne!(page["items"][0]["id"], page2["items"][0]["id"]);
    let page3 = h.api.next_page("/v1/items?limit=2", &page2).await;
    assert_eq!(page3["items"].as_array().unwrap().len(), 1);
    assert!(page3["next_cursor"].is_null());

    let plates = h.api.get("/v1/items?name=PLATE").await.json();
    assert_eq!(plates["items"].as_array().unwrap().len(), 4);
    let mugs = h.api.get("/v1/items?name=mug").await.json();
    assert_eq!(mugs["items"].as_array().unwrap().len(), 1);

    let replaced = replace_if_match(
        &h.api,
        id,
        "\"1\"",
        &json!({"name": "Red mug", "price_minor": 1300, "currency": "EUR", "stock": 9}),
    )
    .await;
    assert_eq!(replaced.status, StatusCode::OK, "{:?}", replaced.json());
    assert_eq!(replaced.json()["version"], 2);
    assert_eq!(replaced.json()["description"], "");

    let patched = h
        .api
        .json(
            Method::PATCH,
            &format!("/v1/items/{id}"),
            &json!({"description": "glazed"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.json()["name"], "Red mug");
    assert_eq!(patched.json()["description"], "glazed");
    assert_eq!(patched.json()["version"], 3);

    let deleted = h.api.delete(&format!("/v1/items/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.api.get(&format!("/v1/items/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn stale_writes_are_refused(backend: Backend) {
    let h = harness(&backend, &[]).await;
    let id = create_item(&h.api, "Lamp", 9900, "EUR", 2).await;
    let body = |name: &str| json!({"name": name, "price_minor": 1, "currency": "EUR", "stock": 1});
    let first = replace_if_match(&h.api, &id, "\"1\"", &body("first")).await;
    assert_eq!(first.status, StatusCode::OK);
    // A second writer that also read version 1 loses, and changes nothing.
    let stale = replace_if_match(&h.api, &id, "\"1\"", &body("stale")).await;
    stale.assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    assert_eq!(
        stale.header("content-type"),
        Some("application/problem+json")
    );
    let stale_patch = h
        .api
        .json_with_headers(
            Method::PATCH,
            &format!("/v1/items/{id}"),
            &[("if-match", "W/\"1\"")],
            &json!({"name": "stale"}),
        )
        .await;
    assert_eq!(stale_patch.status, StatusCode::PRECONDITION_FAILED);
    let stale_delete = delete_if_match(&h.api, &id, "\"1\"").await;
    assert_eq!(stale_delete.status, StatusCode::PRECONDITION_FAILED);
    let junk = delete_if_match(&h.api, &id, "\"abc\"").await;
    // Not an ETag at all is the client's mistake, not a lost race.
    junk.assert_problem(StatusCode::BAD_REQUEST, "invalid-if-match");
    let item = h.api.get(&format!("/v1/items/{id}")).await.json();
    assert_eq!(item["name"], "first");
    assert_eq!(item["version"], 2);
}

async fn problems_for_bad_requests(backend: Backend) {
    let h = harness(&backend, &[("BODY_LIMIT_BYTES", "2048")]).await;
    let malformed = h
        .api
        .raw(Method::POST, "/v1/items", "application/json", b"{\"name\":")
        .await;
    malformed.assert_problem(StatusCode::BAD_REQUEST, "malformed-body");

    let invalid = post_item(
        &h.api,
        &json!({"name": "", "price_minor": -5, "currency": "euro", "stock": 1}),
    )
    .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = invalid.json();
    assert_eq!(body["type"], "https://berth.dev/problems/validation-failed");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "price_minor", "currency"]);

    let wrong_type = post_item(
        &h.api,
        &json!({"name": "x", "price_minor": 1.5, "currency": "EUR", "stock": 1}),
    )
    .await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong_type.json()["errors"][0]["field"], "price_minor");

    let unknown_field = post_item(
        &h.api,
        &json!({"name": "x", "price_minor": 1, "currency": "EUR", "stock": 1, "colour": "red"}),
    )
    .await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);

    let not_json = h
        .api
        .raw(Method::POST, "/v1/items", "text/plain", b"hi")
        .await;
    assert_eq!(not_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let huge = json!({"name": "x".repeat(5000), "price_minor": 1, "currency": "EUR", "stock": 1});
    let too_large = post_item(&h.api, &huge).await;
    too_large.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large");

    let missing = h
        .api
        .get("/v1/items/0190a0a0-0000-7000-8000-000000000000")
        .await;
    missing.assert_problem(StatusCode::NOT_FOUND, "not-found");
    assert_eq!(
        h.api.delete("/v1/items").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_get_statuses(
        &h.api,
        &[
            ("/v1/items/not-a-uuid", StatusCode::NOT_FOUND),
            ("/v1/nothing-here", StatusCode::NOT_FOUND),
            ("/v1/items?limit=0", StatusCode::UNPROCESSABLE_ENTITY),
            ("/v1/items?limit=abc", StatusCode::BAD_REQUEST),
            ("/v1/items?cursor=xyz", StatusCode::UNPROCESSABLE_ENTITY),
        ],
    )
    .await;
}

async fn no_input_makes_it_fail(backend: Backend) {
    let h = harness(&backend, &[]).await;
    let id = create_item(&h.api, "Fuzz", 1, "EUR", 1).await;
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{\"name\":null}".to_vec(),
        b"{\"quantity\": 99999999999999999999999}".to_vec(),
        b"{\"item_id\": \"00000000-0000-0000-0000-000000000000\", \"quantity\": 9223372036854775807}".to_vec(),
        b"{\"name\":\"\xf0\x9f\x98\x80\",\"price_minor\":9223372036854775807,\"currency\":\"EUR\",\"stock\":9223372036854775807}".to_vec(),
        vec![0xff, 0xfe, 0x00],
        "[".repeat(10_000).into_bytes(),
    ];
    let targets = [
        (Method::POST, "/v1/items".to_owned()),
        (Method::PUT, format!("/v1/items/{id}")),
        (Method::PATCH, format!("/v1/items/{id}")),
        (Method::PUT, "/v1/reservations/fuzz-key".to_owned()),
        (Method::PUT, "/v1/reservations/%00%ff".to_owned()),
        (Method::POST, "/v1/reservations/no-such/confirm".to_owned()),
    ];
    for (method, uri) in &targets {
        for body in &bodies {
            let reply = h
                .api
                .raw(method.clone(), uri, "application/json", body)
                .await;
            assert!(
                !reply.status.is_server_error(),
                "{method} {uri} with {:?} gave {}",
                String::from_utf8_lossy(body),
                reply.status
            );
            if reply.status.is_client_error() {
                assert_eq!(
                    reply.header("content-type"),
                    Some("application/problem+json"),
                    "{method} {uri}"
                );
            }
        }
    }
    assert_eq!(stock(&h.api, &id).await, 1);
}

async fn reservations_take_and_return_stock(backend: Backend) {
    let h = harness(&backend, &[]).await;
    let id = create_item(&h.api, "Chair", 4000, "EUR", 5).await;

    let first = reserve(&h.api, "order:1:0", &id, 3).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.json()["status"], "held");
    assert!(first.json()["expires_at"].is_string());
    assert_eq!(stock(&h.api, &id).await, 2);

    // The same request again is a replay: nothing more is taken.
    let again = reserve(&h.api, "order:1:0", &id, 3).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json(), first.json());
    assert_eq!(stock(&h.api, &id).await, 2);

    let reused = reserve(&h.api, "order:1:0", &id, 1).await;
    reused.assert_problem(StatusCode::CONFLICT, "reservation-key-conflict");

    let too_many = reserve(&h.api, "order:2:0", &id, 3).await;
    too_many.assert_problem(StatusCode::CONFLICT, "insufficient-stock");
    assert_eq!(stock(&h.api, &id).await, 2);
    // A failed reserve leaves its key unused.
    assert_eq!(
        h.api.get("/v1/reservations/order:2:0").await.status,
        StatusCode::NOT_FOUND
    );

    let missing_item = reserve(
        &h.api,
        "order:3:0",
        "0190a0a0-0000-7000-8000-000000000000",
        1,
    )
    .await;
    assert_eq!(missing_item.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reserve(&h.api, "bad%20key", &id, 1).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        reserve(&h.api, "order:4:0", &id, 0).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let confirmed = h.api.post("/v1/reservations/order:1:0/confirm").await;
    assert_eq!(confirmed.status, StatusCode::OK);
    assert_eq!(confirmed.json()["status"], "confirmed");
    assert!(confirmed.json()["expires_at"].is_null());
    let confirmed_again = h.api.post("/v1/reservations/order:1:0/confirm").await;
    assert_eq!(confirmed_again.status, StatusCode::OK);
    assert_eq!(stock(&h.api, &id).await, 2);

    let released = h.api.post("/v1/reservations/order:1:0/release").await;
    assert_eq!(released.status, StatusCode::OK);
    assert_eq!(released.json()["status"], "released");
    assert_eq!(stock(&h.api, &id).await, 5);
    let released_again = h.api.post("/v1/reservations/order:1:0/release").await;
    assert_eq!(released_again.status, StatusCode::OK);
    assert_eq!(stock(&h.api, &id).await, 5);
    let confirm_released = h.api.post("/v1/reservations/order:1:0/confirm").await;
    confirm_released.assert_problem(StatusCode::CONFLICT, "reservation-not-held");

    // Releasing a key first means a reserve arriving late takes nothing.
    let early = h.api.post("/v1/reservations/order:5:0/release").await;
    assert_eq!(early.status, StatusCode::OK);
    let late = reserve(&h.api, "order:5:0", &id, 1).await;
    late.assert_problem(StatusCode::CONFLICT, "reservation-released");
    assert_eq!(stock(&h.api, &id).await, 5);
    assert_eq!(
        h.api.post("/v1/reservations/nope/confirm").await.status,
        StatusCode::NOT_FOUND
    );
}

async fn held_reservations_expire(backend: Backend) {
    let h = harness(
        &backend,
        &[
            ("RESERVATION_TTL_MS", "300"),
            ("RESERVATION_SWEEP_MS", "50"),
        ],
    )
    .await;
    let id = create_item(&h.api, "Desk", 20000, "EUR", 4).await;
    assert_eq!(
        reserve(&h.api, "exp:held", &id, 3).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        reserve(&h.api, "exp:kept", &id, 1).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        h.api.post("/v1/reservations/exp:kept/confirm").await.status,
        StatusCode::OK
    );
    assert_eq!(stock(&h.api, &id).await, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stock(&h.api, &id).await != 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "held units did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        h.api.get("/v1/reservations/exp:held").await.json()["status"],
        "expired"
    );
    assert_eq!(
        h.api.get("/v1/reservations/exp:kept").await.json()["status"],
        "confirmed"
    );
    let confirm_late = h.api.post("/v1/reservations/exp:held/confirm").await;
    assert_eq!(confirm_late.status, StatusCode::CONFLICT);
}

async fn concurrent_reserves_never_oversell(backend: Backend) {
    let h = harness(&backend, &[]).await;
    let id = create_item(&h.api, "Last units", 100, "EUR", 10).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let api = h.api.clone();
        let id = id.clone();
        // Every fourth request repeats an earlier key: a retry, not a new reserve.
        let key = format!("race:{}", if i % 4 == 3 { i - 1 } else { i });
        tasks.push(tokio::spawn(
            async move { reserve(&api, &key, &id, 1).await },
        ));
    }
    let mut created = 0;
    let mut keys = std::collections::HashSet::new();
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            StatusCode::CREATED => {
                created += 1;
                keys.insert(reply.json()["key"].as_str().unwrap().to_owned());
            }
            StatusCode::OK => {
                keys.insert(reply.json()["key"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => assert_eq!(reply.problem_slug(), "insufficient-stock"),
            other => panic!("unexpected {other}: {:?}", reply.json()),
        }
    }
    assert_eq!(created, 10, "exactly the stock is reserved");
    assert_eq!(keys.len(), 10);
    assert_eq!(stock(&h.api, &id).await, 0);
}

async fn health_metrics_and_openapi(backend: Backend) {
    let h = harness(&backend, &[]).await;
    assert_eq!(h.api.get("/healthz").await.status, StatusCode::OK);
    let ready = h.api.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.json());
    create_item(&h.api, "Counted", 1, "EUR", 1).await;
    let metrics = String::from_utf8(h.api.get("/metrics").await.body).unwrap();
    assert!(
        metrics.contains(r#"http_requests_total{route="/v1/items",method="POST",status="201"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("http_requests_in_flight"), "{metrics}");
    let doc = h.api.get("/openapi.json").await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/items",
        "/v1/items/{id}",
        "/v1/reservations/{key}",
        "/v1/reservations/{key}/release",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    let with_id = h
        .api
        .send(
            Method::GET,
            "/healthz",
            &[("x-request-id", "abc-123")],
            None,
        )
        .await;
    assert_eq!(with_id.header("x-request-id"), Some("abc-123"));
    assert!(
        h.api
            .get("/healthz")
            .await
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty())
    );
}

both_stores!(
    crud_and_pagination,
    stale_writes_are_refused,
    problems_for_bad_requests,
    no_input_makes_it_fail,
    reservations_take_and_return_stock,
    held_reservations_expire,
    concurrent_reserves_never_oversell,
    health_metrics_and_openapi,
);
