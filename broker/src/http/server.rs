//! The broker's HTTP server: receives deliveries and runs the local handlers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::stats::{add, inc};
use super::wire::{self, TOPIC_HEADER};
use super::{Core, conn};
use crate::Event;
use crate::util::run_handler;

/// The answer to a connection over the limit.
const OVER_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 33\r\nConnection: close\r\n\r\ntoo many connections to this node";

/// A limit's duration, or one that never ends (`None`: no limit).
pub(crate) fn or_forever(d: Option<Duration>) -> Duration {
    d.unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Accepts connections until `cancel` fires, then lets them finish for the
/// shutdown grace and closes what is left. Every connection task belongs to this
/// task: when it ends (or is aborted) none is left.
pub(crate) async fn serve(
    listener: TcpListener,
    core: Arc<Core>,
    tls: conn::Tls,
    cancel: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(core.opts.limits.max_connections.max(1)));
    let mut conns = JoinSet::new();
    let mut accept_errors: u32 = 0;
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                accept_errors = 0;
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    // Over the limit: a clear answer, then the connection goes (a
                    // fresh socket's send buffer takes it without waiting).
                    tracing::debug!(%peer, "http broker: connection limit reached; answering 503");
                    let _ = stream.try_write(OVER_LIMIT);
                    continue;
                };
                conns.spawn(conn::serve(
                    stream,
                    tls.clone(),
                    core.clone(),
                    cancel.clone(),
                    permit,
                ));
            }
            Err(e) => {
                // Out of descriptors and the like: pause instead of spinning.
                accept_errors = accept_errors.saturating_add(1);
                let pause = Duration::from_millis(10u64 << accept_errors.min(7));
                tracing::warn!(error = %e, ?pause, "http broker: accept failed");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    drop(listener);
    let grace = tokio::time::sleep(core.opts.shutdown_grace);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            _ = &mut grace => {
                if !conns.is_empty() {
                    tracing::debug!(open = conns.len(), "http broker: closing connections after the shutdown grace");
                }
                conns.abort_all();
                while conns.join_next().await.is_some() {}
                break;
            }
            next = conns.join_next() => if next.is_none() { break },
        }
    }
}

/// Answers one request, as go-micro's broker handler does (plus `413` for
/// oversized bodies and `404` for deliveries to a node this broker does not have).
pub(super) async fn handle(
    core: &Core,
    req: Request<Incoming>,
    _peer: conn::Peer,
) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        let mut body = wire::error_json(400, "Method not allowed", "Bad Request");
        body.push('\n');
        let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, body);
        resp.headers_mut().insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        return resp;
    }
    let max = core.opts.limits.max_body_size;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(max);
    }
    let id = req
        .uri()
        .query()
        .and_then(|q| wire::query_param(q, "id"))
        .unwrap_or_default();
    let read = Limited::new(req.into_body(), max).collect();
    let body =
        match tokio::time::timeout(or_forever(core.opts.limits.body_read_timeout), read).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(max),
            Ok(Err(e)) => return internal(&format!("Error reading request body: {e}")),
            Err(_) => return internal("Error reading request body: timed out"),
        };
    let msg = match wire::decode(&body) {
        Ok(m) => m,
        Err(e) => return internal(&format!("Error parsing request body: {e}")),
    };
    let Some(msg) = msg else {
        return internal("Topic not found");
    };
    let topic = match msg.header.get(TOPIC_HEADER) {
        Some(t) if !t.is_empty() => t.clone(),
        _ => return internal("Topic not found"),
    };
    let handlers = core.table.read().handlers(&id, &topic);
    let Some(handlers) = handlers else {
        tracing::debug!(%topic, node = %id, "http broker: delivery for a subscription this broker does not have");
        let detail = format!("no subscription {id:?} for topic {topic:?}");
        return text(
            StatusCode::NOT_FOUND,
            wire::error_json(404, &detail, "Not Found"),
        );
    };
    inc(&core.stats.received);
    let event = Event::new(topic, msg);
    #[cfg(feature = "tls")]
    let event = event.with_peer(_peer.0);
    let failures = if handlers.len() == 1 {
        usize::from(!run_handler(&handlers[0], event).await)
    } else {
        let runs = handlers.iter().map(|h| run_handler(h, event.clone()));
        futures_util::future::join_all(runs)
            .await
            .into_iter()
            .filter(|ok| !ok)
            .count()
    };
    add(&core.stats.handler_errors, failures as u64);
    let mut resp = Response::new(Full::new(Bytes::new()));
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn internal(detail: &str) -> Response<Full<Bytes>> {
    tracing::debug!(detail, "http broker: bad delivery");
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        wire::error_json(500, detail, "Internal Server Error"),
    )
}

fn too_large(max: usize) -> Response<Full<Bytes>> {
    let detail = format!("request body larger than {max} bytes");
    tracing::debug!(max, "http broker: delivery body too large");
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        wire::error_json(413, &detail, "Request Entity Too Large"),
    )
}
