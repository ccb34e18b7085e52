//! Every case of the conformance table (`qstash-test-cases`) through every entry point: the
//! extractor alone (`FromRequest::from_request`), the extractor in an app and the middleware
//! in an app (`init_service`), then the extractor and the middleware over a real
//! `HttpServer` on loopback, with one keep-alive HTTP/1.1 client per setup. Each answer is
//! compared whole (status, body, `Upstash-NonRetryable-Error`, `Connection`, `Retry-After`,
//! `Content-Type`), and so is each refusal's one log event.

// Test helpers unwrap: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_qstash::QStash;
use actix_web::FromRequest as _;
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::Method;
use actix_web::test::{self, TestRequest};
use bytes::Bytes;
use qstash_test_cases::{
    Case, Framing, Got, LogCapture, Order, Setup, Transport, cases, check, check_logs, handled_body,
};
use support::{Answer, Server, extractor_app_with, middleware_app_with};

/// The host a client sends in process, as an HTTP/1.1 client always does.
const HOST: &str = "127.0.0.1:8080";

fn got(answer: Answer) -> Got {
    Got {
        status: answer.status,
        headers: answer.headers,
        body: String::from_utf8_lossy(&answer.body).into_owned(),
    }
}

/// The case's head as a `TestRequest`: method, target, headers in order, `Host` unless the
/// case leaves it out, and `Content-Length` as its framing says.
fn head(case: &Case) -> TestRequest {
    let mut req = TestRequest::default()
        .method(Method::from_bytes(case.method.as_bytes()).unwrap())
        .uri(&case.target);
    if case.transport == Transport::Any {
        req = req.insert_header(("host", HOST));
    }
    for (name, value) in &case.headers {
        req = req.append_header((name.as_str(), value.clone()));
    }
    if let Some(len) = case.content_length() {
        req = req.insert_header(("content-length", len.to_string()));
    }
    req
}

/// The case's body as a payload: whole, in 1000-byte chunks, or the body and then nothing
/// (a client waiting for its answer).
fn payload(case: &Case) -> Payload {
    let chunks: VecDeque<Bytes> = match case.framing {
        Framing::Chunked => case.body.chunks(1000).map(Bytes::copy_from_slice).collect(),
        _ => VecDeque::from([Bytes::from(case.body.clone())]),
    };
    let ends = matches!(case.framing, Framing::Exact | Framing::Chunked);
    struct Body(VecDeque<Bytes>, bool);
    impl futures_core::Stream for Body {
        type Item = Result<Bytes, PayloadError>;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let this = self.get_mut();
            match this.0.pop_front() {
                Some(chunk) => Poll::Ready(Some(Ok(chunk))),
                None if this.1 => Poll::Ready(None),
                // The rest never comes (and nobody is woken): only the body timeout ends it.
                None => Poll::Pending,
            }
        }
    }
    let stream: Pin<Box<dyn futures_core::Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(Body(chunks, ends));
    Payload::from(stream)
}

async fn in_process(now: i64, logs: &LogCapture) -> usize {
    let mut checked = 0;
    // Tokio's clock, paused: a stalled body's timeout comes as soon as nothing else can run.
    tokio::time::pause();
    for case in &cases(now) {
        let receiver = case.setup.receiver(now);
        let id = case.message_id().unwrap_or("");

        let how = "extractor alone (from_request)";
        let (req, _) = head(case).app_data(receiver.clone()).to_http_parts();
        let answer = match QStash::<Order>::from_request(&req, &mut payload(case)).await {
            Ok(q) => Answer::handled(handled_body(
                &q.delivery.message_id,
                q.delivery.retried,
                &q.payload,
            )),
            Err(e) => Answer::from_http_response(e.error_response()),
        };
        check(how, case, &got(answer));
        check_logs(how, case, &logs.take(id));
        checked += 1;

        for (how, middleware) in [
            ("extractor in an app (init_service)", false),
            ("middleware in an app (init_service)", true),
        ] {
            let req = || {
                let (req, _) = head(case).to_request().replace_payload(payload(case));
                req
            };
            let answer = if middleware {
                let app = test::init_service(middleware_app_with(receiver.clone())).await;
                Answer::from_response(test::call_service(&app, req()).await).await
            } else {
                let app = test::init_service(extractor_app_with(receiver.clone())).await;
                Answer::from_response(test::call_service(&app, req()).await).await
            };
            check(how, case, &got(answer));
            check_logs(how, case, &logs.take(id));
            checked += 1;
        }
    }
    tokio::time::resume();
    checked
}

/// A keep-alive HTTP/1.1 client on a raw socket: it keeps its connection until an answer says
/// `Connection: close`, and fails the test when a request on a kept connection is lost.
struct Client {
    addr: SocketAddr,
    stream: Option<TcpStream>,
}

