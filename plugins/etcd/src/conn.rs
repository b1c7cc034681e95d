//! The lazy etcd connection and the operations the registry uses, each bounded by
//! the operation timeout and mapped to registry errors.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions,
    GetResponse, Identity, LeaseGrantResponse, LeaseKeepAliveStream, LeaseKeeper,
    LeaseTimeToLiveOptions, PutOptions, TlsOptions, Txn, TxnOp, WatchOptions, WatchStream,
};
use micro_registry::{Error, Result};
use tokio::sync::OnceCell;

use crate::EtcdOptions;
use crate::mux::{Mux, MuxWatch};

/// The registry's short name, used in errors and node metadata.
pub(crate) const NAME: &str = "etcd";

/// HTTP/2 pings on idle connections, so a silently dead peer is noticed. etcd
/// refuses pings more often than every 5 s.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// The largest response accepted, as etcd's Go client (gRPC's default of 4 MiB
/// is too small for listing a large registry).
const MAX_RECV: usize = i32::MAX as usize;

/// Puts per transaction when many keys are written at once (etcd's default
/// limit is 128 operations per transaction).
pub(crate) const WRITE_BATCH: usize = 64;

/// Pause between two attempts of one operation (jittered ±50 %).
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// One etcd client, made on first use and shared by every operation.
pub(crate) struct Conn {
    endpoints: Vec<String>,
    connect: ConnectOptions,
    timeout: Duration,
    dial_timeout: Duration,
    client: OnceCell<Client>,
    /// The shared watch stream's task, once a watch was asked for.
    mux: OnceLock<Mux>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("endpoints", &self.endpoints)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Checks the options and prepares the connection; sends nothing.
    pub(crate) fn new(opts: &EtcdOptions) -> Result<Self> {
        let endpoints = opts.normalized_endpoints()?;
        let dial_timeout = opts.effective_dial_timeout();
        // Requiring a leader makes a member cut off from the cluster fail requests
        // and end watches (which then re-list elsewhere) instead of going quiet.
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(dial_timeout)
            .with_keep_alive(PING_INTERVAL, opts.timeout)
            .with_require_leader(true);
        if let Some((user, pass)) = &opts.auth {
            connect = connect
                .with_user(user.clone(), pass.clone())
                .with_auto_token_refresh(true);
        }
        let https = endpoints
            .iter()
            .filter(|e| e.starts_with("https://"))
            .count();
        match &opts.tls {
            Some(tls) => {
                if https != endpoints.len() {
                    return Err(Error::Invalid(
                        "etcd: with TLS every endpoint must be https".into(),
                    ));
                }
                connect = connect.with_tls(tls_options(tls)?);
            }
            None if https > 0 => {
                return Err(Error::Invalid(
                    "etcd: https endpoints need a TLS config with the CA to trust".into(),
                ));
            }
            None => {}
        }
        Ok(Conn {
            endpoints,
            connect,
            timeout: opts.timeout,
            dial_timeout,
            client: OnceCell::new(),
            mux: OnceLock::new(),
        })
    }

    /// The per-operation time limit.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The client, connecting (and authenticating) first if needed.
    async fn client(&self, op: &'static str) -> Result<Client> {
        let init = self.client.get_or_try_init(|| async {
            Client::connect(&self.endpoints, Some(self.connect.clone()))
                .await
                .map_err(|e| Error::backend(NAME, op, e))
        });
        match tokio::time::timeout(self.dial_timeout, init).await {
            Ok(res) => res.cloned(),
            Err(_) => Err(Error::Timeout { registry: NAME, op }),
        }
    }

