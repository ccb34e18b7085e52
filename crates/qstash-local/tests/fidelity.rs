//! Calls that must do what QStash does, or refuse with a 4xx that says what is not supported:
//! filtered bulk actions, per-item batch results, no orphaned messages, capacity answers,
//! callbacks per attempt, schedules and URL groups, labels, framing headers. On a manual
//! clock: nothing sleeps.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use http::Method;
use qstash_local::{Config, EventState, Limits, LocalQStash, MessageKind};
use serde_json::{Value, json};
use support::{Api, Receiver, START_MS, qstash};

async fn publish(api: &Api, url: &str, headers: &[(&str, &str)]) -> String {
    let mut request = api
        .request(Method::POST, &format!("/v2/publish/{url}"))
        .body("x");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (status, answer) = api.send(request).await;
    assert_eq!(status, 201, "{answer}");
    answer["messageId"].as_str().unwrap().to_owned()
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[field].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_filtered_cancel_cancels_only_what_matches() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let url = receiver.url("/later");
    let delayed = [("upstash-delay", "1h")];
    let drop_a = publish(&api, &url, &[delayed[0], ("upstash-label", "drop")]).await;
    let drop_b = publish(&api, &url, &[delayed[0], ("upstash-label", "keep, drop")]).await;
    let keep = publish(&api, &url, &[delayed[0], ("upstash-label", "keep")]).await;
    let other = publish(&api, &receiver.url("/other"), &delayed).await;

    let (status, answer) = api
        .send(api.request(Method::DELETE, "/v2/messages?label=drop&count=100"))
        .await;
    assert_eq!((status, answer["cancelled"].as_u64()), (200, Some(2)));
    let mut pending = qstash.engine().pending();
    pending.sort();
    let mut want = vec![keep.clone(), other.clone()];
    want.sort();
    assert_eq!(
        pending, want,
        "{drop_a} and {drop_b} cancelled, nothing else"
    );

    // Filters combine (and); host and path read the destination.
    let host = receiver.addr.unwrap().ip().to_string();
    let (_, answer) = api
        .send(api.request(
            Method::DELETE,
            &format!("/v2/messages?host={host}&path=/other"),
        ))
        .await;
    assert_eq!(answer["cancelled"], 1);
    assert_eq!(qstash.engine().pending(), [keep.as_str()]);

    // A parameter the endpoint does not know is refused, never read as "all".
    let (status, answer) = api
        .send(api.request(Method::DELETE, "/v2/messages?lable=keep"))
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("lable"),
        "{answer}"
    );
    assert_eq!(qstash.engine().pending(), [keep.as_str()]);

    // `count` alone (the TypeScript client's `all: true`) takes a page; no query takes all.
    for _ in 0..3 {
        publish(&api, &url, &delayed).await;
    }
    let (_, answer) = api
        .send(api.request(Method::DELETE, "/v2/messages?count=2"))
        .await;
    assert_eq!(answer["cancelled"], 2);
    let (_, answer) = api.send(api.request(Method::DELETE, "/v2/messages")).await;
    assert_eq!(answer["cancelled"], 2);
    assert!(qstash.engine().pending().is_empty());
    let cancelled = qstash
        .events()
        .iter()
        .filter(|e| e.state == EventState::Canceled)
        .count();
    assert_eq!(cancelled, 7);
}

