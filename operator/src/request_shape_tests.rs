//! Request-shape tests: one reconcile against kube's mocked client, asserting
//! every request the operator sends, in order (method, path, field manager,
//! content type, key parts of the body). What the API server then does with
//! them is the e2e suite's job; this pins down what Berth asks for.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector;
use serde_json::{Value, json};

use crate::cache::{Availability, Stores};
use crate::context::Context;
use crate::desired::fixtures::{microservice, stored_by_berth};
use crate::metrics::Metrics;
use crate::reconcile::reconcile;
use crate::slim::Slim;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// A context whose caches are empty and whose cluster serves PodMonitors or not.
fn context(pod_monitor_kind: Availability) -> (Arc<Context>, Handle) {
    context_with(pod_monitor_kind, &[])
}

/// A store holding `objects` (JSON bodies of Berth's applies of kind `K`), as
/// the API server stores them and the watch caches them.
fn store<K>(objects: &[Value]) -> reflector::Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + Slim,
{
    let (store, mut writer) = reflector::store();
    for object in objects
        .iter()
        .filter(|o| o["kind"] == K::kind(&()).as_ref())
    {
        let mut object: K = serde_json::from_value(stored_by_berth(object)).unwrap();
        object.slim();
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(object));
    }
    store
}

/// A context whose caches hold `children`.
fn context_with(pod_monitor_kind: Availability, children: &[Value]) -> (Arc<Context>, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let stores = Stores {
        microservices: reflector::store().0,
        deployments: store(children),
        services: store(children),
        autoscalers: store(children),
        disruption_budgets: store(children),
        pod_monitors: store(children),
        pod_monitor_kind: tokio::sync::watch::channel(pod_monitor_kind).1,
    };
    (
        Arc::new(Context::new(client, stores, Arc::new(Metrics::default()))),
        handle,
    )
}

/// The next request, checked for method and path, answered with `status` and `body`.
async fn expect(
    handle: &mut Handle,
    method: Method,
    path: &str,
    status: StatusCode,
    reply: impl FnOnce(&Value) -> Value,
) -> (String, Value) {
    let (request, send) = handle.next_request().await.expect("a request was sent");
    assert_eq!(request.method(), method, "method of {}", request.uri());
    assert_eq!(request.uri().path(), path);
    let query = request.uri().query().unwrap_or_default().to_string();
    let content_type = request
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let answer = reply(&body);
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&answer).unwrap()))
            .unwrap(),
    );
    (
        format!("{query} {}", content_type.unwrap_or_default()),
        body,
    )
}

const STATUS: &str = "/apis/berth.dev/v1alpha1/namespaces/shop/microservices/item/status";

/// What the API server answers to a status apply: the MicroService with that status.
fn with_applied_status(apply: &Value) -> Value {
    let mut ms = serde_json::to_value(microservice("item")).unwrap();
    ms["status"] = apply["status"].clone();
    ms
}

/// The next request is a status apply: answered as the API server would.
/// Returns its shape and body.
async fn next_status_apply(handle: &mut Handle) -> (String, Value) {
    expect(
        handle,
        Method::PATCH,
        STATUS,
        StatusCode::OK,
        with_applied_status,
    )
    .await
}

/// The next request is an Event create: answered, and its body returned.
async fn next_event(handle: &mut Handle) -> Value {
    expect(
        handle,
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/shop/events",
        StatusCode::CREATED,
        |b| b.clone(),
    )
    .await
    .1
}

/// The status and reason of condition `type_` in a status apply.
fn condition(apply: &Value, type_: &str) -> (String, String) {
    let found = apply["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("condition {type_} in {apply}"));
    (
        found["status"].as_str().unwrap_or_default().into(),
        found["reason"].as_str().unwrap_or_default().into(),
    )
}

fn is_berth_apply(shape: &str) {
    assert!(shape.contains("fieldManager=berth-operator"), "{shape}");
    assert!(shape.contains("force=true"), "{shape}");
    assert!(shape.contains("application/apply-patch+yaml"), "{shape}");
}

/// A child not in the cache is created by one create-only apply: Berth's
/// forced apply with a `resourceVersion` no object has, so an object already
/// there (someone else's) refuses it. Returns the applied body.
async fn created(handle: &mut Handle, path: &str) -> Value {
    let (shape, body) = expect(handle, Method::PATCH, path, StatusCode::OK, |b| b.clone()).await;
    is_berth_apply(&shape);
    assert_eq!(body["metadata"]["resourceVersion"], "1", "create-only");
    body
}

fn conflict() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
           "message": "Operation cannot be fulfilled on deployments.apps \"item\": the object has been modified"})
}

#[tokio::test]
async fn a_name_taken_by_someone_else_is_read_and_reported_not_taken_over() {
    let (ctx, mut handle) = context(Availability::NotServed("not found".into()));
    let ms = Arc::new(microservice("item"));
    let reconciling = tokio::spawn(reconcile(ms, ctx));
    let deployment = "/apis/apps/v1/namespaces/shop/deployments/item";
    // The create-only apply is refused: something has the name.
    let (_, body) = expect(
        &mut handle,
        Method::PATCH,
        deployment,
        StatusCode::CONFLICT,
        |_| conflict(),
    )
    .await;
    assert_eq!(body["metadata"]["resourceVersion"], "1");
    // Only now a GET: whose is it? Not Berth's (no controller reference).
    expect(&mut handle, Method::GET, deployment, StatusCode::OK, |_| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "item", "namespace": "shop", "uid": "someone-else", "resourceVersion": "7"}})
    })
    .await;
    // No forced apply follows; the status says who is in the way.
    let body = next_status_apply(&mut handle).await.1;
    assert_eq!(
        condition(&body, "Degraded"),
        ("True".into(), "ChildConflict".into())
    );
    let event = next_event(&mut handle).await;
    assert_eq!(event["reason"], "ChildConflict");
    reconciling.await.unwrap().expect("reported, not an error");
    assert!(handle.next_request().await.is_none(), "no further request");
}

