//! `kill -9` of a registered process: its node leaves lookups and watches once its
//! TTL check is no longer passed (Consul times the TTL itself); other nodes stay.

use std::time::{Duration, Instant};

use micro_registry::{Action, Registry, WatchOptions};
use micro_tests::harness::consul::{ConsulAgent, Registrant};
use micro_tests::harness::wait_until;

const BIN: &str = env!("CARGO_BIN_EXE_consul-registrant");
const TTL: Duration = Duration::from_secs(2);
const INTERVAL: Duration = Duration::from_millis(500);

async fn ids(reg: &impl Registry) -> Vec<String> {
    let mut ids: Vec<String> = match reg.get_service("victim").await {
        Ok(s) => s.into_iter().flat_map(|s| s.nodes).map(|n| n.id).collect(),
        Err(_) => Vec::new(),
    };
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_drops_out_after_its_ttl() {
    let agent = ConsulAgent::start().await;
    let reg = agent.registry();
    let mut doomed = Registrant::start(
        BIN,
        &agent.address(),
        "victim",
        "victim-1",
        TTL,
        INTERVAL,
        &[],
    )
    .await;
    let mut survivor = Registrant::start(
        BIN,
        &agent.address(),
        "victim",
        "victim-2",
        TTL,
        INTERVAL,
        &[],
    )
    .await;
    assert_eq!(ids(&reg).await, ["victim-1", "victim-2"]);
    let mut w = reg.watch(&WatchOptions::service("victim")).await.unwrap();

    doomed.kill9().await;
    let killed = Instant::now();
    // kill -9 deregisters nothing: the node is still there right after.
    assert!(ids(&reg).await.contains(&"victim-1".to_owned()));

    let gone = wait_until(
        TTL + Duration::from_secs(8),
        Duration::from_millis(20),
        || async { ids(&reg).await == ["victim-2"] },
    )
    .await;
    let took = killed.elapsed();
    println!("killed node left get_service {took:?} after kill -9 (TTL {TTL:?})");
    assert!(gone, "killed node still served after {took:?}");
    // Generous bound: the TTL plus scheduling noise on a loaded machine.
    assert!(took <= TTL + Duration::from_secs(5), "took {took:?}");

    let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("a delete event")
        .unwrap();
    assert_eq!(
        (ev.action, ev.service.nodes[0].id.as_str()),
        (Action::Delete, "victim-1")
    );
    println!("watch delete event {:?} after kill -9", killed.elapsed());

    // The survivor is untouched, then deregisters cleanly on SIGTERM.
    tokio::time::sleep(TTL).await;
    assert_eq!(ids(&reg).await, ["victim-2"]);
    let status = survivor.terminate().await;
    assert!(
        status.is_some_and(|s| s.success()),
        "registrant exit: {status:?}"
    );
    assert!(ids(&reg).await.is_empty());
}
