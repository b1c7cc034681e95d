//! Registry load in steady state: what the server counts over a window while
//! the fleet just keeps its nodes registered.

use std::time::{Duration, Instant};

use micro_tests::harness::scale;

use crate::Res;
use crate::backend::{Backend, Counters, Kind};
use crate::fleet::Fleet;

/// The registration timers of one measurement: go-micro's (interval 30 s, TTL
/// 90 s) run `scale` times faster.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Timers {
    pub(crate) scale: f64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            scale: scale::TIME_SCALE,
        }
    }
}

impl Timers {
    /// [`scale::TIME_SCALE`] (10x), except on Consul where the sped-up
    /// renewals are kept to about 1 000 per second (`min(10, 30 000 / N)`: 3x
    /// at N = 10 000). Every Consul renewal is a request its agent answers, and
    /// an agent's CPU per check update grows with the services it holds; 3 333
    /// per second do not fit on the bench's 2 cores beside the registrants.
    pub(crate) fn of(kind: Kind, n: usize) -> Timers {
        let scale = match kind {
            Kind::Consul => scale::TIME_SCALE.min(30_000.0 / n.max(1) as f64),
            _ => scale::TIME_SCALE,
        };
        Timers { scale }
    }

    pub(crate) fn interval(self) -> Duration {
        Duration::from_secs_f64(30.0 / self.scale)
    }

    pub(crate) fn ttl(self) -> Duration {
        Duration::from_secs_f64(90.0 / self.scale)
    }
}

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
    /// Consul client agents' CPU over the window, percent of one core.
    pub(crate) agents_cpu_pct: f64,
    /// Consul client agents' resident memory at the end, KiB.
    pub(crate) agents_rss_kib: u64,
    /// Registrant processes' CPU over the window, percent of one core.
    pub(crate) fleet_cpu_pct: f64,
    /// Registrant processes' resident memory, KiB.
    pub(crate) fleet_rss_kib: u64,
    /// The timers the fleet ran with.
    pub(crate) timers: Timers,
}

impl Steady {
    /// A counter's rate per node per minute with go-micro's timings (interval
    /// 30 s, TTL 90 s): the fleet's timers ran `timers.scale` times faster.
    pub(crate) fn per_node_min(&self, count: f64, n: usize) -> f64 {
        count / self.secs * 60.0 / self.timers.scale / n as f64
    }

    /// Writes per second as measured (bench timings).
    pub(crate) fn writes_per_sec(&self) -> f64 {
        self.delta.writes / self.secs
    }
}

/// Lets every node's timer run once, then measures for `window`.
pub(crate) async fn measure(
    backend: &Backend,
    fleet: &Fleet,
    window: Duration,
    timers: Timers,
) -> Res<Steady> {
    // Every timer starts at a random point of its first interval: after one
    // interval (and a little) every node has renewed once.
    tokio::time::sleep(timers.interval() + Duration::from_secs(1)).await;
    let c0 = backend.scrape().await?;
    let ((s0, a0), f0, t0) = (backend.cpu(), fleet.cpu(), Instant::now());
    tokio::time::sleep(window).await;
    let c1 = backend.scrape().await?;
    let ((s1, a1), f1) = (backend.cpu(), fleet.cpu());
    let (server_rss_kib, agents_rss_kib) = backend.rss_kib();
    let secs = t0.elapsed().as_secs_f64();
    Ok(Steady {
        delta: c1.since(&c0),
        secs,
        server_cpu_pct: (s1 - s0) / secs * 100.0,
        server_rss_kib,
        agents_cpu_pct: (a1 - a0) / secs * 100.0,
        agents_rss_kib,
        fleet_cpu_pct: (f1 - f0) / secs * 100.0,
        fleet_rss_kib: fleet.rss_kib(),
        timers,
    })
}
