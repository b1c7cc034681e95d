//! The middleware workload: unary `Helloworld.Call` at 16 callers against three
//! builds of our server's stack, in alternation within each round: `empty` (no
//! layer at all, panic recovery off), `default` (what a service gets: panic
//! recovery) and `layered` (recovery, an endpoint timeout, a token bucket that
//! never refuses at this rate, and one pass-through `from_fn` layer). The
//! helloworld program picks its stack from `HELLOWORLD_STACK`.

use std::collections::BTreeMap;

use crate::Res;
use crate::orchestrate::{Env, Server};
use crate::report::Results;
use crate::workloads::{note, run_load};

/// Callers of every run (the goal's concurrency).
pub(crate) const CALLERS: usize = 16;

/// The stacks measured, in the order they run.
pub(crate) const STACKS: [&str; 3] = ["empty", "default", "layered"];

/// Starts one micro server per stack.
pub(crate) async fn servers(env: &Env) -> Res<BTreeMap<&'static str, Server>> {
    let mut out = BTreeMap::new();
    for stack in STACKS {
        let srv = crate::orchestrate::start_micro_server(env, &format!("stack-{stack}"), |cmd| {
            cmd.env("HELLOWORLD_STACK", stack);
        })
        .await?;
        out.insert(stack, srv);
    }
    Ok(out)
}

/// One round: each stack in turn.
pub(crate) async fn run(
    env: &Env,
    servers: &BTreeMap<&'static str, Server>,
    r: &mut Results,
    round: usize,
) -> Res<()> {
    let secs = env.settings.secs.to_string();
    let n = CALLERS.to_string();
    for stack in STACKS {
        let srv = servers.get(stack).ok_or("server missing")?;
        let mut cmd = env.rust_cmd("call");
        cmd.args([
            "--service",
            &srv.target,
            "--callers",
            &n,
            "--seconds",
            &secs,
        ]);
        let what = format!("unary {stack} stack callers={n} round {round}");
        let name = format!("call-stack-{stack}-{round}");
        let outcome = run_load(env, &name, &mut cmd, srv.child.pid(), false)
            .await
            .map(|(load, _)| {
                eprintln!(
                    "[bench] {what}: {:.0} calls/s p50 {:.1} us p99 {:.1} us errors {}",
                    load.per_sec, load.p50_us, load.p99_us, load.errors
                );
                r.stack.entry(stack).or_default().push(load);
            });
        note(r, what, outcome);
    }
    Ok(())
}
