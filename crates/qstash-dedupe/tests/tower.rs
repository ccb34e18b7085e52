//! The tower layer over the in-memory store, through axum routers and `oneshot`.
#![cfg(feature = "tower")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt as _;
use qstash_dedupe::{
    Begin, Clock, DedupeLayer, DedupeStore, Deduplicator, MemoryStore, RetryAfter, Settled,
    StoreError, StoreErrorKind, StoreFailure,
};
use tokio::sync::{Notify, Semaphore};
use tower::{Service, ServiceExt as _};

use support::{delivery, delivery_headers, is_duplicate, retry_after, verified_request};

/// Counts handler runs per message id; answers with the status it is told to.
#[derive(Clone, Default)]
struct Handler {
    runs: Arc<Mutex<HashMap<String, usize>>>,
    status: Arc<Mutex<Option<StatusCode>>>,
}

impl Handler {
    fn runs(&self, id: &str) -> usize {
        self.runs.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    fn answer_with(&self, status: StatusCode) {
        *self.status.lock().unwrap() = Some(status);
    }

    fn router(&self, dedupe: Deduplicator<impl DedupeStore>) -> Router {
        let handler = self.clone();
        Router::new()
            .route(
                support::PATH,
                post(move |request: Request| {
                    let handler = handler.clone();
                    async move {
                        let id = request
                            .extensions()
                            .get::<qstash_receiver::Delivery>()
                            .unwrap()
                            .message_id
                            .clone();
                        *handler.runs.lock().unwrap().entry(id).or_default() += 1;
                        let status = handler.status.lock().unwrap().unwrap_or(StatusCode::OK);
                        (status, "handled")
                    }
                }),
            )
            .layer(DedupeLayer::new(dedupe))
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn send(router: &Router, request: Request) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

#[tokio::test]
async fn first_delivery_runs_and_a_duplicate_gets_200_without_running() {
    let handler = Handler::default();
    let router = handler.router(Deduplicator::default());

    let first = send(&router, delivery("msg_1")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, "handled");
    assert!(!is_duplicate(&first.headers));

    // A retry: same message id, signed anew.
    let again = send(
        &router,
        verified_request(&delivery_headers("msg_1", 1, b"")),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(is_duplicate(&again.headers));
    assert!(again.body.contains("duplicate"));
    // The core's answer, as every answer of the workspace: no trailing newline, and
    // `Content-Type` first (the dedupe layer once wrote its own, differently).
    assert_eq!(again.body, qstash_receiver::Answer::duplicate().body_text());
    let names: Vec<&str> = again
        .headers
        .keys()
        .map(|n| n.as_str())
        .filter(|n| *n != "content-length") // axum's, from the body's size
        .collect();
    assert_eq!(names, ["content-type", "x-qstash-duplicate"]);
    assert_eq!(handler.runs("msg_1"), 1);

    // Another message runs.
    assert_eq!(send(&router, delivery("msg_2")).await.body, "handled");
    assert_eq!(handler.runs("msg_2"), 1);
}

#[tokio::test]
async fn failed_handlers_release_the_mark_so_the_retry_runs() {
    struct Case {
        name: &'static str,
        status: StatusCode,
    }
    let cases = [
        Case {
            name: "500",
            status: StatusCode::INTERNAL_SERVER_ERROR,
        },
        Case {
            name: "489 non-retryable (a manual retry from the DLQ must run)",
            status: StatusCode::from_u16(489).unwrap(),
        },
        Case {
            name: "redirect",
            status: StatusCode::SEE_OTHER,
        },
    ];
    for case in cases {
        let handler = Handler::default();
        let router = handler.router(Deduplicator::default());
        handler.answer_with(case.status);
        let failed = send(&router, delivery("msg_f")).await;
        assert_eq!(failed.status, case.status, "{}", case.name);
        assert!(!is_duplicate(&failed.headers), "{}", case.name);

        handler.answer_with(StatusCode::OK);
        let retry = send(&router, delivery("msg_f")).await;
        assert_eq!(retry.status, StatusCode::OK, "{}", case.name);
        assert!(!is_duplicate(&retry.headers), "{}", case.name);
        assert_eq!(handler.runs("msg_f"), 2, "{}", case.name);

        let duplicate = send(&router, delivery("msg_f")).await;
        assert!(is_duplicate(&duplicate.headers), "{}", case.name);
        assert_eq!(handler.runs("msg_f"), 2, "{}", case.name);
    }
}

#[tokio::test]
async fn any_2xx_marks_done() {
    let handler = Handler::default();
    let router = handler.router(Deduplicator::default());
    handler.answer_with(StatusCode::ACCEPTED);
    assert_eq!(
        send(&router, delivery("m")).await.status,
        StatusCode::ACCEPTED
    );
    let duplicate = send(&router, delivery("m")).await;
    assert_eq!(duplicate.status, StatusCode::OK);
    assert!(is_duplicate(&duplicate.headers));
    assert_eq!(handler.runs("m"), 1);
}

#[tokio::test]
async fn a_duplicate_while_in_progress_gets_409_with_retry_after() {
    let entered = Arc::new(Notify::new());
    let proceed = Arc::new(Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let router = {
        let (entered, proceed, runs) = (entered.clone(), proceed.clone(), runs.clone());
        Router::new()
            .route(
                support::PATH,
                post(move || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    entered.notify_one();
                    proceed.notified().await;
                    "handled"
                }),
            )
            .layer(DedupeLayer::new(
                Deduplicator::default().lease(Duration::from_secs(30)),
            ))
    };

    let first = tokio::spawn({
        let router = router.clone();
        async move { send(&router, delivery("slow")).await }
    });
    entered.notified().await;

    let during = send(&router, delivery("slow")).await;
    assert_eq!(during.status, StatusCode::CONFLICT);
    assert!(is_duplicate(&during.headers));
    let secs = retry_after(&during.headers).unwrap();
    assert!((1..=30).contains(&secs), "Retry-After {secs}");

    proceed.notify_one();
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    let after = send(&router, delivery("slow")).await;
    assert_eq!(after.status, StatusCode::OK);
    assert!(is_duplicate(&after.headers));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_a_verified_delivery_it_answers_500_and_does_not_run() {
    let handler = Handler::default();
    let router = handler.router(Deduplicator::default());
    // The headers are there, but nothing verified them: they must not be trusted.
    let mut request = Request::post(support::PATH).body(Body::empty()).unwrap();
    *request.headers_mut() = delivery_headers("msg_x", 0, b"");
    let answer = send(&router, request).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(handler.runs("msg_x"), 0);
}

#[tokio::test]
async fn an_inner_service_error_releases_the_mark() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = {
        let calls = calls.clone();
        tower::service_fn(move |_: Request| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err::<http::Response<Body>, _>("boom")
                } else {
                    Ok(http::Response::new(Body::empty()))
                }
            }
        })
    };
    let mut service = tower::ServiceBuilder::new()
        .layer(DedupeLayer::default())
        .service(service);
    let error = service.ready().await.unwrap().call(delivery("m")).await;
    assert_eq!(error.unwrap_err(), "boom");
    let ok = service.ready().await.unwrap().call(delivery("m")).await;
    assert_eq!(ok.unwrap().status(), StatusCode::OK);
    let duplicate = service
        .ready()
        .await
        .unwrap()
        .call(delivery("m"))
        .await
        .unwrap();
    assert!(is_duplicate(duplicate.headers()));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A store that fails what it is told to.
#[derive(Debug, Clone, Default)]
struct FlakyStore {
    memory: MemoryStore,
    fail_begin: bool,
    fail_settle: bool,
}

fn down() -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, "connection refused")
}

