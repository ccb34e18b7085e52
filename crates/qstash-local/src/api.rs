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
use crate::filter::{Endpoint, Fields, Filter};

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
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest)
        })
        .map(str::trim);
    bearer == Some(token) || query.get("qstash_token") == Some(token)
}

async fn read_body(body: Body, headers: &HeaderMap, batch: bool) -> Result<Bytes, ApiError> {
    let too_large = if batch {
        ApiError::batch_too_large
    } else {
        ApiError::too_large
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())
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
    // Schemes are case-insensitive: `HTTP://` is a URL, written in lower case.
    for scheme in ["http:", "https:"] {
        if rest.len() >= scheme.len()
            && rest.is_char_boundary(scheme.len())
            && rest[..scheme.len()].eq_ignore_ascii_case(scheme)
        {
            rest = format!("{scheme}{}", &rest[scheme.len()..]);
        }
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
    if parts.method == Method::OPTIONS {
        // A preflight carries no token; it learns the methods and nothing else.
        return Ok((
            StatusCode::NO_CONTENT,
            [(
                http::header::ALLOW,
                HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"),
            )],
        )
            .into_response());
    }
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
    let body = read_body(body, &headers, resource == "batch").await?;
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
            let items: Vec<Value> = parse_json(&body)?;
            let messages = items
                .into_iter()
                .map(|item| batch_item(item, caller_ip.clone()))
                .collect();
            let answers = engine.publish_batch(messages)?;
            // Each element its own result: the message(s), or `{"error": ...}`.
            let results = answers
                .iter()
                .map(|answer| match answer {
                    Ok(answer) => answer_json(answer),
                    Err(error) => json!({ "error": error.message() }),
                })
                .collect();
            Ok(json_answer(StatusCode::CREATED, &Value::Array(results)))
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
        ("events" | "logs", &Method::GET) => Ok(ok(&events(engine, &query)?)),
        ("globalparallelism", &Method::GET) => Ok(ok(&engine.global_parallelism_view())),
        ("flowcontrol", _) => flow_control(engine, &method, tail, &query),
        ("console", &Method::GET) => Ok(ok(&crate::console::view(
            engine,
            tail,
            raw_query.as_deref(),
        )?)),
        _ => Err(ApiError::not_found(format!("no route {method} {path}"))),
    }
}

/// One batch element: a message to publish, or why it cannot be.
fn batch_item(item: Value, caller_ip: Option<String>) -> Result<Publish, ApiError> {
    let item: BatchItem = serde_json::from_value(item)
        .map_err(|e| ApiError::bad_request(format!("invalid batch element: {e}")))?;
    let headers = item.headers.as_ref().map(header_map).transpose()?;
    Ok(Publish {
        destination: destination(&item.destination, None),
        headers: headers.unwrap_or_default(),
        body: Bytes::from(item.body.unwrap_or_default()),
        queue: item.queue.filter(|q| !q.is_empty()),
        caller_ip,
    })
}

/// `count` (1 to 1,000) or `default`.
fn count_of(query: &Query, default: usize) -> Result<usize, ApiError> {
    query.get("count").map_or(Ok(default), |c| {
        c.parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("invalid count {c:?} (1 to 1000)")))
    })
}

/// `cursor` (an offset, as this server writes it) or 0.
fn cursor_of(query: &Query) -> Result<usize, ApiError> {
    match query.get("cursor") {
        None | Some("") => Ok(0),
        Some(c) => c
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid cursor {c:?}"))),
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
            let filter = Filter::parse(&query.0, Endpoint::Cancel)?;
            let ids = match ids_from(query, body, "messageIds")? {
                Some(ids) if !filter.is_empty() => engine
                    .select(&filter, usize::MAX)
                    .into_iter()
                    .filter(|id| ids.contains(id))
                    .collect(),
                Some(ids) => ids,
                // A filter, `count` alone (the TypeScript client's `all`), or nothing at all
                // (the Python client's `cancel_all`).
                None => engine.select(&filter, count_of(query, usize::MAX)?),
            };
            let cancelled = engine.cancel(Some(&ids));
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
            let filter = Filter::parse(&query.0, Endpoint::Dlq)?;
            let (cursor, count) = (cursor_of(query)?, count_of(query, 100)?);
            Ok(ok(&engine.dlq_view(
                &query.all("dlqIds"),
                &filter,
                cursor,
                count,
            )))
        }
        (&Method::POST, "retry") => {
            let (ids, next) = dlq_targets(engine, query, body)?;
            let created = engine.dlq_retry(&ids)?;
            let responses: Vec<Value> = created
                .iter()
                .map(|id| json!({ "messageId": id }))
                .collect();
            let mut answer = json!({ "responses": responses });
            if let Some(next) = next {
                answer["cursor"] = Value::from(next.to_string());
            }
            Ok(json_answer(StatusCode::CREATED, &answer))
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
            let (ids, next) = dlq_targets(engine, query, body)?;
            let mut answer = json!({ "deleted": engine.dlq_delete(&ids) });
            if let Some(next) = next {
                answer["cursor"] = Value::from(next.to_string());
            }
            Ok(ok(&answer))
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

/// The dead letters a bulk DLQ action applies to: `dlqIds` (query or body), or the page of
/// `count` (default 100) from `cursor` that passes the filters (none: all), with the next
/// page's cursor. With dlqIds and filters, a moved cursor would skip letters, so the ids
/// are taken as they are.
fn dlq_targets(
    engine: &Engine,
    query: &Query,
    body: &[u8],
) -> Result<(Vec<String>, Option<usize>), ApiError> {
    let filter = Filter::parse(&query.0, Endpoint::Dlq)?;
    if let Some(ids) = ids_from(query, body, "dlqIds")? {
        if !filter.is_empty() {
            return Err(ApiError::bad_request(
                "use either dlqIds or filters, not both",
            ));
        }
        return Ok((ids, None));
    }
    let (cursor, count) = (cursor_of(query)?, count_of(query, 100)?);
    // An action moves what it acts on out of the list: the next page starts where this
    // one did.
    let (ids, next) = engine.dlq_select(&filter, cursor, count);
    Ok((ids, next.map(|_| cursor)))
}

fn flow_control(
    engine: &Engine,
    method: &Method,
    tail: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    match (method, tail.split_once('/')) {
        (&Method::GET, None) if tail.is_empty() => Ok(ok(&engine.flows_view())),
        (&Method::GET, None) => Ok(ok(&engine.flow_view(tail)?)),
        (&Method::POST, Some((key, action))) => {
            engine.flow_action(key, action, &query.0)?;
            Ok(ok(&json!({})))
        }
        _ => Err(ApiError::not_found("no such flowControl route")),
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

fn events(engine: &Engine, query: &Query) -> Result<Value, ApiError> {
    let filter = Filter::parse(&query.0, Endpoint::Logs)?;
    let (cursor, count) = (cursor_of(query)?, count_of(query, 100)?);
    let all = engine.events();
    let matching: Vec<Value> = all
        .iter()
        .rev()
        .filter(|e| {
            filter.matches(&Fields {
                message_id: &e.message_id,
                url: &e.url,
                topic: e.topic_name.as_deref(),
                schedule: e.schedule_id.as_deref(),
                queue: e.queue_name.as_deref(),
                caller_ip: e.caller_ip.as_deref(),
                labels: &e.labels,
                flow_key: e.flow_control_key.as_deref(),
                state: Some(e.state.as_str()),
                response_status: e.response_status,
                time_ms: e.time,
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
    Ok(answer)
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
