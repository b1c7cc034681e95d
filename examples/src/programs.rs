//! The `helloworld` and `helloworld-client` programs as functions, so that every
//! binary that runs them (the examples' own, and the integration tests' copies)
//! runs exactly the same code. See `src/bin/helloworld.rs` and
//! `src/bin/helloworld-client.rs` for what they do and how they are configured.

use std::io::Write;

use std::time::Duration;

use micro::client::{CallBuilder, Client};
use micro::{Service, ServiceBuilder};

use crate::{CallRequest, CallResponse, CountMessage, Helloworld, StrokeMessage, init_logging};

/// A boxed error, what the programs return.
pub type BoxError = Box<dyn std::error::Error>;

/// The `helloworld` service: configured by the `MICRO_*` environment, prints
/// `READY <node id> <address>` on stdout once started, and stops gracefully
/// (deregister, drain) on SIGINT, SIGTERM or SIGQUIT.
pub async fn helloworld() -> Result<(), BoxError> {
    init_logging();
    let builder = Service::builder("helloworld")
        .from_env()?
        .handle(Helloworld);
    let service =
        with_stack(builder, std::env::var("HELLOWORLD_STACK").ok().as_deref())?.build()?;
    service.start().await?;
    let server = service.server();
    println!(
        "READY {} {}",
        server.node_id(),
        server.address().unwrap_or_default()
    );
    std::io::stdout().flush()?;
    let waited = service.wait().await;
    service.stop().await?;
    waited?;
    Ok(())
}

/// The server middleware stack the benchmark measures, by `HELLOWORLD_STACK`:
/// `empty` (no layer, panic recovery off), `default` or unset (what every service
/// gets: panic recovery), `layered` (recovery, a 30 s endpoint timeout, a token
/// bucket of a million calls per second and a pass-through `from_fn` layer).
fn with_stack(b: ServiceBuilder, stack: Option<&str>) -> Result<ServiceBuilder, BoxError> {
    use micro::middleware::{EndpointTimeoutLayer, Next, RateLimitLayer, from_fn};
    use micro::server::{BoxServerService, ServerRequest};
    Ok(match stack {
        None | Some("default") => b,
        Some("empty") => b.recover(false),
        Some("layered") => b
            .layer(EndpointTimeoutLayer::new(Some(Duration::from_secs(30))))
            .layer(RateLimitLayer::new(1e6, 1_000_000))
            .layer(from_fn(
                |req: ServerRequest, next: Next<BoxServerService>| next.run(req),
            )),
        Some(other) => {
            return Err(
                format!("HELLOWORLD_STACK={other}: expected empty, default or layered").into(),
            );
        }
    })
}

/// The arguments of `helloworld-client`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientArgs {
    /// `--name NAME`: who to greet. Default: `World`.
    pub name: String,
    /// `--count N`: how many `Helloworld.Call`s (at least one). Default: 1.
    pub count: i64,
    /// `--address HOST:PORT`: call this address instead of discovering the
    /// service. Default: none.
    pub address: Option<String>,
    /// Cleared by `--no-streams`: also run the three streams. Default: true.
    pub streams: bool,
}

impl Default for ClientArgs {
    fn default() -> Self {
        ClientArgs {
            name: "World".into(),
            count: 1,
            address: None,
            streams: true,
        }
    }
}

impl ClientArgs {
    /// Parses `[--name NAME] [--count N] [--address HOST:PORT] [--no-streams]`
    /// (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<ClientArgs, String> {
        let mut a = ClientArgs::default();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = |f: &str| it.next().ok_or_else(|| format!("{f} needs a value"));
            match flag.as_str() {
                "--name" => a.name = value("--name")?,
                "--count" => {
                    a.count = value("--count")?
                        .parse()
                        .map_err(|_| "--count needs a number".to_string())?
                }
                "--address" => a.address = Some(value("--address")?),
                "--no-streams" => a.streams = false,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(a)
    }
}

/// Calls `address` directly when given, else discovers the service.
fn target<'a>(b: CallBuilder<'a>, address: &Option<String>) -> CallBuilder<'a> {
    match address {
        Some(a) => b.address(a.clone()),
        None => b,
    }
}

/// The `helloworld-client` program: calls `Helloworld.Call`, then the three
/// streams, printing one line per result; the first failed call is the error.
/// Discovery uses the same `MICRO_*` environment as the service.
pub async fn helloworld_client(args: ClientArgs) -> Result<(), BoxError> {
    init_logging();
    let service = Service::builder("helloworld-client").from_env()?.build()?;
    let result = client_calls(&service, &args).await;
    let stopped = service.stop().await;
    result?;
    stopped?;
    Ok(())
}

async fn client_calls(service: &Service, args: &ClientArgs) -> Result<(), BoxError> {
    let client: &dyn Client = service.client().as_ref();
    let at = |ep: &str| target(client.request("helloworld", ep), &args.address);
    for i in 0..args.count.max(1) {
        let rsp: CallResponse = at("Helloworld.Call")
            .call(&CallRequest {
                name: args.name.clone(),
            })
            .await?;
        println!("call {i}: {}", rsp.msg);
    }
    if !args.streams {
        return Ok(());
    }
    // Client stream: send strokes, then close our side and read the count.
    let s = at("Helloworld.ClientStream")
        .stream::<StrokeMessage, CountMessage>()
        .await?;
    for stroke in 0..5 {
        s.send(&StrokeMessage { stroke }).await?;
    }
    s.close_send().await?;
    let count = s.recv().await?.map(|c| c.count).unwrap_or(-1);
    println!("client stream: server counted {count} strokes");
    s.close().await;

    // Server stream: ask for 5 messages.
    let s = at("Helloworld.ServerStream")
        .server_stream::<CountMessage, CountMessage>(&CountMessage { count: 5 })
        .await?;
    let mut got = Vec::new();
    while let Some(m) = s.recv().await? {
        got.push(m.count);
    }
    println!("server stream: received {got:?}");
    s.close().await;

    // Bidirectional: each stroke comes back.
    let s = at("Helloworld.BidiStream")
        .stream::<StrokeMessage, StrokeMessage>()
        .await?;
    let mut echoed = Vec::new();
    for stroke in 0..5 {
        s.send(&StrokeMessage { stroke }).await?;
        if let Some(m) = s.recv().await? {
            echoed.push(m.stroke);
        }
    }
    println!("bidi stream: echoed {echoed:?}");
    s.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ClientArgs, String> {
        ClientArgs::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn client_arguments_parse() {
        assert_eq!(parse(&[]), Ok(ClientArgs::default()));
        let a = parse(&[
            "--name",
            "Alice",
            "--count",
            "3",
            "--address",
            "127.0.0.1:9",
            "--no-streams",
        ])
        .unwrap();
        assert_eq!(
            a,
            ClientArgs {
                name: "Alice".into(),
                count: 3,
                address: Some("127.0.0.1:9".into()),
                streams: false,
            }
        );
        assert!(parse(&["--count", "many"]).is_err());
        assert!(parse(&["--name"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
