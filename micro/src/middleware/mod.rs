//! Middleware: tower layers around the server's handlers and the client's calls.
//!
//! Both sides are tower stacks, so any tower (or tower-http style) layer whose
//! errors convert into `tower::BoxError` fits:
//!
//! * the client: [`ClientOptions::layer`](crate::client::ClientOptions::layer)
//!   around each call, stream opening and publish (go-micro's `ClientWrapper`), and
//!   [`ClientOptions::attempt_layer`](crate::client::ClientOptions::attempt_layer)
//!   around each attempt on a node (go-micro's `CallWrapper`);
//!
//! [`from_fn`] turns an async function into a layer, the way go-micro's wrappers
//! read.

mod from_fn;

pub use from_fn::{FromFn, FromFnLayer, Next, from_fn};