impl DedupeStore for FlakyStore {
    async fn begin(&self, key: &str, owner: &str, lease: Duration) -> Result<Begin, StoreError> {
        if self.fail_begin {
            return Err(down());
        }
        self.memory.begin(key, owner, lease).await
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        retention: Duration,
    ) -> Result<Settled, StoreError> {
        if self.fail_settle {
            return Err(down());
        }
        self.memory.complete(key, owner, retention).await
    }

    async fn release(&self, key: &str, owner: &str) -> Result<Settled, StoreError> {
        if self.fail_settle {
            return Err(down());
        }
        self.memory.release(key, owner).await
    }
}

#[tokio::test]
async fn store_failure_answers_503_with_retry_after_by_default() {
    struct Case {
        name: &'static str,
        retry_after: Option<RetryAfter>,
        retried: u32,
        want_secs: u64,
    }
    let cases = [
        Case {
            name: "first attempt: QStash's first backoff",
            retry_after: None,
            retried: 0,
            want_secs: 12,
        },
        Case {
            name: "after two retries: the third backoff",
            retry_after: None,
            retried: 2,
            want_secs: 1808,
        },
        Case {
            name: "late retries: capped at a day",
            retry_after: None,
            retried: 9,
            want_secs: 86_400,
        },
        Case {
            name: "fixed",
            retry_after: Some(RetryAfter::Fixed(Duration::from_millis(4500))),
            retried: 0,
            want_secs: 5,
        },
    ];
    for case in cases {
        let handler = Handler::default();
        let store = FlakyStore {
            fail_begin: true,
            ..FlakyStore::default()
        };
        let mut dedupe = Deduplicator::new(store);
        if let Some(retry_after) = case.retry_after {
            dedupe = dedupe.store_retry_after(retry_after);
        }
        let router = handler.router(dedupe);
        let answer = send(
            &router,
            verified_request(&delivery_headers("m", case.retried, b"")),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            case.name
        );
        assert_eq!(
            retry_after(&answer.headers),
            Some(case.want_secs),
            "{}",
            case.name
        );
        assert!(!is_duplicate(&answer.headers), "{}", case.name);
        assert_eq!(handler.runs("m"), 0, "{}", case.name);
    }
}

