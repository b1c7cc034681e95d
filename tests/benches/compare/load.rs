//! Rust-side load generators (`call`, `bidi`, `hyper`) and the bare hyper echo
//! server (`hyper-echo`). The load generators print the same JSON line as the Go
//! `bench` program: `{"calls","seconds","p50_us","p99_us","errors"}`.
//!
//! Flags: `--seconds S` measured after `--warmup-ms W` (default 3 s after 300 ms),
//! or `--calls N`: exactly N round trips, no warm-up (for profiling).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use examples::{CallRequest, CallResponse, StrokeMessage};
use http_body_util::{BodyExt, Full};
use micro::Service;
use micro::client::Client;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

use crate::{Flags, Res, emit};

/// The warm-up end and the end of the measured window; with `--calls N`, no
/// warm-up and a budget of N round trips shared by the callers instead of a time.
#[derive(Clone)]
struct Window {
    start: Instant,
    end: Instant,
    budget: Option<Arc<AtomicU64>>,
}

impl Window {
    fn new(flags: &Flags) -> Res<(Window, f64)> {
        let now = Instant::now();
        if let Some(calls) = flags.get("calls") {
            let calls: u64 = calls.parse().map_err(|_| "--calls needs a number")?;
            return Ok((
                Window {
                    start: now,
                    end: now + Duration::from_secs(24 * 3600),
                    budget: Some(Arc::new(AtomicU64::new(calls))),
                },
                0.0,
            ));
        }
        let secs: f64 = flags.num("seconds", 3.0)?;
        let warm: u64 = flags.num("warmup-ms", 300)?;
        let start = now + Duration::from_millis(warm);
        Ok((
            Window {
                start,
                end: start + Duration::from_secs_f64(secs),
                budget: None,
            },
            secs,
        ))
    }

    /// Whether another round trip may start.
    fn take(&self) -> bool {
        match &self.budget {
            None => Instant::now() < self.end,
            Some(b) => b
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// One caller's results: latencies of the round trips started in the window, and
/// how many of those failed.
#[derive(Default)]
struct Tally {
    lat: Vec<Duration>,
    errors: u64,
}

/// Runs `once` until the window ends.
async fn caller<F, Fut>(w: Window, mut once: F) -> Tally
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Res<()>>,
{
    let mut t = Tally {
        lat: Vec::with_capacity(1 << 16),
        errors: 0,
    };
    loop {
        if !w.take() {
            return t;
        }
        let t0 = Instant::now();
        let r = once().await;
        if t0 < w.start {
            continue;
        }
        match r {
            Ok(()) => t.lat.push(t0.elapsed()),
            Err(e) => {
                if t.errors == 0 {
                    eprintln!("compare: {e}");
                }
                t.errors += 1;
            }
        }
    }
}

/// Prints the result line of all callers' tallies.
fn summarise(secs: f64, tallies: Vec<Tally>) {
    let mut all: Vec<Duration> = Vec::new();
    let mut errors = 0;
    for t in tallies {
        all.extend(t.lat);
        errors += t.errors;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 * p) as usize).min(all.len() - 1);
        all[i].as_secs_f64() * 1e6
    };
    emit(&json!({
        "calls": all.len(),
        "seconds": secs,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "errors": errors,
    }));
}

/// Runs `callers` tasks of `make()`'s call until the window ends.
async fn run_callers<M, MF, F, Fut>(flags: &Flags, callers: usize, make: M) -> Res<()>
where
    M: Fn() -> MF,
    MF: Future<Output = Res<F>> + Send + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Res<()>> + Send + 'static,
{
    let (w, secs) = Window::new(flags)?;
    let began = Instant::now();
    let mut tasks = Vec::with_capacity(callers);
    for _ in 0..callers {
        let mk = make();
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let once = mk.await?;
            Ok::<_, crate::Error>(caller(w, once).await)
        }));
    }
    let mut tallies = Vec::with_capacity(callers);
    for t in tasks {
        tallies.push(t.await??);
    }
    // A counted run reports the time it took.
    let secs = if w.budget.is_some() {
        began.elapsed().as_secs_f64()
    } else {
        secs
    };
    summarise(secs, tallies);
    Ok(())
}

/// A micro client discovering through the registry named by the environment
/// (`MICRO_REGISTRY`, `MICRO_REGISTRY_ADDRESS`).
fn client() -> Res<(Service, Arc<dyn Client>)> {
    let service = Service::builder("bench-client").from_env()?.build()?;
    let client = service.client().clone();
    Ok((service, client))
}

