//! Shared by the integration tests: QStash deliveries as the verification hands them on, a
//! stand-in for the verification layer, and a `redis-server` child process.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod postgres_server;
pub mod redis_server;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use qstash_receiver::{Claims, Delivery, Signer, SigningKeys, Subject, Validation, Verifier};

/// The URL the test deliveries are signed for.
pub const URL: &str = "http://127.0.0.1/qstash";
pub const PATH: &str = "/qstash";

pub fn signer() -> Signer {
    Signer::new(qstash_receiver::keys::DEV_CURRENT_SIGNING_KEY).unwrap()
}

pub fn verifier() -> Verifier {
    Verifier::new(SigningKeys::dev())
}

/// The headers QStash sends for attempt `retried` of message `id` (signed anew, fresh `jti`).
pub fn delivery_headers(id: &str, retried: u32, body: &[u8]) -> HeaderMap {
    signer().delivery_headers(URL, body, id, retried)
}

/// What the QStash verification puts in the request extensions for these headers.
pub fn verify(headers: &HeaderMap, body: &[u8]) -> (Delivery, Claims) {
    let claims = verifier()
        .verify_headers(headers, body, &Validation::new(Subject::PathAndQuery(PATH)))
        .unwrap();
    (Delivery::from_headers(headers).unwrap(), claims)
}

/// A request as the dedupe layer sees it behind the verification: headers plus the verified
/// `Delivery` and `Claims` in its extensions.
pub fn verified_request(headers: &HeaderMap) -> Request {
    let (delivery, claims) = verify(headers, b"");
    let mut request = Request::post(PATH).body(Body::empty()).unwrap();
    *request.headers_mut() = headers.clone();
    request.extensions_mut().insert(delivery);
    request.extensions_mut().insert(claims);
    request
}

/// A delivery of message `id`, verified.
pub fn delivery(id: &str) -> Request {
    verified_request(&delivery_headers(id, 0, b""))
}

/// A stand-in for tower-qstash's `QStashLayer` (axum `from_fn`): verifies the signature over
/// the body and puts `Delivery` and `Claims` in the extensions, or answers 401.
pub async fn verify_layer(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let Ok(claims) = verifier().verify_headers(
        &parts.headers,
        &bytes,
        &Validation::new(Subject::PathAndQuery(target)),
    ) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Ok(delivery) = Delivery::from_headers(&parts.headers) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    parts.extensions.insert(claims);
    parts.extensions.insert(delivery);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

pub fn is_duplicate(headers: &HeaderMap) -> bool {
    headers
        .get(qstash_dedupe::DUPLICATE_HEADER)
        .is_some_and(|v| v == "true")
}

pub fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse().unwrap())
}
