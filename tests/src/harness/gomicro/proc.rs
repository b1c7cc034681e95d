//! [`GoProc`]: one go-micro peer program running as an owned child process.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{GoVersion, peer_bin};
use crate::harness::Proc;

/// How much of a peer's stderr is kept for failure messages.
const STDERR_KEEP: usize = 16 * 1024;

/// What a `READY <node-id> <address>` line said (both empty for a bare `READY`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// The registered node id.
    pub node_id: String,
    /// The registered address.
    pub address: String,
}

/// A go-micro peer program, killed when dropped. Its stdout lines are read by a
/// task it owns; every read here has a time limit.
pub struct GoProc {
    name: String,
    proc: Proc,
    lines: mpsc::UnboundedReceiver<String>,
    pending: VecDeque<String>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl GoProc {
    /// Starts `program` of the `go` peers with `args`. The test's `MICRO_*`
    /// environment is not passed on: the peer gets its settings from `args` only.
    pub fn spawn<I, S>(go: GoVersion, program: &str, args: I) -> GoProc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let bin = peer_bin(go, program);
        let mut cmd = Command::new(&bin);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("MICRO_") {
                cmd.env_remove(k);
            }
        }
        let name = format!("{}-{program}", go.key());
        let mut proc = Proc::spawn(name.clone(), &mut cmd)
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let child = proc.child_mut().expect("just started");
        let (stdout, stderr_pipe) = (child.stdout.take(), child.stderr.take());
        let (tx, lines) = mpsc::unbounded_channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(out) = stdout {
            readers.push(tokio::spawn(read_lines(out, move |l| {
                let _ = tx.send(l);
            })));
        }
        if let Some(err) = stderr_pipe {
            let (keep, verbose) = (
                stderr.clone(),
                std::env::var_os("MICRO_TEST_VERBOSE").is_some(),
            );
            let prefix = name.clone();
            readers.push(tokio::spawn(read_lines(err, move |l| {
                if verbose {
                    eprintln!("[{prefix}] {l}");
                }
                let mut s = keep.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&l);
                s.push('\n');
                if s.len() > STDERR_KEEP {
                    let mut cut = s.len() - STDERR_KEEP;
                    while !s.is_char_boundary(cut) {
                        cut += 1;
                    }
                    s.drain(..cut);
                }
            })));
        }
        GoProc {
            name,
            proc,
            lines,
            pending: VecDeque::new(),
            stderr,
            readers,
        }
    }

    /// The program's name (`v4-server`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last lines the program wrote to stderr, for failure messages.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `<name>` and its stderr, for failure messages.
    pub fn context(&self) -> String {
        format!("{}; its stderr:\n{}", self.name, self.stderr())
    }

    /// The next stdout line, or `None` at the end of output or when `limit` passes.
    pub async fn next_line(&mut self, limit: Duration) -> Option<String> {
        if let Some(l) = self.pending.pop_front() {
            return Some(l);
        }
        tokio::time::timeout(limit, self.lines.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the `READY` line; lines printed before it are kept for
    /// [`next_json`](Self::next_json). Panics (with the program's stderr) when it
    /// does not come within `limit`.
    pub async fn ready(&mut self, limit: Duration) -> Ready {
        let deadline = Instant::now() + limit;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = tokio::time::timeout(left, self.lines.recv())
                .await
                .ok()
                .flatten()
            else {
                panic!(
                    "{} printed no READY within {limit:?} (exited: {}); stdout so far: {before:?}; {}",
                    self.name,
                    self.proc.has_exited(),
                    self.context()
                );
            };
            if let Some(rest) = line.trim().strip_prefix("READY") {
                let mut parts = rest.split_whitespace();
                let ready = Ready {
                    node_id: parts.next().unwrap_or_default().to_owned(),
                    address: parts.next().unwrap_or_default().to_owned(),
                };
                self.pending.extend(before);
                return ready;
            }
            before.push(line);
        }
    }

    /// The next stdout line as JSON. Panics (with the program's stderr) when no
    /// line comes within `limit` or the line is not JSON.
    pub async fn next_json(&mut self, limit: Duration) -> Value {
        match self.next_line(limit).await {
            Some(l) => serde_json::from_str(&l)
                .unwrap_or_else(|e| panic!("{} printed {l:?}, not JSON: {e}", self.name)),
            None => panic!(
                "{} printed no line within {limit:?}; {}",
                self.name,
                self.context()
            ),
        }
    }

    /// Up to `n` JSON lines, read until `limit` passes; fewer when the time runs
    /// out or the output ends. Lines that are not JSON are kept as strings.
    pub async fn json_lines(&mut self, n: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left).await {
                Some(l) => out.push(serde_json::from_str(&l).unwrap_or(Value::String(l))),
                None => break,
            }
        }
        out
    }

    /// Waits up to `limit` for the program to exit by itself (killing it after
    /// that), then collects the rest of its output.
    pub async fn wait(mut self, limit: Duration) -> GoOutput {
        let status = match self.proc.child_mut() {
            Some(child) => match tokio::time::timeout(limit, child.wait()).await {
                Ok(s) => s.ok(),
                Err(_) => {
                    self.proc.kill9().await;
                    None
                }
            },
            None => None,
        };
        self.finish(status).await
    }

    /// SIGTERM, then waits up to `limit` for the exit (SIGKILL after that), then
    /// collects the rest of the output. `exited_by_itself` says whether SIGKILL
    /// was not needed.
    pub async fn terminate(mut self, limit: Duration) -> (bool, GoOutput) {
        let (by_itself, status) = self.proc.terminate(limit).await;
        let out = self.finish(status).await;
        (by_itself, out)
    }

    async fn finish(mut self, status: Option<ExitStatus>) -> GoOutput {
        let mut lines: Vec<String> = self.pending.drain(..).collect();
        // The pipes close at exit; a grandchild holding them is not waited for.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(l)) => lines.push(l),
                Ok(None) | Err(_) => break,
            }
        }
        for r in &self.readers {
            // Give stderr a moment to drain, then stop the readers.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while !r.is_finished() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
        }
        GoOutput {
            name: self.name.clone(),
            status,
            lines,
            stderr: self.stderr(),
        }
    }
}

