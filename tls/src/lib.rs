//! TLS for micro: one options type for every front door.
//!
//! [`TlsOptions`] says everything a service needs to speak TLS, as a server and as a
//! client: its own certificate and key (files or in-memory PEM, or a self-signed
//! certificate made at start for development), the certificate authority that client
//! certificates must come from (mutual TLS), the authority that servers must come from
//! (or the system's trusted roots), and whether to skip verification (an explicit,
//! loudly logged choice). The HTTP transport, the HTTP broker and the front doors to
//! come (gRPC, the API gateway) all take this one type; [`TlsOptions::from_env`] reads
//! it from the `MICRO_TLS_*` variables.
//!
//! From the options come rustls configurations, always built with the `ring` crypto
//! provider passed explicitly (no process-wide default is needed):
//!
//! * [`ServerTls`]: the server side. The certificate is served by a resolver that
//!   reloads it from its files when they change (rotation); connections already open
//!   keep their session. A file replaced by something unreadable leaves the old
//!   certificate in use and logs an error.
//! * [`ClientTls`]: the client side. Peers are verified by default, against the given
//!   CA or the system's roots, and by the IP address SAN when the peer is addressed by
//!   IP (nodes register IP addresses), or by a server name given in the options.
//!
//! [`accept`] and [`connect`] run handshakes over Tokio TCP streams with them, with
//! errors in plain words; [`accept`] answers a client that speaks plain HTTP to a
//! TLS port as Go does ([`PLAIN_HTTP_ANSWER`]).
//!
//! After a handshake, [`PeerIdentity`] tells who the peer proved to be: subject,
//! DNS/IP/URI SANs and the SPIFFE ID when there is one.
//!
//! # Secure by default
//!
//! go-micro skips certificate verification unless told otherwise (v4 always, v5 unless
//! `MICRO_TLS_SECURE=true`). Here a client verifies unless
//! [`insecure_skip_verify`](TlsOptions::insecure_skip_verify) is set
//! (`MICRO_TLS_INSECURE=true`, go-micro v6's name), and a server needs a certificate
//! unless [`self_signed`](TlsOptions::self_signed) asks for go-micro's
//! "secure without a certificate" mode, which is for development only and logged as
//! such.
//!
//! # Environment
//!
//! | variable | meaning |
//! |---|---|
//! | `MICRO_TLS_CERT`, `MICRO_TLS_KEY` | PEM files: this service's certificate chain and private key. A server serves TLS with them; a client presents them when a server asks (mutual TLS). |
//! | `MICRO_TLS_CA` | PEM file of the authorities servers' certificates must chain to. Default: the system's trusted roots. |
//! | `MICRO_TLS_CLIENT_CA` | PEM file of the authorities client certificates must chain to; a server then refuses clients without one (mutual TLS). |
//! | `MICRO_TLS_INSECURE` | `true`: do not verify servers' certificates (development only; logged as a warning). |
//! | `MICRO_TLS_SELF_SIGNED` | `true`: with no certificate given, serve a self-signed one made at start (development only). |
//! | `MICRO_TLS_SERVER_NAME` | The name to verify servers' certificates against, instead of the dialled host. |
//! | `MICRO_TLS_DIAL_ALL` | `true`: dial every node with TLS, not only those whose registry record says `secure=true` (go-micro's `Secure` transport). |
//! | `MICRO_TLS_RELOAD_INTERVAL` | How often (in seconds) certificate files are checked for changes. Default: 5. |
//!
//! # Rotation: a decision
//!
//! Certificate files are checked for changes lazily, by the resolver itself, at most
//! once per [`reload_interval`](TlsOptions::reload_interval): a handshake that finds
//! the interval elapsed looks at the files' modification time and size (one `stat`
//! each) and, when they changed, reads them, compares their contents with what is
//! loaded and swaps the new certificate in. There is no background task, so nothing
//! has to own, stop or await one, and the same resolver serves client certificates.
//! The cost is a `stat` per file every few seconds on the handshake path, and that a
//! rotation (or a broken file's error) shows up at the first handshake after it rather
//! than on a timer; [`ServerTls::reload_now`] checks at once.
//!
//! # Example
//!
//! ```
//! use micro_tls::TlsOptions;
//!
//! // A server with a certificate from files, requiring client certificates from a CA:
//! let opts = TlsOptions::new()
//!     .cert_files("/etc/micro/tls.crt", "/etc/micro/tls.key")
//!     .client_ca_file("/etc/micro/ca.crt")
//!     .ca_file("/etc/micro/ca.crt");
//! assert!(opts.serves_tls());
//! assert!(opts.requires_client_cert());
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod error;
mod identity;
mod io;
mod options;
mod pem;
mod reload;
mod selfsigned;
mod server;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use client::ClientTls;
pub use error::{Error, Result};
pub use identity::PeerIdentity;
pub use io::{PLAIN_HTTP_ANSWER, accept, connect};
pub use options::{
    ENV_CA, ENV_CERT, ENV_CLIENT_CA, ENV_DIAL_ALL, ENV_INSECURE, ENV_KEY, ENV_RELOAD_INTERVAL,
    ENV_SELF_SIGNED, ENV_SERVER_NAME, TlsOptions,
};
pub use pem::Pem;
pub use server::ServerTls;

/// tokio-rustls, whose streams [`accept`] and [`connect`] return.
pub use tokio_rustls;

/// rustls, as this crate uses it (version 0.23, `ring` provider), for callers that
/// need its types (`ServerConfig`, `ClientConfig`, `pki_types::ServerName`).
pub use rustls;

/// The ALPN protocol id of HTTP/1.1, what the HTTP transport and broker speak.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The crypto provider every configuration is built with: rustls's `ring` provider.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
