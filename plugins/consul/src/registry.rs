//! [`ConsulRegistry`]: the [`Registry`] implementation.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use micro_registry::{RegisterOptions, Registry, ServiceRecord, WatchOptions, Watcher};
use parking_lot::Mutex;

use crate::client::{Client, Query};
use crate::convert::{CheckPlan, registration};
use crate::health::{group, instances};
use crate::heartbeat::{Beat, Heartbeat};
use crate::{ConsulOptions, Error, tags, watch};

/// The registry's short name.
const NAME: &str = "consul";

/// A registry backed by Consul, wire-compatible with go-micro's.
///
/// Clones share one HTTP client (connections are pooled) and one set of
/// registrations. See the [crate documentation](crate) for the contract.
#[derive(Clone, Debug)]
pub struct ConsulRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Arc<Client>,
    opts: ConsulOptions,
    /// What this registry registered, by node id.
    nodes: Mutex<HashMap<String, NodeState>>,
    /// Whether the "hidden by ACLs?" hint was logged.
    acl_hint: AtomicBool,
}

#[derive(Debug)]
struct NodeState {
    /// The last registration body sent.
    body: Bytes,
    /// Whether the agent accepted `body` (or a renewal of it) last time.
    confirmed: bool,
    heartbeat: Option<Heartbeat>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for state in self.nodes.get_mut().values() {
            if let Some(h) = &state.heartbeat {
                h.abort();
            }
        }
    }
}

impl ConsulRegistry {
    /// A registry with default options: Consul at `127.0.0.1:8500`, plain HTTP.
    pub fn new() -> Result<Self, Error> {
        ConsulOptions::new().build()
    }

    /// A registry configured from the environment (see
    /// [`ConsulOptions::from_env`]).
    pub fn from_env() -> Result<Self, Error> {
        ConsulOptions::from_env()?.build()
    }

    /// Options to build a registry from, starting from the defaults.
    pub fn builder() -> ConsulOptions {
        ConsulOptions::new()
    }

    pub(crate) fn with_options(opts: ConsulOptions) -> Result<Self, Error> {
        let client = Arc::new(Client::new(&opts)?);
        Ok(ConsulRegistry {
            inner: Arc::new(Inner {
                client,
                opts,
                nodes: Mutex::new(HashMap::new()),
                acl_hint: AtomicBool::new(false),
            }),
        })
    }

    /// The options the registry was built with.
    pub fn options(&self) -> &ConsulOptions {
        &self.inner.opts
    }

    /// The agent currently used (the first address that answered).
    pub fn agent_url(&self) -> String {
        self.inner.client.base().to_string()
    }

    /// Number of nodes whose heartbeat task is running (for tests and metrics).
    pub fn heartbeats(&self) -> usize {
        self.inner
            .nodes
            .lock()
            .values()
            .filter(|s| s.heartbeat.as_ref().is_some_and(Heartbeat::is_running))
            .count()
    }

    /// Stops every heartbeat and waits for them, without deregistering anything:
    /// nodes with a TTL check turn critical once their TTL runs out. Registering
    /// again starts the heartbeat again.
    pub async fn close(&self) {
        let beats: Vec<Heartbeat> = self
            .inner
            .nodes
            .lock()
            .drain()
            .filter_map(|(_, s)| s.heartbeat)
            .collect();
        for h in beats {
            h.stop(self.stop_limit()).await;
        }
    }

    fn stop_limit(&self) -> Duration {
        self.inner.opts.timeout + Duration::from_secs(1)
    }

