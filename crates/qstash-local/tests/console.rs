//! The console: its static shell is public and holds no data; its views sit behind the token
//! and tell a message's attempts, answers, next retry, DLQ id and callbacks.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use http::Method;
use qstash_local::DEV_TOKEN;
use support::{Api, Receiver, qstash};

#[tokio::test]
async fn the_shell_is_public_and_the_views_need_the_token() {
    let qstash = qstash().await;
    let client = reqwest::Client::new();
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let response = client
            .get(format!("{}{path}", qstash.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}: {headers:?}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        let text = response.text().await.unwrap();
        assert!(!text.contains(DEV_TOKEN), "{path} holds the token");
        // Nothing loaded from outside this origin.
        assert!(!text.contains("https://"), "{path} loads from outside");
    }
    for path in ["/v2/console/messages", "/v2/console/messages/msg_x"] {
        let response = client
            .get(format!("{}{path}", qstash.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{path}");
    }
    let api = Api::new(&qstash);
    let (status, json) = api
        .send(api.request(Method::GET, "/v2/console/nothing"))
        .await;
    assert_eq!(status, 404, "{json}");
}

#[tokio::test]
async fn a_refused_message_shows_its_attempts_next_retry_dlq_id_and_callbacks() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let refusal = (
        401,
        vec![("content-type", "text/plain; charset=utf-8")],
        "invalid QStash signature",
    );
    receiver.script("/hook", vec![refusal.clone(), refusal]);
    let hook = receiver.url("/hook");
    let (status, published) = api
        .send(
            api.request(Method::POST, &format!("/v2/publish/{hook}"))
                .header("Upstash-Retries", "1")
                .header("Upstash-Label", "billing")
                .header("Upstash-Failure-Callback", receiver.url("/failed"))
                .body(vec![0u8, 159, 146, 150]),
        )
        .await;
    assert_eq!(status, 201, "{published}");
    let id = published["messageId"].as_str().unwrap().to_owned();
    let other = receiver.url("/other");
    let (status, _) = api
        .send(
            api.request(Method::POST, &format!("/v2/publish/{other}"))
                .body("fine"),
        )
        .await;
    assert_eq!(status, 201);

    qstash.run_due().await;
    let (_, one) = api
        .send(api.request(Method::GET, &format!("/v2/console/messages/{id}")))
        .await;
    assert_eq!(one["state"], "RETRY", "{one}");
    assert_eq!(one["label"], "billing");
    let attempts = one["attemptList"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{one}");
    assert_eq!(attempts[0]["status"], 401);
    assert_eq!(attempts[0]["reason"], "invalid QStash signature");
    assert_eq!(attempts[0]["answerExcerpt"], "invalid QStash signature");
    assert_eq!(attempts[0]["outcome"], "retry");
    assert!(attempts[0]["durationMs"].is_u64(), "{one}");
    let next = attempts[0]["nextRetryAt"].as_u64().unwrap();
    assert!(next > qstash.now_ms(), "{one}");
    assert_eq!(one["nextDeliveryTime"].as_u64(), Some(next));
    // The request as sent, binary body intact.
    assert_eq!(one["request"]["bodyBase64"], "AJ+Slg==");
    assert!(
        one["request"]["header"]["Upstash-Signature"].is_array(),
        "{one}"
    );

    qstash.advance(Duration::from_secs(60)).await;
    let (_, one) = api
        .send(api.request(Method::GET, &format!("/v2/console/messages/{id}")))
        .await;
    assert_eq!(one["state"], "FAILED", "{one}");
    assert!(one["dlqId"].is_string(), "{one}");
    assert!(one.get("nextDeliveryTime").is_none(), "{one}");
    let attempts = one["attemptList"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1]["outcome"], "dlq");
    let callbacks = one["callbacks"].as_array().unwrap();
    assert_eq!(callbacks.len(), 1, "{one}");
    assert_eq!(callbacks[0]["kind"], "failureCallback");
    assert_eq!(callbacks[0]["state"], "DELIVERED");
    let callback_id = callbacks[0]["messageId"].as_str().unwrap();
    let (_, callback) = api
        .send(api.request(Method::GET, &format!("/v2/console/messages/{callback_id}")))
        .await;
    assert_eq!(callback["sourceMessageId"], id.as_str(), "{callback}");

    // The list and its filters.
    let list = |query: &'static str| {
        let request = api.request(Method::GET, &format!("/v2/console/messages{query}"));
        async {
            let (status, json) = api.send(request).await;
            assert_eq!(status, 200, "{json}");
            json["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["messageId"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await.len(), 3);
    assert_eq!(list("?state=FAILED").await, [id.as_str()]);
    assert_eq!(list("?label=billing").await, [id.as_str()]);
    assert_eq!(list("?destination=/other").await.len(), 1);
    assert!(list("?queue=nope").await.is_empty());
    assert!(list("?label=other").await.is_empty());
    let (status, _) = api
        .send(api.request(Method::GET, "/v2/console/messages/msg_missing"))
        .await;
    assert_eq!(status, 404);
}
