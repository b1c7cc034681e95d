//! The registration lifecycle: the node record, registering with retries, the
//! re-registration loop and deregistration.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::FutureExt;
use std::time::Duration;

use micro_registry::{Endpoint, Node, RegisterOptions, Registry, ServiceRecord};
use tokio_util::sync::CancellationToken;

use super::handler::BoxFuture;
use crate::client::backoff;

/// A health check run before every registration (go-micro's `RegisterCheck`): while
/// it fails the server deregisters itself and stays unregistered.
pub type RegisterCheck =
    Arc<dyn Fn() -> BoxFuture<Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + Sync>;

/// Attempts per registration (go-micro: 3), with go-micro's backoff between them.
const ATTEMPTS: u32 = 3;

pub(crate) struct Registration {
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) service: ServiceRecord,
    pub(crate) ttl: Duration,
    pub(crate) interval: Duration,
    pub(crate) check: Option<RegisterCheck>,
    registered: AtomicBool,
}

impl Registration {
    pub(crate) fn new(
        registry: Arc<dyn Registry>,
        service: ServiceRecord,
        ttl: Duration,
        interval: Duration,
        check: Option<RegisterCheck>,
    ) -> Self {
        Registration {
            registry,
            service,
            ttl,
            interval,
            check,
            registered: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.registered.load(Ordering::SeqCst)
    }

    /// One registration: up to three attempts with go-micro's backoff (100 ms,
    /// 600 ms) between them.
    pub(crate) async fn register(&self) -> Result<(), micro_registry::Error> {
        let opts = RegisterOptions {
            ttl: (!self.ttl.is_zero()).then_some(self.ttl),
        };
        let mut last = None;
        for attempt in 1..=ATTEMPTS {
            match self.registry.register(&self.service, &opts).await {
                Ok(()) => {
                    if !self.registered.swap(true, Ordering::SeqCst) {
                        tracing::info!(
                            service = %self.service.name,
                            node = %self.node().id,
                            address = %self.node().address,
                            registry = self.registry.name(),
                            "registered"
                        );
                    }
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(service = %self.service.name, attempt, error = %e, "registration failed");
                    last = Some(e);
                    if attempt < ATTEMPTS {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                }
            }
        }
        Err(last.unwrap_or(micro_registry::Error::Invalid("no attempt made".into())))
    }

    /// Removes the node from the registry, whatever this process believes it
    /// registered: a registration that timed out, or that was cancelled in
    /// flight, may have been written all the same.
    pub(crate) async fn deregister(&self) -> Result<(), micro_registry::Error> {
        self.registered.store(false, Ordering::SeqCst);
        match self.registry.deregister(&self.service).await {
            Ok(()) => {
                tracing::info!(service = %self.service.name, node = %self.node().id, "deregistered");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(service = %self.service.name, error = %e, "deregistration failed");
                Err(e)
            }
        }
    }

    /// Runs the register check; registers when it passes, deregisters when it fails
    /// (a check that panics has failed).
    pub(crate) async fn check_and_register(&self) {
        if let Some(check) = &self.check {
            let outcome = AssertUnwindSafe(check()).catch_unwind().await;
            let failed = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(p) => Some(format!("panicked: {}", super::panic_text(&*p))),
            };
            if let Some(why) = failed {
                tracing::warn!(service = %self.service.name, error = %why, "register check failed");
                if self.registered.load(Ordering::SeqCst) {
                    let _ = self.deregister().await;
                }
                return;
            }
        }
        if let Err(e) = self.register().await {
            tracing::warn!(service = %self.service.name, error = %e, "could not register; will retry");
        }
    }

    /// Re-registers every interval until `stop` fires. An interval of zero disables
    /// the loop (as in go-micro).
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        if self.interval.is_zero() {
            return;
        }
        // an interval too long for the clock never ticks
        let Some(first) = tokio::time::Instant::now().checked_add(self.interval) else {
            return;
        };
        let mut tick = tokio::time::interval_at(first, self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.check_and_register() => {}
            }
        }
    }

    fn node(&self) -> &Node {
        // A registration always holds exactly one node.
        &self.service.nodes[0]
    }
}

/// Builds the service record a server registers.
pub(crate) fn service_record(
    name: &str,
    version: &str,
    node: Node,
    endpoints: Vec<Endpoint>,
) -> ServiceRecord {
    ServiceRecord {
        name: name.to_owned(),
        version: version.to_owned(),
        metadata: Default::default(),
        endpoints,
        nodes: vec![node],
    }
}
