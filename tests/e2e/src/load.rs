//! A load generator for the real-load scenarios: HTTP requests at a fixed
//! rate, bounded in rate, duration and requests in flight, each one's outcome
//! and latency recorded.
//!
//! Open loop: the next request leaves on schedule whether or not earlier ones
//! have answered, as independent users do, so a slow or stuck service shows
//! up as latency and failures rather than as a generator that quietly slows
//! down. The requests come from `users` clients in turn, each keeping its
//! connections alive and reusing them, as real clients do; that is what
//! makes a rollout hard (a kept-alive connection outlives its pod's place in
//! the Service) and a scale-up slow to help (a ClusterIP balances
//! connections, not requests).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, MissedTickBehavior};

/// Builds request number `n`.
pub type MakeRequest = dyn Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync;

/// How much load.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Requests per second.
    pub rate: u32,
    /// At most this many requests wait for an answer; a request due while
    /// all are taken is not sent and counted as shed.
    pub max_in_flight: usize,
    /// A request without an answer after this long is a timeout.
    pub timeout: Duration,
    /// Independent clients, each with its own kept-alive connections.
    pub users: usize,
}

impl Load {
    /// `rate` requests per second from 32 users, 256 in flight, 5 s timeout.
    /// (A throttled pod at 300/s had 64 in flight for a moment on 2 busy
    /// cores; 256 is still a bound, far from a backlog that only grows.)
    pub fn at(rate: u32) -> Self {
        Self {
            rate,
            max_in_flight: 256,
            timeout: Duration::from_secs(5),
            users: 32,
        }
    }

    /// Starts sending; the load runs until [`Running::stop`] or `limit`.
    pub fn start(self, limit: Duration, make: Arc<MakeRequest>) -> Running {
        let users: Vec<_> = (0..self.users.max(1))
            .map(|_| {
                reqwest::Client::builder()
                    .no_proxy()
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(self.timeout)
                    .build()
                    .expect("HTTP client")
            })
            .collect();
        let started = Instant::now();
        let (stop, mut stopped) = watch::channel(false);
        let record = Arc::new(Mutex::new(Record::default()));
        let task = tokio::spawn({
            let record = record.clone();
            async move {
                let slots = Arc::new(Semaphore::new(self.max_in_flight));
                let mut tick =
                    tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(self.rate)));
                // Catch up after a stall: the schedule, not the generator, sets the rate.
                tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
                let end = started + limit;
                let mut in_flight = tokio::task::JoinSet::new();
                for n in 0u64.. {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stopped.changed() => break,
                    }
                    if Instant::now() >= end {
                        break;
                    }
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        record.lock().unwrap().shed += 1;
                        continue;
                    };
                    let request = make(&users[n as usize % users.len()], n);
                    let record = record.clone();
                    in_flight.spawn(async move {
                        let sent = Instant::now();
                        let outcome = Outcome::of(request.send().await).await;
                        let sample = Sample {
                            at: sent - started,
                            latency: sent.elapsed(),
                            outcome,
                        };
                        record.lock().unwrap().samples.push(sample);
                        drop(slot);
                    });
                    // Reap finished tasks as we go, so the set stays small.
                    while in_flight.try_join_next().is_some() {}
                }
                while in_flight.join_next().await.is_some() {}
            }
        });
        Running {
            started,
            stop,
            task,
            record,
        }
    }
}

#[derive(Default)]
struct Record {
    samples: Vec<Sample>,
    shed: u64,
}

/// A load being sent.
pub struct Running {
    started: Instant,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    record: Arc<Mutex<Record>>,
}

impl Running {
    /// When the first request was due.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// What has been answered so far.
    pub fn so_far(&self) -> Report {
        let record = self.record.lock().unwrap();
        Report::of(&record, self.started.elapsed())
    }

    /// Stops sending, waits for the requests in flight, and reports.
    pub async fn stop(self) -> Report {
        let _ = self.stop.send(true);
        self.task.await.expect("load task");
        let record = self.record.lock().unwrap();
        Report::of(&record, self.started.elapsed())
    }

