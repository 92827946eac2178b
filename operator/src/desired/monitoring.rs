//! How Prometheus finds a MicroService's pods: the `prometheus.io/*` pod
//! annotations a Prometheus with pod discovery reads, and a PodMonitor for
//! the Prometheus Operator. Both say the same port, path and interval.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, ResourceExt};
use serde::{Deserialize, Serialize};

use super::{CONTAINER_PORT_NAME, DesiredError, child_meta, labels, with_spec_hash};
use crate::microservice::{MicroService, Monitoring};

/// The label every scraped series gets naming its MicroService, in both ways
/// of scraping, so rules and dashboards select `microservice="item"`.
pub const MICROSERVICE_TARGET_LABEL: &str = "microservice";

/// The part of the Prometheus Operator's PodMonitor that Berth sets
/// (`monitoring.coreos.com/v1`; the CRD in the cluster validates the rest).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "PodMonitor",
    plural = "podmonitors",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    pub selector: LabelSelector,
    pub pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
}

/// One scrape endpoint of a PodMonitor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodMetricsEndpoint {
    /// A named container port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// A port by number, for a metrics port the container does not name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_number: Option<i32>,
    pub path: String,
    pub interval: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabelings: Vec<Relabeling>,
}

/// A Prometheus relabeling rule (`replace`, the default action).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Relabeling {
    pub source_labels: Vec<String>,
    pub target_label: String,
}

/// `spec.monitoring`, or its defaults when unset, if monitoring is on.
fn monitoring(ms: &MicroService) -> Option<Monitoring> {
    ms.spec
        .monitoring
        .clone()
        .unwrap_or_default()
        .enabled_then()
}

/// The conventional scrape annotations, or none when monitoring is off.
pub fn scrape_annotations(ms: &MicroService) -> BTreeMap<String, String> {
    let Some(monitoring) = monitoring(ms) else {
        return BTreeMap::new();
    };
    let port = monitoring.port.unwrap_or(ms.spec.port);
    [
        ("prometheus.io/scrape", "true".to_owned()),
        ("prometheus.io/port", port.to_string()),
        ("prometheus.io/path", monitoring.path().to_owned()),
        ("prometheus.io/interval", monitoring.interval().to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The PodMonitor `ms` asks for, or `None` when monitoring is off.
pub fn desired_pod_monitor(ms: &MicroService) -> Result<Option<PodMonitor>, DesiredError> {
    let Some(monitoring) = monitoring(ms) else {
        return Ok(None);
    };
    // The container's own port by its name; any other port by number.
    let (port, port_number) = match monitoring.port {
        Some(port) if port != ms.spec.port => (None, Some(port)),
        _ => (Some(CONTAINER_PORT_NAME.to_owned()), None),
    };
    let mut pod_monitor = PodMonitor::new(
        &ms.name_any(),
        PodMonitorSpec {
            selector: LabelSelector {
                match_labels: Some(labels::selector(ms)),
                match_expressions: None,
            },
            pod_metrics_endpoints: vec![PodMetricsEndpoint {
                port,
                port_number,
                path: monitoring.path().to_owned(),
                interval: monitoring.interval().to_owned(),
                relabelings: vec![Relabeling {
                    source_labels: vec![format!(
                        "__meta_kubernetes_pod_label_{}",
                        prometheus_label_name(labels::MICROSERVICE_LABEL)
                    )],
                    target_label: MICROSERVICE_TARGET_LABEL.into(),
                }],
            }],
        },
    );
    pod_monitor.metadata = child_meta(ms)?;
    Ok(Some(with_spec_hash(pod_monitor)))
}

/// A Kubernetes label key as Prometheus' service discovery spells it: every
/// character that is not a letter, digit or underscore becomes `_`.
fn prometheus_label_name(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures::{assert_snapshot, from_yaml, microservice};
    use crate::desired::{SPEC_HASH_ANNOTATION, desired_deployment};

    fn template_annotations(ms: &MicroService) -> BTreeMap<String, String> {
        desired_deployment(ms, &[])
            .expect("deployment")
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations)
            .unwrap_or_default()
    }

    #[test]
    fn on_by_default_the_pods_are_annotated_and_a_pod_monitor_selects_them() {
        let ms = microservice("item");
        let annotations = template_annotations(&ms);
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/port"], "8080");
        assert_eq!(annotations["prometheus.io/path"], "/metrics");
        assert_eq!(annotations["prometheus.io/interval"], "30s");
        let mut monitor = desired_pod_monitor(&ms).expect("desired").expect("on");
        monitor.annotations_mut().remove(SPEC_HASH_ANNOTATION);
        assert_snapshot("pod_monitor_default", &monitor);
    }

    #[test]
    fn a_metrics_port_other_than_the_containers_is_scraped_by_number() {
        let ms = from_yaml(
            "item",
            "{image: i, monitoring: {port: 9100, path: /stats, interval: 5s}}",
        );
        let annotations = template_annotations(&ms);
        assert_eq!(annotations["prometheus.io/port"], "9100");
        assert_eq!(annotations["prometheus.io/path"], "/stats");
        let monitor = desired_pod_monitor(&ms).expect("desired").expect("on");
        let endpoint = &monitor.spec.pod_metrics_endpoints[0];
        assert_eq!(
            (endpoint.port.as_deref(), endpoint.port_number),
            (None, Some(9100))
        );
        assert_eq!(
            (endpoint.path.as_str(), endpoint.interval.as_str()),
            ("/stats", "5s")
        );
        // The container's own port stays named, whichever way it is written.
        let same = from_yaml("item", "{image: i, port: 9000, monitoring: {port: 9000}}");
        let endpoint = &desired_pod_monitor(&same)
            .expect("desired")
            .expect("on")
            .spec
            .pod_metrics_endpoints[0];
        assert_eq!(
            (endpoint.port.as_deref(), endpoint.port_number),
            (Some("http"), None)
        );
    }

    #[test]
    fn switched_off_there_is_no_pod_monitor_and_no_scrape_annotation() {
        let ms = from_yaml(
            "item",
            "{image: i, monitoring: {enabled: false}, podAnnotations: {team: shop}}",
        );
        assert_eq!(desired_pod_monitor(&ms), Ok(None));
        let annotations = template_annotations(&ms);
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["team"]);
    }

    #[test]
    fn the_users_own_scrape_annotations_win() {
        let ms = from_yaml(
            "item",
            "{image: i, podAnnotations: {prometheus.io/scrape: 'false'}}",
        );
        assert_eq!(template_annotations(&ms)["prometheus.io/scrape"], "false");
    }

    #[test]
    fn label_keys_are_spelled_as_service_discovery_does() {
        assert_eq!(
            prometheus_label_name("berth.dev/microservice"),
            "berth_dev_microservice"
        );
    }
}
