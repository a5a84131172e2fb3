//! Helpers for the module's tests: a real `redis-server` (Debian's) with the
//! module loaded, on a free loopback port, in a temporary directory, stopped
//! by its pid when dropped.
#![allow(dead_code)]

#[path = "../../../../tests/common/peer.rs"]
pub mod peer;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use peer::{free_port, require, Peer};
use ratesim::limiter::RedisDecision;
use redis::Value;

/// The module built with the tests: `libratesim_redis.so` beside the test
/// binary (`target/<profile>/deps/`), else in `target/<profile>/`.
pub fn module_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let candidates =
        [deps.join("libratesim_redis.so"), deps.parent().expect("target/<profile>").join("libratesim_redis.so")];
    candidates.iter().find(|p| p.exists()).cloned().unwrap_or_else(|| {
        panic!(
            "libratesim_redis.so not found in {} or its parent: build the module (`cargo build --release -p ratesim-redis`; \
             `cargo test --release --workspace` builds it)",
            deps.display()
        )
    })
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ratesim-redis-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `redis-server` with the module.
pub struct Server {
    pub port: u16,
    pub peer: Peer,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Server {
    /// Starts a server in `dir` without persistence, plus `extra` arguments
    /// (e.g. `["--appendonly", "yes"]`, which override the defaults).
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::start_on(free_port(), dir, extra)
    }

    /// [`Server::start`] on a given port (a restart on the same port).
    pub fn start_on(port: u16, dir: &Path, extra: &[&str]) -> Server {
        let bin = require("redis-server");
        let log = dir.join(format!("redis-{port}.log"));
        let mut cmd = Command::new(bin);
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(dir)
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--loadmodule")
            .arg(module_path());
        cmd.args(extra);
        let mut peer = Peer::spawn("redis-server", &mut cmd, Some(&log));
        peer.wait_for_port(port, Duration::from_secs(10));
        Server { port, peer, dir: dir.to_path_buf(), log }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn conn(&self) -> redis::Connection {
        let c = redis::Client::open(self.url()).expect("client");
        c.get_connection_with_timeout(Duration::from_secs(5)).expect("connect to redis-server")
    }

    /// Stops the server the way an operator would (`SHUTDOWN`, saving if
    /// persistence is on) and waits for its exit.
    pub fn shutdown(mut self) {
        let _: redis::RedisResult<Value> = redis::cmd("SHUTDOWN").query(&mut self.conn());
        #[cfg(unix)]
        let _ = self
            .peer
            .signal_and_wait(0, Duration::from_secs(10))
            .or_else(|| self.peer.signal_and_wait(libc::SIGTERM, Duration::from_secs(10)));
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.peer.signal_and_wait(libc::SIGKILL, Duration::from_secs(10));
    }
}

/// Loads `toml` as policy `name`.
pub fn load_policy(conn: &mut redis::Connection, name: &str, toml: &str) -> String {
    match redis::cmd("RATESIM.POLICY.LOAD").arg(name).arg(toml).query::<Value>(conn) {
        Ok(Value::SimpleString(s)) => s,
        other => panic!("RATESIM.POLICY.LOAD {name}: {other:?}"),
    }
}

/// One `RATESIM.CHECK` with `args` after the command name.
pub fn check(conn: &mut redis::Connection, args: &[&str]) -> RedisDecision {
    let v: Value =
        redis::cmd("RATESIM.CHECK").arg(args).query(conn).unwrap_or_else(|e| panic!("RATESIM.CHECK {args:?}: {e}"));
    RedisDecision::from_reply(&v).unwrap_or_else(|e| panic!("RATESIM.CHECK {args:?}: {e}"))
}

/// The error a command answers (panics if it succeeds).
pub fn error_of(conn: &mut redis::Connection, cmd: &str, args: &[&str]) -> String {
    match redis::cmd(cmd).arg(args).query::<Value>(conn) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{cmd} {args:?} succeeded: {v:?}"),
    }
}
