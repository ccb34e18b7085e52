//! A `redis-server` child process on a free loopback port, killed on drop; or the server at
//! `QSTASH_TEST_REDIS_URL`.
//!
//! Where neither is there, [`available`] says so: a test then prints one `skipped:` line and
//! returns, so that `cargo test` works on a machine with only Rust. Under CI (`CI` set) a
//! missing server fails the test instead: CI installs `redis-server`.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The environment variable naming an external server for the tests.
pub const URL_ENV: &str = "QSTASH_TEST_REDIS_URL";

/// Whether a server can be had: `QSTASH_TEST_REDIS_URL` is set or `redis-server` is on `PATH`.
///
/// # Panics
///
/// When neither is there and the environment variable `CI` is set.
pub fn available(test: &str) -> bool {
    if std::env::var_os(URL_ENV).is_some_and(|url| !url.is_empty()) || on_path("redis-server") {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "redis-server is not installed and {URL_ENV} is not set: the Redis tests need one of \
         them (apt-get install -y redis-server)"
    );
    // Straight to the process's stderr: the test harness captures `eprintln!`, and a skip
    // that nobody sees would pass for a test that ran.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: redis-server not installed (apt-get install -y redis-server)"
    );
    false
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[derive(Debug)]
pub struct RedisServer {
    pub url: String,
    port: u16,
    child: Option<Child>,
    /// The data directory of a persistent server (AOF, fsync always), removed on drop.
    dir: Option<PathBuf>,
}

impl RedisServer {
    /// The server at `QSTASH_TEST_REDIS_URL`, else a fresh child process.
    pub fn from_env_or_start() -> Self {
        match std::env::var(URL_ENV) {
            Ok(url) if !url.is_empty() => Self {
                url,
                port: 0,
                child: None,
                dir: None,
            },
            _ => Self::start(),
        }
    }

    /// A fresh child process without persistence.
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// A fresh child process that writes every acknowledged write to an append-only file
    /// before answering, so that a restart after `kill` finds every mark that was set.
    pub fn start_persistent() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "qstash-dedupe-redis-{}-{}",
            std::process::id(),
            qstash_receiver::sign::new_id("")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self::spawn(Some(dir))
    }

    fn spawn(dir: Option<PathBuf>) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let mut server = Self {
                url: format!("redis://127.0.0.1:{port}/"),
                port,
                child: None,
                dir: dir.clone(),
            };
            if server.launch() {
                return server;
            }
        }
        panic!("redis-server did not start on a free loopback port (5 tries)");
    }

    /// Starts the process on `self.port`; false if it exited (port taken).
    fn launch(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match &self.dir {
            Some(dir) => {
                command
                    .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                    .arg(dir);
            }
            None => {
                command.args(["--appendonly", "no"]);
            }
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed and {URL_ENV} is not set: the Redis tests need \
                 one of them (apt-get install -y redis-server)"
            ),
            Err(error) => panic!("cannot start redis-server: {error}"),
        };
        self.child = Some(child);
        // Readiness: poll until it answers PING (bounded), or until it exits.
        for _ in 0..200 {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().unwrap().is_some() {
                    self.child = None;
                    return false;
                }
            }
            if ping(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.kill();
        false
    }

    /// Whether this is a child process the tests can stop.
    pub const fn is_child(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server at once (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed child again on the same port (and data directory).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        assert!(
            self.launch(),
            "redis-server did not restart on port {}",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 16];
    stream.write_all(b"PING\r\n").is_ok()
        && stream
            .read(&mut reply)
            .is_ok_and(|n| reply[..n].starts_with(b"+PONG"))
}