#[tokio::test]
async fn fail_open_runs_the_handler_when_the_store_fails() {
    let handler = Handler::default();
    let store = FlakyStore {
        fail_begin: true,
        ..FlakyStore::default()
    };
    let router = handler.router(Deduplicator::new(store).on_store_failure(StoreFailure::FailOpen));
    assert_eq!(send(&router, delivery("m")).await.status, StatusCode::OK);
    assert_eq!(send(&router, delivery("m")).await.status, StatusCode::OK);
    assert_eq!(handler.runs("m"), 2, "no mark: each delivery runs");
}

#[tokio::test]
async fn a_store_failure_after_the_handler_keeps_its_answer() {
    let handler = Handler::default();
    let store = FlakyStore {
        fail_settle: true,
        ..FlakyStore::default()
    };
    let router = handler.router(Deduplicator::new(store.clone()));
    // The handler succeeded: its 200 must reach QStash even though the mark was not stored.
    let answer = send(&router, delivery("m")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "handled");
    // Not marked done: the mark is still the lease.
    assert!(matches!(
        store
            .memory
            .begin("msg:m", "probe", Duration::from_secs(1))
            .await,
        Ok(Begin::InProgress { .. })
    ));
}

#[tokio::test]
async fn replay_guard_refuses_a_token_seen_before() {
    // The defaults: the guard needs no opt-in (a replay with a new message id used to run the
    // handler again unless `replay_guard(true)` was called).
    let handler = Handler::default();
    let router = handler.router(Deduplicator::default());
    let headers = delivery_headers("msg_r", 0, b"");
    assert_eq!(
        send(&router, verified_request(&headers)).await.status,
        StatusCode::OK
    );

    // The same token again, even with another message id: a captured request re-sent.
    let replay = send(&router, verified_request(&headers)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    // Answered as the receiver answers any refused signature (it said "unauthorized\n").
    let forged = qstash_receiver::Reason::Signature(qstash_receiver::ErrorKind::InvalidSignature);
    assert_eq!(replay.body, forged.body_text());
    let names: Vec<&str> = replay
        .headers
        .keys()
        .map(|n| n.as_str())
        .filter(|n| *n != "content-length") // axum's, from the body's size
        .collect();
    assert_eq!(names, ["content-type"]);
    let mut changed = headers.clone();
    changed.insert("upstash-message-id", "msg_other".parse().unwrap());
    let replay = send(&router, verified_request(&changed)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(handler.runs("msg_other"), 0);

    // QStash's own retry is signed anew: a duplicate, not a replay.
    let retry = send(&router, delivery("msg_r")).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert!(is_duplicate(&retry.headers));
    assert_eq!(handler.runs("msg_r"), 1);
}

#[tokio::test]
async fn replay_guard_can_be_switched_off() {
    let handler = Handler::default();
    let router = handler.router(Deduplicator::default().replay_guard(false));
    let headers = delivery_headers("msg_off", 0, b"");
    assert_eq!(
        send(&router, verified_request(&headers)).await.status,
        StatusCode::OK
    );
    let mut changed = headers.clone();
    changed.insert("upstash-message-id", "msg_off_2".parse().unwrap());
    assert_eq!(
        send(&router, verified_request(&changed)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        handler.runs("msg_off_2"),
        1,
        "without the guard, the replay runs"
    );
}

#[tokio::test]
async fn replay_guard_without_claims_answers_500() {
    let handler = Handler::default();
    let router = handler.router(Deduplicator::default().replay_guard(true));
    let mut request = delivery("m");
    request.extensions_mut().remove::<qstash_receiver::Claims>();
    assert_eq!(
        send(&router, request).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(handler.runs("m"), 0);
}

/// Unix milliseconds where the manual clocks of these tests start.
const START_MS: u64 = 1_767_225_600_000;

#[tokio::test]
async fn a_cancelled_attempt_blocks_the_message_until_its_lease_expires() {
    let clock = Clock::manual(START_MS);
    let store = MemoryStore::new().with_clock(clock.clone());
    let entered = Arc::new(Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let router = {
        let (entered, runs) = (entered.clone(), runs.clone());
        Router::new()
            .route(
                support::PATH,
                post(move || async move {
                    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                        entered.notify_one();
                        std::future::pending::<()>().await;
                    }
                    "handled"
                }),
            )
            .layer(DedupeLayer::new(
                Deduplicator::new(store).lease(Duration::from_secs(60)),
            ))
    };

    // The first attempt hangs; then its connection is gone and its future dropped.
    let first = tokio::spawn({
        let router = router.clone();
        async move { send(&router, delivery("m")).await }
    });
    entered.notified().await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());

    clock.advance(Duration::from_secs(45));
    let blocked = send(&router, delivery("m")).await;
    assert_eq!(blocked.status, StatusCode::CONFLICT);
    assert_eq!(retry_after(&blocked.headers), Some(15));

    clock.advance(Duration::from_secs(15));
    let retry = send(&router, delivery("m")).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert!(!is_duplicate(&retry.headers));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn done_marks_expire_after_the_retention() {
    let clock = Clock::manual(START_MS);
    let handler = Handler::default();
    let router = handler.router(
        Deduplicator::new(MemoryStore::new().with_clock(clock.clone()))
            .retention(Duration::from_secs(3600)),
    );
    send(&router, delivery("m")).await;
    clock.advance(Duration::from_secs(3599));
    assert!(is_duplicate(&send(&router, delivery("m")).await.headers));
    clock.advance(Duration::from_secs(1));
    assert!(!is_duplicate(&send(&router, delivery("m")).await.headers));
    assert_eq!(handler.runs("m"), 2);
}

/// Two routers sharing one memory store, 200 messages each delivered 3 times at once: every
/// handler runs exactly once, the two other deliveries get 409 (the handler waits for them),
/// and the retries of those get 200 duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_run_each_handler_once() {
    const MESSAGES: usize = 200;
    let store = MemoryStore::new();
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let gates: Arc<HashMap<String, Semaphore>> = Arc::new(
        (0..MESSAGES)
            .map(|i| (format!("msg_{i}"), Semaphore::new(0)))
            .collect(),
    );
    let router = |store: MemoryStore| {
        let (runs, gates) = (runs.clone(), gates.clone());
        Router::new()
            .route(
                support::PATH,
                post(move |request: Request| {
                    let (runs, gates) = (runs.clone(), gates.clone());
                    async move {
                        let id = request
                            .extensions()
                            .get::<qstash_receiver::Delivery>()
                            .unwrap()
                            .message_id
                            .clone();
                        let first = {
                            let mut runs = runs.lock().unwrap();
                            let count = runs.entry(id.clone()).or_default();
                            *count += 1;
                            *count == 1
                        };
                        if first {
                            // Hold the lease until both other deliveries were answered.
                            let gate = gates[&id].acquire_many(2);
                            tokio::time::timeout(Duration::from_secs(20), gate)
                                .await
                                .expect("the other deliveries were not answered")
                                .unwrap()
                                .forget();
                        }
                        Ok::<_, Infallible>("handled")
                    }
                }),
            )
            .layer(DedupeLayer::new(Deduplicator::new(store)))
    };
    let instances = [router(store.clone()), router(store)];

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..MESSAGES {
        for attempt in 0..3 {
            let instance = instances[(i + attempt) % 2].clone();
            let gates = gates.clone();
            tasks.spawn(async move {
                let id = format!("msg_{i}");
                let answer = send(&instance, delivery(&id)).await;
                if answer.status == StatusCode::CONFLICT {
                    gates[&id].add_permits(1);
                }
                (id, answer.status, is_duplicate(&answer.headers))
            });
        }
    }
    let mut handled = 0;
    let mut conflicts = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (id, status, duplicate) = result.unwrap();
        match (status, duplicate) {
            (StatusCode::OK, false) => handled += 1,
            (StatusCode::CONFLICT, true) => conflicts.push(id),
            other => panic!("unexpected answer {other:?} for {id}"),
        }
    }
    assert_eq!(handled, MESSAGES);
    assert_eq!(conflicts.len(), 2 * MESSAGES);

    // QStash retries the 409s: now they are duplicates of handled messages.
    for (n, id) in conflicts.iter().enumerate() {
        let answer = send(&instances[n % 2], delivery(id)).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(is_duplicate(&answer.headers), "{id}");
    }
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), MESSAGES);
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");
}
