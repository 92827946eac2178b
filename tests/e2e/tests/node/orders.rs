//! Orders on the real node, placed from this process through order's
//! ClusterIP: while item is scaled to zero, order refuses at once with 503
//! problems (its circuit breaker open) and recovers by itself, without a
//! restart, once item is back; and with two replicas of each on PostgreSQL, a
//! burst of concurrent orders sells exactly the stock and refuses the rest.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use berth_e2e::{
    Env, MICROSERVICE_LABEL, client, condition, eventually, not_yet, wait_for, within,
};
use berth_operator::MicroService;
use berth_operator::microservice::{DEPENDENCIES_READY, DependencyState};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};
use tokio::task::{JoinHandle, JoinSet};

use crate::support::{
    PostgresSchema, assert_runs_on_real_node, create_item, http, is_ready, json_of, metric_sum,
    pods_database_url, require_real_node, send, service_spec, service_url, wait_pod_ready,
};

/// `ITEM_TIMEOUT_MS` in order's pod: its default, set explicitly because the
/// bound on the open breaker's latency is derived from it.
const ITEM_TIMEOUT: Duration = Duration::from_millis(1000);
/// `ITEM_BREAKER_FAILURES` (default 5): 3 is one order's attempts (the first
/// and `ITEM_RETRIES`=2 retries), so the first order that finds item gone
/// opens the breaker and the ones after it meet the open breaker.
const BREAKER_FAILURES: u32 = 3;
/// `ITEM_BREAKER_OPEN_MS` (default 5 s): how long the breaker stays open
/// before one trial call. 2 s keeps the recovery the test waits for short
/// and still leaves ~20 orders between two trials for the open breaker alone.
const BREAKER_OPEN: Duration = Duration::from_millis(2000);
/// One order every this often while item goes down and comes back.
const PACE: Duration = Duration::from_millis(100);
/// How long one phase of the outage scenario may take to show what it waits for.
const PHASE_LIMIT: Duration = Duration::from_secs(30);

/// Where the outage scenario was when an order was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// item runs.
    Up,
    /// item's MicroService says 0 replicas; its pod may still be there.
    GoingDown,
    /// item has no pod.
    Down,
    /// item's MicroService says 1 replica again; the test has no item in the
    /// new pod's (in-memory) store yet.
    ComingBack,
    /// item is Ready and the orders name an item it has.
    Back,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::Up,
        Phase::GoingDown,
        Phase::Down,
        Phase::ComingBack,
        Phase::Back,
    ];

    fn from_u8(n: u8) -> Self {
        Self::ALL[usize::from(n)]
    }
}

/// What order answered one `POST /v1/orders`.
#[derive(Debug, Clone)]
struct Answer {
    phase: Phase,
    /// When it was sent, since the traffic started.
    sent: Duration,
    /// Until the whole body was read.
    latency: Duration,
    /// `None`: no HTTP answer (`error` says why).
    status: Option<u16>,
    content_type: String,
    retry_after: Option<String>,
    body: Value,
    error: Option<String>,
}

impl Answer {
    fn problem_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }

    /// A 503 the open breaker gave: order did not wait for item at all (its
    /// detail says so; `item_calls_total{outcome="breaker_open"}` counts them).
    fn by_open_breaker(&self) -> bool {
        self.status == Some(503)
            && self.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("circuit breaker open"))
    }

    /// A 503 `item-service-unavailable` problem, with a `Retry-After`.
    fn check_unavailable(&self) -> anyhow::Result<()> {
        ensure!(self.status == Some(503), "not a 503: {self:?}");
        ensure!(
            self.content_type == "application/problem+json",
            "503 without a problem: {self:?}"
        );
        ensure!(
            self.problem_type() == "https://berth.dev/problems/item-service-unavailable"
                && self.body["status"] == 503,
            "503 of the wrong kind: {self:?}"
        );
        let seconds = self
            .retry_after
            .as_deref()
            .and_then(|s| s.parse::<u64>().ok());
        ensure!(
            seconds.is_some_and(|s| s >= 1),
            "503 without a Retry-After in seconds: {self:?}"
        );
        Ok(())
    }

    fn check_placed(&self) -> anyhow::Result<()> {
        ensure!(
            self.status == Some(201) && self.body["status"] == "placed",
            "not a placed order: {self:?}"
        );
        Ok(())
    }
}

