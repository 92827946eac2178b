//! One series per MicroService, read from the cache at each scrape: what
//! its status says (Ready, replicas) and its autoscaling range. Alerts and
//! dashboards need these per service ("not Ready for 10 minutes", "stuck at
//! the maximum"), and kube-state-metrics does not know a custom resource.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::microservice::{MicroService, READY};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MicroServiceLabels {
    pub namespace: String,
    pub microservice: String,
}

/// The per-MicroService gauges.
#[derive(Default)]
pub struct MicroServiceGauges {
    ready: Family<MicroServiceLabels, Gauge>,
    replicas: Family<MicroServiceLabels, Gauge>,
    ready_replicas: Family<MicroServiceLabels, Gauge>,
    desired_replicas: Family<MicroServiceLabels, Gauge>,
    min_replicas: Family<MicroServiceLabels, Gauge>,
    max_replicas: Family<MicroServiceLabels, Gauge>,
}

impl MicroServiceGauges {
    /// Each family with its name and help, in one list for both
    /// registering and clearing.
    fn families(
        &self,
    ) -> [(
        &'static str,
        &'static str,
        &Family<MicroServiceLabels, Gauge>,
    ); 6] {
        [
            (
                "microservice_ready",
                "1 while the MicroService's Ready condition is True, else 0",
                &self.ready,
            ),
            (
                "microservice_replicas",
                "Pods of the MicroService's Deployment",
                &self.replicas,
            ),
            (
                "microservice_ready_replicas",
                "Pods passing their readiness probe",
                &self.ready_replicas,
            ),
            (
                "microservice_desired_replicas",
                "Replicas asked for, by spec.replicas or the autoscaler",
                &self.desired_replicas,
            ),
            (
                "microservice_min_replicas",
                "Autoscaling minimum (only with autoscaling on)",
                &self.min_replicas,
            ),
            (
                "microservice_max_replicas",
                "Autoscaling maximum (only with autoscaling on)",
                &self.max_replicas,
            ),
        ]
    }

    pub fn register(&self, registry: &mut Registry) {
        for (name, help, family) in self.families() {
            registry.register(name, help, family.clone());
        }
    }

    /// Replaces every series with what `microservices` say now, so a deleted
    /// MicroService's series go away with it.
    pub fn observe<'a>(&self, microservices: impl IntoIterator<Item = &'a MicroService>) {
        for (_, _, family) in self.families() {
            family.clear();
        }
        for ms in microservices {
            let labels = MicroServiceLabels {
                namespace: ms.metadata.namespace.clone().unwrap_or_default(),
                microservice: ms.metadata.name.clone().unwrap_or_default(),
            };
            let status = ms.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == READY && c.status == "True");
            self.ready.get_or_create(&labels).set(i64::from(ready));
            self.replicas
                .get_or_create(&labels)
                .set(status.replicas.into());
            self.ready_replicas
                .get_or_create(&labels)
                .set(status.ready_replicas.into());
            if let Some(desired) = status.desired_replicas {
                self.desired_replicas
                    .get_or_create(&labels)
                    .set(desired.into());
            }
            if let Some(autoscaling) = &ms.spec.autoscaling {
                self.min_replicas
                    .get_or_create(&labels)
                    .set(autoscaling.min_replicas.into());
                self.max_replicas
                    .get_or_create(&labels)
                    .set(autoscaling.max_replicas.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures::{from_yaml, microservice, ready};

    fn exposition(gauges: &MicroServiceGauges) -> String {
        let mut registry = Registry::with_prefix("berth");
        gauges.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn each_microservice_has_its_series_and_a_deleted_one_loses_them() {
        let gauges = MicroServiceGauges::default();
        let item = ready(microservice("item"));
        let order = from_yaml(
            "order",
            "{image: o, autoscaling: {minReplicas: 2, maxReplicas: 5, targetCPUUtilizationPercentage: 50}}",
        );
        gauges.observe([&item, &order]);
        let text = exposition(&gauges);
        for line in [
            r#"berth_microservice_ready{namespace="shop",microservice="item"} 1"#,
            r#"berth_microservice_ready{namespace="shop",microservice="order"} 0"#,
            r#"berth_microservice_ready_replicas{namespace="shop",microservice="item"} 1"#,
            r#"berth_microservice_max_replicas{namespace="shop",microservice="order"} 5"#,
            r#"berth_microservice_min_replicas{namespace="shop",microservice="order"} 2"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(
            !text.contains(
                r#"berth_microservice_max_replicas{namespace="shop",microservice="item"}"#
            )
        );
        gauges.observe([&item]);
        assert!(!exposition(&gauges).contains(r#"microservice="order""#));
    }
}
