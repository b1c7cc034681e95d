//! The client side of the RPC scenarios: a client built as a user builds one,
//! which counts attempts per node, and callers that call in a loop and record
//! every call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use examples::{CallRequest, CallResponse};
use micro::client::{
    BoxClientService, CallError, Client, ClientOptions, ClientRequest, ClientResponse,
};
use micro::middleware::{FromFnLayer, Next, from_fn};
use micro::registry::{CacheOptions, Registry};
use micro::selector::RegistrySelector;
use micro::{RpcError, Service};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::harness::wait_until;

/// Calls and failures per node, as the client's call wrapper saw each attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts that got an answer.
    pub ok: u64,
    /// Attempts that failed.
    pub failed: u64,
}

/// A client as a user builds one: a [`Service`] on its own registry client, with a
/// [`RegistrySelector`] the test can look into, and a call wrapper that counts
/// attempts per node. Cheap to clone.
#[derive(Clone)]
pub struct TestClient {
    service: Service,
    selector: RegistrySelector,
    attempts: Arc<Mutex<BTreeMap<String, Attempts>>>,
}

impl TestClient {
    /// A client on `registry` with the selector's default cache; `options` tunes
    /// the client (retries, timeouts).
    pub fn new(
        registry: Arc<dyn Registry>,
        options: impl FnOnce(ClientOptions) -> ClientOptions,
    ) -> TestClient {
        Self::with_cache(registry, CacheOptions::default(), options)
    }

    /// A client whose selector's cache has `cache` options.
    pub fn with_cache(
        registry: Arc<dyn Registry>,
        cache: CacheOptions,
        options: impl FnOnce(ClientOptions) -> ClientOptions,
    ) -> TestClient {
        let selector = RegistrySelector::builder(registry.clone())
            .cache_options(cache)
            .build();
        let attempts: Arc<Mutex<BTreeMap<String, Attempts>>> = Arc::default();
        let service = Service::builder("rpc-test-client")
            .registry(registry)
            .selector(Arc::new(selector.clone()))
            .client_options(|o| options(o.attempt_layer(count_attempts(attempts.clone()))))
            .build()
            .expect("client service");
        TestClient {
            service,
            selector,
            attempts,
        }
    }

    /// The client.
    pub fn client(&self) -> &Arc<dyn Client> {
        self.service.client()
    }

    /// `Helloworld.Call` on `service`; a wrong answer is an error too.
    pub async fn hello(&self, service: &str) -> Result<(), RpcError> {
        let rsp: CallResponse = self
            .client()
            .request(service, "Helloworld.Call")
            .call(&CallRequest {
                name: "loop".into(),
            })
            .await?;
        if rsp.msg != "Hello loop" {
            return Err(RpcError::internal(
                "rpc-test-client",
                format!("wrong answer {:?}", rsp.msg),
            ));
        }
        Ok(())
    }

    /// The ids of the nodes of `service` the selector can choose from now
    /// (sorted; empty when the lookup fails).
    pub async fn nodes(&self, service: &str) -> Vec<String> {
        let mut ids: Vec<String> = match self.selector.cache().get(service).await {
            Ok(s) => s.nodes().map(|(_, n)| n.id.clone()).collect(),
            Err(_) => Vec::new(),
        };
        ids.sort();
        ids
    }