/// Orders placed one at a time, one every [`PACE`], through order's Service,
/// each under its own `Idempotency-Key`, for the item the test names; every
/// answer recorded with the phase the test was in when it was sent.
struct Traffic {
    phase: Arc<AtomicU8>,
    item_id: Arc<Mutex<String>>,
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<AtomicBool>,
    /// What [`Answer::sent`] counts from.
    started: Instant,
    task: JoinHandle<()>,
}

impl Traffic {
    fn start(order_url: &str, key_prefix: &str, item_id: &str) -> Self {
        let phase = Arc::new(AtomicU8::new(Phase::Up as u8));
        let item_id = Arc::new(Mutex::new(item_id.to_string()));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (url, key_prefix) = (format!("{order_url}/v1/orders"), key_prefix.to_string());
        let started = Instant::now();
        let task = tokio::spawn({
            let (phase, item_id, answers, stop) = (
                phase.clone(),
                item_id.clone(),
                answers.clone(),
                stop.clone(),
            );
            async move {
                let http = http();
                let mut tick = tokio::time::interval(PACE);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for n in 0.. {
                    tick.tick().await;
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let phase = Phase::from_u8(phase.load(Ordering::SeqCst));
                    let item_id = item_id.lock().unwrap().clone();
                    let lines = json!({ "lines": [{ "item_id": item_id, "quantity": 1 }] });
                    let sent = started.elapsed();
                    let t0 = Instant::now();
                    let answer = match http
                        .post(&url)
                        .header("Idempotency-Key", format!("{key_prefix}-{n}"))
                        .json(&lines)
                        .send()
                        .await
                    {
                        Ok(response) => {
                            let header = |name: &str| {
                                response
                                    .headers()
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .map(String::from)
                            };
                            let content_type = header("content-type").unwrap_or_default();
                            let retry_after = header("retry-after");
                            let status = response.status().as_u16();
                            let body = response.text().await.map(|text| {
                                serde_json::from_str(&text).unwrap_or(Value::String(text))
                            });
                            let (body, error) = match body {
                                Ok(body) => (body, None),
                                Err(e) => (Value::Null, Some(format!("reading the body: {e}"))),
                            };
                            Answer {
                                phase,
                                sent,
                                latency: t0.elapsed(),
                                status: error.is_none().then_some(status),
                                content_type,
                                retry_after,
                                body,
                                error,
                            }
                        }
                        Err(e) => Answer {
                            phase,
                            sent,
                            latency: t0.elapsed(),
                            status: None,
                            content_type: String::new(),
                            retry_after: None,
                            body: Value::Null,
                            error: Some(format!("{e:#}")),
                        },
                    };
                    answers.lock().unwrap().push(answer);
                }
            }
        });
        Self {
            phase,
            item_id,
            answers,
            stop,
            started,
            task,
        }
    }

