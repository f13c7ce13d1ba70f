//! The processes a benchmark starts: servers and load generators, each a copy of this
//! binary (or a script), optionally pinned to a CPU with `taskset`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::process::{Child, Command};
use tokio::time::{sleep, timeout, Instant};

/// Where to run children: which CPU, if pinning is on.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The `taskset` binary, when it is installed and pinning is wanted.
    taskset: Option<PathBuf>,
}

impl Placement {
    /// Pins when `pin` is asked for, `taskset` is installed and there are two CPUs or more.
    pub fn new(pin: bool) -> Placement {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let taskset = (pin && cpus >= 2).then(|| which("taskset")).flatten();
        Placement { taskset }
    }

    /// Whether children are pinned.
    pub fn pinned(&self) -> bool {
        self.taskset.is_some()
    }

    /// What the report says about placement.
    pub fn describe(&self) -> &'static str {
        if self.pinned() {
            "pinned with taskset: servers on CPU 0, load generators (bots, clients) on CPU 1"
        } else {
            "not pinned (taskset missing, one CPU, or --no-pin): processes share all CPUs"
        }
    }

    /// A command running `program args` on `cpu` (when pinned).
    pub fn command(&self, cpu: usize, program: &std::path::Path, args: &[String]) -> Command {
        let mut cmd = match &self.taskset {
            Some(taskset) => {
                let mut c = Command::new(taskset);
                c.arg("-c").arg(cpu.to_string()).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args).kill_on_drop(true).stdin(Stdio::null());
        cmd
    }
}

/// Finds `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A running child process.
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    /// Its process id (`taskset` execs, so this is the program's own).
    pub pid: u32,
}

impl Proc {
    /// Starts `cmd`.
    pub fn spawn(name: impl Into<String>, mut cmd: Command) -> anyhow::Result<Proc> {
        let name = name.into();
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let pid = child
            .id()
            .with_context(|| format!("{name} exited at once"))?;
        Ok(Proc { name, child, pid })
    }

    /// Waits until `addr` accepts connections, or fails if the process exits or
    /// `within` passes.
    pub async fn wait_listening(
        &mut self,
        addr: SocketAddr,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited before listening on {addr}: {status}", self.name);
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{} did not listen on {addr} within {within:?}", self.name);
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit by itself, killing it after `within`.
    pub async fn wait(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        match timeout(within, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("{} did not finish within {within:?}; killed", self.name)
            }
        }
    }

    /// Asks the process to stop (SIGTERM) and waits up to `within`, then kills it.
    pub async fn terminate(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        self.wait(within).await
    }

    /// Takes the child's stdout (if it was piped).
    pub fn stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }
}

/// A loopback address with a port free right now (another process could take it before
/// the server binds it; on a benchmark box that does not happen in practice).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}
