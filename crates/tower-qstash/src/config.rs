//! [`QStashConfig`]: the verifier plus the HTTP-side policies (body limit, subject, answers).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use qstash_receiver::{ConfigError, NON_RETRYABLE_STATUS, Verifier};

use crate::rejection::QStashRejection;

/// The default body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The default total time allowed for reading a body: 10 seconds.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How the token's `sub` claim is compared with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubjectPolicy {
    /// The path and query of `sub` equal the request's.
    PathAndQuery,
    /// `sub` equals this base URL followed by the request's path and query.
    PublicBaseUrl(Box<str>),
    /// `sub` equals the URL rebuilt from `X-Forwarded-Proto`, `X-Forwarded-Host` / `Host` and
    /// the request's path and query.
    Forwarded,
    /// `sub` is not checked.
    DangerouslySkip,
}

type HookFn = dyn Fn(&QStashRejection) -> Response<Bytes> + Send + Sync;

/// A user's rejection hook; cloned into each rejection so that its `IntoResponse` can use it.
#[derive(Clone)]
pub(crate) struct RejectionHook(Arc<HookFn>);

impl RejectionHook {
    pub(crate) fn call(&self, rejection: &QStashRejection) -> Response<Bytes> {
        (self.0)(rejection)
    }
}

impl fmt::Debug for RejectionHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hook>")
    }
}

/// What the layer and the extractors need: a [`Verifier`], the body limit, the subject
/// policy and how to answer refusals.
///
/// Build it from a [`Verifier`] (`QStashConfig::from(verifier)` or [`QStashConfig::new`]) and
/// adjust it with the by-value builders; [`QStashLayer`](crate::QStashLayer) has the same
/// builders. Cheap to clone (one `Arc`); clones of the verifier share its keys, so
/// [`Verifier::rotate`] on a clone you kept is seen by every request.
///
/// # Examples
///
/// ```
/// use qstash_receiver::{SigningKeys, Verifier};
/// use tower_qstash::QStashConfig;
///
/// let verifier = Verifier::new(SigningKeys::new("sig_current", "sig_next")?);
/// let config = QStashConfig::new(verifier)
///     .max_body_bytes(64 * 1024)
///     .public_base_url("https://app.example.com");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct QStashConfig {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    verifier: Verifier,
    max_body_bytes: usize,
    body_timeout: Option<Duration>,
    subject: SubjectPolicy,
    payload_error_status: StatusCode,
    on_rejection: Option<RejectionHook>,
}

