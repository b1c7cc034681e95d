//! The examples' `helloworld` service and `helloworld-client`, each in a process
//! of its own, find each other through real etcd and through a real Consul agent
//! with nothing but `MICRO_REGISTRY` and `MICRO_REGISTRY_ADDRESS`: the client
//! prints the call results and the three stream results.

// Measured times are printed (see them with `--nocapture`).
#![allow(clippy::print_stdout)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use micro_tests::harness::Proc;
use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::rpc::{Backend, HelloServer, Timing, program_env, registered};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

const SERVER: &str = env!("CARGO_BIN_EXE_example-helloworld");
const CLIENT: &str = env!("CARGO_BIN_EXE_example-helloworld-client");

/// What `helloworld-client --name Alice --count 3` prints.
const EXPECTED: &[&str] = &[
    "call 0: Hello Alice",
    "call 1: Hello Alice",
    "call 2: Hello Alice",
    "client stream: server counted 5 strokes",
    "server stream: received [0, 1, 2, 3, 4]",
    "bidi stream: echoed [0, 1, 2, 3, 4]",
];

/// Runs the client program against `backend`; returns its exit status, stdout
/// and stderr.
async fn run_client(backend: &Backend) -> (std::process::ExitStatus, String, String) {
    let mut cmd = Command::new(CLIENT);
    program_env(&mut cmd, backend, Timing::SHORT);
    cmd.args(["--name", "Alice", "--count", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = Proc::spawn("helloworld-client", &mut cmd).expect("start client");
    let child = proc.child_mut().expect("client child");
    let (mut out, mut err) = (
        child.stdout.take().expect("client stdout"),
        child.stderr.take().expect("client stderr"),
    );
    let run = async {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = tokio::join!(out.read_to_string(&mut o), err.read_to_string(&mut e));
        (child.wait().await.expect("client status"), o, e)
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("helloworld-client did not finish within 60 s")
}

async fn scenario(mut backend: Backend) {
    init_tracing();
    let name = backend.name();
    let mut server = HelloServer::start(SERVER, &backend, Timing::SHORT).await;
    let observer = backend.registry();
    assert_eq!(
        registered(observer.as_ref(), "helloworld").await,
        [server.node_id()],
        "{name}: the server is registered once READY"
    );

    let started = Instant::now();
    let (status, stdout, stderr) = run_client(&backend).await;
    let took = started.elapsed();
    println!("{name}: helloworld-client ran in {took:?}:\n{stdout}");
    assert!(
        status.success(),
        "{name}: client failed ({status}):\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, EXPECTED, "{name}: client output; stderr:\n{stderr}");

    // The service stops gracefully and leaves the registry.
    let status = server.terminate().await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{name}: helloworld exit after SIGTERM: {status:?}"
    );
    assert!(
        registered(observer.as_ref(), "helloworld").await.is_empty(),
        "{name}: the stopped server deregistered"
    );
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd() {
    scenario(Backend::etcd().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul() {
    scenario(Backend::consul().await).await;
}