#[tokio::test]
async fn a_batch_answers_each_element_and_one_bad_element_stops_nothing() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let hook = receiver.url("/hook");
    let (status, answer) = api
        .send(api.request(Method::POST, "/v2/batch").body(json!([
            { "destination": hook, "body": "one" },
            { "destination": hook, "headers": { "Upstash-Retries": "many" }, "body": "bad" },
            { "destination": "no-such-group", "body": "lost" },
            { "destination": hook, "body": "three" },
            { "destination": 7 },
        ]).to_string()))
        .await;
    assert_eq!(status, 201, "{answer}");
    let results = answer.as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert!(results[0]["messageId"].is_string(), "{answer}");
    assert!(
        results[1]["error"]
            .as_str()
            .unwrap()
            .contains("upstash-retries")
    );
    assert!(results[2]["error"].as_str().unwrap().contains("not found"));
    assert!(results[3]["messageId"].is_string(), "{answer}");
    assert!(
        results[4]["error"]
            .as_str()
            .unwrap()
            .contains("batch element")
    );
    qstash.run_due().await;
    let bodies: Vec<Vec<u8>> = receiver
        .seen_at("/hook")
        .into_iter()
        .map(|s| s.body)
        .collect();
    assert_eq!(bodies, [b"one".to_vec(), b"three".to_vec()]);

    // Over 1 MiB in total, the answer says it is the batch.
    let big = "x".repeat(600 << 10);
    let response = api
        .request(Method::POST, "/v2/batch")
        .body(
            json!([
                { "destination": hook, "body": big },
                { "destination": hook, "body": big },
            ])
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.text().await.unwrap().contains("batch"));
}

#[tokio::test]
async fn a_deleted_queue_cancels_its_messages_and_a_dlq_retry_brings_the_queue_back() {
    let receiver = Receiver::start().await;
    receiver.script("/flaky", vec![(500, vec![], "no")]);
    receiver.script("/dead", vec![(500, vec![], "no")]);
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let enqueue = |queue: &str, path: &str, retries: &'static str| {
        api.request(
            Method::POST,
            &format!("/v2/enqueue/{queue}/{}", receiver.url(path)),
        )
        .header("upstash-retries", retries)
        .body("q")
    };
    let (_, flaky) = api.send(enqueue("orders", "/flaky", "3")).await;
    let (_, dead) = api.send(enqueue("doomed", "/dead", "0")).await;
    qstash.run_due().await;
    // One waits for its retry, the other is in the DLQ.
    assert_eq!(qstash.engine().pending().len(), 1);
    assert_eq!(qstash.dead_letters().len(), 1);

    let (status, _) = api
        .send(api.request(Method::DELETE, "/v2/queues/orders"))
        .await;
    assert_eq!(status, 200);
    assert!(
        qstash.engine().pending().is_empty(),
        "no orphan left behind"
    );
    let flaky_id = flaky["messageId"].as_str().unwrap();
    assert!(
        qstash
            .events()
            .iter()
            .any(|e| e.message_id == flaky_id && e.state == EventState::Canceled)
    );
    qstash.advance(Duration::from_secs(86_400)).await;
    assert_eq!(receiver.seen_at("/flaky").len(), 1, "never retried");

    // The DLQ retry of a message whose queue is gone: the queue comes back, it delivers.
    api.send(api.request(Method::DELETE, "/v2/queues/doomed"))
        .await;
    let dlq_id = qstash.dead_letters()[0].dlq_id.clone();
    assert_eq!(qstash.dead_letters()[0].message_id, dead["messageId"]);
    let (status, answer) = api
        .send(api.request(Method::POST, &format!("/v2/dlq/retry/{dlq_id}")))
        .await;
    assert_eq!(status, 201, "{answer}");
    qstash.run_due().await;
    assert_eq!(receiver.seen_at("/dead").len(), 2);
    assert!(qstash.engine().pending().is_empty());
    let (status, _) = api
        .send(api.request(Method::GET, "/v2/queues/doomed"))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_paused_queue_holds_a_retry_that_was_in_its_backoff() {
    let receiver = Receiver::start().await;
    receiver.script("/once", vec![(500, vec![], "no")]);
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    api.send(
        api.request(
            Method::POST,
            &format!("/v2/enqueue/held/{}", receiver.url("/once")),
        )
        .body("q"),
    )
    .await;
    qstash.run_due().await;
    api.send(api.request(Method::POST, "/v2/queues/held/pause"))
        .await;
    qstash.advance(Duration::from_secs(86_400)).await;
    assert_eq!(receiver.seen_at("/once").len(), 1, "paused: no retry");
    let (_, queue) = api.send(api.request(Method::GET, "/v2/queues/held")).await;
    assert_eq!(queue["lag"], 1);
    api.send(api.request(Method::POST, "/v2/queues/held/resume"))
        .await;
    qstash.run_due().await;
    assert_eq!(receiver.seen_at("/once").len(), 2);
}

