//! The HorizontalPodAutoscaler (`autoscaling/v2`) of a MicroService with autoscaling on.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use kube::ResourceExt;

use super::{DesiredError, child_meta, with_spec_hash};
use crate::microservice::MicroService;

/// CPU target when autoscaling is on but no target is given (the HPA's own default).
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;

/// The autoscaler `ms` asks for, or `None` when autoscaling is off.
pub fn desired_autoscaler(
    ms: &MicroService,
) -> Result<Option<HorizontalPodAutoscaler>, DesiredError> {
    let Some(autoscaling) = &ms.spec.autoscaling else {
        return Ok(None);
    };
    let mut metrics = Vec::new();
    let cpu = autoscaling.target_cpu_utilization_percentage;
    let memory = autoscaling.target_memory_utilization_percentage;
    if let Some(cpu) = cpu.or(memory.is_none().then_some(DEFAULT_CPU_UTILIZATION)) {
        metrics.push(utilization("cpu", cpu));
    }
    if let Some(memory) = memory {
        metrics.push(utilization("memory", memory));
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
            behavior: autoscaling.behavior.clone(),
        }),
        status: None,
    })))
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
