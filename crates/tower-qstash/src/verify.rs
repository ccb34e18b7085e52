//! The checks shared by the layer and the extractors, kept apart from `call`: the body
//! limit, the request's subject under each policy, and the verification itself.

use std::error::Error as StdError;

use http::header::{CONTENT_LENGTH, HOST};
use http::request::Parts;
use http::{HeaderMap, Uri};
use http_body::Body;
use qstash_receiver::{Claims, Delivery, Subject};

use crate::body::ReadError;
use crate::config::{QStashConfig, SubjectPolicy};
use crate::rejection::{
    BodyReadFailed, BodyTimeout, InvalidDelivery, InvalidSignature, PayloadTooLarge,
    QStashRejection,
};

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

const FORWARDED_PROTO: &str = "x-forwarded-proto";
const FORWARDED_HOST: &str = "x-forwarded-host";

/// Logs `rejection` once and hands it back.
pub(crate) fn refuse(
    rejection: impl Into<QStashRejection>,
    headers: &HeaderMap,
) -> QStashRejection {
    let rejection = rejection.into();
    rejection.log(headers);
    rejection
}

/// Whether the body is known to be over the limit before reading it: by its `Content-Length`
/// or by the body's own size hint.
pub(crate) fn declared_too_large<B: Body>(headers: &HeaderMap, body: &B, limit: usize) -> bool {
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    declared.is_some_and(|len| len > limit) || body.size_hint().lower() > limit
}

/// The refusal for a body that is over the limit before it is read.
pub(crate) fn too_large(config: &QStashConfig, headers: &HeaderMap) -> QStashRejection {
    refuse(PayloadTooLarge::new(config.limit(), config.hook()), headers)
}

/// The refusal for a body that could not be read: 413 when it grew past the limit, 408 when
/// it took too long, else 400.
pub(crate) fn body_error(
    error: ReadError,
    config: &QStashConfig,
    headers: &HeaderMap,
) -> QStashRejection {
    match error {
        ReadError::TooLarge => too_large(config, headers),
        ReadError::TimedOut => refuse(
            BodyTimeout::new(config.timeout().unwrap_or_default(), config.hook()),
            headers,
        ),
        ReadError::Body(error) => refuse(BodyReadFailed::new(error, config.hook()), headers),
    }
}

/// Reads the whole body, refusing it as soon as it is known to be over the limit or its time
/// is up.
#[cfg(feature = "axum")]
pub(crate) async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    config: &QStashConfig,
) -> Result<bytes::Bytes, QStashRejection>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    if declared_too_large(headers, &body, config.limit()) {
        return Err(too_large(config, headers));
    }
    crate::body::ReadBody::new(body, config.limit(), config.timeout())
        .await
        .map_err(|e| body_error(e, config, headers))
}

/// Verifies a request whose whole body is `body`: the signature under the configured subject
/// policy, then the delivery headers.
pub(crate) fn verify(
    config: &QStashConfig,
    parts: &Parts,
    body: &[u8],
) -> Result<(Claims, Delivery), QStashRejection> {
    #[cfg(feature = "lambda")]
    if let Some(target) = crate::lambda::lambda_target(parts) {
        return crate::lambda_verify::verify(config, parts, &target, body);
    }
    let verifier = config.verifier();
    let headers = &parts.headers;
    let uri = original_uri(parts);
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let verified = match config.subject_policy() {
        SubjectPolicy::PathAndQuery => {
            verifier.verify_headers(headers, body, Subject::PathAndQuery(target))
        }
        SubjectPolicy::DangerouslySkip => {
            verifier.verify_headers(headers, body, Subject::DangerouslySkipCheck)
        }
        SubjectPolicy::PublicBaseUrl(base) => {
            verifier.verify_headers(headers, body, Subject::Url(&format!("{base}{target}")))
        }
        SubjectPolicy::Forwarded => {
            // Without any host there is no URL to compare with: "" matches no `sub`, so the
            // request is refused with whatever the token's first failing check is.
            let url = forwarded_origin(headers, uri)
                .map(|origin| format!("{origin}{target}"))
                .unwrap_or_default();
            verifier.verify_headers(headers, body, Subject::Url(&url))
        }
    };
    let claims = verified.map_err(|e| refuse(InvalidSignature::new(e, config.hook()), headers))?;
    let delivery = Delivery::from_headers(headers).map_err(|e| {
        refuse(
            InvalidDelivery::new(e, config.payload_status(), config.hook()),
            headers,
        )
    })?;
    Ok((claims, delivery))
}

/// The URI the client asked for: axum's `OriginalUri` when a `Router::nest` stripped a prefix
/// from the request's URI, else the request's.
fn original_uri(parts: &Parts) -> &Uri {
    #[cfg(feature = "original-uri")]
    if let Some(original) = parts.extensions.get::<axum::extract::OriginalUri>() {
        return &original.0;
    }
    &parts.uri
}

/// `proto://host` from the forwarded headers, falling back to `Host` and the URI.
fn forwarded_origin(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let proto = first_value(headers, FORWARDED_PROTO)
        .or_else(|| uri.scheme_str())
        .unwrap_or("http");
    let host = first_value(headers, FORWARDED_HOST)
        .or_else(|| first_value(headers, HOST.as_str()))
        .or_else(|| uri.authority().map(http::uri::Authority::as_str))?;
    Some(format!("{}://{host}", proto.to_ascii_lowercase()))
}

