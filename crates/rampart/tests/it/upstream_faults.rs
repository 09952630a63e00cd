//! Fault tests of the upstream layer: three targets under continuous load, one killed, slowed
//! down, brought back or flapping, and all of them down. Every wait is bounded; the observed
//! figures are printed (run with `--nocapture` to see them).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rampart_testkit::TestGateway;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::support::client_with_timeout;

/// Longest any single request may take before the test fails.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// An HTTP/1.1 origin the test can kill, revive and slow down.
struct Origin {
    addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    served: Arc<AtomicU64>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Origin {
    async fn start() -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = Arc::new(Self {
            addr: listener.local_addr().unwrap(),
            delay_ms: Arc::default(),
            served: Arc::default(),
            task: Mutex::new(None),
        });
        origin.serve(listener);
        origin
    }

    fn serve(&self, listener: TcpListener) {
        let (delay, served) = (self.delay_ms.clone(), self.served.clone());
        let task = tokio::spawn(async move {
            // Connections live in this set: aborting the task closes them all (a kill).
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (delay, served) = (delay.clone(), served.clone());
                conns.spawn(async move {
                    let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                        let (delay, served) = (delay.clone(), served.clone());
                        async move {
                            let ms = delay.load(Ordering::Relaxed);
                            if ms > 0 {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            served.fetch_add(1, Ordering::Relaxed);
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Closes the listener and every connection: connects are refused from now on.
    fn kill(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    async fn revive(&self) {
        for _ in 0..100 {
            if let Ok(listener) = TcpListener::bind(self.addr).await {
                self.serve(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("could not listen on {} again", self.addr);
    }

    fn slow(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::Relaxed);
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

fn config(origins: &[Arc<Origin>], extra: &str) -> String {
    let targets: Vec<String> = origins.iter().map(|o| format!("\"{}\"", o.addr)).collect();
    format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n[[upstreams]]\nname = \"three\"\ntargets = [{}]\n{extra}\n\n[[routes]]\nname = \"all\"\nupstream = \"three\"\n",
        targets.join(", ")
    )
}

/// The health of one target: its state, why it is there, and its failure count.
#[derive(Debug)]
struct Health {
    state: &'static str,
    reason: Option<&'static str>,
    failures: u64,
    backoff_level: u32,
}

/// The health of target `addr` of upstream `three`.
fn status(gw: &TestGateway, addr: SocketAddr) -> Health {
    let all = gw.handle().upstream_statuses();
    let (_, targets) = all.iter().find(|(name, _)| name == "three").unwrap();
    let t = targets
        .iter()
        .find(|t| t.target == addr.to_string())
        .unwrap();
    Health {
        state: t.state.as_str(),
        reason: t.reason,
        failures: t.failures,
        backoff_level: t.backoff_level,
    }
}

/// Results of the load generator.
#[derive(Default)]
struct Load {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Failures after `mark` was set.
    failed_after_mark: AtomicU64,
    mark: AtomicBool,
    stop: AtomicBool,
    latencies_after_mark: Mutex<Vec<Duration>>,
}

impl Load {
    /// `workers` tasks sending GETs in a loop until `stop`.
    fn spawn(self: &Arc<Self>, url: &str, workers: usize) -> Vec<JoinHandle<()>> {
        (0..workers)
            .map(|_| {
                let (load, url, client) = (
                    self.clone(),
                    url.to_owned(),
                    client_with_timeout(REQUEST_LIMIT),
                );
                tokio::spawn(async move {
                    while !load.stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        // Requests count as "after the mark" when they start after it.
                        let marked = load.mark.load(Ordering::Relaxed);
                        let ok =
                            matches!(client.get(&url).send().await, Ok(r) if r.status() == 200);
                        if ok {
                            load.ok.fetch_add(1, Ordering::Relaxed);
                            if marked {
                                load.latencies_after_mark
                                    .lock()
                                    .unwrap()
                                    .push(started.elapsed());
                            }
                        } else {
                            load.failed.fetch_add(1, Ordering::Relaxed);
                            if marked {
                                load.failed_after_mark.fetch_add(1, Ordering::Relaxed);
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                })
            })
            .collect()
    }

    async fn finish(&self, tasks: Vec<JoinHandle<()>>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in tasks {
            tokio::time::timeout(REQUEST_LIMIT * 2, t)
                .await
                .unwrap()
                .unwrap();
        }
    }

    fn p99_after_mark(&self) -> Duration {
        let mut l = self.latencies_after_mark.lock().unwrap().clone();
        l.sort();
        l.get(l.len().saturating_mul(99) / 100)
            .copied()
            .unwrap_or_default()
    }
}

/// Polls `cond` every 25 ms for at most `limit`; returns the time it took.
async fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_target_is_ejected_and_idempotent_requests_stop_failing() {
    let origins = [
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
    ];
    let gw = TestGateway::builder(config(
        &origins,
        "[upstreams.outlier]\nbase_ejection = \"30s\"",
    ))
    .start();
    let load = Arc::new(Load::default());
    let tasks = load.spawn(&gw.url("public", "/work"), 4);
    wait_for(REQUEST_LIMIT, "warm-up", || {
        load.ok.load(Ordering::Relaxed) > 300
    })
    .await;
    let victim = &origins[1];
    victim.kill();
    let detected = wait_for(
        Duration::from_secs(10),
        "ejection of the killed target",
        || status(&gw, victim.addr).state == "ejected",
    )
    .await;
    let failed_before = load.failed.load(Ordering::Relaxed);
    load.mark.store(true, Ordering::Relaxed);
    let ok_at_mark = load.ok.load(Ordering::Relaxed);
    wait_for(REQUEST_LIMIT, "traffic after ejection", || {
        load.ok.load(Ordering::Relaxed) > ok_at_mark + 500
    })
    .await;
    load.finish(tasks).await;
    let st = status(&gw, victim.addr);
    eprintln!(
        "kill: detected after {detected:?}; failures before detection {failed_before}; after {}; ok {}; victim {st:?}",
        load.failed_after_mark.load(Ordering::Relaxed),
        load.ok.load(Ordering::Relaxed)
    );
    assert!(
        matches!(
            st.reason,
            Some("consecutive_connect_errors" | "consecutive_timeouts")
        ),
        "{st:?}"
    );
    assert_eq!(
        load.failed_after_mark.load(Ordering::Relaxed),
        0,
        "no request fails after detection"
    );
    assert!(st.failures >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_target_is_ejected_as_a_gray_failure_and_slow_start_readmits_it() {
    let origins = [
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
    ];
    let extra = "balance = \"round_robin\"\n[upstreams.outlier]\nbase_ejection = \"3s\"\nslow_start = \"2s\"";
    let gw = TestGateway::builder(config(&origins, extra))
        .access_log()
        .start();
    let load = Arc::new(Load::default());
    let tasks = load.spawn(&gw.url("public", "/work"), 4);
    wait_for(REQUEST_LIMIT, "warm-up", || {
        load.ok.load(Ordering::Relaxed) > 300
    })
    .await;
    let slow = &origins[2];
    slow.slow(300);
    let detected = wait_for(Duration::from_secs(10), "gray-failure ejection", || {
        status(&gw, slow.addr).state == "ejected"
    })
    .await;
    assert_eq!(status(&gw, slow.addr).reason, Some("latency_outlier"));
    // While it is out, nothing waits on it.
    load.mark.store(true, Ordering::Relaxed);
    let served_at_ejection = slow.served();
    let ok_at_mark = load.ok.load(Ordering::Relaxed);
    wait_for(REQUEST_LIMIT, "traffic while ejected", || {
        load.ok.load(Ordering::Relaxed) > ok_at_mark + 200
    })
    .await;
    let p99_ejected = load.p99_after_mark();
    let served_while_ejected = slow.served() - served_at_ejection;
    // Requests already waiting on it when it was ejected may still complete there.
    assert!(
        served_while_ejected <= 8,
        "the ejected target kept serving: {served_while_ejected}"
    );
    // Heal it: after the back-off it comes back through slow start, then full share.
    slow.slow(0);
    let back = wait_for(Duration::from_secs(15), "slow start", || {
        status(&gw, slow.addr).state == "slow_start"
    })
    .await;
    wait_for(Duration::from_secs(15), "full share again", || {
        status(&gw, slow.addr).state == "healthy"
    })
    .await;
    let served_at_healthy = slow.served();
    let ok_at_healthy = load.ok.load(Ordering::Relaxed);
    wait_for(REQUEST_LIMIT, "traffic after recovery", || {
        load.ok.load(Ordering::Relaxed) > ok_at_healthy + 300
    })
    .await;
    load.finish(tasks).await;
    let share = slow.served() - served_at_healthy;
    eprintln!(
        "slow: ejected after {detected:?}; p99 while ejected {p99_ejected:?}; served while ejected {served_while_ejected}; slow start after {back:?}; served after recovery {share}; failed {}",
        load.failed.load(Ordering::Relaxed)
    );
    assert!(
        share > 50,
        "the healed target takes its share again: {share}"
    );
    assert_eq!(load.failed.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flapping_target_is_backed_off_exponentially() {
    let origins = [
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
    ];
    let extra = "balance = \"round_robin\"\n[upstreams.outlier]\nbase_ejection = \"400ms\"\nmax_ejection = \"10s\"\nslow_start = \"0s\"";
    let gw = TestGateway::builder(config(&origins, extra)).start();
    let load = Arc::new(Load::default());
    let tasks = load.spawn(&gw.url("public", "/work"), 3);
    let flapper = origins[0].clone();
    // Up for 300 ms, down for 300 ms, over and over.
    let flapping = tokio::spawn(async move {
        loop {
            flapper.kill();
            tokio::time::sleep(Duration::from_millis(300)).await;
            flapper.revive().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    // The time of each new ejection, seen as the back-off count going up.
    let mut at: Vec<Instant> = Vec::new();
    let mut seen = 0;
    let started = Instant::now();
    while at.len() < 5 && started.elapsed() < Duration::from_secs(40) {
        let count = status(&gw, origins[0].addr).backoff_level;
        if count > seen {
            seen = count;
            at.push(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    flapping.abort();
    load.finish(tasks).await;
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!(
        "flap: time between ejections {gaps:?}; ok {} failed {}",
        load.ok.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed)
    );
    assert!(gaps.len() >= 4, "expected 5 ejections, saw gaps {gaps:?}");
    // Ejection k lasts 400 ms × 2^(k-1): the next one cannot come sooner (the poll is 10 ms).
    for (k, gap) in gaps.iter().enumerate() {
        let back_off = Duration::from_millis(400 << k);
        assert!(
            *gap + Duration::from_millis(20) >= back_off,
            "ejection {k} lasted {gap:?}, less than {back_off:?}: {gaps:?}"
        );
    }
    assert!(gaps[3] > gaps[1], "{gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_every_target_down_the_client_gets_a_fast_503() {
    let origins = [
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
    ];
    let extra = "[upstreams.health_check]\nkind = \"tcp\"\ninterval = \"100ms\"\njitter = \"0s\"\ntimeout = \"500ms\"\nunhealthy_threshold = 1";
    let gw = TestGateway::builder(config(&origins, extra))
        .access_log()
        .start();
    let client = client_with_timeout(REQUEST_LIMIT);
    let resp = client.get(gw.url("public", "/up")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    for o in &origins {
        o.kill();
    }
    wait_for(Duration::from_secs(10), "all targets unhealthy", || {
        origins
            .iter()
            .all(|o| status(&gw, o.addr).state == "unhealthy")
    })
    .await;
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let resp = client.get(gw.url("public", "/down")).send().await.unwrap();
        slowest = slowest.max(started.elapsed());
        assert_eq!(resp.status(), 503);
    }
    let lines = gw.access_log_json(21);
    assert!(
        lines[1..]
            .iter()
            .all(|l| l["reason"] == "no_upstream_target"),
        "{lines:?}"
    );
    assert!(
        gw.handle().upstream_statuses()[0]
            .1
            .iter()
            .all(|t| t.reason == Some("active_check_failed"))
    );
    eprintln!("all down: 20 requests, slowest answer {slowest:?}");
    // Bring one back: active checks re-admit it and requests succeed again.
    origins[0].revive().await;
    wait_for(
        Duration::from_secs(10),
        "re-admission by active checks",
        || status(&gw, origins[0].addr).state != "unhealthy",
    )
    .await;
    let resp = client.get(gw.url("public", "/back")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}
