//! Binding (with go-micro's port ranges) and accepting.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::TcpListener;

use super::HttpTransportOptions;
use super::server::ServerSocket;
use crate::{Error, Listener, Result, Socket};

/// First pause after an accept failure for lack of resources; doubles up to the max.
/// The pause after accept failures that wait for resources (file descriptors,
/// memory): 5 ms doubling to 1 s.
const ACCEPT_BACKOFF: micro_util::Backoff =
    micro_util::Backoff::new(Duration::from_millis(5), Duration::from_secs(1));

/// The answer to a connection over the limit: it is closed right after.
const OVER_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 33\r\nConnection: close\r\n\r\ntoo many connections to this node";
/// Most TLS handshakes in progress at once; further connections wait in the
/// kernel's accept queue.
#[cfg(feature = "tls")]
const MAX_HANDSHAKES: usize = 1024;

/// A bound HTTP transport listener.
#[derive(Debug)]
pub(crate) struct HttpListener {
    inner: TcpListener,
    addr: String,
    opts: HttpTransportOptions,
    /// Connections accepted and not closed yet.
    open: Arc<AtomicUsize>,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
}

/// One open connection, counted until it is dropped.
#[derive(Debug)]
pub(crate) struct ConnSlot(Arc<AtomicUsize>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The TLS side of a listener: the configuration, and the handshakes in progress.
/// They run as tasks of the listener (so a slow client never holds up the others)
/// and are aborted when it is dropped.
#[cfg(feature = "tls")]
#[derive(Debug)]
struct Tls {
    config: std::sync::Arc<micro_tls::ServerTls>,
    handshakes: tokio::sync::Mutex<tokio::task::JoinSet<Result<ServerSocket>>>,
}

impl HttpListener {
    /// Binds `host:port` or `host:min-max`.
    pub(crate) async fn bind(addr: &str, opts: HttpTransportOptions) -> Result<Self> {
        let (host, ports) = split_host_port(addr)?;
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let invalid = |reason| Error::InvalidAddress {
            addr: addr.to_owned(),
            reason,
        };
        let parse = |p: &str| p.parse::<u16>().map_err(|_| invalid("invalid port"));
        let (min, max) = match ports.split_once('-') {
            Some((min, max)) => (parse(min)?, parse(max)?),
            None => (parse(ports)?, parse(ports)?),
        };
        if min > max {
            return Err(invalid("empty port range"));
        }
        let mut last = None;
        for port in min..=max {
            match TcpListener::bind((host, port)).await {
                Ok(inner) => return Self::new(inner, opts, addr),
                Err(e) => last = Some(e),
            }
        }
        let source = last.unwrap_or_else(|| io::ErrorKind::AddrNotAvailable.into());
        Err(Error::Listen {
            addr: addr.to_owned(),
            source,
        })
    }

    /// Takes over a bound std listener.
    pub(crate) fn from_std(
        listener: std::net::TcpListener,
        opts: HttpTransportOptions,
    ) -> Result<Self> {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let listen_err = |source| Error::Listen {
            addr: addr.clone(),
            source,
        };
        if tokio::runtime::Handle::try_current().is_err() {
            let source = io::Error::other("not called from within a tokio runtime");
            return Err(listen_err(source));
        }
        listener.set_nonblocking(true).map_err(listen_err)?;
        let inner = TcpListener::from_std(listener).map_err(listen_err)?;
        Self::new(inner, opts, &addr)
    }

    fn new(inner: TcpListener, opts: HttpTransportOptions, asked: &str) -> Result<Self> {
        let addr = inner
            .local_addr()
            .map_err(|source| Error::Listen {
                addr: asked.to_owned(),
                source,
            })?
            .to_string();
        Ok(Self {
            inner,
            addr,
            opts,
            open: Arc::new(AtomicUsize::new(0)),
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    #[cfg(feature = "tls")]
    pub(crate) fn addr_str(&self) -> &str {
        &self.addr
    }

    /// Serves TLS with `config` on every accepted connection.
    #[cfg(feature = "tls")]
    pub(crate) fn with_tls(mut self, config: micro_tls::ServerTls) -> Self {
        self.tls = Some(Tls {
            config: std::sync::Arc::new(config),
            handshakes: Default::default(),
        });
        self
    }

    /// Accepts TCP connections and hands them to handshake tasks; returns the
    /// first connection whose handshake succeeds. Failed handshakes are logged.
    #[cfg(feature = "tls")]
    async fn accept_tls(&self, tls: &Tls) -> Result<Box<dyn Socket>> {
        let mut handshakes = tls.handshakes.lock().await;
        let timeout = self
            .opts
            .limits
            .header_read_timeout
            .unwrap_or(Duration::from_secs(10));
        let mut failures: u32 = 0;
        loop {
            tokio::select! {
                accepted = self.inner.accept(), if handshakes.len() < MAX_HANDSHAKES => {
                    match accepted {
                        Ok((stream, peer)) => {
                            failures = 0;
                            let Some(slot) = self.slot() else {
                                // Over the limit: closed before the handshake.
                                tracing::debug!(%peer, limit = self.opts.limits.max_connections, "connection limit reached; closing");
                                continue;
                            };
                            handshakes.spawn(super::tls::accept(stream, tls.config.clone(), self.opts, timeout, slot));
                        }
                        Err(e) => self.accept_failed(e, &mut failures).await?,
                    }
                }
                Some(done) = handshakes.join_next(), if !handshakes.is_empty() => match done {
                    Ok(Ok(socket)) => return Ok(Box::new(socket)),
                    Ok(Err(e)) => tracing::debug!(addr = %self.addr, error = %e, "tls handshake failed"),
                    Err(e) => tracing::debug!(addr = %self.addr, error = %e, "tls handshake task ended"),
                },
            }
        }
    }

    /// A place for one more connection, unless the listener holds its limit.
    fn slot(&self) -> Option<ConnSlot> {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = ConnSlot(self.open.clone());
        (open <= self.opts.limits.max_connections).then_some(slot)
    }

    /// Handles an accept failure: `Err` when the listener itself failed, else a
    /// pause when resources ran out.
    async fn accept_failed(&self, e: io::Error, failures: &mut u32) -> Result<()> {
        if is_per_connection(&e) {
            tracing::debug!(error = %e, "accept failed for one connection");
            return Ok(());
        }
        if e.kind() == io::ErrorKind::InvalidInput {
            // EINVAL: the socket is not listening any more
            return Err(Error::Io(e));
        }
        // EMFILE, ENFILE, ENOBUFS, ENOMEM: wait for resources to come free
        *failures = failures.saturating_add(1);
        let pause = ACCEPT_BACKOFF.delay(*failures);
        tracing::warn!(
            addr = %self.addr,
            error = %e,
            retry_in = ?pause,
            "accept failed, retrying"
        );
        tokio::time::sleep(pause).await;
        Ok(())
    }
}

/// Splits `host:port`, `[v6]:port` or `:port`; the port part may be a range.
fn split_host_port(addr: &str) -> Result<(&str, &str)> {
    let hp = micro_util::addr::HostPort::parse_strict(addr).map_err(|e| Error::InvalidAddress {
        addr: addr.to_owned(),
        reason: e.reason,
    })?;
    Ok((hp.host, hp.port.unwrap_or_default()))
}

/// Accept failures that concern one connection only (it was reset or aborted before
/// we took it); the next accept works.
fn is_per_connection(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted
            | ConnectionReset
            | ConnectionRefused
            | Interrupted
            | WouldBlock
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
            | PermissionDenied
    ) {
        return true;
    }
    // accept(2) on Linux passes on pending network errors of the new connection
    #[cfg(target_os = "linux")]
    if let Some(code) = e.raw_os_error() {
        // EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET, EOPNOTSUPP
        return [71, 92, 112, 64, 95].contains(&code);
    }
    false
}

#[async_trait]
impl Listener for HttpListener {
    fn addr(&self) -> String {
        self.addr.clone()
    }

    fn is_secure(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    async fn accept(&self) -> Result<Box<dyn Socket>> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return self.accept_tls(tls).await;
        }
        let mut failures: u32 = 0;
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    let Some(slot) = self.slot() else {
                        // Over the limit: a clear answer (the request was not read,
                        // so a client may send it elsewhere), then the connection
                        // goes. A fresh socket's send buffer takes it without waiting.
                        tracing::debug!(%peer, limit = self.opts.limits.max_connections, "connection limit reached; answering 503");
                        let _ = stream.try_write(OVER_LIMIT);
                        continue;
                    };
                    match ServerSocket::new(stream, self.opts, slot) {
                        Ok(socket) => return Ok(Box::new(socket)),
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "dropping connection that failed on accept");
                        }
                    }
                }
                Err(e) => self.accept_failed(e, &mut failures).await?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("127.0.0.1:0").unwrap(), ("127.0.0.1", "0"));
        assert_eq!(split_host_port(":8080").unwrap(), ("", "8080"));
        assert_eq!(split_host_port("[::1]:1-5").unwrap(), ("::1", "1-5"));
        assert_eq!(
            split_host_port("localhost:5000-6000").unwrap(),
            ("localhost", "5000-6000")
        );
        assert!(split_host_port("127.0.0.1").is_err());
        assert!(split_host_port("::1:80").is_err());
        assert!(split_host_port("[::1]").is_err());
    }
}
