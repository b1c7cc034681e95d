//! Handshakes over Tokio TCP streams.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

use crate::{ClientTls, Error, Result, ServerTls};

/// The first byte of a TLS record carrying a handshake message.
const HANDSHAKE_RECORD: u8 = 0x16;

/// What Go's TLS server answers to a client speaking plain HTTP, and so does
/// [`accept`].
pub const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// The server side of a handshake on an accepted connection, within `timeout`
/// (from the first byte awaited to the handshake's end). A client that sends
/// something other than a TLS handshake gets [`PLAIN_HTTP_ANSWER`] and the
/// connection is closed; every failure is an [`Error::Handshake`] naming the peer.
pub async fn accept(
    stream: TcpStream,
    tls: &ServerTls,
    timeout: Duration,
) -> Result<server::TlsStream<TcpStream>> {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let fail = |reason: String| Error::Handshake {
        peer: peer.clone(),
        reason,
    };
    let handshake = async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => return Err(fail("closed before saying anything".into())),
            Ok(_) => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        if first[0] != HANDSHAKE_RECORD {
            refuse_plain(stream).await;
            return Err(fail(
                "the client sent plain text, not a TLS handshake (answered 400)".into(),
            ));
        }
        TlsAcceptor::from(tls.config().clone())
            .accept(stream)
            .await
            .map_err(|e| fail(describe(&e)))
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(r) => r,
        Err(_) => Err(fail(format!("no handshake within {timeout:?}"))),
    }
}

/// Answers plain HTTP on a TLS port as Go does, then reads and drops what the
/// client still sends for a moment, so the answer is not lost to a reset.
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

/// The client side of a handshake with the server at `addr` (`host:port`, what
/// [`ClientTls::server_name`] verifies) over a connected `stream`. Not bounded in
/// time: the caller bounds it.
pub async fn connect(
    stream: TcpStream,
    addr: &str,
    tls: &ClientTls,
) -> Result<client::TlsStream<TcpStream>> {
    let name = tls.server_name(addr)?;
    TlsConnector::from(tls.config().clone())
        .connect(name, stream)
        .await
        .map_err(|e| Error::Handshake {
            peer: addr.to_owned(),
            reason: describe(&e),
        })
}

/// A handshake failure in words: rustls's own message, with a hint where the
/// cause is likely a peer that does not speak TLS.
fn describe(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls @ rustls::Error::InvalidMessage(_)) => {
            format!("{tls} (the peer does not speak TLS: a plain port?)")
        }
        Some(tls) => tls.to_string(),
        None => e.to_string(),
    }
}
