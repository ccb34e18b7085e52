//! Over a real socket: the body limit is enforced while the body streams in (a body that never
//! ends still gets its 413), and early refusals do not wait for the body.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use qstash_receiver::Signer;
use qstash_test_cases::{CURRENT_KEY, LIMIT, ROUTE};
use support::{Server, extractor_app, guard_app, now, route_url};

/// Sends `head` (request line and headers), then `chunks` of the body, never ending it, and
/// returns the status line of the answer. A server that waited for the whole body would never
/// answer: the read times out and the test fails.
fn answer_to_unfinished_request(addr: SocketAddr, head: &str, chunks: &[Vec<u8>]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("write the head");
    for chunk in chunks {
        // The server may answer and close early; later writes may then fail.
        if stream.write_all(chunk).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let n = stream
            .read(&mut buf)
            .expect("an answer before the body ended");
        assert!(n > 0, "connection closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().expect("a status line").to_owned()
}

fn head(signature: Option<&str>, framing: &str) -> String {
    let signature = signature.map_or(String::new(), |s| format!("Upstash-Signature: {s}\r\n"));
    format!(
        "POST {ROUTE} HTTP/1.1\r\nHost: localhost\r\n{signature}Upstash-Message-Id: msg_raw\r\n{framing}\r\n\r\n"
    )
}

fn chunk(len: usize) -> Vec<u8> {
    let mut c = format!("{len:x}\r\n").into_bytes();
    c.extend(std::iter::repeat_n(b'x', len));
    c.extend_from_slice(b"\r\n");
    c
}

#[actix_web::test]
async fn limits_and_early_refusals_over_a_socket() {
    let token = Signer::new(CURRENT_KEY)
        .unwrap()
        .sign_at(&route_url(), b"whatever", now());
    // LIMIT + 1 KiB in 1 KiB chunks, and no terminating chunk.
    let over = vec![chunk(1024); LIMIT / 1024 + 1];
    let cases = [
        (
            "chunked body over the limit, never finished",
            head(Some(&token), "Transfer-Encoding: chunked"),
            over,
            "413",
        ),
        (
            "Content-Length over the limit, no body sent",
            head(Some(&token), "Content-Length: 10000000"),
            vec![],
            "413",
        ),
        (
            "no signature, no body sent",
            head(None, "Content-Length: 100"),
            vec![],
            "401",
        ),
    ];
    for (how, server) in [
        ("extractor", Server::start(extractor_app)),
        ("guard", Server::start(guard_app)),
    ] {
        for (name, head, chunks, status) in &cases {
            let addr = server.addr;
            let (head, chunks) = (head.clone(), chunks.clone());
            let line = actix_web::rt::task::spawn_blocking(move || {
                answer_to_unfinished_request(addr, &head, &chunks)
            })
            .await
            .unwrap();
            assert!(
                line.starts_with(&format!("HTTP/1.1 {status}")),
                "{how}: {name}: {line}"
            );
        }
        server.stop().await;
    }
}
