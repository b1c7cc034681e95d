//! Publishes events to `example.events` through the HTTP broker.
//!
//! ```text
//! pubsub-publisher [--count N] [--interval-ms MS] [--message TEXT]
//! ```
//!
//! Uses the same environment as the subscriber (`MICRO_REGISTRY`,
//! `MICRO_REGISTRY_ADDRESS`) to find the subscribers. Prints one line per event;
//! exits non-zero if an event could not be published (for example when nobody
//! subscribes).

#![allow(clippy::print_stdout)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use examples::{EVENTS_TOPIC, ExampleEvent, init_logging};
use micro::Service;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let (mut count, mut interval, mut message) = (1u64, 100u64, "hello".to_owned());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--count" => count = value()?.parse()?,
            "--interval-ms" => interval = value()?.parse()?,
            "--message" => message = value()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let service = Service::builder("pubsub-publisher").from_env()?.build()?;
    let client = service.client();
    let mut failed = false;
    for i in 0..count {
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
        let event = ExampleEvent {
            id: format!("event-{i}"),
            timestamp,
            message: message.clone(),
        };
        match client
            .message(EVENTS_TOPIC)
            .metadata("X-Example", "pubsub")
            .publish(&event)
            .await
        {
            Ok(()) => println!("published {}", event.id),
            Err(e) => {
                println!("failed {}: {e}", event.id);
                failed = true;
            }
        }
        if i + 1 < count {
            tokio::time::sleep(Duration::from_millis(interval)).await;
        }
    }
    // Let the broker finish deliveries it retries in the background.
    service.stop().await?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
