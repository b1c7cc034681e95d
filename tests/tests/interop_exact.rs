//! Data crosses the Go boundary exactly, both ways, with go-micro v4.11 and v5.30
//! through etcd and Consul: random float64 values of every exponent (subnormals,
//! -0 and the values where fast parsers round wrong), extreme integers, text with
//! JSON escapes, Go's `[]byte` (base64) and nil slices and maps (`null`), nested
//! messages; errors of up to 400 KiB, which go-micro sends twice in one head; and
//! hundreds of metadata pairs. A call whose answer is an error runs its handler
//! once, even with two nodes and retries on. Handlers see `Local` and `Remote`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use micro::client::CallErrorKind;
use micro_tests::harness::etcd::init_tracing;
use micro_tests::harness::gomicro::{
    Combo, FailRequest, FailResponse, GoProc, Inner, InteropHelloworld, MetaRequest, MetaResponse,
    Payload, Recorder, Registries, for_each_combo, our_server, retry_lost, run,
};
use serde_json::Value;

/// Bound of every single wait.
const LIMIT: Duration = Duration::from_secs(30);
/// Random floats per direction and combination.
const FLOATS: usize = 20_000;
/// Error details tried, in bytes: each travels twice in the reply's head, JSON
/// escaped (this text grows by half), so the largest makes a head of over 900 KiB,
/// close to the 1 MiB limit (Go's servers' own).
const DETAILS: [usize; 4] = [1, 32 << 10, 200 << 10, 300 << 10];
/// An error too large for the limit: a clear error, still not run again.
const TOO_LARGE: usize = 700 << 10;
/// Metadata pairs sent: go-micro to go-micro passes 131 (where the old line limit
/// refused), and far more.
const PAIRS: [usize; 2] = [131, 1000];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_crosses_the_go_boundary_exactly() {
    init_tracing();
    let registries = Registries::start().await;
    for_each_combo("exact data both ways", &registries, scenario).await;
}

async fn scenario(registries: Arc<Registries>, combo: Combo) {
    let floats = random_floats(FLOATS, combo_seed(&combo));
    go_server_side(&registries, combo, &floats).await;
    go_client_side(&registries, combo, &floats).await;
}

/// The values that stress float formatting and parsing, then random bit patterns
/// (every exponent, subnormals included; never NaN or infinity, which JSON cannot
/// carry).
fn random_floats(n: usize, seed: u64) -> Vec<f64> {
    let mut v = vec![
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::from_bits(0x000f_ffff_ffff_ffff),
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        0.1,
        0.3,
        1e21,
        1e-7,
        999_999_999_999_999_900_000.0,
        123_456_789.123_456_79,
        2.225_073_858_507_201e-308,
        9_007_199_254_740_993.0,
    ];
    let mut rng = fastrand::Rng::with_seed(seed);
    while v.len() < n {
        let f = match v.len() % 3 {
            // any bit pattern
            0 => f64::from_bits(rng.u64(..)),
            // ordinary decimals, where fast parsers are off by one ulp most often
            1 => rng.f64() * 10f64.powi(rng.i32(-20..20)),
            // subnormals
            _ => f64::from_bits(rng.u64(..1u64 << 52)),
        };
        if f.is_finite() {
            v.push(if rng.bool() { f } else { -f });
        }
    }
    v
}

fn combo_seed(combo: &Combo) -> u64 {
    combo
        .slug()
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
}

fn bits(fs: &[f64]) -> Vec<String> {
    fs.iter().map(|f| format!("{:016x}", f.to_bits())).collect()
}

/// Where the first differing value is, if any (compared by bits).
fn first_difference(sent: &[f64], got: &[f64]) -> Option<String> {
    if sent.len() != got.len() {
        return Some(format!("sent {} values, got {}", sent.len(), got.len()));
    }
    sent.iter().zip(got).enumerate().find_map(|(i, (a, b))| {
        (a.to_bits() != b.to_bits()).then(|| {
            format!(
                "value {i}: sent {a:e} ({:016x}), got {b:e} ({:016x})",
                a.to_bits(),
                b.to_bits()
            )
        })
    })
}

/// A payload like the Go peers' `NewPayload`: filled collections, nested
/// messages, every byte value.
fn payload(floats: &[f64]) -> Payload {
    let mut map = BTreeMap::new();
    map.insert("pi".to_owned(), std::f64::consts::PI);
    map.insert("tiny".to_owned(), f64::from_bits(1));
    map.insert("neg0".to_owned(), -0.0);
    Payload {
        f64: floats.first().copied().unwrap_or_default(),
        f64s: floats.to_vec(),
        f32: 1.1,
        i64: i64::MIN,
        u64: u64::MAX,
        text: "héllo <&> \u{2028} \"q\" \\".into(),
        bytes: (0..=255).collect(),
        list: vec!["a".into(), String::new(), "c".into()],
        map,
        inner: Some(Inner {
            name: "inner".into(),
            values: vec![1.5, -2.25],
            tags: [("k".to_owned(), "v".to_owned())].into_iter().collect(),
        }),
        inners: vec![],
    }
}

