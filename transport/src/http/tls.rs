//! TLS for the HTTP transport: handshakes on both sides (`micro_tls::accept`
//! answers plain HTTP on a TLS port with Go's `400`).

use std::sync::Arc;
use std::time::Duration;

use micro_tls::{ClientTls, ServerTls};
use tokio::net::TcpStream;

use super::HttpTransportOptions;
use super::conn::{Conn, addrs};
use super::listener::ConnSlot;
use super::server::ServerSocket;
use crate::{Error, Result};

/// The server side of one connection: the handshake within `timeout`.
pub(crate) async fn accept(
    stream: TcpStream,
    tls: Arc<ServerTls>,
    opts: HttpTransportOptions,
    timeout: Duration,
    slot: ConnSlot,
) -> Result<ServerSocket> {
    let (local, remote) = addrs(&stream)?;
    let stream = micro_tls::accept(stream, &tls, timeout)
        .await
        .map_err(|e| Error::Tls {
            addr: remote.clone(),
            reason: reason(e),
        })?;
    let conn = Conn::tls(stream.into(), local, remote, opts);
    Ok(ServerSocket::from_conn(conn, slot))
}

/// The client side: the handshake over a connected `stream`.
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
    let stream = micro_tls::connect(stream, addr, tls)
        .await
        .map_err(|e| Error::Tls {
            addr: addr.to_owned(),
            reason: reason(e),
        })?;
    Ok(Conn::tls(stream.into(), local, remote, opts))
}

/// A handshake error without the peer's address (the transport error has it).
fn reason(e: micro_tls::Error) -> String {
    match e {
        micro_tls::Error::Handshake { reason, .. } => format!("handshake failed: {reason}"),
        e => e.to_string(),
    }
}