    fn enter(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    fn set_item(&self, id: &str) {
        *self.item_id.lock().unwrap() = id.to_string();
    }

    fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    /// The answers to orders sent in `phase`.
    fn in_phase(&self, phase: Phase) -> Vec<Answer> {
        self.answers()
            .into_iter()
            .filter(|a| a.phase == phase)
            .collect()
    }

    /// Waits until `enough` holds for the answers to orders sent in `phase`.
    async fn wait(&self, phase: Phase, what: &str, enough: impl Fn(&[Answer]) -> bool) {
        within(PHASE_LIMIT, what, || async {
            let answers = self.in_phase(phase);
            if enough(&answers) {
                Ok(Some(()))
            } else {
                Err(not_yet(format!(
                    "{} answers in {phase:?}, the last {:?}",
                    answers.len(),
                    answers.last()
                )))
            }
        })
        .await
        .unwrap();
    }

    async fn stop(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the traffic task panicked");
        self.answers.lock().unwrap().clone()
    }
}

/// The latencies' 50th and 90th percentile and maximum.
fn percentiles(answers: &[&Answer]) -> (Duration, Duration, Duration) {
    let mut latencies: Vec<Duration> = answers.iter().map(|a| a.latency).collect();
    latencies.sort();
    let at = |q: usize| latencies[(latencies.len() * q / 100).min(latencies.len() - 1)];
    (at(50), at(90), *latencies.last().unwrap())
}

/// order's `DependenciesReady` status and the state it reports for item.
fn item_dependency(ms: &MicroService) -> (Option<String>, Option<DependencyState>) {
    let condition = condition(ms, DEPENDENCIES_READY).map(|c| c.status);
    let state = ms
        .status
        .iter()
        .flat_map(|s| s.dependencies.iter())
        .find(|d| d.name == "item")
        .map(|d| d.state);
    (condition, state)
}

/// The pods of MicroService `name` that are not being deleted.
async fn live_pods(pods: &Api<Pod>, name: &str) -> anyhow::Result<Vec<Pod>> {
    let selector = ListParams::default().labels(&format!("{MICROSERVICE_LABEL}={name}"));
    Ok(pods
        .list(&selector)
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| c.restart_count)
        .sum()
}

#[tokio::test]
async fn order_refuses_fast_while_item_is_down_and_recovers_without_a_restart() {
    let started = Instant::now();
    require_real_node(&client().await, &["item-service", "order-service"]).await;
    let env = Env::new("node-down").await;
    let (ns, log) = (env.ns.name.clone(), env.operator.log.display().to_string());
    let item_spec = |replicas: i32| service_spec("item-service", json!({ "replicas": replicas }));
    env.apply_microservice("item", &item_spec(1).to_string())
        .await
        .unwrap();
    let order_env = json!([
        { "name": "LOG_FORMAT", "value": "text" },
        { "name": "ITEM_TIMEOUT_MS", "value": ITEM_TIMEOUT.as_millis().to_string() },
        { "name": "ITEM_BREAKER_FAILURES", "value": BREAKER_FAILURES.to_string() },
        { "name": "ITEM_BREAKER_OPEN_MS", "value": BREAKER_OPEN.as_millis().to_string() },
    ]);
    let order_spec = service_spec(
        "order-service",
        json!({ "dependencies": ["item"], "env": order_env }),
    );
    env.apply_microservice("order", &order_spec.to_string())
        .await
        .unwrap();
    let pods: Api<Pod> = env.ns.api();
    for name in ["item", "order"] {
        let pod = wait_pod_ready(&pods, name, None)
            .await
            .with_context(|| format!("operator log: {log}"))
            .unwrap();
        assert_runs_on_real_node(&pod);
        env.wait_ready(name).await.unwrap();
    }
    let dependency_ready = |ms: Option<&MicroService>| {
        ms.map(item_dependency) == Some((Some("True".to_string()), Some(DependencyState::Ready)))
    };
    wait_for(&env.microservices(), "order", dependency_ready)
        .await
        .unwrap();
    let order_pod = wait_pod_ready(&pods, "order", None).await.unwrap();
    let order_pod_name = order_pod.metadata.name.clone().unwrap();

    let http = http();
    let item_url = service_url(&env.client, &ns, "item").await.unwrap();
    let order_url = service_url(&env.client, &ns, "order").await.unwrap();
    let new_item =
        json!({ "name": "outage widget", "price_minor": 300, "currency": "EUR", "stock": 100000 });
    let item = create_item(&http, &item_url, &new_item).await;
    let order_metrics = || async {
        send("order's /metrics", || {
            http.get(format!("{order_url}/metrics"))
        })
        .await?
        .text()
        .await
        .context("order's /metrics")
    };

    // item up: every order is placed.
    let response = send("order's Service answers", || {
        http.get(format!("{order_url}/v1/orders?limit=1"))
    })
    .await
    .unwrap();
    assert_eq!(response.status(), 200, "{response:?}");
    let traffic = Traffic::start(&order_url, &ns, item["id"].as_str().unwrap());
    traffic
        .wait(Phase::Up, "orders are placed while item runs", |a| {
            a.len() >= 5
        })
        .await;

    // item to 0 replicas, through its MicroService; wait until its pod is gone.
    traffic.enter(Phase::GoingDown);
    let scaled_down = Instant::now();
    let scaled_down_at = traffic.started.elapsed();
    env.apply_microservice("item", &item_spec(0).to_string())
        .await
        .unwrap();
    eventually("item has no pod", || async {
        let selector = ListParams::default().labels(&format!("{MICROSERVICE_LABEL}=item"));
        Ok(pods.list(&selector).await?.items.is_empty().then_some(()))
    })
    .await
    .unwrap();
    traffic.enter(Phase::Down);
    let pod_gone_after = scaled_down.elapsed();

    // order answers from its open breaker; meanwhile its status says item is
    // not Ready. Both are awaited together; the status is asserted at the
    // end, so that a failure there still lets the recovery be exercised.
    // 30: three open periods' worth of orders, so the trial calls the
    // breaker lets through between them stay above the 90th percentile.
    let breaker_answers = 30;
    let (dependencies_while_down, ()) = tokio::join!(
        within(
            PHASE_LIMIT,
            "order reports DependenciesReady=False, item not Ready",
            || async {
                let ms = env.microservices().get("order").await?;
                let (condition, state) = item_dependency(&ms);
                if condition.as_deref() == Some("False")
                    && state.is_some_and(|s| s != DependencyState::Ready)
                {
                    Ok(Some((condition, state)))
                } else {
                    Err(not_yet(format!(
                        "DependenciesReady={condition:?}, item {state:?}: {:?}",
                        ms.status
                    )))
                }
            }
        ),
        traffic.wait(Phase::Down, "order answers from its open breaker", |a| {
            a.iter().filter(|a| a.by_open_breaker()).count() >= breaker_answers
        }),
    );
    let breaker_metrics = within(PHASE_LIMIT, "order's breaker reports open", || async {
        let text = order_metrics().await?;
        if metric_sum(&text, "item_breaker_state", &[]) == 1.0 {
            Ok(Some(text))
        } else {
            Err(not_yet("item_breaker_state is not 1"))
        }
    })
    .await
    .unwrap();

    // item back to 1 replica: once it is Ready, a new item (the old one went
    // with the old pod's memory), and orders for it are placed again.
    traffic.enter(Phase::ComingBack);
    env.apply_microservice("item", &item_spec(1).to_string())
        .await
        .unwrap();
    wait_pod_ready(&pods, "item", None).await.unwrap();
    env.wait_ready("item").await.unwrap();
    let item = create_item(&http, &item_url, &new_item).await;
    traffic.set_item(item["id"].as_str().unwrap());
    traffic.enter(Phase::Back);
    let back = traffic.started.elapsed();
    traffic
        .wait(Phase::Back, "orders are placed again", |a| {
            a.iter()
                .position(|a| a.status == Some(201))
                .is_some_and(|first| a.len() >= first + 10)
        })
        .await;
    let answers = traffic.stop().await;
    let final_metrics = order_metrics().await.unwrap();
    wait_for(&env.microservices(), "order", dependency_ready)
        .await
        .unwrap();

    // The figures.
    let mut counts: BTreeMap<(Phase, String), usize> = BTreeMap::new();
    for a in &answers {
        let kind = a.status.map_or("error".to_string(), |s| s.to_string());
        *counts.entry((a.phase, kind)).or_default() += 1;
    }
    let total = |kind: &str| {
        counts
            .iter()
            .filter(|((_, k), _)| match kind {
                "other" => k != "201" && k != "503",
                _ => k == kind,
            })
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    let open: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.phase == Phase::Down && a.by_open_breaker())
        .collect();
    let tried: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == Some(503) && !a.by_open_breaker())
        .collect();
    let (open_p50, open_p90, open_max) = percentiles(&open);
    let first_201_back = answers
        .iter()
        .find(|a| a.phase == Phase::Back && a.status == Some(201))
        .unwrap();
    let recovery = first_201_back.sent.saturating_sub(back);
    let going_down = traffic_phase(&answers, Phase::GoingDown);
    let last_placed = going_down
        .iter()
        .rev()
        .find(|a| a.status == Some(201))
        .map(|a| a.sent.saturating_sub(scaled_down_at));
    let first_refused = going_down
        .iter()
        .chain(traffic_phase(&answers, Phase::Down).iter())
        .find(|a| a.status == Some(503))
        .map(|a| a.sent.saturating_sub(scaled_down_at));
    println!(
        "item down: {} orders, 201: {}, 503: {}, other: {} (by phase and status: {counts:?})",
        answers.len(),
        total("201"),
        total("503"),
        total("other"),
    );
    println!(
        "item down: open breaker answered {} orders in p50 {open_p50:?} p90 {open_p90:?} max {open_max:?} \
         (item call timeout {ITEM_TIMEOUT:?}); 503s that tried item: {} ({:?}); \
         after the scale-down: last order placed {last_placed:?}, first refused {first_refused:?}, \
         item's pod gone {pod_gone_after:?}; first 201 {recovery:?} after item was back; \
         test took {:?}",
        open.len(),
        tried.len(),
        (!tried.is_empty()).then(|| percentiles(&tried)),
        started.elapsed(),
    );

