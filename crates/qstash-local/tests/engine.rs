//! The delivery engine on a manual clock: retries and backoff, the DLQ, callbacks, delays,
//! deduplication windows, cron, queues, cancel. Nothing sleeps: the tests move the clock.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use qstash_local::{MessageKind, Publish, RetryReason, Verdict};
use qstash_receiver::{Callback, retry};
use support::{Api, Receiver, START_MS, assert_signed_for, header, qstash};

fn h(name: &'static str, value: &'static str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    )
}

fn publish(url: &str, body: &'static str, headers: &[(&'static str, &'static str)]) -> Publish {
    let mut publish = Publish::new(url, body);
    for (name, value) in headers {
        let (name, value) = h(name, value);
        publish = publish.header(name, value);
    }
    publish
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

#[tokio::test]
async fn retries_follow_qstashs_backoff_then_the_dlq_and_the_failure_callback() {
    let receiver = Receiver::start().await;
    receiver.script("/hook", vec![(500, vec![], "boom"); 4]);
    let qstash = qstash().await;
    let url = receiver.url("/hook");
    let failure = receiver.url("/failed");
    let answer = qstash
        .engine()
        .publish(publish(
            &url,
            r#"{"order":1}"#,
            &[
                ("content-type", "application/json"),
                (
                    "upstash-failure-callback",
                    Box::leak(failure.clone().into_boxed_str()),
                ),
                ("upstash-forward-x-team", "blue"),
            ],
        ))
        .unwrap();
    let id = answer.messages()[0].message_id.clone();
    assert_eq!(
        qstash.attempts().len(),
        0,
        "nothing happens before the clock moves"
    );
    assert_eq!(qstash.run_due().await, 1);
    // Each retry falls due exactly retry::backoff(n) after the previous attempt.
    let mut at = START_MS;
    for n in 1..=3 {
        let wait = ms(retry::backoff(n));
        qstash.advance(Duration::from_millis(wait - 1)).await;
        assert_eq!(
            qstash.attempts().len() as u32,
            n,
            "retry {n} not before its time"
        );
        qstash.advance(Duration::from_millis(1)).await;
        at += wait;
        let attempts = qstash.attempts();
        let last = attempts
            .iter()
            .rfind(|a| a.kind == MessageKind::Message)
            .unwrap();
        assert_eq!((last.retried, last.at_ms), (n, at), "retry {n}");
    }
    let attempts: Vec<_> = qstash
        .attempts()
        .into_iter()
        .filter(|a| a.kind == MessageKind::Message)
        .collect();
    let verdicts: Vec<_> = attempts.iter().map(|a| a.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Retry {
                after: retry::backoff(1),
                reason: RetryReason::Backoff(1)
            },
            Verdict::Retry {
                after: retry::backoff(2),
                reason: RetryReason::Backoff(2)
            },
            Verdict::Retry {
                after: retry::backoff(3),
                reason: RetryReason::Backoff(3)
            },
            Verdict::NoRetriesLeft,
        ]
    );
    let deliveries = receiver.seen_at("/hook");
    assert_eq!(deliveries.len(), 4);
    for (n, seen) in deliveries.iter().enumerate() {
        assert_signed_for(seen, &url);
        assert_eq!(header(seen, "upstash-message-id"), id);
        assert_eq!(header(seen, "upstash-retried"), n.to_string());
        assert_eq!(header(seen, "user-agent"), "Upstash-QStash");
        assert_eq!(header(seen, "content-type"), "application/json");
        assert_eq!(header(seen, "x-team"), "blue");
        assert!(!seen.headers.contains_key("upstash-forward-x-team"));
    }
    let dlq = qstash.dead_letters();
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        (dlq[0].message_id.as_str(), dlq[0].response_status),
        (id.as_str(), Some(500))
    );
    assert_eq!(&dlq[0].response_body[..], b"boom");
    // The failure callback went out at once, signed for its own URL, and parses.
    let callbacks = receiver.seen_at("/failed");
    assert_eq!(callbacks.len(), 1);
    assert_signed_for(&callbacks[0], &failure);
    assert_eq!(header(&callbacks[0], "content-type"), "application/json");
    let callback = Callback::from_slice(&callbacks[0].body).unwrap();
    assert_eq!(callback.status, 500);
    assert_eq!((callback.retried, callback.max_retries), (3, Some(3)));
    assert!(callback.is_last_attempt());
    assert_eq!(callback.source_message_id.as_deref(), Some(id.as_str()));
    assert_eq!(callback.url.as_deref(), Some(url.as_str()));
    assert_eq!(&callback.body[..], b"boom");
    assert_eq!(&callback.source_body[..], br#"{"order":1}"#);
    assert_eq!(callback.source_header["X-Team"], ["blue"]);
    assert_eq!(callback.dlq_id.as_deref(), Some(dlq[0].dlq_id.as_str()));
    assert_eq!(callback.created_at, Some(START_MS as i64));
    // The events tell the same story.
    let states: Vec<_> = qstash
        .events()
        .iter()
        .filter(|e| e.message_id == id)
        .map(|e| e.state.as_str())
        .collect();
    assert_eq!(
        states,
        [
            "CREATED", "ACTIVE", "ERROR", "RETRY", "ERROR", "RETRY", "ERROR", "RETRY", "ERROR",
            "FAILED"
        ]
    );
}