impl QStashConfig {
    /// A configuration with `verifier` and the defaults: 1 MiB body limit, 10 s to read the
    /// body, path-and-query subject check, no trust in forwarded headers, 489 for
    /// undeserializable payloads, the built-in rejection answers.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifier,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                body_timeout: Some(DEFAULT_BODY_TIMEOUT),
                subject: SubjectPolicy::PathAndQuery,
                payload_error_status: non_retryable_status(),
                on_rejection: None,
            }),
        }
    }

    /// A configuration over [`Verifier::from_env`] (`QSTASH_CURRENT_SIGNING_KEY`,
    /// `QSTASH_NEXT_SIGNING_KEY`, `QSTASH_REGION`, `QSTASH_DEV`), with the defaults.
    ///
    /// # Errors
    ///
    /// As [`Verifier::from_env`]: a missing or empty key variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Verifier::from_env().map(Self::new)
    }

    fn with(mut self, change: impl FnOnce(&mut Inner)) -> Self {
        change(Arc::make_mut(&mut self.inner));
        self
    }

    /// The largest body accepted. A `Content-Length` above it is refused with 413 before any
    /// byte is read; a body without one is counted while it is read and refused with 413 as
    /// soon as it grows past the limit, without reading the rest.
    ///
    /// Defaults to 1 MiB ([`DEFAULT_MAX_BODY_BYTES`]). QStash itself caps messages at a few MiB
    /// depending on the plan.
    pub fn max_body_bytes(self, limit: usize) -> Self {
        self.with(|c| c.max_body_bytes = limit)
    }

    /// The most time reading the body may take, in total, counted from the first time the layer
    /// (or extractor) has to wait for it; `None` for no limit. A body that is not whole by then
    /// is refused with `408 Request Timeout` and the rest is not read, so a client that trickles
    /// its body in a byte at a time holds a connection and at most the body limit in memory
    /// for this long, not for as long as it likes. QStash retries a 408 like any other failure,
    /// so a real delivery that was merely slow is delivered again.
    ///
    /// Defaults to 10 seconds ([`DEFAULT_BODY_TIMEOUT`]): QStash sends the whole body at once
    /// from a data centre, and 10 s is 100 KiB/s for the default 1 MiB limit. Raise it with the
    /// limit. The time to receive the request's *headers* is the server's to limit (hyper's
    /// `header_read_timeout`).
    ///
    /// The timer is Tokio's (feature `tokio`, on by default). Without that feature, or when
    /// polled outside a Tokio runtime, the body is read without a time limit.
    pub fn body_timeout(self, timeout: impl Into<Option<Duration>>) -> Self {
        let timeout = timeout.into();
        self.with(|c| c.body_timeout = timeout)
    }

    /// Compare the token's `sub` with the whole URL `base_url` + the request's path and query,
    /// e.g. `public_base_url("https://app.example.com")` for a request to `/api/hook?x=1`
    /// expects `sub == "https://app.example.com/api/hook?x=1"`. A trailing `/` on `base_url` is
    /// ignored; a path prefix (for a proxy that strips one) is kept.
    ///
    /// Defaults to off: the path and query of `sub` must equal the request's, which survives
    /// TLS-terminating proxies. Replaces the subject policy set by
    /// [`trust_forwarded_headers`](Self::trust_forwarded_headers) or
    /// [`dangerously_skip_subject_check`](Self::dangerously_skip_subject_check).
    pub fn public_base_url(self, base_url: impl Into<String>) -> Self {
        let base: String = base_url.into();
        let base = base.trim_end_matches('/').into();
        self.with(|c| c.subject = SubjectPolicy::PublicBaseUrl(base))
    }

    /// Do not compare the token's `sub` with the request at all.
    ///
    /// # Security
    ///
    /// A token that QStash signed for *any* of your endpoints (same keys) is then accepted by
    /// this one, so a delivery meant for one endpoint can be replayed to another within its
    /// five-minute validity. Prefer [`public_base_url`](Self::public_base_url) or the default.
    pub fn dangerously_skip_subject_check(self) -> Self {
        self.with(|c| c.subject = SubjectPolicy::DangerouslySkip)
    }

    /// With `true`, compare `sub` with the whole URL rebuilt from `X-Forwarded-Proto` (else the
    /// request's scheme, else `http`) and `X-Forwarded-Host` (else `Host`, else the request's
    /// authority), followed by the request's path and query. The first value of a
    /// comma-separated list is used. With `false`, return to the default policy if this one
    /// was set.
    ///
    /// Defaults to `false`: forwarded headers are never trusted unless you opt in.
    ///
    /// # Security
    ///
    /// Only opt in behind a proxy that overwrites these headers: any client can send them, and
    /// a client that can choose the host can make a token signed for another host's
    /// endpoint with the same path pass the check.
    pub fn trust_forwarded_headers(self, trust: bool) -> Self {
        self.with(|c| {
            if trust {
                c.subject = SubjectPolicy::Forwarded;
            } else if c.subject == SubjectPolicy::Forwarded {
                c.subject = SubjectPolicy::PathAndQuery;
            }
        })
    }

    /// The status for a delivery whose signature is valid but whose body does not
    /// deserialize into the extractor's type (or whose `Upstash-*` headers are unusable).
    ///
    /// Defaults to 489, sent with `Upstash-NonRetryable-Error: true`, which tells QStash not to
    /// retry (the message goes to the dead-letter queue at once: a retry cannot fix it). Only
    /// 489 and 422 make sense: 422 is the conventional HTTP answer, but QStash retries it.
    /// The `Upstash-NonRetryable-Error` header is sent with 489 only.
    pub fn payload_error_status(self, status: StatusCode) -> Self {
        self.with(|c| c.payload_error_status = status)
    }

    /// Build every rejection's response with `hook` instead of the built-in short text
    /// answers. The hook sees the [`QStashRejection`] (its [`status`](QStashRejection::status),
    /// [`reason`](QStashRejection::reason), [`default_response`](QStashRejection::default_response)).
    /// The tracing event for the rejection is emitted either way.
    ///
    /// Defaults to none. Give QStash a non-2xx answer for refused deliveries, or it counts them
    /// as delivered.
    pub fn on_rejection<F>(self, hook: F) -> Self
    where
        F: Fn(&QStashRejection) -> Response<Bytes> + Send + Sync + 'static,
    {
        let hook = RejectionHook(Arc::new(hook));
        self.with(|c| c.on_rejection = Some(hook))
    }

    /// The verifier (a clone shares its keys, so it can be kept to [`Verifier::rotate`]).
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    pub(crate) fn limit(&self) -> usize {
        self.inner.max_body_bytes
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.inner.body_timeout
    }

    pub(crate) fn subject_policy(&self) -> &SubjectPolicy {
        &self.inner.subject
    }

    pub(crate) fn payload_status(&self) -> StatusCode {
        self.inner.payload_error_status
    }

    pub(crate) fn hook(&self) -> Option<RejectionHook> {
        self.inner.on_rejection.clone()
    }
}

