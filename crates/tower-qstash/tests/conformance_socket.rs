//! The conformance table (`qstash-test-cases`) over real sockets on loopback: each setup's
//! cases in order through one keep-alive HTTP/1.1 connection, which is replaced only when an
//! answer says `Connection: close` (and the server then really closes it), through the layer
//! and through the extractor alone, driven by the table's wire driver (which writes each
//! request whole before it reads the answer). Alone in its binary, so that its log capture
//! sees no other test's events.

// Test helpers outside `#[test]` functions unwrap too: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Calls, extractor_app, layered_app, now, serve};
use qstash_test_cases::wire::Client;
use qstash_test_cases::{LogCapture, Setup, Transport, cases, check, check_logs};
use tower_qstash::QStashLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_over_a_socket_through_the_layer_and_the_extractor() {
    let logs = LogCapture::global();
    let now = now();
    let cases = cases(now);
    let mut ran = 0;
    for (how, layered) in [("layer, socket", true), ("extractor, socket", false)] {
        for setup in Setup::ALL {
            let calls = Calls::default();
            let receiver = setup.receiver(now);
            let app = if layered {
                layered_app(QStashLayer::new(receiver), &calls)
            } else {
                extractor_app(receiver, &calls)
            };
            let addr = serve(app).await;
            let mut client = Some(Client::connect(addr).unwrap());
            let mut handled = 0;
            for case in cases
                .iter()
                .filter(|c| c.setup == setup && c.transport == Transport::Any)
            {
                // The driver blocks: off the runtime that serves.
                let (mut kept, sent) = (client.take().unwrap(), case.clone());
                let (kept, got) = tokio::task::spawn_blocking(move || {
                    let got = kept.send(&sent);
                    (kept, got)
                })
                .await
                .unwrap();
                let got = got.unwrap_or_else(|e| panic!("{how}: {}: {e}", case.name));
                check(how, case, &got);
                check_logs(how, case, &logs.take(case.message_id().unwrap_or("")));
                handled += usize::from(case.expect.reason.is_none());
                client = Some(if case.expect.connection_close {
                    let closed = tokio::task::spawn_blocking(move || {
                        let mut kept = kept;
                        kept.closed_by_server()
                    })
                    .await
                    .unwrap();
                    assert!(
                        closed,
                        "{how}: {}: Connection: close, but the server kept the connection",
                        case.name
                    );
                    Client::connect(addr).unwrap()
                } else {
                    kept
                });
                ran += 1;
            }
            assert_eq!(calls.get(), handled, "{how}: {setup:?}");
        }
    }
    let over_sockets = cases
        .iter()
        .filter(|c| c.transport == Transport::Any)
        .count();
    assert_eq!(ran, 2 * over_sockets);
}
