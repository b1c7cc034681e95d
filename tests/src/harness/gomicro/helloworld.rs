//! Our side of the interop scenarios: a `Helloworld` handler with the Go peer
//! server's endpoints, subscribers that record what they receive, and the
//! builder both use.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use examples::{CallRequest, CallResponse, CountMessage, ExampleEvent, Helloworld, StrokeMessage};
use micro::codec::go;
use micro::registry::Registry;
use micro::server::{Handler, Routes, Sink, Streaming, Subscriber};
use micro::{Context, RpcError, Service, ServiceBuilder};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// `Helloworld.Fail` request: the error to return.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FailRequest {
    /// The error code.
    pub code: i32,
    /// The error detail.
    pub detail: String,
}

/// `Helloworld.Fail` response (never sent).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FailResponse {}

/// `Helloworld.Meta` request (empty).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaRequest {}

/// `Helloworld.Meta` response: the metadata the handler saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaResponse {
    /// Every metadata pair of the handler's context.
    pub metadata: BTreeMap<String, String>,
}

/// `Helloworld.Echo` request and response: the JSON shapes that must cross the Go
/// boundary unchanged (the Go peers' `peer.Payload`). Go's nil slices and maps
/// (`null`) read as empty, `[]byte` is base64, a nil pointer stays `null`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// A float.
    pub f64: f64,
    /// Floats.
    #[serde(default, deserialize_with = "go::nullable")]
    pub f64s: Vec<f64>,
    /// A 32-bit float.
    pub f32: f32,
    /// A signed 64-bit integer.
    pub i64: i64,
    /// An unsigned 64-bit integer.
    pub u64: u64,
    /// Text.
    pub text: String,
    /// Go's `[]byte`.
    #[serde(default, with = "go::base64")]
    pub bytes: Vec<u8>,
    /// Go's `[]string`.
    #[serde(default, deserialize_with = "go::nullable")]
    pub list: Vec<String>,
    /// Go's `map[string]float64`.
    #[serde(default, deserialize_with = "go::nullable")]
    pub map: BTreeMap<String, f64>,
    /// Go's `*Inner`.
    pub inner: Option<Inner>,
    /// Go's `[]Inner`.
    #[serde(default, deserialize_with = "go::nullable")]
    pub inners: Vec<Inner>,
}

/// A message nested in [`Payload`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inner {
    /// A name.
    pub name: String,
    /// Floats.
    #[serde(default, deserialize_with = "go::nullable")]
    pub values: Vec<f64>,
    /// Go's `map[string]string`.
    #[serde(default, deserialize_with = "go::nullable")]
    pub tags: BTreeMap<String, String>,
}

/// Things our side received, shared between a handler and the test.
#[derive(Debug)]
pub struct Recorder<T> {
    items: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for Recorder<T> {
    fn clone(&self) -> Self {
        Recorder {
            items: self.items.clone(),
        }
    }
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Recorder {
            items: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl<T: Clone> Recorder<T> {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one item.
    pub fn push(&self, item: T) {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(item);
    }

    /// Everything recorded so far.
    pub fn items(&self) -> Vec<T> {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many items were recorded.
    pub fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits (polling, at most `limit`) until `done` holds for the items; returns
    /// the items then, or when the time ran out.
    pub async fn wait_for(&self, limit: Duration, done: impl Fn(&[T]) -> bool) -> Vec<T> {
        let deadline = Instant::now() + limit;
        loop {
            let items = self.items();
            if done(&items) || Instant::now() >= deadline {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The Go peer server's `Helloworld` in Rust: the service template's four
/// endpoints (the examples' handler) plus `Fail` and `Meta`. It records the count
/// of every finished client stream, since a Go client cannot read the reply.
#[derive(Debug, Default)]
pub struct InteropHelloworld {
    template: Arc<Helloworld>,
    client_streams: Recorder<i64>,
    runs: Arc<AtomicUsize>,
}

impl InteropHelloworld {
    /// A handler recording client-stream counts into `client_streams`.
    pub fn new(client_streams: Recorder<i64>) -> Self {
        InteropHelloworld {
            template: Arc::new(Helloworld),
            client_streams,
            runs: Arc::default(),
        }
    }

    /// The count of `Fail` and `Echo` runs, shared with the test (a retried call
    /// must not run twice).
    pub fn runs(&self) -> Arc<AtomicUsize> {
        self.runs.clone()
    }

    async fn call(&self, ctx: Context, req: CallRequest) -> Result<CallResponse, RpcError> {
        self.template.clone().call(ctx, req).await
    }

    async fn client_stream(
        &self,
        ctx: Context,
        strokes: Streaming<StrokeMessage>,
    ) -> Result<CountMessage, RpcError> {
        let rsp = self.template.clone().client_stream(ctx, strokes).await?;
        self.client_streams.push(rsp.count);
        Ok(rsp)
    }

    async fn server_stream(
        &self,
        ctx: Context,
        req: CountMessage,
        out: Sink<CountMessage>,
    ) -> Result<(), RpcError> {
        self.template.clone().server_stream(ctx, req, out).await
    }

    async fn bidi_stream(
        &self,
        ctx: Context,
        strokes: Streaming<StrokeMessage>,
        out: Sink<StrokeMessage>,
    ) -> Result<(), RpcError> {
        self.template.clone().bidi_stream(ctx, strokes, out).await
    }

    /// Returns the error asked for, with id `helloworld` as the Go server does.
    async fn fail(&self, _ctx: Context, req: FailRequest) -> Result<FailResponse, RpcError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Err(RpcError::new("helloworld", req.detail, req.code))
    }

    /// Returns the payload it got.
    async fn echo(&self, _ctx: Context, req: Payload) -> Result<Payload, RpcError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(req)
    }

    /// Echoes the context's metadata.
    async fn meta(&self, ctx: Context, _req: MetaRequest) -> Result<MetaResponse, RpcError> {
        let metadata = ctx
            .metadata()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(MetaResponse { metadata })
    }
}

impl Handler for InteropHelloworld {
    const NAME: &'static str = "Helloworld";

    fn routes(routes: &mut Routes<Self>) {
        routes
            .unary("Call", Self::call)
            .client_stream("ClientStream", Self::client_stream)
            .server_stream("ServerStream", Self::server_stream)
            .bidi("BidiStream", Self::bidi_stream)
            .unary("Fail", Self::fail)
            .unary("Meta", Self::meta)
            .unary("Echo", Self::echo);
    }
}

/// One event one of our subscribers received.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    /// The decoded event.
    pub event: ExampleEvent,
    /// The event's metadata (its broker headers).
    pub metadata: BTreeMap<String, String>,
}

/// A subscriber of `topic` (in `queue`, if given) recording what it receives.
pub fn subscriber(topic: &str, queue: Option<&str>, into: Recorder<Received>) -> Subscriber {
    let sub = Subscriber::new(topic, move |ctx: Context, event: ExampleEvent| {
        let into = into.clone();
        async move {
            let metadata = ctx
                .metadata()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            into.push(Received { event, metadata });
            Ok::<(), RpcError>(())
        }
    });
    match queue {
        Some(q) => sub.queue(q),
        None => sub,
    }
}

/// A service builder for our side: `name` on `registry`, listening on
/// 127.0.0.1 (server and HTTP broker), lingering 200 ms after deregistering.
pub fn our_server(name: &str, registry: Arc<dyn Registry>) -> ServiceBuilder {
    Service::builder(name)
        .registry(registry)
        .address("127.0.0.1:0")
        .broker_address("127.0.0.1:0")
        .drain_linger(Duration::from_millis(200))
}
