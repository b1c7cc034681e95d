//! Registry load in steady state: what the server counts over a window while
//! the fleet just keeps its nodes registered.

use std::time::{Duration, Instant};

use micro_tests::harness::scale;

use crate::Res;
use crate::backend::{Backend, Counters};
use crate::fleet::Fleet;

/// Steady-state figures of one (stack, registry, N).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Steady {
    /// Counter increments over the window.
    pub(crate) delta: Counters,
    /// Length of the window, seconds.
    pub(crate) secs: f64,
    /// Server CPU over the window, percent of one core.
    pub(crate) server_cpu_pct: f64,
    /// Server resident memory at the end, KiB.
    pub(crate) server_rss_kib: u64,
    /// Registrant processes' CPU over the window, percent of one core.
    pub(crate) fleet_cpu_pct: f64,
    /// Registrant processes' resident memory, KiB.
    pub(crate) fleet_rss_kib: u64,
}

impl Steady {
    /// A counter's rate per node per minute with go-micro's timings (interval
    /// 30 s, TTL 90 s): the bench's timers run `TIME_SCALE` times faster.
    pub(crate) fn per_node_min(&self, count: f64, n: usize) -> f64 {
        count / self.secs * 60.0 / scale::TIME_SCALE / n as f64
    }

    /// Writes per second as measured (bench timings).
    pub(crate) fn writes_per_sec(&self) -> f64 {
        self.delta.writes / self.secs
    }
}

/// Lets every node's timer run once, then measures for `window`.
pub(crate) async fn measure(backend: &Backend, fleet: &Fleet, window: Duration) -> Res<Steady> {
    // Every timer starts at a random point of its first interval: after one
    // interval (and a little) every node has renewed once.
    tokio::time::sleep(scale::INTERVAL + Duration::from_secs(1)).await;
    let c0 = backend.scrape().await?;
    let (s0, f0, t0) = (backend.cpu(), fleet.cpu(), Instant::now());
    tokio::time::sleep(window).await;
    let c1 = backend.scrape().await?;
    let (s1, f1) = (backend.cpu(), fleet.cpu());
    let secs = t0.elapsed().as_secs_f64();
    Ok(Steady {
        delta: c1.since(&c0),
        secs,
        server_cpu_pct: (s1 - s0) / secs * 100.0,
        server_rss_kib: backend.rss_kib(),
        fleet_cpu_pct: (f1 - f0) / secs * 100.0,
        fleet_rss_kib: fleet.rss_kib(),
    })
}
