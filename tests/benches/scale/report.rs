//! The report: tables on stdout (also `report.txt`), the data as TSV, plots of
//! cost per node against N (gnuplot, PNG), a model of a 100 000-node mesh from
//! the measured per-node costs, and the `target ...` lines.

use std::fmt::Write as _;
use std::io::Write as _;

use micro_tests::harness::scale;

use crate::Res;
use crate::backend::Kind;
use crate::fleet::Stack;
use crate::run::{Cell, Results};
use crate::steady::Timers;

/// Writes per node per minute of a lease-only design (go-zero's: one lease kept
/// alive, a renewal every third of the TTL) with the server's 90 s TTL.
const LEASE_ONLY: f64 = 60.0 / (90.0 / 3.0);

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub(crate) fn print(r: &Results) -> Res<()> {
    let mut o = String::new();
    writeln!(o, "# micro scale benchmark")?;
    for (k, v) in &r.settings {
        writeln!(o, "{k}: {v}")?;
    }
    writeln!(
        o,
        "timers: interval {:?}, TTL {:?} (go-micro's 30 s / 90 s sped up {}x; per-minute figures are scaled back)",
        scale::INTERVAL,
        scale::TTL,
        scale::TIME_SCALE
    )?;
    for c in &r.cells {
        let t = c.steady.timers;
        if t != Timers::default() {
            writeln!(
                o,
                "  except {} on {} at N = {}: interval {:?}, TTL {:?} ({}x)",
                c.stack.label(),
                c.kind.label(),
                c.n,
                t.interval(),
                t.ttl(),
                t.scale
            )?;
        }
    }
    if r.cells.iter().any(|c| c.kind == Kind::Consul) {
        writeln!(
            o,
            "consul: a server agent (where the bench's clients read) and one client agent per {} nodes, joined to it (the registrants spread their nodes over them); server CPU and RSS are the server agent's",
            crate::backend::NODES_PER_AGENT
        )?;
    }
    steady_table(&mut o, &r.cells)?;
    client_table(&mut o, &r.cells)?;
    churn_table(&mut o, &r.cells)?;
    side_by_side(&mut o, &r.cells)?;
    writeln!(
        o,
        "\n## HTTP broker fan-out (one publisher, 16 concurrent publishes, etcd-1)\n"
    )?;
    writeln!(
        o,
        "| subscribers | other topics' subscriptions | events/s | deliveries/s |"
    )?;
    writeln!(o, "|---:|---:|---:|---:|")?;
    for f in &r.fanout {
        writeln!(
            o,
            "| {} | {} | {:.0} | {:.0} |",
            f.subscribers, f.others, f.events_per_sec, f.deliveries_per_sec
        )?;
    }
    writeln!(
        o,
        "\nselector pick (select + next) in a service of 1000 nodes: {:.0} ns",
        r.pick_ns
    )?;
    model(&mut o, r)?;
    writeln!(o, "\nrun took {:.0} s", r.elapsed.as_secs_f64())?;
    targets(&mut o, r)?;
    print!("{o}");
    std::fs::write(r.out.join("report.txt"), &o)?;
    plots(r)?;
    Ok(())
}