    // No order went unanswered; while item ran, every order was placed.
    let errors: Vec<_> = answers
        .iter()
        .filter_map(|a| Some((a.phase, a.sent, a.error.as_ref()?)))
        .collect();
    assert!(errors.is_empty(), "orders without an answer: {errors:?}");
    for a in traffic_phase(&answers, Phase::Up) {
        a.check_placed().unwrap();
    }
    // Going down: placed (the pod serves while it drains) or refused.
    for a in traffic_phase(&answers, Phase::GoingDown) {
        a.check_placed().or_else(|_| a.check_unavailable()).unwrap();
    }
    // item gone: every order is refused with a 503 problem and a Retry-After,
    // and once the breaker is open, at once: the open breaker's Retry-After is
    // its open time, and it answers well within one item call's timeout.
    let down = traffic_phase(&answers, Phase::Down);
    for a in &down {
        a.check_unavailable().unwrap();
    }
    assert!(open.len() >= breaker_answers, "{down:?}");
    for a in &open {
        assert_eq!(
            a.retry_after.as_deref(),
            Some(BREAKER_OPEN.as_secs().max(1).to_string().as_str()),
            "{a:?}"
        );
    }
    assert!(
        open_p50 < ITEM_TIMEOUT / 10 && open_p90 < ITEM_TIMEOUT / 4,
        "the open breaker answers in p50 {open_p50:?} p90 {open_p90:?}, not well within {ITEM_TIMEOUT:?}"
    );
    // The breaker itself: open while item was down, having counted the
    // refused connections, and the source of every "breaker open" answer.
    assert!(
        metric_sum(
            &breaker_metrics,
            "item_calls_total",
            &[("outcome", "connect_error")]
        ) >= f64::from(BREAKER_FAILURES),
        "{breaker_metrics}"
    );
    let rejected = metric_sum(
        &final_metrics,
        "item_calls_total",
        &[("outcome", "breaker_open")],
    );
    let open_answers = answers.iter().filter(|a| a.by_open_breaker()).count();
    assert!(
        rejected >= open_answers as f64,
        "{open_answers} answers say the breaker was open, order counted {rejected} rejected calls"
    );
    // Coming back: refused, or (item up without the old item) 422.
    for a in traffic_phase(&answers, Phase::ComingBack) {
        a.check_unavailable()
            .or_else(|_| {
                ensure!(a.status == Some(422), "{a:?}");
                Ok(())
            })
            .unwrap();
    }
    // Back: refused at most until the breaker's next trial, then every order placed.
    let back_answers = traffic_phase(&answers, Phase::Back);
    let first = back_answers
        .iter()
        .position(|a| a.status == Some(201))
        .unwrap();
    for a in &back_answers[..first] {
        a.check_unavailable().unwrap();
    }
    for a in &back_answers[first..] {
        a.check_placed().unwrap();
    }
    assert!(
        recovery <= BREAKER_OPEN + Duration::from_secs(3),
        "orders were placed again only {recovery:?} after item was back"
    );
    assert_eq!(metric_sum(&final_metrics, "item_breaker_state", &[]), 0.0);