impl Client {
    fn send(&mut self, case: &Case) -> Got {
        let mut request = format!(
            "{} {} HTTP/1.1\r\nhost: {}\r\n",
            case.method, case.target, self.addr
        )
        .into_bytes();
        for (name, value) in &case.headers {
            request.extend_from_slice(name.as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
        }
        match case.content_length() {
            Some(len) => request.extend_from_slice(format!("content-length: {len}\r\n").as_bytes()),
            None => request.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        request.extend_from_slice(b"\r\n");
        if case.framing == Framing::Chunked {
            for chunk in case.body.chunks(1000) {
                request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                request.extend_from_slice(chunk);
                request.extend_from_slice(b"\r\n");
            }
            request.extend_from_slice(b"0\r\n\r\n");
        } else {
            request.extend_from_slice(&case.body);
        }

        let kept = self.stream.is_some();
        let stream = self.stream.get_or_insert_with(|| {
            let stream = TcpStream::connect(self.addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
        });
        // The server may answer and close before all of an oversize body is written.
        let _ = stream.write_all(&request);
        let Some(got) = read_answer(stream) else {
            panic!(
                "case {:?}: no answer{}",
                case.name,
                if kept {
                    " on a kept-alive connection: the request was lost"
                } else {
                    ""
                }
            );
        };
        let close = got
            .headers
            .iter()
            .any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"));
        if close {
            self.stream = None;
        }
        got
    }
}

/// One answer: its head, then as many body bytes as its `Content-Length` says. `None` when the
/// connection closes before any byte of it.
fn read_answer(stream: &mut TcpStream) -> Option<Got> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status = lines
                .next()
                .unwrap()
                .split(' ')
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            let headers: Vec<(String, String)> = lines
                .map(|l| {
                    let (n, v) = l.split_once(':').unwrap();
                    (n.trim().to_ascii_lowercase(), v.trim().to_owned())
                })
                .collect();
            let len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            while data.len() < end + 4 + len {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the answer's body was cut off");
                data.extend_from_slice(&buf[..n]);
            }
            let body = String::from_utf8_lossy(&data[end + 4..end + 4 + len]).into_owned();
            return Some(Got {
                status,
                headers,
                body,
            });
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            assert!(data.is_empty(), "the answer's head was cut off");
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
}

async fn over_sockets(now: i64, logs: &LogCapture) -> usize {
    let mut checked = 0;
    let all = cases(now);
    for setup in Setup::ALL {
        let cases: Vec<Case> = all
            .iter()
            .filter(|c| c.setup == setup && c.transport == Transport::Any)
            .cloned()
            .collect();
        for (how, middleware) in [
            ("extractor over HTTP", false),
            ("middleware over HTTP", true),
        ] {
            let receiver = setup.receiver(now);
            let server = if middleware {
                Server::start(move || middleware_app_with(receiver.clone()))
            } else {
                Server::start(move || extractor_app_with(receiver.clone()))
            };
            let addr = server.addr;
            let cases = cases.clone();
            let answers = actix_web::rt::task::spawn_blocking(move || {
                let mut client = Client { addr, stream: None };
                cases
                    .iter()
                    .map(|case| (case.clone(), client.send(case)))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap();
            for (case, got) in &answers {
                check(how, &over_the_wire(case), got);
                check_logs(how, case, &logs.take(case.message_id().unwrap_or("")));
                checked += 1;
            }
            server.stop().await;
        }
    }
    checked
}

/// The answer a case gets from actix-web on the wire: as the table says, except that
/// actix-http closes the connection after a request with `Upgrade: websocket` (it reads such
/// a body until the connection closes, so the request's end is unknown to it; see the
/// crate's `head::upgrade_body_len`), which the answer says with `Connection: close`.
fn over_the_wire(case: &Case) -> Case {
    let mut case = case.clone();
    let upgrade = case
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("upgrade") && v.eq_ignore_ascii_case(b"websocket"));
    if upgrade {
        case.expect.connection_close = true;
    }
    case
}

/// One test, so that no other test's requests log under the same message ids meanwhile.
#[actix_web::test]
async fn every_case_through_every_entry_point() {
    let now = support::now();
    let logs = LogCapture::global();
    let table = cases(now);
    assert!(table.len() >= 50, "the whole table: {}", table.len());
    let sockets = table
        .iter()
        .filter(|c| c.transport == Transport::Any)
        .count();
    let in_process = in_process(now, &logs).await;
    let over_sockets = over_sockets(now, &logs).await;
    // Every case through the three in-process entry points, every case a socket can carry
    // through the two servers.
    assert_eq!(in_process, 3 * table.len());
    assert_eq!(over_sockets, 2 * sockets);
    println!(
        "{} cases: {in_process} answers in process, {over_sockets} over sockets",
        table.len()
    );
}
