//! The workloads, each run for every stack in turn (A B A B), round after round.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;
use tokio::time::Instant;

use crate::Res;
use crate::orchestrate::{Env, Server};
use crate::procs::{Child, cpu_secs, rss_kib};
use crate::report::{Broker, Discovery, Load, Results, Stack};

/// How long the broker waits without a new delivery before a run is over.
const BROKER_QUIET: Duration = Duration::from_millis(1500);
/// The longest a broker run may go on delivering after publishing ended.
const BROKER_DRAIN_LIMIT: Duration = Duration::from_secs(60);

pub(crate) async fn run_all(
    env: &Env,
    servers: &BTreeMap<Stack, Server>,
    tls_servers: &BTreeMap<Stack, Server>,
    stack_servers: &BTreeMap<&'static str, Server>,
    r: &mut Results,
) -> Res<()> {
    let s = &env.settings;
    for round in 1..=s.rounds {
        if s.runs("unary") {
            unary(env, servers, r, round).await?;
        }
        if s.runs("bidi") {
            bidi(env, servers, r, round).await?;
        }
        if s.runs("broker") {
            broker(env, r, round).await?;
        }
        if s.runs("discovery") {
            discovery(env, r, round).await?;
        }
        if s.runs("tls") {
            crate::tls::run(env, servers, tls_servers, r, round).await?;
        }
        if s.runs("stack") {
            crate::stack::run(env, stack_servers, r, round).await?;
        }
    }
    Ok(())
}

fn num(v: &Value, key: &str) -> Res<f64> {
    v.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("no number {key:?} in {v}").into())
}

/// Spawns a load generator, samples `watch`'s RSS every 100 ms while it runs, and
/// parses its result line.
pub(crate) async fn run_load(
    env: &Env,
    name: &str,
    cmd: &mut Command,
    server: Option<u32>,
    sample_rss: bool,
) -> Res<(Load, Option<u64>)> {
    let cpu_before = server.and_then(cpu_secs);
    let watch = server.filter(|_| sample_rss);
    let mut child = Child::spawn(name, &env.logs, cmd)?;
    let limit = Duration::from_secs_f64(env.settings.secs + 60.0);
    let mut max_rss = None;
    let result = {
        let fut = child.json(limit);
        tokio::pin!(fut);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                v = &mut fut => break v,
                _ = tick.tick() => {
                    if let Some(k) = watch.and_then(rss_kib) {
                        max_rss = Some(max_rss.unwrap_or(0).max(k));
                    }
                }
            }
        }
    };
    let cpu_after = server.and_then(cpu_secs);
    child.stop(Duration::from_secs(5)).await;
    let v = result?;
    let calls = num(&v, "calls")?;
    let load = Load {
        per_sec: calls / num(&v, "seconds")?,
        server_cpu_us: match (cpu_before, cpu_after) {
            (Some(b), Some(a)) if calls > 0.0 => Some((a - b) / calls * 1e6),
            _ => None,
        },
        p50_us: num(&v, "p50_us")?,
        p99_us: num(&v, "p99_us")?,
        errors: num(&v, "errors")? as u64,
    };
    Ok((load, max_rss))
}

pub(crate) fn note(r: &mut Results, what: String, outcome: Res<()>) {
    if let Err(e) = outcome {
        eprintln!("[bench] {what} FAILED: {e}");
        r.failures.push(format!("{what}: {e}"));
    }
}

