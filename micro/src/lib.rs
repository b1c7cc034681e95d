//! micro: microservices the go-micro way, in Rust.
//!
//! A service is put together from pluggable components, each chosen when the
//! service is built, and it speaks go-micro's wire protocol, so Rust and Go services
//! share one registry, call each other and exchange events.
//!
//! | component | trait | default | others |
//! |---|---|---|---|
//! | registry | [`Registry`](registry::Registry) | [`MemoryRegistry`](registry::MemoryRegistry) | etcd, Consul (features `etcd`, `consul`) |
//! | selector | [`Selector`](selector::Selector) | [`RegistrySelector`](selector::RegistrySelector), random | round robin, filters |
//! | transport | [`Transport`](transport::Transport) | [`HttpTransport`](transport::HttpTransport) | [`MemoryTransport`](transport::MemoryTransport) |
//! | broker | [`Broker`](broker::Broker) | [`HttpBroker`](broker::HttpBroker) | [`MemoryBroker`](broker::MemoryBroker) |
//! | codec | [`Codec`](codec::Codec) | JSON | bytes, protobuf, your own |
//! | server | [`Server`](server::Server) | [`RpcServer`](server::RpcServer) | |
//! | client | [`Client`](client::Client) | [`RpcClient`](client::RpcClient) | wrappers |
//!
//! See [`Service`] for the builder that puts them together.

pub mod client;
pub mod codec;
pub mod config;
mod context;
pub mod describe;
mod error;
pub mod errors;
mod plugins;
pub mod server;
mod service;
mod wire;

pub use client::ClientExt;
pub use context::{Context, Metadata};
pub use error::Error;
pub use errors::RpcError;
pub use server::Handler;
pub use service::{Hook, Service, ServiceBuilder};

pub use micro_broker as broker;
pub use micro_registry as registry;
pub use micro_selector as selector;
pub use micro_transport as transport;

/// The README's example, compiled as a doc test.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
