//! The server's tower stack: layers stored until the server starts, and put
//! together around the handlers and subscribers.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, Service, ServiceExt};

use super::request::{ServerRequest, ServerResponse};
use crate::RpcError;
use crate::wire::SERVER_ID;

/// The service a server layer wraps: the rest of the server's stack, boxed.
pub type BoxServerService = BoxCloneSyncService<ServerRequest, ServerResponse, RpcError>;

/// A layer, erased until the server starts.
#[derive(Clone)]
pub(crate) struct StoredServerLayer(
    Arc<dyn Fn(BoxServerService) -> BoxServerService + Send + Sync>,
);

impl StoredServerLayer {
    /// Erases `layer`: its service's errors become [`RpcError`]s
    /// ([`rpc_error_from_layer`]), so tower's own layers (whose errors are boxed)
    /// compose with ours.
    pub(crate) fn new<L>(layer: L) -> Self
    where
        L: Layer<BoxServerService> + Send + Sync + 'static,
        L::Service:
            Service<ServerRequest, Response = ServerResponse> + Clone + Send + Sync + 'static,
        <L::Service as Service<ServerRequest>>::Error: Into<BoxError>,
        <L::Service as Service<ServerRequest>>::Future: Send + 'static,
    {
        StoredServerLayer(Arc::new(move |inner| {
            BoxCloneSyncService::new(
                layer
                    .layer(inner)
                    .map_err(|e| rpc_error_from_layer(e.into())),
            )
        }))
    }
}

/// The error a layer's failure answers the caller with: an [`RpcError`] passes
/// through; tower's timeout is a 408, tower's load shedding a 503; anything else
/// a 500 with its text.
pub fn rpc_error_from_layer(e: BoxError) -> RpcError {
    let e = match e.downcast::<RpcError>() {
        Ok(e) => return *e,
        Err(e) => e,
    };
    if e.is::<tower::timeout::error::Elapsed>() {
        return RpcError::timeout(SERVER_ID, "deadline exceeded while handling the request");
    }
    if e.is::<tower::load_shed::error::Overloaded>() {
        return RpcError::new(SERVER_ID, "server overloaded", 503);
    }
    RpcError::internal(SERVER_ID, crate::error::chain("", &*e))
}

/// The handlers (or subscribers) run for one request, with panics turned into 500s
/// when `recover` is on: recovery sits right above the handler, below every layer,
/// and costs no boxing.
async fn work(req: ServerRequest, recover: bool) -> Result<ServerResponse, RpcError> {
    if !recover {
        return req.run().await;
    }
    match AssertUnwindSafe(req.run()).catch_unwind().await {
        Ok(r) => r,
        Err(p) => Err(crate::middleware::panicked(super::panic_text(&*p))),
    }
}

/// The server's stack: the user's layers (none: the handler is called directly)
/// over the handlers, with panic recovery right above them.
#[derive(Clone)]
pub(crate) struct Stack {
    layers: Option<BoxServerService>,
    recover: bool,
}

impl Stack {
    /// `layers` (the first outermost) over the handlers.
    pub(crate) fn new(layers: &[StoredServerLayer], recover: bool) -> Self {
        let layers = (!layers.is_empty()).then(|| {
            let bottom = BoxCloneSyncService::new(tower::service_fn(move |req: ServerRequest| {
                work(req, recover)
            }));
            layers.iter().rev().fold(bottom, |svc, l| (l.0)(svc))
        });
        Stack { layers, recover }
    }

    /// Runs one request through the stack.
    pub(crate) async fn run(&self, req: ServerRequest) -> Result<ServerResponse, RpcError> {
        match &self.layers {
            None => work(req, self.recover).await,
            Some(s) => s.clone().oneshot(req).await,
        }
    }
}