#[tokio::test]
async fn non_retryable_489_goes_to_the_dlq_at_once_and_a_plain_489_is_retried() {
    let receiver = Receiver::start().await;
    receiver.script(
        "/final",
        vec![(489, vec![("upstash-nonretryable-error", "true")], "no")],
    );
    receiver.script("/plain", vec![(489, vec![], "maybe")]);
    let qstash = qstash().await;
    qstash
        .engine()
        .publish(publish(&receiver.url("/final"), "x", &[]))
        .unwrap();
    qstash
        .engine()
        .publish(publish(&receiver.url("/plain"), "x", &[]))
        .unwrap();
    qstash.advance(Duration::from_secs(3600)).await;
    assert_eq!(receiver.seen_at("/final").len(), 1);
    assert_eq!(
        receiver.seen_at("/plain").len(),
        2,
        "retried once, then delivered"
    );
    let dlq = qstash.dead_letters();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].response_status, Some(489));
    let verdicts: Vec<_> = qstash
        .attempts()
        .iter()
        .map(|a| (a.url.clone(), a.verdict))
        .collect();
    assert!(
        verdicts.contains(&(receiver.url("/final"), Verdict::NonRetryable)),
        "{verdicts:?}"
    );
}

#[tokio::test]
async fn retry_after_rate_limits_and_the_retry_delay_expression_set_the_wait() {
    let receiver = Receiver::start().await;
    receiver.script(
        "/limited",
        vec![
            (503, vec![("retry-after", "7")], ""),
            (429, vec![("x-ratelimit-reset-requests", "2m5s")], ""),
        ],
    );
    receiver.script("/expr", vec![(500, vec![], ""); 3]);
    let qstash = qstash().await;
    qstash
        .engine()
        .publish(publish(&receiver.url("/limited"), "x", &[]))
        .unwrap();
    qstash
        .engine()
        .publish(publish(
            &receiver.url("/expr"),
            "x",
            &[
                ("upstash-retry-delay", "pow(2, retried) * 1000"),
                ("upstash-retries", "3"),
            ],
        ))
        .unwrap();
    qstash.advance(Duration::from_secs(600)).await;
    let at = |path: &str| -> Vec<u64> {
        qstash
            .attempts()
            .iter()
            .filter(|a| a.url == receiver.url(path))
            .map(|a| (a.at_ms - START_MS) / 1000)
            .collect()
    };
    assert_eq!(at("/limited"), [0, 7, 7 + 125]);
    // 1 s, 2 s, 4 s after the attempts with retried = 0, 1, 2.
    assert_eq!(at("/expr"), [0, 1, 3, 7]);
}

