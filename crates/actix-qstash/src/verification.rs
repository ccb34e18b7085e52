//! The glue between an actix request and the core: the headers the core reads, the subject
//! the token is compared with, and logging a refusal.

use std::borrow::Cow;

use actix_web::HttpRequest;
use actix_web::http::header;
use qstash_receiver::{
    Claims, Delivery, ErrorKind, MESSAGE_ID_HEADER, REGION_HEADER, SIGNATURE_HEADER, Subject,
};

use crate::body::content_length_exceeds;
use crate::config::{QStashConfig, SubjectPolicy};
use crate::error::QStashError;

const SIGNATURE: header::HeaderName = header::HeaderName::from_static(SIGNATURE_HEADER);
const REGION: header::HeaderName = header::HeaderName::from_static(REGION_HEADER);

/// The single `Upstash-Signature` value, read from actix's headers as the core's
/// `signature_from_headers` reads an `http` 1.x map.
fn signature(req: &HttpRequest) -> Result<&str, qstash_receiver::Error> {
    let mut values = req.headers().get_all(&SIGNATURE);
    let value = values.next().ok_or(ErrorKind::MissingSignature)?;
    if values.next().is_some() {
        return Err(ErrorKind::MultipleSignatures.into());
    }
    value.to_str().map_err(|_| ErrorKind::MalformedToken.into())
}

/// Proof that a request's headers passed [`Pending::start`]; its body is still to be read.
pub(crate) struct Pending(());

impl Pending {
    /// Checks what can be checked before reading the body: exactly one `Upstash-Signature`
    /// (an unsigned request is refused without reading its body) and the `Content-Length`.
    pub(crate) fn start(req: &HttpRequest, config: &QStashConfig) -> Result<Self, QStashError> {
        signature(req)?;
        if content_length_exceeds(req.headers(), config.max_body_bytes) {
            return Err(QStashError::PayloadTooLarge {
                limit: config.max_body_bytes,
            });
        }
        Ok(Self(()))
    }

    /// Verifies the signature over `body`, then reads the delivery headers.
    pub(crate) fn finish(
        &self,
        req: &HttpRequest,
        config: &QStashConfig,
        body: &[u8],
    ) -> Result<(Delivery, Claims), QStashError> {
        let target = subject_target(req, &config.subject);
        let subject = match &target {
            Target::PathAndQuery(pq) => Subject::PathAndQuery(pq),
            Target::Url(url) => Subject::Url(url),
            Target::Skip => Subject::DangerouslySkipCheck,
        };
        let region = req.headers().get(&REGION).and_then(|v| v.to_str().ok());
        let claims = config
            .verifier
            .verify_in_region(region, signature(req)?, body, subject)?;
        // The core names the headers it reads; actix's map answers by name, without a copy.
        let delivery = Delivery::from_lookup(|name| {
            req.headers()
                .get_all(name.as_str())
                .map(header::HeaderValue::as_bytes)
        })
        .map_err(|source| QStashError::Delivery {
            source,
            status: config.payload_error_status,
        })?;
        Ok((delivery, claims))
    }
}

enum Target<'a> {
    PathAndQuery(&'a str),
    Url(String),
    Skip,
}

/// The request's path and query, as the client sent it (in a scope too).
fn path_and_query(req: &HttpRequest) -> &str {
    req.uri().path_and_query().map_or("/", |pq| pq.as_str())
}

fn subject_target<'r>(req: &'r HttpRequest, policy: &SubjectPolicy) -> Target<'r> {
    match policy {
        SubjectPolicy::PathAndQuery => Target::PathAndQuery(path_and_query(req)),
        SubjectPolicy::PublicBaseUrl(base) => Target::Url(format!("{base}{}", path_and_query(req))),
        SubjectPolicy::Forwarded => Target::Url(forwarded_url(req)),
        SubjectPolicy::DangerouslySkip => Target::Skip,
    }
}

/// `scheme://host/path?query` from `X-Forwarded-Proto` / `X-Forwarded-Host`, falling back to
/// the connection's scheme and the `Host` header (or the URI's authority, for HTTP/2).
///
/// Not `HttpRequest::connection_info`: that reads `Forwarded` and `X-Forwarded-*` always.
fn forwarded_url(req: &HttpRequest) -> String {
    let headers = req.headers();
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let scheme = first("x-forwarded-proto").unwrap_or(if req.app_config().secure() {
        "https"
    } else {
        "http"
    });
    let host = first("x-forwarded-host")
        .or_else(|| first(header::HOST.as_str()))
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_else(|| req.app_config().host());
    format!("{scheme}://{host}{}", path_and_query(req))
}

