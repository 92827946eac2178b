//! Unit tests of the builders: snapshots of the YAML Berth applies, and the
//! rules that matter most spelled out as assertions.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::fixtures::{assert_snapshot, from_yaml, full, microservice};
use super::*;
use crate::microservice::{DependencyState, DependencyStatus};

fn item_dependency() -> Vec<DependencyStatus> {
    vec![DependencyStatus {
        name: "item".into(),
        state: DependencyState::Ready,
        url: "http://item.shop.svc.cluster.local:80".into(),
    }]
}

#[test]
fn minimal_microservice_snapshot() {
    let children = children(&microservice("item"), &[]).unwrap();
    assert_snapshot("minimal-deployment", &children.deployment);
    assert_snapshot("minimal-service", &children.service);
    assert!(children.autoscaler.is_none());
    assert!(children.disruption_budget.is_none());
}

#[test]
fn full_microservice_snapshot() {
    let children = children(&full(), &item_dependency()).unwrap();
    assert_snapshot("full-deployment", &children.deployment);
    assert_snapshot("full-service", &children.service);
    assert_snapshot("full-autoscaler", &children.autoscaler.unwrap());
    assert_snapshot(
        "full-disruption-budget",
        &children.disruption_budget.unwrap(),
    );
}

#[test]
fn defaults_make_image_plus_port_enough() {
    let ms = microservice("item");
    assert_eq!(ms.spec.replicas, 1);
    assert_eq!(ms.spec.port, 8080);
    assert_eq!(ms.spec.service.port, 80);
    let svc = desired_service(&ms).unwrap();
    let port = &svc.spec.unwrap().ports.unwrap()[0];
    assert_eq!(port.port, 80);
    assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
}

/// A rollout keeps every pod serving until its replacement is Ready, a pod
/// gets traffic only once it listens, and a stopping pod serves on while
/// traffic moves away: zero failed requests need all three by default.
#[test]
fn defaults_make_a_rollout_lose_no_request() {
    let deployment = desired_deployment(&microservice("item"), &[]).unwrap();
    let spec = deployment.spec.unwrap();
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(rolling.max_surge, Some(IntOrString::String("25%".into())));
    let pod = spec.template.spec.unwrap();
    let container = &pod.containers[0];
    let readiness = container.readiness_probe.as_ref().unwrap();
    let tcp = readiness.tcp_socket.as_ref().unwrap();
    assert_eq!(tcp.port, IntOrString::String("http".into()));
    assert!(readiness.http_get.is_none());
    let sleep = container
        .lifecycle
        .as_ref()
        .unwrap()
        .pre_stop
        .as_ref()
        .unwrap();
    assert_eq!(sleep.sleep.as_ref().unwrap().seconds, 5);
    assert_eq!(pod.termination_grace_period_seconds, Some(5 + 30));
}

#[test]
fn shutdown_and_rollout_settings_are_the_users_to_change() {
    let ms = from_yaml(
        "item",
        "image: item:1\nhealth: { readiness: /readyz }\nrollingUpdate: { maxSurge: 0 }\n\
         shutdown: { drainSeconds: 0, timeoutSeconds: 7 }\n",
    );
    let spec = desired_deployment(&ms, &[]).unwrap().spec.unwrap();
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    // maxSurge 0 needs room on the other side, or the API server refuses both zero.
    assert_eq!(rolling.max_surge, Some(IntOrString::Int(0)));
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(1)));
    let pod = spec.template.spec.unwrap();
    let container = &pod.containers[0];
    let readiness = container.readiness_probe.as_ref().unwrap();
    assert_eq!(
        readiness.http_get.as_ref().unwrap().path.as_deref(),
        Some("/readyz")
    );
    assert!(container.lifecycle.is_none(), "drainSeconds 0: no preStop");
    assert_eq!(pod.termination_grace_period_seconds, Some(7));
}

#[test]
fn every_child_is_controlled_by_the_microservice() {
    let children = children(&full(), &[]).unwrap();
    let refs = [
        children.deployment.metadata.owner_references.clone(),
        children.service.metadata.owner_references.clone(),
        children.autoscaler.unwrap().metadata.owner_references,
        children
            .disruption_budget
            .unwrap()
            .metadata
            .owner_references,
    ];
    for owner in refs {
        let owner = &owner.unwrap()[0];
        assert_eq!(owner.kind, "MicroService");
        assert_eq!(owner.api_version, "berth.dev/v1alpha1");
        assert_eq!(owner.uid, "uid-order");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
    }
}

