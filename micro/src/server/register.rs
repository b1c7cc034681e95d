//! The registration lifecycle: the node record, registering with retries, the
//! re-registration loop and deregistration.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use micro_registry::{Endpoint, Node, RegisterOptions, Registry, Service};
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
    pub(crate) service: Service,
    pub(crate) ttl: Duration,
    pub(crate) interval: Duration,
    pub(crate) check: Option<RegisterCheck>,
    registered: AtomicBool,
}

impl Registration {
    pub(crate) fn new(
        registry: Arc<dyn Registry>,
        service: Service,
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

    /// Removes the node from the registry (errors are logged).
    pub(crate) async fn deregister(&self) {
        if !self.registered.swap(false, Ordering::SeqCst) {
            return;
        }
        match self.registry.deregister(&self.service).await {
            Ok(()) => {
                tracing::info!(service = %self.service.name, node = %self.node().id, "deregistered")
            }
            Err(e) => {
                tracing::warn!(service = %self.service.name, error = %e, "deregistration failed")
            }
        }
    }

    /// Runs the register check; registers when it passes, deregisters when it fails.
    pub(crate) async fn check_and_register(&self) {
        if let Some(check) = &self.check {
            if let Err(e) = check().await {
                tracing::warn!(service = %self.service.name, error = %e, "register check failed");
                self.deregister().await;
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
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
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
) -> Service {
    Service {
        name: name.to_owned(),
        version: version.to_owned(),
        metadata: Default::default(),
        endpoints,
        nodes: vec![node],
    }
}

/// The address to advertise: `advertise` if set, else the bound address; an
/// unspecified or empty host is replaced by an address of this machine (the first
/// private IPv4, else the first other non-loopback address, else loopback), as
/// go-micro v5 does.
pub(crate) fn advertise_address(advertise: Option<&str>, bound: &str) -> String {
    let addr = advertise.filter(|a| !a.is_empty()).unwrap_or(bound);
    let (host, port) = split_host_port(addr);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let unspecified = host.is_empty() || host == "0.0.0.0" || host == "::";
    let host = if unspecified {
        local_ip().to_string()
    } else {
        host.to_owned()
    };
    match port {
        Some(p) => join_host_port(&host, p),
        None => host,
    }
}

/// `host:port` joined with brackets around IPv6 hosts.
pub(crate) fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn split_host_port(addr: &str) -> (&str, Option<&str>) {
    if let Some(rest) = addr.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once("]:") {
            return (h, Some(p));
        }
        return (rest.trim_end_matches(']'), None);
    }
    match addr.rsplit_once(':') {
        // A bare IPv6 address without port has several colons.
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        Some(_) => (addr, None),
        None => (addr, None),
    }
}

fn local_ip() -> IpAddr {
    let addrs = if_addrs::get_if_addrs().unwrap_or_default();
    let ips: Vec<IpAddr> = addrs.iter().map(|i| i.ip()).collect();
    let private = ips.iter().find(|ip| match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    });
    private
        .or_else(|| {
            ips.iter()
                .find(|ip| !ip.is_loopback() && !is_link_local(ip))
        })
        .copied()
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_hosts_are_kept_and_ipv6_is_bracketed() {
        assert_eq!(advertise_address(None, "127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(
            advertise_address(Some("10.1.2.3:9"), "127.0.0.1:8080"),
            "10.1.2.3:9"
        );
        assert_eq!(advertise_address(None, "[::1]:8080"), "[::1]:8080");
        assert_eq!(
            advertise_address(Some("queue-name"), "127.0.0.1:1"),
            "queue-name"
        );
    }

    #[test]
    fn unspecified_hosts_become_a_local_address() {
        for bound in ["0.0.0.0:8080", ":8080", "[::]:8080"] {
            let a = advertise_address(None, bound);
            assert!(a.ends_with(":8080"), "{a}");
            let host = a
                .trim_end_matches(":8080")
                .trim_start_matches('[')
                .trim_end_matches(']');
            let ip: IpAddr = host.parse().expect("an IP");
            assert!(!ip.is_unspecified(), "{a}");
        }
    }
}
