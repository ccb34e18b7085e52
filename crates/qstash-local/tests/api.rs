//! The HTTP API's answers as the official clients expect them: auth, errors, shapes.

#![allow(clippy::unwrap_used)]

mod support;

use http::Method;
use qstash_local::DEV_TOKEN;
use qstash_receiver::{keys::DEV_CURRENT_SIGNING_KEY, keys::DEV_NEXT_SIGNING_KEY};
use support::{Api, Receiver, qstash};

#[tokio::test]
async fn the_dev_token_is_required_as_bearer_or_query() {
    let qstash = qstash().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v2/keys", qstash.url());
    let cases = [
        (client.get(&url), 401),
        (client.get(&url).bearer_auth("wrong"), 401),
        (client.get(&url).header("authorization", DEV_TOKEN), 401),
        (client.get(&url).bearer_auth(DEV_TOKEN), 200),
        (client.get(format!("{url}?qstash_token={DEV_TOKEN}")), 200),
    ];
    for (n, (request, want)) in cases.into_iter().enumerate() {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), want, "case {n}");
        let json: serde_json::Value = response.json_text().await;
        if want == 401 {
            assert!(json["error"].is_string(), "case {n}: {json}");
            assert!(!json.to_string().contains(DEV_TOKEN));
        } else {
            assert_eq!(json["current"], DEV_CURRENT_SIGNING_KEY);
            assert_eq!(json["next"], DEV_NEXT_SIGNING_KEY);
        }
    }
}

trait JsonText {
    async fn json_text(self) -> serde_json::Value;
}

impl JsonText for reqwest::Response {
    async fn json_text(self) -> serde_json::Value {
        serde_json::from_str(&self.text().await.unwrap()).unwrap()
    }
}

#[tokio::test]
async fn bad_input_gets_qstashs_kind_of_answer() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let hook = receiver.url("/hook");
    let publish = |headers: &[(&'static str, &'static str)]| {
        let mut request = api
            .request(Method::POST, &format!("/v2/publish/{hook}"))
            .body("x");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "bad delay",
            publish(&[("Upstash-Delay", "soon")]),
            400,
            "upstash-delay",
        ),
        (
            "bad retries",
            publish(&[("Upstash-Retries", "many")]),
            400,
            "upstash-retries",
        ),
        (
            "bad method",
            publish(&[("Upstash-Method", "BREW")]),
            400,
            "upstash-method",
        ),
        (
            "bad retry delay",
            publish(&[("Upstash-Retry-Delay", "pow(2,")]),
            400,
            "upstash-retry-delay",
        ),
        (
            "bad callback",
            publish(&[("Upstash-Callback", "nowhere")]),
            400,
            "upstash-callback",
        ),
        (
            "bad destination",
            api.request(Method::POST, "/v2/publish/ftp://example.com/x"),
            400,
            "invalid",
        ),
        (
            "not a name",
            api.request(Method::POST, "/v2/publish/no spaces"),
            400,
            "invalid destination",
        ),
        (
            "unknown group",
            api.request(Method::POST, "/v2/publish/nobody"),
            404,
            "nobody",
        ),
        (
            "unknown message",
            api.request(Method::GET, "/v2/messages/msg_nope"),
            404,
            "msg_nope",
        ),
        (
            "cancel unknown",
            api.request(Method::DELETE, "/v2/messages/msg_nope"),
            404,
            "msg_nope",
        ),
        (
            "unknown dlq",
            api.request(Method::GET, "/v2/dlq/1-1"),
            404,
            "1-1",
        ),
        (
            "unknown schedule",
            api.request(Method::GET, "/v2/schedules/scd_x"),
            404,
            "scd_x",
        ),
        (
            "unknown queue",
            api.request(Method::GET, "/v2/queues/q"),
            404,
            "q",
        ),
        (
            "unknown route",
            api.request(Method::GET, "/v2/nothing"),
            404,
            "no route",
        ),
        (
            "too large",
            api.request(Method::POST, &format!("/v2/publish/{hook}"))
                .body(vec![b'a'; (1 << 20) + 1]),
            413,
            "1 MiB",
        ),
        (
            "batch not json",
            api.request(Method::POST, "/v2/batch").body("[{"),
            400,
            "JSON",
        ),
        (
            "cron missing",
            api.request(Method::POST, &format!("/v2/schedules/{hook}")),
            400,
            "Upstash-Cron",
        ),
        (
            "cron bad",
            api.request(Method::POST, &format!("/v2/schedules/{hook}"))
                .header("Upstash-Cron", "every day"),
            400,
            "Upstash-Cron",
        ),
        (
            "cron zone",
            api.request(Method::POST, &format!("/v2/schedules/{hook}"))
                .header("Upstash-Cron", "CRON_TZ=Europe/Berlin 0 9 * * *"),
            400,
            "UTC",
        ),
    ];
    for (name, request, status, says) in cases {
        let (got, json) = api.send(request).await;
        assert_eq!(got, status, "{name}: {json}");
        let error = json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {json}"));
        assert!(error.contains(says), "{name}: {error}");
    }
    assert!(receiver.seen().is_empty());
    assert!(qstash.engine().pending().is_empty());
}

#[tokio::test]
async fn publish_batch_and_keys_answer_the_clients_shapes() {
    let receiver = Receiver::start().await;
    let qstash = qstash().await;
    let api = Api::new(&qstash);
    let hook = receiver.url("/hook");
    // The destination's own query is the request's, less ours.
    let (status, answer) = api
        .send(
            api.request(Method::POST, &format!("/v2/publish/{hook}?a=1&b=two"))
                .header("Content-Type", "text/plain")
                .body("q"),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(answer["url"], format!("{hook}?a=1&b=two"));
    assert!(answer["messageId"].as_str().unwrap().starts_with("msg_"));
    let (status, answer) = api
        .send(
            api.request(Method::POST, "/v2/batch").body(
                serde_json::json!([
                    {"destination": hook, "headers": {"Upstash-Delay": "10s"}, "body": "1"},
                    {"destination": hook, "headers": {}, "body": null, "queue": null},
                    {"destination": hook, "queue": "batchq", "body": "3"},
                ])
                .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer.as_array().unwrap().len(), 3);
    qstash.run_due().await;
    let seen = receiver.seen_at("/hook");
    assert_eq!(seen.len(), 3, "the delayed one waits");
    assert_eq!(support::header(&seen[0], "content-type"), "text/plain");
    // A duplicate answers 202 with the first message's id.
    let dedupe = || {
        api.request(Method::POST, &format!("/v2/publish/{hook}"))
            .header("Upstash-Deduplication-Id", "d1")
            .body("x")
    };
    let (first, one) = api.send(dedupe()).await;
    let (second, two) = api.send(dedupe()).await;
    assert_eq!((first, second), (201, 202));
    assert_eq!(one["messageId"], two["messageId"]);
    assert_eq!(two["deduplicated"], true);
    // The Go client's rotate path answers the keys (the dev keys never change).
    let (status, keys) = api.send(api.request(Method::POST, "/v2/rotate")).await;
    assert_eq!(
        (status, keys["current"].as_str()),
        (200, Some(DEV_CURRENT_SIGNING_KEY))
    );
    let (_, events) = api
        .send(api.request(Method::GET, "/v2/events?state=DELIVERED&count=2"))
        .await;
    assert_eq!(events["events"].as_array().unwrap().len(), 2);
    assert_eq!(events["cursor"], "2");
    assert_eq!(events["events"][0]["state"], "DELIVERED");
}
