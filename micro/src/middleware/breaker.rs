//! [`BreakerLayer`]: adaptive client-side throttling per node and endpoint (the
//! circuit breaker of Google's SRE book that go-zero and Kratos use).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::RpcError;
use crate::client::{CallError, CallErrorKind, ClientRequest, ClientResponse};

/// The id of the breaker's errors.
pub const BREAKER_ID: &str = "go.micro.breaker";

/// Adaptive throttling per node and endpoint, for the client's attempt position
/// ([`ClientOptions::attempt_layer`](crate::client::ClientOptions::attempt_layer)).
///
/// Over a rolling window it counts the attempts it let through to a node's
/// endpoint (`requests`) and those the node accepted (`accepts`: any answer but a
/// server error; a connection that failed, a timeout, an unreadable reply or a 5xx
/// error are not accepted). While the node accepts them all, nothing is refused;
/// when it stops, attempts are refused at once with probability
/// `max(0, (requests − K·accepts) / (requests + 1))`, with an [`RpcError`] 503
/// `circuit breaker open` (id `go.micro.breaker`) that the client treats as "not
/// sent" and tries on another node.
///
/// Refused attempts are not counted (go-zero's choice, not the SRE book's): a dead
/// node keeps getting a trickle of about `min_requests` attempts per window, and
/// when it recovers those are accepted and the breaker closes within one window,
/// with no half-open state to tune. Counting refusals as well would make recovery
/// geometric, taking many windows after a total outage.
///
/// Defaults: a 10 s window in 40 buckets, `K` = 1.5 (go-zero's), and no refusal
/// while the window holds fewer than 20 attempts.
///
/// ```
/// use micro::client::ClientOptions;
/// use micro::middleware::BreakerLayer;
///
/// let opts = ClientOptions::new().attempt_layer(BreakerLayer::new());
/// ```
#[derive(Clone, Debug)]
pub struct BreakerLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    k: f64,
    min_requests: u64,
    window: Duration,
    buckets: usize,
    states: Mutex<HashMap<(String, String), Window>>,
}

impl Default for BreakerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl BreakerLayer {
    /// The defaults.
    pub fn new() -> Self {
        Self::with(1.5, 20, Duration::from_secs(10))
    }