fn steady_table(o: &mut String, cells: &[Cell]) -> Res<()> {
    writeln!(o, "\n## Registry load in steady state\n")?;
    writeln!(
        o,
        "Per node per minute at go-micro's timings. etcd: writes = puts + deletes + lease grants + revokes + keepalive messages; Consul: service registrations + check updates (agent API); consensus = etcd raft proposals / Consul raft applies.\n"
    )?;
    writeln!(
        o,
        "| stack | registry | N | writes/s (bench) | writes/node/min | puts | grants | keepalives | reads/node/min | consensus/s (bench) | server CPU % | server RSS MiB | registrants CPU % | registrants RSS KiB/node |"
    )?;
    writeln!(
        o,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for c in cells {
        let s = &c.steady;
        let d = &s.delta;
        writeln!(
            o,
            "| {} | {} | {} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} |",
            c.stack.label(),
            c.kind.label(),
            c.n,
            s.writes_per_sec(),
            s.per_node_min(d.writes, c.n),
            s.per_node_min(d.puts, c.n),
            s.per_node_min(d.grants, c.n),
            s.per_node_min(d.keepalives, c.n),
            s.per_node_min(d.reads, c.n),
            d.consensus / s.secs,
            s.server_cpu_pct,
            s.server_rss_kib as f64 / 1024.0,
            s.fleet_cpu_pct,
            s.fleet_rss_kib as f64 / c.n as f64,
        )?;
    }
    let agents: Vec<&Cell> = cells.iter().filter(|c| c.kind == Kind::Consul).collect();
    if !agents.is_empty() {
        writeln!(
            o,
            "\nConsul client agents (the mesh's hosts' agents, apart from the server above):"
        )?;
        for c in agents {
            writeln!(
                o,
                "  N={}: {} agents, CPU {:.1} %, RSS {:.1} MiB",
                c.n,
                c.n.div_ceil(crate::backend::NODES_PER_AGENT).max(1),
                c.steady.agents_cpu_pct,
                c.steady.agents_rss_kib as f64 / 1024.0
            )?;
        }
    }
    let stats: Vec<String> = cells
        .iter()
        .filter(|c| c.stack == Stack::Micro && c.kind.is_etcd())
        .map(|c| format!("{} N={}: {}", c.kind.label(), c.n, c.stats.join(" ")))
        .collect();
    if !stats.is_empty() {
        writeln!(o, "\nregistrants' etcd counters (per process):")?;
        for s in stats {
            writeln!(o, "  {s}")?;
        }
    }
    Ok(())
}

fn client_table(o: &mut String, cells: &[Cell]) -> Res<()> {
    writeln!(
        o,
        "\n## Client cost (a fresh cache looking up every service, 10 nodes each)\n"
    )?;
    writeln!(
        o,
        "| registry | N | services | nodes cached | heap/cached node B | cache of one service B | get_service cold p50 µs | warm p50 µs | list_services ms |"
    )?;
    writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for c in cells {
        if let Some(cc) = &c.client {
            writeln!(
                o,
                "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} |",
                c.kind.label(),
                c.n,
                cc.services,
                cc.nodes,
                cc.bytes_per_node,
                cc.one_service_bytes,
                us(cc.cold),
                us(cc.warm),
                ms(cc.list),
            )?;
        }
    }
    Ok(())
}

fn churn_table(o: &mut String, cells: &[Cell]) -> Res<()> {
    writeln!(
        o,
        "\n## Churn (1 % of nodes per second deregister and come back)\n"
    )?;
    writeln!(
        o,
        "| registry | N | changes/s | change to selector p50 ms | p99 ms | changes timed | watch one service: events/s | B/s | watch all: events/s | B/s |"
    )?;
    writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for c in cells {
        if let Some(ch) = &c.churn {
            writeln!(
                o,
                "| {} | {} | {:.1} | {:.2} | {:.2} | {} | {:.2} | {:.0} | {:.1} | {:.0} |",
                c.kind.label(),
                c.n,
                ch.changes_per_sec,
                ms(ch.p50),
                ms(ch.p99),
                ch.rounds,
                ch.one_events,
                ch.one_bytes,
                ch.all_events,
                ch.all_bytes,
            )?;
        }
    }
    Ok(())
}

/// micro next to go-micro v5 on etcd-1: the two figures users feel first.
fn side_by_side(o: &mut String, cells: &[Cell]) -> Res<()> {
    let go: Vec<&Cell> = cells.iter().filter(|c| c.stack == Stack::GoMicro).collect();
    if go.is_empty() {
        return Ok(());
    }
    writeln!(
        o,
        "\n## Side by side with go-micro v5 (etcd-1, same N, same run)\n"
    )?;
    writeln!(
        o,
        "| N | micro writes/node/min | go-micro writes/node/min | micro heap/cached node B | go-micro heap/cached node B | micro get cold/warm µs | go-micro get cold/warm µs |"
    )?;
    writeln!(o, "|---:|---:|---:|---:|---:|---:|---:|")?;
    for g in go {
        let Some(m) = cells
            .iter()
            .find(|c| c.stack == Stack::Micro && c.kind == g.kind && c.n == g.n)
        else {
            continue;
        };
        let (mc, gc) = (m.client.unwrap_or_default(), g.go_cache.unwrap_or_default());
        writeln!(
            o,
            "| {} | {:.3} | {:.3} | {:.0} | {:.0} | {:.0} / {:.2} | {:.0} / {:.2} |",
            g.n,
            m.steady.per_node_min(m.steady.delta.writes, m.n),
            g.steady.per_node_min(g.steady.delta.writes, g.n),
            mc.bytes_per_node,
            gc.bytes_per_node,
            us(mc.cold),
            us(mc.warm),
            gc.cold_us,
            gc.warm_us,
        )?;
    }
    Ok(())
}

/// The largest micro cell on `kind`.
fn largest(cells: &[Cell], stack: Stack, kind: Kind) -> Option<&Cell> {
    cells
        .iter()
        .filter(|c| c.stack == stack && c.kind == kind)
        .max_by_key(|c| c.n)
}

/// Extrapolation to 100 000 nodes in 10 000 services. Rates per node are those
/// measured at the largest N (they are flat in N when nothing is superlinear);
/// server memory is the largest N's plus the per-node slope between the
/// smallest and largest N; a watch of everything gets the events the churn
/// makes (2 % of the nodes change per second at 1 % churn: down, then up) at
/// the bytes per event measured.
///
/// micro's etcd registry keeps one lease per process (registry client), so its
/// rates depend on how many nodes a process hosts. Two rows: the bench's layout
/// (the registrant processes share the nodes), and one node per process (the
/// usual deployment): there every node is a lease, renewed as often as the
/// largest N's leases were, and checks its key with a read each interval, as
/// the smallest N's nodes did (a lease of a few keys reads each key).
fn model(o: &mut String, r: &Results) -> Res<()> {
    const NODES: f64 = 100_000.0;
    /// The most keys one lease of micro's etcd registry holds.
    const MAX_KEYS_PER_LEASE: f64 = 8192.0;
    let cells = &r.cells;
    let procs: f64 = r
        .settings
        .iter()
        .find(|(k, _)| k == "registrant processes")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(4.0);
    writeln!(o, "\n## Model: 100 000 nodes in 10 000 services\n")?;
    writeln!(
        o,
        "| stack | registry | layout | writes/s | reads/s | server RSS GiB | watch-all client: events/s, MB/s at 1 %/s churn |"
    )?;
    writeln!(o, "|---|---|---|---:|---:|---:|---:|")?;
    for kind in [Kind::Etcd1, Kind::Etcd3, Kind::Consul] {
        for stack in [Stack::Micro, Stack::GoMicro] {
            let mine: Vec<&Cell> = cells
                .iter()
                .filter(|c| c.stack == stack && c.kind == kind)
                .collect();
            let (Some(lo), Some(hi)) = (
                mine.iter().min_by_key(|c| c.n),
                mine.iter().max_by_key(|c| c.n),
            ) else {
                continue;
            };
            let s = &hi.steady;
            let per_sec = |count: f64| s.per_node_min(count, hi.n) * NODES / 60.0;
            let slope = if hi.n > lo.n {
                (s.server_rss_kib as f64 - lo.steady.server_rss_kib as f64) / (hi.n - lo.n) as f64
            } else {
                0.0
            };
            let rss = s.server_rss_kib as f64 + slope.max(0.0) * (NODES - hi.n as f64);
            let watch = hi.churn.map_or(String::from("-"), |ch| {
                // A watcher that delivered under a tenth of the changes fell
                // behind (it coalesces what changed between two answers): its
                // bytes per event say nothing about a larger mesh.
                if ch.all_events < ch.changes_per_sec / 10.0 {
                    return format!(
                        "fell behind at N = {}: {:.1} events/s for {:.1} changes/s, {:.2} MB/s",
                        hi.n,
                        ch.all_events,
                        ch.changes_per_sec,
                        ch.all_bytes / 1e6
                    );
                }
                let per_event = if ch.all_events > 0.0 {
                    ch.all_bytes / ch.all_events
                } else {
                    0.0
                };
                let events = 0.02 * NODES;
                format!("{events:.0}, {:.2}", events * per_event / 1e6)
            });
            let mut row = |layout: String, writes: f64, reads: f64| {
                writeln!(
                    o,
                    "| {} | {} | {layout} | {writes:.0} | {reads:.0} | {:.2} | {watch} |",
                    stack.label(),
                    kind.label(),
                    rss / 1024.0 / 1024.0,
                )
            };
            if stack == Stack::Micro && kind.is_etcd() {
                // Per lease per minute at the largest N (one lease per process
                // there), and the leases 100 000 nodes need in this layout.
                let per_lease = s.per_node_min(s.delta.writes, hi.n) * hi.n as f64 / procs;
                let reads_per_lease = s.per_node_min(s.delta.reads, hi.n) * hi.n as f64 / procs;
                let per_proc = (NODES / procs).ceil();
                let leases = procs * (per_proc / MAX_KEYS_PER_LEASE).ceil();
                row(
                    format!("{procs:.0} processes, {per_proc:.0} nodes each"),
                    per_lease * leases / 60.0,
                    reads_per_lease * leases / 60.0,
                )?;
                let reads_one = lo.steady.per_node_min(lo.steady.delta.reads, lo.n);
                row(
                    "one node per process".into(),
                    per_lease * NODES / 60.0,
                    reads_one * NODES / 60.0,
                )?;
            } else {
                row(
                    "as measured".into(),
                    per_sec(s.delta.writes),
                    per_sec(s.delta.reads),
                )?;
            }
        }
    }
    Ok(())
}

fn target(o: &mut String, name: &str, measured: String, goal: &str, met: bool) -> Res<()> {
    let verdict = if met { "met" } else { "missed" };
    writeln!(
        o,
        "target scale_{name} measured {measured} goal {goal} {verdict}"
    )?;
    Ok(())
}

fn targets(o: &mut String, r: &Results) -> Res<()> {
    writeln!(o)?;
    let cells = &r.cells;
    for kind in [Kind::Etcd1, Kind::Etcd3] {
        if let Some(c) = largest(cells, Stack::Micro, kind) {
            let w = c.steady.per_node_min(c.steady.delta.writes, c.n);
            target(
                o,
                &format!(
                    "writes_per_node_min_{}_{}",
                    kind.label().replace('-', ""),
                    c.n
                ),
                format!("{w:.3}"),
                &format!("<={LEASE_ONLY:.2}"),
                w <= LEASE_ONLY,
            )?;
        }
    }
    if let (Some(m), Some(g)) = (
        largest(cells, Stack::Micro, Kind::Etcd1),
        largest(cells, Stack::GoMicro, Kind::Etcd1),
    ) {
        let (wm, wg) = (
            m.steady.per_node_min(m.steady.delta.writes, m.n),
            g.steady.per_node_min(g.steady.delta.writes, g.n),
        );
        target(
            o,
            &format!("writes_below_gomicro_{}", m.n),
            format!("{wm:.3}"),
            &format!("<{wg:.3}"),
            wm < wg,
        )?;
    }
    // Client memory per cached node: each registry at the largest N it
    // completed; a registry that failed at the largest N asked for misses.
    for kind in [Kind::Etcd1, Kind::Etcd3, Kind::Consul] {
        let Some(c) = cells
            .iter()
            .filter(|c| c.stack == Stack::Micro && c.kind == kind && c.client.is_some())
            .max_by_key(|c| c.n)
        else {
            continue;
        };
        let bytes = c.client.map_or(f64::NAN, |cc| cc.bytes_per_node);
        target(
            o,
            &format!(
                "cache_bytes_per_node_{}_{}",
                kind.label().replace('-', ""),
                c.n
            ),
            format!("{bytes:.0}B"),
            "<=2048B",
            bytes <= 2048.0,
        )?;
    }
    for (stack, kind, n, why) in &r.failed {
        let why: String = why.chars().take(80).collect();
        target(
            o,
            &format!(
                "completed_{}_{}_{n}",
                stack.label().replace([' ', '-'], ""),
                kind.label().replace('-', "")
            ),
            format!("failed({})", why.replace(' ', "_")),
            "completed",
            false,
        )?;
    }
    target(
        o,
        "pick_1000_nodes",
        format!("{:.0}ns", r.pick_ns),
        "<1000ns",
        r.pick_ns < 1000.0,
    )?;
    if let Some(c) = largest(cells, Stack::Micro, Kind::Etcd3) {
        if let Some(ch) = c.churn {
            let p99 = ms(ch.p99);
            target(
                o,
                &format!("churn_p99_etcd3_{}", c.n),
                format!("{p99:.2}ms"),
                "<50ms",
                p99 < 50.0,
            )?;
        }
    }
    // A client that uses one service: its cache must not grow with the rest of
    // the mesh (largest N against smallest, worst registry).
    let mut worst = 0.0_f64;
    for kind in [Kind::Etcd1, Kind::Etcd3, Kind::Consul] {
        let mine: Vec<&Cell> = cells
            .iter()
            .filter(|c| c.stack == Stack::Micro && c.kind == kind && c.client.is_some())
            .collect();
        let (Some(lo), Some(hi)) = (
            mine.iter().min_by_key(|c| c.n),
            mine.iter().max_by_key(|c| c.n),
        ) else {
            continue;
        };
        let (a, b) = (
            lo.client.unwrap_or_default().one_service_bytes,
            hi.client.unwrap_or_default().one_service_bytes,
        );
        if a > 0.0 {
            worst = worst.max(b / a);
        }
    }
    target(
        o,
        "one_service_client_growth",
        format!("{worst:.2}x"),
        "<=1.5x",
        worst <= 1.5,
    )?;
    Ok(())
}

/// N, writes per node per minute, cache bytes per node, server RSS KiB per node.
type Point = (usize, f64, f64, f64);

/// Data files and gnuplot plots (when gnuplot is installed).
fn plots(r: &Results) -> Res<()> {
    let mut series: Vec<(String, Vec<Point>)> = Vec::new();
    for stack in [Stack::Micro, Stack::GoMicro] {
        for kind in [Kind::Etcd1, Kind::Etcd3, Kind::Consul] {
            let mut pts: Vec<Point> = r
                .cells
                .iter()
                .filter(|c| c.stack == stack && c.kind == kind)
                .map(|c| {
                    let mem = c
                        .client
                        .map(|cc| cc.bytes_per_node)
                        .or(c.go_cache.map(|g| g.bytes_per_node))
                        .unwrap_or(f64::NAN);
                    (
                        c.n,
                        c.steady.per_node_min(c.steady.delta.writes, c.n),
                        mem,
                        c.steady.server_rss_kib as f64 / c.n as f64,
                    )
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            pts.sort_by_key(|p| p.0);
            series.push((format!("{} {}", stack.label(), kind.label()), pts));
        }
    }
    let mut tsv = String::from(
        "# series\tN\twrites_per_node_min\tcache_bytes_per_node\tserver_rss_kib_per_node\n",
    );
    for (name, pts) in &series {
        for (n, w, m, rss) in pts {
            writeln!(tsv, "{name}\t{n}\t{w}\t{m}\t{rss}")?;
        }
    }
    std::fs::write(r.out.join("data.tsv"), &tsv)?;
    let mut gp = String::from(
        "set terminal pngcairo size 900,560 noenhanced font 'DejaVu Sans,10'\nset logscale xy\nset grid\nset key outside right\nset xlabel 'nodes (N)'\nset datafile separator '\\t'\n",
    );
    for (file, col, ylabel) in [
        (
            "writes.png",
            3,
            "registry writes per node per minute (go-micro timings)",
        ),
        (
            "client_memory.png",
            4,
            "client heap per cached node (bytes)",
        ),
        ("server_rss.png", 5, "registry server RSS per node (KiB)"),
    ] {
        writeln!(
            gp,
            "set output '{}'\nset ylabel '{ylabel}'",
            r.out.join(file).display()
        )?;
        let plots: Vec<String> = series
            .iter()
            .map(|(name, _)| {
                format!(
                    "'{}' using (strcol(1) eq '{name}' ? $2 : 1/0):{col} with linespoints title '{name}'",
                    r.out.join("data.tsv").display()
                )
            })
            .collect();
        writeln!(gp, "plot {}", plots.join(", \\\n     "))?;
    }
    let script = r.out.join("plots.gp");
    std::fs::write(&script, gp)?;
    match std::process::Command::new("gnuplot").arg(&script).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let _ = std::io::stderr().write_all(&out.stderr);
            eprintln!("scale: gnuplot failed; data in {}", r.out.display());
        }
        Err(e) => eprintln!("scale: gnuplot not run ({e}); data in {}", r.out.display()),
    }
    Ok(())
}
