//! Integration tests for micro: the harness that runs real servers (etcd, Consul,
//! go-micro peers) as child processes on free loopback ports, and the suites in
//! `tests/` that use it.
//!
//! Everything the harness starts is owned by a guard that kills the process when
//! dropped, so a failing test leaves nothing running.

pub mod harness;
