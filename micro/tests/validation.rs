//! `ServiceBuilder::build` reports every declaration mistake instead of silently
//! keeping one of two versions.

#![allow(clippy::unwrap_used)]

mod common;

use micro::server::{Handler, Routes};
use micro::{Context, Error, RpcError, Service};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Ping {
    n: i64,
}

struct Twice;

impl Twice {
    async fn a(&self, _: Context, p: Ping) -> Result<Ping, RpcError> {
        Ok(p)
    }
    async fn b(&self, _: Context, p: Ping) -> Result<Ping, RpcError> {
        Ok(Ping { n: p.n + 1 })
    }
}

impl Handler for Twice {
    const NAME: &'static str = "Twice";
    fn routes(r: &mut Routes<Self>) {
        r.unary("Call", Self::a).unary("Call", Self::b);
    }
}

struct UnknownMetadata;

impl UnknownMetadata {
    async fn call(&self, _: Context, p: Ping) -> Result<Ping, RpcError> {
        Ok(p)
    }
}

impl Handler for UnknownMetadata {
    const NAME: &'static str = "Meta";
    fn routes(r: &mut Routes<Self>) {
        r.unary("Call", Self::call)
            .metadata("Cal", "idempotent", "true");
    }
}

fn config_error(r: Result<Service, Error>) -> String {
    match r {
        Err(Error::Config(why)) => why,
        Err(e) => panic!("not a configuration error: {e}"),
        Ok(_) => panic!("build accepted the mistake"),
    }
}

#[test]
fn an_endpoint_declared_twice_is_refused() {
    let why = config_error(Service::builder("v").handle(Twice).build());
    assert!(why.contains("Twice.Call is declared twice"), "{why}");
}

#[test]
fn metadata_for_an_undeclared_endpoint_is_refused() {
    let why = config_error(Service::builder("v").handle(UnknownMetadata).build());
    assert!(why.contains("Meta.Cal"), "{why}");
}

#[test]
fn a_handler_added_twice_is_refused() {
    let why = config_error(
        Service::builder("v")
            .handle(common::Test::named("a"))
            .handle(common::Test::named("b"))
            .build(),
    );
    assert!(why.contains("handler Test added twice"), "{why}");
}
