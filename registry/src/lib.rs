//! Service discovery for micro: the registry model, the [`Registry`] trait, an
//! in-memory registry and the registry [`Cache`].
//!
//! * [`ServiceRecord`], [`Node`], [`Endpoint`] and [`Value`] read and write go-micro's
//!   registry JSON exactly, so records written by Go services and by ours are
//!   interchangeable (see [`model`]).
//! * [`Registry`] is the object-safe trait every registry implements (memory here;
//!   etcd and Consul in the `micro-etcd` and `micro-consul` crates); [`Watcher`]
//!   streams its change [`Event`]s.
//! * [`MemoryRegistry`] keeps everything in process, with exact TTL expiry and
//!   per-node events.
//! * [`Cache`] sits between a registry and its readers (selectors, brokers): fast
//!   shared snapshots, single-flight lookups, watch-driven updates, stale data when
//!   the registry fails, and protection against transient empty answers.
//!
//! This crate depends on no other micro crate.

pub mod addr;
pub mod cache;
mod error;
pub mod memory;
pub mod model;
mod registry;
#[cfg(feature = "testing")]
pub mod testing;

pub use cache::{Cache, CacheOptions, NodeRef, Snapshot};
pub use error::{BoxError, Error, Result};
pub use memory::MemoryRegistry;
pub use model::{Endpoint, MetadataMap, Node, ServiceRecord, Value};
pub use registry::{Action, RegisterOptions, Registry, WatchEvent, WatchOptions, Watcher};
