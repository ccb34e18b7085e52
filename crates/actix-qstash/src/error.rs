//! [`QStashError`]: a refusal of the core's pipeline as an actix-web error, and the hook that
//! can answer it differently.

use std::fmt;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use qstash_receiver::Refusal;

/// A refused delivery: the core's [`Refusal`], answered exactly as it says (its
/// [`status`](Refusal::status), [`headers`](Refusal::headers) and
/// [`body_text`](Refusal::body_text)).
///
/// The answer never says why; [`Refusal::reason`] and [`Refusal::detail`] go to the logs,
/// through [`Refusal::log`], once, when the refusal is answered.
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
}

impl From<Refusal> for QStashError {
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
        let mut res = HttpResponse::build(status(refusal));
        if refusal.closes_connection() {
            // actix-http writes `Connection` from the response head, not from its headers.
            res.force_close();
        }
        let mut res = res.body(refusal.body_text());
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
/// Give it to the middleware ([`QStashMiddleware::error_handler`](crate::QStashMiddleware::error_handler)),
/// which applies it to everything behind it, extractors included. For the extractors without
/// the middleware, put it in `app_data` (`QStashErrorHandler`, then
/// `web::Data<QStashErrorHandler>`).
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

/// Answers `refusal`: logs it (the core's one event), then turns it into the error to answer
/// with, through `handler` if there is one.
pub(crate) fn answer(
    req: &HttpRequest,
    refusal: Refusal,
    handler: Option<&QStashErrorHandler>,
) -> actix_web::Error {
    refusal.log();
    match handler {
        Some(handler) => (handler.0)(refusal, req),
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
