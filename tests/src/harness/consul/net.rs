//! Plain TCP helpers for Consul tests: a minimal HTTP client for the agent API and
//! a proxy that counts (and can hold) requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A minimal HTTP/1.0 client for the agent API (one request per connection):
/// returns the status and the body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let work = async {
        let mut s = TcpStream::connect(addr).await?;
        let body = body.unwrap_or("");
        let mut req = format!(
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(t) = token {
            req.push_str(&format!("X-Consul-Token: {t}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad response: {head:?}")))?;
        Ok((status, rest.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .map_err(|_| std::io::Error::other("http request timed out"))?
}

/// A TCP proxy in front of an HTTP server that counts the HTTP/1.1 requests going
/// through it, keeps their request lines, counts the client connections open at
/// once, and can hold requests (read from the client, never passed on, so the
/// client gets no answer). Stops when dropped.
pub struct CountingProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    requests: AtomicUsize,
    lines: Mutex<Vec<String>>,
    open: AtomicUsize,
    held: AtomicBool,
}

impl CountingProxy {
    /// A proxy on a free loopback port forwarding to `target`.
    pub async fn start(target: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let state = shared.clone();
                state.open.fetch_add(1, Ordering::SeqCst);
                conns.spawn(async move {
                    match TcpStream::connect(target).await {
                        Ok(server) => relay(client, server, &state).await,
                        Err(_) => _ = state.open.fetch_sub(1, Ordering::SeqCst),
                    }
                });
                // Reap finished connections as we go.
                while conns.try_join_next().is_some() {}
            }
        });
        CountingProxy { addr, state, task }
    }

    /// `127.0.0.1:<port>` of the proxy.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// HTTP requests seen so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// How many requests seen so far have a request line starting with
    /// `prefix` (e.g. `"PUT /v1/agent/service/register"`).
    pub fn requests_to(&self, prefix: &str) -> usize {
        let lines = self.state.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().filter(|l| l.starts_with(prefix)).count()
    }

    /// The request lines seen so far (method and target), oldest first.
    pub fn request_lines(&self) -> Vec<String> {
        self.state
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Client connections open now (a connection counts until the client
    /// closes its side).
    pub fn open(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    /// While `on`, what clients send is read and counted but not passed on: a
    /// request gets no answer (the client times out).
    pub fn hold(&self, on: bool) {
        self.state.held.store(on, Ordering::SeqCst);
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways between `client` and `server` until either side closes,
/// noting request lines on the way up.
async fn relay(client: TcpStream, server: TcpStream, state: &State) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut parse = Parse::default();
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            note_requests(&buf[..n], &mut parse, state);
            if state.held.load(Ordering::SeqCst) {
                continue;
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        // The client's side is closed: no longer open for it.
        state.open.fetch_sub(1, Ordering::SeqCst);
        let _ = sw.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Longest head line kept (longer ones are cut).
const MAX_LINE: usize = 8 * 1024;

/// Where the upstream byte stream is: in a request's head (the line so far,
/// whether it is the head's first line, the body length announced) or in its
/// body (bytes left). Bodies are framed by `Content-Length` (what the clients
/// under test send).
#[derive(Default)]
struct Parse {
    line: Vec<u8>,
    in_head: bool,
    length: usize,
    body_left: usize,
}

/// Follows the requests in `data`, recording each request line.
fn note_requests(data: &[u8], p: &mut Parse, state: &State) {
    let mut rest = data;
    while !rest.is_empty() {
        if p.body_left > 0 {
            let n = p.body_left.min(rest.len());
            p.body_left -= n;
            rest = &rest[n..];
            continue;
        }
        let b = rest[0];
        rest = &rest[1..];
        if b != b'\n' {
            if p.line.len() < MAX_LINE {
                p.line.push(b);
            }
            continue;
        }
        let line =
            String::from_utf8_lossy(p.line.strip_suffix(b"\r").unwrap_or(&p.line)).into_owned();
        p.line.clear();
        if !p.in_head {
            if line.is_empty() {
                continue;
            }
            p.in_head = true;
            p.length = 0;
            state.requests.fetch_add(1, Ordering::SeqCst);
            let target = line.strip_suffix(" HTTP/1.1").unwrap_or(&line).to_owned();
            state
                .lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(target);
        } else if line.is_empty() {
            p.in_head = false;
            p.body_left = p.length;
        } else if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            p.length = value.trim().parse().unwrap_or(0);
        }
    }
}