#[tokio::test]
async fn success_callbacks_are_signed_parse_and_retry_by_their_own_settings() {
    let receiver = Receiver::start().await;
    receiver.script("/hook", vec![(201, vec![("x-answer", "42")], "created")]);
    receiver.script("/callback", vec![(500, vec![], ""), (500, vec![], "")]);
    let qstash = qstash().await;
    let callback_url = receiver.url("/callback");
    let id = qstash
        .engine()
        .publish(publish(
            &receiver.url("/hook"),
            "hello",
            &[
                (
                    "upstash-callback",
                    Box::leak(callback_url.clone().into_boxed_str()),
                ),
                ("upstash-callback-retries", "1"),
                ("upstash-callback-forward-x-callback-secret", "s3"),
                ("upstash-callback-delay", "5s"),
            ],
        ))
        .unwrap()
        .messages()[0]
        .message_id
        .clone();
    qstash.run_due().await;
    assert!(
        receiver.seen_at("/callback").is_empty(),
        "the callback waits its delay"
    );
    qstash.advance(Duration::from_secs(5)).await;
    qstash.advance(Duration::from_secs(13)).await;
    let callbacks = receiver.seen_at("/callback");
    assert_eq!(
        callbacks.len(),
        2,
        "one retry, as Upstash-Callback-Retries says"
    );
    for seen in &callbacks {
        assert_signed_for(seen, &callback_url);
        assert_eq!(header(seen, "x-callback-secret"), "s3");
        assert_ne!(header(seen, "upstash-message-id"), id);
        let callback = Callback::from_slice(&seen.body).unwrap();
        assert_eq!(callback.status, 201);
        assert_eq!(&callback.body[..], b"created");
        assert_eq!(callback.header_value("X-Answer"), Some("42"));
        assert_eq!(callback.source_message_id.as_deref(), Some(id.as_str()));
        assert_eq!((callback.retried, callback.max_retries), (0, Some(3)));
        assert_eq!(callback.method.as_deref(), Some("POST"));
    }
    // The callback that failed for good is dead-lettered like any message.
    let dlq = qstash.dead_letters();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].url, callback_url);
    let kinds: Vec<_> = qstash.attempts().iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            MessageKind::Message,
            MessageKind::Callback,
            MessageKind::Callback
        ]
    );
}

#[tokio::test]
async fn delays_and_not_before_hold_a_message_until_its_time() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    qstash
        .engine()
        .publish(publish(
            &receiver.url("/delayed"),
            "x",
            &[("upstash-delay", "1h30m")],
        ))
        .unwrap();
    let not_before = (START_MS / 1000 + 86_400).to_string();
    qstash
        .engine()
        .publish(publish(
            &receiver.url("/later"),
            "x",
            &[("upstash-not-before", Box::leak(not_before.into_boxed_str()))],
        ))
        .unwrap();
    qstash.advance(Duration::from_secs(5399)).await;
    assert!(receiver.seen().is_empty());
    qstash.advance(Duration::from_secs(1)).await;
    assert_eq!(receiver.seen_at("/delayed").len(), 1);
    qstash.advance(Duration::from_secs(86_400 - 5401)).await;
    assert!(receiver.seen_at("/later").is_empty());
    qstash.advance(Duration::from_secs(1)).await;
    assert_eq!(receiver.seen_at("/later").len(), 1);
    assert_eq!(qstash.now_ms(), START_MS + 86_400_000);
}