#[test]
fn autoscaling_leaves_replicas_to_the_autoscaler() {
    let mut ms = full();
    let deployment = desired_deployment(&ms, &[]).unwrap();
    assert_eq!(
        deployment.spec.unwrap().replicas,
        None,
        "the HPA owns replicas"
    );
    ms.spec.autoscaling = None;
    let deployment = desired_deployment(&ms, &[]).unwrap();
    assert_eq!(
        deployment.spec.unwrap().replicas,
        Some(3),
        "spec.replicas applies again"
    );
    assert!(
        desired_autoscaler(&ms).unwrap().is_none(),
        "no autoscaler is asked for"
    );
}

#[test]
fn autoscaler_defaults_to_cpu_80_and_honours_memory_only() {
    let ms = from_yaml("item", "image: item:1\nautoscaling: { maxReplicas: 4 }");
    let hpa = desired_autoscaler(&ms).unwrap().unwrap().spec.unwrap();
    assert_eq!(hpa.min_replicas, Some(1));
    assert_eq!(hpa.max_replicas, 4);
    let metrics = hpa.metrics.unwrap();
    assert_eq!(metrics.len(), 1);
    let cpu = metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        (cpu.name.as_str(), cpu.target.average_utilization),
        ("cpu", Some(80))
    );

    let ms = from_yaml(
        "item",
        "image: item:1\nautoscaling: { maxReplicas: 4, targetMemoryUtilizationPercentage: 60 }",
    );
    let metrics = desired_autoscaler(&ms)
        .unwrap()
        .unwrap()
        .spec
        .unwrap()
        .metrics
        .unwrap();
    let names: Vec<_> = metrics
        .iter()
        .map(|m| m.resource.as_ref().unwrap().name.clone())
        .collect();
    assert_eq!(names, vec!["memory".to_string()]);
}

#[test]
fn disruption_budget_defaults_to_one_unavailable() {
    let ms = from_yaml("item", "image: item:1\ndisruptionBudget: {}");
    let pdb = desired_disruption_budget(&ms)
        .unwrap()
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(pdb.min_available, None);
    let ms = from_yaml(
        "item",
        "image: item:1\ndisruptionBudget: { minAvailable: 50% }",
    );
    let pdb = desired_disruption_budget(&ms)
        .unwrap()
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(pdb.min_available, Some(IntOrString::String("50%".into())));
    assert_eq!(pdb.max_unavailable, None);
}

#[test]
fn dependencies_inject_urls_unless_the_user_set_the_variable() {
    let mut ms = full();
    let env = |ms: &MicroService| {
        let d = desired_deployment(ms, &item_dependency()).unwrap();
        d.spec.unwrap().template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap()
    };
    let injected = env(&ms);
    let item_url = injected.iter().find(|e| e.name == "ITEM_URL").unwrap();
    assert_eq!(
        item_url.value.as_deref(),
        Some("http://item.shop.svc.cluster.local:80")
    );

    ms.spec.env.push(k8s_openapi::api::core::v1::EnvVar {
        name: "ITEM_URL".into(),
        value: Some("http://override".into()),
        value_from: None,
    });
    let overridden = env(&ms);
    let urls: Vec<_> = overridden.iter().filter(|e| e.name == "ITEM_URL").collect();
    assert_eq!(urls.len(), 1);
    assert_eq!(urls[0].value.as_deref(), Some("http://override"));
}

#[test]
fn pods_are_restricted_unless_the_spec_says_otherwise() {
    let pod = |ms: &MicroService| {
        desired_deployment(ms, &[])
            .unwrap()
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
    };
    let ms = microservice("item");
    let restricted = pod(&ms);
    let sc = restricted.containers[0].security_context.clone().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".into()]));
    assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    assert_eq!(
        restricted.security_context.unwrap().run_as_non_root,
        Some(true)
    );

    let ms = from_yaml(
        "item",
        "image: item:1\nsecurityContext: { readOnlyRootFilesystem: false }",
    );
    let custom = pod(&ms).containers[0].security_context.clone().unwrap();
    assert_eq!(custom.read_only_root_filesystem, Some(false));
    assert_eq!(
        custom.run_as_non_root, None,
        "the user's context replaces Berth's whole"
    );
}

