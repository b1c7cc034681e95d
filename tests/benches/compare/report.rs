//! What the runs measured, the tables printed at the end, and the target lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A stack under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Stack {
    /// Our client and server.
    Micro,
    /// go-micro v5 client and server.
    GoV5,
    /// go-micro v4 client and server.
    GoV4,
    /// A bare hyper HTTP/1.1 echo and hyper client: the ceiling.
    Hyper,
}

impl Stack {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Stack::Micro => "micro (Rust)",
            Stack::GoV5 => "go-micro v5.30.0",
            Stack::GoV4 => "go-micro v4.11.0",
            Stack::Hyper => "bare hyper echo",
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Stack::Micro => "micro",
            Stack::GoV5 => "go5",
            Stack::GoV4 => "go4",
            Stack::Hyper => "hyper",
        }
    }

    /// The go-micro version (`v5`, `v4`) of a Go stack.
    pub(crate) fn go(self) -> Option<&'static str> {
        match self {
            Stack::GoV5 => Some("v5"),
            Stack::GoV4 => Some("v4"),
            _ => None,
        }
    }
}

/// One load run (unary or bidi).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Load {
    pub(crate) per_sec: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) errors: u64,
    /// CPU time the server process spent per call (user + system), microseconds.
    pub(crate) server_cpu_us: Option<f64>,
}

/// One broker run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Broker {
    pub(crate) published: u64,
    pub(crate) delivered: u64,
    pub(crate) deliveries_per_sec: f64,
    pub(crate) subscribers: usize,
}

/// One discovery run, microseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Discovery {
    pub(crate) up_p50: f64,
    pub(crate) up_p99: f64,
    pub(crate) down_p50: f64,
    pub(crate) down_p99: f64,
}

/// Resident memory of a server, KiB.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Rss {
    pub(crate) idle: Option<u64>,
    pub(crate) load16: Option<u64>,
    pub(crate) after: Option<u64>,
}

/// Everything measured.
#[derive(Default)]
pub(crate) struct Results {
    pub(crate) rounds: usize,
    pub(crate) unary: BTreeMap<(usize, Stack), Vec<Load>>,
    pub(crate) bidi: BTreeMap<Stack, Vec<Load>>,
    pub(crate) broker: BTreeMap<(usize, Stack), Vec<Broker>>,
    pub(crate) rss: BTreeMap<Stack, Rss>,
    pub(crate) discovery: BTreeMap<Stack, Vec<Discovery>>,
    /// Unary at 16 callers in the TLS workload: (stack, over TLS).
    pub(crate) tls: BTreeMap<(Stack, bool), Vec<Load>>,
    /// Unary at 16 callers against our server with each middleware stack.
    pub(crate) stack: BTreeMap<&'static str, Vec<Load>>,
    pub(crate) failures: Vec<String>,
}

/// The median of `v` (mean of the middle two for an even count).
pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn med<T>(v: &[T], f: impl Fn(&T) -> f64) -> Option<f64> {
    median(v.iter().map(f).collect())
}

/// The median server CPU per call of load runs, or `-`.
fn cpu_col(v: &[Load]) -> String {
    median(v.iter().filter_map(|l| l.server_cpu_us).collect())
        .map(|c| format!("{c:.1}"))
        .unwrap_or_else(|| "-".into())
}

fn mib(k: Option<u64>) -> String {
    k.map(|k| format!("{:.1}", k as f64 / 1024.0))
        .unwrap_or_else(|| "-".into())
}

impl Results {
    fn unary_med(&self, callers: usize, s: Stack) -> Option<(f64, f64, f64)> {
        let v = self.unary.get(&(callers, s))?;
        Some((
            med(v, |l| l.per_sec)?,
            med(v, |l| l.p50_us)?,
            med(v, |l| l.p99_us)?,
        ))
    }