#[tokio::test]
async fn the_dlq_list_and_bulk_actions_take_filters_and_all() {
    let receiver = Receiver::start().await;
    receiver.script("/a", vec![(500, vec![], "no"); 3]);
    receiver.script("/b", vec![(404, vec![], "gone"); 2]);
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    for (path, label) in [
        ("/a", "red"),
        ("/a", "blue"),
        ("/a", "red"),
        ("/b", "red"),
        ("/b", "blue"),
    ] {
        publish(
            &api,
            &receiver.url(path),
            &[("upstash-retries", "0"), ("upstash-label", label)],
        )
        .await;
    }
    qstash.run_due().await;
    assert_eq!(qstash.dead_letters().len(), 5);
    let list = |query: &str| {
        let path = format!("/v2/dlq?{query}");
        let api = &api;
        async move { api.send(api.request(Method::GET, &path)).await }
    };
    let (_, red) = list("label=red").await;
    assert_eq!(red["messages"].as_array().unwrap().len(), 3);
    let (_, red_404) = list("label=red&responseStatus=404").await;
    assert_eq!(red_404["messages"].as_array().unwrap().len(), 1);
    let (_, by_url) = list(&format!("url={}", receiver.url("/b"))).await;
    assert_eq!(by_url["messages"].as_array().unwrap().len(), 2);
    let (status, refused) = list("state=FAILED").await;
    assert_eq!(status, 400, "{refused}");

    // Delete by filter, retry all: each touches only what it names.
    let (_, deleted) = api
        .send(api.request(Method::DELETE, "/v2/dlq?label=blue"))
        .await;
    assert_eq!(deleted["deleted"], 2);
    let (status, retried) = api
        .send(api.request(Method::POST, "/v2/dlq/retry?count=2"))
        .await;
    assert_eq!(status, 201);
    assert_eq!(retried["responses"].as_array().unwrap().len(), 2);
    assert!(retried["cursor"].is_string(), "one left: {retried}");
    let (_, retried) = api
        .send(api.request(Method::POST, "/v2/dlq/retry?count=2"))
        .await;
    assert_eq!(retried["responses"].as_array().unwrap().len(), 1);
    assert!(retried.get("cursor").is_none(), "{retried}");
    assert!(qstash.dead_letters().is_empty());
    assert_eq!(qstash.engine().pending().len(), 3);
}

#[tokio::test]
async fn logs_take_message_ids_labels_dates_and_the_caller() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let url = receiver.url("/hook");
    let first = publish(&api, &url, &[("upstash-label", "a,b")]).await;
    qstash.advance(Duration::from_secs(10)).await;
    let second = publish(&api, &url, &[("upstash-label", "c")]).await;
    qstash.run_due().await;
    let logs = |query: String| {
        let api = &api;
        async move {
            let (status, answer) = api
                .send(api.request(Method::GET, &format!("/v2/logs?{query}")))
                .await;
            assert_eq!(status, 200, "{answer}");
            answer["events"].as_array().unwrap().clone()
        }
    };
    let by_ids = logs(format!("messageIds={first}&state=CREATED")).await;
    assert_eq!(
        ids(&Value::Array(by_ids.clone()), "messageId"),
        [first.as_str()]
    );
    assert_eq!(by_ids[0]["labels"], json!(["a", "b"]));
    assert_eq!(by_ids[0]["callerIp"], "127.0.0.1");
    let labelled = logs("label=b&state=DELIVERED".to_owned()).await;
    assert_eq!(ids(&Value::Array(labelled), "messageId"), [first.as_str()]);
    let later = logs(format!("fromDate={}&state=CREATED", START_MS + 5_000)).await;
    assert_eq!(ids(&Value::Array(later), "messageId"), [second.as_str()]);
    let earlier = logs(format!("toDate={}&state=CREATED", START_MS + 5_000)).await;
    assert_eq!(ids(&Value::Array(earlier), "messageId"), [first.as_str()]);
    let nobody = logs("callerIp=10.0.0.1".to_owned()).await;
    assert!(nobody.is_empty());
    let (_, message) = api
        .send(
            api.request(Method::POST, &format!("/v2/publish/{url}"))
                .header("upstash-label", "x, y")
                .header("upstash-delay", "1h"),
        )
        .await;
    let (_, view) = api
        .send(api.request(
            Method::GET,
            &format!("/v2/messages/{}", message["messageId"].as_str().unwrap()),
        ))
        .await;
    assert_eq!(view["labels"], json!(["x", "y"]));
    assert_eq!(
        (&view["callerIP"], &view["callerIp"]),
        (&json!("127.0.0.1"), &json!("127.0.0.1"))
    );
    assert_eq!(view["label"], "x");
}

