//! item keeps its data in PostgreSQL, not in the pod: an item created through
//! the Service is still there, unchanged, after its pod is deleted and a new
//! pod (another uid) serves the Service.

use anyhow::Context as _;
use berth_e2e::{Env, client, wait_deleted};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;

use crate::support::{
    PostgresSchema, assert_runs_on_real_node, create_item, http, json_of, pods_database_url,
    require_real_node, send, service_spec, service_url, wait_pod_ready,
};

#[tokio::test]
async fn item_data_on_postgres_survives_deleting_its_pod() {
    let database_url = pods_database_url().await;
    require_real_node(&client().await, &["item-service"]).await;
    let env = Env::new("node-pg").await;
    let log = env.operator.log.display().to_string();
    let database = PostgresSchema::create(&env, &database_url, "item").await;
    let spec = service_spec("item-service", json!({ "env": database.env(2) }));
    env.apply_microservice("item", &spec.to_string())
        .await
        .unwrap();
    let pods: Api<Pod> = env.ns.api();
    let first = wait_pod_ready(&pods, "item", None)
        .await
        .with_context(|| format!("operator log: {log}"))
        .unwrap();
    assert_runs_on_real_node(&first);
    env.wait_ready("item").await.unwrap();

    let http = http();
    let url = service_url(&env.client, &env.ns.name, "item")
        .await
        .unwrap();
    let new_item = json!({ "name": "kept in postgres", "description": "survives its pod",
                           "price_minor": 990, "currency": "EUR", "stock": 4 });
    let created = create_item(&http, &url, &new_item).await;
    let id = created["id"].as_str().unwrap().to_string();
    let read = |what: &'static str| {
        let (http, url, id) = (http.clone(), url.clone(), id.clone());
        async move {
            let response = send(what, || http.get(format!("{url}/v1/items/{id}")))
                .await
                .unwrap();
            json_of(response).await.unwrap()
        }
    };
    let (code, before) = read("read the item").await;
    assert_eq!(code, 200, "{before}");

    // Delete the pod; the Deployment replaces it. Once the old one is gone,
    // only the new one can answer through the Service.
    let first_name = first.metadata.name.clone().unwrap();
    let first_uid = first.metadata.uid.clone().unwrap();
    pods.delete(&first_name, &DeleteParams::default())
        .await
        .unwrap();
    let second = wait_pod_ready(&pods, "item", Some(&first_uid))
        .await
        .unwrap();
    assert_ne!(second.metadata.uid, first.metadata.uid);
    assert_runs_on_real_node(&second);
    wait_deleted(&pods, &first_name).await.unwrap();

    let (code, after) = read("read the item after the pod was replaced").await;
    assert_eq!(
        code, 200,
        "the item is gone after its pod was replaced: {after}"
    );
    assert_eq!(
        after, before,
        "the item changed across the pod's replacement"
    );
}