    // order's status said item was not Ready while it had no pod.
    let (condition, state) = dependencies_while_down.unwrap();
    assert_eq!(condition.as_deref(), Some("False"));
    assert_ne!(state, Some(DependencyState::Ready));

    // All of it without restarting order: the same pod, the same container.
    let orders_now = live_pods(&pods, "order").await.unwrap();
    assert_eq!(orders_now.len(), 1, "{orders_now:?}");
    let now = &orders_now[0];
    assert_eq!(now.metadata.name.as_deref(), Some(order_pod_name.as_str()));
    assert_eq!(now.metadata.uid, order_pod.metadata.uid);
    assert_eq!(restart_count(now), restart_count(&order_pod), "{now:?}");
    assert_eq!(restart_count(now), 0, "{now:?}");
    assert!(is_ready(now));
}

fn traffic_phase(answers: &[Answer], phase: Phase) -> Vec<&Answer> {
    answers.iter().filter(|a| a.phase == phase).collect()
}

/// Units of the one item, and orders fired at once for one unit each.
const STOCK: i64 = 7;
const BURST: usize = 40;
const PRICE: i64 = 450;

/// `GET http://<pod IP>:8080/metrics`.
async fn pod_metrics(http: &reqwest::Client, pod: &Pod) -> anyhow::Result<String> {
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .context("pod without an IP")?;
    let response = http.get(format!("http://{ip}:8080/metrics")).send().await?;
    Ok(response.error_for_status()?.text().await?)
}