    async fn register_node(
        &self,
        service: &ServiceRecord,
        node: &micro_registry::Node,
        plan: &CheckPlan,
    ) -> Result<(), Error> {
        let reg = registration(service, node, plan);
        let body = Bytes::from(serde_json::to_vec(&reg).map_err(|e| Error::Decode {
            url: String::new(),
            reason: e.to_string(),
        })?);
        let client = &self.inner.client;
        let unchanged = self
            .inner
            .nodes
            .lock()
            .get(&node.id)
            .is_some_and(|s| s.confirmed && s.body == body);
        if unchanged {
            let renewed = match plan {
                CheckPlan::Ttl(_) => client
                    .put(
                        &["agent", "check", "pass", &format!("service:{}", node.id)],
                        None,
                    )
                    .await
                    .map(|_| ()),
                _ => client
                    .get(&["agent", "service", &node.id], Query::default())
                    .await
                    .map(|_| ()),
            };
            match renewed {
                Ok(()) => {
                    // The check was just passed: the heartbeat need not.
                    if let Some(h) = self
                        .inner
                        .nodes
                        .lock()
                        .get(&node.id)
                        .and_then(|s| s.heartbeat.as_ref())
                    {
                        h.passed();
                    }
                    return Ok(());
                }
                // The agent does not know the check (restarted, or it lost the
                // node): register in full.
                Err(e) if e.is_refusal() => {
                    tracing::debug!(node = %node.id, error = %e, "consul: renewal refused; registering in full");
                }
                // No answer (timeout, unreachable) or an ACL refusal: a full
                // registration would only add load to an agent already slow, and
                // the caller retries.
                Err(e) => return Err(e),
            }
        }
        let res = client
            .put(&["agent", "service", "register"], Some(body.clone()))
            .await
            .map(|_| ());
        let stopped = {
            let mut nodes = self.inner.nodes.lock();
            if res.is_err() && !nodes.contains_key(&node.id) {
                // Never registered: keep nothing, so nothing keeps trying.
                return res;
            }
            let state = nodes.entry(node.id.clone()).or_insert_with(|| NodeState {
                body: body.clone(),
                confirmed: false,
                heartbeat: None,
            });
            state.body = body.clone();
            state.confirmed = res.is_ok();
            match plan {
                CheckPlan::Ttl(ttl) if self.inner.opts.heartbeat => {
                    let beat = Beat::new(body, *ttl);
                    match &state.heartbeat {
                        Some(h) if h.is_running() => *h.beat.lock() = beat,
                        _ => {
                            state.heartbeat =
                                Some(Heartbeat::start(client.clone(), node.id.clone(), beat));
                        }
                    }
                    None
                }
                _ => state.heartbeat.take(),
            }
        };
        if let Some(h) = stopped {
            h.stop(self.stop_limit()).await;
        }
        res
    }