    /// Waits until the load ends by itself (its `limit`), and reports.
    pub async fn finish(self) -> Report {
        self.task.await.expect("load task");
        let record = self.record.lock().unwrap();
        Report::of(&record, self.started.elapsed())
    }
}

/// How one request ended.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// A 2xx answer.
    Ok(u16),
    /// Any other status.
    Status(u16),
    /// No connection (refused, unreachable, connect timeout).
    Connect,
    /// Connected, but no answer in time.
    Timeout,
    /// The connection was reset or closed before the answer was complete.
    Reset,
    /// Anything else on the way (the error's text).
    Transport(String),
}

impl Outcome {
    async fn of(result: reqwest::Result<reqwest::Response>) -> Self {
        let response = match result {
            Ok(response) => response,
            Err(e) => return Self::of_error(&e),
        };
        let status = response.status().as_u16();
        // The body too: a reset mid-body is a failed request.
        match response.bytes().await {
            Ok(_) if (200..300).contains(&status) => Self::Ok(status),
            Ok(_) => Self::Status(status),
            Err(e) => Self::of_error(&e),
        }
    }

    fn of_error(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            return Self::Timeout;
        }
        if e.is_connect() {
            return Self::Connect;
        }
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        let lower = text.to_ascii_lowercase();
        if ["reset", "closed", "incomplete", "broken pipe"]
            .iter()
            .any(|w| lower.contains(w))
        {
            Self::Reset
        } else {
            Self::Transport(text)
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }

    /// A short name for counting: `200`, `503`, `connect`, `timeout`, `reset`, `transport`.
    pub fn kind(&self) -> String {
        match self {
            Self::Ok(code) | Self::Status(code) => code.to_string(),
            Self::Connect => "connect".into(),
            Self::Timeout => "timeout".into(),
            Self::Reset => "reset".into(),
            Self::Transport(_) => "transport".into(),
        }
    }
}

/// One request: when it was sent (from the start of the load), how long it took, how it ended.
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: Duration,
    pub latency: Duration,
    pub outcome: Outcome,
}

/// What a load saw.
#[derive(Clone, Debug)]
pub struct Report {
    /// In the order they were answered.
    pub samples: Vec<Sample>,
    /// Requests not sent because `max_in_flight` were waiting.
    pub shed: u64,
    pub duration: Duration,
}

impl Report {
    fn of(record: &Record, duration: Duration) -> Self {
        Self {
            samples: record.samples.clone(),
            shed: record.shed,
            duration,
        }
    }

    /// Requests answered or failed.
    pub fn sent(&self) -> usize {
        self.samples.len()
    }

    /// Requests that did not end in a 2xx answer.
    pub fn failed(&self) -> usize {
        self.samples.iter().filter(|s| !s.outcome.is_ok()).count()
    }

    /// Count by outcome kind, successes included.
    pub fn by_kind(&self) -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for sample in &self.samples {
            *kinds.entry(sample.outcome.kind()).or_default() += 1;
        }
        kinds
    }

    /// The failed requests, first few, for a message.
    pub fn first_failures(&self, n: usize) -> Vec<&Sample> {
        let mut failed: Vec<_> = self.samples.iter().filter(|s| !s.outcome.is_ok()).collect();
        failed.sort_by_key(|s| s.at);
        failed.truncate(n);
        failed
    }

    /// The `q`-quantile (0..=1) of latency over every request.
    pub fn latency(&self, q: f64) -> Duration {
        quantile(self.samples.iter().map(|s| s.latency).collect(), q)
    }

    /// The requests sent in `[from, to)` (offsets from the start of the load).
    pub fn window(&self, from: Duration, to: Duration) -> Self {
        Self {
            samples: self
                .samples
                .iter()
                .filter(|s| s.at >= from && s.at < to)
                .cloned()
                .collect(),
            shed: 0,
            duration: to.saturating_sub(from),
        }
    }

    /// Per whole second of the load: requests sent, failed, and p99 latency.
    pub fn per_second(&self) -> Vec<Second> {
        let seconds = self.duration.as_secs() as usize + 1;
        let mut buckets: Vec<Vec<&Sample>> = vec![Vec::new(); seconds];
        for sample in &self.samples {
            if let Some(bucket) = buckets.get_mut(sample.at.as_secs() as usize) {
                bucket.push(sample);
            }
        }
        buckets
            .into_iter()
            .enumerate()
            .map(|(second, samples)| Second {
                second: second as u64,
                sent: samples.len(),
                failed: samples.iter().filter(|s| !s.outcome.is_ok()).count(),
                p99: quantile(samples.iter().map(|s| s.latency).collect(), 0.99),
            })
            .collect()
    }
}

