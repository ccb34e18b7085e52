//! A PostgreSQL cluster for the tests: one per test process, on a free loopback port, in a
//! fresh data directory, stopped and removed when the process ends (its control script waits
//! for its standard input to close). Or the server at `QSTASH_TEST_DATABASE_URL`.
//!
//! Not installed: with `CI` set the tests fail saying what to install; without it they print
//! one `skipped:` line and return.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The environment variable naming an external server for the tests.
pub const URL_ENV: &str = "QSTASH_TEST_DATABASE_URL";

#[derive(Debug)]
pub struct PgServer {
    pub url: String,
    /// Kept open for the life of the process: the control script stops the cluster on EOF.
    _control: Option<Mutex<(Child, ChildStdin)>>,
}

/// Stops the cluster when its standard input closes (the test process ended, however).
const CONTROL: &str = r#"set -e
bin="$1"; dir="$2"; port="$3"
"$bin/initdb" -D "$dir" -A trust -U postgres -N >"$dir.initdb.log" 2>&1
"$bin/pg_ctl" -D "$dir" -l "$dir/log" -w -t 60 \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
  start >/dev/null
echo ready
cat >/dev/null || true
"$bin/pg_ctl" -D "$dir" -m immediate stop >/dev/null 2>&1 || true
rm -rf "$dir" "$dir.initdb.log"
"#;

/// The shared server, or `None` (after a `skipped:` line) when PostgreSQL is not installed
/// and `CI` is not set.
pub fn server() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();
    SERVER.get_or_init(start).as_ref()
}

fn start() -> Option<PgServer> {
    if let Ok(url) = std::env::var(URL_ENV) {
        if !url.is_empty() {
            return Some(PgServer {
                url,
                _control: None,
            });
        }
    }
    let Some(bin) = bin_dir() else {
        let message = "PostgreSQL is not installed (initdb and pg_ctl not found): \
                       apt-get install -y postgresql, or set QSTASH_TEST_DATABASE_URL";
        assert!(std::env::var_os("CI").is_none(), "{message}");
        // Straight to the process's stderr: the test harness captures `eprintln!`.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("skipped: postgresql not installed ({message})\n").as_bytes(),
        );
        return None;
    };
    for _ in 0..3 {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "qstash-dedupe-pg-{}-{}",
            std::process::id(),
            qstash_receiver::sign::new_id("")
        ));
        let mut command = if is_root() {
            // initdb refuses to run as root.
            let mut su = Command::new("su");
            su.args(["postgres", "-s", "/bin/sh", "-c"])
                .arg(format!(
                    "sh -c '{}' control \"$0\" \"$1\" \"$2\"",
                    CONTROL.replace('\'', "'\\''")
                ))
                .arg(&bin)
                .arg(&dir)
                .arg(port.to_string());
            su
        } else {
            let mut sh = Command::new("sh");
            sh.args(["-c", CONTROL, "control"])
                .arg(&bin)
                .arg(&dir)
                .arg(port.to_string());
            sh
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot run the PostgreSQL control script");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
        if line.trim() == "ready" {
            return Some(PgServer {
                url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                _control: Some(Mutex::new((child, stdin))),
            });
        }
        drop(stdin);
        let _ = child.wait();
    }
    panic!("PostgreSQL did not start on a free loopback port (3 tries)");
}

/// Debian's `/usr/lib/postgresql/<version>/bin`, newest first, else the directory of an
/// `initdb` on `PATH`.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    if let Some(bin) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
