//! Real peer processes for tests (redis-server, nginx, Chromium, SDK
//! scripts, `ratesim serve`): started on loopback on a free port, stopped by
//! their pid when the handle drops, whatever the test's outcome.
//!
//! A peer that is not installed is a test failure with the command to run
//! (`.ci/install-peers`), never a silent skip: a skipped test cannot fail.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago (the OS picks it; the listener
/// is closed before returning, so a peer may bind it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr").port()
}

/// The absolute path of `program` on `PATH` (or as given, if it contains a
/// `/`), or a panic that says how to install the test peers.
pub fn require(program: &str) -> PathBuf {
    let direct = Path::new(program);
    if program.contains('/') {
        assert!(direct.exists(), "{program} not found: run `bash .ci/install-peers` (see README, Tests)");
        return direct.to_path_buf();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{program}` is not installed: run `bash .ci/install-peers` (see README, Tests)");
}

/// A running peer process; killed (SIGKILL by pid) and reaped on drop.
pub struct Peer {
    /// What was started, for messages.
    pub name: String,
    child: Child,
}

impl Peer {
    /// Starts `cmd` with stdout and stderr going to `log` (a file the
    /// failure messages point at), or discarded if `log` is `None`.
    pub fn spawn(name: &str, cmd: &mut Command, log: Option<&Path>) -> Peer {
        let (out, err) = match log {
            Some(path) => {
                let file = std::fs::File::create(path).expect("create peer log");
                (Stdio::from(file.try_clone().expect("clone log handle")), Stdio::from(file))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Peer { name: name.to_string(), child }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the peer accepts TCP connections on `port` (loopback),
    /// panicking after `timeout` or if the process exits first.
    pub fn wait_for_port(&mut self, port: u16, timeout: Duration) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("{} exited with {status} before listening on port {port}", self.name);
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "{} did not listen on port {port} within {timeout:?}", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) by pid and waits up to
    /// `timeout` for the exit; returns the exit status, or `None` if the
    /// process was still running (it is then killed on drop).
    #[cfg(unix)]
    pub fn signal_and_wait(&mut self, signal: i32, timeout: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on our own child's pid; the child is not reaped
        // yet (we hold it), so the pid cannot have been reused.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