    /// Waits (up to `limit`) until the selector's nodes of `service` satisfy
    /// `done`; returns how long that took, or `None`.
    pub async fn wait_nodes(
        &self,
        service: &str,
        limit: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Option<Duration> {
        let start = Instant::now();
        let done = &done;
        wait_until(limit, Duration::from_millis(50), || async move {
            done(&self.nodes(service).await)
        })
        .await
        .then(|| start.elapsed())
    }

    /// Attempts per node id so far.
    pub fn attempts(&self) -> BTreeMap<String, Attempts> {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the selector's watches and closes the client's connections.
    pub async fn close(&self) {
        let _ = self.service.stop().await;
        self.selector.stop().await;
    }
}

/// A boxed future of a client layer.
type LayerFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<ClientResponse, CallError>> + Send>>;

/// An attempt layer recording the outcome of every attempt by node id.
fn count_attempts(
    log: Arc<Mutex<BTreeMap<String, Attempts>>>,
) -> FromFnLayer<impl Fn(ClientRequest, Next<BoxClientService>) -> LayerFuture + Clone + Send + Sync>
{
    from_fn(move |req: ClientRequest, next: Next<BoxClientService>| {
        let log = log.clone();
        Box::pin(async move {
            let node = req.target().map(|t| t.node_id.clone()).unwrap_or_default();
            let res = next.run(req).await;
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            let a = log.entry(node).or_default();
            if res.is_ok() {
                a.ok += 1;
            } else {
                a.failed += 1;
            }
            res
        }) as LayerFuture
    })
}

/// One failed call of a [`CallLoop`].
#[derive(Clone, Debug)]
pub struct Failure {
    /// When it started, since the loop started.
    pub at: Duration,
    /// How long it took.
    pub took: Duration,
    /// The error.
    pub error: String,
}

/// What a [`CallLoop`] saw.
#[derive(Clone, Debug, Default)]
pub struct CallLog {
    /// Calls that succeeded.
    pub ok: u64,
    /// Calls that failed.
    pub failed: Vec<Failure>,
    /// The slowest call.
    pub slowest: Duration,
    /// Calls that took longer than [`SLOW`]: (when it started, how long it took).
    pub slow: Vec<(Duration, Duration)>,
}

impl CallLog {
    /// Every call made.
    pub fn total(&self) -> u64 {
        self.ok + self.failed.len() as u64
    }
}

/// Callers calling `Helloworld.Call` back to back (with a short pause) until
/// stopped; at most five minutes. Dropping it aborts the callers.
pub struct CallLoop {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    log: Arc<Mutex<CallLog>>,
    begin: Instant,
}

/// A call slower than this is listed in [`CallLog::slow`].
pub const SLOW: Duration = Duration::from_millis(250);

/// The longest a call loop runs, whatever happens.
const LOOP_LIMIT: Duration = Duration::from_secs(300);

impl CallLoop {
    /// Starts `callers` callers of `service` through `client`, each pausing
    /// `pause` between calls.
    pub fn start(client: &TestClient, service: &str, callers: usize, pause: Duration) -> CallLoop {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let log: Arc<Mutex<CallLog>> = Arc::default();
        let begin = Instant::now();
        let tasks = (0..callers.max(1))
            .map(|_| {
                let (client, log, service) = (client.clone(), log.clone(), service.to_owned());
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    while !*stopped.borrow() && begin.elapsed() < LOOP_LIMIT {
                        let start = Instant::now();
                        let res = client.hello(&service).await;
                        let took = start.elapsed();
                        {
                            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                            log.slowest = log.slowest.max(took);
                            if took > SLOW {
                                log.slow.push((start.duration_since(begin), took));
                            }
                            match res {
                                Ok(()) => log.ok += 1,
                                Err(e) => log.failed.push(Failure {
                                    at: start.duration_since(begin),
                                    took,
                                    error: e.to_string(),
                                }),
                            }
                        }
                        tokio::select! {
                            _ = stopped.changed() => {}
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                })
            })
            .collect();
        CallLoop {
            stop,
            tasks,
            log,
            begin,
        }
    }

    /// Time since the loop started (the clock of [`Failure::at`]).
    pub fn elapsed(&self) -> Duration {
        self.begin.elapsed()
    }

    /// What the callers saw so far.
    pub fn log(&self) -> CallLog {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (up to `limit`) until `n` more calls succeeded than now; returns
    /// whether they did.
    pub async fn wait_more_ok(&self, n: u64, limit: Duration) -> bool {
        let target = self.log().ok + n;
        wait_until(limit, Duration::from_millis(20), || async move {
            self.log().ok >= target
        })
        .await
    }

    /// Stops the callers (each finishes its current call) and returns the log.
    pub async fn stop(mut self) -> CallLog {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.log()
    }
}

impl Drop for CallLoop {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