/// The three children a first reconcile creates, as it applied them.
async fn first_reconcile(handle: &mut Handle) -> Vec<Value> {
    let deployment = created(handle, "/apis/apps/v1/namespaces/shop/deployments/item").await;
    assert_eq!(deployment["kind"], "Deployment");
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["uid"],
        "uid-item"
    );
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert!(deployment["metadata"]["annotations"]["berth.dev/spec-hash"].is_string());

    let service = created(handle, "/api/v1/namespaces/shop/services/item").await;
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");

    // No autoscaler or budget asked for and none cached: nothing to delete, no request.
    let pod_monitor = created(
        handle,
        "/apis/monitoring.coreos.com/v1/namespaces/shop/podmonitors/item",
    )
    .await;
    assert_eq!(
        pod_monitor["spec"]["podMetricsEndpoints"][0]["port"],
        "http"
    );
    assert_eq!(
        pod_monitor["spec"]["selector"]["matchLabels"]["berth.dev/microservice"],
        "item"
    );

    // One event names the three children created.
    let event = next_event(handle).await;
    assert_eq!(
        (event["reason"].as_str(), event["type"].as_str()),
        (Some("Created"), Some("Normal"))
    );
    assert_eq!(
        event["note"],
        "Deployment, Service and PodMonitor item created"
    );
    assert_eq!(event["regarding"]["kind"], "MicroService");
    vec![deployment, service, pod_monitor]
}

#[tokio::test]
async fn first_reconcile_creates_and_reports_then_waits_for_the_deployments_news() {
    let (ctx, mut handle) = context(Availability::Served);
    let reconciling = tokio::spawn(reconcile(Arc::new(microservice("item")), ctx));
    first_reconcile(&mut handle).await;
    // No status yet: a Deployment just created has none to report.
    let action = reconciling.await.unwrap().expect("reconcile succeeds");
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(crate::reconcile::DEPLOYMENT_NEWS_WAIT)
    );
    assert!(handle.next_request().await.is_none(), "no further request");
}

#[tokio::test]
async fn the_next_pass_sends_only_the_status() {
    let (ctx, mut handle) = context(Availability::Served);
    let reconciling = tokio::spawn(reconcile(Arc::new(microservice("item")), ctx));
    let children = first_reconcile(&mut handle).await;
    reconciling.await.unwrap().unwrap();

    // The watches now hold the children as applied: nothing to apply again.
    let (ctx, mut handle) = context_with(Availability::Served, &children);
    let reconciling = tokio::spawn(reconcile(Arc::new(microservice("item")), ctx));
    let (shape, body) = next_status_apply(&mut handle).await;
    is_berth_apply(&shape);
    assert_eq!(body["kind"], "MicroService");
    assert_eq!(body["status"]["observedGeneration"], 1);
    assert_eq!(body["status"]["selector"], "berth.dev/microservice=item");
    assert!(
        body.get("spec").is_none(),
        "a status apply carries only status"
    );
    assert_eq!(
        condition(&body, "Monitored"),
        ("True".into(), "PodMonitorReady".into())
    );
    reconciling.await.unwrap().expect("reconcile succeeds");
    // The reconcile dropped the client: no request was left unanswered or unexpected.
    assert!(handle.next_request().await.is_none(), "no further request");
}

#[tokio::test]
async fn an_invalid_child_becomes_a_condition_not_a_retry_loop() {
    let (ctx, mut handle) = context(Availability::NotServed("not found".into()));
    let ms = Arc::new(microservice("item"));
    let reconciling = tokio::spawn(reconcile(ms, ctx));
    let deployment = "/apis/apps/v1/namespaces/shop/deployments/item";
    expect(&mut handle, Method::PATCH, deployment, StatusCode::UNPROCESSABLE_ENTITY, |_| {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
               "message": "Deployment.apps \"item\" is invalid: spec.template.spec.containers[0].resources.requests: Invalid value"})
    })
    .await;
    let body = next_status_apply(&mut handle).await.1;
    // No PodMonitor kind: nothing was asked for it, and the status says why.
    assert_eq!(
        condition(&body, "Monitored"),
        ("True".into(), "AnnotationsOnly".into())
    );
    let degraded = body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap()
        .clone();
    assert_eq!(
        (degraded["status"].as_str(), degraded["reason"].as_str()),
        (Some("True"), Some("InvalidChild"))
    );
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .contains("resources.requests")
    );
    let event = next_event(&mut handle).await;
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Warning"), Some("InvalidChild"))
    );
    let action = reconciling
        .await
        .unwrap()
        .expect("reported, not retried as an error");
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(crate::reconcile::RESYNC)
    );
}
