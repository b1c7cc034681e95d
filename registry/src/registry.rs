//! The [`Registry`] and [`Watcher`] traits and their options and events.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Result, ServiceRecord};

/// Options for [`Registry::register`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterOptions {
    /// How long the registration lives unless it is renewed by registering again.
    /// `None` (the default) means it lives until it is deregistered.
    pub ttl: Option<Duration>,
}

impl RegisterOptions {
    /// Options with the given TTL.
    pub fn ttl(ttl: Duration) -> Self {
        RegisterOptions { ttl: Some(ttl) }
    }
}

/// Options for [`Registry::watch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Watch only this service; `None` (the default) watches every service.
    pub service: Option<String>,
}

impl WatchOptions {
    /// Watch one service.
    pub fn service(name: impl Into<String>) -> Self {
        WatchOptions {
            service: Some(name.into()),
        }
    }

    /// Watch every service.
    pub fn all() -> Self {
        WatchOptions::default()
    }
}

/// What happened to the nodes carried by an [`WatchEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The nodes appeared.
    Create,
    /// The nodes, or the endpoints or metadata of their service, changed.
    Update,
    /// The nodes disappeared (deregistered or expired).
    Delete,
}

impl Action {
    /// go-micro's name: `create`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change seen by a [`Watcher`]: the service (name, version, endpoints) and the
/// nodes the action applies to. Registries report one event per changed node, as
/// go-micro's etcd registry does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// What happened.
    pub action: Action,
    /// The service, holding the nodes concerned.
    pub service: ServiceRecord,
}

/// A service registry: where servers register and clients discover them.
///
/// Implementations are shared as `Arc<dyn Registry>`. Every method is cancel-safe
/// in the sense that dropping the future abandons the call; a registration that was
/// already sent to a backend may or may not have been applied.
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Registers (or renews) every node of `service`. The service must have at
    /// least one node.
    async fn register(&self, service: &ServiceRecord, opts: &RegisterOptions) -> Result<()>;

    /// Removes the nodes of `service` (matched by id within its version). Removing
    /// nodes that are not registered is not an error.
    async fn deregister(&self, service: &ServiceRecord) -> Result<()>;

    /// Every version of `name` with its nodes, one [`ServiceRecord`] per version.
    /// Fails with [`Error::NotFound`](crate::Error::NotFound) when the name has no
    /// nodes.
    async fn get_service(&self, name: &str) -> Result<Vec<ServiceRecord>>;

    /// Every registered service, one entry per name and version.
    async fn list_services(&self) -> Result<Vec<ServiceRecord>>;

    /// Starts watching for changes.
    async fn watch(&self, opts: &WatchOptions) -> Result<Box<dyn Watcher>>;

    /// The registry's short name, written into node metadata (`memory`, `etcd`,
    /// `consul`).
    fn name(&self) -> &'static str;
}

/// A stream of registry [`WatchEvent`]s. Dropping a watcher stops it.
#[async_trait]
pub trait Watcher: Send {
    /// The next event. Fails with [`Error::WatcherStopped`](crate::Error::WatcherStopped)
    /// once stopped, and with [`Error::Lagged`](crate::Error::Lagged) when events
    /// were lost (the watcher keeps working; re-read what you track). Cancelling
    /// the call loses no event.
    async fn next(&mut self) -> Result<WatchEvent>;

    /// Stops the watcher; pending and later calls to `next` fail with
    /// `WatcherStopped`.
    fn stop(&mut self);
}
