//! [`QStashConfig`]: how deliveries are verified, looked up in `app_data` like actix's `JsonConfig`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use qstash_receiver::{ConfigError, NON_RETRYABLE_STATUS, Verifier};

use crate::error::QStashError;

/// The default body limit: 1 MiB (actix's own 256 KiB payload default is too small for QStash
/// messages).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The default total time allowed for reading a body: 10 seconds.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

type ErrorHandler = Arc<dyn Fn(QStashError, &HttpRequest) -> actix_web::Error + Send + Sync>;

/// What the token's `sub` claim is compared with.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum SubjectPolicy {
    /// The request's path and query (survives TLS-terminating proxies).
    PathAndQuery,
    /// `base` + the request's path and query, compared as a whole URL.
    PublicBaseUrl(Arc<str>),
    /// A URL built from `X-Forwarded-Proto` / `X-Forwarded-Host` (or `Host`).
    Forwarded,
    /// No check at all.
    DangerouslySkip,
}

/// How QStash deliveries are verified: the [`Verifier`] (keys), the body limit, how the
/// token's `sub` is compared with the request, and how refusals are answered.
///
/// Put it in `app_data` for the extractors ([`QStash`](crate::QStash),
/// [`QStashRaw`](crate::QStashRaw), [`QStashCallback`](crate::QStashCallback)); they look for
/// `QStashConfig`, then `web::Data<QStashConfig>`, like actix's `JsonConfig`. Or give it to
/// [`QStashGuard::new`](crate::QStashGuard::new).
///
/// There is no default configuration, as there are no default keys: an extractor that finds
/// no `QStashConfig` answers 500 and logs why at `error` level (it does not read the
/// environment behind your back; use [`QStashConfig::from_env`] for that).
///
/// Cheap to clone: clones share the verifier's keys, so [`Verifier::rotate`] on
/// [`QStashConfig::verifier`] is seen by every worker.
///
/// # Examples
///
/// ```
/// use actix_qstash::QStashConfig;
/// use actix_web::http::StatusCode;
/// use qstash_receiver::{SigningKeys, Verifier};
///
/// let config = QStashConfig::new(Verifier::new(SigningKeys::new("sig_current", "sig_next")?))
///     .max_body_bytes(256 * 1024)
///     .public_base_url("https://app.example.com")
///     .payload_error_status(StatusCode::UNPROCESSABLE_ENTITY);
/// let app = actix_web::App::new().app_data(config);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct QStashConfig {
    pub(crate) verifier: Verifier,
    pub(crate) max_body_bytes: usize,
    pub(crate) body_timeout: Option<Duration>,
    pub(crate) subject: SubjectPolicy,
    pub(crate) payload_error_status: StatusCode,
    pub(crate) error_handler: Option<ErrorHandler>,
}

