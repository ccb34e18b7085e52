//! The two example receivers (`axum_receiver`, `actix_receiver`), run as built, answer the
//! conformance table's requests that a client writes whole (2 MiB) before it reads: the
//! core's full answers (413 with a valid token, 401 unsigned) must arrive, not a reset.

// Test helpers unwrap: a failure is the assertion.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qstash_test_cases::{
    CURRENT_KEY, NEXT_KEY, Setup, Transport, WRITTEN_WHOLE, cases, check, wire,
};

/// The example's binary, which `cargo test` builds beside the test binaries.
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let dir = deps.parent().unwrap().parent().unwrap().join("examples");
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The example running on a free loopback port; killed when dropped.
struct Running(Child, SocketAddr);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(name: &str) -> Running {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = example(name);
    assert!(path.exists(), "{} not built", path.display());
    let child = Command::new(&path)
        .env("QSTASH_CURRENT_SIGNING_KEY", CURRENT_KEY)
        .env("QSTASH_NEXT_SIGNING_KEY", NEXT_KEY)
        .env_remove("QSTASH_DEV")
        .env("PORT", port.to_string())
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let running = Running(child, addr);
    // Bounded polling for the child to come up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{name} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    running
}

#[test]
fn early_answers_reach_a_client_that_writes_the_whole_body_first() {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let table = cases(now);
    let whole: Vec<_> = table
        .iter()
        .filter(|c| {
            c.setup == Setup::Default
                && c.transport == Transport::Any
                && c.body.len() == WRITTEN_WHOLE
        })
        .collect();
    assert_eq!(whole.len(), 2, "the table's two written-whole cases");
    for name in ["axum_receiver", "actix_receiver"] {
        let running = start(name);
        for case in &whole {
            // Each on a fresh connection, several times: a reset is a race the client can win.
            for round in 0..3 {
                let got = wire::send(running.1, case)
                    .unwrap_or_else(|e| panic!("{name}: {} (round {round}): {e}", case.name));
                check(name, case, &got);
            }
        }
    }
}
