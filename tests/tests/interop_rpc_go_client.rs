//! A real go-micro client (v4.11 and v5.30, discovering through etcd and through
//! Consul) calls our server: unary `Helloworld.Call`, the three stream kinds, a
//! handler error (unary and in a stream), and caller metadata.
//!
//! A go-micro client cannot finish a `ClientStream`: its `Close()` sends `EOS` and
//! drops the connection at once, so it never reads the server's reply (see
//! `/work/notes/captures/README.md`). What is checked instead is that our handler
//! counted every message, with and without the peer's `--close_delay`.

use std::sync::Arc;
use std::time::Duration;

use micro::Service;
use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::gomicro::{
    Combo, GoVersion, InteropHelloworld, Recorder, Registries, for_each_combo, our_server, run,
};
use serde_json::{Value, json};

/// Bound of every single wait.
const LIMIT: Duration = Duration::from_secs(20);
/// Messages per stream.
const N: i64 = 5;
/// Messages of the long streams.
const LONG: i64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_client_calls_our_server() {
    init_tracing();
    let registries = Registries::start().await;
    for_each_combo("Go client -> our server", &registries, scenario).await;
}

async fn scenario(registries: Arc<Registries>, combo: Combo) {
    let name = format!("rust-hw-{}", combo.slug());
    let counts = Recorder::new();
    let service = our_server(&name, registries.registry(combo.registry))
        .handle(InteropHelloworld::new(counts.clone()))
        .build()
        .expect("build");
    service.start().await.expect("start our server");
    let go = GoClient {
        go: combo.go,
        base: registries.go_args(combo.registry),
        service: name.clone(),
    };

    // Plain, non-ASCII with JSON escapes, and 100 KiB (a command line's limit).
    for who in [
        "Go".to_owned(),
        "Wörld ✓ \"q\" \n\t 世界".to_owned(),
        "g".repeat(100 << 10),
    ] {
        let out = go.run("call", &["--name", &who]).await;
        assert!(
            out == vec![json!({"msg": format!("Hello {who}")})],
            "reply to a {} byte name",
            who.len()
        );
    }

    client_stream(&go, &counts).await;

    for n in [N, LONG] {
        let out = go.run("server-stream", &["--count", &n.to_string()]).await;
        let want: Vec<Value> = (0..n).map(|i| json!({"count": i})).collect();
        assert!(
            out == want,
            "our server's {n} messages arrive intact, in order"
        );
    }

    // A handler error ends a stream with the error, which the Go client returns.
    let out = go
        .run_expect("server-stream", &["--count", "10001"], 1)
        .await;
    assert_eq!(
        out,
        vec![json!({"error": {"id": "helloworld", "code": 400,
            "detail": "count must be between 0 and 10000", "status": "Bad Request"}})]
    );

    let out = go.run("bidi", &["--count", &LONG.to_string()]).await;
    let want: Vec<Value> = (0..LONG).map(|i| json!({"stroke": i})).collect();
    assert!(out == want, "{LONG} echoes, in order");

    for (code, detail, status) in [
        (404, "not here", "Not Found"),
        (409, "already there", "Conflict"),
        (418, "short and stout", "I'm a teapot"),
        (422, "cannot do that", "Unprocessable Entity"),
        (425, "too early", "Too Early"),
        (429, "slow down", "Too Many Requests"),
        (451, "not here either", "Unavailable For Legal Reasons"),
        (503, "come back later", "Service Unavailable"),
        (511, "log in first", "Network Authentication Required"),
    ] {
        let args = ["--code", &code.to_string(), "--detail", detail];
        let out = go.run_expect("fail", &args, 1).await;
        assert_eq!(
            out,
            vec![
                json!({"error": {"id": "helloworld", "code": code, "detail": detail, "status": status}})
            ]
        );
    }

    metadata(&go, &name).await;

    stop(&service).await;
}

/// The Go client program of one combination.
struct GoClient {
    go: GoVersion,
    base: Vec<String>,
    service: String,
}

impl GoClient {
    /// Runs `client <cmd> <args>`; returns its JSON lines after checking the exit
    /// code.
    async fn run_expect(&self, cmd: &str, args: &[&str], code: i32) -> Vec<Value> {
        let mut all: Vec<String> = vec![cmd.into()];
        all.extend(self.base.iter().cloned());
        all.extend(["--service".into(), self.service.clone()]);
        all.extend(args.iter().map(|a| (*a).to_owned()));
        run(self.go, "client", &all, LIMIT).await.expect_code(code)
    }

    async fn run(&self, cmd: &str, args: &[&str]) -> Vec<Value> {
        self.run_expect(cmd, args, 0).await
    }
}

async fn client_stream(go: &GoClient, counts: &Recorder<i64>) {
    // With the pause go-micro needs (its own server may miss messages without it).
    let n = N.to_string();
    let out = go
        .run("client-stream", &["--count", &n, "--close_delay", "200ms"])
        .await;
    assert_eq!(out, vec![json!({"sent": N})]);
    let got = counts.wait_for(LIMIT, |c| !c.is_empty()).await;
    assert_eq!(got, vec![N], "our handler counted every stroke");

    // Without it: EOS and the hang-up arrive right behind the last message; our
    // server still reads every message before it sees the end.
    let out = go.run("client-stream", &["--count", &n]).await;
    assert_eq!(out, vec![json!({"sent": N})]);
    let got = counts.wait_for(LIMIT, |c| c.len() >= 2).await;
    assert_eq!(got, vec![N, N], "our handler counted every stroke");
}

async fn metadata(go: &GoClient, name: &str) {
    let out = go
        .run(
            "meta",
            &[
                "--metadata",
                "Foo=bar",
                "--metadata",
                "x-lower=1",
                "--metadata",
                "X-Trace-Id=trace-42",
            ],
        )
        .await;
    assert_eq!(out.len(), 1, "{out:?}");
    let md = out[0]["metadata"].as_object().expect("metadata object");
    for (k, v) in [
        ("Foo", "bar"),
        ("X-Lower", "1"),
        ("X-Trace-Id", "trace-42"),
        ("Micro-Service", name),
        ("Micro-Endpoint", "Helloworld.Meta"),
        ("Micro-Method", "Helloworld.Meta"),
        ("Content-Type", "application/json"),
    ] {
        assert_eq!(md.get(k).and_then(Value::as_str), Some(v), "{k} in {md:?}");
    }
    assert!(md.contains_key("Timeout"), "Timeout header in {md:?}");
}

async fn stop(service: &Service) {
    tokio::time::timeout(LIMIT, service.stop())
        .await
        .expect("stop in time")
        .expect("stop");
}