#[test]
fn labels_select_by_microservice_and_keep_user_pod_labels() {
    let d = desired_deployment(&full(), &[]).unwrap();
    let spec = d.spec.unwrap();
    let selector = spec.selector.match_labels.unwrap();
    assert_eq!(selector.len(), 1);
    assert_eq!(selector["berth.dev/microservice"], "order");
    let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
    assert_eq!(pod_labels["team"], "shop");
    assert_eq!(pod_labels["app.kubernetes.io/managed-by"], "berth-operator");
    assert_eq!(pod_labels["app.kubernetes.io/version"], "2.3.1");
}

#[test]
fn an_image_change_changes_the_deployment_and_no_other_child() {
    let before = children(&full(), &[]).unwrap();
    let mut ms = full();
    ms.spec.image = "registry.local/order:2.4.0".into();
    let after = children(&ms, &[]).unwrap();
    assert_ne!(after.deployment, before.deployment);
    let deployment_labels = after.deployment.metadata.labels.as_ref().unwrap();
    assert_eq!(deployment_labels["app.kubernetes.io/version"], "2.4.0");
    assert_eq!(after.service, before.service);
    assert_eq!(after.autoscaler, before.autoscaler);
    assert_eq!(after.disruption_budget, before.disruption_budget);
    assert_eq!(after.pod_monitor, before.pod_monitor);
}

#[test]
fn startup_probe_gets_attempts_for_its_timeout() {
    let ms = from_yaml(
        "item",
        "image: item:1\nhealth: { startup: /healthz, periodSeconds: 7, startupTimeoutSeconds: 60 }",
    );
    let d = desired_deployment(&ms, &[]).unwrap();
    let probe = d.spec.unwrap().template.spec.unwrap().containers[0]
        .startup_probe
        .clone()
        .unwrap();
    assert_eq!(probe.failure_threshold, Some(9), "ceil(60 / 7)");
}

#[test]
fn spec_hash_changes_with_the_spec_and_only_then() {
    let hash = |ms: &MicroService| {
        desired_deployment(ms, &[])
            .unwrap()
            .metadata
            .annotations
            .unwrap()[SPEC_HASH_ANNOTATION]
            .clone()
    };
    let ms = microservice("item");
    assert_eq!(hash(&ms), hash(&ms.clone()));
    let mut changed = ms.clone();
    changed.spec.image = "registry.local/item:1.0.1".into();
    assert_ne!(hash(&ms), hash(&changed));
}

#[test]
fn unpersisted_microservice_is_an_error_not_a_panic() {
    let mut ms = microservice("item");
    ms.metadata.uid = None;
    assert_eq!(
        children(&ms, &[]),
        Err(DesiredError::MissingMetadata("uid"))
    );
}

#[test]
fn a_new_autoscaled_deployment_starts_inside_the_range() {
    let ms = full();
    let autoscaling = ms.spec.autoscaling.clone().unwrap();
    let hash = |d: &k8s_openapi::api::apps::v1::Deployment| {
        d.metadata.annotations.as_ref().unwrap()[SPEC_HASH_ANNOTATION].clone()
    };
    let plain = desired_deployment(&ms, &[]).unwrap();
    let started = start_within_autoscaling_range(plain.clone(), &autoscaling, 1);
    assert_eq!(
        started.spec.as_ref().unwrap().replicas,
        Some(2),
        "min 2, not Kubernetes' default 1"
    );
    assert_ne!(
        hash(&started),
        hash(&plain),
        "the next pass must see the hand-over is due"
    );
    let started = start_within_autoscaling_range(plain.clone(), &autoscaling, 4);
    assert_eq!(started.spec.unwrap().replicas, Some(4));
    let from_one: crate::microservice::Autoscaling =
        serde_json::from_value(serde_json::json!({"minReplicas": 1, "maxReplicas": 3})).unwrap();
    assert_eq!(
        start_within_autoscaling_range(plain.clone(), &from_one, 1),
        plain,
        "a start at Kubernetes' default needs no count, so no hand-over follows"
    );
}
