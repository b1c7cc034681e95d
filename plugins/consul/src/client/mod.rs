//! The HTTP side: one pooled `reqwest` client, the agent addresses with failover,
//! the token, query parameters and the mapping of Consul's answers to errors.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderValue;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::convert::go_duration;
use crate::{ConsulOptions, Error, tls};

mod owned;

pub(crate) use owned::Owned;

/// The header carrying the ACL token.
const TOKEN_HEADER: &str = "X-Consul-Token";
/// The header saying which ACL policy applies to what the token may not read.
const ACL_POLICY_HEADER: &str = "X-Consul-Default-Acl-Policy";
/// The header carrying a blocking query's index.
const INDEX_HEADER: &str = "X-Consul-Index";

/// An answer from Consul: its body and, for reads, its index.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) body: Bytes,
    pub(crate) index: Option<u64>,
    pub(crate) url: String,
    /// Whether Consul said its default ACL policy is deny (so results the token
    /// may not read are silently left out).
    pub(crate) acl_deny: bool,
}

impl Reply {
    /// The body decoded as JSON.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Decode {
            url: self.url.clone(),
            reason: e.to_string(),
        })
    }
}

/// Query parameters of a read.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Query {
    /// Allow any server to answer (`?stale`).
    pub(crate) stale: bool,
    /// Send the configured datacenter (`?dc=`).
    pub(crate) dc: bool,
    /// Block until the index moves past this one (`?index=&wait=`).
    pub(crate) block: Option<(u64, Duration)>,
}

impl Query {
    /// A non-blocking read in the configured datacenter.
    pub(crate) fn read(stale: bool) -> Query {
        Query {
            stale,
            dc: true,
            block: None,
        }
    }
}

/// The Consul HTTP API client.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    bases: Vec<Url>,
    current: AtomicUsize,
    token: Option<HeaderValue>,
    datacenter: Option<String>,
    timeout: Duration,
    /// The TLS configuration for connections of our own (`Some` when an
    /// address uses HTTPS).
    tls: Option<Arc<rustls::ClientConfig>>,
    /// One permit per pooled request in flight (see
    /// [`ConsulOptions::max_requests`]).
    gate: Semaphore,
    max_requests: usize,
}