    /// Runs one operation within the timeout. Attempts that fail to reach a
    /// member (a dead member of several: the balancer may still pick it) or reach
    /// one without a leader are retried on another pick while time is left; the
    /// operations are idempotent or harmless to repeat.
    async fn run<T, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let client = self.client(op).await?;
        let attempts = self.endpoints.len() * 2;
        let work = async {
            let mut attempt = 1;
            loop {
                match f(client.clone()).await {
                    Err(e) if attempt < attempts && retryable(&e) => {
                        tracing::debug!(op, attempt, error = %e, "etcd registry: retrying on another member");
                        attempt += 1;
                        let pause = RETRY_PAUSE.mul_f64(0.5 + fastrand::f64());
                        tokio::time::sleep(pause).await;
                    }
                    res => return res,
                }
            }
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::backend(NAME, op, e)),
            Err(_) => Err(Error::Timeout { registry: NAME, op }),
        }
    }

    /// Reads `key`, or every key under it when `prefix`; serializable (served by
    /// any member, as go-micro reads).
    pub(crate) async fn get(
        &self,
        op: &'static str,
        key: &str,
        prefix: bool,
    ) -> Result<GetResponse> {
        let mut o = GetOptions::new().with_serializable();
        if prefix {
            o = o.with_prefix();
        }
        self.run(op, |c| {
            let (key, o) = (key.to_owned(), o.clone());
            async move {
                c.kv_client()
                    .max_decoding_message_size(MAX_RECV)
                    .get(key, Some(o))
                    .await
            }
        })
        .await
    }

    /// Writes `key`, attached to `lease` unless it is 0.
    pub(crate) async fn put(
        &self,
        op: &'static str,
        key: &str,
        value: &[u8],
        lease: i64,
    ) -> Result<()> {
        let o = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        self.run(op, |mut c| {
            let (key, value, o) = (key.to_owned(), value.to_vec(), o.clone());
            async move { c.put(key, value, o).await }
        })
        .await
        .map(drop)
    }

    /// Deletes `key`; returns how many keys went.
    pub(crate) async fn delete(&self, op: &'static str, key: &str) -> Result<i64> {
        self.run(op, |mut c| {
            let key = key.to_owned();
            async move { c.delete(key, None::<DeleteOptions>).await }
        })
        .await
        .map(|r| r.deleted())
    }

    /// Writes every `(key, value)` on `lease`, in transactions of at most
    /// [`WRITE_BATCH`] puts (etcd refuses more than 128 operations in one).
    pub(crate) async fn put_all(
        &self,
        op: &'static str,
        kvs: &[(String, Arc<[u8]>)],
        lease: i64,
    ) -> Result<()> {
        for chunk in kvs.chunks(WRITE_BATCH) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|(k, v)| {
                    TxnOp::put(
                        k.as_str(),
                        v.to_vec(),
                        Some(PutOptions::new().with_lease(lease)),
                    )
                })
                .collect();
            self.run(op, |mut c| {
                let ops = ops.clone();
                async move { c.txn(Txn::new().and_then(ops)).await }
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes `key` only while it is attached to `lease` (so a newer
    /// registration of the same key by someone else is left alone).
    pub(crate) async fn delete_on_lease(
        &self,
        op: &'static str,
        key: &str,
        lease: i64,
    ) -> Result<()> {
        self.run(op, |mut c| {
            let txn = Txn::new()
                .when([Compare::lease(key, CompareOp::Equal, lease)])
                .and_then([TxnOp::delete(key, None)]);
            async move { c.txn(txn).await }
        })
        .await
        .map(drop)
    }

    /// The keys attached to `lease`, or `None` when etcd does not know the lease
    /// (expired, revoked, or lost with etcd's data).
    pub(crate) async fn lease_keys(
        &self,
        op: &'static str,
        lease: i64,
    ) -> Result<Option<HashSet<Vec<u8>>>> {
        let res = self
            .run(op, |mut c| async move {
                c.lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
                    .await
            })
            .await;
        match res {
            // etcd answers TTL -1 for a lease it does not know.
            Ok(r) if r.ttl() < 0 => Ok(None),
            Ok(r) => Ok(Some(r.keys().iter().cloned().collect())),
            Err(e) if lease_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Grants a lease of `ttl` seconds; returns its id and the TTL etcd granted.
    /// (A grant repeated after a lost answer leaves an unused lease that expires.)
    pub(crate) async fn grant(&self, op: &'static str, ttl: i64) -> Result<(i64, i64)> {
        let resp: LeaseGrantResponse = self
            .run(op, |mut c| async move { c.lease_grant(ttl, None).await })
            .await?;
        Ok((resp.id(), resp.ttl()))
    }

    /// Revokes a lease, deleting the keys attached to it.
    pub(crate) async fn revoke(&self, op: &'static str, lease: i64) -> Result<()> {
        self.run(op, |mut c| async move { c.lease_revoke(lease).await })
            .await
            .map(drop)
    }

    /// A watch of `key` on the connection's shared watch stream (see
    /// [`crate::mux`]), started on first use.
    pub(crate) fn watch(self: &Arc<Self>, key: &str, o: WatchOptions) -> MuxWatch {
        let mux = self.mux.get_or_init(|| Mux::start(Arc::downgrade(self)));
        mux.watch(key, o)
    }

    /// Opens a watch stream whose first watch is `key`.
    pub(crate) async fn open_watch(&self, key: &str, o: WatchOptions) -> Result<WatchStream> {
        self.run("watch", |c| {
            let (key, o) = (key.to_owned(), o.clone());
            async move {
                c.watch_client()
                    .max_decoding_message_size(MAX_RECV)
                    .watch(key, Some(o))
                    .await
            }
        })
        .await
    }

    /// Opens a keepalive stream for `lease`; the first renewal is already done.
    pub(crate) async fn keep_alive(
        &self,
        lease: i64,
    ) -> Result<(LeaseKeeper, LeaseKeepAliveStream)> {
        self.run("keepalive", |mut c| async move {
            c.lease_keep_alive(lease).await
        })
        .await
    }
}

/// Whether `err` says the lease does not exist (expired, revoked, or etcd lost its
/// data).
pub(crate) fn lease_not_found(err: &Error) -> bool {
    let Error::Backend { source, .. } = err else {
        return false;
    };
    match source.downcast_ref::<etcd_client::Error>() {
        Some(e) => etcd_lease_not_found(e),
        None => false,
    }
}

/// Whether an attempt may succeed on another member: the member could not be
/// reached, or has no leader right now.
fn retryable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.code() == tonic::Code::Unavailable,
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

pub(crate) fn etcd_lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.message().contains("lease not found"),
        etcd_client::Error::LeaseKeepAliveError(m) => m.contains("lease not found"),
        _ => false,
    }
}

fn tls_options(tls: &crate::TlsConfig) -> Result<TlsOptions> {
    if tls.ca.is_empty() {
        return Err(Error::Invalid(
            "etcd tls: a CA certificate is required (ca_pem or ca_file)".into(),
        ));
    }
    let mut cas = Vec::new();
    for src in &tls.ca {
        cas.push(Certificate::from_pem(src.load("ca")?));
    }
    let mut o = TlsOptions::new().ca_certificates(cas);
    if let Some((cert, key)) = &tls.identity {
        o = o.identity(Identity::from_pem(cert.load("cert")?, key.load("key")?));
    }
    if let Some(d) = &tls.domain {
        o = o.domain_name(d.clone());
    }
    Ok(o)
}
