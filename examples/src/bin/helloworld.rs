//! The `helloworld` service: go-micro's service template in Rust.
//!
//! Configured by the environment with go-micro's names (`MICRO_REGISTRY=etcd`,
//! `MICRO_REGISTRY_ADDRESS=127.0.0.1:2379`, `MICRO_SERVER_ADDRESS=127.0.0.1:0`, ...).
//! Prints `READY <node id> <address>` on stdout once started, and stops gracefully
//! (deregister, drain) on SIGINT, SIGTERM or SIGQUIT.
//!
//! The program is [`examples::programs::helloworld`].

#[tokio::main]
async fn main() -> Result<(), examples::programs::BoxError> {
    examples::programs::helloworld().await
}
