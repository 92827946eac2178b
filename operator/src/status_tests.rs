//! Unit tests of status computation.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus,
};
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::desired::fixtures::{jiff_epoch, microservice};
use crate::microservice::{DependencyState, DependencyStatus, MicroService};
use crate::status::*;

fn deployment(desired: i32, ready: i32, updated: i32, replicas: i32) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            generation: Some(2),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(desired),
            ..DeploymentSpec::default()
        }),
        status: Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(replicas),
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            updated_replicas: Some(updated),
            ..DeploymentStatus::default()
        }),
    }
}

fn now() -> Time {
    Time(jiff_epoch())
}

fn later() -> Time {
    Time(jiff_epoch() + k8s_openapi::jiff::SignedDuration::from_secs(60))
}

fn condition<'a>(
    status: &'a crate::microservice::MicroServiceStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

fn with_status(
    mut ms: MicroService,
    status: crate::microservice::MicroServiceStatus,
) -> MicroService {
    ms.status = Some(status);
    ms
}

#[test]
fn no_deployment_yet_is_not_ready() {
    let status = compute(&microservice("item"), Observed::default(), &now());
    let ready = condition(&status, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "DeploymentMissing")
    );
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        status.selector.as_deref(),
        Some("berth.dev/microservice=item")
    );
    assert_eq!(
        status.url.as_deref(),
        Some("http://item.shop.svc.cluster.local:80")
    );
}

#[test]
fn complete_rollout_is_ready_and_not_progressing() {
    let d = deployment(3, 3, 3, 3);
    let status = compute(
        &microservice("item"),
        Observed {
            deployment: Some(&d),
            ..Observed::default()
        },
        &now(),
    );
    assert_eq!(condition(&status, READY).status, "True");
    assert_eq!(condition(&status, READY).message, "3/3 pods ready");
    assert_eq!(condition(&status, PROGRESSING).status, "False");
    assert_eq!(condition(&status, DEGRADED).status, "False");
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.desired_replicas
        ),
        (3, 3, Some(3))
    );
}

#[test]
fn rollout_in_progress_is_progressing_and_not_ready() {
    let d = deployment(3, 3, 1, 4);
    let status = compute(
        &microservice("item"),
        Observed {
            deployment: Some(&d),
            ..Observed::default()
        },
        &now(),
    );
    assert_eq!(condition(&status, READY).status, "False");
    assert_eq!(condition(&status, READY).reason, "ReplicasNotReady");
    let progressing = condition(&status, PROGRESSING);
    assert_eq!(
        (progressing.status.as_str(), progressing.message.as_str()),
        ("True", "1/3 pods updated")
    );
}

#[test]
fn stale_deployment_generation_is_not_complete() {
    let mut d = deployment(1, 1, 1, 1);
    d.status.as_mut().unwrap().observed_generation = Some(1);
    let status = compute(
        &microservice("item"),
        Observed {
            deployment: Some(&d),
            ..Observed::default()
        },
        &now(),
    );
    assert_eq!(condition(&status, READY).status, "False");
}

#[test]
fn stuck_rollout_and_failures_are_degraded() {
    let mut d = deployment(2, 1, 2, 2);
    d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
        type_: "Progressing".into(),
        status: "False".into(),
        reason: Some("ProgressDeadlineExceeded".into()),
        message: Some("took too long".into()),
        ..DeploymentCondition::default()
    }]);
    let status = compute(
        &microservice("item"),
        Observed {
            deployment: Some(&d),
            ..Observed::default()
        },
        &now(),
    );
    assert_eq!(
        condition(&status, DEGRADED).reason,
        "ProgressDeadlineExceeded"
    );

    let failure = Failure {
        reason: FailureReason::ChildConflict,
        message: "Service shop/item exists".into(),
    };
    let status = compute(
        &microservice("item"),
        Observed {
            failure: Some(&failure),
            ..Observed::default()
        },
        &now(),
    );
    let degraded = condition(&status, DEGRADED);
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "ChildConflict")
    );
    assert_eq!(condition(&status, READY).reason, "ChildConflict");
}

#[test]
fn dependencies_condition_names_missing_and_not_ready() {
    let deps = vec![
        DependencyStatus {
            name: "item".into(),
            state: DependencyState::Missing,
            url: String::new(),
        },
        DependencyStatus {
            name: "pay".into(),
            state: DependencyState::NotReady,
            url: String::new(),
        },
        DependencyStatus {
            name: "auth".into(),
            state: DependencyState::Ready,
            url: String::new(),
        },
    ];
    let status = compute(
        &microservice("order"),
        Observed {
            dependencies: &deps,
            ..Observed::default()
        },
        &now(),
    );
    let c = condition(&status, DEPENDENCIES_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "DependenciesMissing")
    );
    assert_eq!(c.message, "missing: item; not ready: pay");
    assert_eq!(status.dependencies, deps);

    let ready = vec![DependencyStatus {
        name: "item".into(),
        state: DependencyState::Ready,
        url: String::new(),
    }];
    let status = compute(
        &microservice("order"),
        Observed {
            dependencies: &ready,
            ..Observed::default()
        },
        &now(),
    );
    assert_eq!(condition(&status, DEPENDENCIES_READY).status, "True");

    let leaving = vec![DependencyStatus {
        name: "item".into(),
        state: DependencyState::Terminating,
        url: String::new(),
    }];
    let status = compute(
        &microservice("order"),
        Observed {
            dependencies: &leaving,
            ..Observed::default()
        },
        &now(),
    );
    let c = condition(&status, DEPENDENCIES_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
        ("False", "DependenciesNotReady", "being deleted: item")
    );

    let idle = vec![DependencyStatus {
        name: "item".into(),
        state: DependencyState::ScaledToZero,
        url: String::new(),
    }];
    let status = compute(
        &microservice("order"),
        Observed {
            dependencies: &idle,
            ..Observed::default()
        },
        &now(),
    );
    let c = condition(&status, DEPENDENCIES_READY);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
        ("False", "DependenciesNotReady", "scaled to zero: item")
    );
}

