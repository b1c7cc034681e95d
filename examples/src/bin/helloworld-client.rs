//! Calls the `helloworld` service: `Helloworld.Call`, then the three streams.
//!
//! ```text
//! helloworld-client [--name NAME] [--count N] [--address HOST:PORT] [--no-streams]
//! ```
//!
//! Discovery uses the same environment as the service (`MICRO_REGISTRY`,
//! `MICRO_REGISTRY_ADDRESS`); `--address` calls that address directly instead.
//! Prints one line per result; exits non-zero on the first failed call.
//!
//! The program is [`examples::programs::helloworld_client`].

use examples::programs::{BoxError, ClientArgs, helloworld_client};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = ClientArgs::parse(std::env::args().skip(1))?;
    helloworld_client(args).await
}
