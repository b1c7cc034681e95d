//! A Consul agent restarted in dev mode forgets every registration; registered
//! processes come back on their own within one register interval, with the
//! heartbeat and without it (go-micro's behaviour: a failed TTL pass makes the next
//! registration a full one). A watch running across the restart keeps working.

use std::time::{Duration, Instant};

use micro_registry::{Action, Node, RegisterOptions, Registry, ServiceRecord, WatchOptions};
use micro_tests::harness::consul::{ConsulAgent, Registrant};
use micro_tests::harness::wait_until;

const BIN: &str = env!("CARGO_BIN_EXE_consul-registrant");
const TTL: Duration = Duration::from_secs(6);
const INTERVAL: Duration = Duration::from_secs(2);

async fn ids(reg: &impl Registry) -> Vec<String> {
    let mut ids: Vec<String> = match reg.get_service("phoenix").await {
        Ok(s) => s.into_iter().flat_map(|s| s.nodes).map(|n| n.id).collect(),
        Err(_) => Vec::new(),
    };
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrants_come_back_after_an_agent_restart() {
    let mut agent = ConsulAgent::start().await;
    let addr = agent.address();
    let _beating =
        Registrant::start(BIN, &addr, "phoenix", "phoenix-beat", TTL, INTERVAL, &[]).await;
    let _ticking = Registrant::start(
        BIN,
        &addr,
        "phoenix",
        "phoenix-tick",
        TTL,
        INTERVAL,
        &["--no-heartbeat"],
    )
    .await;
    let reg = agent.registry();
    assert_eq!(ids(&reg).await, ["phoenix-beat", "phoenix-tick"]);
    let mut w = reg.watch(&WatchOptions::service("phoenix")).await.unwrap();

    agent.restart().await;
    let up = Instant::now();
    let back = wait_until(
        INTERVAL + Duration::from_secs(10),
        Duration::from_millis(50),
        || async { ids(&reg).await == ["phoenix-beat", "phoenix-tick"] },
    )
    .await;
    let took = up.elapsed();
    println!("both registrants back {took:?} after the agent was up (interval {INTERVAL:?})");
    assert!(back, "registrants not back after {took:?}");
    // One register interval, plus slack for a loaded machine.
    assert!(took <= INTERVAL + Duration::from_secs(3), "took {took:?}");

    // The watch survived the restart: it still reports changes.
    let extra = ServiceRecord {
        name: "phoenix".into(),
        version: "1".into(),
        nodes: vec![Node::new("phoenix-extra", "127.0.0.1:7700")],
        ..Default::default()
    };
    reg.register(&extra, &RegisterOptions::ttl(Duration::from_secs(30)))
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match w.next().await {
                Ok(ev)
                    if ev.action == Action::Create && ev.service.nodes[0].id == "phoenix-extra" =>
                {
                    return true;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    assert!(
        matches!(seen, Ok(true)),
        "watch did not report the new node after the restart"
    );
}
