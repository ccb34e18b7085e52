//! The `sub` rule: what a token's `sub` claim (the URL QStash delivered to) is compared
//! with, and the comparison itself. The verifier takes a [`Subject`] and applies the rule here;
//! the receiving pipeline derives the [`Subject`] of a request from its [`SubjectPolicy`].

use std::borrow::Cow;
use std::fmt;

use crate::error::{ConfigError, Error};

/// What the token's `sub` claim is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject<'a> {
    /// The whole URL must equal `sub`, e.g. `https://app.example.com/api/qstash?x=1`, byte for
    /// byte but for one rule: an empty path is `/` (a message published to
    /// `https://app.example.com?x=1` reaches the server as `/?x=1`, and its `sub` matches
    /// `https://app.example.com/?x=1`).
    Url(&'a str),
    /// The path and query of `sub` must equal this request target (`/api/qstash?x=1`). This
    /// survives TLS-terminating proxies that change scheme, host or port; an empty target,
    /// or an empty path in `sub`, means `/`.
    PathAndQuery(&'a str),
    /// A path and a query given as decoded pairs, for platforms that keep no raw query
    /// (API Gateway REST and ALB events): `sub` must name `path` with exactly these pairs,
    /// percent-decoded (`+` as a space), in any order, under `prefix` (a base URL) when there
    /// is one, else under any origin.
    DecodedQuery {
        /// The base URL `sub` must start with, if any.
        prefix: Option<&'a str>,
        /// The request's path.
        path: &'a str,
        /// The request's query pairs, decoded.
        query: &'a [(&'a str, &'a str)],
    },
    /// There is no URL to compare with (a policy that rebuilds the URL from the request, and
    /// a request that names no host): every `sub` is refused.
    NoHost,
    /// Do not check `sub`.
    ///
    /// # Security
    ///
    /// A token that QStash signed for *any* of your endpoints is then accepted by this one, so
    /// a delivery meant for one endpoint can be replayed to another within its validity window.
    DangerouslySkipCheck,
}

impl Subject<'_> {
    /// Whether a token's `sub` claim passes this check: the comparison the verifier makes,
    /// for tools that explain a refusal.
    #[must_use]
    pub fn matches(&self, sub: &str) -> bool {
        check(sub, *self).is_ok()
    }
}

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

/// The path and query of an absolute URL (`/` when it has neither); `None` when `url` is not
/// absolute. The fragment, which never reaches a server, is dropped.
#[must_use]
pub fn path_and_query(url: &str) -> Option<&str> {
    let rest = &url[after_scheme(url)?..];
    let rest = memchr::memchr(b'#', rest.as_bytes()).map_or(rest, |end| &rest[..end]);
    let start = memchr::memchr2(b'/', b'?', rest.as_bytes()).unwrap_or(rest.len());
    let target = &rest[start..];
    Some(if target.is_empty() { "/" } else { target })
}

/// Where what follows the first `://` of `url` starts (`url.find("://")? + 3`, without the
/// substring searcher's set-up, which costs more than the search in a URL this short).
fn after_scheme(url: &str) -> Option<usize> {
    let bytes = url.as_bytes();
    let mut from = 0;
    while let Some(colon) = memchr::memchr(b':', &bytes[from..]) {
        let colon = from + colon;
        if bytes[colon + 1..].starts_with(b"//") {
            return Some(colon + 3);
        }
        from = colon + 1;
    }
    None
}

fn normalize_target(target: &str) -> &str {
    if target.is_empty() { "/" } else { target }
}

/// Whether two request targets are the same, where a target that starts with its query or
/// fragment (that of a URL with an empty path, `https://host?q`) stands for `/` + it, as a
/// URL with an authority and an empty path means the path `/` (RFC 3986, section 6.2.3).
fn same_target(a: &str, b: &str) -> bool {
    a == b
        || match (a.strip_prefix('/'), b.strip_prefix('/')) {
            (Some(a), None) => b.starts_with(['?', '#']) && a == b,
            (None, Some(b)) => a.starts_with(['?', '#']) && a == b,
            _ => false,
        }
}

/// Whether two absolute URLs are the same, where an empty path is the same as `/`
/// (`https://host` is `https://host/`, `https://host?q` is `https://host/?q`): QStash keeps
/// `sub` as the URL was published, while a server only ever sees a path that starts with `/`.
/// Anything else is compared byte for byte.
fn same_url(sub: &str, url: &str) -> bool {
    fn split(url: &str) -> Option<(&str, &str)> {
        let scheme_end = after_scheme(url)?;
        let end = url[scheme_end..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| scheme_end + i);
        Some(url.split_at(end))
    }
    if sub == url {
        return true;
    }
    match (split(sub), split(url)) {
        (Some((origin_a, tail_a)), Some((origin_b, tail_b))) => {
            origin_a == origin_b && same_target(normalize_target(tail_a), normalize_target(tail_b))
        }
        _ => false,
    }
}

/// The `sub` rule: whether `sub` passes `subject`, or the subject-mismatch error.
pub(crate) fn check(sub: &str, subject: Subject<'_>) -> Result<(), Error> {
    match subject {
        Subject::Url(url) if same_url(sub, url) => Ok(()),
        Subject::Url(url) => Err(Error::subject(sub, url)),
        Subject::PathAndQuery(target) => {
            let target = normalize_target(target);
            if path_and_query(sub).is_some_and(|own| same_target(own, target)) {
                Ok(())
            } else {
                Err(Error::subject(sub, target))
            }
        }
        Subject::DecodedQuery {
            prefix,
            path,
            query,
        } => {
            if same_decoded(sub, prefix, path, query) {
                Ok(())
            } else {
                Err(Error::subject(sub, path))
            }
        }
        Subject::NoHost => Err(Error::subject(sub, "(no host in the request)")),
        Subject::DangerouslySkipCheck => Ok(()),
    }
}