/// The first entry of the first value of `name` (proxies append to a comma-separated list).
fn first_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let value = headers.get(name)?.to_str().ok()?;
    value
        .split(',')
        .next()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use qstash_receiver::{Signer, SigningKeys, Verifier};

    const KEY: &str = "sig_current";

    fn config() -> QStashConfig {
        QStashConfig::new(Verifier::new(SigningKeys::new(KEY, "sig_next").unwrap()))
    }

    fn parts(uri: &str, sub: &str, extra: &[(&str, &str)]) -> Parts {
        let mut builder = Request::post(uri);
        for (name, value) in Signer::new(KEY)
            .unwrap()
            .delivery_headers(sub, b"{}", "msg_1", 0)
            .iter()
        {
            builder = builder.header(name, value);
        }
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn subject_policies() {
        struct Case {
            name: &'static str,
            config: fn(QStashConfig) -> QStashConfig,
            uri: &'static str,
            sub: &'static str,
            headers: &'static [(&'static str, &'static str)],
            ok: bool,
        }
        let same = |c| c;
        let base = |c: QStashConfig| c.public_base_url("https://app.example.com/");
        let forwarded = |c: QStashConfig| c.trust_forwarded_headers(true);
        let cases = [
            Case {
                name: "path and query: proxy changed scheme and host",
                config: same,
                uri: "/hook?a=1",
                sub: "https://app.example.com/hook?a=1",
                headers: &[("host", "internal:8080")],
                ok: true,
            },
            Case {
                name: "path and query: other query",
                config: same,
                uri: "/hook?a=2",
                sub: "https://app.example.com/hook?a=1",
                headers: &[],
                ok: false,
            },
            Case {
                name: "base url: same URL",
                config: base,
                uri: "/hook?a=1",
                sub: "https://app.example.com/hook?a=1",
                headers: &[],
                ok: true,
            },
            Case {
                name: "base url: other host",
                config: base,
                uri: "/hook",
                sub: "https://evil.example.com/hook",
                headers: &[],
                ok: false,
            },
            Case {
                name: "base url: other scheme",
                config: base,
                uri: "/hook",
                sub: "http://app.example.com/hook",
                headers: &[],
                ok: false,
            },
            Case {
                name: "base url: sub without a path reaches /",
                config: base,
                uri: "/",
                sub: "https://app.example.com",
                headers: &[],
                ok: true,
            },
            Case {
                name: "base url: sub with only a query reaches /?q",
                config: base,
                uri: "/?q=1",
                sub: "https://app.example.com?q=1",
                headers: &[],
                ok: true,
            },
            Case {
                name: "base url: forwarded headers are ignored",
                config: base,
                uri: "/hook",
                sub: "https://evil.example.com/hook",
                headers: &[("x-forwarded-host", "evil.example.com")],
                ok: false,
            },
            Case {
                name: "forwarded: proto and host",
                config: forwarded,
                uri: "/hook",
                sub: "https://app.example.com/hook",
                headers: &[
                    ("x-forwarded-proto", "HTTPS"),
                    ("x-forwarded-host", "app.example.com, proxy.internal"),
                    ("host", "internal:8080"),
                ],
                ok: true,
            },
            Case {
                name: "forwarded: falls back to Host and http",
                config: forwarded,
                uri: "/hook",
                sub: "http://app.example.com/hook",
                headers: &[("host", "app.example.com")],
                ok: true,
            },
            Case {
                name: "forwarded: wrong proto",
                config: forwarded,
                uri: "/hook",
                sub: "https://app.example.com/hook",
                headers: &[("host", "app.example.com")],
                ok: false,
            },
            Case {
                name: "forwarded: no host at all",
                config: forwarded,
                uri: "/hook",
                sub: "http:///hook",
                headers: &[],
                ok: false,
            },
            Case {
                name: "forwarded not trusted by default",
                config: same,
                uri: "/hook",
                sub: "https://app.example.com/other",
                headers: &[("x-forwarded-host", "app.example.com")],
                ok: false,
            },
            Case {
                name: "skip: any sub",
                config: QStashConfig::dangerously_skip_subject_check,
                uri: "/hook",
                sub: "https://elsewhere.example/other",
                headers: &[],
                ok: true,
            },
        ];
        for case in cases {
            let config = (case.config)(config());
            let parts = parts(case.uri, case.sub, case.headers);
            let result = verify(&config, &parts, b"{}");
            assert_eq!(result.is_ok(), case.ok, "{}: {result:?}", case.name);
            if let Err(e) = result {
                assert_eq!(e.reason(), "subject_mismatch", "{}", case.name);
            }
        }
    }

    #[cfg(feature = "original-uri")]
    #[test]
    fn original_uri_wins_over_the_stripped_one() {
        let mut p = parts("/hook", "https://app.example.com/api/hook", &[]);
        assert!(verify(&config(), &p, b"{}").is_err());
        p.extensions
            .insert(axum::extract::OriginalUri(Uri::from_static("/api/hook")));
        assert!(verify(&config(), &p, b"{}").is_ok());
    }

    #[test]
    fn declared_sizes() {
        let body = http_body_util::Empty::<bytes::Bytes>::new();
        let mut headers = HeaderMap::new();
        assert!(!declared_too_large(&headers, &body, 10));
        headers.insert(CONTENT_LENGTH, "10".parse().unwrap());
        assert!(!declared_too_large(&headers, &body, 10));
        headers.insert(CONTENT_LENGTH, "11".parse().unwrap());
        assert!(declared_too_large(&headers, &body, 10));
        let full = http_body_util::Full::new(bytes::Bytes::from_static(b"12345678901"));
        assert!(declared_too_large(&HeaderMap::new(), &full, 10));
    }
}