impl fmt::Display for Report {
    /// `sent 3000 in 60.0 s (50.0/s), failed 0 {200: 3000}, shed 0, latency p50 1.2 ms p90 .. p99 .. max ..`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.duration.as_secs_f64();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "sent {} in {secs:.1} s ({:.1}/s), failed {} {:?}, shed {}, latency p50 {:.1} ms p90 {:.1} ms p99 {:.1} ms max {:.1} ms",
            self.sent(),
            self.sent() as f64 / secs.max(1e-9),
            self.failed(),
            self.by_kind(),
            self.shed,
            ms(self.latency(0.5)),
            ms(self.latency(0.9)),
            ms(self.latency(0.99)),
            ms(self.latency(1.0)),
        )
    }
}

/// One second of a load.
#[derive(Clone, Copy, Debug)]
pub struct Second {
    pub second: u64,
    pub sent: usize,
    pub failed: usize,
    pub p99: Duration,
}

/// Nearest-rank quantile; zero for no values.
fn quantile(mut values: Vec<Duration>, q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let rank = (q.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize;
    values[rank.saturating_sub(1).min(values.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let values: Vec<_> = (1..=100).map(ms).collect();
        assert_eq!(quantile(values.clone(), 0.5), ms(50));
        assert_eq!(quantile(values.clone(), 0.99), ms(99));
        assert_eq!(quantile(values.clone(), 1.0), ms(100));
        assert_eq!(quantile(values, 0.0), ms(1));
        assert_eq!(quantile(Vec::new(), 0.99), Duration::ZERO);
    }

    /// Against a real server on loopback: the rate holds, every answer is
    /// counted by kind, and a refused connection is a `connect` failure.
    #[tokio::test]
    async fn sends_at_the_rate_and_counts_each_outcome() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum_like_server(listener);
        let server = tokio::spawn(app);
        let url = format!("http://{addr}");
        let make: Arc<MakeRequest> = Arc::new(move |client, n| {
            // Every fifth request asks for a 503.
            let path = if n % 5 == 4 { "/fail" } else { "/ok" };
            client.get(format!("{url}{path}"))
        });
        let report = Load::at(100)
            .start(Duration::from_secs(1), make)
            .finish()
            .await;
        let kinds = report.by_kind();
        assert!(
            (90..=101).contains(&report.sent()),
            "about 100 in one second: {report}"
        );
        assert_eq!(
            kinds.get("503").copied().unwrap_or(0),
            report.sent() / 5,
            "{report}"
        );
        assert_eq!(report.failed(), report.sent() / 5, "{report}");
        assert_eq!(report.shed, 0);
        server.abort();

        // Nothing listens there any more.
        let make: Arc<MakeRequest> =
            Arc::new(move |client, _| client.get(format!("http://{addr}/ok")));
        let report = Load::at(20)
            .start(Duration::from_millis(200), make)
            .finish()
            .await;
        assert!(report.sent() > 0);
        assert_eq!(
            report.by_kind().get("connect").copied(),
            Some(report.sent()),
            "{report}"
        );
    }

    /// A minimal HTTP/1.1 server: `/ok` answers 200, anything else 503; keep-alive.
    async fn axum_like_server(listener: tokio::net::TcpListener) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let mut path = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(rest) = line.strip_prefix("GET ") {
                        path = rest.split(' ').next().unwrap_or_default().to_owned();
                    } else if line.is_empty() {
                        let status = if path == "/ok" {
                            "200 OK"
                        } else {
                            "503 Service Unavailable"
                        };
                        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nhi");
                        if write.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    }
}
