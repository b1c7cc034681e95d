//! The client side of a connection: writes requests, reads raw responses.

use std::io;

use async_trait::async_trait;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::HttpTransportOptions;
use super::codec;
use super::conn::{Conn, Reader, Signalled, after};
use super::read::{self, ResponseLimits};
use crate::{DialOptions, Error, Message, Result, Socket};

/// A dialled connection. Responses are read in stream mode (go-micro's `WithStream`):
/// each `recv` returns the next response, whichever request it answers.
#[derive(Debug)]
pub(crate) struct ClientSocket {
    conn: Conn,
    /// The `Host` header: the address as dialled.
    host: String,
}

impl ClientSocket {
    pub(crate) async fn connect(
        addr: &str,
        opts: &DialOptions,
        topts: HttpTransportOptions,
    ) -> Result<Self> {
        let target = dial_target(addr)?;
        let connect = TcpStream::connect(target.as_str());
        let stream = match tokio::time::timeout(opts.connect_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(Error::Connect {
                    addr: addr.to_owned(),
                    source,
                });
            }
            Err(_) => {
                let source = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                return Err(Error::Connect {
                    addr: addr.to_owned(),
                    source,
                });
            }
        };
        #[cfg(feature = "tls")]
        if let Some(tls) = &opts.tls {
            let handshake = super::tls::connect(stream, addr, tls.client(), topts);
            let conn = match tokio::time::timeout(opts.connect_timeout, handshake).await {
                Ok(conn) => conn?,
                Err(_) => {
                    return Err(Error::Tls {
                        addr: addr.to_owned(),
                        reason: format!("no TLS handshake within {:?}", opts.connect_timeout),
                    });
                }
            };
            return Ok(Self {
                conn,
                host: addr.to_owned(),
            });
        }
        let conn = Conn::new(stream, topts).map_err(|source| Error::Connect {
            addr: addr.to_owned(),
            source,
        })?;
        Ok(Self {
            conn,
            host: addr.to_owned(),
        })
    }

    async fn read_response(&self, rd: &mut Reader, overall: Option<Instant>) -> Result<Message> {
        let opts = &self.conn.opts;
        let signal = &self.conn.signal;
        let limits = ResponseLimits {
            max_head: opts.limits.max_header_size,
            max_body: opts.limits.max_body_size as u64,
            head_timeout: opts.limits.header_read_timeout,
            body_timeout: opts.limits.body_read_timeout,
        };
        let (head, body) =
            read::read_response(&mut Signalled { rd, signal }, &limits, overall).await?;
        if !head.keep_alive {
            // the server closes after this response
            signal.close();
            rd.io = None;
        }
        if head.code != 200 {
            return Err(Error::Status {
                code: head.code,
                reason: head.reason,
                body,
            });
        }
        Ok(Message {
            header: head.header,
            body,
        })
    }
}

/// Checks a `host:port` address and returns what to connect to: an empty host means
/// this machine, as in Go.
fn dial_target(addr: &str) -> Result<String> {
    let invalid = |reason| Error::InvalidAddress {
        addr: addr.to_owned(),
        reason,
    };
    let hp = micro_util::addr::HostPort::parse_strict(addr).map_err(|e| invalid(e.reason))?;
    let port = hp.port_number().ok_or_else(|| invalid("invalid port"))?;
    Ok(if hp.host.is_empty() {
        format!("127.0.0.1:{port}")
    } else {
        addr.to_owned()
    })
}

#[async_trait]
impl Socket for ClientSocket {
    async fn send(&self, msg: &Message) -> Result<()> {
        let signal = &self.conn.signal;
        if signal.is_closed() {
            return Err(Error::Closed);
        }
        let deadline = self.conn.opts.timeout.and_then(after);
        let res = signal
            .run(deadline, async {
                let mut w = self.conn.writer.lock().await;
                w.buf.clear();
                codec::write_request(&mut w.buf, &self.host, &msg.header, msg.body.len());
                w.write_with_body(&msg.body).await
            })
            .await;
        if res.is_err() {
            // a request may be half written: the connection is out of step
            signal.close();
        }
        res
    }

    async fn recv(&self) -> Result<Message> {
        let signal = &self.conn.signal;
        if signal.is_closed() {
            return Err(Error::Closed);
        }
        let overall = self.conn.opts.timeout.and_then(after);
        let mut rd = signal
            .run(overall, async { Ok(self.conn.reader.lock().await) })
            .await?;
        match self.read_response(&mut rd, overall).await {
            Ok(msg) => Ok(msg),
            Err(e @ Error::Status { .. }) => Err(e),
            Err(e) => {
                signal.close();
                Err(e)
            }
        }
    }

    async fn close(&self) {
        self.conn.close().await;
    }

    fn local_addr(&self) -> &str {
        self.conn.local_addr()
    }

    fn remote_addr(&self) -> &str {
        self.conn.remote_addr()
    }

    /// Also false while unread response bytes wait: such a connection is out of step
    /// for a new call (a stream's next `recv` still reads them).
    fn is_open(&self) -> bool {
        self.conn.is_open(true)
    }

    /// The server's identity, from the certificate it proved (TLS only).
    #[cfg(feature = "tls")]
    fn peer_identity(&self) -> Option<std::sync::Arc<micro_tls::PeerIdentity>> {
        self.conn.peer.clone()
    }

    fn is_secure(&self) -> bool {
        self.conn.is_secure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_targets() {
        assert_eq!(dial_target("127.0.0.1:80").unwrap(), "127.0.0.1:80");
        assert_eq!(dial_target("[::1]:80").unwrap(), "[::1]:80");
        assert_eq!(dial_target(":80").unwrap(), "127.0.0.1:80");
        assert_eq!(
            dial_target("example.invalid:80").unwrap(),
            "example.invalid:80"
        );
        for bad in [
            "127.0.0.1",
            "::1:80",
            "[::1]80",
            "[::1:80",
            "h:port",
            "h:70000",
        ] {
            assert!(
                matches!(dial_target(bad), Err(Error::InvalidAddress { .. })),
                "{bad}"
            );
        }
    }
}
