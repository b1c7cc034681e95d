//! [`Pem`]: where PEM data comes from, and parsing it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result};

/// PEM data: a file (read when a configuration is built, and again when it changes
/// for certificates and keys) or bytes in memory.
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    /// A file.
    File(PathBuf),
    /// PEM text in memory.
    Inline(Arc<[u8]>),
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(p) => f.debug_tuple("File").field(p).finish(),
            Pem::Inline(b) => write!(f, "Inline({} bytes)", b.len()),
        }
    }
}

impl Pem {
    /// PEM in memory.
    pub fn inline(pem: impl AsRef<[u8]>) -> Self {
        Pem::Inline(pem.as_ref().into())
    }

    /// A PEM file.
    pub fn file(path: impl AsRef<Path>) -> Self {
        Pem::File(path.as_ref().to_owned())
    }

    /// The file name, or `"inline PEM"`, for messages.
    pub(crate) fn name(&self) -> String {
        match self {
            Pem::File(p) => p.display().to_string(),
            Pem::Inline(_) => "inline PEM".into(),
        }
    }

    /// The bytes.
    pub(crate) fn read(&self) -> Result<Arc<[u8]>> {
        match self {
            Pem::File(path) => std::fs::read(path)
                .map(Into::into)
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                }),
            Pem::Inline(b) => Ok(b.clone()),
        }
    }
}

/// Every certificate in `data`; at least one.
pub(crate) fn certs(name: &str, data: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(data)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid(name, e))?;
    if certs.is_empty() {
        return Err(Error::invalid(name, "no certificate found"));
    }
    Ok(certs)
}

/// The first private key in `data`.
pub(crate) fn key(name: &str, data: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(data).map_err(|e| Error::invalid(name, e))
}

/// A root store holding every certificate of `pem`.
pub(crate) fn roots(pem: &Pem) -> Result<Arc<RootCertStore>> {
    let name = pem.name();
    let mut roots = RootCertStore::empty();
    for cert in certs(&name, &pem.read()?)? {
        roots.add(cert).map_err(|e| Error::invalid(&name, e))?;
    }
    Ok(Arc::new(roots))
}
