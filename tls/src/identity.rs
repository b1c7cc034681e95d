//! [`PeerIdentity`]: who the peer proved to be in the handshake.

use std::net::IpAddr;

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

use crate::{Error, Result};

/// The identity a peer proved with its certificate: the end-entity certificate's
/// subject and subject alternative names (SANs). A server sees it for clients that
/// presented a verified certificate (mutual TLS); authorization rules can be made on
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerIdentity {
    /// The subject's distinguished name, as OpenSSL prints it (`CN=orders, O=Acme`).
    pub subject: String,
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
    /// DNS name SANs.
    pub dns_names: Vec<String>,
    /// IP address SANs.
    pub ip_addresses: Vec<IpAddr>,
    /// URI SANs.
    pub uris: Vec<String>,
    /// The SPIFFE ID: the URI SAN with scheme `spiffe://`, when there is exactly one.
    pub spiffe_id: Option<String>,
    /// The end-entity certificate (DER), for rules on anything else in it.
    pub certificate: CertificateDer<'static>,
}

impl PeerIdentity {
    /// Reads the identity from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| Error::invalid("peer certificate", e);
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| bad(&e))?;
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let mut id = PeerIdentity {
            subject: subject.to_string(),
            common_name,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
            spiffe_id: None,
            certificate: CertificateDer::from(der.to_vec()),
        };
        if let Some(san) = cert.subject_alternative_name().map_err(|e| bad(&e))? {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => id.dns_names.push((*n).to_owned()),
                    GeneralName::URI(u) => id.uris.push((*u).to_owned()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            id.ip_addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            id.ip_addresses.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut spiffe = id.uris.iter().filter(|u| {
            u.get(..9)
                .is_some_and(|s| s.eq_ignore_ascii_case("spiffe://"))
        });
        if let (Some(one), None) = (spiffe.next(), spiffe.next()) {
            id.spiffe_id = Some(one.clone());
        }
        Ok(id)
    }

    /// The identity in the end-entity certificate of a verified chain (what
    /// rustls's `peer_certificates()` returns), if there is one and it can be read.
    pub fn from_chain(chain: Option<&[CertificateDer<'_>]>) -> Option<Self> {
        let first = chain?.first()?;
        match Self::from_der(first) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::debug!(error = %e, "tls: peer certificate unreadable");
                None
            }
        }
    }
}
