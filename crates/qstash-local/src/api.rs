//! The HTTP API of QStash (`/v2/...`) over the [`Engine`], as the official clients call it.
//!
//! One handler routes by method and path itself: destinations are raw URLs inside the path
//! (`/v2/publish/https://example.com/hook?x=1`), which no path pattern captures whole, and
//! the Go client writes `/v2/Schedules`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::MAX_BODY_BYTES;
use crate::engine::{Engine, Publish, PublishAnswer, Published};
use crate::error::ApiError;

/// The axum router answering QStash's API for `engine`. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so deliveries carry the publisher's
/// address in `Upstash-Caller-Ip`.
pub fn router(engine: Arc<Engine>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(engine)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), json_headers(), self.body()).into_response()
    }
}

fn json_headers() -> [(HeaderName, HeaderValue); 1] {
    [(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )]
}

fn json_answer(status: StatusCode, value: &Value) -> Response {
    (status, json_headers(), value.to_string()).into_response()
}

fn ok(value: &Value) -> Response {
    json_answer(StatusCode::OK, value)
}

/// A request's query pairs, decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(',').map(str::to_owned))
            .filter(|v| !v.is_empty())
            .collect()
    }
}

fn authorized(engine: &Engine, headers: &HeaderMap, query: &Query) -> bool {
    let token = engine.config().token();
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    bearer == Some(token) || query.get("qstash_token") == Some(token)
}

async fn read_body(body: Body, headers: &HeaderMap) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::too_large())
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// The destination URL from the rest of the path and the query: the query less
/// `qstash_token` and `upstash-*` parameters belongs to the destination.
fn destination(rest: &str, raw_query: Option<&str>) -> String {
    let mut rest = rest.to_owned();
    let lower = rest.to_ascii_lowercase();
    if lower.starts_with("http%3a") || lower.starts_with("https%3a") {
        rest = url::form_urlencoded::parse(format!("d={rest}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or(rest);
    }
    // A proxy may have merged the double slash.
    for scheme in ["http:", "https:"] {
        if let Some(after) = rest.strip_prefix(scheme) {
            if after.starts_with('/') && !after.starts_with("//") {
                rest = format!("{scheme}/{after}");
            }
        }
    }
    let kept: Vec<&str> = raw_query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("").to_ascii_lowercase();
            name != "qstash_token" && !name.starts_with("upstash-")
        })
        .collect();
    if kept.is_empty() {
        rest
    } else {
        format!("{rest}?{}", kept.join("&"))
    }
}

fn published_json(published: &Published) -> Value {
    let mut value = json!({ "messageId": published.message_id, "url": published.url });
    if published.deduplicated {
        value["deduplicated"] = Value::Bool(true);
    }
    value
}

fn answer_json(answer: &PublishAnswer) -> Value {
    match answer {
        PublishAnswer::Url(one) => published_json(one),
        PublishAnswer::Group(many) => Value::Array(many.iter().map(published_json).collect()),
    }
}

fn publish_status(answer: &PublishAnswer) -> StatusCode {
    if answer.messages().iter().all(|p| p.deduplicated) && !answer.messages().is_empty() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    }
}

