//! [`RecoverLayer`]: a panic in a handler becomes a 500 for the caller.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use tower::{BoxError, Layer, Service};

use crate::RpcError;
use crate::wire::SERVER_ID;

/// Turns a panic of the service below (while called or while its future runs)
/// into an [`RpcError`] 500, `handler panicked: <message>`, logged with `tracing`;
/// the connection and the server go on. The server puts it right above the
/// handlers by default ([`ServerOptions::recover`](crate::server::ServerOptions::recover)).
#[derive(Clone, Copy, Debug, Default)]
pub struct RecoverLayer;

impl RecoverLayer {
    /// The layer.
    pub fn new() -> Self {
        RecoverLayer
    }
}

impl<S> Layer<S> for RecoverLayer {
    type Service = Recover<S>;

    fn layer(&self, inner: S) -> Recover<S> {
        Recover { inner }
    }
}

/// The service of [`RecoverLayer`].
#[derive(Clone, Debug)]
pub struct Recover<S> {
    inner: S,
}

impl<S, R> Service<R> for Recover<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = RecoverFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: R) -> Self::Future {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(fut) => RecoverFuture {
                state: State::Running {
                    fut: AssertUnwindSafe(fut).catch_unwind(),
                },
            },
            Err(p) => RecoverFuture {
                state: State::Panicked {
                    message: Some(crate::server::panic_text(&*p)),
                },
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Recover`].
    pub struct RecoverFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] fut: CatchUnwind<AssertUnwindSafe<F>> },
        Panicked { message: Option<String> },
    }
}

fn panicked_boxed(what: String) -> BoxError {
    Box::new(panicked(what))
}

/// The error a panic answers: logged, and a 500 naming it.
pub(crate) fn panicked(what: String) -> RpcError {
    tracing::error!(panic = %what, "handler panicked");
    RpcError::internal(SERVER_ID, format!("handler panicked: {what}"))
}

impl<F, T, E> Future for RecoverFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Running { fut } => match fut.poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(r)) => Poll::Ready(r.map_err(Into::into)),
                Poll::Ready(Err(p)) => {
                    Poll::Ready(Err(panicked_boxed(crate::server::panic_text(&*p))))
                }
            },
            StateProj::Panicked { message } => Poll::Ready(Err(panicked_boxed(
                message.take().unwrap_or_else(|| "unknown panic".into()),
            ))),
        }
    }
}