#[tokio::test]
async fn capacity_answers_are_412_naming_the_limit_and_the_dlq_never_blocks_publishing() {
    let receiver = Receiver::start().await;
    receiver.script("/dead", vec![(500, vec![], "no"); 10]);
    let limits = {
        let mut limits = Limits::default();
        limits.schedules = 1;
        limits.url_groups = 1;
        limits.queues = 1;
        limits.stored_bytes = 10;
        limits.dlq = 3;
        limits.dlq_bytes = 1 << 20;
        limits
    };
    let qstash = LocalQStash::builder()
        .manual_clock(START_MS)
        .config(Config::new().with_limits(limits))
        .start()
        .await
        .unwrap();
    let api = Api::new(&qstash);
    let hook = receiver.url("/hook");
    let schedule = || {
        api.request(Method::POST, &format!("/v2/schedules/{hook}"))
            .header("upstash-cron", "0 0 1 1 *")
    };
    assert_eq!(api.send(schedule()).await.0, 201);
    let (status, answer) = api.send(schedule()).await;
    assert_eq!(status, 412, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("Limits::schedules")
    );
    let group = |name: &str| {
        api.request(Method::POST, &format!("/v2/topics/{name}/endpoints"))
            .body(json!({ "endpoints": [{ "url": hook }] }).to_string())
    };
    assert_eq!(api.send(group("one")).await.0, 200);
    let (status, answer) = api.send(group("two")).await;
    assert_eq!(status, 412);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("Limits::url_groups")
    );
    let queue = |name: &str| {
        api.request(Method::POST, "/v2/queues")
            .body(json!({ "queueName": name, "parallelism": 1 }).to_string())
    };
    assert_eq!(api.send(queue("one")).await.0, 200);
    let (status, answer) = api.send(queue("two")).await;
    assert_eq!(status, 412);
    assert!(answer["error"].as_str().unwrap().contains("Limits::queues"));
    let (status, answer) = api
        .send(
            api.request(Method::POST, &format!("/v2/publish/{hook}"))
                .body("more than ten bytes"),
        )
        .await;
    assert_eq!(status, 412);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("Limits::stored_bytes")
    );

    // Dead letters have their own budget: five failures keep the newest three, and
    // publishing still works with the DLQ full.
    for n in 0..5 {
        let (status, answer) = api
            .send(
                api.request(
                    Method::POST,
                    &format!("/v2/publish/{}", receiver.url("/dead")),
                )
                .header("upstash-retries", "0")
                .body(format!("dead {n}")),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        qstash.run_due().await;
    }
    let bodies: Vec<_> = qstash.dead_letters().into_iter().map(|d| d.body).collect();
    assert_eq!(bodies, ["dead 2", "dead 3", "dead 4"]);
    assert!(qstash.engine().pending().is_empty());
}

#[tokio::test]
async fn the_dlq_is_evicted_by_bytes() {
    let receiver = Receiver::start().await;
    receiver.script("/dead", vec![(500, vec![], "no"); 10]);
    let mut limits = Limits::default();
    limits.dlq_bytes = 25;
    let qstash = LocalQStash::builder()
        .manual_clock(START_MS)
        .config(Config::new().with_limits(limits))
        .start()
        .await
        .unwrap();
    let api = Api::new(&qstash);
    for n in 0..4 {
        api.send(
            api.request(
                Method::POST,
                &format!("/v2/publish/{}", receiver.url("/dead")),
            )
            .header("upstash-retries", "0")
            .body(format!("dead {n}")),
        )
        .await;
        qstash.run_due().await;
    }
    // Each letter holds 6 + 2 bytes ("dead n" and the answer "no"): three fit in 25.
    let bodies: Vec<_> = qstash.dead_letters().into_iter().map(|d| d.body).collect();
    assert_eq!(bodies, ["dead 1", "dead 2", "dead 3"]);
}