    async fn deregister_node(&self, id: &str) -> Result<(), Error> {
        let state = self.inner.nodes.lock().remove(id);
        if let Some(h) = state.and_then(|s| s.heartbeat) {
            h.stop(self.stop_limit()).await;
        }
        match self
            .inner
            .client
            .put(&["agent", "service", "deregister", id], None)
            .await
        {
            Ok(_) => Ok(()),
            // Not registered (any more): nothing to remove.
            Err(e) if e.is_status(404) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Wraps a crate error for the registry API.
pub(crate) fn registry_error(op: &'static str, e: Error) -> micro_registry::Error {
    if e.is_timeout() {
        micro_registry::Error::Timeout { registry: NAME, op }
    } else {
        micro_registry::Error::backend(NAME, op, e)
    }
}

fn validate(service: &ServiceRecord) -> micro_registry::Result<()> {
    if service.name.is_empty() {
        return Err(micro_registry::Error::Invalid("service has no name".into()));
    }
    if service.nodes.is_empty() {
        return Err(micro_registry::Error::Invalid(format!(
            "service {:?} has no nodes",
            service.name
        )));
    }
    if service.nodes.iter().any(|n| n.id.is_empty()) {
        return Err(micro_registry::Error::Invalid(format!(
            "service {:?} has a node without id",
            service.name
        )));
    }
    Ok(())
}

#[async_trait]
impl Registry for ConsulRegistry {
    /// Registers every node as a Consul agent service (go-micro registers only the
    /// first). An unchanged registration is renewed (TTL pass, or a check that the
    /// agent still has it) and sent in full when the agent refuses the renewal
    /// (it lost the node); a renewal that got no answer fails as it is, without
    /// a full registration to add to a slow agent's load. Every node is tried;
    /// the first error is returned.
    async fn register(
        &self,
        service: &ServiceRecord,
        opts: &RegisterOptions,
    ) -> micro_registry::Result<()> {
        validate(service)?;
        let o = &self.inner.opts;
        let plan = CheckPlan::choose(o.tcp_check, o.http_check.as_ref(), opts.ttl);
        let mut first = None;
        for node in &service.nodes {
            if let Err(e) = self.register_node(service, node, &plan).await {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(registry_error("register", e)),
            None => Ok(()),
        }
    }

    /// Stops the nodes' heartbeats, then deregisters them from the agent. A node
    /// the agent does not know is not an error.
    async fn deregister(&self, service: &ServiceRecord) -> micro_registry::Result<()> {
        let mut first = None;
        for node in &service.nodes {
            if let Err(e) = self.deregister_node(&node.id).await {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(registry_error("deregister", e)),
            None => Ok(()),
        }
    }

    async fn get_service(&self, name: &str) -> micro_registry::Result<Vec<ServiceRecord>> {
        if name.is_empty() {
            return Err(micro_registry::Error::NotFound);
        }
        let reply = self
            .inner
            .client
            .get(
                &["health", "service", name],
                Query::read(self.inner.opts.allow_stale),
            )
            .await
            .map_err(|e| registry_error("get_service", e))?;
        let inst = instances(name, &reply).map_err(|e| registry_error("get_service", e))?;
        let services = group(&inst);
        if services.is_empty() {
            if reply.acl_deny && !self.inner.acl_hint.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    service = name,
                    "consul: no healthy node found and Consul's ACLs deny by default; \
                     if the service exists, the token may lack `service:read` on it"
                );
            }
            Err(micro_registry::Error::NotFound)
        } else {
            Ok(services)
        }
    }

    /// One entry per service name and version, without nodes or endpoints: the
    /// versions are read from the version tags of the catalog's service list (one
    /// request). A service without version tags is listed once with an empty
    /// version.
    async fn list_services(&self) -> micro_registry::Result<Vec<ServiceRecord>> {
        let reply = self
            .inner
            .client
            .get(
                &["catalog", "services"],
                Query::read(self.inner.opts.allow_stale),
            )
            .await
            .map_err(|e| registry_error("list_services", e))?;
        let raw: Option<std::collections::BTreeMap<String, Option<Vec<String>>>> = reply
            .json()
            .map_err(|e| registry_error("list_services", e))?;
        let mut out = Vec::new();
        for (name, tag_list) in raw.unwrap_or_default() {
            let versions: BTreeSet<String> = tag_list
                .unwrap_or_default()
                .iter()
                .filter_map(|t| tags::decode_version(std::slice::from_ref(t)))
                .collect();
            let versions = if versions.is_empty() {
                BTreeSet::from([String::new()])
            } else {
                versions
            };
            for version in versions {
                out.push(ServiceRecord {
                    name: name.clone(),
                    version,
                    ..Default::default()
                });
            }
        }
        Ok(out)
    }

    /// Watches one service or all of them with blocking queries (see the crate
    /// documentation). The baseline is read before this returns, so it fails when
    /// Consul cannot be read, and every change after it is reported.
    async fn watch(&self, opts: &WatchOptions) -> micro_registry::Result<Box<dyn Watcher>> {
        let w = watch::start(
            self.inner.client.clone(),
            &self.inner.opts,
            opts.service.as_deref(),
        )
        .await
        .map_err(|e| registry_error("watch", e))?;
        Ok(Box::new(w))
    }

    fn name(&self) -> &'static str {
        NAME
    }
}
