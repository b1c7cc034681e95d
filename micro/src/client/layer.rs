//! The client's tower stacks: how layers are stored until the client is built and
//! put together around the client's own services.

use std::sync::Arc;

use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, Service, ServiceExt};

use super::error::CallError;
use super::request::{ClientRequest, ClientResponse};

/// The service a client layer wraps: the rest of the client's stack, boxed.
pub type BoxClientService = BoxCloneSyncService<ClientRequest, ClientResponse, CallError>;

/// A layer, erased until the client is built.
#[derive(Clone)]
pub(crate) struct StoredLayer(Arc<dyn Fn(BoxClientService) -> BoxClientService + Send + Sync>);

impl StoredLayer {
    /// Erases `layer`: its service's errors become [`CallError`]s
    /// ([`CallError::from_layer`]), so tower's own layers (whose errors are boxed)
    /// compose with ours.
    pub(crate) fn new<L>(layer: L) -> Self
    where
        L: Layer<BoxClientService> + Send + Sync + 'static,
        L::Service:
            Service<ClientRequest, Response = ClientResponse> + Clone + Send + Sync + 'static,
        <L::Service as Service<ClientRequest>>::Error: Into<BoxError>,
        <L::Service as Service<ClientRequest>>::Future: Send + 'static,
    {
        StoredLayer(Arc::new(move |inner| {
            BoxCloneSyncService::new(
                layer
                    .layer(inner)
                    .map_err(|e| CallError::from_layer(e.into())),
            )
        }))
    }
}

/// `bottom` wrapped in `layers`, the first of them outermost (as tower's
/// `ServiceBuilder` orders them); `None` when there are no layers, so that an
/// empty stack costs nothing.
pub(crate) fn stack(
    layers: &[StoredLayer],
    bottom: impl FnOnce() -> BoxClientService,
) -> Option<BoxClientService> {
    if layers.is_empty() {
        return None;
    }
    Some(layers.iter().rev().fold(bottom(), |svc, l| (l.0)(svc)))
}

/// Runs one request through a stack.
pub(crate) async fn run(
    svc: &BoxClientService,
    req: ClientRequest,
) -> Result<ClientResponse, CallError> {
    svc.clone().oneshot(req).await
}