/// `http_requests_total` of one route and method, per pod.
async fn requests_per_pod(
    http: &reqwest::Client,
    pods: &[Pod],
    route: &str,
    method: &str,
) -> anyhow::Result<Vec<f64>> {
    let mut counts = Vec::new();
    for pod in pods {
        let text = pod_metrics(http, pod).await?;
        counts.push(metric_sum(
            &text,
            "http_requests_total",
            &[("route", route), ("method", method)],
        ));
    }
    Ok(counts)
}

/// Sends `GET <url><path>` through a Service until each of its `pods` has
/// answered one (by its own metrics): kube-proxy routes to all of them.
async fn wait_routed_to_all(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    route: &str,
    pods: &[Pod],
) {
    eventually(&format!("{url} routes to each pod"), || async {
        // A new connection each time: kube-proxy picks a pod per connection.
        let fresh = crate::support::http();
        let response = send("a GET through the Service", || {
            fresh.get(format!("{url}{path}"))
        })
        .await?;
        ensure!(response.status() == 200, "GET {url}{path}: {response:?}");
        let counts = requests_per_pod(http, pods, route, "GET").await?;
        Ok(counts.iter().all(|n| *n > 0.0).then_some(()))
    })
    .await
    .unwrap();
}

/// The two Ready pods of a MicroService asked for two replicas, on the real node.
async fn two_ready_pods(env: &Env, pods: &Api<Pod>, name: &str) -> Vec<Pod> {
    let ms = env.wait_ready(name).await.unwrap();
    let status = ms.status.unwrap();
    assert_eq!((status.replicas, status.ready_replicas), (2, 2), "{name}");
    let live = live_pods(pods, name).await.unwrap();
    assert_eq!(live.len(), 2, "{name}: {live:?}");
    for pod in &live {
        assert!(is_ready(pod), "{pod:?}");
        assert_runs_on_real_node(pod);
    }
    live
}

