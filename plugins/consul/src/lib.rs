//! A Consul registry for micro that behaves like go-micro's on the wire: Go and
//! Rust services registered in one Consul find each other.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use micro_consul::ConsulRegistry;
//! use micro_registry::{Node, RegisterOptions, Registry, ServiceRecord};
//!
//! let registry = ConsulRegistry::builder().address("127.0.0.1:8500").build()?;
//! let svc = ServiceRecord {
//!     name: "greeter".into(),
//!     version: "latest".into(),
//!     nodes: vec![Node::new("greeter-1", "127.0.0.1:9000")],
//!     ..Default::default()
//! };
//! registry.register(&svc, &RegisterOptions::ttl(Duration::from_secs(90))).await?;
//! let found = registry.get_service("greeter").await?;
//! assert_eq!(found[0].nodes[0].address, "127.0.0.1:9000");
//! registry.deregister(&svc).await?;
//! # Ok(()) }
//! ```
//!
//! # What is written
//!
//! Each node is one service registration on the Consul agent
//! (`PUT /v1/agent/service/register`), as go-micro writes it: `ID` = node id,
//! `Name` = service name, `Address`/`Port` from the node address, `Tags` carrying
//! node metadata, endpoints and version in go-micro's encoding (see [`tags`]),
//! `Meta` = node metadata. Consul restricts `Meta` (keys of `[A-Za-z0-9_-]`, at most
//! 128 characters, not starting with `consul-`; values of at most 512 bytes; at most
//! 64 pairs) and refuses a whole registration that breaks a rule, so pairs that
//! break one are left out of `Meta` (logged at debug level); they still travel in
//! the tags, which is where go-micro and this crate read metadata from.
//! Service-level metadata is not stored (as in go-micro).
//!
//! The check is chosen as go-micro chooses it: a TCP check if
//! [`ConsulOptions::tcp_check`] is set, else an HTTP check if
//! [`ConsulOptions::http_check`] is set, else a TTL check when the registration has
//! a TTL, else none. Consul deregisters a node whose check stayed critical for the
//! check's period (at least one minute, Consul's minimum) plus 5 s.
//!
//! # Renewal
//!
//! Registering an unchanged node again renews it: the TTL check is passed
//! (`PUT /v1/agent/check/pass/service:<id>`), or without a TTL the agent is asked
//! whether it still has the node. When the agent refuses that (an agent restarted
//! in dev mode forgets everything) or the node changed, the full registration is
//! sent again. A renewal that gets no answer (a timeout, an agent that cannot be
//! reached) fails as it is, for the caller to retry: a full registration is
//! heavier for the agent, and an agent that does not answer is usually one that
//! is already overloaded.
//! Unlike go-micro, which remembers one state per service *name*, the state is kept
//! per node id, so several nodes of one service in one process renew correctly.
//!
//! By default ([`ConsulOptions::heartbeat`]) a task per node with a TTL check also
//! passes the check when nobody did for half the TTL and registers the node again
//! if the agent lost it (a pass without answer is passed again, after a pause
//! doubling from 100 ms up to the interval), so a node stays healthy even when its owner registers
//! less often than the TTL needs. An owner that registers often enough (a server:
//! every 30 s with a 90 s TTL) keeps the heartbeat silent, so each node costs the
//! agent one check update per register interval. [`deregister`](micro_registry::Registry::deregister) stops
//! that task (waiting for it) before it deregisters; [`ConsulRegistry::close`] stops
//! them all; dropping the last clone of the registry aborts them.
//!
//! # What is read
//!
//! [`get_service`](micro_registry::Registry::get_service) reads
//! `/v1/health/service/<name>` (from any server when
//! [`ConsulOptions::allow_stale`] is on, the default) and groups the instances by
//! version like go-micro: endpoints from the first instance of each version, node
//! metadata from the tags, address = the service address or else the Consul node's
//! address. A node with **any** critical check (its own, or a node-level check such
//! as `serfHealth`, or maintenance mode) is left out; warning and passing nodes are
//! kept. No node at all is [`Error::NotFound`](micro_registry::Error::NotFound)
//! (go-micro returns an empty list).
//!
//! [`list_services`](micro_registry::Registry::list_services) reads
//! `/v1/catalog/services` and returns one entry per name and version, the versions
//! decoded from the catalog's tags, without nodes (go-micro returns names only).
//! The agent's own `consul` service is listed like any other.
//!
//! # Watching
//!
//! Watches use Consul's blocking queries (`?index=N&wait=W`, the request timeout
//! stretched by the wait). A watch of one service blocks on
//! `/v1/health/service/<name>`. A watch of all services (which go-micro refuses)
//! blocks on two queries whatever the number of services, `/v1/catalog/services`
//! and `/v1/health/state/any`, and reads again the services a change points at, so
//! it costs two long-lived requests rather than one per service (Consul limits the
//! connections per client, 200 by default). A change neither query pins to a service
//! (an instance without checks, a new port with the same tags and checks) is found by
//! reading every service again, at most once per
//! [`ConsulOptions::watch_full_read_interval`] (1 s) and a tenth of the watch's time;
//! the restart of a node with a check is pinned, and costs a read of its service. It
//! reports the agent's own `consul` service like any other.
//!
//! Each answer is compared with the previous one and turned into per-node events,
//! like the other registries: `Create`, `Update`, `Delete`, a node that turned
//! critical counting as deleted. Indexes follow Consul's rules (an index that goes
//! backwards starts over, 0 is never sent as a blocking index); queries of one watch
//! start at least [`ConsulOptions::watch_min_interval`] apart; failures are retried
//! after 100 ms doubling to 10 s, with jitter, and nothing is lost meanwhile since
//! the next answer is compared with the last one delivered. The watch task belongs
//! to the watcher and ends when it is stopped or dropped.
//!
//! # Errors
//!
//! Failures are [`micro_registry::Error::Backend`] with an [`Error`] as source, or
//! [`micro_registry::Error::Timeout`]. A token Consul's ACLs refuse is
//! [`Error::PermissionDenied`], whose message says so.
//!
//! # HTTP and TLS: why not `rs-consul`
//!
//! Calls go through one pooled `reqwest` client, which keeps at most two idle
//! connections to the agent: hyper's read buffer grows to the largest answer a
//! connection has read (tens of KB for a service's health) and stays, so every
//! idle connection kept costs that much; more concurrent calls open more
//! connections, closed after use, and at most [`ConsulOptions::max_requests`]
//! (32 by default) are in flight at once: the agent refuses a client address
//! more than 200 connections by default, and a process renewing thousands of
//! nodes against a slow agent would otherwise open one per renewal waiting.
//! Each stream of blocking queries (a watched
//! service, or the two queries of a watch of everything) owns a connection of
//! its own instead, written and read with `micro_transport::http::wire`, which
//! keeps no buffer between answers: a waiting watch costs its socket, its task
//! and the nodes it knows, about 0.9 KB per node of a ten-node service where a
//! pooled connection cost 8 KB (docs/scale.md). It connects with the same
//! address failover, token and TLS settings. The `rs-consul` crate was
//! considered and not used for any call: it has no agent API (service register,
//! deregister, TTL pass are what a registry does most), its health answers drop
//! each instance's checks (so the "any critical check" rule cannot be applied
//! without `passing=true`, which would also drop warning nodes), its 5 s default
//! timeout cuts blocking queries short, it opens a new connection per request, and
//! it brings a second HTTP and TLS stack (hyper-rustls with ring, plus ureq).
//!
//! TLS is rustls with the ring provider, configured here: certificates are verified
//! against the system's roots or [`ConsulOptions::ca_file`], client certificates are
//! supported, and verification is only skipped when
//! [`ConsulOptions::insecure_skip_verify`] says so (go-micro v4 skips it by
//! default).

mod api;
mod client;
mod convert;
mod error;
mod health;
mod heartbeat;
mod options;
mod registry;
pub mod tags;
mod tls;
mod watch;

pub use error::Error;
pub use options::{ConsulOptions, DEFAULT_ADDRESS, DEFAULT_MAX_REQUESTS, HttpCheck};
pub use registry::ConsulRegistry;
