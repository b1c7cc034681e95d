//! Shared pieces of the example programs: the `Helloworld` handler of go-micro's
//! service template and its messages, logging set-up, and the `helloworld` and
//! `helloworld-client` programs themselves ([`programs`]).

#![allow(clippy::print_stdout)]

pub mod programs;

use std::time::Duration;

use micro::server::{Handler, Routes, Sink, Streaming};
use micro::{Context, RpcError};
use serde::{Deserialize, Serialize};

/// `Helloworld.Call` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallRequest {
    /// Who to greet.
    pub name: String,
}

/// `Helloworld.Call` response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallResponse {
    /// `Hello <name>`.
    pub msg: String,
}

/// A message of the `ClientStream` and `BidiStream` requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StrokeMessage {
    /// A number.
    pub stroke: i64,
}

/// `ServerStream` request and response messages, `ClientStream` response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CountMessage {
    /// A count.
    pub count: i64,
}

/// The handler of go-micro's service template: `Call`, `ClientStream`,
/// `ServerStream` and `BidiStream`.
#[derive(Debug, Default)]
pub struct Helloworld;

impl Helloworld {
    /// `{"name"}` -> `{"msg": "Hello <name>"}`.
    pub async fn call(&self, _ctx: Context, req: CallRequest) -> Result<CallResponse, RpcError> {
        Ok(CallResponse {
            msg: format!("Hello {}", req.name),
        })
    }

    /// Counts the strokes the caller sends: a stream of `{"stroke"}` -> `{"count"}`.
    pub async fn client_stream(
        &self,
        _ctx: Context,
        mut strokes: Streaming<StrokeMessage>,
    ) -> Result<CountMessage, RpcError> {
        let mut count = 0;
        while strokes.recv().await?.is_some() {
            count += 1;
        }
        Ok(CountMessage { count })
    }

    /// `{"count": n}` -> n messages `{"count": i}`, i in 0..n (at most 10 000).
    pub async fn server_stream(
        &self,
        _ctx: Context,
        req: CountMessage,
        mut out: Sink<CountMessage>,
    ) -> Result<(), RpcError> {
        if !(0..=10_000).contains(&req.count) {
            return Err(RpcError::bad_request(
                "helloworld",
                "count must be between 0 and 10000",
            ));
        }
        for i in 0..req.count {
            out.send(&CountMessage { count: i }).await?;
        }
        Ok(())
    }

    /// Echoes every `{"stroke"}` back.
    pub async fn bidi_stream(
        &self,
        _ctx: Context,
        mut strokes: Streaming<StrokeMessage>,
        mut out: Sink<StrokeMessage>,
    ) -> Result<(), RpcError> {
        while let Some(s) = strokes.recv().await? {
            out.send(&s).await?;
        }
        Ok(())
    }
}

impl Handler for Helloworld {
    const NAME: &'static str = "Helloworld";

    fn routes(routes: &mut Routes<Self>) {
        routes
            .unary("Call", Self::call)
            .client_stream("ClientStream", Self::client_stream)
            .server_stream("ServerStream", Self::server_stream)
            .bidi("BidiStream", Self::bidi_stream);
    }
}

/// Logs to stderr; `RUST_LOG` filters with `target=level` directives (`info`,
/// `micro=debug,warn`; default `info`). The filter is tracing-subscriber's
/// `Targets`, which needs no regular-expression engine: the example servers stay
/// small in memory.
pub fn init_logging() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .try_init();
}

/// A short pause, for demos that show events happening in order.
pub async fn pause() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// The event of the pub/sub examples, on topic [`EVENTS_TOPIC`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExampleEvent {
    /// A unique id.
    pub id: String,
    /// Unix time in milliseconds.
    pub timestamp: i64,
    /// Free text.
    pub message: String,
}

/// The topic of the pub/sub examples.
pub const EVENTS_TOPIC: &str = "example.events";