#[tokio::test]
async fn deduplication_ids_and_content_hold_for_their_window() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let url = receiver.url("/hook");
    let by_id = || publish(&url, "a", &[("upstash-deduplication-id", "order-1")]);
    let first = qstash.engine().publish(by_id()).unwrap().messages()[0].clone();
    assert!(!first.deduplicated);
    qstash.advance(Duration::from_secs(599)).await;
    let again = qstash.engine().publish(by_id()).unwrap().messages()[0].clone();
    assert!(again.deduplicated);
    assert_eq!(again.message_id, first.message_id);
    qstash.advance(Duration::from_secs(1)).await;
    let later = qstash.engine().publish(by_id()).unwrap().messages()[0].clone();
    assert!(!later.deduplicated, "the window is 10 minutes");
    assert_ne!(later.message_id, first.message_id);
    // Content-based: same destination, body and headers; a different body is new.
    let content = |body: &'static str| {
        publish(
            &url,
            body,
            &[("upstash-content-based-deduplication", "true")],
        )
    };
    let one = qstash.engine().publish(content("same")).unwrap().messages()[0].clone();
    let two = qstash.engine().publish(content("same")).unwrap().messages()[0].clone();
    let other = qstash
        .engine()
        .publish(content("other"))
        .unwrap()
        .messages()[0]
        .clone();
    assert!(!one.deduplicated && two.deduplicated && !other.deduplicated);
    assert_eq!(one.message_id, two.message_id);
    qstash.run_due().await;
    assert_eq!(
        receiver.seen_at("/hook").len(),
        4,
        "first, later, one, other"
    );
}

#[tokio::test]
async fn cron_schedules_fire_on_time_and_stop_when_paused() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let url = receiver.url("/tick");
    let (status, created) = api
        .send(
            api.request(Method::POST, &format!("/v2/schedules/{url}"))
                .header("Upstash-Cron", "*/5 * * * *")
                .header("Upstash-Forward-X-Kind", "tick")
                .body("tick"),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let schedule_id = created["scheduleId"].as_str().unwrap().to_owned();
    assert!(schedule_id.starts_with("scd_"));
    qstash.advance(Duration::from_secs(15 * 60)).await;
    let ticks: Vec<u64> = qstash
        .attempts()
        .iter()
        .map(|a| (a.at_ms - START_MS) / 60_000)
        .collect();
    assert_eq!(ticks, [5, 10, 15]);
    for seen in receiver.seen_at("/tick") {
        assert_eq!(header(&seen, "upstash-schedule-id"), schedule_id);
        assert_eq!(header(&seen, "x-kind"), "tick");
        assert_signed_for(&seen, &url);
    }
    // The Go client's spelling.
    let (status, _) = api
        .send(api.request(Method::PATCH, &format!("/v2/Schedules/{schedule_id}/pause")))
        .await;
    assert_eq!(status, 200);
    qstash.advance(Duration::from_secs(3600)).await;
    assert_eq!(receiver.seen_at("/tick").len(), 3, "paused");
    let (_, listed) = api.send(api.request(Method::GET, "/v2/schedules")).await;
    assert_eq!(listed[0]["isPaused"], true);
    assert_eq!(listed[0]["cron"], "*/5 * * * *");
    api.send(api.request(Method::POST, &format!("/v2/schedules/{schedule_id}/resume")))
        .await;
    qstash.advance(Duration::from_secs(5 * 60)).await;
    assert_eq!(receiver.seen_at("/tick").len(), 4, "resumed");
    let (status, _) = api
        .send(api.request(Method::DELETE, &format!("/v2/schedules/{schedule_id}")))
        .await;
    assert_eq!(status, 200);
    qstash.advance(Duration::from_secs(3600)).await;
    assert_eq!(receiver.seen_at("/tick").len(), 4, "deleted");
}