#[derive(Deserialize)]
struct BatchItem {
    destination: String,
    #[serde(default)]
    headers: Option<std::collections::BTreeMap<String, Value>>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    queue: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueBody {
    queue_name: String,
    #[serde(default)]
    parallelism: Option<usize>,
    #[serde(default)]
    paused: Option<bool>,
}

#[derive(Deserialize)]
struct EndpointItem {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct EndpointsBody {
    endpoints: Vec<EndpointItem>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct IdsBody {
    #[serde(default)]
    message_ids: Option<Vec<String>>,
    #[serde(default)]
    dlq_ids: Option<Vec<String>>,
}

fn header_map(pairs: &std::collections::BTreeMap<String, Value>) -> Result<HeaderMap, ApiError> {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ApiError::bad_request(format!("invalid header name {name:?}")))?;
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        let value = HeaderValue::from_str(&text)
            .map_err(|_| ApiError::bad_request(format!("invalid value of header {name}")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Every request goes through here.
async fn handle(State(engine): State<Arc<Engine>>, request: Request) -> Response {
    let caller_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    match route(&engine, caller_ip, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn route(
    engine: &Arc<Engine>,
    caller_ip: Option<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let raw_query = parts.uri.query().map(str::to_owned);
    let query = Query::parse(raw_query.as_deref());
    if !authorized(engine, &parts.headers, &query) {
        return Err(ApiError::unauthorized());
    }
    let path = parts.uri.path().to_owned();
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Err(ApiError::not_found(format!("no route {path}")));
    };
    let (resource, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let resource = resource.to_ascii_lowercase();
    let method = parts.method.clone();
    let headers = parts.headers;
    let body = read_body(body, &headers).await?;
    match (resource.as_str(), &method) {
        ("publish", &Method::POST) => {
            let answer = engine.publish(Publish {
                destination: destination(tail, raw_query.as_deref()),
                headers,
                body,
                queue: None,
                caller_ip,
            })?;
            Ok(json_answer(publish_status(&answer), &answer_json(&answer)))
        }
        ("enqueue", &Method::POST) => {
            let (queue, rest) = tail
                .split_once('/')
                .ok_or_else(|| ApiError::bad_request("use /v2/enqueue/{queue}/{destination}"))?;
            let answer = engine.publish(Publish {
                destination: destination(rest, raw_query.as_deref()),
                headers,
                body,
                queue: Some(queue.to_owned()),
                caller_ip,
            })?;
            Ok(json_answer(publish_status(&answer), &answer_json(&answer)))
        }
        ("batch", &Method::POST) => {
            let items: Vec<BatchItem> = parse_json(&body)?;
            let mut messages = Vec::with_capacity(items.len());
            for item in items {
                let item_headers = item.headers.as_ref().map(header_map).transpose()?;
                messages.push(Publish {
                    destination: item.destination,
                    headers: item_headers.unwrap_or_default(),
                    body: Bytes::from(item.body.unwrap_or_default()),
                    queue: item.queue.filter(|q| !q.is_empty()),
                    caller_ip: caller_ip.clone(),
                });
            }
            let answers = engine.publish_batch(messages)?;
            Ok(json_answer(
                StatusCode::CREATED,
                &Value::Array(answers.iter().map(answer_json).collect()),
            ))
        }
        ("messages", _) => messages(engine, &method, tail, &query, &body),
        ("dlq", _) => dlq(engine, &method, tail, &query, &body),
        ("schedules", _) => schedules(
            engine,
            &method,
            tail,
            raw_query.as_deref(),
            headers,
            body,
            caller_ip,
        ),
        ("queues", _) => queues(engine, &method, tail, &body),
        ("topics", _) => topics(engine, &method, tail, &body),
        ("keys" | "rotate", _) => {
            let (current, next) = engine.config().signing_keys();
            Ok(ok(&json!({ "current": current, "next": next })))
        }
        ("events" | "logs", &Method::GET) => Ok(ok(&events(engine, &query))),
        ("console", &Method::GET) => Ok(ok(&crate::console::view(
            engine,
            tail,
            raw_query.as_deref(),
        )?)),
        _ => Err(ApiError::not_found(format!("no route {method} {path}"))),
    }
}

fn ids_from(query: &Query, body: &[u8], name: &str) -> Result<Option<Vec<String>>, ApiError> {
    let from_query = query.all(name);
    if !from_query.is_empty() {
        return Ok(Some(from_query));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let parsed: IdsBody = parse_json(body)?;
    Ok(match name {
        "messageIds" => parsed.message_ids,
        _ => parsed.dlq_ids,
    })
}

fn messages(
    engine: &Engine,
    method: &Method,
    id: &str,
    query: &Query,
    body: &[u8],
) -> Result<Response, ApiError> {
    match (method, id) {
        (&Method::GET, id) if !id.is_empty() => Ok(ok(&engine.message_view(id)?)),
        (&Method::DELETE, id) if !id.is_empty() => {
            if engine.cancel(Some(&[id.to_owned()])) == 0 {
                return Err(ApiError::not_found(format!("message {id} not found")));
            }
            Ok(json_answer(StatusCode::OK, &json!({ "cancelled": 1 })))
        }
        (&Method::DELETE, "") => {
            let ids = ids_from(query, body, "messageIds")?;
            let cancelled = engine.cancel(ids.as_deref());
            Ok(ok(&json!({ "cancelled": cancelled })))
        }
        _ => Err(ApiError::not_found("no such messages route")),
    }
}

fn dlq(
    engine: &Engine,
    method: &Method,
    tail: &str,
    query: &Query,
    body: &[u8],
) -> Result<Response, ApiError> {
    match (method, tail) {
        (&Method::GET, "") => {
            let cursor = query
                .get("cursor")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let count = query
                .get("count")
                .and_then(|c| c.parse().ok())
                .unwrap_or(100usize)
                .clamp(1, 1000);
            Ok(ok(&engine.dlq_view(&query.all("dlqIds"), cursor, count)))
        }
        (&Method::POST, "retry") => {
            let ids = ids_from(query, body, "dlqIds")?.unwrap_or_default();
            let created = engine.dlq_retry(&ids)?;
            let responses: Vec<Value> = created
                .iter()
                .map(|id| json!({ "messageId": id }))
                .collect();
            Ok(json_answer(
                StatusCode::CREATED,
                &json!({ "responses": responses }),
            ))
        }
        (&Method::POST, tail) if tail.starts_with("retry/") => {
            let id = tail.trim_start_matches("retry/").to_owned();
            let created = engine.dlq_retry(&[id])?;
            let first = created.first().cloned().unwrap_or_default();
            Ok(json_answer(
                StatusCode::CREATED,
                &json!({ "messageId": first }),
            ))
        }
        (&Method::GET, id) => Ok(ok(&engine.dead_view(id)?)),
        (&Method::DELETE, "") => {
            let ids = ids_from(query, body, "dlqIds")?.unwrap_or_default();
            Ok(ok(&json!({ "deleted": engine.dlq_delete(&ids) })))
        }
        (&Method::DELETE, id) => {
            if engine.dlq_delete(&[id.to_owned()]) == 0 {
                return Err(ApiError::not_found(format!("dlq message {id} not found")));
            }
            Ok(ok(&json!({ "deleted": 1 })))
        }
        _ => Err(ApiError::not_found("no such dlq route")),
    }
}

fn schedules(
    engine: &Engine,
    method: &Method,
    tail: &str,
    raw_query: Option<&str>,
    headers: HeaderMap,
    body: Bytes,
    caller_ip: Option<String>,
) -> Result<Response, ApiError> {
    let action = tail
        .rsplit_once('/')
        .filter(|(id, action)| !id.contains('/') && matches!(*action, "pause" | "resume"));
    match (method, action) {
        (&Method::POST | &Method::PATCH, Some((id, action))) if !crate::engine::is_url(tail) => {
            engine.schedule_pause(id, action == "pause")?;
            Ok(ok(&json!({})))
        }
        (&Method::POST, _) => {
            let id =
                engine.create_schedule(&destination(tail, raw_query), headers, body, caller_ip)?;
            Ok(json_answer(
                StatusCode::CREATED,
                &json!({ "scheduleId": id }),
            ))
        }
        (&Method::GET, _) if tail.is_empty() => Ok(ok(&engine.schedules_view())),
        (&Method::GET, _) => Ok(ok(&engine.schedule_view(tail)?)),
        (&Method::DELETE, _) => {
            engine.schedule_delete(tail)?;
            Ok(ok(&json!({})))
        }
        _ => Err(ApiError::not_found("no such schedules route")),
    }
}

fn queues(engine: &Engine, method: &Method, tail: &str, body: &[u8]) -> Result<Response, ApiError> {
    let action = tail
        .split_once('/')
        .filter(|(_, action)| matches!(*action, "pause" | "resume"));
    match (method, tail, action) {
        (&Method::POST, "", _) => {
            let queue: QueueBody = parse_json(body)?;
            engine.upsert_queue(
                &queue.queue_name,
                queue.parallelism.unwrap_or(1),
                queue.paused.unwrap_or(false),
            )?;
            Ok(ok(&json!({})))
        }
        (&Method::GET, "", _) => Ok(ok(&engine.queues_view())),
        (&Method::POST | &Method::PATCH, _, Some((name, action))) => {
            engine.queue_pause(name, action == "pause")?;
            Ok(ok(&json!({})))
        }
        (&Method::GET, name, None) => Ok(ok(&engine.queue_view(name)?)),
        (&Method::DELETE, name, None) => {
            engine.queue_delete(name)?;
            Ok(ok(&json!({})))
        }
        _ => Err(ApiError::not_found("no such queues route")),
    }
}

fn topics(engine: &Engine, method: &Method, tail: &str, body: &[u8]) -> Result<Response, ApiError> {
    let endpoints_of = tail.strip_suffix("/endpoints");
    match (method, endpoints_of) {
        (&Method::POST, Some(name)) => {
            let parsed: EndpointsBody = parse_json(body)?;
            let mut endpoints = Vec::with_capacity(parsed.endpoints.len());
            for e in parsed.endpoints {
                let url = e
                    .url
                    .ok_or_else(|| ApiError::bad_request("an endpoint needs a url"))?;
                endpoints.push((e.name.filter(|n| !n.is_empty()), url));
            }
            engine.add_endpoints(name, &endpoints)?;
            Ok(ok(&json!({})))
        }
        (&Method::DELETE, Some(name)) => {
            let parsed: EndpointsBody = parse_json(body)?;
            let endpoints: Vec<_> = parsed
                .endpoints
                .into_iter()
                .map(|e| (e.name, e.url))
                .collect();
            engine.remove_endpoints(name, &endpoints)?;
            Ok(ok(&json!({})))
        }
        (&Method::GET, None) if tail.is_empty() => Ok(ok(&engine.groups_view())),
        (&Method::GET, None) => Ok(ok(&engine.group_view(tail)?)),
        (&Method::DELETE, None) => {
            engine.group_delete(tail)?;
            Ok(ok(&json!({})))
        }
        _ => Err(ApiError::not_found("no such topics route")),
    }
}

fn events(engine: &Engine, query: &Query) -> Value {
    let filters = [
        ("messageId", query.get("messageId")),
        ("state", query.get("state")),
        ("url", query.get("url")),
        ("topicName", query.get("topicName")),
        ("scheduleId", query.get("scheduleId")),
        ("queueName", query.get("queueName")),
    ];
    let cursor: usize = query
        .get("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let count: usize = query
        .get("count")
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let all = engine.events();
    let matching: Vec<Value> = all
        .iter()
        .rev()
        .filter(|e| {
            filters.iter().all(|(name, want)| {
                let Some(want) = want else { return true };
                let got = match *name {
                    "messageId" => Some(e.message_id.as_str()),
                    "state" => Some(e.state.as_str()),
                    "url" => Some(e.url.as_str()),
                    "topicName" => e.topic_name.as_deref(),
                    "scheduleId" => e.schedule_id.as_deref(),
                    _ => e.queue_name.as_deref(),
                };
                got == Some(*want)
            })
        })
        .skip(cursor)
        .take(count + 1)
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
        .collect();
    let more = matching.len() > count;
    let page: Vec<Value> = matching.into_iter().take(count).collect();
    let mut answer = json!({ "events": page, "logs": page });
    if more {
        answer["cursor"] = Value::from((cursor + count).to_string());
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_keep_their_query_less_ours() {
        let cases = [
            ("https://example.com/hook", None, "https://example.com/hook"),
            (
                "https://example.com/hook",
                Some("a=1&qstash_token=t&b=2"),
                "https://example.com/hook?a=1&b=2",
            ),
            (
                "http://127.0.0.1:3000/x",
                Some("upstash-retries=1"),
                "http://127.0.0.1:3000/x",
            ),
            ("https:/example.com/hook", None, "https://example.com/hook"),
            (
                "https%3A%2F%2Fexample.com%2Fhook",
                None,
                "https://example.com/hook",
            ),
            ("my-group", None, "my-group"),
        ];
        for (rest, query, want) in cases {
            assert_eq!(destination(rest, query), want, "{rest} {query:?}");
        }
    }
}
