//! The certificate resolver: serves the current certified key and reloads it from
//! its files when they change (see "Rotation" in the crate docs).

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::pem::{self, Pem};
use crate::{Error, Result};

/// A certificate and key and where they come from.
pub(crate) struct Resolver {
    cert: Pem,
    key: Pem,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    check: Mutex<Check>,
    interval: Duration,
}

/// What the last look at the files saw.
struct Check {
    at: Instant,
    /// Modification time and size of both files.
    stamp: Option<[(Option<SystemTime>, u64); 2]>,
    /// Hash of the loaded contents.
    hash: u64,
    /// The last reload error, until a reload succeeds.
    error: Option<String>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Loads `cert` and `key`; an unusable pair is an error here.
    pub(crate) fn load(
        cert: Pem,
        key: Pem,
        provider: Arc<CryptoProvider>,
        interval: Duration,
    ) -> Result<Self> {
        let stamp = stamp(&cert, &key);
        let (certified, hash) = read(&cert, &key, &provider)?;
        Ok(Resolver {
            cert,
            key,
            provider,
            current: RwLock::new(Arc::new(certified)),
            check: Mutex::new(Check {
                at: Instant::now(),
                stamp,
                hash,
                error: None,
            }),
            interval,
        })
    }

    /// A resolver over a fixed certified key (the self-signed one).
    pub(crate) fn fixed(certified: CertifiedKey, provider: Arc<CryptoProvider>) -> Self {
        Resolver {
            cert: Pem::Inline(Arc::from(&[][..])),
            key: Pem::Inline(Arc::from(&[][..])),
            provider,
            current: RwLock::new(Arc::new(certified)),
            check: Mutex::new(Check {
                at: Instant::now(),
                stamp: None,
                hash: 0,
                error: None,
            }),
            interval: Duration::MAX,
        }
    }

    /// The certified key in use now, after a look at the files if the interval has
    /// passed (one caller looks; concurrent handshakes use the current key).
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        if let Some(mut check) = self.check.try_lock() {
            if check.at.elapsed() >= self.interval {
                self.reload(&mut check);
            }
        }
        self.current.read().clone()
    }

    /// Looks at the files now. Returns the last reload error, if the files hold
    /// something unusable.
    pub(crate) fn reload_now(&self) -> std::result::Result<(), String> {
        let mut check = self.check.lock();
        self.reload(&mut check);
        check.error.clone().map_or(Ok(()), Err)
    }

    fn reload(&self, check: &mut Check) {
        check.at = Instant::now();
        if !matches!(self.cert, Pem::File(_)) && !matches!(self.key, Pem::File(_)) {
            return;
        }
        let stamp = stamp(&self.cert, &self.key);
        if stamp == check.stamp {
            return;
        }
        check.stamp = stamp;
        match read(&self.cert, &self.key, &self.provider) {
            Ok((_, hash)) if hash == check.hash => check.error = None,
            Ok((certified, hash)) => {
                *self.current.write() = Arc::new(certified);
                check.hash = hash;
                check.error = None;
                tracing::info!(cert = %self.cert.name(), "tls: certificate reloaded");
            }
            Err(e) => {
                tracing::error!(
                    cert = %self.cert.name(),
                    key = %self.key.name(),
                    error = %e,
                    "tls: certificate files changed but cannot be loaded; the previous certificate stays in use"
                );
                check.error = Some(e.to_string());
            }
        }
    }
}

/// Modification time and size of both files; `None` when either cannot be read.
fn stamp(cert: &Pem, key: &Pem) -> Option<[(Option<SystemTime>, u64); 2]> {
    let one = |p: &Pem| match p {
        Pem::File(path) => std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len())),
        Pem::Inline(b) => Some((None, b.len() as u64)),
    };
    Some([one(cert)?, one(key)?])
}

/// Reads and checks a certificate chain and its key; also returns a hash of both.
fn read(cert: &Pem, key: &Pem, provider: &CryptoProvider) -> Result<(CertifiedKey, u64)> {
    let (cert_pem, key_pem) = (cert.read()?, key.read()?);
    let mut h = DefaultHasher::new();
    cert_pem.hash(&mut h);
    key_pem.hash(&mut h);
    let chain = pem::certs(&cert.name(), &cert_pem)?;
    let key_der = pem::key(&key.name(), &key_pem)?;
    let certified = CertifiedKey::from_der(chain, key_der, provider).map_err(|e| {
        Error::invalid(
            format!("{} and {}", cert.name(), key.name()),
            format!("not a usable certificate and key: {e}"),
        )
    })?;
    Ok((certified, h.finish()))
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for Resolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