#[tokio::test]
async fn a_queue_with_parallelism_one_delivers_in_order_one_at_a_time() {
    let receiver = Receiver::start().await;
    // The second message fails once: the third must wait for its retry.
    receiver.script("/q", vec![(200, vec![], ""), (500, vec![], "")]);
    let qstash = qstash().await;
    qstash.engine().upsert_queue("orders", 1, false).unwrap();
    let mut ids = Vec::new();
    for n in 0..4 {
        let mut message = publish(
            &receiver.url("/q"),
            Box::leak(n.to_string().into_boxed_str()),
            &[],
        );
        message.queue = Some("orders".to_owned());
        ids.push(
            qstash.engine().publish(message).unwrap().messages()[0]
                .message_id
                .clone(),
        );
    }
    qstash.advance(Duration::from_secs(60)).await;
    let order: Vec<String> = receiver
        .seen_at("/q")
        .iter()
        .map(|s| String::from_utf8(s.body.clone()).unwrap())
        .collect();
    assert_eq!(order, ["0", "1", "1", "2", "3"]);
    assert_eq!(receiver.max_in_flight(), 1);
    assert!(
        qstash
            .attempts()
            .iter()
            .all(|a| a.queue_in_flight == Some(1))
    );
}

#[tokio::test]
async fn a_queue_with_parallelism_three_delivers_three_at_once() {
    let receiver = Receiver::start().await;
    receiver.barrier(3);
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let (status, _) = api
        .send(
            api.request(Method::POST, "/v2/queues")
                .body(serde_json::json!({"queueName": "wide", "parallelism": 3}).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    for n in 0..6 {
        let (status, _) = api
            .send(
                api.request(
                    Method::POST,
                    &format!("/v2/enqueue/wide/{}", receiver.url("/wait")),
                )
                .body(n.to_string()),
            )
            .await;
        assert_eq!(status, 201);
    }
    qstash.run_due().await;
    // The barrier of 3 opens only when three requests are in flight together.
    assert_eq!(receiver.seen_at("/wait").len(), 6);
    assert_eq!(receiver.max_in_flight(), 3);
    let widths: Vec<_> = qstash
        .attempts()
        .iter()
        .filter_map(|a| a.queue_in_flight)
        .collect();
    assert_eq!(widths.iter().max(), Some(&3));
    let (_, queue) = api.send(api.request(Method::GET, "/v2/queues/wide")).await;
    assert_eq!(
        (queue["parallelism"].as_u64(), queue["lag"].as_u64()),
        (Some(3), Some(0))
    );
}

#[tokio::test]
async fn cancelled_messages_are_never_delivered() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, answer) = api
            .send(
                api.request(Method::POST, &format!("/v2/publish/{}", receiver.url("/c")))
                    .header("Upstash-Delay", "1m")
                    .body("x"),
            )
            .await;
        ids.push(answer["messageId"].as_str().unwrap().to_owned());
    }
    let (status, message) = api
        .send(api.request(Method::GET, &format!("/v2/messages/{}", ids[0])))
        .await;
    assert_eq!(status, 200);
    assert_eq!(message["body"], "x");
    assert_eq!(message["notBefore"], START_MS + 60_000);
    let (status, answer) = api
        .send(api.request(Method::DELETE, &format!("/v2/messages/{}", ids[0])))
        .await;
    assert_eq!((status, answer["cancelled"].as_u64()), (200, Some(1)));
    let (status, _) = api
        .send(api.request(Method::GET, &format!("/v2/messages/{}", ids[0])))
        .await;
    assert_eq!(status, 404);
    let (_, answer) = api
        .send(api.request(
            Method::DELETE,
            &format!("/v2/messages?messageIds={}", ids[1]),
        ))
        .await;
    assert_eq!(answer["cancelled"], 1);
    let (_, answer) = api.send(api.request(Method::DELETE, "/v2/messages")).await;
    assert_eq!(answer["cancelled"], 1, "all: the one left");
    qstash.advance(Duration::from_secs(3600)).await;
    assert!(receiver.seen().is_empty());
    let canceled = qstash
        .events()
        .iter()
        .filter(|e| e.state.as_str() == "CANCELED")
        .count();
    assert_eq!(canceled, 3);
}