impl QStashConfig {
    /// A configuration over `verifier`, with every default: a 1 MiB body limit, 10 s to read
    /// the body, the path and query compared with `sub`, no trust in forwarded headers, and 489 +
    /// `Upstash-NonRetryable-Error: true` for payloads that do not deserialize.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_timeout: Some(DEFAULT_BODY_TIMEOUT),
            subject: SubjectPolicy::PathAndQuery,
            payload_error_status: non_retryable_status(),
            error_handler: None,
        }
    }

    /// A configuration over [`Verifier::from_env`] (`QSTASH_CURRENT_SIGNING_KEY`,
    /// `QSTASH_NEXT_SIGNING_KEY`, and the multi-region variables), with every default.
    ///
    /// # Errors
    ///
    /// As [`Verifier::from_env`]: a missing or empty key.
    pub fn from_env() -> Result<Self, ConfigError> {
        Verifier::from_env().map(Self::new)
    }

    /// The largest body accepted, in bytes. A larger `Content-Length` is refused with 413
    /// before anything is read; a body without one is counted while it streams in and refused
    /// with 413 as soon as it passes the limit, without buffering the rest.
    ///
    /// Defaults to 1 MiB ([`DEFAULT_MAX_BODY_BYTES`]).
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// The most time reading the body may take, in total, counted from the first time the
    /// extractor or guard has to wait for it; `None` for no limit. A body that is not whole by
    /// then is refused with `408 Request Timeout` and the rest is not read, so a client that
    /// trickles its body in a byte at a time holds a connection and at most the body limit in
    /// memory for this long, not for as long as it likes. QStash retries a 408 like any other
    /// failure, so a real delivery that was merely slow is delivered again.
    ///
    /// Defaults to 10 seconds ([`DEFAULT_BODY_TIMEOUT`]): QStash sends the whole body at once
    /// from a data centre, and 10 s is 100 KiB/s for the default 1 MiB limit. Raise it with the
    /// limit. The time to receive the request's *headers* is the server's to limit
    /// ([`HttpServer::client_request_timeout`](actix_web::HttpServer::client_request_timeout)).
    pub fn body_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.body_timeout = timeout.into();
        self
    }

    /// Compares the token's `sub` with the whole URL `base` + the request's path and query,
    /// e.g. `https://app.example.com` + `/api/qstash?x=1`. A trailing `/` on `base` is
    /// ignored. Replaces [`trust_forwarded_headers`](Self::trust_forwarded_headers) and
    /// [`dangerously_skip_subject_check`](Self::dangerously_skip_subject_check): the last of
    /// the three calls wins.
    ///
    /// Defaults to off: only the path and query are compared, which survives proxies that
    /// change the scheme, host or port.
    pub fn public_base_url(mut self, base: impl AsRef<str>) -> Self {
        let base = base.as_ref().trim_end_matches('/');
        self.subject = SubjectPolicy::PublicBaseUrl(Arc::from(base));
        self
    }

    /// With `true`, compares `sub` with the whole URL built from the request's
    /// `X-Forwarded-Proto` (else the connection's scheme) and `X-Forwarded-Host` (else `Host`),
    /// plus its path and query. The first value of a comma-separated list is used.
    ///
    /// # Security
    ///
    /// Only turn this on behind a proxy that sets these headers itself: a client can send any
    /// value. Replaces [`public_base_url`](Self::public_base_url) and
    /// [`dangerously_skip_subject_check`](Self::dangerously_skip_subject_check); `false` goes
    /// back to the path-and-query default if forwarded headers were trusted.
    ///
    /// Defaults to `false`: forwarded headers are never read.
    pub fn trust_forwarded_headers(mut self, trust: bool) -> Self {
        if trust {
            self.subject = SubjectPolicy::Forwarded;
        } else if self.subject == SubjectPolicy::Forwarded {
            self.subject = SubjectPolicy::PathAndQuery;
        }
        self
    }

    /// Does not compare the token's `sub` with the request at all.
    ///
    /// # Security
    ///
    /// A token QStash signed for *any* of your endpoints is then accepted by this one, so a
    /// delivery meant for one endpoint can be replayed to another while its token is valid
    /// (5 minutes). Prefer [`public_base_url`](Self::public_base_url) when the path differs
    /// behind a proxy.
    ///
    /// Defaults to off.
    pub fn dangerously_skip_subject_check(mut self) -> Self {
        self.subject = SubjectPolicy::DangerouslySkip;
        self
    }

    /// The status for a delivery whose signature is valid but whose payload cannot be used: a
    /// body that does not deserialize into the extractor's type, an invalid callback body, or
    /// unusable delivery headers (no `Upstash-Message-Id`, a garbled `Upstash-Retried`). A
    /// retry cannot fix these, so by default QStash is told not to retry.
    ///
    /// Use 489 (the answer then carries `Upstash-NonRetryable-Error: true`, and QStash moves
    /// the message to the dead-letter queue at once) or 422 (QStash retries as usual). Another
    /// status is used as given; only 489 carries the non-retryable header.
    ///
    /// Defaults to 489.
    pub fn payload_error_status(mut self, status: StatusCode) -> Self {
        self.payload_error_status = status;
        self
    }

    /// Turns every refusal into your own error, like `JsonConfig::error_handler`. The refusal
    /// is logged before the handler is called.
    ///
    /// Defaults to none: the [`QStashError`] is answered as is (see its `ResponseError`).
    pub fn error_handler<F>(mut self, handler: F) -> Self
    where
        F: Fn(QStashError, &HttpRequest) -> actix_web::Error + Send + Sync + 'static,
    {
        self.error_handler = Some(Arc::new(handler));
        self
    }

    /// The verifier; rotate keys through it ([`Verifier::rotate`]) and every clone of this
    /// configuration sees the new keys.
    #[must_use]
    pub const fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Looks up the configuration in `app_data`: `QStashConfig`, then
    /// `web::Data<QStashConfig>`.
    pub(crate) fn from_req(req: &HttpRequest) -> Option<&Self> {
        req.app_data::<Self>()
            .or_else(|| req.app_data::<web::Data<Self>>().map(|d| d.as_ref()))
    }

    /// Turns a refusal into the error to answer with.
    pub(crate) fn error(&self, err: QStashError, req: &HttpRequest) -> actix_web::Error {
        match &self.error_handler {
            Some(handler) => handler(err, req),
            None => err.into(),
        }
    }
}

