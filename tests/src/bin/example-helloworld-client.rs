//! The examples' `helloworld-client`, built inside this package so that the
//! integration tests can run it (`CARGO_BIN_EXE_example-helloworld-client`): the
//! same program and arguments, [`examples::programs::helloworld_client`].

use examples::programs::{BoxError, ClientArgs, helloworld_client};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = ClientArgs::parse(std::env::args().skip(1))?;
    helloworld_client(args).await
}
