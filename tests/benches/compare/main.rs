//! Side-by-side benchmark of micro and go-micro (v5 and v4): unary calls at several
//! concurrencies, one bidirectional stream, HTTP broker delivery, server memory and
//! etcd discovery latency, with a bare hyper echo as the ceiling, and unary calls
//! over TLS next to plain (micro and go-micro v5). Every server and
//! every load generator is a separate process; the stacks are measured in
//! alternation (A B A B), and the run ends with one `target ...` line per goal.
//!
//! Run it through `bash scripts/bench.sh`, which builds what it needs (the
//! `helloworld` example, the go-micro peer programs) and then runs
//! `cargo bench -p micro-tests --bench compare`. Settings (environment):
//!
//! | Variable | Meaning | Default |
//! |---|---|---|
//! | `BENCH_SECS` | measured seconds per load run (after a 0.3 s warm-up) | 3 |
//! | `BENCH_ROUNDS` | rounds of every workload (medians are reported) | 2 |
//! | `BENCH_CALLERS` | unary concurrencies, comma separated (16 is needed for the targets) | `1,16,64` |
//! | `BENCH_SUBSCRIBERS` | broker subscriber counts | `1,8` |
//! | `BENCH_PUBLISHERS` | concurrent publishers in the broker runs | 32 |
//! | `BENCH_DISCOVERY_ROUNDS` | register/deregister rounds per discovery run | 100 |
//! | `BENCH_ONLY` | workloads to run, comma separated (`unary,bidi,broker,discovery,tls,stack`) | all |
//! | `BENCH_GO` | go-micro versions to compare, comma separated (`v5,v4`) | `v5,v4` |
//! | `MICRO_BENCH_HELLOWORLD` | our server binary | `target/dist/helloworld`, else `helloworld` next to this bench's `deps/` |
//! | `MICRO_BENCH_HELLOWORLD_TLS` | our server binary built with the `tls` feature (the TLS workload) | `helloworld-tls` next to `MICRO_BENCH_HELLOWORLD` |
//! | `MICRO_GO_PEERS_V5`, `MICRO_GO_PEERS_V4` | directories of the go-micro peer programs | built with `scripts/build-go-peers.sh` |
//!
//! The same binary is also every Rust-side child process: run with a role as the
//! first argument (`call`, `bidi`, `hyper`, `hyper-echo`, `publish`, `subscribe`,
//! `discovery`) it plays that role (modules `load`, `pubsub`, `discovery`).

#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

mod discovery;
mod load;
mod orchestrate;
mod procs;
mod pubsub;
mod report;
mod stack;
mod tls;
mod workloads;

use std::process::ExitCode;

/// Errors of the bench; they end the run with a message.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
/// The bench's result type.
pub(crate) type Res<T> = Result<T, Error>;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; roles get their own flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let role = args.first().map(String::as_str).unwrap_or("");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("compare: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let flags = Flags(args.iter().skip(1).cloned().collect());
    let result = rt.block_on(async move {
        match role {
            "call" => load::call(&flags).await,
            "bidi" => load::bidi(&flags).await,
            "hyper" => load::hyper_load(&flags).await,
            "hyper-echo" => load::hyper_echo().await,
            "publish" => pubsub::publish(&flags).await,
            "subscribe" => pubsub::subscribe(&flags).await,
            "discovery" => discovery::run(&flags).await,
            "" => orchestrate::run().await,
            other => Err(format!("unknown role {other:?}").into()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare {role}: {e}");
            ExitCode::from(1)
        }
    }
}

/// A role's `--flag value` arguments.
pub(crate) struct Flags(Vec<String>);

impl Flags {
    /// The value after `--name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        let flag = format!("--{name}");
        self.0
            .iter()
            .position(|a| *a == flag)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
    }

    /// The value after `--name`, or `default`.
    pub(crate) fn str(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    /// The value after `--name` parsed, or `default`.
    pub(crate) fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Res<T> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: {v:?} is not a number").into()),
        }
    }
}

/// Nanoseconds since the Unix epoch (the clock both stacks' processes share).
pub(crate) fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Prints one JSON line on stdout and flushes it.
pub(crate) fn emit(v: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}
