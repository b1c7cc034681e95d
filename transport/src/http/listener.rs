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
const BACKOFF_START: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The answer to a connection over the limit: it is closed right after.
const OVER_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 33\r\nConnection: close\r\n\r\ntoo many connections to this node";

/// A bound HTTP transport listener.
#[derive(Debug)]
pub(crate) struct HttpListener {
    inner: TcpListener,
    addr: String,
    opts: HttpTransportOptions,
    /// Connections accepted and not closed yet.
    open: Arc<AtomicUsize>,
}

/// One open connection, counted until it is dropped.
#[derive(Debug)]
pub(crate) struct ConnSlot(Arc<AtomicUsize>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
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
        })
    }
}

/// Splits `host:port`, `[v6]:port` or `:port`; the port part may be a range.
fn split_host_port(addr: &str) -> Result<(&str, &str)> {
    let invalid = |reason| Error::InvalidAddress {
        addr: addr.to_owned(),
        reason,
    };
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, rest) = rest
            .split_once(']')
            .ok_or_else(|| invalid("unclosed bracket"))?;
        let ports = rest
            .strip_prefix(':')
            .ok_or_else(|| invalid("missing port"))?;
        Ok((host, ports))
    } else {
        let (host, ports) = addr
            .rsplit_once(':')
            .ok_or_else(|| invalid("missing port"))?;
        if host.contains(':') {
            return Err(invalid("an IPv6 host must be in brackets"));
        }
        Ok((host, ports))
    }
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

    async fn accept(&self) -> Result<Box<dyn Socket>> {
        let mut backoff = BACKOFF_START;
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
                    let slot = ConnSlot(self.open.clone());
                    if open > self.opts.limits.max_connections {
                        // Over the limit: a clear answer (the request was not read,
                        // so a client may send it elsewhere), then the connection
                        // goes. A fresh socket's send buffer takes it without waiting.
                        tracing::debug!(%peer, limit = self.opts.limits.max_connections, "connection limit reached; answering 503");
                        let _ = stream.try_write(OVER_LIMIT);
                        drop((stream, slot));
                        continue;
                    }
                    match ServerSocket::new(stream, self.opts, slot) {
                        Ok(socket) => return Ok(Box::new(socket)),
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "dropping connection that failed on accept");
                        }
                    }
                }
                Err(e) if is_per_connection(&e) => {
                    tracing::debug!(error = %e, "accept failed for one connection");
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    // EINVAL: the socket is not listening any more
                    return Err(Error::Io(e));
                }
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: wait for resources to come free
                    tracing::warn!(
                        addr = %self.addr,
                        error = %e,
                        retry_in = ?backoff,
                        "accept failed, retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
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
