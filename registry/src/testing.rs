//! Fault injection for tests: a [`Registry`] wrapper that counts lookups and can be
//! told to fail, answer empty, or answer slowly. Enabled by the `testing` feature.
//!
//! It wraps a real registry (usually [`MemoryRegistry`](crate::MemoryRegistry)); it
//! does not stand in for one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::{Error, RegisterOptions, Registry, Result, ServiceRecord, WatchOptions, Watcher};

/// What [`Faulty::get_service`](Registry::get_service) does instead of answering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Answer from the wrapped registry.
    #[default]
    None,
    /// Fail with a backend error.
    Fail,
    /// Answer an empty list.
    Empty,
    /// Fail with [`Error::NotFound`].
    NotFound,
}

/// The test error [`Fault::Fail`] produces.
#[derive(Debug, thiserror::Error)]
#[error("injected failure")]
pub struct Injected;

/// A registry wrapper with injectable faults on lookups and watches.
pub struct Faulty {
    inner: Arc<dyn Registry>,
    fault: Mutex<Fault>,
    delay: Mutex<Duration>,
    watch_fails: Mutex<bool>,
    register_fails: Mutex<bool>,
    register_applied_then_fails: Mutex<bool>,
    deregister_fails: Mutex<bool>,
    write_delay: Mutex<Duration>,
    registers: AtomicUsize,
    lookups: AtomicUsize,
    watches: AtomicUsize,
    open_watches: Arc<AtomicUsize>,
}

impl Faulty {
    /// Wraps `inner` with no fault.
    pub fn new(inner: Arc<dyn Registry>) -> Self {
        Faulty {
            inner,
            fault: Mutex::new(Fault::None),
            delay: Mutex::new(Duration::ZERO),
            watch_fails: Mutex::new(false),
            register_fails: Mutex::new(false),
            register_applied_then_fails: Mutex::new(false),
            deregister_fails: Mutex::new(false),
            write_delay: Mutex::new(Duration::ZERO),
            registers: AtomicUsize::new(0),
            lookups: AtomicUsize::new(0),
            watches: AtomicUsize::new(0),
            open_watches: Arc::default(),
        }
    }

    /// Sets what lookups do from now on.
    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock() = fault;
    }

    /// Makes every lookup take `d` before it answers.
    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock() = d;
    }

    /// Makes starting a watch fail (or work again).
    pub fn set_watch_fails(&self, fails: bool) {
        *self.watch_fails.lock() = fails;
    }

    /// Makes `register` fail (or work again).
    pub fn set_register_fails(&self, fails: bool) {
        *self.register_fails.lock() = fails;
    }

    /// Makes `register` write the record and then fail anyway, as a registration
    /// whose answer timed out after the registry applied it (or work again).
    pub fn set_register_applied_then_fails(&self, on: bool) {
        *self.register_applied_then_fails.lock() = on;
    }

    /// Makes every `register` and `deregister` take `d` first (a registry that is
    /// slow or unreachable until the caller's timeout).
    pub fn set_write_delay(&self, d: Duration) {
        *self.write_delay.lock() = d;
    }

    /// Makes `deregister` fail without removing anything (or work again).
    pub fn set_deregister_fails(&self, fails: bool) {
        *self.deregister_fails.lock() = fails;
    }

    /// How many `register` calls were made.
    pub fn registers(&self) -> usize {
        self.registers.load(Ordering::SeqCst)
    }

    /// How many `get_service` calls were made.
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    /// How many `watch` calls were made.
    pub fn watches(&self) -> usize {
        self.watches.load(Ordering::SeqCst)
    }

    /// How many watchers it handed out are still alive (not dropped).
    pub fn open_watches(&self) -> usize {
        self.open_watches.load(Ordering::SeqCst)
    }
}

/// A watcher of the wrapped registry, counted in [`Faulty::open_watches`] until
/// dropped.
struct Counted {
    inner: Box<dyn Watcher>,
    open: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Watcher for Counted {
    async fn next(&mut self) -> Result<crate::WatchEvent> {
        self.inner.next().await
    }

    fn stop(&mut self) {
        self.inner.stop();
    }
}

#[async_trait]
impl Registry for Faulty {
    async fn register(&self, service: &ServiceRecord, opts: &RegisterOptions) -> Result<()> {
        self.registers.fetch_add(1, Ordering::SeqCst);
        let delay = *self.write_delay.lock();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let fails = *self.register_fails.lock();
        if fails {
            return Err(Error::backend("faulty", "register", Injected));
        }
        let applied_then_fails = *self.register_applied_then_fails.lock();
        self.inner.register(service, opts).await?;
        if applied_then_fails {
            return Err(Error::backend("faulty", "register", Injected));
        }
        Ok(())
    }

    async fn deregister(&self, service: &ServiceRecord) -> Result<()> {
        let delay = *self.write_delay.lock();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let fails = *self.deregister_fails.lock();
        if fails {
            return Err(Error::backend("faulty", "deregister", Injected));
        }
        self.inner.deregister(service).await
    }

    async fn get_service(&self, name: &str) -> Result<Vec<ServiceRecord>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let fault = *self.fault.lock();
        match fault {
            Fault::None => self.inner.get_service(name).await,
            Fault::Fail => Err(Error::backend("faulty", "get_service", Injected)),
            Fault::Empty => Ok(Vec::new()),
            Fault::NotFound => Err(Error::NotFound),
        }
    }

    async fn list_services(&self) -> Result<Vec<ServiceRecord>> {
        self.inner.list_services().await
    }

    async fn watch(&self, opts: &WatchOptions) -> Result<Box<dyn Watcher>> {
        self.watches.fetch_add(1, Ordering::SeqCst);
        let fails = *self.watch_fails.lock();
        if fails {
            return Err(Error::backend("faulty", "watch", Injected));
        }
        let inner = self.inner.watch(opts).await?;
        self.open_watches.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(Counted {
            inner,
            open: self.open_watches.clone(),
        }))
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}
