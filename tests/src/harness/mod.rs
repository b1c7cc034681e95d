//! Shared pieces of the test harness: free ports, owned child processes, bounded
//! polling, and where the project's scripts and caches live.

pub mod consul;
pub mod etcd;
pub mod gomicro;
pub mod rpc;
pub mod scale;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Ports handed out by this process, so that two servers started in one test run
/// never get the same port before either has bound it.
static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A TCP port on 127.0.0.1 that is free right now and was not handed out before by
/// this process.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0");
        let mut used = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
    panic!("no free port found in 1000 attempts");
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Polls `check` every `every` until it returns true or `limit` passes; returns
/// whether it did. Every wait in the tests goes through here, so none is unbounded.
pub async fn wait_until<F, Fut>(limit: Duration, every: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// A child process owned by a test: killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    name: String,
    child: Option<Child>,
}

impl Proc {
    /// Starts `cmd` with stdin closed; stdout and stderr go where `cmd` says (the
    /// caller decides: inherit for servers whose logs help debugging, piped for
    /// programs whose output the test reads).
    pub fn spawn(name: impl Into<String>, cmd: &mut Command) -> std::io::Result<Proc> {
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        let child = cmd.spawn()?;
        Ok(Proc {
            name: name.into(),
            child: Some(child),
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The child, for reading piped output.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: Signal) -> nix::Result<()> {
        match self.pid() {
            Some(pid) => kill(Pid::from_raw(pid as i32), sig),
            None => Ok(()),
        }
    }

    /// `kill -9`, then reap.
    pub async fn kill9(&mut self) {
        let _ = self.signal(Signal::SIGKILL);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait().await;
        }
    }

    /// SIGTERM, then wait up to `limit` for the exit; SIGKILL after that. Returns
    /// whether it exited by itself, and its exit status if known.
    pub async fn terminate(&mut self, limit: Duration) -> (bool, Option<std::process::ExitStatus>) {
        let _ = self.signal(Signal::SIGTERM);
        let Some(mut c) = self.child.take() else {
            return (true, None);
        };
        match tokio::time::timeout(limit, c.wait()).await {
            Ok(status) => (true, status.ok()),
            Err(_) => {
                let _ = c.start_kill();
                (false, c.wait().await.ok())
            }
        }
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            None => true,
            Some(c) => !matches!(c.try_wait(), Ok(None)),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            // Reap synchronously so no zombie is left behind.
            if let Some(pid) = c.id() {
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid as i32), None);
            }
        }
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where the project caches built binaries (Consul, go-micro peers):
/// `$MICRO_CACHE_DIR`, else `~/.cache/micro`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MICRO_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("micro")
}

/// Whether a TCP connection to `addr` succeeds now.
pub async fn port_open(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_ok()
}
