//! The Redis store against a real `redis-server`: its own child process on a free loopback
//! port, or the server at `QSTASH_TEST_REDIS_URL`. Fails (never skips) when neither exists.
#![cfg(all(feature = "redis", feature = "tower"))]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use qstash_dedupe::{
    Begin, DedupeLayer, DedupeStore, Deduplicator, RedisStore, ReplayError, ReplayGuard, Settled,
    StoreErrorKind,
};
use qstash_receiver::Delivery;
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt as _;

use support::redis_server::{self, RedisServer};
use support::{delivery, delivery_headers, is_duplicate, retry_after};

const SEC: Duration = Duration::from_secs(1);

/// A store on `server` under a key prefix of its own, so that tests sharing an external
/// server do not meet.
async fn store(server: &RedisServer, prefix: &str) -> RedisStore {
    store_with_timeout(server, prefix, Duration::from_millis(500)).await
}

/// As [`store`], with another time limit per Redis call: a test that sends hundreds of
/// deliveries at once on a loaded 2-core machine can see a call take longer than 500 ms,
/// and its store then (rightly) answers 503, which is not what that test is about.
async fn store_with_timeout(server: &RedisServer, prefix: &str, timeout: Duration) -> RedisStore {
    RedisStore::builder(server.url.clone())
        .key_prefix(prefix)
        .timeout(timeout)
        .connect()
        .await
        .unwrap()
}

fn prefix() -> String {
    format!("test:{}:", qstash_receiver::sign::new_id(""))
}

#[tokio::test]
async fn store_marks_follow_the_protocol() {
    if !redis_server::available("store_marks_follow_the_protocol") {
        return;
    }
    let server = RedisServer::from_env_or_start();
    let store = store(&server, &prefix()).await;
    assert_eq!(store.begin("k", "a", SEC * 30).await, Ok(Begin::Started));
    match store.begin("k", "b", SEC * 30).await.unwrap() {
        Begin::InProgress {
            remaining: Some(left),
        } => assert!(left <= SEC * 30 && left > SEC * 20, "{left:?}"),
        other => panic!("{other:?}"),
    }
    // Only the owner settles.
    assert_eq!(store.release("k", "b").await, Ok(Settled::NotOwner));
    assert_eq!(
        store.complete("k", "b", SEC * 60).await,
        Ok(Settled::NotOwner)
    );
    assert_eq!(
        store.complete("k", "a", SEC * 60).await,
        Ok(Settled::Applied)
    );
    assert_eq!(store.begin("k", "c", SEC).await, Ok(Begin::Done));
    // Done is not released.
    assert_eq!(store.release("k", "a").await, Ok(Settled::NotOwner));
    assert_eq!(store.begin("k", "c", SEC).await, Ok(Begin::Done));

    assert_eq!(store.begin("r", "a", SEC * 30).await, Ok(Begin::Started));
    assert_eq!(store.release("r", "a").await, Ok(Settled::Applied));
    assert_eq!(store.begin("r", "b", SEC * 30).await, Ok(Begin::Started));
    assert_eq!(store.release("gone", "a").await, Ok(Settled::NotOwner));
}

#[tokio::test]
async fn a_stale_owner_cannot_touch_the_lease_that_replaced_it() {
    if !redis_server::available("a_stale_owner_cannot_touch_the_lease_that_replaced_it") {
        return;
    }
    let server = RedisServer::from_env_or_start();
    let store = store(&server, &prefix()).await;
    assert_eq!(
        store.begin("k", "stale", Duration::from_millis(1)).await,
        Ok(Begin::Started)
    );
    // Only "at least 1 ms later" matters here.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store.begin("k", "fresh", SEC * 30).await,
        Ok(Begin::Started)
    );
    assert_eq!(store.release("k", "stale").await, Ok(Settled::NotOwner));
    assert_eq!(
        store.complete("k", "stale", SEC * 60).await,
        Ok(Settled::NotOwner)
    );
    assert!(matches!(
        store.begin("k", "x", SEC).await,
        Ok(Begin::InProgress { .. })
    ));

    // A lease that expired unclaimed can still be completed by its owner.
    assert_eq!(
        store.begin("u", "late", Duration::from_millis(1)).await,
        Ok(Begin::Started)
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store.complete("u", "late", SEC * 60).await,
        Ok(Settled::Applied)
    );
    assert_eq!(store.begin("u", "x", SEC).await, Ok(Begin::Done));
}