#[tokio::test]
async fn concurrent_orders_on_postgres_sell_exactly_the_stock() {
    let started = Instant::now();
    let database_url = pods_database_url().await;
    require_real_node(&client().await, &["item-service", "order-service"]).await;
    let env = Env::new("node-sell").await;
    let (ns, log) = (env.ns.name.clone(), env.operator.log.display().to_string());
    let item_db = PostgresSchema::create(&env, &database_url, "item").await;
    let order_db = PostgresSchema::create(&env, &database_url, "order").await;
    let item_spec = service_spec(
        "item-service",
        json!({ "replicas": 2, "env": item_db.env(4) }),
    );
    env.apply_microservice("item", &item_spec.to_string())
        .await
        .unwrap();
    let order_spec = service_spec(
        "order-service",
        json!({ "replicas": 2, "dependencies": ["item"], "env": order_db.env(4) }),
    );
    env.apply_microservice("order", &order_spec.to_string())
        .await
        .unwrap();
    let pods: Api<Pod> = env.ns.api();
    for name in ["item", "order"] {
        wait_pod_ready(&pods, name, None)
            .await
            .with_context(|| format!("operator log: {log}"))
            .unwrap();
    }
    let item_pods = two_ready_pods(&env, &pods, "item").await;
    let order_pods = two_ready_pods(&env, &pods, "order").await;

    let http = http();
    let item_url = service_url(&env.client, &ns, "item").await.unwrap();
    let order_url = service_url(&env.client, &ns, "order").await.unwrap();
    wait_routed_to_all(
        &http,
        &item_url,
        "/v1/items?limit=1",
        "/v1/items",
        &item_pods,
    )
    .await;
    wait_routed_to_all(
        &http,
        &order_url,
        "/v1/orders?limit=1",
        "/v1/orders",
        &order_pods,
    )
    .await;
    let new_item = json!({ "name": "scarce widget", "price_minor": PRICE, "currency": "EUR",
                           "stock": STOCK });
    let item = create_item(&http, &item_url, &new_item).await;
    let item_id = item["id"].as_str().unwrap().to_string();
    let reserve_route = "/v1/reservations/{key}";
    let reserves_before = requests_per_pod(&http, &item_pods, reserve_route, "PUT")
        .await
        .unwrap();
    let orders_before = requests_per_pod(&http, &order_pods, "/v1/orders", "POST")
        .await
        .unwrap();

    // The burst: every order on its own connection (a fresh client), all
    // released at once, none retried.
    let burst_client = crate::support::http();
    let gate = Arc::new(tokio::sync::Barrier::new(BURST));
    let mut burst = JoinSet::new();
    for i in 0..BURST {
        let (http, gate) = (burst_client.clone(), gate.clone());
        let url = format!("{order_url}/v1/orders");
        let (key, lines) = (
            format!("{ns}-burst-{i}"),
            json!({ "lines": [{ "item_id": item_id, "quantity": 1 }] }),
        );
        burst.spawn(async move {
            gate.wait().await;
            let t0 = Instant::now();
            let response = http
                .post(url)
                .header("Idempotency-Key", key)
                .json(&lines)
                .send()
                .await
                .map_err(|e| format!("{e:#}"))?;
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let (status, body) = json_of(response).await.map_err(|e| format!("{e:#}"))?;
            Ok::<_, String>((status, content_type, body, t0.elapsed()))
        });
    }
    let burst_started = Instant::now();
    let answers: Vec<_> = burst.join_all().await;
    let burst_took = burst_started.elapsed();

    let errors: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(errors.is_empty(), "orders without an answer: {errors:?}");
    let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for (status, ..) in &answers {
        *by_status.entry(*status).or_default() += 1;
    }
    let mut latencies: Vec<Duration> = answers.iter().map(|a| a.3).collect();
    latencies.sort();
    let placed: Vec<&Value> = answers
        .iter()
        .filter(|a| a.0 == 201)
        .map(|a| &a.2)
        .collect();

    // Which replicas served: each order pod took some of the orders, each item pod some reserves.
    let orders_served: Vec<f64> = requests_per_pod(&http, &order_pods, "/v1/orders", "POST")
        .await
        .unwrap()
        .iter()
        .zip(&orders_before)
        .map(|(after, before)| after - before)
        .collect();
    let reserves_served: Vec<f64> = requests_per_pod(&http, &item_pods, reserve_route, "PUT")
        .await
        .unwrap()
        .iter()
        .zip(&reserves_before)
        .map(|(after, before)| after - before)
        .collect();
    println!(
        "burst of {BURST} orders for {STOCK} units: by status {by_status:?}; took {burst_took:?}, \
         latency p50 {:?} max {:?}; orders per order pod {orders_served:?}, reserves per item pod \
         {reserves_served:?}; test took {:?}",
        latencies[latencies.len() / 2],
        latencies.last().unwrap(),
        started.elapsed(),
    );

    // Exactly the stock sold; every other order refused as out of stock.
    assert_eq!(placed.len(), STOCK as usize, "{by_status:?}");
    for order in &placed {
        assert_eq!(order["status"], "placed", "{order}");
        assert_eq!(order["total_minor"], PRICE, "{order}");
        assert_eq!(order["lines"][0]["quantity"], 1, "{order}");
    }
    for (status, content_type, body, _) in answers.iter().filter(|a| a.0 != 201) {
        assert_eq!(*status, 409, "{body}");
        assert_eq!(content_type, "application/problem+json", "{body}");
        assert_eq!(
            body["type"], "https://berth.dev/problems/insufficient-stock",
            "{body}"
        );
        assert_eq!(body["status"], 409, "{body}");
    }
    assert_eq!(by_status.values().sum::<usize>(), BURST);

    // item's stock is spent, not overspent.
    let response = send("read the item back", || {
        http.get(format!("{item_url}/v1/items/{item_id}"))
    })
    .await
    .unwrap();
    let (code, item) = json_of(response).await.unwrap();
    assert_eq!(code, 200, "{item}");
    assert_eq!(item["stock"], 0, "{item}");

    // order's database, read through either replica, has every order: the
    // sold ones placed with their unit confirmed, the others failed with
    // their reservation released.
    let response = send("list the orders", || {
        http.get(format!("{order_url}/v1/orders?limit=100"))
    })
    .await
    .unwrap();
    let (code, page) = json_of(response).await.unwrap();
    assert_eq!(code, 200, "{page}");
    let orders = page["orders"].as_array().unwrap();
    assert_eq!(orders.len(), BURST, "{page}");
    let placed_ids: HashSet<&str> = placed.iter().map(|o| o["id"].as_str().unwrap()).collect();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for order in orders {
        let (id, status) = (
            order["id"].as_str().unwrap(),
            order["status"].as_str().unwrap(),
        );
        *statuses.entry(status.to_string()).or_default() += 1;
        let expected = if placed_ids.contains(id) {
            ("placed", "confirmed")
        } else {
            ("failed", "released")
        };
        assert_eq!(status, expected.0, "{order}");
        let response = send("read a reservation", || {
            http.get(format!("{item_url}/v1/reservations/order:{id}:0"))
        })
        .await
        .unwrap();
        let (code, reservation) = json_of(response).await.unwrap();
        assert_eq!(code, 200, "{reservation}");
        assert_eq!(reservation["status"], expected.1, "{order}: {reservation}");
    }
    println!("orders in order's database by status: {statuses:?}");

    // Both replicas of each served.
    assert_eq!(orders_served.iter().sum::<f64>(), BURST as f64);
    assert!(orders_served.iter().all(|n| *n > 0.0), "{orders_served:?}");
    assert!(
        reserves_served.iter().all(|n| *n > 0.0),
        "{reserves_served:?}"
    );
    assert!(
        reserves_served.iter().sum::<f64>() >= BURST as f64,
        "{reserves_served:?}"
    );
}
