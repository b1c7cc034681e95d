//! Reading a watch of a Consul agent in tests: its events, without the agent's
//! own `consul` service, within a bound.

use std::time::Duration;

use micro_registry::{Action, WatchEvent, Watcher};

/// The next event that is not about the agent's own `consul` service; panics
/// after 20 s without one or when the watch fails.
pub async fn next_event(w: &mut Box<dyn Watcher>) -> WatchEvent {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), w.next())
            .await
            .expect("no watch event within 20 s")
            .expect("watch failed");
        if ev.service.name != "consul" {
            return ev;
        }
    }
}

/// The next event, which must be `action` on a single node `id`.
pub async fn expect_event(w: &mut Box<dyn Watcher>, action: Action, id: &str) -> WatchEvent {
    let ev = next_event(w).await;
    let got = (
        ev.service.nodes.len(),
        ev.service.nodes.first().map(|n| n.id.as_str()),
    );
    assert_eq!(
        (ev.action, got),
        (action, (1, Some(id))),
        "unexpected event {ev:?}"
    );
    ev
}