#[test]
fn recomputing_an_unchanged_status_gives_an_equal_value() {
    let d = deployment(2, 2, 2, 2);
    let observed = Observed {
        deployment: Some(&d),
        ..Observed::default()
    };
    let first = compute(&microservice("item"), observed, &now());
    let ms = with_status(microservice("item"), first.clone());
    let second = compute(&ms, observed, &later());
    assert_eq!(first, second, "no timestamp churn, so no status write");
}

#[test]
fn transition_time_moves_only_when_the_condition_flips() {
    let ms = with_status(
        microservice("item"),
        compute(&microservice("item"), Observed::default(), &now()),
    );
    let d = deployment(1, 1, 1, 1);
    let next = compute(
        &ms,
        Observed {
            deployment: Some(&d),
            ..Observed::default()
        },
        &later(),
    );
    assert_eq!(condition(&next, READY).last_transition_time, later());
    assert_eq!(
        condition(&next, DEGRADED).last_transition_time,
        now(),
        "Degraded stayed False"
    );
}

#[test]
fn autoscaler_view_and_scaling_active_are_reported() {
    let mut ms = microservice("item");
    ms.spec.autoscaling =
        Some(serde_json::from_value(serde_json::json!({"maxReplicas": 5})).unwrap());
    let hpa = HorizontalPodAutoscaler {
        status: Some(HorizontalPodAutoscalerStatus {
            current_replicas: Some(2),
            desired_replicas: 4,
            conditions: Some(vec![HorizontalPodAutoscalerCondition {
                type_: "ScalingActive".into(),
                status: "False".into(),
                reason: Some("FailedGetResourceMetric".into()),
                message: Some("unable to get metrics for resource cpu".into()),
                ..HorizontalPodAutoscalerCondition::default()
            }]),
            ..HorizontalPodAutoscalerStatus::default()
        }),
        ..HorizontalPodAutoscaler::default()
    };
    let status = compute(
        &ms,
        Observed {
            autoscaler: Some(&hpa),
            ..Observed::default()
        },
        &now(),
    );
    let view = status.autoscaler.clone().unwrap();
    assert_eq!((view.current_replicas, view.desired_replicas), (2, 4));
    let c = condition(&status, SCALING_ACTIVE);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "FailedGetResourceMetric")
    );

    let off = compute(&microservice("item"), Observed::default(), &now());
    assert!(off.conditions.iter().all(|c| c.type_ != SCALING_ACTIVE));
}

/// The HPA names a different pod in the same message from one sync to the
/// next; the MicroService's condition does not follow, so its status is not
/// rewritten at rest. (Found by the generated specs: seed 1796025285870498744.)
#[test]
fn the_hpa_naming_another_pod_does_not_change_the_condition() {
    let message = |pod: &str| {
        format!(
            "the HPA was unable to compute the replica count: failed to get memory utilization: \
             missing request for memory in container g-6 of Pod {pod}"
        )
    };
    let first = without_pod_names(&message("g-6-6d8f5bf5d9-x9vqf"), "g-6");
    let second = without_pod_names(&message("g-6-6d8f5bf5d9-crsv4"), "g-6");
    assert_eq!(first, second);
    assert!(first.ends_with("in container g-6 of Pod g-6-…"), "{first}");
    // Other names stay: the container, another workload's pod, plain words.
    let other = "container g-6 of Pod web-6d8f5bf5d9-x9vqf, g-6-extra-long-name ok.";
    assert_eq!(without_pod_names(other, "g-6"), other);
    assert_eq!(
        without_pod_names("Pod g-6-6d8f5bf5d9-x9vqf: no metrics.", "g-6"),
        "Pod g-6-…: no metrics."
    );
}

#[test]
fn without_the_pod_monitor_kind_the_service_is_still_ready_and_says_why() {
    let d = deployment(1, 1, 1, 1);
    let status = compute(
        &microservice("item"),
        Observed {
            deployment: Some(&d),
            monitor: MonitorObserved::NotServed("not found"),
            ..Observed::default()
        },
        &now(),
    );
    assert_eq!(condition(&status, READY).status, "True");
    let monitored = condition(&status, MONITORED);
    assert_eq!(
        (monitored.status.as_str(), monitored.reason.as_str()),
        ("True", "AnnotationsOnly")
    );
    assert!(
        monitored
            .message
            .contains("monitoring.coreos.com/v1 PodMonitor (not found)")
            && monitored
                .message
                .contains("port 8080, path /metrics, every 30s"),
        "{}",
        monitored.message
    );
}

#[test]
fn a_pod_monitor_that_should_exist_and_does_not_is_false() {
    let observed = |exists| Observed {
        monitor: MonitorObserved::Served { exists },
        ..Observed::default()
    };
    let ms = microservice("item");
    let there = compute(&ms, observed(true), &now());
    assert_eq!(
        (
            condition(&there, MONITORED).status.as_str(),
            condition(&there, MONITORED).reason.as_str()
        ),
        ("True", "PodMonitorReady")
    );
    let missing = compute(&ms, observed(false), &now());
    assert_eq!(condition(&missing, MONITORED).status, "False");
}

#[test]
fn monitoring_switched_off_reports_no_monitored_condition() {
    let ms =
        crate::desired::fixtures::from_yaml("item", "{image: i, monitoring: {enabled: false}}");
    let status = compute(&ms, Observed::default(), &now());
    assert!(status.conditions.iter().all(|c| c.type_ != MONITORED));
}
