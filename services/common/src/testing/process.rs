//! [`Process`]: a service binary on a loopback port, controlled with
//! signals, and where to find it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Api, COUNTER};

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

    /// Its HTTP API, over TCP.
    pub fn api(&self) -> Api {
        Api::at(self.url())
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
