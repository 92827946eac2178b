//! The HorizontalPodAutoscaler (`autoscaling/v2`) of a MicroService with
//! autoscaling on: the range, one metric per target (CPU and memory
//! utilization from the resource metrics API, requests per second per pod
//! from the custom metrics API) and `behavior` passed through as written.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;

use super::{DesiredError, child_meta, with_spec_hash};
use crate::microservice::MicroService;

/// CPU target when autoscaling is on but no target is given (the HPA's own default).
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;

/// The custom metric, per pod, that `targetRequestsPerSecond` targets. A
/// custom metrics adapter serves it (prometheus-adapter's usual rule turns
/// the services' `http_requests_total` counter into this rate).
pub const REQUESTS_PER_SECOND_METRIC: &str = "http_requests_per_second";

/// The autoscaler `ms` asks for, or `None` when autoscaling is off.
pub fn desired_autoscaler(
    ms: &MicroService,
) -> Result<Option<HorizontalPodAutoscaler>, DesiredError> {
    let Some(autoscaling) = &ms.spec.autoscaling else {
        return Ok(None);
    };
    let cpu = autoscaling.target_cpu_utilization_percentage;
    let memory = autoscaling.target_memory_utilization_percentage;
    let requests = autoscaling.target_requests_per_second;
    let no_target = cpu.is_none() && memory.is_none() && requests.is_none();
    let mut metrics = Vec::new();
    if let Some(cpu) = cpu.or(no_target.then_some(DEFAULT_CPU_UTILIZATION)) {
        metrics.push(utilization("cpu", cpu));
    }
    if let Some(memory) = memory {
        metrics.push(utilization("memory", memory));
    }
    if let Some(requests) = requests {
        metrics.push(per_pod_average(REQUESTS_PER_SECOND_METRIC, requests));
    }
    Ok(Some(with_spec_hash(HorizontalPodAutoscaler {
        metadata: child_meta(ms)?,
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: ms.name_any(),
            },
            min_replicas: Some(autoscaling.min_replicas),
            max_replicas: autoscaling.max_replicas,
            metrics: Some(metrics),
            behavior: without_empty_rules(autoscaling.behavior.clone()),
        }),
        status: None,
    })))
}

/// `behavior` without empty parts: `{}` and `scaleUp: {}` mean the
/// autoscaler's defaults, as leaving them out does. Sent, they are owned
/// empty, and the defaults the API server fills into them would read as
/// someone else's change ([`crate::drift`]).
fn without_empty_rules(
    behavior: Option<HorizontalPodAutoscalerBehavior>,
) -> Option<HorizontalPodAutoscalerBehavior> {
    let empty = HPAScalingRules::default();
    let behavior = behavior?;
    let rules = HorizontalPodAutoscalerBehavior {
        scale_up: behavior.scale_up.filter(|r| *r != empty),
        scale_down: behavior.scale_down.filter(|r| *r != empty),
    };
    (rules != HorizontalPodAutoscalerBehavior::default()).then_some(rules)
}

fn utilization(resource: &str, percent: i32) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: resource.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(percent),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }
}

/// A `Pods` metric: the HPA averages `metric` over the pods and compares it with `value`.
fn per_pod_average(metric: &str, value: i32) -> MetricSpec {
    MetricSpec {
        type_: "Pods".into(),
        pods: Some(PodsMetricSource {
            metric: MetricIdentifier {
                name: metric.into(),
                selector: None,
            },
            target: MetricTarget {
                type_: "AverageValue".into(),
                average_value: Some(Quantity(value.to_string())),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures::{assert_snapshot, from_yaml};

    fn metrics(spec_yaml: &str) -> Vec<MetricSpec> {
        desired_autoscaler(&from_yaml("item", spec_yaml))
            .unwrap()
            .unwrap()
            .spec
            .unwrap()
            .metrics
            .unwrap()
    }

    #[test]
    fn requests_per_second_becomes_a_pods_average_value_metric() {
        let metrics =
            metrics("image: item:1\nautoscaling: { maxReplicas: 5, targetRequestsPerSecond: 50 }");
        assert_eq!(
            metrics.len(),
            1,
            "no default CPU target next to a request-rate target"
        );
        let pods = metrics[0].pods.as_ref().unwrap();
        assert_eq!(metrics[0].type_, "Pods");
        assert_eq!(pods.metric.name, "http_requests_per_second");
        assert_eq!(pods.target.type_, "AverageValue");
        assert_eq!(pods.target.average_value, Some(Quantity("50".into())));
    }

    #[test]
    fn every_target_given_is_a_metric_in_order() {
        let metrics = metrics(
            "image: item:1\nautoscaling: { maxReplicas: 5, targetCPUUtilizationPercentage: 60, \
             targetMemoryUtilizationPercentage: 70, targetRequestsPerSecond: 20 }",
        );
        let kinds: Vec<_> = metrics
            .iter()
            .map(|m| match (&m.resource, &m.pods) {
                (Some(r), _) => r.name.clone(),
                (_, Some(p)) => p.metric.name.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(kinds, ["cpu", "memory", "http_requests_per_second"]);
    }

    #[test]
    fn behavior_is_passed_through_as_written() {
        let ms = from_yaml(
            "item",
            "image: item:1\nautoscaling:\n  maxReplicas: 5\n  targetRequestsPerSecond: 20\n  behavior:\n    scaleUp:\n      stabilizationWindowSeconds: 0\n      selectPolicy: Max\n      policies: [{ type: Pods, value: 4, periodSeconds: 15 }, { type: Percent, value: 100, periodSeconds: 15 }]\n    scaleDown:\n      stabilizationWindowSeconds: 30\n      policies: [{ type: Percent, value: 50, periodSeconds: 60 }]\n",
        );
        let hpa = desired_autoscaler(&ms).unwrap().unwrap();
        assert_eq!(
            hpa.spec.as_ref().unwrap().behavior,
            ms.spec.autoscaling.as_ref().unwrap().behavior
        );
        assert_snapshot("requests-per-second-autoscaler", &hpa);
    }

    #[test]
    fn empty_behavior_rules_are_left_out_as_the_defaults_they_mean() {
        let behavior = |json| serde_json::from_value(json).unwrap();
        assert_eq!(
            without_empty_rules(Some(behavior(serde_json::json!({})))),
            None
        );
        assert_eq!(
            without_empty_rules(Some(behavior(
                serde_json::json!({"scaleUp": {}, "scaleDown": {}})
            ))),
            None
        );
        let down = behavior(serde_json::json!({"scaleDown": {"stabilizationWindowSeconds": 30}}));
        assert_eq!(
            without_empty_rules(Some(behavior(
                serde_json::json!({"scaleUp": {}, "scaleDown": {"stabilizationWindowSeconds": 30}})
            ))),
            Some(down)
        );
    }
}
