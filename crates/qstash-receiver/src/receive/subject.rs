//! [`SubjectPolicy`]: what the token's `sub` claim is compared with, and how the receiving
//! pipeline derives that from a request.

use std::borrow::Cow;
use std::fmt;

use crate::error::ConfigError;
use crate::headers::HeaderLookup;
use crate::receive::{RequestHead, RequestTarget};
use crate::verify::Subject;

/// What a delivery's `sub` claim (the URL the message was published to) must match.
///
/// One policy per [`Receiver`](crate::Receiver): the variants exclude each other, so no
/// combination of settings can silently override another.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SubjectPolicy {
    /// The path and query of `sub` must equal the request target the server saw. The
    /// default: it survives TLS-terminating proxies that change scheme, host or port.
    ///
    /// # Security
    ///
    /// The host is not compared: a token your QStash account signed for another host with the
    /// same path and query is accepted too. When several of your hosts share paths, use
    /// [`SubjectPolicy::PublicBaseUrl`].
    #[default]
    PathAndQuery,
    /// `sub` must equal this base URL followed by the request target: the whole URL is
    /// compared, scheme and host included.
    PublicBaseUrl(BaseUrl),
    /// `sub` must equal the URL rebuilt from `X-Forwarded-Proto` and `X-Forwarded-Host` (first
    /// values), falling back to the request's own scheme (else `http`) and its `Host` header or
    /// URI authority; a request with no host at all is refused.
    ///
    /// # Security
    ///
    /// Only behind a proxy that sets or strips these headers: a client that can send them
    /// chooses the URL its token is compared with.
    TrustForwardedHeaders,
    /// `sub` is not checked.
    ///
    /// # Security
    ///
    /// A token that QStash signed for *any* of your endpoints is then accepted by this one, so
    /// a delivery meant for one endpoint can be replayed to another within its validity window.
    DangerouslySkipCheck,
}

impl SubjectPolicy {
    /// [`SubjectPolicy::PublicBaseUrl`] from a URL such as `https://app.example.com` or, behind
    /// a path prefix (an API Gateway base-path mapping), `https://api.example.com/v1`.
    ///
    /// # Errors
    ///
    /// As [`BaseUrl::new`].
    pub fn public_base_url(url: impl AsRef<str>) -> Result<Self, ConfigError> {
        BaseUrl::new(url).map(Self::PublicBaseUrl)
    }
}

/// An absolute `http` or `https` URL with a host, no query and no fragment; a trailing `/`
/// is dropped, so the request target is appended as it is.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl(Box<str>);

impl BaseUrl {
    /// Checks and keeps `url`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidBaseUrl`] for anything but `http(s)://host[:port][/prefix]`.
    pub fn new(url: impl AsRef<str>) -> Result<Self, ConfigError> {
        let url = url.as_ref().trim_end_matches('/');
        let invalid = |reason| Err(ConfigError::InvalidBaseUrl { reason });
        let Some(rest) = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
        else {
            return invalid("it must start with `https://` or `http://`");
        };
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() {
            return invalid("it has no host");
        }
        if url.contains(['?', '#']) {
            return invalid("it must not have a query or fragment");
        }
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid("it must be visible ASCII without spaces");
        }
        Ok(Self(url.into()))
    }

    /// The URL, without a trailing `/`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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
    /// [`SubjectPolicy::TrustForwardedHeaders`] and the request names no host.
    NoHost,
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
                None => Expected::NoHost,
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
                None => Expected::NoHost,
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

/// Whether `sub` names `path` with exactly the query pairs `query` (decoded), in any order,
/// under `prefix` (a base URL) when there is one, else under any origin.
///
/// The pairs are a multiset: every name/value pair of `sub`'s query, percent-decoded (`+` as a
/// space), must be in `query` as often as in `sub`, and nothing else. Order is all it gives
/// up, which a server reading the query never depends on for meaning.
pub(crate) fn same_decoded(
    sub: &str,
    prefix: Option<&str>,
    path: &str,
    query: &[(&str, &str)],
) -> bool {
    let sub = sub.split_once('#').map_or(sub, |(before, _)| before);
    let (sub_url, sub_query) = sub.split_once('?').unwrap_or((sub, ""));
    let sub_path = match prefix {
        Some(prefix) => match sub_url.strip_prefix(prefix) {
            Some(rest) => rest,
            None => return false,
        },
        None => match crate::verify::path_and_query(sub_url) {
            Some(path) => path,
            None => return false,
        },
    };
    let sub_path = if sub_path.is_empty() { "/" } else { sub_path };
    let path = if path.is_empty() { "/" } else { path };
    if sub_path != path {
        return false;
    }
    let mut theirs: Vec<(Cow<'_, str>, Cow<'_, str>)> = sub_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect();
    if theirs.len() != query.len() {
        return false;
    }
    for (name, value) in query {
        match theirs.iter().position(|(n, v)| n == name && v == value) {
            Some(at) => {
                theirs.swap_remove(at);
            }
            None => return false,
        }
    }
    theirs.is_empty()
}

/// Percent-decoding with `+` as a space (`application/x-www-form-urlencoded`); an invalid
/// escape or invalid UTF-8 is kept as it is written.
fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(_) => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let ok = [
            ("https://a.example", "https://a.example"),
            ("https://a.example/", "https://a.example"),
            ("http://a.example:8080", "http://a.example:8080"),
            ("https://api.example.com/v1/", "https://api.example.com/v1"),
        ];
        for (url, want) in ok {
            assert_eq!(BaseUrl::new(url).unwrap().as_str(), want, "{url}");
        }
        for bad in [
            "a.example",
            "ftp://a.example",
            "https://",
            "https:///x",
            "https://a.example?x=1",
            "https://a.example/#f",
            "https://a example",
        ] {
            assert!(BaseUrl::new(bad).is_err(), "{bad}");
        }
    }

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

    #[test]
    fn decoded_queries_are_multisets() {
        let sub = "https://x.example/prod/hook?b=2&a=one%20two&a=3&e=%E2%9C%93&p=a+b";
        let query = [
            ("a", "3"),
            ("e", "✓"),
            ("b", "2"),
            ("a", "one two"),
            ("p", "a b"),
        ];
        assert!(same_decoded(sub, None, "/prod/hook", &query));
        assert!(same_decoded(
            sub,
            Some("https://x.example/prod"),
            "/hook",
            &query
        ));
        assert!(!same_decoded(
            sub,
            Some("https://y.example/prod"),
            "/hook",
            &query
        ));
        assert!(!same_decoded(sub, None, "/prod/other", &query));
        assert!(!same_decoded(sub, None, "/prod/hook", &query[..4]));
        let mut twice = query.to_vec();
        twice.push(("a", "3"));
        assert!(!same_decoded(sub, None, "/prod/hook", &twice));
        let changed = [
            ("a", "3"),
            ("e", "✓"),
            ("b", "2"),
            ("a", "one two"),
            ("p", "a+b"),
        ];
        assert!(!same_decoded(sub, None, "/prod/hook", &changed));
        assert!(same_decoded("https://x.example", None, "/", &[]));
        assert!(same_decoded("https://x.example/h?", None, "/h", &[]));
        assert!(!same_decoded("not a url", None, "/", &[]));
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%ff"), "%ff");
    }
}
