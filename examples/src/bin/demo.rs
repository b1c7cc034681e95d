//! An in-process tour that needs nothing external: a `helloworld` service registers
//! in a memory registry and serves over the HTTP transport on loopback; a client
//! finds it, calls it and uses a stream; the service stops and deregisters.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use examples::{CallRequest, CallResponse, CountMessage, Helloworld, StrokeMessage, init_logging};
use micro::Service;
use micro::registry::{MemoryRegistry, Registry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let registry = Arc::new(MemoryRegistry::new());

    println!("1. start the helloworld service (memory registry, HTTP transport on 127.0.0.1)");
    let service = Service::builder("helloworld")
        .registry(registry.clone())
        .address("127.0.0.1:0")
        .broker_address("127.0.0.1:0")
        .drain_linger(Duration::from_millis(100))
        .handle(Helloworld)
        .build()?;
    service.start().await?;

    println!("\n2. what it registered (go-micro's registry JSON):");
    for svc in registry.get_service("helloworld").await? {
        println!("{}", serde_json::to_string_pretty(&svc)?);
    }

    println!("\n3. a client discovers it and calls Helloworld.Call");
    let caller = Service::builder("caller")
        .registry(registry.clone())
        .build()?;
    let client = caller.client();
    let rsp: CallResponse = client
        .request("helloworld", "Helloworld.Call")
        .call(&CallRequest {
            name: "Alice".into(),
        })
        .await?;
    println!("   -> {:?}", rsp.msg);

    println!("\n4. streams");
    let s = client
        .request("helloworld", "Helloworld.ServerStream")
        .server_stream::<CountMessage, CountMessage>(&CountMessage { count: 3 })
        .await?;
    while let Some(m) = s.recv().await? {
        println!("   server stream -> {m:?}");
    }
    s.close().await;
    let s = client
        .request("helloworld", "Helloworld.BidiStream")
        .stream::<StrokeMessage, StrokeMessage>()
        .await?;
    for stroke in 1..=3 {
        s.send(&StrokeMessage { stroke }).await?;
        println!("   bidi stream -> {:?}", s.recv().await?);
    }
    s.close().await;

    println!("\n5. an unknown endpoint is a clear error");
    let err = client
        .request("helloworld", "Helloworld.Nope")
        .call::<_, CallResponse>(&CallRequest::default())
        .await
        .expect_err("no such endpoint");
    println!("   -> {err}");

    println!("\n6. stop: deregister, drain, close");
    service.stop().await?;
    match registry.get_service("helloworld").await {
        Err(e) => println!("   registry lookup now: {e}"),
        Ok(s) => println!("   still registered: {s:?}"),
    }
    caller.stop().await?;
    println!("\ndone");
    Ok(())
}
