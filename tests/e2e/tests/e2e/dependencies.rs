//! Dependencies: a missing one is reported by name; when it appears, the
//! dependent is reconciled again and gets its URL; when it is deleted, the
//! dependent says so at once.

use std::time::Duration;

use berth_e2e::{Env, condition, wait_for};
use berth_operator::MicroService;
use berth_operator::microservice::DependencyState;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use tokio::time::timeout;

fn item_url(d: &Deployment) -> Option<String> {
    let container = &d.spec.as_ref()?.template.spec.as_ref()?.containers[0];
    container
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == "ITEM_URL")?
        .value
        .clone()
}

#[tokio::test]
async fn missing_dependency_is_reported_and_resolves_when_it_appears() {
    let env = Env::new("deps").await;
    env.apply_microservice(
        "order",
        "image: registry.local/order:1.0.0\ndependencies: [item]",
    )
    .await
    .unwrap();
    let ms = wait_for(
        &env.microservices(),
        "order",
        |ms: Option<&MicroService>| {
            ms.and_then(|ms| condition(ms, "DependenciesReady"))
                .is_some_and(|c| c.status == "False")
        },
    )
    .await
    .unwrap();
    let c = condition(&ms, "DependenciesReady").unwrap();
    assert_eq!(c.reason, "DependenciesMissing");
    assert!(
        c.message.contains("item"),
        "names the missing dependency: {}",
        c.message
    );

    env.apply_microservice(
        "item",
        "image: registry.local/item:1.0.0\nservice: { port: 8080 }",
    )
    .await
    .unwrap();
    wait_for(
        &env.microservices(),
        "order",
        |ms: Option<&MicroService>| {
            ms.and_then(|ms| condition(ms, "DependenciesReady"))
                .is_some_and(|c| c.status == "True")
        },
    )
    .await
    .unwrap();
    let expected = format!("http://item.{}.svc.cluster.local:8080", env.ns.name);
    let deployment = wait_for(
        &env.ns.api::<Deployment>(),
        "order",
        |d: Option<&Deployment>| d.and_then(item_url).as_deref() == Some(expected.as_str()),
    )
    .await
    .unwrap();
    assert_eq!(item_url(&deployment).unwrap(), expected);
}

/// Regression: a deleted dependency stayed `AllDependenciesReady` until the
/// 10-minute resync, because kube's shared reflector streams drop deletions.
/// Being deleted (a `deletionTimestamp`, here held by a finalizer) and then
/// gone must each show within seconds.
#[tokio::test]
async fn a_dependency_being_deleted_and_then_gone_is_reported_at_once() {
    let env = Env::new("deps-deleted").await;
    env.apply_microservice("stock", "image: registry.local/stock:1.0.0")
        .await
        .unwrap();
    env.apply_microservice(
        "till",
        "image: registry.local/till:1.0.0\ndependencies: [stock]",
    )
    .await
    .unwrap();
    let dependencies = |status: &'static str, reason: &'static str| {
        move |ms: Option<&MicroService>| {
            ms.and_then(|ms| condition(ms, "DependenciesReady"))
                .is_some_and(|c| c.status == status && c.reason == reason)
        }
    };
    wait_for(
        &env.microservices(),
        "till",
        dependencies("True", "AllDependenciesReady"),
    )
    .await
    .unwrap();

    // Reported within seconds, far below the resync; the reconcile debounce
    // and a status write take well under one.
    let soon = Duration::from_secs(15);
    let api = env.microservices();
    let hold = json!({"metadata": {"finalizers": ["berth.dev/test-hold"]}});
    api.patch("stock", &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .unwrap();
    api.delete("stock", &DeleteParams::default()).await.unwrap();
    let till = timeout(
        soon,
        wait_for(&api, "till", dependencies("False", "DependenciesNotReady")),
    )
    .await
    .expect("a dependency being deleted is reported within 15 s")
    .unwrap();
    let c = condition(&till, "DependenciesReady").unwrap();
    assert_eq!(c.message, "being deleted: stock");
    let state = &till.status.as_ref().unwrap().dependencies[0].state;
    assert_eq!(*state, DependencyState::Terminating);

    let release = json!({"metadata": {"finalizers": null}});
    api.patch("stock", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    let till = timeout(
        soon,
        wait_for(&api, "till", dependencies("False", "DependenciesMissing")),
    )
    .await
    .expect("a deleted dependency is reported within 15 s")
    .unwrap();
    assert_eq!(
        condition(&till, "DependenciesReady").unwrap().message,
        "missing: stock"
    );
}