#[tokio::test]
async fn replay_guard_shares_token_ids_through_redis() {
    if !redis_server::available("replay_guard_shares_token_ids_through_redis") {
        return;
    }
    let server = RedisServer::from_env_or_start();
    let prefix = prefix();
    let one = ReplayGuard::new(store(&server, &prefix).await);
    let two = ReplayGuard::new(store(&server, &prefix).await);
    let (_, claims) = support::verify(&delivery_headers("m", 0, b""), b"");
    assert_eq!(one.check(&claims).await, Ok(()));
    assert_eq!(two.check(&claims).await, Err(ReplayError::Replayed));
    let (_, fresh) = support::verify(&delivery_headers("m", 1, b""), b"");
    assert_eq!(two.check(&fresh).await, Ok(()));
}

#[tokio::test]
async fn connection_failures_are_errors_without_the_url() {
    // Port 1 on loopback: nothing listens there.
    let unreachable = RedisStore::builder("redis://user:s3cret@127.0.0.1:1/")
        .timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(unreachable.kind(), StoreErrorKind::Unavailable);
    assert!(!unreachable.to_string().contains("s3cret"), "{unreachable}");

    let invalid = RedisStore::connect("http://user:s3cret@example.com/")
        .await
        .unwrap_err();
    assert!(!invalid.to_string().contains("s3cret"), "{invalid}");
    assert!(!format!("{invalid:?}").contains("s3cret"));

    let builder = RedisStore::builder("redis://user:s3cret@127.0.0.1:1/");
    assert!(!format!("{builder:?}").contains("s3cret"));
}

/// Counts handler runs per message id.
type Runs = Arc<Mutex<HashMap<String, usize>>>;

fn message_id(request: &Request) -> String {
    request
        .extensions()
        .get::<Delivery>()
        .unwrap()
        .message_id
        .clone()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// POSTs a fresh QStash delivery of message `id` to `addr` over a new connection.
async fn deliver(addr: SocketAddr, id: &str, retried: u32) -> (StatusCode, HeaderMap) {
    const BODY: &[u8] = br#"{"order":1}"#;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::post(support::PATH)
        .header(http::header::HOST, addr.to_string())
        .body(Full::new(Bytes::from_static(BODY)))
        .unwrap();
    request
        .headers_mut()
        .extend(delivery_headers(id, retried, BODY));
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    body.collect().await.unwrap();
    (parts.status, parts.headers)
}

/// Two service instances, each with its own connection to one Redis, behind real HTTP: 200
/// messages, each delivered 3 times at once, alternating between the instances. Every
/// handler runs exactly once (it holds its lease until the two other deliveries have been
/// answered, so those are answered 409); QStash's retries of the 409s are 200 duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_run_each_message_once() {
    const MESSAGES: usize = 200;
    if !redis_server::available("two_instances_sharing_redis_run_each_message_once") {
        return;
    }
    let server = RedisServer::from_env_or_start();
    let prefix = prefix();
    let runs: Runs = Arc::default();
    let gates: Arc<HashMap<String, Semaphore>> = Arc::new(
        (0..MESSAGES)
            .map(|i| (format!("msg_{i}"), Semaphore::new(0)))
            .collect(),
    );
    let instance = |store: RedisStore| {
        let (runs, gates) = (runs.clone(), gates.clone());
        Router::new()
            .route(
                support::PATH,
                post(move |request: Request| {
                    let (runs, gates) = (runs.clone(), gates.clone());
                    async move {
                        let id = message_id(&request);
                        let first = {
                            let mut runs = runs.lock().unwrap();
                            let count = runs.entry(id.clone()).or_default();
                            *count += 1;
                            *count == 1
                        };
                        if first {
                            let gate = gates[&id].acquire_many(2);
                            tokio::time::timeout(Duration::from_secs(20), gate)
                                .await
                                .expect("the other deliveries were not answered")
                                .unwrap()
                                .forget();
                        }
                        "handled"
                    }
                }),
            )
            .layer(DedupeLayer::new(
                Deduplicator::new(store).replay_guard(true),
            ))
            .layer(axum::middleware::from_fn(support::verify_layer))
    };
    let addrs = [
        serve(instance(
            store_with_timeout(&server, &prefix, SEC * 10).await,
        ))
        .await,
        serve(instance(
            store_with_timeout(&server, &prefix, SEC * 10).await,
        ))
        .await,
    ];

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..MESSAGES {
        for attempt in 0..3 {
            let addr = addrs[(i + attempt) % 2];
            let gates = gates.clone();
            tasks.spawn(async move {
                let id = format!("msg_{i}");
                let (status, headers) = deliver(addr, &id, 0).await;
                if status == StatusCode::CONFLICT {
                    gates[&id].add_permits(1);
                }
                (id, status, headers)
            });
        }
    }
    let mut handled = 0;
    let mut conflicts = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (id, status, headers) = result.unwrap();
        match (status, is_duplicate(&headers)) {
            (StatusCode::OK, false) => handled += 1,
            (StatusCode::CONFLICT, true) => {
                let secs = retry_after(&headers).unwrap();
                assert!((1..=60).contains(&secs), "Retry-After {secs}");
                conflicts.push(id);
            }
            other => panic!("unexpected answer {other:?} for {id}"),
        }
    }
    assert_eq!(handled, MESSAGES);
    assert_eq!(conflicts.len(), 2 * MESSAGES);

    // QStash's retries of the 409s, on either instance: duplicates of handled messages.
    let mut retries = tokio::task::JoinSet::new();
    for (n, id) in conflicts.into_iter().enumerate() {
        let addr = addrs[n % 2];
        retries.spawn(async move { (deliver(addr, &id, 1).await, id) });
    }
    while let Some(result) = retries.join_next().await {
        let ((status, headers), id) = result.unwrap();
        assert_eq!(status, StatusCode::OK, "{id}");
        assert!(is_duplicate(&headers), "{id}");
    }
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), MESSAGES);
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");
}

