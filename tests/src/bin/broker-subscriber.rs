//! A broker subscriber process for cross-process tests: an `HttpBroker` on an etcd
//! registry (`micro-etcd`) subscribes to one topic, prints `READY <address>` once
//! subscribed, then one JSON line per event received
//! (`{"topic":…,"header":{…},"body":"<utf-8 body>"}`), and on SIGTERM (or SIGINT)
//! unsubscribes, disconnects and exits 0. A `kill -9` leaves its registration to
//! expire after its TTL, as a crash does.
//!
//! Flags (each also read from the environment variable in brackets):
//! `--endpoints` (`ETCD_ENDPOINTS`, comma list, default `127.0.0.1:2379`),
//! `--topic` (`TOPIC`, default `events`), `--queue` (`QUEUE`, default none:
//! broadcast), `--ttl-ms` (`TTL_MS`, default 60000), `--interval-ms`
//! (`INTERVAL_MS`, default 30000). Logs go to stderr (`RUST_LOG`).

use std::io::Write;
use std::time::Duration;

use micro_broker::{Broker, Event, HttpBroker, HttpBrokerOptions, SubscribeOptions, handler_fn};
use micro_etcd::EtcdRegistry;
use tokio::signal::unix::{SignalKind, signal};

struct Args {
    endpoints: String,
    topic: String,
    queue: Option<String>,
    ttl: Duration,
    interval: Duration,
}

fn arg(args: &[String], flag: &str, env: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var(env).ok())
}

fn millis(v: Option<String>, default: u64) -> Result<Duration, String> {
    match v {
        None => Ok(Duration::from_millis(default)),
        Some(s) => s
            .parse()
            .map(Duration::from_millis)
            .map_err(|e| format!("bad duration {s:?}: {e}")),
    }
}

fn parse() -> Result<Args, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    Ok(Args {
        endpoints: arg(&args, "--endpoints", "ETCD_ENDPOINTS")
            .unwrap_or_else(|| "127.0.0.1:2379".into()),
        topic: arg(&args, "--topic", "TOPIC").unwrap_or_else(|| "events".into()),
        queue: arg(&args, "--queue", "QUEUE").filter(|q| !q.is_empty()),
        ttl: millis(arg(&args, "--ttl-ms", "TTL_MS"), 60_000)?,
        interval: millis(arg(&args, "--interval-ms", "INTERVAL_MS"), 30_000)?,
    })
}

/// One event as a JSON line.
fn line(ev: &Event) -> String {
    serde_json::json!({
        "topic": ev.topic,
        "header": ev.message.header,
        "body": String::from_utf8_lossy(&ev.message.body),
    })
    .to_string()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let registry = match EtcdRegistry::builder()
        .endpoints(args.endpoints.split(','))
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "bad registry options");
            return std::process::ExitCode::from(2);
        }
    };
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return std::process::ExitCode::from(2);
    };
    let broker = HttpBroker::with_options(
        HttpBrokerOptions::from_env()
            .registry(std::sync::Arc::new(registry))
            .register_ttl(args.ttl)
            .register_interval(args.interval),
    );
    let handler = handler_fn(|ev: Event| async move {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", line(&ev))?;
        out.flush()?;
        Ok(())
    });
    let opts = SubscribeOptions {
        queue: args.queue.clone(),
    };
    let sub = match broker.subscribe(&args.topic, handler, opts).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "subscribe failed");
            return std::process::ExitCode::from(1);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "READY {}", broker.address());
        let _ = out.flush();
    }
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    if let Err(e) = sub.unsubscribe().await {
        tracing::warn!(error = %e, "unsubscribe failed");
    }
    if let Err(e) = broker.disconnect().await {
        tracing::warn!(error = %e, "disconnect failed");
    }
    std::process::ExitCode::SUCCESS
}