    /// `k` (at least 1: how many attempts per accepted one are let through before
    /// refusing starts), `min_requests` (no refusal below it), `window` (how far back
    /// the counts reach).
    pub fn with(k: f64, min_requests: u64, window: Duration) -> Self {
        BreakerLayer {
            shared: Arc::new(Shared {
                k: if k.is_finite() { k.max(1.0) } else { 1.5 },
                min_requests,
                window: window.max(Duration::from_millis(40)),
                buckets: 40,
                states: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The refusal probability the breaker has for `endpoint` of node `node_id`
    /// now (for tests and dashboards).
    pub fn probability(&self, node_id: &str, endpoint: &str) -> f64 {
        let mut states = self.shared.states.lock();
        let key = (node_id.to_owned(), endpoint.to_owned());
        match states.get_mut(&key) {
            Some(w) => self.shared.p(w.totals(Instant::now())),
            None => 0.0,
        }
    }
}

impl Shared {
    fn p(&self, (requests, accepts): (u64, u64)) -> f64 {
        if requests < self.min_requests {
            return 0.0;
        }
        let (r, a) = (requests as f64, accepts as f64);
        ((r - self.k * a) / (r + 1.0)).max(0.0)
    }

    /// Counts one attempt; true when it may go.
    fn admit(&self, key: &(String, String)) -> bool {
        let now = Instant::now();
        let mut states = self.states.lock();
        if states.len() > 4096 {
            // nodes come and go: forget the quiet ones
            states.retain(|_, w| w.totals(now).0 > 0);
        }
        let w = states
            .entry(key.clone())
            .or_insert_with(|| Window::new(self.window, self.buckets, now));
        let p = self.p(w.totals(now));
        let go = p <= 0.0 || fastrand::f64() >= p;
        if go {
            w.add(now, 1, 0);
        }
        go
    }

    fn accepted(&self, key: &(String, String)) {
        let now = Instant::now();
        if let Some(w) = self.states.lock().get_mut(key) {
            w.add(now, 0, 1);
        }
    }
}

/// Counts in `buckets` slots covering `window`.
#[derive(Debug)]
struct Window {
    slot: Duration,
    slots: Vec<(u64, u64)>,
    /// The slot index that `at` falls in, and `at`'s start.
    head: usize,
    head_start: Instant,
}

impl Window {
    fn new(window: Duration, buckets: usize, now: Instant) -> Self {
        Window {
            slot: window / buckets as u32,
            slots: vec![(0, 0); buckets],
            head: 0,
            head_start: now,
        }
    }

    /// Moves the head to `now`, clearing the slots it passes.
    fn advance(&mut self, now: Instant) {
        let passed =
            now.saturating_duration_since(self.head_start).as_nanos() / self.slot.as_nanos().max(1);
        if passed == 0 {
            return;
        }
        let n = self.slots.len();
        for _ in 0..passed.min(n as u128) {
            self.head = (self.head + 1) % n;
            self.slots[self.head] = (0, 0);
        }
        self.head_start += self.slot * passed.min(u128::from(u32::MAX)) as u32;
    }

    fn add(&mut self, now: Instant, requests: u64, accepts: u64) {
        self.advance(now);
        let s = &mut self.slots[self.head];
        s.0 += requests;
        s.1 += accepts;
    }

    fn totals(&mut self, now: Instant) -> (u64, u64) {
        self.advance(now);
        self.slots
            .iter()
            .fold((0, 0), |(r, a), (sr, sa)| (r + sr, a + sa))
    }
}

/// Whether the node accepted the attempt: any answer but a server error.
fn accepted(r: &Result<ClientResponse, CallError>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => match e.kind() {
            CallErrorKind::Remote => e.code() < 500,
            CallErrorKind::Decode => true,
            _ => false,
        },
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = Breaker<S>;

    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`BreakerLayer`].
#[derive(Clone, Debug)]
pub struct Breaker<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<ClientRequest> for Breaker<S>
where
    S: Service<ClientRequest, Response = ClientResponse, Error = CallError>,
{
    type Response = ClientResponse;
    type Error = CallError;
    type Future = BreakerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ClientRequest) -> Self::Future {
        let node = req.target().map(|t| t.key().to_owned()).unwrap_or_default();
        let key = (node, req.endpoint().to_owned());
        if !self.shared.admit(&key) {
            return BreakerFuture {
                state: BreakerState::Refused {
                    error: Some(CallError::rejected(RpcError::new(
                        BREAKER_ID,
                        format!("circuit breaker open for {} on {}", key.1, key.0),
                        503,
                    ))),
                },
            };
        }
        BreakerFuture {
            state: BreakerState::Running {
                fut: self.inner.call(req),
                shared: self.shared.clone(),
                key: Some(key),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Breaker`].
    pub struct BreakerFuture<F> {
        #[pin]
        state: BreakerState<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = BreakerProj]
    enum BreakerState<F> {
        // Let through; counts the answer.
        Running { #[pin] fut: F, shared: Arc<Shared>, key: Option<(String, String)> },
        // Refused.
        Refused { error: Option<CallError> },
    }
}

impl<F> Future for BreakerFuture<F>
where
    F: Future<Output = Result<ClientResponse, CallError>>,
{
    type Output = Result<ClientResponse, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            BreakerProj::Running { fut, shared, key } => {
                let r = std::task::ready!(fut.poll(cx));
                if accepted(&r) {
                    if let Some(k) = key.take() {
                        shared.accepted(&k);
                    }
                }
                Poll::Ready(r)
            }
            BreakerProj::Refused { error } => Poll::Ready(Err(error.take().unwrap_or_else(|| {
                CallError::rejected(RpcError::new(BREAKER_ID, "circuit breaker open", 503))
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_forgets_old_counts() {
        let now = Instant::now();
        let mut w = Window::new(Duration::from_secs(4), 4, now);
        w.add(now, 10, 2);
        assert_eq!(w.totals(now), (10, 2));
        w.add(now + Duration::from_secs(2), 5, 5);
        assert_eq!(w.totals(now + Duration::from_secs(2)), (15, 7));
        assert_eq!(w.totals(now + Duration::from_millis(4500)), (5, 5));
        assert_eq!(w.totals(now + Duration::from_secs(60)), (0, 0));
    }

    #[test]
    fn probability_follows_the_sre_formula() {
        let b = BreakerLayer::with(1.5, 10, Duration::from_secs(10));
        let s = &b.shared;
        assert_eq!(s.p((5, 0)), 0.0, "below the minimum");
        assert_eq!(s.p((100, 100)), 0.0, "all accepted");
        assert!((s.p((100, 0)) - 100.0 / 101.0).abs() < 1e-9);
        assert!((s.p((100, 40)) - 40.0 / 101.0).abs() < 1e-9);
        assert_eq!(s.p((100, 67)), 0.0);
    }
}
