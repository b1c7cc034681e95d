//! [`EndpointTimeoutLayer`]: a deadline per endpoint.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;
use tower::timeout::error::Elapsed;
use tower::{BoxError, Layer, Service};

use super::RequestInfo;

/// Ends a request that runs longer than its endpoint's timeout with tower's
/// [`Elapsed`] error, which the server answers as a 408 and the client reports as
/// a [`Timeout`](crate::client::CallErrorKind::Timeout) (retried like one). Endpoints
/// are `Handler.Method` names (topics for events and publishes); one without a
/// timeout of its own gets the default, if any.
///
/// ```
/// use std::time::Duration;
/// use micro::middleware::EndpointTimeoutLayer;
///
/// let layer = EndpointTimeoutLayer::new(Some(Duration::from_secs(2)))
///     .endpoint("Reports.Build", Duration::from_secs(30));
/// # let _ = layer;
/// ```
#[derive(Clone, Debug, Default)]
pub struct EndpointTimeoutLayer {
    timeouts: Arc<Timeouts>,
}

#[derive(Clone, Debug, Default)]
struct Timeouts {
    default: Option<Duration>,
    by_endpoint: HashMap<String, Duration>,
}

impl EndpointTimeoutLayer {
    /// Endpoints without a timeout of their own get `default` (`None`: no limit).
    pub fn new(default: Option<Duration>) -> Self {
        EndpointTimeoutLayer {
            timeouts: Arc::new(Timeouts {
                default,
                by_endpoint: HashMap::new(),
            }),
        }
    }

    /// `endpoint` gets `timeout`.
    pub fn endpoint(mut self, endpoint: &str, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.timeouts)
            .by_endpoint
            .insert(endpoint.to_owned(), timeout);
        self
    }
}

impl<S> Layer<S> for EndpointTimeoutLayer {
    type Service = EndpointTimeout<S>;

    fn layer(&self, inner: S) -> EndpointTimeout<S> {
        EndpointTimeout {
            inner,
            timeouts: self.timeouts.clone(),
        }
    }
}

/// The service of [`EndpointTimeoutLayer`].
#[derive(Clone, Debug)]
pub struct EndpointTimeout<S> {
    inner: S,
    timeouts: Arc<Timeouts>,
}

impl<S, R> Service<R> for EndpointTimeout<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    R: RequestInfo,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let limit = self
            .timeouts
            .by_endpoint
            .get(req.endpoint())
            .copied()
            .or(self.timeouts.default);
        TimeoutFuture {
            inner: self.inner.call(req),
            sleep: limit.map(|d| Box::pin(tokio::time::sleep(d))),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`EndpointTimeout`].
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: F,
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl<F, T, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(r) = this.inner.poll(cx) {
            return Poll::Ready(r.map_err(Into::into));
        }
        if let Some(s) = this.sleep {
            if s.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Box::new(Elapsed::new())));
            }
        }
        Poll::Pending
    }
}
