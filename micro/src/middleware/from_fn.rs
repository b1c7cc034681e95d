//! [`from_fn`]: a layer from an async function, go-micro's wrapper style.

use std::future::Future;
use std::task::{Context, Poll};

use tower::{Layer, Service};

/// A layer that runs `f(request, next)` for every request: `f` may look at and
/// change the request, call [`Next::run`] (or not, to refuse it), and look at and
/// change the result. This is how go-micro's wrappers read, as an async function
/// instead of a service type, and it works on both sides: around the server's
/// handlers and around the client's calls or attempts.
///
/// ```
/// use micro::client::{CallError, ClientOptions, ClientRequest, ClientResponse};
/// use micro::middleware::{Next, from_fn};
///
/// // go-micro's CallWrapper: logs every attempt with the node it went to.
/// let log_attempts = from_fn(|req: ClientRequest, next: Next<_>| async move {
///     let node = req.target().map(|t| t.address.clone());
///     let result: Result<ClientResponse, CallError> = next.run(req).await;
///     if let Err(e) = &result {
///         tracing::warn!(?node, error = %e, "attempt failed");
///     }
///     result
/// });
/// let opts = ClientOptions::new().attempt_layer(log_attempts);
/// ```
pub fn from_fn<F>(f: F) -> FromFnLayer<F> {
    FromFnLayer { f }
}

/// The layer [`from_fn`] makes.
#[derive(Clone, Debug)]
pub struct FromFnLayer<F> {
    f: F,
}

impl<S, F: Clone> Layer<S> for FromFnLayer<F> {
    type Service = FromFn<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        FromFn {
            inner,
            f: self.f.clone(),
        }
    }
}

/// The service [`from_fn`] makes.
#[derive(Clone, Debug)]
pub struct FromFn<S, F> {
    inner: S,
    f: F,
}

/// The rest of the stack, for a [`from_fn`] function to call.
#[derive(Debug)]
pub struct Next<S> {
    inner: S,
}

impl<S> Next<S> {
    /// Runs the request through the rest of the stack.
    pub async fn run<R>(mut self, req: R) -> Result<S::Response, S::Error>
    where
        S: Service<R>,
    {
        self.inner.call(req).await
    }
}

impl<S, F, Fut, R> Service<R> for FromFn<S, F>
where
    S: Service<R> + Clone,
    F: Fn(R, Next<S>) -> Fut,
    Fut: Future<Output = Result<S::Response, S::Error>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Fut;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Fut {
        // The service that was polled ready runs this request; a clone stays for
        // the next one.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        (self.f)(req, Next { inner: ready })
    }
}