/// Whether `sub` names `path` with exactly the query pairs `query` (decoded), in any order,
/// under `prefix` (a base URL) when there is one, else under any origin.
///
/// The pairs are a multiset: every name/value pair of `sub`'s query, percent-decoded (`+` as a
/// space), must be in `query` as often as in `sub`, and nothing else. Order is all it gives
/// up, which a server reading the query never depends on for meaning.
fn same_decoded(sub: &str, prefix: Option<&str>, path: &str, query: &[(&str, &str)]) -> bool {
    let sub = sub.split_once('#').map_or(sub, |(before, _)| before);
    let (sub_url, sub_query) = sub.split_once('?').unwrap_or((sub, ""));
    let sub_path = match prefix {
        Some(prefix) => match sub_url.strip_prefix(prefix) {
            Some(rest) => rest,
            None => return false,
        },
        None => match path_and_query(sub_url) {
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

    /// Every string of up to seven characters from `:`, `/`, `a` and `é`: the hand-written
    /// search finds what `str::find("://")` finds.
    #[test]
    fn after_scheme_is_find_of_the_separator() {
        let alphabet = [":", "/", "a", "é"];
        let mut strings = vec![String::new()];
        for _ in 0..7 {
            let longer: Vec<String> = strings
                .iter()
                .filter(|s| s.chars().count() == strings.last().map_or(0, |l| l.chars().count()))
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(longer);
        }
        assert!(strings.len() > 20_000);
        for s in &strings {
            assert_eq!(after_scheme(s), s.find("://").map(|i| i + 3), "{s:?}");
        }
    }

    #[test]
    fn path_and_query_of_urls() {
        let cases = [
            ("https://a.example/x/y?z=1", Some("/x/y?z=1")),
            ("https://a.example", Some("/")),
            ("https://a.example?q", Some("?q")),
            ("http://a.example:8080/p#frag", Some("/p")),
            ("https://user@a.example/p/", Some("/p/")),
            ("a.example/p", None),
        ];
        for (url, want) in cases {
            assert_eq!(path_and_query(url), want, "{url}");
        }
    }

    #[test]
    fn subject_policies() {
        let sub = "https://app.example.com/api/hook?team=1";
        assert!(check(sub, Subject::Url(sub)).is_ok());
        assert!(check(sub, Subject::Url("http://app.example.com/api/hook?team=1")).is_err());
        assert!(check(sub, Subject::PathAndQuery("/api/hook?team=1")).is_ok());
        assert!(check(sub, Subject::PathAndQuery("/api/hook")).is_err());
        assert!(check(sub, Subject::PathAndQuery("/api/hook?team=2")).is_err());
        assert!(check("https://a.example", Subject::PathAndQuery("")).is_ok());
        assert!(check("https://a.example", Subject::PathAndQuery("/")).is_ok());
        assert!(check("not a url", Subject::PathAndQuery("/")).is_err());
        assert!(check("anything", Subject::DangerouslySkipCheck).is_ok());
        let err = check(sub, Subject::PathAndQuery("/other")).unwrap_err();
        assert_eq!(err.subjects(), Some((sub, "/other")));
        assert!(err.to_string().contains("/other"), "{err}");
    }

    #[test]
    fn an_empty_path_is_the_root() {
        struct Case {
            sub: &'static str,
            url: &'static str,
            same: bool,
        }
        let case = |sub, url, same| Case { sub, url, same };
        let cases = [
            case("https://a.example", "https://a.example/", true),
            case("https://a.example/", "https://a.example", true),
            case("https://a.example?q=1", "https://a.example/?q=1", true),
            case("https://a.example/?q=1", "https://a.example?q=1", true),
            case("https://a.example#f", "https://a.example/#f", true),
            case("https://a.example:8443", "https://a.example:8443/", true),
            case("https://a.example", "https://a.example//", false),
            case("https://a.example?q=1", "https://a.example/?q=2", false),
            case("https://a.example?q=1", "https://a.example/x?q=1", false),
            case("https://a.example", "https://b.example/", false),
            case("https://a.example", "http://a.example/", false),
            case("https://a.example", "https://a.example.evil/", false),
            case("https://a.example/x", "https://a.example/x/", false),
            case("https://a.example/x", "https://a.examplex", false),
            case("https://a.example/X", "https://a.example/x", false),
            case("not a url", "not a url/", false),
            case("", "/", false),
        ];
        for Case { sub, url, same } in cases {
            assert_eq!(same_url(sub, url), same, "{sub} vs {url}");
            assert_eq!(same_url(url, sub), same, "{url} vs {sub}");
            assert_eq!(
                check(sub, Subject::Url(url)).is_ok(),
                same,
                "{sub} vs {url}"
            );
        }
        let targets = [
            ("https://a.example?q=1", "/?q=1", true),
            ("https://a.example?q=1", "?q=1", true),
            ("https://a.example/?q=1", "/?q=1", true),
            ("https://a.example?q=1", "/x?q=1", false),
            ("https://a.example?q=1", "/?q=2", false),
            ("https://a.example/x", "x", false),
        ];
        for (sub, target, same) in targets {
            assert_eq!(
                check(sub, Subject::PathAndQuery(target)).is_ok(),
                same,
                "{sub} vs {target}"
            );
        }
    }

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
