//! Lambda events as AWS sends them for a request to a URL, built from the real-shaped
//! fixtures next to this file (one per event type): Function URL and API Gateway HTTP API
//! (payload 2.0), API Gateway REST (payload 1.0, stage `prod`) and ALB (multi-value headers on).
//!
//! Shared by tower-qstash's event tests and the example's end-to-end test.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use base64::Engine as _;
use http::HeaderMap;
use serde_json::{Map, Value, json};

/// The four event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Lambda Function URL (payload 2.0).
    FunctionUrl,
    /// API Gateway HTTP API (payload 2.0).
    HttpApi,
    /// API Gateway REST API (payload 1.0), stage `prod`.
    Rest,
    /// Application Load Balancer, multi-value headers on.
    Alb,
}

impl Kind {
    /// All of them.
    pub const ALL: [Self; 4] = [Self::FunctionUrl, Self::HttpApi, Self::Rest, Self::Alb];

    fn fixture(self) -> &'static str {
        match self {
            Self::FunctionUrl => include_str!("function_url.json"),
            Self::HttpApi => include_str!("http_api.json"),
            Self::Rest => include_str!("rest.json"),
            Self::Alb => include_str!("alb.json"),
        }
    }

    /// The host of the fixture: where a URL for this event type points.
    pub fn host(self) -> &'static str {
        match self {
            Self::FunctionUrl => "abcdefghijklmnopqrstuvwxyz0123.lambda-url.eu-central-1.on.aws",
            Self::HttpApi => "r3pmxmplak.execute-api.eu-central-1.amazonaws.com",
            Self::Rest => "70ixmpl4fl.execute-api.eu-central-1.amazonaws.com",
            Self::Alb => "receiver-alb-1234567890.eu-central-1.elb.amazonaws.com",
        }
    }

    /// The URL of `path_and_query` on the fixture's host; for REST under its stage
    /// (`/prod`).
    pub fn url(self, path_and_query: &str) -> String {
        let stage = if self == Self::Rest { "/prod" } else { "" };
        format!("https://{}{stage}{path_and_query}", self.host())
    }
}

/// The event for a request to `url` with `headers` and `body`, as `kind` delivers it:
/// the URL's host becomes the domain name (a custom domain when it is not the fixture's), its
/// path and query go where the event type keeps them.
pub fn event(kind: Kind, url: &str, headers: &HeaderMap, body: &[u8], base64: bool) -> String {
    let mut event: Value = serde_json::from_str(kind.fixture()).unwrap();
    let rest = url
        .strip_prefix("https://")
        .expect("an https URL in these tests");
    let (host, path_and_query) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let path = if path.is_empty() { "/" } else { path };
    let raw_pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let decoded: Vec<(String, String)> = raw_pairs
        .iter()
        .map(|(n, v)| (form_decode(n), form_decode(v)))
        .collect();
    let body_text = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        String::from_utf8(body.to_vec()).expect("a text body, or base64")
    };
    let e = event.as_object_mut().unwrap();
    e.insert("body".into(), json!(body_text));
    e.insert("isBase64Encoded".into(), json!(base64));
    let custom_domain = host != kind.host();
    match kind {
        Kind::FunctionUrl | Kind::HttpApi => {
            e.insert("rawPath".into(), json!(path));
            e.insert("rawQueryString".into(), json!(query));
            if !decoded.is_empty() {
                // Payload 2.0 joins repeated values with commas.
                let mut single = Map::new();
                for (name, value) in &decoded {
                    let joined = match single.get(name).and_then(Value::as_str) {
                        Some(before) => format!("{before},{value}"),
                        None => value.clone(),
                    };
                    single.insert(name.clone(), json!(joined));
                }
                e.insert("queryStringParameters".into(), Value::Object(single));
            }
            let context = e["requestContext"].as_object_mut().unwrap();
            context.insert("domainName".into(), json!(host));
            context["http"]
                .as_object_mut()
                .unwrap()
                .insert("path".into(), json!(path));
            let h = e["headers"].as_object_mut().unwrap();
            h.insert("host".into(), json!(host));
            h.insert("content-length".into(), json!(body.len().to_string()));
            for name in headers.keys() {
                let joined: Vec<&str> = headers
                    .get_all(name)
                    .iter()
                    .map(|v| v.to_str().unwrap())
                    .collect();
                h.insert(name.as_str().into(), json!(joined.join(",")));
            }
        }
        Kind::Rest => {
            // On the `execute-api` host the URL has the stage and the event's `path` has not;
            // on a custom domain the URL has the base path and no stage, and so has `path`.
            let resource_path = if custom_domain {
                path.to_owned()
            } else {
                let rest = path.strip_prefix("/prod").expect("a URL under the stage");
                if rest.is_empty() {
                    "/".to_owned()
                } else {
                    rest.to_owned()
                }
            };
            e.insert("path".into(), json!(resource_path));
            if !decoded.is_empty() {
                let mut single = Map::new();
                let mut multi = Map::new();
                for (name, value) in &decoded {
                    single.insert(name.clone(), json!(value));
                    multi
                        .entry(name.clone())
                        .or_insert_with(|| json!([]))
                        .as_array_mut()
                        .unwrap()
                        .push(json!(value));
                }
                e.insert("queryStringParameters".into(), Value::Object(single));
                e.insert(
                    "multiValueQueryStringParameters".into(),
                    Value::Object(multi),
                );
            }
            let context = e["requestContext"].as_object_mut().unwrap();
            context.insert("path".into(), json!(path));
            context.insert("domainName".into(), json!(host));
            headers_v1(e, host, headers, true);
        }
        Kind::Alb => {
            e.insert("path".into(), json!(path));
            // ALB passes names and values as they were in the URL, still encoded.
            let mut multi = Map::new();
            for (name, value) in &raw_pairs {
                multi
                    .entry((*name).to_owned())
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .unwrap()
                    .push(json!(value));
            }
            e.insert(
                "multiValueQueryStringParameters".into(),
                Value::Object(multi),
            );
            headers_v1(e, host, headers, false);
        }
    }
    event.to_string()
}

fn headers_v1(e: &mut Map<String, Value>, host: &str, headers: &HeaderMap, single_too: bool) {
    let multi = e["multiValueHeaders"].as_object_mut().unwrap();
    let host_name = if multi.contains_key("Host") {
        "Host"
    } else {
        "host"
    };
    multi.insert(host_name.into(), json!([host]));
    for name in headers.keys() {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        multi.insert(name.as_str().into(), json!(values));
    }
    if single_too {
        let single = e["headers"].as_object_mut().unwrap();
        single.insert(host_name.into(), json!(host));
        for (name, value) in headers {
            single.insert(name.as_str().into(), json!(value.to_str().unwrap()));
        }
    }
}

/// `application/x-www-form-urlencoded` decoding, as API Gateway applies it to a query.
pub fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}