#[tokio::test]
async fn the_callback_reports_every_attempt_with_the_messages_retries() {
    let receiver = Receiver::start().await;
    receiver.script("/hook", vec![(500, vec![], "no"), (503, vec![], "busy")]);
    receiver.script("/cb", vec![(500, vec![], "cb down")]);
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let callback = receiver.url("/cb");
    publish(
        &api,
        &receiver.url("/hook"),
        &[("upstash-retries", "2"), ("upstash-callback", &callback)],
    )
    .await;
    qstash.advance(Duration::from_secs(86_400 * 3)).await;
    let hook_attempts = receiver.seen_at("/hook").len();
    assert_eq!(hook_attempts, 3, "500, 503, then 200");
    let reports: Vec<Value> = receiver
        .seen_at("/cb")
        .iter()
        .map(|s| serde_json::from_slice(&s.body).unwrap())
        .collect();
    // Four requests: one per attempt, the first of which failed once and was retried.
    let mut statuses: Vec<u64> = reports
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 500, 500, 503], "{reports:?}");
    let callbacks: Vec<_> = qstash
        .attempts()
        .into_iter()
        .filter(|a| a.kind == MessageKind::Callback)
        .collect();
    assert!(
        callbacks.iter().all(|a| a.max_retries == 2),
        "the message's retries"
    );
}