#[tokio::test]
async fn a_url_group_fans_out_with_the_topic_name() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let (status, _) = api
        .send(api.request(Method::POST, "/v2/topics/team/endpoints").body(serde_json::json!({
            "endpoints": [{"name": "a", "url": receiver.url("/a")}, {"url": receiver.url("/b")}]
        }).to_string()))
        .await;
    assert_eq!(status, 200);
    let (status, answer) = api
        .send(api.request(Method::POST, "/v2/publish/team").body("fan"))
        .await;
    assert_eq!(status, 201);
    assert_eq!(answer.as_array().unwrap().len(), 2);
    qstash.run_due().await;
    for path in ["/a", "/b"] {
        let seen = receiver.seen_at(path);
        assert_eq!(seen.len(), 1, "{path}");
        assert_eq!(header(&seen[0], "upstash-topic-name"), "team");
        assert_eq!(header(&seen[0], "upstash-caller-ip"), "127.0.0.1");
        assert_signed_for(&seen[0], &receiver.url(path));
    }
    let (_, group) = api.send(api.request(Method::GET, "/v2/topics/team")).await;
    assert_eq!(group["endpoints"][0]["name"], "a");
}

#[tokio::test]
async fn dlq_list_get_retry_and_delete() {
    let receiver = Receiver::start().await;
    receiver.script(
        "/dead",
        vec![(489, vec![("upstash-nonretryable-error", "true")], "gone"); 2],
    );
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    for _ in 0..2 {
        api.send(
            api.request(
                Method::POST,
                &format!("/v2/publish/{}", receiver.url("/dead")),
            )
            .body("d"),
        )
        .await;
    }
    qstash.run_due().await;
    let (_, list) = api.send(api.request(Method::GET, "/v2/dlq")).await;
    let messages = list["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["responseStatus"], 489);
    assert_eq!(messages[0]["responseBody"], "gone");
    let first = messages[0]["dlqId"].as_str().unwrap().to_owned();
    let second = messages[1]["dlqId"].as_str().unwrap().to_owned();
    let (status, one) = api
        .send(api.request(Method::GET, &format!("/v2/dlq/{first}")))
        .await;
    assert_eq!((status, one["body"].as_str()), (200, Some("d")));
    let (status, retried) = api
        .send(api.request(Method::POST, &format!("/v2/dlq/retry?dlqIds={first}")))
        .await;
    assert_eq!(status, 201);
    assert!(
        retried["responses"][0]["messageId"]
            .as_str()
            .unwrap()
            .starts_with("msg_")
    );
    qstash.run_due().await;
    assert_eq!(
        receiver.seen_at("/dead").len(),
        3,
        "the retried one delivered (200 now)"
    );
    let (_, deleted) = api
        .send(
            api.request(Method::DELETE, "/v2/dlq")
                .body(serde_json::json!({"dlqIds": [second]}).to_string()),
        )
        .await;
    assert_eq!(deleted["deleted"], 1);
    let (status, _) = api
        .send(api.request(Method::GET, &format!("/v2/dlq/{second}")))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn on_the_system_clock_the_driver_wakes_for_each_due_time() {
    let receiver = Receiver::start().await;
    receiver.script(
        "/real",
        vec![(500, vec![], ""), (503, vec![("retry-after", "1")], "")],
    );
    // Scale 0: every retry is due at once; the driver must still be woken for each.
    let config = qstash_local::Config::new().with_delay_scale(0.0);
    let qstash = qstash_local::LocalQStash::builder()
        .config(config)
        .start()
        .await
        .unwrap();
    qstash
        .engine()
        .publish(publish(&receiver.url("/real"), "x", &[]))
        .unwrap();
    qstash.engine().settled().await;
    let verdicts: Vec<_> = qstash.attempts().iter().map(|a| a.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Retry {
                after: Duration::ZERO,
                reason: RetryReason::Backoff(1)
            },
            Verdict::Retry {
                after: Duration::ZERO,
                reason: RetryReason::AnswerAsked(Duration::from_secs(1))
            },
            Verdict::Delivered,
        ]
    );
    assert!(qstash.engine().pending().is_empty());
}
