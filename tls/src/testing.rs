//! A test PKI: a certificate authority that issues server and client certificates,
//! valid, expired or for other names, as PEM. For tests and examples; never for
//! production.
//!
//! ```
//! use micro_tls::testing::TestCa;
//!
//! let ca = TestCa::new("test");
//! let server = ca.issue("server", &["localhost", "127.0.0.1"]);
//! assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
//! ```

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate authority made at start.
#[derive(Debug)]
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

/// A certificate and its private key, as PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl Issued {
    /// Writes `<name>.crt` and `<name>.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> std::io::Result<(PathBuf, PathBuf)> {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem)?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((cert, key))
    }
}

#[allow(clippy::expect_used)] // test support: a failure to make a certificate is a bug
impl TestCa {
    /// A CA whose common name is `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca certificate");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes the CA's certificate to `dir/<name>.crt`; returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
        let path = dir.join(format!("{name}.crt"));
        std::fs::write(&path, &self.cert_pem)?;
        Ok(path)
    }

    /// A certificate for server and client use, common name `cn`, valid now for a
    /// year; each of `sans` becomes an IP SAN if it parses as one, a URI SAN if it
    /// holds `://`, or a DNS SAN.
    pub fn issue(&self, cn: &str, sans: &[&str]) -> Issued {
        let now = time::OffsetDateTime::now_utc();
        self.issue_valid(
            cn,
            sans,
            now - time::Duration::hours(1),
            now + time::Duration::days(365),
        )
    }

    /// Like [`issue`](Self::issue), but expired a day ago.
    pub fn issue_expired(&self, cn: &str, sans: &[&str]) -> Issued {
        let now = time::OffsetDateTime::now_utc();
        self.issue_valid(
            cn,
            sans,
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )
    }

    fn issue_valid(
        &self,
        cn: &str,
        sans: &[&str],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "micro tests");
        params.subject_alt_names = sans
            .iter()
            .map(|s| {
                if let Ok(ip) = s.parse() {
                    SanType::IpAddress(ip)
                } else if s.contains("://") {
                    SanType::URI((*s).try_into().expect("uri san"))
                } else {
                    SanType::DnsName((*s).try_into().expect("dns san"))
                }
            })
            .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}
