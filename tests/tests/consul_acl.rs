//! A Consul agent with ACLs on (default deny): a wrong or missing token gives a
//! clear "permission denied" error; the right token works.

use std::time::Duration;

use micro_consul::ConsulOptions;
use micro_registry::{Error, Node, RegisterOptions, Registry, ServiceRecord, WatchOptions};
use micro_tests::harness::consul::{AgentOptions, ConsulAgent};

const TOKEN: &str = "9a1b0c7e-5d8f-4e2a-b3c1-0f6e7d8c9b0a";

fn svc() -> ServiceRecord {
    ServiceRecord {
        name: "secured".into(),
        version: "1".into(),
        nodes: vec![Node::new("secured-1", "127.0.0.1:7000")],
        ..Default::default()
    }
}

fn assert_acl_error(err: &Error) {
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    let text = err.to_string().to_lowercase();
    assert!(
        text.contains("permission denied") && text.contains("acl"),
        "error does not say it is an ACL refusal: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_token_is_a_clear_acl_error() {
    let agent = ConsulAgent::start_with(AgentOptions::new().acl(TOKEN)).await;
    let ttl = RegisterOptions::ttl(Duration::from_secs(30));

    let wrong = ConsulOptions::new()
        .address(agent.address())
        .token("00000000-0000-0000-0000-000000000000")
        .build()
        .unwrap();
    let err = wrong.register(&svc(), &ttl).await.unwrap_err();
    println!("wrong token, register: {err}");
    assert_acl_error(&err);
    assert_eq!(wrong.heartbeats(), 0);
    assert_acl_error(&wrong.get_service("secured").await.unwrap_err());
    assert_acl_error(&wrong.list_services().await.unwrap_err());
    assert_acl_error(
        &wrong
            .watch(&WatchOptions::service("secured"))
            .await
            .err()
            .unwrap(),
    );
    assert_acl_error(&wrong.watch(&WatchOptions::all()).await.err().unwrap());

    // No token: the anonymous token may not write.
    let anonymous = ConsulOptions::new()
        .address(agent.address())
        .build()
        .unwrap();
    let err = anonymous.register(&svc(), &ttl).await.unwrap_err();
    println!("no token, register: {err}");
    assert_acl_error(&err);

    // The right token works end to end.
    let good = agent.registry();
    good.register(&svc(), &ttl).await.unwrap();
    assert_eq!(good.get_service("secured").await.unwrap()[0].nodes.len(), 1);
    // Reads by the anonymous token are filtered by Consul, not refused.
    assert!(matches!(
        anonymous.get_service("secured").await,
        Err(Error::NotFound)
    ));
    good.deregister(&svc()).await.unwrap();
    assert!(matches!(
        good.get_service("secured").await,
        Err(Error::NotFound)
    ));
}
