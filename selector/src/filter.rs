//! Filters: predicates that keep some nodes of a service out of a selection.
//!
//! A filter sees each node with its service (one version) and keeps the node when it
//! returns true. go-micro's three filters are here; any closure works too.
//!
//! ```
//! use micro_selector::{Filter, SelectOptions, filter};
//!
//! let opts = SelectOptions::new()
//!     .filter(filter::version("1.0"))
//!     .filter(filter::label("region", "eu"))
//!     .filter(Filter::new(|_svc, node| !node.address.is_empty()));
//! assert_eq!(opts.filters().len(), 3);
//! ```

use std::sync::Arc;

use micro_registry::{Node, ServiceRecord};

/// A node predicate; see the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct Filter(Arc<FilterFn>);

type FilterFn = dyn Fn(&ServiceRecord, &Node) -> bool + Send + Sync;

impl Filter {
    /// A filter keeping the nodes for which `f` returns true.
    pub fn new(f: impl Fn(&ServiceRecord, &Node) -> bool + Send + Sync + 'static) -> Self {
        Filter(Arc::new(f))
    }

    /// Whether `node` of `service` passes.
    pub fn matches(&self, service: &ServiceRecord, node: &Node) -> bool {
        (self.0)(service, node)
    }
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Filter")
    }
}

/// Keeps nodes of services with exactly this version (go-micro's `FilterVersion`).
pub fn version(version: impl Into<String>) -> Filter {
    let version = version.into();
    Filter::new(move |svc, _| svc.version == version)
}

/// Keeps nodes whose metadata has `key` set to `value` (go-micro's `FilterLabel`).
pub fn label(key: impl Into<String>, value: impl Into<String>) -> Filter {
    let (key, value) = (key.into(), value.into());
    Filter::new(move |_, node| node.metadata.get(&key) == Some(&value))
}

/// Keeps nodes of services that register an endpoint with exactly this name
/// (go-micro's `FilterEndpoint`).
pub fn endpoint(name: impl Into<String>) -> Filter {
    let name = name.into();
    Filter::new(move |svc, _| svc.endpoints.iter().any(|e| e.name == name))
}