/// Our client and two go-micro server nodes of one service.
async fn go_server_side(registries: &Registries, combo: Combo, floats: &[f64]) {
    let name = format!("go-exact-{}", combo.slug());
    let mut args = registries.go_args(combo.registry);
    args.extend(["--name".to_owned(), name.clone(), "--emit_exec".to_owned()]);
    let mut nodes = [
        GoProc::spawn(combo.go, "server", &args),
        GoProc::spawn(combo.go, "server", &args),
    ];
    for n in &mut nodes {
        n.ready(LIMIT).await;
    }
    let caller = our_server("rust-exact-caller", registries.registry(combo.registry))
        .build()
        .expect("build caller");
    let client = caller.client().clone();

    // Floats and the rest of the payload, bit for bit.
    let sent = payload(floats);
    let got: Payload = retry_lost(&name, || {
        client.request(&name, "Helloworld.Echo").call(&sent)
    })
    .await
    .expect("echo");
    if let Some(d) = first_difference(&sent.f64s, &got.f64s) {
        panic!(
            "[{}] a Go server's echo changed a float: {d}",
            combo.label()
        );
    }
    assert_eq!(got.f64.to_bits(), sent.f64.to_bits());
    assert_eq!(got.map["neg0"].to_bits(), (-0.0f64).to_bits());
    assert_eq!(got, sent, "every field comes back as sent");
    // A Go zero value: every slice, map and pointer nil, sent as null.
    let zero = client
        .request(&name, "Helloworld.Echo")
        .call_raw("{}")
        .await
        .expect("echo {}");
    let raw: Value = serde_json::from_slice(&zero.body).expect("json");
    for k in ["f64s", "bytes", "list", "map", "inner", "inners"] {
        assert_eq!(raw[k], Value::Null, "Go sends nil {k} as null: {raw}");
    }
    let decoded: Payload = serde_json::from_slice(&zero.body).expect("nulls decode");
    assert_eq!(decoded, Payload::default());
    // the Echo runs so far
    count_execs(&mut nodes).await;

    // Large errors: read whole, returned once, the handler run once.
    for size in DETAILS {
        let detail = detail(size);
        let err = client
            .request(&name, "Helloworld.Fail")
            .call::<_, FailResponse>(&FailRequest {
                code: 422,
                detail: detail.clone(),
            })
            .await
            .expect_err("Fail fails");
        assert_eq!(
            err.kind(),
            CallErrorKind::Remote,
            "[{}] {size} B: {}",
            combo.label(),
            err.id()
        );
        assert_eq!((err.code(), err.id()), (422, "helloworld"));
        assert!(
            err.detail() == detail,
            "[{}] the {size} B detail arrives whole",
            combo.label()
        );
    }
    // Beyond the limit the reply cannot be read: it is still the answer, reported
    // as such, not a reason to run the call again.
    let err = client
        .request(&name, "Helloworld.Fail")
        .call::<_, FailResponse>(&FailRequest {
            code: 422,
            detail: detail(TOO_LARGE),
        })
        .await
        .expect_err("Fail fails");
    assert_eq!(
        err.kind(),
        CallErrorKind::BadReply,
        "[{}] {err:?}",
        combo.label()
    );
    assert!(
        err.detail().contains("header block"),
        "[{}] {}",
        combo.label(),
        err.detail()
    );
    let execs = count_execs(&mut nodes).await;
    assert_eq!(
        execs,
        DETAILS.len() + 1,
        "[{}] each failing call ran one Go handler once",
        combo.label()
    );

    // Hundreds of metadata pairs reach a Go handler.
    for n in PAIRS {
        let mut req = client.request(&name, "Helloworld.Meta");
        for i in 0..n {
            req = req.metadata(&format!("X-Pair-{i}"), format!("v{i}"));
        }
        let rsp: MetaResponse = req.call(&MetaRequest {}).await.expect("meta");
        let pairs = rsp
            .metadata
            .keys()
            .filter(|k| k.starts_with("X-Pair-"))
            .count();
        assert_eq!(
            pairs,
            n,
            "[{}] {n} pairs reach the Go handler",
            combo.label()
        );
        assert_eq!(
            rsp.metadata
                .get(&format!("X-Pair-{}", n - 1))
                .map(String::as_str),
            Some(format!("v{}", n - 1).as_str())
        );
    }

    caller.stop().await.expect("stop caller");
    for n in nodes {
        let (by_itself, out) = n.terminate(LIMIT).await;
        assert!(by_itself, "Go server ignored SIGTERM: {}", out.context());
    }
}