impl Drop for GoProc {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

async fn read_lines<R: AsyncRead + Unpin>(r: R, mut each: impl FnMut(String)) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        each(l);
    }
}

/// Everything a finished peer program printed.
#[derive(Clone, Debug)]
pub struct GoOutput {
    /// The program's name (`v4-client`).
    pub name: String,
    /// Its exit status; `None` when it had to be killed.
    pub status: Option<ExitStatus>,
    /// Its stdout lines.
    pub lines: Vec<String>,
    /// The last part of its stderr.
    pub stderr: String,
}

impl GoOutput {
    /// The exit code, when it exited by itself.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// The stdout lines that are JSON.
    pub fn json(&self) -> Vec<Value> {
        self.lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Name, status, stdout and stderr, for failure messages.
    pub fn context(&self) -> String {
        format!(
            "{} exited with {:?}; stdout: {:?}; stderr:\n{}",
            self.name, self.status, self.lines, self.stderr
        )
    }

    /// The JSON lines, after checking that the program exited with `code`.
    pub fn expect_code(&self, code: i32) -> Vec<Value> {
        assert_eq!(
            self.code(),
            Some(code),
            "unexpected exit: {}",
            self.context()
        );
        self.json()
    }
}

/// Runs `program` to its end (at most `limit`, then it is killed) and returns
/// what it printed.
pub async fn run<I, S>(go: GoVersion, program: &str, args: I, limit: Duration) -> GoOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    GoProc::spawn(go, program, args).wait(limit).await
}