impl fmt::Debug for QStashConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject: &dyn fmt::Debug = match &self.subject {
            SubjectPolicy::PathAndQuery => &"path and query",
            SubjectPolicy::PublicBaseUrl(base) => base,
            SubjectPolicy::Forwarded => &"forwarded headers (trusted)",
            SubjectPolicy::DangerouslySkip => &"not checked (dangerous)",
        };
        f.debug_struct("QStashConfig")
            .field("verifier", &self.verifier)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("body_timeout", &self.body_timeout)
            .field("subject", subject)
            .field("payload_error_status", &self.payload_error_status)
            .field("error_handler", &self.error_handler.is_some())
            .finish()
    }
}

fn non_retryable_status() -> StatusCode {
    StatusCode::from_u16(NON_RETRYABLE_STATUS).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use qstash_receiver::SigningKeys;

    fn config() -> QStashConfig {
        QStashConfig::new(Verifier::new(SigningKeys::new("sig_a", "sig_b").unwrap()))
    }

    #[test]
    fn defaults() {
        let c = config();
        assert_eq!(c.max_body_bytes, 1_048_576);
        assert_eq!(c.body_timeout, Some(Duration::from_secs(10)));
        assert_eq!(c.clone().body_timeout(None).body_timeout, None);
        assert!(c.subject == SubjectPolicy::PathAndQuery);
        assert_eq!(c.payload_error_status.as_u16(), 489);
        assert!(c.error_handler.is_none());
    }

    #[test]
    fn subject_policies_replace_each_other() {
        let cases = [
            (
                "base url, trailing slash dropped",
                config().public_base_url("https://a.example/"),
                SubjectPolicy::PublicBaseUrl("https://a.example".into()),
            ),
            (
                "forwarded",
                config().trust_forwarded_headers(true),
                SubjectPolicy::Forwarded,
            ),
            (
                "forwarded off again",
                config()
                    .trust_forwarded_headers(true)
                    .trust_forwarded_headers(false),
                SubjectPolicy::PathAndQuery,
            ),
            (
                "false keeps a base url",
                config()
                    .public_base_url("https://a.example")
                    .trust_forwarded_headers(false),
                SubjectPolicy::PublicBaseUrl("https://a.example".into()),
            ),
            (
                "skip after base url",
                config()
                    .public_base_url("https://a.example")
                    .dangerously_skip_subject_check(),
                SubjectPolicy::DangerouslySkip,
            ),
            (
                "base url after skip",
                config()
                    .dangerously_skip_subject_check()
                    .public_base_url("https://b.example"),
                SubjectPolicy::PublicBaseUrl("https://b.example".into()),
            ),
        ];
        for (name, c, want) in cases {
            assert!(c.subject == want, "{name}: {c:?}");
        }
    }

    #[test]
    fn looked_up_as_value_then_data() {
        let req = TestRequest::default().to_http_request();
        assert!(QStashConfig::from_req(&req).is_none());

        let req = TestRequest::default()
            .app_data(config().max_body_bytes(1))
            .to_http_request();
        assert_eq!(QStashConfig::from_req(&req).unwrap().max_body_bytes, 1);

        let req = TestRequest::default()
            .app_data(web::Data::new(config().max_body_bytes(2)))
            .to_http_request();
        assert_eq!(QStashConfig::from_req(&req).unwrap().max_body_bytes, 2);

        let req = TestRequest::default()
            .app_data(web::Data::new(config().max_body_bytes(2)))
            .app_data(config().max_body_bytes(1))
            .to_http_request();
        assert_eq!(QStashConfig::from_req(&req).unwrap().max_body_bytes, 1);
    }

    #[test]
    fn can_be_built_once_and_cloned_into_every_worker() {
        // `HttpServer::new` needs a `Send` factory: a config or guard captured by it must be.
        fn send_sync<T: Send + Sync + Clone + 'static>() {}
        send_sync::<QStashConfig>();
        send_sync::<crate::QStashGuard>();
    }

    #[test]
    fn debug_redacts_keys() {
        let text = format!("{:?}", config().error_handler(|e, _| e.into()));
        assert!(!text.contains("sig_a") && !text.contains("sig_b"), "{text}");
        assert!(text.contains("error_handler: true"), "{text}");
    }
}
