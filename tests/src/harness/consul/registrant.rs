//! The `consul-registrant` helper process.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::harness::Proc;

/// A running `consul-registrant` (see `src/bin/consul-registrant.rs`).
pub struct Registrant {
    proc: Proc,
    id: String,
}

impl Registrant {
    /// Starts `bin` (pass `env!("CARGO_BIN_EXE_consul-registrant")`) registering node
    /// `id` of `name` at `consul` with `ttl` every `interval`, plus `extra` flags,
    /// and waits (up to 30 s) for its `READY`.
    pub async fn start(
        bin: &str,
        consul: &str,
        name: &str,
        id: &str,
        ttl: Duration,
        interval: Duration,
        extra: &[&str],
    ) -> Registrant {
        let mut cmd = Command::new(bin);
        cmd.args(["--consul", consul, "--name", name, "--id", id])
            .arg("--ttl-ms")
            .arg(ttl.as_millis().to_string())
            .arg("--interval-ms")
            .arg(interval.as_millis().to_string())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut proc = Proc::spawn(format!("registrant {id}"), &mut cmd).expect("start registrant");
        let stdout = proc
            .child_mut()
            .and_then(|c| c.stdout.take())
            .expect("registrant stdout");
        let mut lines = tokio::io::BufReader::new(stdout);
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            let mut line = String::new();
            loop {
                line.clear();
                match tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line).await {
                    Ok(0) | Err(_) => return false,
                    Ok(_) if line.trim() == "READY" => return true,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(
            matches!(ready, Ok(true)),
            "registrant {id} did not print READY"
        );
        Registrant {
            proc,
            id: id.to_owned(),
        }
    }

    /// The node id it registers.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `kill -9`: no deregistration.
    pub async fn kill9(&mut self) {
        self.proc.kill9().await;
    }

    /// SIGTERM, and the exit status once it exited (within 10 s).
    pub async fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let (exited, status) = self.proc.terminate(Duration::from_secs(10)).await;
        if exited { status } else { None }
    }
}
