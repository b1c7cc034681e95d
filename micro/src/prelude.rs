//! What a service or a client usually needs, in one import:
//! `use micro::prelude::*;`. No two names here collide, with each other or with
//! the standard prelude.
//!
//! ```
//! use micro::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Ping { n: i64 }
//!
//! struct Pinger;
//!
//! impl Pinger {
//!     async fn ping(&self, _ctx: Context, p: Ping) -> Result<Ping, RpcError> {
//!         if p.n < 0 {
//!             return Err(RpcError::with_code("pinger", "negative", Code::BadRequest));
//!         }
//!         Ok(Ping { n: p.n + 1 })
//!     }
//! }
//!
//! impl Handler for Pinger {
//!     const NAME: &'static str = "Pinger";
//!     fn routes(r: &mut Routes<Self>) {
//!         r.unary("Ping", Self::ping);
//!     }
//! }
//!
//! # fn main() -> Result<(), micro::Error> {
//! let service: Service = Service::builder("pinger").handle(Pinger).build()?;
//! # let _ = service; Ok(()) }
//! ```

pub use crate::client::{
    CallError, CallErrorKind, Client, ClientOptions, RpcClient, ServiceClient,
};
pub use crate::errors::Code;
pub use crate::server::{Handler, Payload, Routes, Sink, Streaming, Subscriber};
pub use crate::{Context, Metadata, RpcError, Service, ServiceBuilder};
