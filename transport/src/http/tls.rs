//! TLS for the HTTP transport: handshakes on both sides, and a clear answer to a
//! peer that speaks plain HTTP to a TLS port.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use micro_tls::{ClientTls, ServerTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::HttpTransportOptions;
use super::conn::{Conn, addrs};
use super::server::ServerSocket;
use crate::{Error, Result};

/// The first byte of a TLS record carrying a handshake message.
const HANDSHAKE_RECORD: u8 = 0x16;

/// What Go's TLS server answers to plain HTTP, and so do we.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// The server side of one connection: waits for the client's first bytes, answers
/// plain HTTP with `400` and closes, otherwise runs the TLS handshake, all within
/// `timeout`.
pub(crate) async fn accept(
    stream: TcpStream,
    tls: Arc<ServerTls>,
    opts: HttpTransportOptions,
    timeout: Duration,
) -> Result<ServerSocket> {
    let (local, remote) = addrs(&stream)?;
    let handshake = async {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await? == 0 {
            return Err(Error::Closed);
        }
        if first[0] != HANDSHAKE_RECORD {
            refuse_plain(stream).await;
            return Err(Error::Tls {
                addr: remote.clone(),
                reason: "the client sent plain text, not a TLS handshake; answered 400".into(),
            });
        }
        TlsAcceptor::from(tls.config().clone())
            .accept(stream)
            .await
            .map_err(|e| Error::Tls {
                addr: remote.clone(),
                reason: describe(&e),
            })
    };
    let stream = match tokio::time::timeout(timeout, handshake).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Error::Tls {
                addr: remote,
                reason: format!("no TLS handshake within {timeout:?}"),
            });
        }
    };
    let conn = Conn::tls(stream.into(), local, remote, opts);
    Ok(ServerSocket::from_conn(conn))
}

/// Answers a plain HTTP request on a TLS port as Go does, then reads and drops
/// what the client still sends for a moment, so the answer is not lost to a reset.
async fn refuse_plain(mut stream: TcpStream) {
    let answer = async {
        stream.write_all(PLAIN_HTTP_ANSWER).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), answer).await;
}

/// The client side: the TLS handshake over a connected `stream`.
pub(crate) async fn connect(
    stream: TcpStream,
    addr: &str,
    tls: &ClientTls,
    opts: HttpTransportOptions,
) -> Result<Conn> {
    let (local, remote) = addrs(&stream).map_err(|source| Error::Connect {
        addr: addr.to_owned(),
        source,
    })?;
    let name = tls.server_name(addr).map_err(|e| Error::Tls {
        addr: addr.to_owned(),
        reason: e.to_string(),
    })?;
    let stream = TlsConnector::from(tls.config().clone())
        .connect(name, stream)
        .await
        .map_err(|e| Error::Tls {
            addr: addr.to_owned(),
            reason: describe(&e),
        })?;
    Ok(Conn::tls(stream.into(), local, remote, opts))
}

/// A handshake failure in words: rustls's own message, with a hint where the cause
/// is likely a plain-text peer.
pub(crate) fn describe(e: &io::Error) -> String {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<micro_tls::rustls::Error>())
    else {
        return format!("handshake failed: {e}");
    };
    match tls {
        micro_tls::rustls::Error::InvalidMessage(_) => {
            format!("handshake failed: {tls} (the peer does not speak TLS: a plain port?)")
        }
        _ => format!("handshake failed: {tls}"),
    }
}
