//! The examples' `helloworld` service, built inside this package so that the
//! integration tests can start it (`CARGO_BIN_EXE_example-helloworld`): the same
//! program, [`examples::programs::helloworld`].

#[tokio::main]
async fn main() -> Result<(), examples::programs::BoxError> {
    examples::programs::helloworld().await
}
