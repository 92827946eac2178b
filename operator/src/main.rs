//! `berth-operator`: `run` (the default) runs the controller; `crd` prints the CRD.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use berth_operator::client_gate::GateLayer;
use berth_operator::controller::{self, Settings};
use berth_operator::leader::{self, Leadership, LeaseSettings};
use berth_operator::metrics::Metrics;
use berth_operator::telemetry::{self, LogFormat};
use clap::{Parser, Subcommand};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    version,
    about = "Berth: one MicroService in, everything a service needs out"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (the default).
    Run,
    /// Print the MicroService CustomResourceDefinition as YAML.
    Crd,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Kubeconfig file; without it, $KUBECONFIG, ~/.kube/config or the in-cluster service account.
    #[arg(long, env = "BERTH_KUBECONFIG", global = true)]
    kubeconfig: Option<PathBuf>,
    /// Watch and manage only this namespace (all namespaces when unset).
    #[arg(long, env = "BERTH_NAMESPACE", global = true)]
    namespace: Option<String>,
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(
        long,
        env = "BERTH_METRICS_ADDR",
        default_value = "0.0.0.0:8080",
        global = true
    )]
    metrics_addr: SocketAddr,
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(
        long,
        env = "BERTH_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    /// MicroServices reconciled at once.
    #[arg(long, env = "BERTH_CONCURRENCY", default_value_t = 8, global = true)]
    concurrency: u16,
    /// Elect a leader with a Lease: only the holder writes (run with this on when there is more than one replica).
    #[arg(long, env = "BERTH_LEADER_ELECT", global = true)]
    leader_elect: bool,
    /// Name of the Lease used for leader election.
    #[arg(
        long,
        env = "BERTH_LEASE_NAME",
        default_value = "berth-operator",
        global = true
    )]
    lease_name: String,
    /// Namespace of the Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "BERTH_LEASE_NAMESPACE", global = true)]
    lease_namespace: Option<String>,
    /// Seconds a lease stays valid after its last renewal: how long a failed
    /// leader can block the others.
    #[arg(
        long,
        env = "BERTH_LEASE_DURATION",
        default_value_t = 15,
        global = true
    )]
    lease_duration: u64,
    /// Seconds before its local deadline (last renewal + duration - 2 s) at which the leader renews.
    #[arg(long, env = "BERTH_LEASE_GRACE", default_value_t = 5, global = true)]
    lease_grace: u64,
    /// Keep every managedFields entry in the cache (for the memory benchmark's "before").
    #[arg(long, hide = true, global = true)]
    untrimmed_cache: bool,
    /// Seconds between looks at every MicroService with no event (the
    /// scale benchmark shortens it to measure a full resync).
    #[arg(long, hide = true, default_value_t = 600, global = true)]
    resync_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Crd => {
            print!("{}", berth_operator::crd_yaml());
            Ok(())
        }
        Command::Run => run(cli.run).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    // Before anything touches the cluster: a taken port fails at once.
    let listener = listen(args.metrics_addr).await;
    let metrics = Arc::new(Metrics::default());
    let config = config(args.kubeconfig.as_deref()).await?;
    let leadership = if args.leader_elect {
        let settings = LeaseSettings {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone().unwrap_or_else(|| {
                std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".into())
            }),
            identity: leader::default_identity(),
            duration: Duration::from_secs(args.lease_duration),
            grace: Duration::from_secs(args.lease_grace),
        };
        anyhow::ensure!(
            settings.grace < settings.duration,
            "--lease-grace must be shorter than --lease-duration"
        );
        tracing::info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity, "leader election on");
        let lease_client =
            kube::Client::try_from(config.clone()).context("building the lease client")?;
        Leadership::elect(lease_client, settings, metrics.clone()).await?
    } else {
        metrics.leader.set(1);
        Leadership::always()
    };
    let client = kube::client::ClientBuilder::try_from(config)
        .context("building the Kubernetes client")?
        .with_layer(&GateLayer {
            leadership: leadership.clone(),
            metrics: metrics.clone(),
        })
        .build();
    let (stop_tx, stop_rx) = watch::channel(false);
    let settings = Settings {
        namespace: args.namespace.clone(),
        concurrency: args.concurrency,
        trim_cache: !args.untrimmed_cache,
        resync: Duration::from_secs(args.resync_seconds),
        ..Settings::default()
    };
    let shutdown = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let elected = leadership.clone();
    let (probe, controller) = controller::start(client, settings, metrics, leadership, shutdown);

    let mut http_stop = stop_rx.clone();
    let server = axum::serve(listener, berth_operator::http::router(probe)).with_graceful_shutdown(
        async move {
            let _ = http_stop.wait_for(|stop| *stop).await;
        },
    );
    tracing::info!(addr = %args.metrics_addr, namespace = ?args.namespace, "berth-operator starting");

    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing in-flight reconciles");
        let _ = stop_tx.send(true);
    });
    let (server_result, ()) = tokio::join!(server, controller);
    // After the last write: hand the Lease over now rather than let the
    // next replica wait out the lease (a rolling update).
    elected.release(Duration::from_secs(5)).await;
    server_result.context("HTTP server")?;
    tracing::info!("berth-operator stopped");
    Ok(())
}

/// Listens on the metrics address, or exits with status 2 saying which
/// address, why, and how to choose another. Not an `anyhow` error: that one
/// prints a stack backtrace whenever `RUST_BACKTRACE` is set, for what is the
/// user's setting, not a bug.
async fn listen(addr: SocketAddr) -> tokio::net::TcpListener {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("Error: {}", bind_error_message(addr, &error));
            std::process::exit(2);
        }
    }
}

fn bind_error_message(addr: SocketAddr, error: &std::io::Error) -> String {
    let reason = if error.kind() == std::io::ErrorKind::AddrInUse {
        "the address is already in use by another process".to_owned()
    } else {
        error.to_string()
    };
    format!(
        "cannot listen on {addr} (the operator's /healthz, /readyz and /metrics): {reason}; \
         choose another address with --metrics-addr or BERTH_METRICS_ADDR \
         (e.g. --metrics-addr 127.0.0.1:18080)"
    )
}

async fn config(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Config> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig or in-cluster config found")?,
    };
    let mut config = config;
    config.read_timeout = Some(Duration::from_secs(295));
    Ok(config)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
