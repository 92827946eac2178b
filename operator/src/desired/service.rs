//! The Service that gives a MicroService a stable in-cluster name.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{CONTAINER_PORT_NAME, DesiredError, child_meta, labels, with_spec_hash};
use crate::microservice::{MicroService, ServiceType};

/// The Service `ms` asks for: `service.port` forwarded to the named container port.
pub fn desired_service(ms: &MicroService) -> Result<Service, DesiredError> {
    let type_ = match ms.spec.service.type_ {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    Ok(with_spec_hash(Service {
        metadata: child_meta(ms)?,
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            selector: Some(labels::selector(ms)),
            ports: Some(vec![ServicePort {
                name: Some(CONTAINER_PORT_NAME.into()),
                port: ms.spec.service.port,
                target_port: Some(IntOrString::String(CONTAINER_PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }))
}