/// The message id of a request, for logs: as sent (it is not signed), at most 128 characters.
fn message_id(req: &HttpRequest) -> Cow<'_, str> {
    let id = req
        .headers()
        .get(MESSAGE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match id.char_indices().nth(128) {
        Some((at, _)) => Cow::Owned(format!("{}…", &id[..at])),
        None => Cow::Borrowed(id),
    }
}

/// Logs a refusal (the reason and message id; never the token, a key or the body) and turns
/// it into the answer, through the configured error handler if any.
pub(crate) fn reject(
    req: &HttpRequest,
    config: Option<&QStashConfig>,
    err: QStashError,
) -> actix_web::Error {
    let reason = err.reason();
    let message_id = message_id(req);
    let status = err.status().as_u16();
    let path = req.path();
    match &err {
        QStashError::NotConfigured => tracing::error!(
            reason,
            %message_id,
            path,
            "QStash delivery refused: {err}"
        ),
        QStashError::Signature(e) if e.kind() == qstash_receiver::ErrorKind::MissingSignature => {
            tracing::debug!(reason, %message_id, status, path, "QStash delivery refused: {err}");
        }
        QStashError::ReadBody(_) | QStashError::BodyTimeout { .. } => {
            tracing::debug!(reason, %message_id, status, path, "QStash delivery refused: {err}");
        }
        _ => tracing::warn!(reason, %message_id, status, path, "QStash delivery refused: {err}"),
    }
    match config {
        Some(config) => config.error(err, req),
        None => err.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn subject_targets() {
        let base = SubjectPolicy::PublicBaseUrl("https://pub.example".into());
        let cases: [(&str, TestRequest, &SubjectPolicy, Option<&str>); 9] = [
            (
                "path and query",
                TestRequest::post().uri("/a/b?c=1"),
                &SubjectPolicy::PathAndQuery,
                Some("/a/b?c=1"),
            ),
            (
                "path and query ignores forwarded headers",
                TestRequest::post()
                    .uri("/a")
                    .insert_header(("x-forwarded-host", "evil.example")),
                &SubjectPolicy::PathAndQuery,
                Some("/a"),
            ),
            (
                "base url",
                TestRequest::post().uri("/a?x"),
                &base,
                Some("https://pub.example/a?x"),
            ),
            (
                "base url ignores forwarded headers",
                TestRequest::post()
                    .uri("/a")
                    .insert_header(("x-forwarded-host", "evil.example"))
                    .insert_header(("x-forwarded-proto", "http")),
                &base,
                Some("https://pub.example/a"),
            ),
            (
                "forwarded",
                TestRequest::post()
                    .uri("/a?x=1")
                    .insert_header(("host", "internal:8080"))
                    .insert_header(("x-forwarded-host", "pub.example, proxy.internal"))
                    .insert_header(("x-forwarded-proto", "https,http")),
                &SubjectPolicy::Forwarded,
                Some("https://pub.example/a?x=1"),
            ),
            (
                "forwarded falls back to host",
                TestRequest::post()
                    .uri("/a")
                    .insert_header(("host", "internal:8080")),
                &SubjectPolicy::Forwarded,
                Some("http://internal:8080/a"),
            ),
            (
                "forwarded falls back to the uri's authority",
                TestRequest::post().uri("http://h2.example/a"),
                &SubjectPolicy::Forwarded,
                Some("http://h2.example/a"),
            ),
            (
                "forwarded falls back to the configured host",
                TestRequest::post().uri("/a"),
                &SubjectPolicy::Forwarded,
                Some("http://localhost:8080/a"),
            ),
            (
                "skip",
                TestRequest::post().uri("/a"),
                &SubjectPolicy::DangerouslySkip,
                None,
            ),
        ];
        for (name, req, policy, want) in cases {
            let req = req.to_http_request();
            let got = match subject_target(&req, policy) {
                Target::PathAndQuery(pq) => Some(pq.to_owned()),
                Target::Url(url) => Some(url),
                Target::Skip => None,
            };
            assert_eq!(got.as_deref(), want, "{name}");
        }
    }

    #[test]
    fn message_ids_are_bounded() {
        let long = "m".repeat(500);
        let req = TestRequest::post()
            .insert_header((MESSAGE_ID_HEADER, long.as_str()))
            .to_http_request();
        assert_eq!(message_id(&req).chars().count(), 129);
        let req = TestRequest::post()
            .insert_header((MESSAGE_ID_HEADER, "msg_1"))
            .to_http_request();
        assert_eq!(message_id(&req), "msg_1");
    }
}
