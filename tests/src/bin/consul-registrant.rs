//! A stand-in server as the registry sees it: registers one node in Consul through
//! `micro-consul` with a TTL, registers again every interval, prints `READY` after
//! the first successful registration, and deregisters on SIGTERM or SIGINT. Registry
//! errors are logged and retried, never fatal.
//!
//! ```text
//! consul-registrant --consul 127.0.0.1:8500 --name greeter --id greeter-1 \
//!     --address 127.0.0.1:9000 [--version latest] [--ttl-ms 3000] \
//!     [--interval-ms 1000] [--token T] [--no-heartbeat] [--metadata k=v]...
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use micro_consul::ConsulOptions;
use micro_registry::{Node, RegisterOptions, Registry, ServiceRecord};
use tokio::signal::unix::{SignalKind, signal};

struct Args {
    consul: String,
    name: String,
    id: String,
    address: String,
    version: String,
    ttl: Duration,
    interval: Duration,
    token: Option<String>,
    heartbeat: bool,
    metadata: Vec<(String, String)>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        consul: String::new(),
        name: String::new(),
        id: String::new(),
        address: "127.0.0.1:9".into(),
        version: "latest".into(),
        ttl: Duration::from_secs(3),
        interval: Duration::from_secs(1),
        token: None,
        heartbeat: true,
        metadata: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--no-heartbeat" {
            a.heartbeat = false;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let ms = |v: &str| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--consul" => a.consul = v,
            "--name" => a.name = v,
            "--id" => a.id = v,
            "--address" => a.address = v,
            "--version" => a.version = v,
            "--ttl-ms" => a.ttl = ms(&v)?,
            "--interval-ms" => a.interval = ms(&v)?,
            "--token" => a.token = Some(v),
            "--metadata" => {
                let (k, val) = v.split_once('=').ok_or("--metadata wants k=v")?;
                a.metadata.push((k.to_owned(), val.to_owned()));
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.consul.is_empty() || a.name.is_empty() || a.id.is_empty() {
        return Err("--consul, --name and --id are required".into());
    }
    Ok(a)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("consul-registrant: {e}");
            return ExitCode::from(2);
        }
    };
    let mut opts = ConsulOptions::new()
        .address(&args.consul)
        .heartbeat(args.heartbeat);
    if let Some(t) = &args.token {
        opts = opts.token(t);
    }
    let registry = match opts.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("consul-registrant: {e}");
            return ExitCode::from(2);
        }
    };
    let mut node = Node::new(&args.id, &args.address);
    node.metadata.extend(args.metadata.iter().cloned());
    node.metadata.insert("registry".into(), "consul".into());
    node.metadata.insert("protocol".into(), "mucp".into());
    let svc = ServiceRecord {
        name: args.name.clone(),
        version: args.version.clone(),
        nodes: vec![node],
        ..Default::default()
    };
    let opts = RegisterOptions::ttl(args.ttl);
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("consul-registrant: cannot install signal handlers");
        return ExitCode::from(1);
    };
    let mut ready = false;
    loop {
        match registry.register(&svc, &opts).await {
            Ok(()) if !ready => {
                ready = true;
                let mut out = std::io::stdout();
                let _ = writeln!(out, "READY");
                let _ = out.flush();
            }
            Ok(()) => {}
            Err(e) => eprintln!("consul-registrant: register: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let res = tokio::time::timeout(Duration::from_secs(5), registry.deregister(&svc)).await;
    match res {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("consul-registrant: deregister: {e}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!("consul-registrant: deregister timed out");
            ExitCode::from(1)
        }
    }
}
