//! A connection of its own for one stream of blocking queries.
//!
//! A watched service waits on a blocking query almost all the time, so a cache
//! watching many services keeps as many connections open. Through the pooled
//! `reqwest` client each of them would keep hyper's buffers (8 KiB to write, a
//! read buffer that grows to the largest answer, ~50 KB for ten go-micro nodes,
//! and stays there): measured, about 80 KB per watched service, 8 KB per cached
//! node. Here a stream of blocking queries owns a plain connection (TLS when the
//! agent's address is HTTPS) and writes and reads each exchange with
//! `micro_transport::http::wire`, which releases its buffer after every answer;
//! a waiting query holds its socket, the TLS session if any, and a few hundred
//! bytes.

use bytes::BytesMut;
use micro_transport::http::wire;
use micro_transport::{Header, Limits};
use reqwest::Url;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{ACL_POLICY_HEADER, Client, INDEX_HEADER, Query, Reply, TOKEN_HEADER, is_deny};
use super::{parse_index, reply};
use crate::Error;

/// The largest answer a blocking query accepts: a service of some ten thousand
/// instances with go-micro's metadata.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// A byte stream: TCP or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The connection of one stream of blocking queries; empty until the first query
/// and after a failure.
#[derive(Default)]
pub(crate) struct Owned {
    open: Option<Open>,
    /// Bytes received beyond the last answer (none from a well-behaved agent);
    /// released when empty.
    buf: BytesMut,
}

impl std::fmt::Debug for Owned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owned")
            .field("open", &self.open.as_ref().map(|o| o.base))
            .finish()
    }
}

struct Open {
    io: Box<dyn Io>,
    /// Which agent address it is connected to.
    base: usize,
}

impl Client {
    /// `GET /v1/<path...>` on the connection `owned` keeps (made, or made again
    /// after a failure, on the current agent address with failover).
    ///
    /// A kept connection the agent has closed since its last answer (an idle
    /// timeout, a restart) fails before any answer: then the query is sent once
    /// more on a new connection (a `GET` changes nothing), within the same time
    /// limit.
    pub(crate) async fn get_owned(
        &self,
        owned: &mut Owned,
        path: &[&str],
        q: Query,
    ) -> Result<Reply, Error> {
        let deadline = Instant::now() + self.timeout_of(q);
        let mut retried = false;
        loop {
            let reused = owned.open.is_some();
            let mut open = match owned.open.take() {
                Some(open) => open,
                // Boxed: connecting (a TLS handshake's state) is rare, and inline
                // it would make every waiting watch's task that much larger.
                None => Box::pin(self.failover(|at| self.connect(at, deadline))).await?,
            };
            let (url, shown) = self.url(&self.bases[open.base], path, q)?;
            let exchange = self.exchange(&mut open, &url, &mut owned.buf);
            let res = tokio::time::timeout_at(deadline, exchange).await;
            let failure = match res {
                Ok(Ok(resp)) => {
                    if resp.keep_alive {
                        owned.open = Some(open);
                    }
                    let index = parse_index(resp.header.get(INDEX_HEADER).map(str::as_bytes));
                    let deny = is_deny(resp.header.get(ACL_POLICY_HEADER).map(str::as_bytes));
                    return reply(shown, resp.status, index, deny, resp.body);
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => {
                    owned.buf = BytesMut::new();
                    return Err(Error::Connection {
                        url: shown,
                        reason: "timed out".into(),
                        connecting: false,
                        timed_out: true,
                    });
                }
            };
            owned.buf = BytesMut::new();
            if reused && !retried {
                tracing::debug!(url = %shown, error = %failure, "consul: kept connection failed; sending again on a new one");
                retried = true;
                continue;
            }
            return Err(Error::Connection {
                url: shown,
                reason: failure,
                connecting: false,
                timed_out: false,
            });
        }
    }

    /// Connects to agent address `at` (with TLS when it is HTTPS).
    async fn connect(&self, at: usize, deadline: Instant) -> Result<Open, Error> {
        let base = &self.bases[at];
        let fail = |reason: String, timed_out: bool| Error::Connection {
            url: base.to_string(),
            reason,
            connecting: true,
            timed_out,
        };
        let limit = deadline.min(Instant::now() + self.timeout);
        let port = base.port_or_known_default().unwrap_or(8500);
        // An IPv6 literal comes bracketed in a URL.
        let host = base.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = match tokio::time::timeout_at(limit, TcpStream::connect((host, port))).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(fail(e.to_string(), false)),
            Err(_) => return Err(fail("connect timed out".into(), true)),
        };
        // Requests are written whole; nothing gains from Nagle's delay.
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|e| fail(format!("tls server name {host:?}: {e}"), false))?;
                let handshake = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp);
                match tokio::time::timeout_at(limit, handshake).await {
                    Ok(Ok(tls)) => Box::new(tls),
                    Ok(Err(e)) => return Err(fail(format!("tls handshake: {e}"), false)),
                    Err(_) => return Err(fail("tls handshake timed out".into(), true)),
                }
            }
        };
        Ok(Open { io, base: at })
    }

    /// Writes the request for `url` and reads its answer.
    async fn exchange(
        &self,
        open: &mut Open,
        url: &Url,
        buf: &mut BytesMut,
    ) -> Result<wire::Response, micro_transport::Error> {
        let mut target = url.path().to_owned();
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let mut header = Header::with_capacity(2);
        header.insert("Accept", "application/json");
        if let Some(token) = &self.token {
            let token = token.to_str().map_err(|_| {
                micro_transport::Error::Malformed("the acl token is not visible ascii".into())
            })?;
            header.insert(TOKEN_HEADER, token);
        }
        let mut head = BytesMut::new();
        wire::write_request(&mut head, "GET", &target, &host, &header)?;
        open.io.write_all(&head).await?;
        open.io.flush().await?;
        drop(head);
        let limits = Limits {
            max_body_size: MAX_ANSWER,
            // The wait for the answer is bounded by the caller's deadline.
            header_read_timeout: None,
            body_read_timeout: None,
            ..Limits::default()
        };
        wire::read_response(&mut open.io, buf, &limits).await
    }
}
