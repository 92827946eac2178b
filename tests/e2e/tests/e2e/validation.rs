//! The CRD installs and the API server itself refuses bad manifests with
//! Berth's CEL messages: nothing bad is stored to fail later.

use berth_e2e::{TestNamespace, client, install_crd, kubectl};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

#[tokio::test]
async fn crd_installs_and_is_established() {
    let client = client().await;
    install_crd(&client).await.unwrap();
    let crd = Api::<CustomResourceDefinition>::all(client)
        .get("microservices.berth.dev")
        .await
        .unwrap();
    let conditions = crd.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    assert_eq!(crd.spec.names.short_names, Some(vec!["ms".to_string()]));
}

/// (manifest spec, a phrase the API server's refusal must contain)
const BAD_SPECS: &[(&str, &str)] = &[
    (
        "image: x\nautoscaling: { minReplicas: 5, maxReplicas: 2 }",
        "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas",
    ),
    (
        "image: x\nautoscaling: { maxReplicas: 0 }",
        "autoscaling.maxReplicas must be at least 1",
    ),
    ("image: x\nport: 70000", "port must be between 1 and 65535"),
    (
        "image: x\nservice: { port: 0 }",
        "service.port must be between 1 and 65535",
    ),
    (
        "image: x\ndependencies: [Item_Service]",
        "each dependency must be the name of a MicroService",
    ),
    (
        "image: x\ndependencies: [bad-spec]",
        "spec.dependencies must not name the MicroService itself",
    ),
    (
        "image: x\nautoscaling: { maxReplicas: 3, targetCPUUtilizationPercentage: 150 }",
        "targetCPUUtilizationPercentage must be between 1 and 100",
    ),
    (
        "image: x\ndisruptionBudget: { minAvailable: 1, maxUnavailable: 1 }",
        "set at most one of disruptionBudget.minAvailable and disruptionBudget.maxUnavailable",
    ),
    (
        "image: x\npodLabels: { berth.dev/microservice: other }",
        "podLabels must not set berth.dev/microservice",
    ),
    (
        "image: x\nhealth: { liveness: healthz }",
        "health.liveness must be an HTTP path starting with '/'",
    ),
    ("image: ''", "image must not be empty"),
];

#[tokio::test]
async fn invalid_manifests_are_rejected_with_the_cel_messages() {
    let client = client().await;
    install_crd(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "invalid").await;
    for (spec, message) in BAD_SPECS {
        let manifest = format!(
            "apiVersion: berth.dev/v1alpha1\nkind: MicroService\nmetadata: {{ name: bad-spec, namespace: {} }}\nspec:\n{}\n",
            ns.name,
            spec.lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        // Through kubectl, as a user would: the refusal must reach the terminal.
        let mut child = kubectl()
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs (set KUBECTL or build the cluster)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(manifest.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted a bad spec:\n{spec}");
        assert!(
            stderr.contains(message),
            "for\n{spec}\nexpected {message:?} in:\n{stderr}"
        );
    }
    let stored = ns
        .api::<berth_operator::MicroService>()
        .list(&Default::default())
        .await
        .unwrap();
    assert!(stored.items.is_empty(), "nothing bad was stored");
}
