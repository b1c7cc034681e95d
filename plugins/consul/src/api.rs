//! The parts of Consul's JSON this crate writes and reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `PUT /v1/agent/service/register` body.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Registration {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) tags: Vec<String>,
    pub(crate) address: String,
    pub(crate) port: u16,
    pub(crate) meta: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) check: Option<Check>,
}

/// The inline check of a registration (Consul names it `service:<id>`).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Check {
    #[serde(rename = "TTL", skip_serializing_if = "Option::is_none")]
    pub(crate) ttl: Option<String>,
    #[serde(rename = "TCP", skip_serializing_if = "Option::is_none")]
    pub(crate) tcp: Option<String>,
    #[serde(rename = "HTTP", skip_serializing_if = "Option::is_none")]
    pub(crate) http: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<String>,
    pub(crate) deregister_critical_service_after: String,
}

/// One entry of `GET /v1/health/service/<name>`. Every field may be missing or
/// `null`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct HealthEntry {
    pub(crate) node: Option<HealthNode>,
    pub(crate) service: Option<HealthService>,
    pub(crate) checks: Option<Vec<HealthCheck>>,
}

/// The Consul node of a health entry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct HealthNode {
    pub(crate) node: Option<String>,
    pub(crate) address: Option<String>,
}

/// The service instance of a health entry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct HealthService {
    #[serde(rename = "ID")]
    pub(crate) id: Option<String>,
    pub(crate) service: Option<String>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) address: Option<String>,
    pub(crate) port: Option<i64>,
}

/// A check, as in health entries and in `GET /v1/health/state/any`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct HealthCheck {
    pub(crate) node: Option<String>,
    #[serde(rename = "CheckID")]
    pub(crate) check_id: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) service_name: Option<String>,
    pub(crate) modify_index: Option<u64>,
}

impl HealthCheck {
    pub(crate) fn is_critical(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("critical"))
    }
}
