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
//!
//! # Cargo features
//!
//! Every plugin that talks to a server is a feature of its own, off by default, so
//! a program that uses only the built-in components compiles none of their code:
//!
//! | feature | what it adds | build needs |
//! |---|---|---|
//! | `etcd` | [`etcd`]: the etcd registry (`MICRO_REGISTRY=etcd`) | `protoc` and Google's well-known `.proto` files (Debian `protobuf-compiler`, `libprotobuf-dev`) |
//! | `consul` | [`consul`]: the Consul registry (`MICRO_REGISTRY=consul`) | nothing |
//! | `tls` | [`tls`]: TLS and mutual TLS for the transport, the HTTP broker and the client (`MICRO_TLS_*`) | nothing |

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod client;
pub mod codec;
pub mod config;
mod context;
mod describe;
mod error;
pub mod errors;
pub mod middleware;
mod plugins;
pub mod prelude;
pub mod server;
mod service;
mod wire;

pub use context::{Context, Metadata};
pub use error::Error;
pub use errors::RpcError;
pub use server::Handler;
pub use service::{Hook, Service, ServiceBuilder};

pub use micro_broker as broker;
pub use micro_registry as registry;
pub use micro_selector as selector;
pub use micro_transport as transport;

/// The etcd registry plugin ([`EtcdRegistry`](micro_etcd::EtcdRegistry)), with the
/// `etcd` feature.
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub use micro_etcd as etcd;

/// The Consul registry plugin ([`ConsulRegistry`](micro_consul::ConsulRegistry)),
/// with the `consul` feature.
#[cfg(feature = "consul")]
#[cfg_attr(docsrs, doc(cfg(feature = "consul")))]
pub use micro_consul as consul;

/// TLS options, configurations and peer identities (crate `micro-tls`), with the
/// `tls` feature: see [`ServiceBuilder::tls`].
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use micro_tls as tls;

/// The README's examples, compiled as doc tests. Its TLS examples need the `tls`
/// feature, so the README is checked with it (`cargo test -p micro --features tls`,
/// and every `--all-features` run).
#[doc = include_str!("../../README.md")]
#[cfg(all(doctest, feature = "tls"))]
pub struct ReadmeDoctests;