/// `call --service S --callers N --seconds S`: `Helloworld.Call` from N tasks.
pub(crate) async fn call(flags: &Flags) -> Res<()> {
    let service = flags.str("service", "helloworld");
    let callers: usize = flags.num("callers", 1)?;
    let (svc, client) = client()?;
    let result = run_callers(flags, callers, || {
        let (client, service) = (client.clone(), service.clone());
        async move {
            Ok(move || {
                let (client, service) = (client.clone(), service.clone());
                async move {
                    let rsp: CallResponse = client
                        .request(&service, "Helloworld.Call")
                        .call(&CallRequest {
                            name: "bench".into(),
                        })
                        .await?;
                    if rsp.msg != "Hello bench" {
                        return Err(format!("unexpected reply {:?}", rsp.msg).into());
                    }
                    Ok(())
                }
            })
        }
    })
    .await;
    svc.stop().await?;
    result
}

/// `bidi --service S --seconds S`: one `Helloworld.BidiStream`, a message out and
/// its echo back per round trip.
pub(crate) async fn bidi(flags: &Flags) -> Res<()> {
    let service = flags.str("service", "helloworld");
    let (svc, client) = client()?;
    let stream = Arc::new(
        client
            .request(&service, "Helloworld.BidiStream")
            .stream::<StrokeMessage, StrokeMessage>()
            .await?,
    );
    let s = stream.clone();
    let result = run_callers(flags, 1, move || {
        let s = s.clone();
        async move {
            let mut n = 0i64;
            Ok(move || {
                n += 1;
                let (s, stroke) = (s.clone(), n);
                async move {
                    s.send(&StrokeMessage { stroke }).await?;
                    match s.recv().await? {
                        Some(m) if m.stroke == stroke => Ok(()),
                        Some(m) => Err(format!("echo {} for {stroke}", m.stroke).into()),
                        None => Err("the stream ended".into()),
                    }
                }
            })
        }
    })
    .await;
    stream.close().await;
    svc.stop().await?;
    result
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One HTTP/1.1 keep-alive connection to `addr`.
async fn hyper_connect(addr: &str) -> Res<(Sender, tokio::task::JoinHandle<()>)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((sender, driver))
}

/// `hyper --address A --callers N --seconds S`: N connections, each POSTing the
/// `Helloworld.Call` JSON to the echo and checking the reply.
pub(crate) async fn hyper_load(flags: &Flags) -> Res<()> {
    let addr = flags
        .get("address")
        .ok_or("hyper needs --address")?
        .to_owned();
    let callers: usize = flags.num("callers", 1)?;
    let uri: hyper::Uri = format!("http://{addr}/").parse()?;
    let drivers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ds = drivers.clone();
    let result = run_callers(flags, callers, move || {
        let (addr, uri, ds) = (addr.clone(), uri.clone(), ds.clone());
        async move {
            let (sender, driver) = hyper_connect(&addr).await?;
            if let Ok(mut d) = ds.lock() {
                d.push(driver);
            }
            let sender = Arc::new(tokio::sync::Mutex::new(sender));
            Ok(move || {
                let (sender, uri) = (sender.clone(), uri.clone());
                async move {
                    let body = serde_json::to_vec(&CallRequest {
                        name: "bench".into(),
                    })?;
                    let req = hyper::Request::post(uri)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))?;
                    let rsp = sender.lock().await.send_request(req).await?;
                    let body = rsp.into_body().collect().await?.to_bytes();
                    let r: CallResponse = serde_json::from_slice(&body)?;
                    if r.msg != "Hello bench" {
                        return Err(format!("unexpected reply {:?}", r.msg).into());
                    }
                    Ok(())
                }
            })
        }
    })
    .await;
    if let Ok(mut d) = drivers.lock() {
        d.drain(..).for_each(|d| d.abort());
    }
    result
}

/// `hyper-echo`: a bare hyper HTTP/1.1 server answering `{"name"}` with
/// `{"msg":"Hello <name>"}`; prints `READY <address>`, stops on SIGTERM/SIGINT.
pub(crate) async fn hyper_echo() -> Res<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY {addr}")?;
        out.flush()?;
    }
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(echo);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
    conns.shutdown().await;
    Ok(())
}

async fn echo(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let reply = async {
        let body = req.into_body().collect().await?.to_bytes();
        let req: CallRequest = serde_json::from_slice(&body)?;
        let mut out = serde_json::to_vec(&CallResponse {
            msg: format!("Hello {}", req.name),
        })?;
        out.push(b'\n');
        Ok::<_, crate::Error>(out)
    };
    Ok(match reply.await {
        Ok(out) => hyper::Response::new(Full::new(Bytes::from(out))),
        Err(e) => {
            let mut rsp = hyper::Response::new(Full::new(Bytes::from(e.to_string())));
            *rsp.status_mut() = hyper::StatusCode::BAD_REQUEST;
            rsp
        }
    })
}