/// The `exec` lines the Go servers printed since the last count (read with a
/// short wait: the lines of finished calls are already there).
async fn count_execs(nodes: &mut [GoProc]) -> usize {
    let mut n = 0;
    for node in nodes {
        while let Some(line) = node.next_line(Duration::from_millis(300)).await {
            if line.contains("\"kind\":\"exec\"") {
                n += 1;
            }
        }
    }
    n
}

fn detail(size: usize) -> String {
    // What the Go peers' peer.Detail makes, so both sides can compare.
    let unit = "large error detail <&> \"quoted\" ";
    unit.repeat(size / unit.len() + 1)[..size].to_owned()
}

/// A go-micro client and two of our server nodes of one service.
async fn go_client_side(registries: &Registries, combo: Combo, floats: &[f64]) {
    let name = format!("rust-exact-{}", combo.slug());
    let mut services = Vec::new();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let handler = InteropHelloworld::new(Recorder::new());
        runs.push(handler.runs());
        let s = our_server(&name, registries.registry(combo.registry))
            .handle(handler)
            .build()
            .expect("build");
        s.start().await.expect("start");
        services.push(s);
    }
    let base = {
        let mut b = registries.go_args(combo.registry);
        b.extend(["--service".to_owned(), name.clone()]);
        b
    };
    let client = |cmd: &str, extra: &[&str]| {
        let mut all = vec![cmd.to_owned()];
        all.extend(base.iter().cloned());
        all.extend(extra.iter().map(|a| (*a).to_owned()));
        all
    };
    let runs_total = || runs.iter().map(|r| r.load(Ordering::SeqCst)).sum::<usize>();

    // Floats: the Go client sends the values' exact bits, compares what comes
    // back and prints the bits it got.
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    for b in bits(floats) {
        writeln!(file, "{b}").expect("write bits");
    }
    let path = file.path().to_str().expect("utf-8 path").to_owned();
    let out = run(
        combo.go,
        "client",
        client("echo", &["--bits_file", &path]),
        LIMIT,
    )
    .await
    .expect_code(0);
    let echo = &out[0];
    let got: Vec<String> = serde_json::from_value(echo["got_bits"].clone()).expect("got_bits");
    let sent = bits(floats);
    if let Some(i) = (0..sent.len()).find(|&i| got.get(i) != sent.get(i)) {
        panic!(
            "[{}] our server changed float {i}: sent {} got {:?} ({} values back)",
            combo.label(),
            sent[i],
            got.get(i),
            got.len()
        );
    }
    assert_eq!(
        echo["equal"],
        Value::Bool(true),
        "[{}] {}",
        combo.label(),
        echo["mismatch"]
    );
    // Go's nils (null) and everything else of a zero-ish payload.
    let out = run(combo.go, "client", client("echo", &["--nils"]), LIMIT)
        .await
        .expect_code(0);
    assert_eq!(
        out[0]["equal"],
        Value::Bool(true),
        "[{}] {}",
        combo.label(),
        out[0]["mismatch"]
    );

    // Large errors from our server reach the Go client whole, and each call runs
    // one of our handlers once.
    let before = runs_total();
    for size in DETAILS {
        let size_arg = size.to_string();
        let out = run(
            combo.go,
            "client",
            client("fail", &["--code", "409", "--detail_size", &size_arg]),
            LIMIT,
        )
        .await
        .expect_code(1);
        let e = &out[0]["error"];
        assert_eq!(e["code"], 409, "[{}] {size} B", combo.label());
        assert_eq!(e["id"], "helloworld");
        assert!(
            e["detail"].as_str() == Some(detail(size).as_str()),
            "[{}] the {size} B detail arrives whole",
            combo.label()
        );
    }
    assert_eq!(
        runs_total() - before,
        DETAILS.len(),
        "[{}] one run per call",
        combo.label()
    );

    // Hundreds of metadata pairs from a Go client reach our handler, with the
    // connection's Local and Remote addresses as go-micro servers add them.
    for n in PAIRS {
        let n_arg = n.to_string();
        let out = run(
            combo.go,
            "client",
            client("meta", &["--meta_count", &n_arg]),
            LIMIT,
        )
        .await
        .expect_code(0);
        let md = out[0]["metadata"].as_object().expect("metadata");
        let pairs = md.keys().filter(|k| k.starts_with("X-Pair-")).count();
        assert_eq!(pairs, n, "[{}] {n} pairs reach our handler", combo.label());
        for k in ["Local", "Remote"] {
            let addr = md.get(k).and_then(Value::as_str).unwrap_or("");
            assert!(
                addr.starts_with("127.0.0.1:"),
                "[{}] {k} = {addr:?}",
                combo.label()
            );
        }
    }

    for s in services {
        s.stop().await.expect("stop");
    }
}
