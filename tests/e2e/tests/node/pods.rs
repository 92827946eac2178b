//! The item and order images start on the real node as Berth's restricted
//! pods, and become Ready through their own probes: the spec the API server
//! stored, the container the runtime started, and the process the kernel runs.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::support::{
    assert_restricted_spec, assert_runs_on_real_node, container_process, http, is_ready,
    item_and_order, json_of, send, wait_pod_ready,
};

/// Berth's liveness probe starts after 10 s without a startup probe; with a
/// 2 s period and threshold 3, a failing `/healthz` restarts the container by
/// 16 s after it started.
const LIVENESS_VERDICT: Duration = Duration::from_secs(10 + 3 * 2 + 2);

#[tokio::test]
async fn item_and_order_run_restricted_on_the_real_node_and_pass_their_probes() {
    let env = item_and_order("node-run").await;
    let log = env.operator.log.display().to_string();

    let pods: Api<Pod> = env.ns.api();
    let mut started = Vec::new();
    for name in ["item", "order"] {
        let pod = wait_pod_ready(&pods, name, None)
            .await
            .with_context(|| format!("operator log: {log}"))
            .unwrap();
        assert_runs_on_real_node(&pod);
        assert_restricted_spec(&pod);

        let container = &pod.spec.as_ref().unwrap().containers[0];
        let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
            p.as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.clone())
        };
        assert_eq!(
            probe_path(&container.readiness_probe).as_deref(),
            Some("/readyz")
        );
        assert_eq!(
            probe_path(&container.liveness_probe).as_deref(),
            Some("/healthz")
        );

        // The real node is this machine: the kernel shows what was enforced.
        let process = container_process(&pod).unwrap();
        assert_eq!(
            process.uid, 65532,
            "{name} (pid {}): not the image's non-root USER",
            process.pid
        );
        assert_eq!(process.effective_capabilities, 0, "{name}: {process:?}");
        assert_eq!(
            process.bounding_capabilities, 0,
            "{name} kept capabilities: {process:?}"
        );
        assert!(
            process.no_new_privs,
            "{name} may gain privileges: {process:?}"
        );
        assert_eq!(
            process.seccomp_mode, 2,
            "{name} has no seccomp filter: {process:?}"
        );
        assert!(
            process.root_read_only,
            "{name}'s root filesystem is writable: {process:?}"
        );

        // The process answers on its pod IP, as the kubelet's probe does.
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap();
        let response = send(&format!("{name} /readyz"), || {
            http().get(format!("http://{ip}:8080/readyz"))
        })
        .await
        .unwrap();
        let (status, body) = json_of(response).await.unwrap();
        assert_eq!(status, 200, "{name} /readyz on {ip}: {body}");
        started.push(pod);
    }

    for name in ["item", "order"] {
        let ms = env.wait_ready(name).await.unwrap();
        let status = ms.status.unwrap();
        assert_eq!((status.replicas, status.ready_replicas), (1, 1), "{name}");
    }

    // Liveness holds: past the point where a failing /healthz would have
    // restarted it, the same container still runs, ready, never restarted.
    let latest_start = started
        .iter()
        .filter_map(|p| {
            let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
            Some(
                statuses[0]
                    .state
                    .as_ref()?
                    .running
                    .as_ref()?
                    .started_at
                    .as_ref()?
                    .0,
            )
        })
        .max()
        .unwrap();
    if let Some(rest) = LIVENESS_VERDICT.checked_sub(elapsed_since(latest_start)) {
        tokio::time::sleep(rest).await;
    }
    for before in started {
        let now = pods
            .get(before.metadata.name.as_deref().unwrap())
            .await
            .unwrap();
        assert!(is_ready(&now), "{:?}", now.status);
        assert_runs_on_real_node(&now);
        let id = |p: &Pod| {
            p.status.as_ref()?.container_statuses.as_ref()?[0]
                .container_id
                .clone()
        };
        assert_eq!(id(&now), id(&before), "the container was replaced");
    }
}

/// Time since `t`, zero if `t` is in the future (clock skew).
fn elapsed_since(t: k8s_openapi::jiff::Timestamp) -> Duration {
    let now = k8s_openapi::jiff::Timestamp::now();
    Duration::try_from(now.duration_since(t)).unwrap_or_default()
}
