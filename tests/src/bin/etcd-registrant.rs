//! A stand-in server for registry tests: registers one node in etcd through
//! `micro-etcd`, re-registers it every interval as a server does, prints `READY`
//! once registered, and deregisters and exits 0 on SIGTERM (or SIGINT). Registry
//! errors are logged and retried, never fatal.
//!
//! Flags (each also read from the environment variable in brackets):
//! `--endpoints` (`ETCD_ENDPOINTS`, comma list, default `127.0.0.1:2379`),
//! `--service` (`SERVICE`, default `registrant`), `--node-id` (`NODE_ID`, default
//! `<service>-<pid>`), `--address` (`ADDRESS`, default `127.0.0.1:1`), `--version`
//! (`VERSION`, default `latest`), `--ttl-ms` (`TTL_MS`, default 3000),
//! `--interval-ms` (`INTERVAL_MS`, default 1000). Logs go to stderr (`RUST_LOG`).

use std::io::Write;
use std::time::Duration;

use micro_etcd::EtcdRegistry;
use micro_registry::{MetadataMap, Node, RegisterOptions, Registry, ServiceRecord};
use tokio::signal::unix::{SignalKind, signal};

struct Args {
    endpoints: String,
    service: String,
    node_id: String,
    address: String,
    version: String,
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
    let service = arg(&args, "--service", "SERVICE").unwrap_or_else(|| "registrant".into());
    Ok(Args {
        endpoints: arg(&args, "--endpoints", "ETCD_ENDPOINTS")
            .unwrap_or_else(|| "127.0.0.1:2379".into()),
        node_id: arg(&args, "--node-id", "NODE_ID")
            .unwrap_or_else(|| format!("{service}-{}", std::process::id())),
        address: arg(&args, "--address", "ADDRESS").unwrap_or_else(|| "127.0.0.1:1".into()),
        version: arg(&args, "--version", "VERSION").unwrap_or_else(|| "latest".into()),
        ttl: millis(arg(&args, "--ttl-ms", "TTL_MS"), 3000)?,
        interval: millis(arg(&args, "--interval-ms", "INTERVAL_MS"), 1000)?,
        service,
    })
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
    let registry = match EtcdRegistry::builder().endpoints([&args.endpoints]).build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "bad registry options");
            return std::process::ExitCode::from(2);
        }
    };
    let mut metadata = MetadataMap::new();
    metadata.insert("protocol".into(), "mucp".into());
    metadata.insert("registry".into(), registry.name().into());
    let service = ServiceRecord {
        name: args.service.clone(),
        version: args.version.clone(),
        nodes: vec![Node {
            id: args.node_id.clone(),
            address: args.address.clone(),
            metadata,
        }],
        ..Default::default()
    };
    let opts = RegisterOptions::ttl(args.ttl);
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return std::process::ExitCode::from(2);
    };
    let mut tick = tokio::time::interval(args.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ready = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match registry.register(&service, &opts).await {
                    Ok(()) if !ready => {
                        ready = true;
                        let mut out = std::io::stdout();
                        let _ = writeln!(out, "READY");
                        let _ = out.flush();
                    }
                    Ok(()) => {}
                    Err(e) => tracing::warn!(error = %e, "register failed; retrying next interval"),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    if let Err(e) = registry.deregister(&service).await {
        tracing::warn!(error = %e, "deregister failed");
    }
    std::process::ExitCode::SUCCESS
}
