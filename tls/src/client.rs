//! [`ClientTls`]: the client side.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::reload::Resolver;
use crate::{Error, Result, TlsOptions, pem};

/// A client's TLS configuration, made from [`TlsOptions`]: cheap to clone, shared by
/// every connection of a client.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    dial_all: bool,
    insecure: bool,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .field("dial_all", &self.dial_all)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Builds the verifier (the CA's roots; the system's roots, loaded at the first
    /// handshake that needs them; or none with `insecure_skip_verify`, which is
    /// logged as a warning) and loads the client certificate if one is given.
    /// Offers ALPN `http/1.1`.
    pub fn new(opts: &TlsOptions) -> Result<Self> {
        Self::with_alpn(opts, &[crate::ALPN_HTTP1])
    }

    /// [`new`](Self::new), offering the application protocols `alpn` (none: no ALPN).
    pub fn with_alpn(opts: &TlsOptions, alpn: &[&[u8]]) -> Result<Self> {
        let provider = crate::provider();
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = if opts.insecure_skip_verify {
            tracing::warn!(
                "tls: server certificates are NOT verified (insecure_skip_verify, MICRO_TLS_INSECURE): any peer can pretend to be any service"
            );
            Arc::new(AcceptAny(algorithms))
        } else if let Some(ca) = &opts.ca {
            WebPkiServerVerifier::builder_with_provider(pem::roots(ca)?, provider.clone())
                .build()
                .map_err(|e| Error::invalid(ca.name(), e))?
        } else {
            Arc::new(SystemRoots {
                provider: provider.clone(),
                algorithms,
                verifier: OnceLock::new(),
            })
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &opts.identity {
            Some((cert, key)) => {
                let resolver =
                    Resolver::load(cert.clone(), key.clone(), provider, opts.reload_interval)?;
                builder.with_client_cert_resolver(Arc::new(resolver))
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let server_name = match &opts.server_name {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| Error::invalid(format!("server name {name:?}"), e))?,
            ),
            None => None,
        };
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
            dial_all: opts.dial_all,
            insecure: opts.insecure_skip_verify,
        })
    }

    /// The rustls configuration, for a TLS connector.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The server name given in the options, which every server is verified
    /// against; `None`: each is verified against the host dialled.
    pub fn fixed_server_name(&self) -> Option<&ServerName<'static>> {
        self.server_name.as_ref()
    }

    /// Whether every node is dialled with TLS ([`TlsOptions::dial_all`]).
    pub fn dials_all(&self) -> bool {
        self.dial_all
    }

    /// Whether server certificates go unverified.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The name to verify the server at `addr` (`host:port`, `[v6]:port` or a bare
    /// host) against: the configured server name, or else the host, as an IP address
    /// when it is one (matched against IP SANs).
    pub fn server_name(&self, addr: &str) -> Result<ServerName<'static>> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        let host = host_of(addr);
        let host = if host.is_empty() { "127.0.0.1" } else { host };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(ServerName::IpAddress(ip.into()));
        }
        ServerName::try_from(host.to_owned())
            .map_err(|e| Error::invalid(format!("server name {host:?}"), e))
    }
}

/// The host part of `host:port`, `[v6]:port`, or a bare host.
fn host_of(addr: &str) -> &str {
    micro_util::addr::HostPort::parse(addr).host
}

/// Verifies against the system's trusted roots, loaded at the first handshake
/// that needs them (reading and parsing the system's store takes milliseconds and
/// memory that a client which never meets a TLS node should not pay). A system
/// without roots fails that handshake with a clear error.
#[derive(Debug)]
struct SystemRoots {
    provider: Arc<rustls::crypto::CryptoProvider>,
    algorithms: WebPkiSupportedAlgorithms,
    verifier: OnceLock<std::result::Result<Arc<rustls_platform_verifier::Verifier>, rustls::Error>>,
}

impl SystemRoots {
    fn verifier(&self) -> std::result::Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        let loaded = self.verifier.get_or_init(|| {
            rustls_platform_verifier::Verifier::new(self.provider.clone()).map(Arc::new)
        });
        match loaded {
            Ok(v) => Ok(v),
            Err(e) => Err(rustls::Error::General(format!("system trusted roots: {e}"))),
        }
    }
}

impl ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.verifier()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Accepts every server certificate (`insecure_skip_verify`); the handshake
/// signatures are still checked, so the peer must hold the key it presents.
#[derive(Debug)]
struct AcceptAny(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_of("127.0.0.1:80"), "127.0.0.1");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("svc.local:1"), "svc.local");
        assert_eq!(host_of("svc.local"), "svc.local");
        assert_eq!(host_of(":80"), "");
    }

    #[test]
    fn server_names() {
        let tls = TlsOptions::new()
            .insecure_skip_verify(true)
            .client()
            .unwrap();
        assert!(matches!(
            tls.server_name("127.0.0.1:8080").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            tls.server_name(":8080").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            tls.server_name("localhost:1").unwrap(),
            ServerName::DnsName(_)
        ));
        let tls = TlsOptions::new()
            .insecure_skip_verify(true)
            .server_name("svc.internal")
            .client()
            .unwrap();
        assert_eq!(
            tls.server_name("10.0.0.1:1").unwrap(),
            ServerName::try_from("svc.internal").unwrap()
        );
        let err = TlsOptions::new()
            .insecure_skip_verify(true)
            .server_name("bad name!")
            .client()
            .unwrap_err();
        assert!(err.to_string().contains("bad name!"), "{err}");
    }
}
