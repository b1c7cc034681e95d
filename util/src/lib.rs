//! Small pieces every micro crate needs once: [`addr`] (the one `host:port`
//! parser and joiner) and [`Backoff`] (the one retry pause). The crates sit side by
//! side (the transport does not depend on the registry, nor the registry on the
//! transport), so these live below all of them.

pub mod addr;
mod backoff;

pub use backoff::Backoff;