async fn unary(
    env: &Env,
    servers: &BTreeMap<Stack, Server>,
    r: &mut Results,
    round: usize,
) -> Res<()> {
    let s = &env.settings;
    let secs = s.secs.to_string();
    let mut stacks = s.stacks();
    stacks.push(Stack::Hyper);
    for &callers in &s.callers {
        for &stack in &stacks {
            let srv = servers.get(&stack).ok_or("server missing")?;
            let n = callers.to_string();
            let mut cmd = match stack {
                Stack::Micro => {
                    let mut c = env.rust_cmd("call");
                    c.args([
                        "--service",
                        &srv.target,
                        "--callers",
                        &n,
                        "--seconds",
                        &secs,
                    ]);
                    c
                }
                Stack::Hyper => {
                    let mut c = Command::new(&env.exe);
                    c.args([
                        "hyper",
                        "--address",
                        &srv.target,
                        "--callers",
                        &n,
                        "--seconds",
                        &secs,
                    ]);
                    c
                }
                _ => {
                    let mut c = env.go_cmd(stack, "bench", Some("call"))?;
                    c.args([
                        "--service",
                        &srv.target,
                        "--callers",
                        &n,
                        "--seconds",
                        &secs,
                    ]);
                    c
                }
            };
            let what = format!("unary {} callers={callers} round {round}", stack.label());
            let name = format!("call-{}-{callers}-{round}", stack.slug());
            let outcome = match run_load(env, &name, &mut cmd, srv.child.pid(), callers == 16).await
            {
                Ok((load, rss)) => {
                    eprintln!(
                        "[bench] {what}: {:.0} calls/s p50 {:.1} us p99 {:.1} us errors {}",
                        load.per_sec, load.p50_us, load.p99_us, load.errors
                    );
                    r.unary.entry((callers, stack)).or_default().push(load);
                    if let Some(k) = rss {
                        let m = r.rss.entry(stack).or_default();
                        m.load16 = Some(m.load16.unwrap_or(0).max(k));
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            };
            note(r, what, outcome);
        }
    }
    Ok(())
}

async fn bidi(
    env: &Env,
    servers: &BTreeMap<Stack, Server>,
    r: &mut Results,
    round: usize,
) -> Res<()> {
    let secs = env.settings.secs.to_string();
    for stack in env.settings.stacks() {
        let srv = servers.get(&stack).ok_or("server missing")?;
        let mut cmd = match stack {
            Stack::Micro => env.rust_cmd("bidi"),
            _ => env.go_cmd(stack, "bench", Some("bidi"))?,
        };
        cmd.args(["--service", &srv.target, "--seconds", &secs]);
        let what = format!("bidi {} round {round}", stack.label());
        let name = format!("bidi-{}-{round}", stack.slug());
        let outcome = match run_load(env, &name, &mut cmd, srv.child.pid(), false).await {
            Ok((load, _)) => {
                eprintln!(
                    "[bench] {what}: {:.0} msgs/s p50 {:.1} us p99 {:.1} us errors {}",
                    load.per_sec, load.p50_us, load.p99_us, load.errors
                );
                r.bidi.entry(stack).or_default().push(load);
                Ok(())
            }
            Err(e) => Err(e),
        };
        note(r, what, outcome);
    }
    Ok(())
}

async fn broker(env: &Env, r: &mut Results, round: usize) -> Res<()> {
    for &subs in &env.settings.subscribers {
        for stack in env.settings.stacks() {
            let what = format!("broker {} subscribers={subs} round {round}", stack.label());
            let outcome = match broker_run(env, stack, subs, round).await {
                Ok(b) => {
                    eprintln!(
                        "[bench] {what}: published {} delivered {} ({:.0} deliveries/s)",
                        b.published, b.delivered, b.deliveries_per_sec
                    );
                    r.broker.entry((subs, stack)).or_default().push(b);
                    Ok(())
                }
                Err(e) => Err(e),
            };
            note(r, what, outcome);
        }
    }
    Ok(())
}

/// The latest `{"received","last_ns"}` of a subscriber's progress lines.
fn progress(lines: impl IntoIterator<Item = String>, latest: &mut (u64, i64)) -> bool {
    let mut changed = false;
    for l in lines {
        let Ok(v) = serde_json::from_str::<Value>(&l) else {
            continue;
        };
        let n = v.get("received").and_then(Value::as_u64).unwrap_or(0);
        let last = v.get("last_ns").and_then(Value::as_i64).unwrap_or(0);
        if n > latest.0 {
            *latest = (n, last);
            changed = true;
        }
    }
    changed
}

async fn broker_run(env: &Env, stack: Stack, subs: usize, round: usize) -> Res<Broker> {
    let topic = format!("bench.{}.{subs}.{round}", stack.slug());
    let role = |sub: &str| -> Res<Command> {
        Ok(match stack {
            Stack::Micro => env.rust_cmd(sub),
            _ => env.go_cmd(stack, "bench", Some(sub))?,
        })
    };
    let mut children = Vec::with_capacity(subs);
    for i in 0..subs {
        let mut cmd = role("subscribe")?;
        cmd.args(["--topic", &topic]);
        let name = format!("sub-{}-{subs}-{round}-{i}", stack.slug());
        children.push(Child::spawn(&name, &env.logs, &mut cmd)?);
    }
    for c in &mut children {
        c.ready(Duration::from_secs(30)).await?;
    }
    let mut cmd = role("publish")?;
    cmd.args([
        "--topic",
        &topic,
        "--subscribers",
        &subs.to_string(),
        "--seconds",
        &env.settings.secs.to_string(),
        "--concurrency",
        &env.settings.publishers.to_string(),
    ]);
    let name = format!("pub-{}-{subs}-{round}", stack.slug());
    let mut publisher = Child::spawn(&name, &env.logs, &mut cmd)?;
    let p = publisher
        .json(Duration::from_secs_f64(env.settings.secs + 60.0))
        .await?;
    let published = num(&p, "published")? as u64;
    let start_ns = num(&p, "start_ns")? as i64;
    let expected = published * subs as u64;

    let mut latest = vec![(0u64, 0i64); subs];
    let drain_end = Instant::now() + BROKER_DRAIN_LIMIT;
    let mut last_change = Instant::now();
    loop {
        let mut changed = false;
        for (c, l) in children.iter_mut().zip(latest.iter_mut()) {
            changed |= progress(std::iter::from_fn(|| c.try_line()), l);
        }
        let now = Instant::now();
        if changed {
            last_change = now;
        }
        let total: u64 = latest.iter().map(|l| l.0).sum();
        if total >= expected || now - last_change > BROKER_QUIET || now > drain_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.stop(Duration::from_secs(10)).await;
    for (c, l) in children.into_iter().zip(latest.iter_mut()) {
        let rest = c.stop(Duration::from_secs(10)).await;
        progress(rest, l);
    }
    let delivered: u64 = latest.iter().map(|l| l.0).sum();
    let last_ns = latest.iter().map(|l| l.1).max().unwrap_or(start_ns);
    let span = (last_ns - start_ns) as f64 / 1e9;
    Ok(Broker {
        published,
        delivered,
        deliveries_per_sec: if span > 0.0 {
            delivered as f64 / span
        } else {
            0.0
        },
        subscribers: subs,
    })
}

async fn discovery(env: &Env, r: &mut Results, round: usize) -> Res<()> {
    let rounds = env.settings.discovery_rounds.to_string();
    for stack in env.settings.stacks() {
        let service = format!("bench.discovery.{}.{round}", stack.slug());
        let mut cmd = match stack {
            Stack::Micro => env.rust_cmd("discovery"),
            _ => env.go_cmd(stack, "bench", Some("discovery"))?,
        };
        cmd.args(["--service", &service, "--rounds", &rounds]);
        let what = format!("discovery {} round {round}", stack.label());
        let outcome = async {
            let mut child = Child::spawn(
                &format!("discovery-{}-{round}", stack.slug()),
                &env.logs,
                &mut cmd,
            )?;
            let v = child.json(Duration::from_secs(120)).await;
            child.stop(Duration::from_secs(5)).await;
            let v = v?;
            Ok::<_, crate::Error>(Discovery {
                up_p50: num(&v, "up_p50_us")?,
                up_p99: num(&v, "up_p99_us")?,
                down_p50: num(&v, "down_p50_us")?,
                down_p99: num(&v, "down_p99_us")?,
            })
        }
        .await;
        let outcome = match outcome {
            Ok(d) => {
                eprintln!(
                    "[bench] {what}: up p50 {:.2} ms p99 {:.2} ms, down p50 {:.2} ms p99 {:.2} ms",
                    d.up_p50 / 1e3,
                    d.up_p99 / 1e3,
                    d.down_p50 / 1e3,
                    d.down_p99 / 1e3
                );
                r.discovery.entry(stack).or_default().push(d);
                Ok(())
            }
            Err(e) => Err(e),
        };
        note(r, what, outcome);
    }
    Ok(())
}
