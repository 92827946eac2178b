//! Test support shared by the services' suites (feature `testing`).
//!
//! - [`Backend`] and [`both_stores!`](crate::both_stores): every store test
//!   runs twice, on the in-memory store and on PostgreSQL, each PostgreSQL
//!   run in a fresh schema of `BERTH_TEST_DATABASE_URL`. Without that
//!   variable the PostgreSQL runs skip with a message, except under
//!   `CI=true`, where they fail: CI never silently skips them.
//! - [`InProcess`]: calls a router without a socket.
//! - [`Process`]: runs a service binary on a loopback port and controls it
//!   with signals (stop, pause, resume, terminate).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};

/// Which store a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Memory,
    Postgres { url: String, schema: String },
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A schema name no other test run uses.
pub fn unique_schema(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let prefix: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(24)
        .collect();
    format!(
        "t_{}_{}_{}_{}",
        prefix.to_ascii_lowercase(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// `BERTH_TEST_DATABASE_URL`, or `None` after saying why the PostgreSQL
/// run is skipped. Panics under `CI=true` when it is missing.
pub fn postgres_url() -> Option<String> {
    match std::env::var("BERTH_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "BERTH_TEST_DATABASE_URL is not set, and CI=true: the PostgreSQL tests must run in CI (make test-services starts PostgreSQL)"
            )
        }
        _ => {
            eprintln!(
                "SKIPPED PostgreSQL variant: BERTH_TEST_DATABASE_URL is not set; run `eval \"$(scripts/postgres.sh --export)\"` or `make test-services`"
            );
            None
        }
    }
}

impl Backend {
    pub fn postgres(test: &str) -> Option<Self> {
        postgres_url().map(|url| Backend::Postgres {
            url,
            schema: unique_schema(test),
        })
    }

    /// The same backend with another schema (a second service).
    pub fn sibling(&self, test: &str) -> Self {
        match self {
            Backend::Memory => Backend::Memory,
            Backend::Postgres { url, .. } => Backend::Postgres {
                url: url.clone(),
                schema: unique_schema(test),
            },
        }
    }

    /// Environment variables that select this backend.
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Backend::Memory => Vec::new(),
            Backend::Postgres { url, schema } => vec![
                ("DATABASE_URL".to_owned(), url.clone()),
                ("DATABASE_SCHEMA".to_owned(), schema.clone()),
                ("DATABASE_POOL_SIZE".to_owned(), "4".to_owned()),
            ],
        }
    }
}

/// Generates a memory and a postgres test for each named async fn taking a
/// [`Backend`].
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Memory).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = $crate::testing::Backend::postgres(stringify!($name)) {
                        super::$name(backend).await
                    }
                }
            )*
        }
    };
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem's type slug, for problem+json replies.
    pub fn problem_slug(&self) -> String {
        self.json()["type"]
            .as_str()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Calls a router in process.
#[derive(Clone)]
pub struct InProcess {
    pub router: Router,
}

impl InProcess {
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        use tower::ServiceExt;
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("body")
            .to_vec();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// A JSON request (`content-type: application/json`).
    pub async fn json(&self, method: Method, uri: &str, body: &serde_json::Value) -> Reply {
        self.send(
            method,
            uri,
            &[("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Method::GET, uri, &[], None).await
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The path of a workspace binary built next to the running test (a test of
/// one package needing another package's binary). It is not built from here:
/// a nested cargo would wait for the lock the running `cargo test` holds.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p {name}` first (`make test-services` does)",
        path.display()
    );
    path
}

/// A service binary running on a loopback port.
pub struct Process {
    child: Option<Child>,
    binary: PathBuf,
    env: Vec<(String, String)>,
    pub port: u16,
    pub log: PathBuf,
}

impl Process {
    /// Starts `binary` on `port` (0: a free one) and waits until `/healthz`
    /// answers.
    pub fn start(binary: &Path, port: u16, env: &[(String, String)]) -> Self {
        let port = if port == 0 { free_port() } else { port };
        let dir = std::env::temp_dir().join("berth-service-tests");
        std::fs::create_dir_all(&dir).expect("log dir");
        let name = binary
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("service");
        let log = dir.join(format!(
            "{name}-{port}-{}.log",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // A file of that name may be left from an earlier run (same port and
        // counter); its lines would be read as this process's. Restarts of
        // this process append (`spawn`), a new process starts empty.
        let _ = std::fs::remove_file(&log);
        let mut process = Self {
            child: None,
            binary: binary.to_owned(),
            env: env.to_vec(),
            port,
            log,
        };
        process.spawn();
        process
    }

    fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let mut command = Command::new(&self.binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", self.port.to_string())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            // Short, so the tests that stop a service do not wait out the
            // production default; long enough to go through the phase.
            .env("SHUTDOWN_DELAY_MS", "200")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        self.child = Some(command.spawn().expect("spawn service"));
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if self.get_status("/healthz") == Some(200) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "{} exited with {status} during start; log:\n{}",
                    self.binary.display(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "{} did not become healthy; log:\n{}",
            self.binary.display(),
            self.logs()
        );
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The status code of a plain GET, or `None` when nothing answers.
    pub fn get_status(&self, path: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
        )
        .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// SIGSTOP: the process keeps its socket but answers nothing (slow).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGKILL: down, with no chance to clean up.
    pub fn kill(&mut self) {
        self.signal("-KILL");
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Starts the same binary again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGTERM, then waits up to `within` for the exit.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        self.signal("-TERM");
        let mut child = self.child.take()?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}
