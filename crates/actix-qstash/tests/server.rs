//! Over a real socket: the body limit is enforced while the body streams in (a body that never
//! ends still gets its 413), refusals before the body do not wait for it and close the
//! connection, a keep-alive client's next request after a refusal is answered, and a delivery
//! that carries `Upgrade: websocket` is read by its `Content-Length`.

// Test helpers outside `#[test]` functions unwrap too: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use qstash_receiver::Signer;
use qstash_test_cases::{CURRENT_KEY, LIMIT, ROUTE, padded_order};
use support::{Server, extractor_app, middleware_app, now, route_url};

/// Sends `head` (request line and headers), then `chunks` of the body, without closing, and
/// returns the answer's head and as much of its body as its `Content-Length` says. A server
/// that waited for more of the body would never answer: the read times out and the test fails.
fn answer_to(addr: SocketAddr, head: &str, chunks: &[Vec<u8>]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("write the head");
    for chunk in chunks {
        // The server may answer and close early; later writes may then fail.
        if stream.write_all(chunk).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|l| l.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
        let n = stream
            .read(&mut buf)
            .expect("an answer before the body ended");
        assert!(n > 0, "connection closed without a whole answer: {text}");
        answer.extend_from_slice(&buf[..n]);
    }
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

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    actix_web::rt::task::spawn_blocking(f).await.unwrap()
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
        (
            "no signature, 2 MiB declared, no body sent",
            head(None, "Content-Length: 2097152"),
            vec![],
            "401",
        ),
        (
            "a junk signature, 2 MiB declared, no body sent",
            head(Some("junk.junk.junk"), "Content-Length: 2097152"),
            vec![],
            "401",
        ),
        (
            "a junk signature, 2 MiB declared, the first 64 KiB sent",
            head(Some("junk.junk.junk"), "Content-Length: 2097152"),
            vec![vec![b'x'; 64 * 1024]],
            "401",
        ),
    ];
    for (how, server) in [
        ("extractor", Server::start(extractor_app)),
        ("middleware", Server::start(middleware_app)),
    ] {
        for (name, head, chunks, status) in &cases {
            let addr = server.addr;
            let (head, chunks) = (head.clone(), chunks.clone());
            let answer = blocking(move || answer_to(addr, &head, &chunks)).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{how}: {name}: {answer}"
            );
            assert!(
                answer.contains("\r\nconnection: close\r\n"),
                "{how}: {name}: the body was left unread, so the connection closes: {answer}"
            );
        }
        server.stop().await;
    }
}

/// A keep-alive client whose request was refused before its body was read (413) is told to
/// close, so its next request goes on a new connection and is answered, not lost to the
/// unread bytes.
#[actix_web::test]
async fn a_keep_alive_clients_next_request_after_a_413_is_answered() {
    let client = support::client();
    let signer = Signer::new(CURRENT_KEY).unwrap();
    for (how, server) in [
        ("extractor", Server::start(extractor_app)),
        ("middleware", Server::start(middleware_app)),
    ] {
        for round in 0..3 {
            let big = padded_order(LIMIT + 1);
            let mut req = client.post(server.url(ROUTE));
            for (name, value) in &signer.delivery_headers(&route_url(), &big, "msg_big", 0) {
                req = req.header(name.as_str(), value.as_bytes());
            }
            let res = req.body(big).send().await.unwrap();
            assert_eq!(res.status(), 413, "{how}, round {round}");
            assert_eq!(
                res.headers().get("connection").map(|v| v.as_bytes()),
                Some(&b"close"[..]),
                "{how}, round {round}"
            );
            let _ = res.bytes().await;

            let body = padded_order(100);
            let mut req = client.post(server.url(ROUTE));
            for (name, value) in &signer.delivery_headers(&route_url(), &body, "msg_next", 0) {
                req = req.header(name.as_str(), value.as_bytes());
            }
            let res = req.body(body).send().await.unwrap();
            assert_eq!(res.status(), 200, "{how}, round {round}");
            assert_eq!(
                res.text().await.unwrap(),
                "msg_next retried=0 order=1",
                "{how}, round {round}"
            );
        }
        server.stop().await;
    }
}

/// actix-http reads the body of a request with `Upgrade: websocket` until the connection
/// closes; a delivery that carries one is still read by its `Content-Length` and answered,
/// not left to time out (408 after 10 s).
#[actix_web::test]
async fn a_delivery_with_upgrade_websocket_is_read_by_its_content_length() {
    let body = padded_order(300);
    let headers =
        Signer::new(CURRENT_KEY)
            .unwrap()
            .delivery_headers(&route_url(), &body, "msg_upgrade", 0);
    let signed: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {}\r\n", v.to_str().unwrap()))
        .collect();
    let cases = [
        ("Upgrade alone", "Upgrade: websocket\r\n", &b""[..]),
        (
            "with Connection: Upgrade",
            "Connection: Upgrade\r\nUpgrade: websocket\r\n",
            &b""[..],
        ),
        (
            "bytes after the body are not the body's",
            "Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n",
            &b"\x81\x05hello"[..],
        ),
    ];
    for (how, server) in [
        ("extractor", Server::start(extractor_app)),
        ("middleware", Server::start(middleware_app)),
    ] {
        for (name, upgrade, after) in cases {
            let head = format!(
                "POST {ROUTE} HTTP/1.1\r\nHost: localhost\r\n{signed}{upgrade}Content-Length: {}\r\n\r\n",
                body.len()
            );
            let mut sent = body.clone();
            sent.extend_from_slice(after);
            let addr = server.addr;
            let answer = blocking(move || answer_to(addr, &head, &[sent])).await;
            assert!(
                answer.starts_with("HTTP/1.1 200 "),
                "{how}: {name}: {answer}"
            );
            assert!(
                answer.ends_with("msg_upgrade retried=0 order=1"),
                "{how}: {name}: {answer}"
            );
        }
        // And a refusal of such a delivery is answered at once too.
        let head = format!(
            "POST {ROUTE} HTTP/1.1\r\nHost: localhost\r\n{signed}Upgrade: websocket\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        let addr = server.addr;
        let answer = blocking(move || answer_to(addr, &head, &[tampered])).await;
        assert!(answer.starts_with("HTTP/1.1 401 "), "{how}: {answer}");
        server.stop().await;
    }
}
