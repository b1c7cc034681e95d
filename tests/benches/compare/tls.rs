//! The TLS workload: unary `Helloworld.Call` at 16 callers over TLS next to plain,
//! for micro and go-micro v5, in alternation within each round. Both stacks verify
//! the server's certificate against a CA made for the run; connections are pooled,
//! so handshakes are amortised.

use std::collections::BTreeMap;

use crate::Res;
use crate::orchestrate::{Env, Server};
use crate::report::{Results, Stack};
use crate::workloads::{note, run_load};

/// Callers of every TLS run (the goal's concurrency).
pub(crate) const CALLERS: usize = 16;

/// Starts the TLS servers of the stacks measured (ours and go-micro v5).
pub(crate) async fn servers(env: &Env) -> Res<BTreeMap<Stack, Server>> {
    let mut out = BTreeMap::new();
    for s in stacks(env) {
        out.insert(s, crate::orchestrate::start_server(env, s, true).await?);
    }
    Ok(out)
}

fn stacks(env: &Env) -> Vec<Stack> {
    env.settings
        .stacks()
        .into_iter()
        .filter(|s| matches!(s, Stack::Micro | Stack::GoV5))
        .collect()
}

/// One round: for each stack, plain then TLS.
pub(crate) async fn run(
    env: &Env,
    plain: &BTreeMap<Stack, Server>,
    tls: &BTreeMap<Stack, Server>,
    r: &mut Results,
    round: usize,
) -> Res<()> {
    let secs = env.settings.secs.to_string();
    let n = CALLERS.to_string();
    for stack in stacks(env) {
        for secure in [false, true] {
            let servers = if secure { tls } else { plain };
            let srv = servers.get(&stack).ok_or("server missing")?;
            let mut cmd = match stack {
                Stack::Micro => {
                    let mut c = env.rust_cmd("call");
                    if secure {
                        c.env("MICRO_TLS_CA", &env.tls.ca);
                    }
                    c
                }
                _ => {
                    let mut c = env.go_cmd(stack, "bench", Some("call"))?;
                    if secure {
                        c.arg("--tls-ca").arg(&env.tls.ca);
                    }
                    c
                }
            };
            cmd.args([
                "--service",
                &srv.target,
                "--callers",
                &n,
                "--seconds",
                &secs,
            ]);
            let kind = if secure { "tls" } else { "plain" };
            let what = format!("unary {kind} {} callers={n} round {round}", stack.label());
            let name = format!("call-{kind}-{}-{round}", stack.slug());
            let outcome = run_load(env, &name, &mut cmd, srv.child.pid(), false)
                .await
                .map(|(load, _)| {
                    eprintln!(
                        "[bench] {what}: {:.0} calls/s p50 {:.1} us p99 {:.1} us errors {}",
                        load.per_sec, load.p50_us, load.p99_us, load.errors
                    );
                    r.tls.entry((stack, secure)).or_default().push(load);
                });
            note(r, what, outcome);
        }
    }
    Ok(())
}