/// Redis dies (SIGKILL) while a handler runs and while deliveries keep coming: they are
/// answered 503 + `Retry-After` without running the handler. After a restart (the server
/// persists every acknowledged write), only messages that were handled are marked done, and
/// the ones answered 503 run exactly once when QStash retries them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_answers_503_and_marks_nothing_unhandled() {
    if !redis_server::available("redis_stopped_mid_run_answers_503_and_marks_nothing_unhandled") {
        return;
    }
    let mut server = RedisServer::start_persistent();
    let store = store(&server, &prefix()).await;
    let runs: Runs = Arc::default();
    let entered = Arc::new(Notify::new());
    let proceed = Arc::new(Notify::new());
    let router = {
        let (runs, entered, proceed) = (runs.clone(), entered.clone(), proceed.clone());
        Router::new()
            .route(
                support::PATH,
                post(move |request: Request| {
                    let (runs, entered, proceed) = (runs.clone(), entered.clone(), proceed.clone());
                    async move {
                        let id = message_id(&request);
                        *runs.lock().unwrap().entry(id.clone()).or_default() += 1;
                        if id == "slow" {
                            entered.notify_one();
                            proceed.notified().await;
                        }
                        "handled"
                    }
                }),
            )
            .layer(DedupeLayer::new(Deduplicator::new(store.clone())))
    };
    let send = |request: Request<Body>| {
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            (response.status(), response.headers().clone())
        }
    };
    let runs_of = |id: &str| runs.lock().unwrap().get(id).copied().unwrap_or(0);

    // Before: ten messages handled.
    let before: Vec<String> = (0..10).map(|i| format!("before_{i}")).collect();
    for id in &before {
        let (status, headers) = send(delivery(id)).await;
        assert_eq!(status, StatusCode::OK, "{id}");
        assert!(!is_duplicate(&headers), "{id}");
    }

    // A handler is running when Redis dies.
    let slow = tokio::spawn(send(delivery("slow")));
    entered.notified().await;
    server.kill();

    // The slow handler succeeds: its 200 goes out though its done mark cannot be stored.
    proceed.notify_one();
    assert_eq!(slow.await.unwrap().0, StatusCode::OK);

    // While Redis is down: new messages and duplicates alike get 503 + Retry-After.
    let during: Vec<String> = (0..10).map(|i| format!("during_{i}")).collect();
    for id in during.iter().chain(&before[..3]) {
        let (status, headers) = send(delivery(id)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{id}");
        assert_eq!(retry_after(&headers), Some(12), "{id}");
        assert!(!is_duplicate(&headers), "{id}");
    }
    assert!(during.iter().all(|id| runs_of(id) == 0));

    // Redis comes back with what it had acknowledged.
    server.restart();
    let mut up = false;
    for _ in 0..100 {
        if store.ping().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the store did not reconnect");

    // Nothing unhandled is marked done: the 503'd messages run, exactly once.
    for id in &during {
        let (status, headers) = send(delivery(id)).await;
        assert_eq!(status, StatusCode::OK, "{id}");
        assert!(!is_duplicate(&headers), "{id}");
        assert_eq!(runs_of(id), 1, "{id}");
        assert!(is_duplicate(&send(delivery(id)).await.1), "{id}");
    }
    // What was handled before stays handled.
    for id in &before {
        let (status, headers) = send(delivery(id)).await;
        assert_eq!(status, StatusCode::OK, "{id}");
        assert!(is_duplicate(&headers), "{id}");
        assert_eq!(runs_of(id), 1, "{id}");
    }
    // The slow one was handled but could not be marked done: its lease persists, so a
    // retry waits (409) instead of being taken for done or run at once.
    let (status, headers) = send(delivery("slow")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(retry_after(&headers).is_some());
    assert_eq!(runs_of("slow"), 1);
}
