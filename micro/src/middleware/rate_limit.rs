//! [`RateLimitLayer`]: a token bucket that refuses what exceeds it.

use std::future::{Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

use crate::RpcError;

/// Lets through `rate` requests per second on average with bursts of up to
/// `burst`, and refuses the rest at once with an [`RpcError`] 429 `rate limit
/// exceeded` (id `go.micro.ratelimit`): on the server the caller gets it, on the
/// client the call is [`Rejected`](crate::client::CallErrorKind::Rejected) (tried on
/// another node when there is one). Clones of the layer's services share one
/// bucket. tower's own `RateLimitLayer` waits instead of refusing, and its service
/// cannot be cloned, which a server stack needs.
///
/// ```
/// use micro::middleware::RateLimitLayer;
///
/// let layer = RateLimitLayer::new(500.0, 50); // 500/s, bursts of 50
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    bucket: Arc<Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

/// The id of the rate limiter's errors.
pub const RATE_LIMIT_ID: &str = "go.micro.ratelimit";

impl RateLimitLayer {
    /// `rate` requests per second (at least one per hour), bursts of `burst` (at
    /// least 1).
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimitLayer {
            bucket: Arc::new(Mutex::new(Bucket {
                rate: if rate.is_finite() {
                    rate.max(1.0 / 3600.0)
                } else {
                    f64::MAX
                },
                burst,
                tokens: burst,
                at: Instant::now(),
            })),
        }
    }
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
        }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<Mutex<Bucket>>,
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = RateLimitFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let mut b = self.bucket.lock();
        if b.take() {
            drop(b);
            return RateLimitFuture {
                state: RateLimitState::Inner {
                    fut: self.inner.call(req),
                },
            };
        }
        let rate = b.rate;
        drop(b);
        let err = RpcError::new(
            RATE_LIMIT_ID,
            format!("rate limit exceeded ({rate}/s)"),
            429,
        );
        RateLimitFuture {
            state: RateLimitState::Refused {
                ready: std::future::ready(Err(Box::new(err) as BoxError)),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RateLimit`].
    pub struct RateLimitFuture<F, T> {
        #[pin]
        state: RateLimitState<F, T>,
    }
}

pin_project_lite::pin_project! {
    #[project = RateLimitProj]
    enum RateLimitState<F, T> {
        // Let through.
        Inner { #[pin] fut: F },
        // Refused.
        Refused { #[pin] ready: Ready<Result<T, BoxError>> },
    }
}

impl<F, T, E> Future for RateLimitFuture<F, T>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            RateLimitProj::Inner { fut } => fut.poll(cx).map_err(Into::into),
            RateLimitProj::Refused { ready } => ready.poll(cx),
        }
    }
}
