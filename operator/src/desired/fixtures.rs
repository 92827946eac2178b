//! MicroServices for unit tests: a minimal one as the API server would hand
//! it over (defaults applied, uid and namespace set), and helpers to vary it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};

use crate::microservice::{MicroService, MicroServiceSpec, MicroServiceStatus};

/// The smallest MicroService, image plus defaults, in namespace `shop`.
pub fn microservice(name: &str) -> MicroService {
    let spec: MicroServiceSpec = serde_json::from_value(
        serde_json::json!({ "image": format!("registry.local/{name}:1.0.0") }),
    )
    .expect("minimal spec deserializes");
    let mut ms = MicroService::new(name, spec);
    ms.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("shop".into()),
        uid: Some(format!("uid-{name}")),
        generation: Some(1),
        ..ObjectMeta::default()
    };
    ms
}

/// `ms` with a status whose Ready condition is True.
pub fn ready(mut ms: MicroService) -> MicroService {
    ms.status = Some(MicroServiceStatus {
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "AllReplicasReady".into(),
            message: String::new(),
            last_transition_time: Time(jiff_epoch()),
            observed_generation: Some(1),
        }],
        replicas: 1,
        ready_replicas: 1,
        available_replicas: 1,
        updated_replicas: 1,
        ..MicroServiceStatus::default()
    });
    ms
}

/// A fixed instant, so snapshots do not depend on the clock.
pub fn jiff_epoch() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("valid timestamp")
}

/// Builds a MicroService from YAML, with the metadata of [`microservice`].
pub fn from_yaml(name: &str, spec_yaml: &str) -> MicroService {
    let mut ms = microservice(name);
    ms.spec = serde_yaml::from_str(spec_yaml).expect("spec YAML deserializes");
    ms
}

/// Compares `value` as YAML with `src/desired/snapshots/<name>.yaml`.
/// `UPDATE_SNAPSHOTS=1 cargo test` rewrites the files; review the diff.
pub fn assert_snapshot<T: serde::Serialize>(name: &str, value: &T) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/desired/snapshots")
        .join(format!("{name}.yaml"));
    let actual = serde_yaml::to_string(value).expect("serializes to YAML");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("create snapshot dir");
        std::fs::write(&path, &actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}; run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    if actual != expected {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e);
        panic!(
            "snapshot {name} differs (first at line {}):\n--- actual\n{actual}\nUPDATE_SNAPSHOTS=1 rewrites it",
            line.map_or_else(|| "end".to_string(), |l| (l + 1).to_string())
        );
    }
}

/// A MicroService that sets every field.
pub fn full() -> MicroService {
    from_yaml(
        "order",
        r#"
image: registry.local/order:2.3.1
imagePullPolicy: IfNotPresent
command: ["/order-service"]
args: ["--log-format", "json"]
replicas: 3
port: 8082
service: { type: NodePort, port: 8080 }
env:
  - { name: LOG_FORMAT, value: json }
  - name: DATABASE_URL
    valueFrom: { secretKeyRef: { name: order-db, key: url } }
envFrom:
  - configMapRef: { name: order-config }
resources:
  requests: { cpu: 100m, memory: 64Mi }
  limits: { memory: 256Mi }
health: { liveness: /healthz, readiness: /readyz, startup: /healthz, periodSeconds: 5 }
autoscaling:
  minReplicas: 2
  maxReplicas: 10
  targetCPUUtilizationPercentage: 70
  targetMemoryUtilizationPercentage: 85
  behavior:
    scaleDown: { stabilizationWindowSeconds: 60 }
dependencies: [item]
disruptionBudget: { minAvailable: 1 }
rollingUpdate: { maxSurge: 1, maxUnavailable: 0 }
shutdown: { drainSeconds: 10, timeoutSeconds: 20 }
serviceAccountName: order
imagePullSecrets: [{ name: regcred }]
podLabels: { team: shop }
podAnnotations: { prometheus.io/scrape: "true" }
nodeSelector: { kubernetes.io/os: linux }
tolerations: [{ key: dedicated, operator: Equal, value: shop, effect: NoSchedule }]
"#,
    )
}

/// `applied` (the JSON body of one of Berth's applies) as the API server
/// stores it: the fields it set, owned by Berth's apply entry.
pub fn stored_by_berth(applied: &serde_json::Value) -> serde_json::Value {
    fn fields(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(o) => o
                .iter()
                .map(|(k, v)| (format!("f:{k}"), fields(v)))
                .collect(),
            _ => serde_json::json!({}),
        }
    }
    let mut owned = applied.clone();
    let object = owned.as_object_mut().expect("an object");
    object.remove("apiVersion");
    object.remove("kind");
    if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for key in ["name", "namespace", "resourceVersion"] {
            meta.remove(key);
        }
    }
    let mut stored = applied.clone();
    stored["metadata"]["managedFields"] = serde_json::json!([{
        "manager": crate::microservice::MANAGER,
        "operation": "Apply",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields(&owned),
    }]);
    stored
}
