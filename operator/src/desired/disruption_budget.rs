//! The PodDisruptionBudget of a MicroService that asks for one.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{DesiredError, child_meta, labels, with_spec_hash};
use crate::microservice::MicroService;

/// The budget `ms` asks for, or `None`. An empty `disruptionBudget: {}` means `maxUnavailable: 1`.
pub fn desired_disruption_budget(
    ms: &MicroService,
) -> Result<Option<PodDisruptionBudget>, DesiredError> {
    let Some(budget) = &ms.spec.disruption_budget else {
        return Ok(None);
    };
    let (min_available, max_unavailable) = match (&budget.min_available, &budget.max_unavailable) {
        (None, None) => (None, Some(IntOrString::Int(1))),
        (min, max) => (min.clone(), max.clone()),
    };
    Ok(Some(with_spec_hash(PodDisruptionBudget {
        metadata: child_meta(ms)?,
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some(labels::selector(ms)),
                match_expressions: None,
            }),
            min_available,
            max_unavailable,
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })))
}
