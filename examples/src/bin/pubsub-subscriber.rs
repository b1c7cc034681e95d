//! Subscribes to `example.events` and prints each event as a JSON line.
//!
//! ```text
//! pubsub-subscriber [--queue NAME]
//! ```
//!
//! A service named `pubsub-subscriber` with one subscriber; run several across
//! processes with a shared registry (`MICRO_REGISTRY=etcd
//! MICRO_REGISTRY_ADDRESS=127.0.0.1:2379`) and, to reach them from other hosts,
//! `MICRO_BROKER_ADDRESS`. Without `--queue` every subscriber gets every event;
//! with the same `--queue` one of them gets each event. Prints `READY` once
//! subscribed; stops (unsubscribing, deregistering) on SIGINT/SIGTERM/SIGQUIT.

#![allow(clippy::print_stdout)]

use std::io::Write;

use examples::{EVENTS_TOPIC, ExampleEvent, init_logging};
use micro::server::{Handler, Routes};
use micro::{Context, RpcError, Service};

/// Prints each event as a JSON line.
struct Printer {
    queue: Option<String>,
}

impl Printer {
    async fn print(&self, ctx: Context, ev: ExampleEvent) -> Result<(), RpcError> {
        let line = serde_json::json!({
            "topic": ctx.topic(),
            "id": ev.id,
            "timestamp": ev.timestamp,
            "message": ev.message,
        });
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|_| out.flush())
            .map_err(|e| RpcError::internal("pubsub-subscriber", e.to_string()))
    }
}

impl Handler for Printer {
    const NAME: &'static str = "Printer";
    fn routes(r: &mut Routes<Self>) {
        match r.handler().queue.clone() {
            Some(q) => r.subscribe_queue("Print", EVENTS_TOPIC, &q, Self::print),
            None => r.subscribe("Print", EVENTS_TOPIC, Self::print),
        };
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let mut queue = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--queue" => queue = Some(args.next().ok_or("--queue needs a value")?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let service = Service::builder("pubsub-subscriber")
        .from_env()?
        .handle(Printer { queue })
        .build()?;
    service.start().await?;
    println!("READY {}", service.server().node_id());
    std::io::stdout().flush()?;
    let waited = service.wait().await;
    service.stop().await?;
    waited?;
    Ok(())
}