    fn tls_med(&self, s: Stack, secure: bool) -> Option<(f64, f64, f64)> {
        let v = self.tls.get(&(s, secure))?;
        Some((
            med(v, |l| l.per_sec)?,
            med(v, |l| l.p50_us)?,
            med(v, |l| l.p99_us)?,
        ))
    }

    fn stack_med(&self, stack: &str) -> Option<(f64, f64, f64)> {
        let v = self.stack.get(stack)?;
        Some((
            med(v, |l| l.per_sec)?,
            med(v, |l| l.p50_us)?,
            med(v, |l| l.p99_us)?,
        ))
    }

    fn broker_rate(&self, subs: usize, s: Stack) -> Option<f64> {
        med(self.broker.get(&(subs, s))?, |b| b.deliveries_per_sec)
    }

    /// The tables.
    pub(crate) fn tables(&self) -> String {
        let mut o = String::new();
        let r = self.rounds;
        let _ = writeln!(
            o,
            "\n== unary Helloworld.Call: JSON codec, HTTP transport, etcd discovery; client and server are separate processes (median of {r} rounds) =="
        );
        let _ = writeln!(
            o,
            "{:>7}  {:<18} {:>10} {:>10} {:>10} {:>7} {:>14}  {:>9}",
            "callers",
            "stack",
            "calls/s",
            "p50 us",
            "p99 us",
            "errors",
            "srv CPU us/call",
            "vs go v5"
        );
        for (&(callers, s), v) in &self.unary {
            let Some((rate, p50, p99)) = self.unary_med(callers, s) else {
                continue;
            };
            let errors: u64 = v.iter().map(|l| l.errors).sum();
            let cpu = cpu_col(v);
            let vs = self
                .unary_med(callers, Stack::GoV5)
                .map(|(g, _, _)| format!("{:.2}x", rate / g))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "{callers:>7}  {:<18} {rate:>10.0} {p50:>10.1} {p99:>10.1} {errors:>7} {cpu:>14}  {vs:>9}",
                s.label()
            );
        }
        let _ = writeln!(
            o,
            "\n== bidirectional stream: one Helloworld.BidiStream, ping-pong echo (median of {r} rounds) =="
        );
        let _ = writeln!(
            o,
            "{:<18} {:>10} {:>10} {:>10} {:>7} {:>14}",
            "stack", "msgs/s", "p50 us", "p99 us", "errors", "srv CPU us/msg"
        );
        for (s, v) in &self.bidi {
            let (Some(rate), Some(p50), Some(p99)) = (
                med(v, |l| l.per_sec),
                med(v, |l| l.p50_us),
                med(v, |l| l.p99_us),
            ) else {
                continue;
            };
            let errors: u64 = v.iter().map(|l| l.errors).sum();
            let cpu = cpu_col(v);
            let _ = writeln!(
                o,
                "{:<18} {rate:>10.0} {p50:>10.1} {p99:>10.1} {errors:>7} {cpu:>14}",
                s.label()
            );
        }
        let _ = writeln!(
            o,
            "\n== HTTP broker: one publisher process, N subscriber processes, deliveries counted at the subscribers (median of {r} rounds) =="
        );
        let _ = writeln!(
            o,
            "{:>4}  {:<18} {:>10} {:>10} {:>9} {:>13} {:>10}",
            "subs", "stack", "published", "delivered", "complete", "deliveries/s", "events/s"
        );
        for (&(subs, s), v) in &self.broker {
            let (Some(published), Some(delivered), Some(rate)) = (
                med(v, |b| b.published as f64),
                med(v, |b| b.delivered as f64),
                med(v, |b| b.deliveries_per_sec),
            ) else {
                continue;
            };
            let complete = med(v, |b| {
                b.delivered as f64 / (b.published as f64 * b.subscribers as f64).max(1.0)
            })
            .unwrap_or(0.0);
            let _ = writeln!(
                o,
                "{subs:>4}  {:<18} {published:>10.0} {delivered:>10.0} {:>8.1}% {rate:>13.0} {:>10.0}",
                s.label(),
                complete * 100.0,
                rate / subs as f64
            );
        }
        let _ = writeln!(
            o,
            "\n== resident memory of the helloworld server (VmRSS, MiB) =="
        );
        let _ = writeln!(
            o,
            "{:<18} {:>8} {:>16} {:>11}",
            "stack", "idle", "16 callers (max)", "after load"
        );
        for (s, m) in &self.rss {
            let _ = writeln!(
                o,
                "{:<18} {:>8} {:>16} {:>11}",
                s.label(),
                mib(m.idle),
                mib(m.load16),
                mib(m.after)
            );
        }
        let _ = writeln!(
            o,
            "\n== etcd discovery: register -> client selector sees the node, deregister -> it is gone (ms, median of {r} runs) =="
        );
        let _ = writeln!(
            o,
            "{:<18} {:>9} {:>9} {:>11} {:>11}",
            "stack", "up p50", "up p99", "down p50", "down p99"
        );
        for (s, v) in &self.discovery {
            let ms = |f: fn(&Discovery) -> f64| {
                med(v, f)
                    .map(|x| format!("{:.2}", x / 1000.0))
                    .unwrap_or_default()
            };
            let _ = writeln!(
                o,
                "{:<18} {:>9} {:>9} {:>11} {:>11}",
                s.label(),
                ms(|d| d.up_p50),
                ms(|d| d.up_p99),
                ms(|d| d.down_p50),
                ms(|d| d.down_p99)
            );
        }
        if !self.tls.is_empty() {
            let _ = writeln!(
                o,
                "\n== unary Helloworld.Call at {} callers over TLS (1.3, ECDSA P-256, server verified against the run's CA, pooled connections) next to plain, in alternation (median of {r} rounds) ==",
                crate::tls::CALLERS
            );
            let _ = writeln!(
                o,
                "{:<18} {:<6} {:>10} {:>10} {:>10} {:>7} {:>14} {:>9}",
                "stack", "", "calls/s", "p50 us", "p99 us", "errors", "srv CPU us/call", "vs plain"
            );
            for (&(s, secure), v) in &self.tls {
                let Some((rate, p50, p99)) = self.tls_med(s, secure) else {
                    continue;
                };
                let errors: u64 = v.iter().map(|l| l.errors).sum();
                let vs = self
                    .tls_med(s, false)
                    .map(|(p, _, _)| format!("{:.2}x", rate / p))
                    .unwrap_or_default();
                let _ = writeln!(
                    o,
                    "{:<18} {:<6} {rate:>10.0} {p50:>10.1} {p99:>10.1} {errors:>7} {:>14} {vs:>9}",
                    s.label(),
                    if secure { "TLS" } else { "plain" },
                    cpu_col(v)
                );
            }
        }
        if !self.stack.is_empty() {
            let _ = writeln!(
                o,
                "\n== unary Helloworld.Call at {} callers through our server's middleware stack, in alternation (median of {r} rounds) ==",
                crate::stack::CALLERS
            );
            let _ = writeln!(
                o,
                "{:<10} {:>10} {:>10} {:>10} {:>7} {:>14} {:>9}",
                "stack", "calls/s", "p50 us", "p99 us", "errors", "srv CPU us/call", "vs empty"
            );
            for stack in crate::stack::STACKS {
                let (Some(v), Some((rate, p50, p99))) =
                    (self.stack.get(stack), self.stack_med(stack))
                else {
                    continue;
                };
                let errors: u64 = v.iter().map(|l| l.errors).sum();
                let vs = self
                    .stack_med("empty")
                    .map(|(e, _, _)| format!("{:.3}x", rate / e))
                    .unwrap_or_default();
                let _ = writeln!(
                    o,
                    "{stack:<10} {rate:>10.0} {p50:>10.1} {p99:>10.1} {errors:>7} {:>14} {vs:>9}",
                    cpu_col(v)
                );
            }
        }
        if !self.failures.is_empty() {
            let _ = writeln!(o, "\n== failed runs (left out of the medians) ==");
            for f in &self.failures {
                let _ = writeln!(o, "{f}");
            }
        }
        o
    }

    /// One `target <name> measured <value> goal <value> met|missed` line per goal.
    pub(crate) fn targets(&self) -> String {
        let mut o = String::new();
        let mut line = |name: &str,
                        measured: Option<f64>,
                        unit: &str,
                        goal: &str,
                        ok: &dyn Fn(f64) -> bool| {
            let (m, verdict) = match measured {
                Some(v) if v.is_finite() => (
                    if unit == "%" {
                        format!("{:.1}%", v * 100.0)
                    } else {
                        format!("{v:.3}{unit}")
                    },
                    if ok(v) { "met" } else { "missed" },
                ),
                _ => ("n/a".to_owned(), "missed"),
            };
            let _ = writeln!(o, "target {name} measured {m} goal {goal} {verdict}");
        };
        let ours = self.unary_med(16, Stack::Micro);
        let go = self.unary_med(16, Stack::GoV5);
        let hyper = self.unary_med(16, Stack::Hyper);
        let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
        line(
            "unary_throughput_16_vs_go_v5",
            ratio(ours.map(|o| o.0), go.map(|g| g.0)),
            "x",
            ">=3x",
            &|v| v >= 3.0,
        );
        line(
            "unary_throughput_16_vs_hyper",
            ratio(ours.map(|o| o.0), hyper.map(|h| h.0)),
            "%",
            ">=60%",
            &|v| v >= 0.6,
        );
        line(
            "unary_p99_16_vs_go_v5",
            ratio(ours.map(|o| o.2), go.map(|g| g.2)),
            "x",
            "<=0.5x",
            &|v| v <= 0.5,
        );
        let rss = |s| self.rss.get(&s).and_then(|m| m.idle).map(|k| k as f64);
        line(
            "idle_rss_vs_go_v5",
            ratio(rss(Stack::Micro), rss(Stack::GoV5)),
            "x",
            "<=0.333x",
            &|v| v * 3.0 <= 1.0,
        );
        for subs in self
            .broker
            .keys()
            .map(|(n, _)| *n)
            .collect::<std::collections::BTreeSet<_>>()
        {
            line(
                &format!("broker_delivery_{subs}sub_vs_go_v5"),
                ratio(
                    self.broker_rate(subs, Stack::Micro),
                    self.broker_rate(subs, Stack::GoV5),
                ),
                "x",
                ">=3x",
                &|v| v >= 3.0,
            );
        }
        if !self.stack.is_empty() {
            let rate = |stack| self.stack_med(stack).map(|m| m.0);
            // What the default stack (panic recovery) costs next to no stack at all.
            line(
                "stack_cost_default_16",
                ratio(rate("default"), rate("empty")).map(|r| 1.0 - r),
                "%",
                "<=3%",
                &|v| v <= 0.03,
            );
        }
        if !self.tls.is_empty() {
            let rate = |s, secure| self.tls_med(s, secure).map(|m| m.0);
            // What TLS costs us: the share of plain calls/s lost.
            line(
                "tls_cost_16",
                ratio(rate(Stack::Micro, true), rate(Stack::Micro, false)).map(|r| 1.0 - r),
                "%",
                "<=15%",
                &|v| v <= 0.15,
            );
            // Ahead of go-micro with TLS by at least the factor we are ahead in
            // plain text, both measured in the same rounds.
            let plain = ratio(rate(Stack::Micro, false), rate(Stack::GoV5, false));
            let goal = plain.map_or_else(|| "n/a".to_owned(), |p| format!(">={p:.2}x"));
            line(
                "tls_throughput_16_vs_go_v5_tls",
                ratio(rate(Stack::Micro, true), rate(Stack::GoV5, true)),
                "x",
                &goal,
                &|v| plain.is_some_and(|p| v >= p),
            );
        }
        o
    }
}
