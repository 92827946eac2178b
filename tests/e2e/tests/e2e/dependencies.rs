//! Dependencies: a missing one is reported by name; when it appears, the
//! dependent is reconciled again and gets its URL.

use berth_e2e::{Env, condition, wait_for};
use berth_operator::MicroService;
use k8s_openapi::api::apps::v1::Deployment;

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
