//! The operator started on a metrics address something else holds (issue 12,
//! bug 3: `make run` where 127.0.0.1:8080 is taken): it must exit at once,
//! say which address, that it is in use and how to choose another, and print
//! no backtrace for what is a setting, not a bug. Runs the real binary; no
//! cluster needed (the kubeconfig points at nothing).

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A kubeconfig that parses and points at nothing: the operator gets as far
/// as it would on a real cluster before it listens.
fn dummy_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1
kind: Config
clusters: [{ name: none, cluster: { server: 'https://127.0.0.1:9', insecure-skip-tls-verify: true } }]
users: [{ name: none, user: { token: none } }]
contexts: [{ name: none, context: { cluster: none, user: none } }]
current-context: none
",
    )
    .expect("write the kubeconfig");
    path
}

/// Runs the operator with `configure` choosing the address; returns its exit
/// code and stderr. Fails if it does not exit within 30 s (it would be
/// serving on some address instead).
fn run_operator(test: &str, configure: impl FnOnce(&mut Command)) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!("berth-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth-operator"));
    command
        .arg("run")
        .env_remove("BERTH_METRICS_ADDR")
        .env("BERTH_KUBECONFIG", dummy_kubeconfig(&dir))
        .env("BERTH_NAMESPACE", "berth-metrics-addr-test")
        // As on this machine and in CI: a backtrace is captured when asked for.
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    configure(&mut command);
    let mut child = command.spawn().expect("start berth-operator");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "berth-operator still running 30 s after start on a taken address; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let _ = std::fs::remove_dir_all(&dir);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_clear_refusal(addr: SocketAddr, code: Option<i32>, stderr: &str) {
    assert_eq!(code, Some(2), "exit status; stderr:\n{stderr}");
    for needle in [
        &addr.to_string(),
        "already in use",
        "--metrics-addr",
        "BERTH_METRICS_ADDR",
    ] {
        assert!(
            stderr.contains(needle),
            "stderr does not say {needle:?}:\n{stderr}"
        );
    }
    assert!(
        !stderr.to_lowercase().contains("backtrace"),
        "a taken port is a user error, not a bug: no backtrace:\n{stderr}"
    );
    assert!(
        stderr.lines().all(|line| line.trim() != "Caused by:"),
        "no bare anyhow cause chain:\n{stderr}"
    );
}

#[test]
fn taken_metrics_addr_flag_is_refused_clearly() {
    let held = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let addr = held.local_addr().unwrap();
    let (code, stderr) = run_operator("metrics-addr-flag", |c| {
        c.arg("--metrics-addr").arg(addr.to_string());
    });
    assert_clear_refusal(addr, code, &stderr);
    drop(held);
}

#[test]
fn taken_metrics_addr_env_is_refused_clearly() {
    let held = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let addr = held.local_addr().unwrap();
    let (code, stderr) = run_operator("metrics-addr-env", |c| {
        c.env("BERTH_METRICS_ADDR", addr.to_string());
    });
    assert_clear_refusal(addr, code, &stderr);
    drop(held);
}

/// `make run`'s fallback starts this binary as a host process through
/// tests/cluster/lib/process.sh, and must trust a port only when the socket is
/// its own process's: something else answering /readyz there (127.0.0.1:8080
/// is a popular port) is not the operator. Runs the library in bash, with the
/// real binary on a free port, beside a port this test holds.
#[test]
fn run_script_tells_its_own_listener_from_another() {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dir = std::env::temp_dir().join(format!("berth-run-port-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dummy_kubeconfig(&dir);
    let held = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let taken = held.local_addr().unwrap().port();
    let ours = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let script = r#"
set -euo pipefail
say() { echo "say: $*"; }
pids=$DIR logs=$DIR process_mark=$DIR/
. "$REPO/tests/cluster/lib/process.sh"
trap 'stop_process operator 5' EXIT
if port_in_use 127.0.0.1 "$OURS"; then echo "FAIL: $OURS taken before the start"; exit 1; fi
spawn operator "$BIN" run --kubeconfig "$KUBECONFIG_FILE" --metrics-addr "127.0.0.1:$OURS"
wait_started operator 30 "the operator's socket on $OURS" owns_port operator "$OURS" 127.0.0.1
echo "owns $OURS"
if owns_port operator "$TAKEN" 127.0.0.1; then echo "FAIL: the held port counted as the operator's"; exit 1; fi
echo "taken: $(port_in_use 127.0.0.1 "$TAKEN")"
stop_process operator 5
if running operator; then echo "FAIL: still running after stop_process"; exit 1; fi
echo stopped
"#;
    let output = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("DIR", &dir)
        .env("KUBECONFIG_FILE", &kubeconfig)
        .env("REPO", repo)
        .env("BIN", env!("CARGO_BIN_EXE_berth-operator"))
        .env("OURS", ours.to_string())
        .env("TAKEN", taken.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let log = std::fs::read_to_string(dir.join("operator.log")).unwrap_or_default();
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}\noperator.log:\n{log}");
    assert!(output.status.success(), "{context}");
    assert!(stdout.contains(&format!("owns {ours}")), "{context}");
    assert!(
        stdout.contains(&format!("taken: 127.0.0.1:{taken} is already in use by "))
            && stdout.contains(&format!("(pid {})", std::process::id())),
        "the message names the port and this test as its owner; {context}"
    );
    assert!(stdout.contains("stopped"), "{context}");
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}