impl Client {
    pub(crate) fn new(opts: &ConsulOptions) -> Result<Client, Error> {
        let mut bases = Vec::new();
        for a in &opts.addresses {
            bases.push(parse_address(a, opts.secure)?);
        }
        if bases.is_empty() {
            bases.push(parse_address(crate::DEFAULT_ADDRESS, opts.secure)?);
        }
        let https = bases.iter().any(|u| u.scheme() == "https");
        let tls = tls::client_config(opts, https)?;
        let own_tls = https.then(|| Arc::new(tls.clone()));
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(opts.timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(2)
            .build()
            .map_err(Error::Client)?;
        let token = match &opts.token {
            Some(t) => {
                let mut v = HeaderValue::from_str(t)
                    .map_err(|_| Error::Token("it contains characters a header cannot".into()))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Client {
            http,
            bases,
            current: AtomicUsize::new(0),
            token,
            datacenter: opts.datacenter.clone(),
            timeout: opts.timeout,
            tls: own_tls,
            gate: Semaphore::new(opts.max_requests),
            max_requests: opts.max_requests,
        })
    }

    /// The agent currently used, as a URL.
    pub(crate) fn base(&self) -> &Url {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// `GET /v1/<path...>`.
    pub(crate) async fn get(&self, path: &[&str], q: Query) -> Result<Reply, Error> {
        self.send(Method::GET, path, q, None).await
    }

    /// `PUT /v1/<path...>` with an optional JSON body.
    pub(crate) async fn put(&self, path: &[&str], body: Option<Bytes>) -> Result<Reply, Error> {
        self.send(Method::PUT, path, Query::default(), body).await
    }

    async fn send(
        &self,
        method: Method,
        path: &[&str],
        q: Query,
        body: Option<Bytes>,
    ) -> Result<Reply, Error> {
        // Waiting for a turn counts against the request's time.
        let deadline = Instant::now() + self.timeout_of(q);
        let permit = tokio::time::timeout_at(deadline, self.gate.acquire()).await;
        let Ok(Ok(_permit)) = permit else {
            let (_, shown) = self.url(self.base(), path, q)?;
            return Err(Error::Connection {
                url: shown,
                reason: format!(
                    "timed out waiting behind {} requests in flight",
                    self.max_requests
                ),
                connecting: false,
                timed_out: true,
            });
        };
        // The first address gets what is left of the time; a next one, tried
        // because the first could not be reached, its own full time.
        let mut first = true;
        self.failover(|at| {
            let until = if std::mem::take(&mut first) {
                deadline
            } else {
                Instant::now() + self.timeout_of(q)
            };
            self.send_to(
                &self.bases[at],
                method.clone(),
                path,
                q,
                body.clone(),
                until,
            )
        })
        .await
    }

    /// Runs `attempt` on the current agent address and, while the agent cannot be
    /// reached, on the next ones; the address that answered becomes current.
    async fn failover<T, F, Fut>(&self, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let n = self.bases.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let at = (start + i) % n;
            match attempt(at).await {
                Err(e) if e.is_unreachable() && i + 1 < n => {
                    tracing::warn!(error = %e, "consul: agent unreachable, trying the next address");
                    last = Some(e);
                }
                res => {
                    if i > 0 {
                        self.current.store(at, Ordering::Relaxed);
                    }
                    return res;
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Address {
            address: String::new(),
            reason: "no consul address configured".into(),
        }))
    }

    async fn send_to(
        &self,
        base: &Url,
        method: Method,
        path: &[&str],
        q: Query,
        body: Option<Bytes>,
        deadline: Instant,
    ) -> Result<Reply, Error> {
        let (url, shown) = self.url(base, path, q)?;
        let left = deadline.saturating_duration_since(Instant::now());
        let mut req = self.http.request(method, url).timeout(left);
        if let Some(t) = &self.token {
            req = req.header(TOKEN_HEADER, t.clone());
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|source| Error::request(&shown, source))?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).map(HeaderValue::as_bytes);
        let index = parse_index(header(INDEX_HEADER));
        let acl_deny = is_deny(header(ACL_POLICY_HEADER));
        let body = resp
            .bytes()
            .await
            .map_err(|source| Error::request(&shown, source))?;
        reply(shown, status, index, acl_deny, body)
    }

    /// The URL of `path` with the query `q` on agent `base`, and the URL shown in
    /// errors (without the query).
    fn url(&self, base: &Url, path: &[&str], q: Query) -> Result<(Url, String), Error> {
        let mut url = base.clone();
        {
            let mut segs = url.path_segments_mut().map_err(|()| Error::Address {
                address: base.to_string(),
                reason: "not a base url".into(),
            })?;
            segs.pop_if_empty().push("v1").extend(path);
        }
        let shown = url.to_string();
        {
            let mut pairs = url.query_pairs_mut();
            if q.stale {
                pairs.append_key_only("stale");
            }
            if let (true, Some(dc)) = (q.dc, &self.datacenter) {
                pairs.append_pair("dc", dc);
            }
            if let Some((index, wait)) = q.block {
                pairs.append_pair("index", &index.to_string());
                pairs.append_pair("wait", &go_duration(wait));
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok((url, shown))
    }

    /// How long a request with query `q` may take: a blocking query may
    /// legitimately take its wait time plus Consul's jitter (up to wait/16).
    fn timeout_of(&self, q: Query) -> Duration {
        match q.block {
            Some((_, wait)) => self.timeout + wait + wait / 16,
            None => self.timeout,
        }
    }
}

/// The index of an answer, from its `X-Consul-Index` header.
fn parse_index(value: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(value?).ok()?.trim().parse().ok()
}

/// Whether an `X-Consul-Default-Acl-Policy` header says `deny`.
fn is_deny(value: Option<&[u8]>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case(b"deny"))
}

/// An answer as a [`Reply`], or the error its status means.
fn reply(
    url: String,
    status: u16,
    index: Option<u64>,
    acl_deny: bool,
    body: Bytes,
) -> Result<Reply, Error> {
    if (200..300).contains(&status) {
        return Ok(Reply {
            body,
            index,
            url,
            acl_deny,
        });
    }
    Err(status_error(status, &body))
}

/// Turns an error answer into an [`Error`], recognising ACL refusals.
fn status_error(status: u16, body: &[u8]) -> Error {
    let mut message = String::from_utf8_lossy(body).trim().to_owned();
    if message.len() > 512 {
        let mut cut = 512;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    let lower = message.to_ascii_lowercase();
    if status == 403
        || status == 401
        || lower.contains("permission denied")
        || lower.contains("acl not found")
    {
        return Error::PermissionDenied(if message.is_empty() {
            format!("http status {status}")
        } else {
            message
        });
    }
    Error::Status { status, message }
}

/// An agent address as a base URL: `host:port`, `host` (port 8500, as go-micro)
/// or an `http(s)://` URL; `secure` picks HTTPS for addresses without a scheme.
pub(crate) fn parse_address(address: &str, secure: bool) -> Result<Url, Error> {
    let bad = |reason: &str| Error::Address {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    let a = address.trim();
    let (scheme, rest) = match a.split_once("://") {
        Some((s, r)) if s.eq_ignore_ascii_case("http") => ("http", r),
        Some((s, r)) if s.eq_ignore_ascii_case("https") => ("https", r),
        Some((s, _)) => return Err(bad(&format!("unsupported scheme {s:?}"))),
        None => (if secure { "https" } else { "http" }, a),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    let authority = if authority.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{authority}]:8500")
    } else if has_port(authority) {
        authority.to_owned()
    } else {
        format!("{authority}:8500")
    };
    let url =
        Url::parse(&format!("{scheme}://{authority}{path}")).map_err(|e| bad(&e.to_string()))?;
    if url.host().is_none() || url.cannot_be_a_base() {
        return Err(bad("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment is not allowed"));
    }
    Ok(url)
}

/// Whether an authority (`host:port`, `[v6]:port`, `host`) names a port.
fn has_port(authority: &str) -> bool {
    micro_util::addr::HostPort::parse(authority)
        .port
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let p = |a: &str| parse_address(a, false).map(|u| u.to_string());
        assert_eq!(p("127.0.0.1:8500").unwrap(), "http://127.0.0.1:8500/");
        assert_eq!(p("consul").unwrap(), "http://consul:8500/");
        assert_eq!(p("http://consul:80").unwrap(), "http://consul/");
        assert_eq!(p("HTTPS://consul:8501").unwrap(), "https://consul:8501/");
        assert_eq!(p("[::1]:9000").unwrap(), "http://[::1]:9000/");
        assert_eq!(p("::1").unwrap(), "http://[::1]:8500/");
        assert_eq!(p("[::1]").unwrap(), "http://[::1]:8500/");
        assert_eq!(p("http://h:1/prefix").unwrap(), "http://h:1/prefix");
        assert_eq!(
            parse_address("h", true).unwrap().to_string(),
            "https://h:8500/"
        );
        assert!(p("unix:///tmp/consul.sock").is_err());
        assert!(p("http://").is_err());
        assert!(p("h:1?x=y").is_err());
    }

    #[test]
    fn acl_refusals_are_recognised() {
        let e = status_error(403, b"ACL not found");
        assert!(matches!(e, Error::PermissionDenied(_)));
        assert!(e.to_string().contains("permission denied"), "{e}");
        let e = status_error(500, b"rpc error making call: Permission denied");
        assert!(matches!(e, Error::PermissionDenied(_)));
        let e = status_error(404, b"Unknown service ID");
        assert!(e.is_status(404));
        let long = vec![b'x'; 2000];
        let e = status_error(400, &long);
        assert!(e.to_string().len() < 600);
    }
}
