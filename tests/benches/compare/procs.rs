//! Child processes of the orchestrator: stdout read line by line in the
//! background, stderr to a log file, SIGTERM (then SIGKILL) on stop, and the
//! resident memory of a process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use micro_tests::harness::Proc;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Res;

/// A running child whose stdout lines arrive on a channel.
pub(crate) struct Child {
    name: String,
    log: PathBuf,
    proc: Proc,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Child {
    /// Starts `cmd`; its stderr goes to `<logs>/<name>.log`.
    pub(crate) fn spawn(name: &str, logs: &Path, cmd: &mut Command) -> Res<Child> {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(file));
        let mut proc = Proc::spawn(name, cmd).map_err(|e| {
            format!(
                "cannot start {name} ({:?}): {e}",
                cmd.as_std().get_program()
            )
        })?;
        let stdout = proc
            .child_mut()
            .and_then(|c| c.stdout.take())
            .ok_or("no stdout pipe")?;
        let (tx, lines) = mpsc::unbounded_channel();
        // The reader ends at end of file, i.e. when the child exits.
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Child {
            name: name.to_owned(),
            log,
            proc,
            lines,
        })
    }

    /// The process id while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// The last lines of the child's stderr, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    fn fail(&self, what: &str) -> crate::Error {
        format!(
            "{}: {what}; its stderr ({}) ends with:\n{}",
            self.name,
            self.log.display(),
            self.log_tail()
        )
        .into()
    }

    /// The next stdout line, waiting at most `limit`.
    pub(crate) async fn line(&mut self, limit: Duration) -> Res<String> {
        match tokio::time::timeout(limit, self.lines.recv()).await {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(self.fail("exited")),
            Err(_) => Err(self.fail(&format!("no output within {limit:?}"))),
        }
    }

    /// A stdout line that is already there, if any.
    pub(crate) fn try_line(&mut self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// Waits for the `READY ...` line and returns what follows `READY `.
    pub(crate) async fn ready(&mut self, limit: Duration) -> Res<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.line(left).await?;
            if let Some(rest) = line.strip_prefix("READY") {
                return Ok(rest.trim().to_owned());
            }
        }
    }

    /// The next stdout line that is a JSON object; a go-micro error line
    /// (`{"error":…}`) is an error.
    pub(crate) async fn json(&mut self, limit: Duration) -> Res<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.line(left).await?;
            if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&line) {
                if v.get("error").is_some() {
                    return Err(self.fail(&format!("reported {v}")));
                }
                return Ok(v);
            }
        }
    }

    /// SIGTERM, SIGKILL after `limit`; returns the stdout lines not read yet.
    pub(crate) async fn stop(mut self, limit: Duration) -> Vec<String> {
        self.proc.terminate(limit).await;
        let mut rest = Vec::new();
        // The pipe closes when the process is gone; bound the wait anyway.
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Ok(Some(l)) = tokio::time::timeout_at(deadline, self.lines.recv()).await {
            rest.push(l);
        }
        rest
    }
}

/// `VmRSS` of process `pid` in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User plus system CPU time of process `pid` so far, in seconds.
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
