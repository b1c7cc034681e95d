//! [`ServerTls`]: the server side.

use std::fmt;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;

use crate::reload::Resolver;
use crate::{Error, Result, TlsOptions, pem};

/// A server's TLS configuration, made from [`TlsOptions`]: cheap to clone, shared by
/// every connection of a listener.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    resolver: Arc<Resolver>,
    mutual: bool,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("resolver", &self.resolver)
            .field("mutual", &self.mutual)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the certificate and key (or makes the self-signed one) and the client
    /// CA. A missing or unreadable file, a key that does not match its certificate,
    /// or no certificate at all without self-signed mode is an error. `alpn`: the
    /// application protocols served, in order of preference (a client offering
    /// others is refused; one offering none is served).
    pub fn new(opts: &TlsOptions, alpn: &[&[u8]]) -> Result<Self> {
        let provider = crate::provider();
        let resolver = match &opts.identity {
            Some((cert, key)) => Resolver::load(
                cert.clone(),
                key.clone(),
                provider.clone(),
                opts.reload_interval,
            )?,
            None if opts.self_signed => {
                let (chain, key) = crate::selfsigned::make()?;
                let certified = CertifiedKey::from_der(chain, key, &provider)?;
                tracing::warn!(
                    "tls: serving a self-signed certificate made at start; no client can verify it (development only)"
                );
                Resolver::fixed(certified, provider.clone())
            }
            None => {
                return Err(Error::Options(
                    "a server needs a certificate and key (or self-signed mode, for development)"
                        .into(),
                ));
            }
        };
        let resolver = Arc::new(resolver);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match &opts.client_ca {
            Some(ca) => {
                let roots = pem::roots(ca)?;
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| Error::invalid(ca.name(), e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(resolver.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(ServerTls {
            config: Arc::new(config),
            resolver,
            mutual: opts.client_ca.is_some(),
        })
    }

    /// The rustls configuration, for a TLS acceptor.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.mutual
    }

    /// The certificate served now (its chain, end entity first), after a look at
    /// its files if the reload interval has passed.
    pub fn certificate(&self) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        self.resolver.current().cert.clone()
    }

    /// Looks at the certificate files now (handshakes do it once per reload
    /// interval). An error tells what is wrong with the files; the previous
    /// certificate stays in use.
    pub fn reload_now(&self) -> std::result::Result<(), String> {
        self.resolver.reload_now()
    }
}
