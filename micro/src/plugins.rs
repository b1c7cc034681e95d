//! Registry plugins chosen by name (`MICRO_REGISTRY`).
//!
//! `memory` is built in; `etcd` and `consul` need micro's features of the same
//! names (they pull in the `micro-etcd` and `micro-consul` crates).

use std::sync::Arc;

use micro_registry::{MemoryRegistry, Registry};

use crate::Error;

/// The registry called `name` (`memory`, `etcd`, `consul`) at `addresses` (empty:
/// the plugin's own default and environment).
pub(crate) fn registry(name: &str, addresses: &[String]) -> Result<Arc<dyn Registry>, Error> {
    match name {
        "memory" => Ok(Arc::new(MemoryRegistry::new())),
        "etcd" => etcd(addresses),
        "consul" => consul(addresses),
        other => Err(Error::Config(format!(
            "unknown registry {other:?} (memory, etcd, consul)"
        ))),
    }
}

#[cfg(feature = "etcd")]
fn etcd(addresses: &[String]) -> Result<Arc<dyn Registry>, Error> {
    let mut opts = micro_etcd::EtcdOptions::from_env();
    if !addresses.is_empty() {
        opts = opts.endpoints(addresses.iter().cloned());
    }
    let r = opts
        .build()
        .map_err(|e| Error::Config(format!("etcd registry: {e}")))?;
    Ok(Arc::new(r))
}

#[cfg(not(feature = "etcd"))]
fn etcd(_addresses: &[String]) -> Result<Arc<dyn Registry>, Error> {
    Err(Error::Config(
        "registry etcd needs micro's `etcd` feature".into(),
    ))
}

#[cfg(feature = "consul")]
fn consul(addresses: &[String]) -> Result<Arc<dyn Registry>, Error> {
    let mut opts = micro_consul::ConsulOptions::from_env()
        .map_err(|e| Error::Config(format!("consul registry: {e}")))?;
    if !addresses.is_empty() {
        opts = opts.addresses(addresses.iter().cloned());
    }
    let r = opts
        .build()
        .map_err(|e| Error::Config(format!("consul registry: {e}")))?;
    Ok(Arc::new(r))
}

#[cfg(not(feature = "consul"))]
fn consul(_addresses: &[String]) -> Result<Arc<dyn Registry>, Error> {
    Err(Error::Config(
        "registry consul needs micro's `consul` feature".into(),
    ))
}
