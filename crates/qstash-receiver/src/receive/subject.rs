//! How the receiving pipeline derives a request's [`Subject`] from its [`SubjectPolicy`]; the
//! comparison itself is [`crate::subject`]'s.

use std::borrow::Cow;

use crate::headers::HeaderLookup;
use crate::receive::{RequestHead, RequestTarget};
use crate::subject::{Subject, SubjectPolicy};

const FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
const FORWARDED_HOST: http::HeaderName = http::HeaderName::from_static("x-forwarded-host");

/// What the pipeline compares `sub` with for one request, owned where it had to be built.
pub(crate) enum Expected<'a> {
    Subject(Subject<'a>),
    Url(String),
    /// A path and a query given as decoded pairs (serverless events that keep no raw query).
    DecodedQuery {
        prefix: Option<Cow<'a, str>>,
        path: &'a str,
        query: &'a [(&'a str, &'a str)],
    },
}

impl Expected<'_> {
    /// The [`Subject`] the verifier compares `sub` with.
    pub(crate) fn subject(&self) -> Subject<'_> {
        match self {
            Self::Subject(subject) => *subject,
            Self::Url(url) => Subject::Url(url),
            Self::DecodedQuery {
                prefix,
                path,
                query,
            } => Subject::DecodedQuery {
                prefix: prefix.as_deref(),
                path,
                query,
            },
        }
    }
}

pub(crate) fn expected<'a, H: HeaderLookup + ?Sized>(
    policy: &'a SubjectPolicy,
    head: &RequestHead<'a, H>,
) -> Expected<'a> {
    match (policy, head.target) {
        (SubjectPolicy::DangerouslySkipCheck, _) => {
            Expected::Subject(Subject::DangerouslySkipCheck)
        }
        (SubjectPolicy::PathAndQuery, RequestTarget::Raw(target)) => {
            Expected::Subject(Subject::PathAndQuery(target))
        }
        (SubjectPolicy::PublicBaseUrl(base), RequestTarget::Raw(target)) => {
            Expected::Url(format!("{}{}", base.as_str(), slash(target)))
        }
        (SubjectPolicy::TrustForwardedHeaders, RequestTarget::Raw(target)) => {
            match forwarded_origin(head) {
                Some(origin) => Expected::Url(format!("{origin}{}", slash(target))),
                None => Expected::Subject(Subject::NoHost),
            }
        }
        (SubjectPolicy::PathAndQuery, RequestTarget::DecodedQuery { path, query }) => {
            Expected::DecodedQuery {
                prefix: None,
                path,
                query,
            }
        }
        (SubjectPolicy::PublicBaseUrl(base), RequestTarget::DecodedQuery { path, query }) => {
            Expected::DecodedQuery {
                prefix: Some(Cow::Borrowed(base.as_str())),
                path,
                query,
            }
        }
        (SubjectPolicy::TrustForwardedHeaders, RequestTarget::DecodedQuery { path, query }) => {
            match forwarded_origin(head) {
                Some(origin) => Expected::DecodedQuery {
                    prefix: Some(Cow::Owned(origin)),
                    path,
                    query,
                },
                None => Expected::Subject(Subject::NoHost),
            }
        }
    }
}

/// A target that does not start with `/` (`*`, or an empty one) is appended as `/` + it, so
/// that `https://host` + `?q` reads `https://host/?q`.
fn slash(target: &str) -> Cow<'_, str> {
    if target.starts_with('/') {
        Cow::Borrowed(target)
    } else {
        Cow::Owned(format!("/{target}"))
    }
}

fn first_value<H: HeaderLookup + ?Sized>(headers: &H, name: &http::HeaderName) -> Option<String> {
    let value = headers.get_all(name).next()?;
    let value = std::str::from_utf8(value).ok()?;
    value
        .split(',')
        .next()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

/// `scheme://host` from the forwarded headers, then the request's own; the scheme is
/// lowercased (`HTTPS` is `https`), the host is kept as sent.
fn forwarded_origin<H: HeaderLookup + ?Sized>(head: &RequestHead<'_, H>) -> Option<String> {
    let proto = first_value(head.headers, &FORWARDED_PROTO)
        .or_else(|| head.scheme.map(str::to_owned))
        .unwrap_or_else(|| "http".to_owned());
    let host = first_value(head.headers, &FORWARDED_HOST)
        .or_else(|| first_value(head.headers, &http::header::HOST))
        .or_else(|| head.authority.filter(|a| !a.is_empty()).map(str::to_owned))?;
    Some(format!("{}://{host}", proto.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use crate::receive::RequestHead;
    use crate::subject::{BaseUrl, SubjectPolicy};

    /// `cargo lambda watch` serves a Function URL at `/lambda-url/<function>/…` but hands the
    /// function an event whose `rawPath` lacks that prefix: a delivery QStash signed for
    /// `http://127.0.0.1:9000/lambda-url/fn/api/orders?x=1` reaches the router as
    /// `/api/orders?x=1`. A base URL with the prefix is what makes the two the same URL.
    #[test]
    fn a_base_url_with_a_path_prefix_restores_what_the_platform_strips() {
        use crate::{ErrorKind, Receiver, Signer, SigningKeys, Verifier};

        const KEY: &str = "sig_prefix_current";
        const NOW: i64 = 1_700_000_000;
        let headers = |url: &str| {
            Signer::new(KEY)
                .unwrap()
                .delivery_headers_at(url, b"{}", "msg_prefix", 0, NOW)
        };
        let refused = |policy: SubjectPolicy, signed_for: &str| {
            let receiver = Receiver::new(Verifier::new(
                SigningKeys::new(KEY, "sig_prefix_next").unwrap(),
            ))
            .clock(crate::Clock::fixed(NOW))
            .subject_policy(policy);
            let headers = headers(signed_for);
            let head = RequestHead::new("POST", "/api/orders?x=1", &headers);
            receiver
                .check_head(&head)
                .err()
                .map(|refusal| refusal.error().map(crate::Error::kind))
        };
        let prefixed = || SubjectPolicy::public_base_url("http://127.0.0.1:9000/lambda-url/fn/");
        let signed = "http://127.0.0.1:9000/lambda-url/fn/api/orders?x=1";

        assert_eq!(refused(prefixed().unwrap(), signed), None);
        // Without the setting, the path differs: the failure the setting exists for.
        assert_eq!(
            refused(SubjectPolicy::PathAndQuery, signed),
            Some(Some(ErrorKind::SubjectMismatch))
        );
        // The prefix is compared, not skipped: another function, another port, no prefix.
        for other in [
            "http://127.0.0.1:9000/lambda-url/other/api/orders?x=1",
            "http://127.0.0.1:9001/lambda-url/fn/api/orders?x=1",
            "http://127.0.0.1:9000/api/orders?x=1",
            "http://127.0.0.1:9000/lambda-url/fn/api/orders?x=2",
        ] {
            assert_eq!(
                refused(prefixed().unwrap(), other),
                Some(Some(ErrorKind::SubjectMismatch)),
                "{other}"
            );
        }
        assert_eq!(
            prefixed().unwrap(),
            SubjectPolicy::PublicBaseUrl(
                BaseUrl::new("http://127.0.0.1:9000/lambda-url/fn").unwrap()
            )
        );
    }
}
