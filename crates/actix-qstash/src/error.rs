//! [`QStashError`]: the core's [`Answer`] as an actix-web error and response (the crate's one
//! writer), and the `app_data` hook that can answer refusals differently.

use std::fmt;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use qstash_receiver::{Answer, receive::Refusal};

/// The core's [`Answer`] for actix-web: a refusal of the middleware or an extractor, an
/// exactly-once middleware's duplicate, or a handler's "do not retry" / "retry later",
/// answered exactly as it says (its [`status`](Answer::status), [`headers`](Answer::headers)
/// and [`body_text`](Answer::body_text)).
///
/// [`Answer::reason`] and [`Answer::detail`] go to the logs through [`Answer::log`], once,
/// when the response is built ([`ResponseError::error_response`], or
/// [`respond`](Self::respond)).
///
/// # Examples
///
/// A handler's "a retry cannot help" (489 with `Upstash-NonRetryable-Error: true`):
///
/// ```
/// use actix_qstash::QStashError;
/// use actix_web::HttpResponse;
/// use qstash_receiver::Answer;
///
/// async fn handler() -> Result<HttpResponse, QStashError> {
///     Err(Answer::do_not_retry("order 0 does not exist").into())
/// }
/// ```
#[derive(Debug)]
pub struct QStashError {
    refusal: Refusal,
}

impl QStashError {
    /// The core's decision.
    #[must_use]
    pub const fn refusal(&self) -> &Refusal {
        &self.refusal
    }

    /// The core's decision, owned.
    #[must_use]
    pub fn into_refusal(self) -> Refusal {
        self.refusal
    }

    /// Logs the answer and builds the response, as [`ResponseError::error_response`] does,
    /// for answers that are not errors (a duplicate's 200).
    #[must_use]
    pub fn respond(&self) -> HttpResponse {
        self.error_response()
    }
}

impl From<Answer> for QStashError {
    fn from(refusal: Refusal) -> Self {
        Self { refusal }
    }
}

impl fmt::Display for QStashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.refusal, f)
    }
}

impl std::error::Error for QStashError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.refusal)
    }
}

impl ResponseError for QStashError {
    fn status_code(&self) -> StatusCode {
        status(&self.refusal)
    }

    fn error_response(&self) -> HttpResponse {
        let refusal = &self.refusal;
        refusal.log();
        let mut res = HttpResponse::build(status(refusal));
        if refusal.closes_connection() {
            // actix-http writes `Connection` from the response head, not from its headers.
            res.force_close();
        }
        let mut res = res.body(refusal.body());
        let headers = res.headers_mut();
        for (name, value) in refusal.headers() {
            // The core's names and values are valid in every version of `http`.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_str().as_bytes()),
                HeaderValue::from_bytes(value.as_bytes()),
            ) {
                headers.append(name, value);
            }
        }
        res
    }
}

fn status(refusal: &Refusal) -> StatusCode {
    StatusCode::from_u16(refusal.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

type Hook = dyn Fn(Refusal, &HttpRequest) -> actix_web::Error + Send + Sync;

/// Answers refusals your own way, like `JsonConfig::error_handler`: gets the core's
/// [`Refusal`] (already logged) and the request, returns the error to answer with.
///
/// Put it in `app_data` (`QStashErrorHandler`, then `web::Data<QStashErrorHandler>`), where
/// the middleware and the extractors look it up.
///
/// # Examples
///
/// ```
/// use actix_qstash::QStashErrorHandler;
/// use actix_web::{App, error};
///
/// let app = App::new().app_data(QStashErrorHandler::new(|refusal, _req| {
///     error::ErrorForbidden(refusal.reason().as_str())
/// }));
/// ```
#[derive(Clone)]
pub struct QStashErrorHandler(Arc<Hook>);

impl QStashErrorHandler {
    /// A handler calling `hook`.
    pub fn new<F>(hook: F) -> Self
    where
        F: Fn(Refusal, &HttpRequest) -> actix_web::Error + Send + Sync + 'static,
    {
        Self(Arc::new(hook))
    }

    /// The handler in `app_data`: `QStashErrorHandler`, then `web::Data<QStashErrorHandler>`.
    pub(crate) fn from_req(req: &HttpRequest) -> Option<&Self> {
        req.app_data::<Self>()
            .or_else(|| req.app_data::<web::Data<Self>>().map(|d| d.get_ref()))
    }
}

impl fmt::Debug for QStashErrorHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QStashErrorHandler(..)")
    }
}

/// Answers `refusal`: through `handler` if there is one (which gets it logged, the core's
/// one event), else as a [`QStashError`], which logs it when actix-web builds its response.
pub(crate) fn answer(
    req: &HttpRequest,
    refusal: Refusal,
    handler: Option<&QStashErrorHandler>,
) -> actix_web::Error {
    match handler {
        Some(handler) => {
            refusal.log();
            (handler.0)(refusal, req)
        }
        None => QStashError::from(refusal).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody as _;
    use qstash_receiver::{Receiver, RequestHead, SigningKeys, Verifier};

    fn refusal(headers: &http::HeaderMap, version: http::Version) -> Refusal {
        let receiver = Receiver::new(Verifier::new(SigningKeys::new("sig_a", "sig_b").unwrap()));
        receiver
            .check_head(&RequestHead::new("POST", "/", headers).version(version))
            .unwrap_err()
    }

    #[test]
    fn answers_exactly_what_the_core_decided() {
        for version in [http::Version::HTTP_11, http::Version::HTTP_2] {
            let refusal = refusal(&http::HeaderMap::new(), version);
            let want = refusal.to_response();
            let res = QStashError::from(refusal).error_response();
            assert_eq!(res.status().as_u16(), want.status().as_u16(), "{version:?}");
            let got: Vec<(String, Vec<u8>)> = res
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            let expected: Vec<(String, Vec<u8>)> = want
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            let mut sorted = (got, expected);
            sorted.0.sort();
            sorted.1.sort();
            assert_eq!(sorted.0, sorted.1, "{version:?}");
            assert_eq!(
                res.head().connection_type() == actix_web::http::ConnectionType::Close,
                version == http::Version::HTTP_11,
                "{version:?}: the head closes the connection when the core says so"
            );
            let body = res.into_body().try_into_bytes().unwrap();
            assert_eq!(body, want.body(), "{version:?}");
        }
    }
}
