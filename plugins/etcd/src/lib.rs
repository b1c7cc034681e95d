//! An etcd registry for micro that reads and writes exactly what go-micro's etcd
//! registry does, so Rust and Go services discover each other through one etcd,
//! and that survives the etcd failures go-micro does not.
//!
//! # Layout (go-micro's)
//!
//! * One key per node: `/micro/registry/<service>/<node-id>`, every `/` in the
//!   service name and the node id replaced by `-`.
//! * The value is the service's JSON (the `micro-registry` model, byte-compatible
//!   with go-micro) holding exactly that node: name, version, service metadata,
//!   all endpoints, `nodes: [node]`.
//! * With a TTL the key is attached to a lease whose TTL is the register TTL in
//!   whole seconds, **rounded up** (go-micro truncates; rounding up never makes a
//!   record live shorter than asked). etcd raises TTLs below its minimum (2 s with
//!   default election settings) by itself, so a 1 s TTL lives 2 s. Without a TTL
//!   (or with a zero one) there is no lease. go-micro grants a lease per node;
//!   here the keys of one registry that share a TTL share a lease (see below).
//!   Readers cannot tell the difference.
//! * [`get_service`](micro_registry::Registry::get_service) reads
//!   `/micro/registry/<service>/` (the trailing slash keeps `foo` from matching
//!   `foobar`) and groups records by version: the first record of a version gives
//!   name, metadata and endpoints, the nodes of all its records are concatenated;
//!   no record means [`Error::NotFound`](micro_registry::Error::NotFound).
//!   [`list_services`](micro_registry::Registry::list_services) groups everything by
//!   name and version, sorted. Reads are serializable (any member answers), as in
//!   go-micro.
//! * Records that do not decode (not JSON, not UTF-8, not a service) or hold no node
//!   are skipped everywhere (reads and watches) with a `tracing` warning naming the
//!   key. Records whose service name differs from the one asked for (`a/b` and
//!   `a-b` share a prefix) are skipped too.
//!
//! # Registration and leases
//!
//! The server calls `register` every interval (30 s by default). Like go-zero,
//! and unlike go-micro, a registry keeps **one lease per TTL** for all the keys it
//! registered with that TTL (up to 8 192 keys per lease; more open another), so a
//! process holding many nodes costs etcd one renewal per third of the TTL, not one
//! per node:
//!
//! * The first key of a TTL grants the lease; every later key is written on it.
//! * Later calls for an unchanged record make **no write**, only a check: on a
//!   lease of up to 4 keys (a process with one node, the usual case) one
//!   serializable read of the key, which any member answers; on a larger lease a
//!   look-up in the lease's key list (one `LeaseTimeToLive` request with keys,
//!   answered by the leader, shared by every call of that lease within one
//!   second). A record that is missing, differs or sits on another lease
//!   (deleted or overwritten by hand) is written again by the first call after
//!   the check that saw it; a changed record is written at once. Registration
//!   never gives up: each call tries again.
//! * One keeper task per lease renews it over **one long-lived keepalive
//!   stream** (a renewal every third of the TTL; the stream is replaced only when
//!   the lease changes or the stream breaks), so repeated `register` calls cost no
//!   lease traffic. When etcd answers a renewal with TTL 0 or "lease not found"
//!   (lease expired, revoked, etcd lost its data), the keeper grants a new lease
//!   and writes **every** key of the old one on it at once (64 per transaction),
//!   without waiting for the next `register`. When the stream breaks (etcd
//!   restarting, a member down) it reopens it with jittered backoff (200 ms up to
//!   a third of the TTL, at most 2 s), so a lease that survived the outage is
//!   renewed in time.
//! * `deregister` deletes the key and takes it off its lease; the last key of a
//!   lease **revokes** it and stops its keeper. A key whose delete failed (etcd
//!   unreachable) would live on with the shared lease, so the keeper deletes it
//!   (only if it is still on that lease) after its next successful renewal. Local
//!   state is kept per registered node and per lease, nothing else, so it stays
//!   bounded.
//! * Dropping the last clone of the registry (or [`EtcdRegistry::shutdown`]) stops
//!   every keeper; records then expire with their leases, which is what a crashed
//!   process leaves behind too.
//!
//! # Watching
//!
//! A watcher lists its prefix when it starts (so `watch` fails with a clear error
//! when etcd cannot be reached) and follows it from the listed revision on, with
//! previous values:
//!
//! * **every** event of every watch response is delivered (go-micro keeps only the
//!   first of a batch): a put that creates a record is `Create`, one that changes it
//!   `Update`, a delete (including lease expiry) `Delete` with the previous record;
//!   a record whose version or node id changed is a `Delete` of the old one then a
//!   `Create` of the new one.
//! * A watcher keeps a digest of each record and its name, version and node ids,
//!   not the whole record: a `Delete` carries the whole previous record when etcd
//!   sends it (every delete seen by the watch), and name, version and node ids
//!   only for a record that vanished during an interruption or that changed
//!   version or node id (what a reader needs to drop those nodes).
//! * Every watcher of a registry shares one etcd watch stream (etcd carries many
//!   watches on one stream, as its Go client does); each watch has its own id,
//!   and dropping a watcher cancels its watch. When the stream breaks, every
//!   watcher re-lists as below and watches again on a new one.
//! * The watcher keeps the set of records it knows. After **any** interruption (the
//!   stream fails or closes, etcd restarts with or without its data, the watch is
//!   cancelled because its revision was compacted) it re-lists the prefix, emits the
//!   difference (`Delete` for records that vanished, `Create`/`Update` for new or
//!   changed ones) and watches again from the new listing. A reader such as the
//!   registry cache therefore never keeps a node deleted meanwhile, and nothing is
//!   lost for good.
//! * While etcd is unreachable the watcher retries with jittered backoff (100 ms up
//!   to 2 s) for as long as it lives; `next` simply waits (a warning is logged when
//!   an outage starts). A cache on top serves its last node set meanwhile.
//! * A slow reader never holds etcd's stream up (unread watch data would take
//!   HTTP/2 flow-control credit from the registry's other calls on the same
//!   connection): events wait in a buffer (256 by default); a response that does
//!   not fit pauses the etcd watch at the last revision delivered, and once the
//!   reader has caught up the watch resumes from there, etcd replaying the rest
//!   from its history, so every event still arrives, once and in order. If the
//!   history was compacted meanwhile, etcd cancels the watch and the watcher
//!   re-lists as above.
//! * Dropping or stopping the watcher ends its task.
//!
//! # Connection
//!
//! The connection is made on first use: building the registry never fails because
//! etcd is down; calls then fail with [`Error::Backend`](micro_registry::Error::Backend)
//! or [`Error::Timeout`](micro_registry::Error::Timeout) (every operation is bounded
//! by the [timeout](EtcdOptions::timeout), 5 s by default). Several endpoints
//! are balanced. Requests need a member that has a leader, so a member cut off
//! from its cluster fails them (and ends its watches, which re-list elsewhere)
//! instead of answering with stale data or going quiet; an attempt that cannot
//! reach a member, or reaches one without a leader, is retried on another within
//! the timeout.
//! Responses of any size are accepted (gRPC's usual 4 MiB limit would break
//! listing a large registry). User and password, and TLS that
//! always verifies the server against a given CA, are in [`EtcdOptions`].
//!
//! # Example
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> micro_registry::Result<()> {
//! use std::time::Duration;
//! use micro_etcd::EtcdRegistry;
//! use micro_registry::{Node, RegisterOptions, Registry, ServiceRecord, WatchOptions};
//!
//! let registry = EtcdRegistry::builder()
//!     .endpoints(["127.0.0.1:2379"])
//!     .timeout(Duration::from_secs(2))
//!     .build()?;
//! let svc = ServiceRecord {
//!     name: "greeter".into(),
//!     version: "latest".into(),
//!     nodes: vec![Node::new("greeter-1", "127.0.0.1:9000")],
//!     ..Default::default()
//! };
//! let mut watcher = registry.watch(&WatchOptions::service("greeter")).await?;
//! registry.register(&svc, &RegisterOptions::ttl(Duration::from_secs(90))).await?;
//! let event = watcher.next().await?;
//! assert_eq!(event.service.nodes[0].id, "greeter-1");
//! assert_eq!(registry.get_service("greeter").await?[0].nodes.len(), 1);
//! registry.deregister(&svc).await?;
//! # Ok(()) }
//! ```
//!
//! Building needs no etcd:
//!
//! ```
//! use micro_etcd::EtcdRegistry;
//! use micro_registry::Registry;
//!
//! let registry = EtcdRegistry::builder().endpoints(["127.0.0.1:1"]).build().unwrap();
//! assert_eq!(registry.name(), "etcd");
//! assert_eq!(registry.stats().keepalive_streams, 0);
//! ```

mod conn;
mod keepalive;
mod lease;
mod mux;
mod options;
mod records;
mod register;
mod registry;
mod watch;

pub use options::{
    DEFAULT_ENDPOINT, DEFAULT_PORT, DEFAULT_PREFIX, DEFAULT_TIMEOUT, DEFAULT_WATCH_BUFFER,
    EtcdOptions, TlsConfig,
};
pub use registry::{EtcdRegistry, Stats};
