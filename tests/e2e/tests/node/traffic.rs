//! order reaches item through the name Berth injects (`ITEM_URL`): real HTTP
//! from this process to each Service's ClusterIP (kube-proxy), and from the
//! order pod to item through cluster DNS (CoreDNS).

use anyhow::Context as _;
use berth_e2e::wait_for;
use berth_operator::MicroService;
use berth_operator::microservice::DependencyState;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::json;

use crate::support::{
    create_item, env_value, http, item_and_order, json_of, send, service_url, wait_pod_ready,
};

#[tokio::test]
async fn order_reaches_item_through_the_url_berth_injects() {
    let env = item_and_order("node-call").await;
    let ns = env.ns.name.clone();
    let log = env.operator.log.display().to_string();
    let pods: Api<Pod> = env.ns.api();
    for name in ["item", "order"] {
        wait_pod_ready(&pods, name, None)
            .await
            .with_context(|| format!("operator log: {log}"))
            .unwrap();
        env.wait_ready(name).await.unwrap();
    }

    // The name Berth injected, in the pod that runs, and in order's status.
    let expected = format!("http://item.{ns}.svc.cluster.local:80");
    let order_pod = wait_pod_ready(&pods, "order", None).await.unwrap();
    assert_eq!(env_value(&order_pod, "ITEM_URL"), Some(expected.clone()));
    // order's own readiness comes first; item's reaches its status on the
    // reconcile item's readiness triggers.
    let item_ready = |ms: Option<&MicroService>| {
        ms.and_then(|ms| ms.status.as_ref()).is_some_and(|s| {
            s.dependencies
                .iter()
                .any(|d| d.name == "item" && d.state == DependencyState::Ready)
        })
    };
    let order_ms = wait_for(&env.microservices(), "order", item_ready)
        .await
        .unwrap();
    let dep = &order_ms.status.unwrap().dependencies[0];
    assert_eq!(dep.url, expected, "{dep:?}");

    let http = http();
    let item_url = service_url(&env.client, &ns, "item").await.unwrap();
    let order_url = service_url(&env.client, &ns, "order").await.unwrap();
    let item =
        json!({ "name": "berth node widget", "price_minor": 1250, "currency": "EUR", "stock": 10 });
    let item = create_item(&http, &item_url, &item).await;
    let item_id = item["id"].as_str().unwrap().to_string();

    // order prices the line and reserves the stock by calling item at ITEM_URL.
    let lines = json!({ "lines": [{ "item_id": item_id, "quantity": 3 }] });
    let response = send("place an order through order's Service", || {
        http.post(format!("{order_url}/v1/orders"))
            .header("Idempotency-Key", format!("node-{ns}"))
            .json(&lines)
    })
    .await
    .unwrap();
    let (code, placed) = json_of(response).await.unwrap();
    assert_eq!(code, 201, "POST {order_url}/v1/orders: {placed}");
    assert_eq!(placed["status"], "placed", "{placed}");
    assert_eq!(placed["total_minor"], 3 * 1250, "{placed}");
    assert_eq!(placed["currency"], "EUR", "{placed}");
    assert_eq!(placed["lines"][0]["unit_price_minor"], 1250, "{placed}");
    let order_id = placed["id"].as_str().unwrap().to_string();

    let response = send("read the order back", || {
        http.get(format!("{order_url}/v1/orders/{order_id}"))
    })
    .await
    .unwrap();
    let (code, read) = json_of(response).await.unwrap();
    assert_eq!(code, 200, "{read}");
    for field in ["id", "status", "total_minor", "currency", "lines"] {
        assert_eq!(read[field], placed[field], "{field}: {read} vs {placed}");
    }

    // The stock moved in item: the order really went through it.
    let response = send("read the item back", || {
        http.get(format!("{item_url}/v1/items/{item_id}"))
    })
    .await
    .unwrap();
    let (code, item) = json_of(response).await.unwrap();
    assert_eq!(code, 200, "{item}");
    assert_eq!(item["stock"], 7, "{item}");
}
