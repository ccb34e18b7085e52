//! The conformance table (`qstash-test-cases`), every case through each entry point in
//! process (`tower::ServiceExt::oneshot`): the layer with `QStash<Order, Layered>`, and the
//! extractor alone with the `Receiver` in the state. Alone in its binary, so that its log
//! capture sees no other test's events.

// Test helpers outside `#[test]` functions unwrap too: a failure is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ANSWER_WITHIN, Calls, extractor_app, got, layered_app, now, table_request};
use qstash_test_cases::{LogCapture, cases, check, check_logs};
use tower::ServiceExt as _;
use tower_qstash::QStashLayer;

#[tokio::test]
async fn every_case_through_the_layer_and_the_extractor() {
    let logs = LogCapture::global();
    let now = now();
    let cases = cases(now);
    for (how, layered) in [
        ("layer, in process", true),
        ("extractor, in process", false),
    ] {
        for case in &cases {
            let calls = Calls::default();
            let receiver = case.setup.receiver(now);
            let app = if layered {
                layered_app(QStashLayer::new(receiver), &calls)
            } else {
                extractor_app(receiver, &calls)
            };
            let (request, _polls) = table_request(case);
            let response = tokio::time::timeout(ANSWER_WITHIN, app.oneshot(request))
                .await
                .unwrap_or_else(|_| panic!("{how}: {}: no answer", case.name))
                .unwrap();
            let got = got(response).await;
            check(how, case, &got);
            check_logs(how, case, &logs.take(case.message_id().unwrap_or("")));
            let handled = case.expect.reason.is_none();
            assert_eq!(calls.get(), usize::from(handled), "{how}: {}", case.name);
            // A refusal that closes the connection before the body was read leaves the body to
            // the lingering drain, which polls it after the answer is decided. That the answer
            // did not wait for the body shows in the declared-2-MiB cases: their bodies stall
            // after the few bytes sent, so a layer that read first would not answer in time.
        }
    }
}
