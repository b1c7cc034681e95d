//! Reading `/v1/health/service/<name>` answers: instances, health, and go-micro's
//! grouping by version.

use micro_registry::{Node, ServiceRecord};
use serde::Deserialize;

use crate::api::HealthEntry;
use crate::client::Reply;
use crate::convert::join_host_port;
use crate::{Error, tags};

/// A service instance read from Consul: a single-node [`ServiceRecord`] with its own
/// version and endpoints, and whether any of its checks is critical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Instance {
    pub(crate) service: ServiceRecord,
    pub(crate) critical: bool,
}

/// The instances of `name` in a `/v1/health/service/<name>` answer. Entries of
/// other services and entries that do not decode are skipped.
pub(crate) fn instances(name: &str, reply: &Reply) -> Result<Vec<Instance>, Error> {
    let raw: Option<Vec<serde_json::Value>> = reply.json()?;
    let mut out = Vec::new();
    for value in raw.unwrap_or_default() {
        let entry = match HealthEntry::deserialize(value) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(service = name, error = %e, "consul: skipping a malformed health entry");
                continue;
            }
        };
        if let Some(inst) = instance(name, entry) {
            out.push(inst);
        }
    }
    Ok(out)
}

fn instance(name: &str, entry: HealthEntry) -> Option<Instance> {
    let svc = entry.service?;
    if svc.service.as_deref() != Some(name) {
        return None;
    }
    let id = svc.id.filter(|id| !id.is_empty())?;
    let tags = svc.tags.unwrap_or_default();
    let host = svc
        .address
        .filter(|a| !a.is_empty())
        .or_else(|| entry.node.and_then(|n| n.address))
        .unwrap_or_default();
    let port = svc
        .port
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_default();
    let critical = entry
        .checks
        .unwrap_or_default()
        .iter()
        .any(|c| c.is_critical());
    Some(Instance {
        service: ServiceRecord {
            name: name.to_owned(),
            version: tags::decode_version(&tags).unwrap_or_default(),
            metadata: Default::default(),
            endpoints: tags::decode_endpoints(&tags),
            nodes: vec![Node {
                id,
                address: join_host_port(&host, port),
                metadata: tags::decode_metadata(&tags),
            }],
        },
        critical,
    })
}

/// go-micro's `GetService` grouping: one service per version, its endpoints from
/// the first instance of that version, nodes whose checks are all non-critical.
/// Versions left without nodes are dropped.
pub(crate) fn group(instances: &[Instance]) -> Vec<ServiceRecord> {
    let mut out: Vec<ServiceRecord> = Vec::new();
    for inst in instances {
        let at = match out.iter().position(|s| s.version == inst.service.version) {
            Some(i) => i,
            None => {
                out.push(inst.service.without_nodes());
                out.len() - 1
            }
        };
        if !inst.critical {
            out[at].nodes.extend(inst.service.nodes.iter().cloned());
        }
    }
    out.retain(|s| !s.nodes.is_empty());
    out
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(json: &str) -> Reply {
        Reply {
            body: bytes::Bytes::from(json.to_owned()),
            index: Some(1),
            url: "test".into(),
            acl_deny: false,
        }
    }

    fn entry(id: &str, version: &str, address: &str, statuses: &[(&str, &str)]) -> String {
        let checks: Vec<String> = statuses
            .iter()
            .map(|(check, status)| format!(r#"{{"CheckID":"{check}","Status":"{status}"}}"#))
            .collect();
        format!(
            r#"{{"Node":{{"Node":"n1","Address":"10.0.0.9"}},
               "Service":{{"ID":"{id}","Service":"svc","Tags":["{}"],"Address":"{address}","Port":8080}},
               "Checks":[{}]}}"#,
            tags::encode_version(version),
            checks.join(",")
        )
    }

    fn ids(services: &[ServiceRecord]) -> Vec<String> {
        services
            .iter()
            .flat_map(|s| &s.nodes)
            .map(|n| n.id.clone())
            .collect()
    }

    #[test]
    fn passing_and_warning_nodes_are_kept() {
        let body = format!(
            "[{},{}]",
            entry(
                "a",
                "1",
                "10.0.0.1",
                &[("serfHealth", "passing"), ("service:a", "passing")]
            ),
            entry(
                "b",
                "1",
                "10.0.0.2",
                &[("serfHealth", "passing"), ("service:b", "warning")]
            )
        );
        let inst = instances("svc", &reply(&body)).unwrap();
        assert_eq!(ids(&group(&inst)), ["a", "b"]);
    }

    #[test]
    fn a_critical_service_or_node_check_drops_the_node() {
        let body = format!(
            "[{},{},{}]",
            entry(
                "a",
                "1",
                "10.0.0.1",
                &[("serfHealth", "passing"), ("service:a", "critical")]
            ),
            entry(
                "b",
                "1",
                "10.0.0.2",
                &[("serfHealth", "critical"), ("service:b", "passing")]
            ),
            entry(
                "c",
                "1",
                "10.0.0.3",
                &[("serfHealth", "passing"), ("service:c", "passing")]
            )
        );
        let inst = instances("svc", &reply(&body)).unwrap();
        assert_eq!(ids(&group(&inst)), ["c"]);
        let all_bad = format!(
            "[{}]",
            entry("a", "1", "10.0.0.1", &[("service:a", "critical")])
        );
        let inst = instances("svc", &reply(&all_bad)).unwrap();
        assert!(group(&inst).is_empty());
    }

    #[test]
    fn versions_addresses_and_foreign_entries() {
        let other = r#"{"Service":{"ID":"x","Service":"other","Port":1}}"#;
        let body = format!(
            r#"[{},{},{},{other},{{"Service":{{"ID":"","Service":"svc"}}}},"garbage",null]"#,
            entry("a", "1", "", &[]),
            entry("b", "2", "::1", &[]),
            entry("c", "1", "10.0.0.3", &[])
        );
        let inst = instances("svc", &reply(&body)).unwrap();
        let services = group(&inst);
        assert_eq!(services.len(), 2);
        assert_eq!(services[0].version, "1");
        // No service address: the Consul node's address.
        assert_eq!(services[0].nodes[0].address, "10.0.0.9:8080");
        assert_eq!(services[0].nodes[1].address, "10.0.0.3:8080");
        assert_eq!(services[1].nodes[0].address, "[::1]:8080");
    }

    #[test]
    fn an_empty_or_null_answer_has_no_instances() {
        assert!(instances("svc", &reply("[]")).unwrap().is_empty());
        assert!(instances("svc", &reply("null")).unwrap().is_empty());
        assert!(instances("svc", &reply("{not json")).is_err());
    }
}