#[tokio::test]
async fn schedules_need_their_url_group_and_keep_it_alive() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let schedule = |destination: &str| {
        api.request(Method::POST, &format!("/v2/schedules/{destination}"))
            .header("upstash-cron", "* * * * *")
            .header("upstash-label", "nightly, batch")
    };
    let (status, answer) = api.send(schedule("missing")).await;
    assert_eq!(status, 404, "{answer}");
    api.send(
        api.request(Method::POST, "/v2/topics/team/endpoints")
            .body(json!({ "endpoints": [{ "url": receiver.url("/team") }] }).to_string()),
    )
    .await;
    let (status, created) = api.send(schedule("team")).await;
    assert_eq!(status, 201);
    let id = created["scheduleId"].as_str().unwrap();
    let (_, view) = api
        .send(api.request(Method::GET, &format!("/v2/schedules/{id}")))
        .await;
    assert_eq!(view["labels"], json!(["nightly", "batch"]));
    let (status, refused) = api
        .send(api.request(Method::DELETE, "/v2/topics/team"))
        .await;
    assert_eq!(status, 412);
    assert!(refused["error"].as_str().unwrap().contains(id), "{refused}");
    let (status, _) = api
        .send(
            api.request(Method::DELETE, "/v2/topics/team/endpoints")
                .body(json!({ "endpoints": [{ "url": receiver.url("/team") }] }).to_string()),
        )
        .await;
    assert_eq!(status, 412, "emptying the group would delete it");
    qstash.advance(Duration::from_secs(60)).await;
    assert_eq!(receiver.seen_at("/team").len(), 1);
    api.send(api.request(Method::DELETE, &format!("/v2/schedules/{id}")))
        .await;
    let (status, _) = api
        .send(api.request(Method::DELETE, "/v2/topics/team"))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn framing_headers_are_refused_and_never_forwarded() {
    let receiver = Receiver::start().await;
    receiver.script(
        "/hook",
        vec![(500, vec![("connection", "close"), ("x-kept", "yes")], "no")],
    );
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let hook = receiver.url("/hook");
    for name in [
        "upstash-forward-content-length",
        "upstash-forward-host",
        "upstash-forward-transfer-encoding",
        "upstash-forward-connection",
        "upstash-callback-forward-te",
    ] {
        let (status, answer) = api
            .send(
                api.request(Method::POST, &format!("/v2/publish/{hook}"))
                    .header("upstash-callback", &hook)
                    .header(name, "3")
                    .body("abcdef"),
            )
            .await;
        assert_eq!(status, 400, "{name}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(name), "{answer}");
    }
    assert!(qstash.engine().pending().is_empty());
    // An answer's hop-by-hop headers stay out of the DLQ view.
    publish(&api, &hook, &[("upstash-retries", "0")]).await;
    qstash.run_due().await;
    let (_, dlq) = api.send(api.request(Method::GET, "/v2/dlq")).await;
    let headers = &dlq["messages"][0]["responseHeader"];
    assert_eq!(headers["X-Kept"], json!(["yes"]), "{dlq}");
    assert!(headers.get("Connection").is_none(), "{dlq}");
}

#[tokio::test]
async fn the_smaller_answers() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let client = reqwest::Client::new();
    // A lower-case scheme and an upper-case URL scheme are what they are.
    let response = client
        .post(format!(
            "{}/v2/publish/HTTP://{}/up",
            qstash.url(),
            receiver.addr.unwrap()
        ))
        .header("authorization", format!("bearer {}", qstash.token()))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    qstash.run_due().await;
    assert_eq!(receiver.seen_at("/up").len(), 1);
    // A preflight needs no token.
    let response = client
        .request(Method::OPTIONS, format!("{}/v2/publish/x", qstash.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let hook = receiver.url("/hook");
    for (name, value, says) in [
        ("upstash-timeout", "0", "timeout"),
        (
            "upstash-content-based-deduplication",
            "yes",
            "deduplication",
        ),
        (
            "upstash-flow-control-key",
            "k",
            "Upstash-Flow-Control-Value",
        ),
    ] {
        let (status, answer) = api
            .send(
                api.request(Method::POST, &format!("/v2/publish/{hook}"))
                    .header(name, value),
            )
            .await;
        assert_eq!(status, 400, "{name}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    let (status, answer) = api
        .send(
            api.request(Method::POST, "/v2/queues")
                .body(json!({ "queueName": "q", "parallelism": 0 }).to_string()),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test]
async fn flow_control_holds_parallelism_and_rate_per_key() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let key = ("upstash-flow-control-key", "tenant-1");
    // Parallelism 1: one at a time, every one delivered.
    for _ in 0..3 {
        publish(
            &api,
            &receiver.url("/one"),
            &[key, ("upstash-flow-control-value", "parallelism=1")],
        )
        .await;
    }
    qstash.run_due().await;
    assert_eq!(receiver.seen_at("/one").len(), 3);
    assert_eq!(receiver.max_in_flight(), 1);

    // Rate 2 per 10 s: two now, two when the window ends, the last one after that.
    let rated = ("upstash-flow-control-key", "tenant-2");
    let value = ("upstash-flow-control-value", "rate=2, period=10s");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(publish(&api, &receiver.url("/rated"), &[rated, value]).await);
    }
    qstash.run_due().await;
    assert_eq!(receiver.seen_at("/rated").len(), 2);
    let (_, info) = api
        .send(api.request(Method::GET, "/v2/flowControl/tenant-2"))
        .await;
    assert_eq!(info["waitListSize"], 3, "{info}");
    assert_eq!(
        (info["rateMax"].as_u64(), info["ratePeriod"].as_u64()),
        (Some(2), Some(10))
    );
    let (_, view) = api
        .send(api.request(Method::GET, &format!("/v2/messages/{}", ids[4])))
        .await;
    assert_eq!(view["flowControlKey"], "tenant-2");
    assert_eq!(
        (view["rate"].as_u64(), view["period"].as_u64()),
        (Some(2), Some(10))
    );
    qstash.advance(Duration::from_millis(9_999)).await;
    assert_eq!(
        receiver.seen_at("/rated").len(),
        2,
        "not before the window ends"
    );
    qstash.advance(Duration::from_millis(1)).await;
    assert_eq!(receiver.seen_at("/rated").len(), 4);
    qstash.advance(Duration::from_secs(10)).await;
    assert_eq!(receiver.seen_at("/rated").len(), 5);

    // Pause holds the key's messages; resume lets them go; cancel filters by key.
    api.send(api.request(Method::POST, "/v2/flowControl/tenant-2/pause"))
        .await;
    let held = publish(&api, &receiver.url("/held"), &[rated, value]).await;
    qstash.advance(Duration::from_millis(1)).await;
    publish(&api, &receiver.url("/held"), &[rated, value]).await;
    qstash.advance(Duration::from_secs(60)).await;
    assert!(receiver.seen_at("/held").is_empty());
    let (_, info) = api
        .send(api.request(Method::GET, "/v2/flowControl/tenant-2"))
        .await;
    assert_eq!(info["isPaused"], true);
    let (_, answer) = api
        .send(api.request(
            Method::DELETE,
            "/v2/messages?flowControlKey=tenant-2&count=1",
        ))
        .await;
    assert_eq!(answer["cancelled"], 1);
    assert!(!qstash.engine().pending().contains(&held), "oldest first");
    api.send(api.request(Method::POST, "/v2/flowControl/tenant-2/resume"))
        .await;
    qstash.run_due().await;
    assert_eq!(receiver.seen_at("/held").len(), 1);

    // A pinned parallelism wins over the messages'.
    api.send(api.request(Method::POST, "/v2/flowControl/tenant-2/pin?parallelism=3"))
        .await;
    publish(
        &api,
        &receiver.url("/one"),
        &[rated, ("upstash-flow-control-value", "parallelism=1")],
    )
    .await;
    let (_, info) = api
        .send(api.request(Method::GET, "/v2/flowControl/tenant-2"))
        .await;
    assert_eq!(
        (
            info["parallelismMax"].as_u64(),
            info["isPinnedParallelism"].as_bool()
        ),
        (Some(3), Some(true))
    );
    let (status, global) = api
        .send(api.request(Method::GET, "/v2/globalParallelism"))
        .await;
    assert_eq!(
        (status, global["parallelismMax"].as_u64()),
        (200, Some(256))
    );
    let (status, _) = api
        .send(api.request(Method::GET, "/v2/flowControl/nobody"))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_hanging_destination_cannot_hold_up_another() {
    let other = Receiver::start().await;
    // A destination that accepts connections and never answers, until told to stop.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging = format!("http://{}/hang", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut held = Vec::new();
        tokio::select! {
            () = async {
                loop {
                    if let Ok((socket, _)) = listener.accept().await {
                        held.push(socket);
                    }
                }
            } => {}
            _ = stopped => {}
        }
    });
    let mut limits = Limits::default();
    limits.in_flight = 2;
    limits.in_flight_per_destination = 1;
    let qstash = LocalQStash::builder()
        .manual_clock(START_MS)
        .config(Config::new().with_limits(limits))
        .start()
        .await
        .unwrap();
    let api = Api::new(&qstash);
    for _ in 0..3 {
        publish(&api, &hanging, &[("upstash-retries", "0")]).await;
    }
    publish(&api, &other.url("/fine"), &[]).await;
    let engine = qstash.engine().clone();
    let run = tokio::spawn(async move { engine.advance_to(START_MS).await });
    // Bounded polling for the other destination's delivery (a safety net, not a wait).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while other.seen_at("/fine").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other destination waited for the hanging one"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        qstash.attempts().iter().all(|a| a.url.ends_with("/fine")),
        "delivered while every hanging attempt was still under way"
    );
    stop.send(()).unwrap();
    assert_eq!(run.await.unwrap(), 4);
}

#[tokio::test]
async fn a_partial_request_head_is_not_kept_open() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let qstash = LocalQStash::builder()
        .manual_clock(START_MS)
        .header_read_timeout(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let mut socket = tokio::net::TcpStream::connect(qstash.addr()).await.unwrap();
    socket
        .write_all(b"GET /v2/keys HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    // The server closes it; 10 s is a safety net against a server that never does.
    let closed = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection was kept open");
}