/// 489, which `http` has no constant for.
pub(crate) fn non_retryable_status() -> StatusCode {
    StatusCode::from_u16(NON_RETRYABLE_STATUS).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
}

impl From<Verifier> for QStashConfig {
    fn from(verifier: Verifier) -> Self {
        Self::new(verifier)
    }
}

impl fmt::Debug for QStashConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.inner;
        f.debug_struct("QStashConfig")
            .field("verifier", &c.verifier)
            .field("max_body_bytes", &c.max_body_bytes)
            .field("body_timeout", &c.body_timeout)
            .field("subject", &c.subject)
            .field("payload_error_status", &c.payload_error_status)
            .field("on_rejection", &c.on_rejection)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qstash_receiver::SigningKeys;

    fn config() -> QStashConfig {
        QStashConfig::new(Verifier::new(SigningKeys::new("sig_a", "sig_b").unwrap()))
    }

    #[test]
    fn defaults() {
        let c = config();
        assert_eq!(c.limit(), 1024 * 1024);
        assert_eq!(c.timeout(), Some(Duration::from_secs(10)));
        assert_eq!(*c.subject_policy(), SubjectPolicy::PathAndQuery);
        assert_eq!(c.payload_status().as_u16(), 489);
        assert!(c.hook().is_none());
    }

    #[test]
    fn subject_policy_builders() {
        struct Case {
            name: &'static str,
            build: fn(QStashConfig) -> QStashConfig,
            want: SubjectPolicy,
        }
        let cases = [
            Case {
                name: "base url, trailing slash dropped",
                build: |c| c.public_base_url("https://a.example/"),
                want: SubjectPolicy::PublicBaseUrl("https://a.example".into()),
            },
            Case {
                name: "forwarded",
                build: |c| c.trust_forwarded_headers(true),
                want: SubjectPolicy::Forwarded,
            },
            Case {
                name: "forwarded switched off again",
                build: |c| {
                    c.trust_forwarded_headers(true)
                        .trust_forwarded_headers(false)
                },
                want: SubjectPolicy::PathAndQuery,
            },
            Case {
                name: "false keeps a base url",
                build: |c| {
                    c.public_base_url("https://a.example")
                        .trust_forwarded_headers(false)
                },
                want: SubjectPolicy::PublicBaseUrl("https://a.example".into()),
            },
            Case {
                name: "skip",
                build: QStashConfig::dangerously_skip_subject_check,
                want: SubjectPolicy::DangerouslySkip,
            },
        ];
        for case in cases {
            assert_eq!(
                *(case.build)(config()).subject_policy(),
                case.want,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn builders_do_not_change_clones() {
        let a = config();
        let b = a.clone().max_body_bytes(10).body_timeout(None);
        assert_eq!((a.limit(), b.limit()), (1024 * 1024, 10));
        assert_eq!(
            (a.timeout(), b.timeout()),
            (Some(DEFAULT_BODY_TIMEOUT), None)
        );
        let c = b.body_timeout(Duration::from_millis(1500));
        assert_eq!(c.timeout(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn debug_redacts_keys() {
        let text = format!("{:?}", config().on_rejection(|r| r.default_response()));
        assert!(!text.contains("sig_a"), "{text}");
        assert!(
            text.contains("<redacted>") && text.contains("<hook>"),
            "{text}"
        );
    }
}
