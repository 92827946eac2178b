//! The real `item-service` binary over TCP: it starts from the environment,
//! serves, echoes request ids, refuses bad configuration clearly, and stops
//! cleanly on SIGTERM.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use axum::http::Method;
use berth_service_kit::both_stores;
use berth_service_kit::testing::{Backend, Process};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_item-service");

async fn serves_over_tcp_and_stops_on_sigterm(backend: Backend) {
    let mut item = Process::start(Path::new(BINARY), 0, &backend.env());
    let api = item.api();
    let kettle = json!({"name": "Kettle", "price_minor": 3999, "currency": "GBP", "stock": 2});
    let created = api
        .send(
            Method::POST,
            "/v1/items",
            &[
                ("content-type", "application/json"),
                ("x-request-id", "tcp-test-1"),
            ],
            Some(kettle.to_string().into_bytes()),
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.header("x-request-id"), Some("tcp-test-1"));
    let created = created.json();
    let id = created["id"].as_str().unwrap();
    let fetched = api.get(&format!("/v1/items/{id}")).await.json();
    assert_eq!(fetched, created);
    assert_eq!(item.get_status("/readyz"), Some(200));

    let logs = item.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("tcp-test-1"))
        .expect("the request is logged with its id");
    let parsed: Value = serde_json::from_str(line).expect("logs are JSON lines");
    assert_eq!(parsed["span"]["request_id"], "tcp-test-1");

    let status = item
        .terminate(Duration::from_secs(15))
        .expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let logs = item.logs();
    assert!(
        logs.contains("received SIGTERM") && logs.contains("\"stopped\""),
        "{logs}"
    );
}

both_stores!(serves_over_tcp_and_stops_on_sigterm);

#[test]
fn bad_configuration_stops_the_start_with_a_clear_message() {
    for (name, value) in [
        ("PORT", "eighty"),
        ("LOG_FORMAT", "yaml"),
        ("RESERVATION_TTL_MS", "0"),
        ("DATABASE_SCHEMA", "Bad-Name"),
    ] {
        let output = Command::new(BINARY)
            .env_clear()
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(name) && stderr.contains(value),
            "{name}={value}: {stderr}"
        );
    }
}

#[test]
fn unreachable_database_fails_the_start() {
    let output = Command::new(BINARY)
        .env_clear()
        .env("PORT", "0")
        .env(
            "DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none?connect_timeout=1",
        )
        .env("DATABASE_CONNECT_WAIT_MS", "1000")
        .output()
        .unwrap();
    assert!(!output.status.success());
}
