//! AWS Lambda (feature `lambda`): the public request target of a `lambda_http` event.
//!
//! `lambda_http` turns an event into an `http::Request` whose URI is not always the URL the
//! client asked for: for API Gateway REST it prepends the stage (or not, with
//! `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH`), and for REST and ALB events, which carry the query
//! only as a map, it rebuilds the query in hash order, re-encoded (`%20` becomes `+`). The
//! token's `sub` is the URL QStash requested, so the subject check reads the event's own record
//! of that URL instead, from the request context `lambda_http` leaves in the extensions:
//!
//! | event | path | query |
//! |---|---|---|
//! | Function URL, HTTP API (payload 2.0) | `rawPath` (a named stage, an API mapping key are in it) | `rawQueryString`, as sent |
//! | API Gateway REST (payload 1.0) | `requestContext.path` (the stage, or a custom domain's base path, is in it) | decoded pairs |
//! | ALB | `path` | decoded pairs |
//!
//! Without a request context (the request did not come through `lambda_http`, or a WebSocket
//! or VPC Lattice event), [`lambda_target`] gives `None` and the layer uses the request's URI.

use http::request::Parts;
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;
use qstash_receiver::{RequestHead, headers::HeaderLookup, receive::RequestTarget};

/// What the subject check compares `sub` with for a Lambda event: the public path, the query
/// (raw, or as decoded pairs where the event keeps no raw query) and the API's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LambdaTarget {
    /// The path the client asked for (`/prod/api/webhook` under a REST stage).
    pub(crate) path: String,
    /// The query as sent, where the event has it (payload 2.0); `None` otherwise.
    pub(crate) raw_query: Option<String>,
    /// The decoded query pairs, where the event has only a map (REST, ALB); `None` otherwise.
    pub(crate) pairs: Option<Vec<(String, String)>>,
    /// `https://{domainName}` for API Gateway and Function URLs; `None` for ALB, whose event
    /// names no host of its own.
    pub(crate) origin: Option<String>,
    /// `path` and `?raw_query`, for [`RequestTarget::Raw`].
    target: String,
}

impl LambdaTarget {
    fn raw(path: String, raw_query: Option<String>, origin: Option<String>) -> Self {
        let raw_query = raw_query.filter(|q| !q.is_empty());
        let target = match &raw_query {
            Some(query) => format!("{path}?{query}"),
            None => path.clone(),
        };
        Self {
            path,
            raw_query,
            pairs: None,
            origin,
            target,
        }
    }

    fn decoded(path: String, pairs: Vec<(String, String)>, origin: Option<String>) -> Self {
        Self {
            target: path.clone(),
            path,
            raw_query: None,
            pairs: Some(pairs),
            origin,
        }
    }

    /// The decoded pairs as borrowed strings, for [`request_target`](Self::request_target);
    /// empty for a raw query.
    pub(crate) fn pair_refs(&self) -> Vec<(&str, &str)> {
        self.pairs
            .iter()
            .flatten()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect()
    }

    /// The target to hand the pipeline (`RequestHead::target`): `Raw("/path?query")`, or
    /// `DecodedQuery` over `pairs` (from [`pair_refs`](Self::pair_refs)).
    pub(crate) fn request_target<'a>(
        &'a self,
        pairs: &'a [(&'a str, &'a str)],
    ) -> RequestTarget<'a> {
        match self.pairs {
            Some(_) => RequestTarget::DecodedQuery {
                path: &self.path,
                query: pairs,
            },
            None => RequestTarget::Raw(&self.target),
        }
    }

    /// `head` with this target, and the API's origin as its scheme and authority: what the
    /// layer hands `Receiver::check_head` for a Lambda event. `pairs` is
    /// [`pair_refs`](Self::pair_refs), kept by the caller for as long as `head`.
    pub(crate) fn head<'a, H: HeaderLookup + ?Sized>(
        &'a self,
        pairs: &'a [(&'a str, &'a str)],
        head: RequestHead<'a, H>,
    ) -> RequestHead<'a, H> {
        let head = head.target(self.request_target(pairs));
        match self.authority() {
            Some(authority) => head.scheme(Some("https")).authority(Some(authority)),
            None => head,
        }
    }

    /// The host of [`origin`](Self::origin), for `RequestHead::authority` (with scheme
    /// `https`).
    pub(crate) fn authority(&self) -> Option<&str> {
        self.origin
            .as_deref()
            .and_then(|origin| origin.strip_prefix("https://"))
    }
}

/// The public target of the Lambda event `parts` came from, when `lambda_http` left its
/// request context in the extensions; `None` for any other request.
pub(crate) fn lambda_target(parts: &Parts) -> Option<LambdaTarget> {
    match parts.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(context) => {
            // `rawPath` as sent (a named stage is already in it); `lambda_http` appends
            // `rawQueryString` to the URI as it is.
            let path = non_empty(parts.raw_http_path())
                .or_else(|| context.http.path.as_deref().and_then(non_empty))
                .unwrap_or("/")
                .to_owned();
            let query = parts.uri.query().map(str::to_owned);
            Some(LambdaTarget::raw(
                path,
                query,
                origin(context.domain_name.as_deref()),
            ))
        }
        RequestContext::ApiGatewayV1(context) => {
            // `requestContext.path` is the path the client asked for: with the stage on the
            // `execute-api` host, with the base path (and no stage) on a custom domain. The
            // event's own `path` has neither stage nor, on a custom domain, the same meaning.
            let path = context
                .path
                .as_deref()
                .filter(|p| p.starts_with('/'))
                .map_or_else(
                    || with_stage(context.stage.as_deref(), parts.raw_http_path()),
                    str::to_owned,
                );
            Some(LambdaTarget::decoded(
                path,
                pairs(parts),
                origin(context.domain_name.as_deref()),
            ))
        }
        RequestContext::Alb(_) => {
            let path = non_empty(parts.raw_http_path()).unwrap_or("/").to_owned();
            Some(LambdaTarget::decoded(path, pairs(parts), None))
        }
        // WebSocket and VPC Lattice events (when another crate turns those features of
        // `lambda_http` on): the URI is all there is.
        _ => None,
    }
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

fn origin(domain_name: Option<&str>) -> Option<String> {
    domain_name
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_graphic() && b != b'/'))
        .map(|d| format!("https://{d}"))
}

/// `/{stage}{path}`: the public path of a REST event without `requestContext.path`.
fn with_stage(stage: Option<&str>, path: &str) -> String {
    let path = non_empty(path).unwrap_or("/");
    match stage {
        None | Some("" | "$default") => path.to_owned(),
        Some(stage) => format!("/{stage}{path}"),
    }
}

/// The decoded query pairs `lambda_http` read from the event: REST's
/// `multiValueQueryStringParameters` (else `queryStringParameters`), decoded by API Gateway;
/// ALB's, which ALB leaves encoded and `lambda_http` decodes (`+` as a space).
fn pairs(parts: &Parts) -> Vec<(String, String)> {
    parts
        .query_string_parameters_ref()
        .map(|map| {
            map.iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(event: &str) -> Parts {
        lambda_http::request::from_str(event)
            .expect("a valid event")
            .into_parts()
            .0
    }

    fn sorted(target: &LambdaTarget) -> Vec<(String, String)> {
        let mut pairs = target.pairs.clone().expect("decoded pairs");
        pairs.sort();
        pairs
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut pairs: Vec<_> = pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        pairs.sort();
        pairs
    }

    const V2: &str = r#"{
        "version": "2.0", "routeKey": "$default",
        "rawPath": "/prod/api/webhook", "rawQueryString": "b=2&a=one%20two&a=3&p=a+b",
        "headers": {"host": "abc.execute-api.eu-west-1.amazonaws.com"},
        "requestContext": {"http": {"method": "POST", "path": "/prod/api/webhook"},
            "stage": "prod", "domainName": "abc.execute-api.eu-west-1.amazonaws.com"},
        "isBase64Encoded": false
    }"#;

    #[test]
    fn payload_v2_keeps_the_raw_path_and_query() {
        let parts = parts(V2);
        let target = lambda_target(&parts).expect("a target");
        assert_eq!(target.path, "/prod/api/webhook");
        assert_eq!(
            target.raw_query.as_deref(),
            Some("b=2&a=one%20two&a=3&p=a+b")
        );
        assert_eq!(target.pairs, None);
        assert_eq!(
            target.request_target(&[]),
            RequestTarget::Raw("/prod/api/webhook?b=2&a=one%20two&a=3&p=a+b")
        );
        assert_eq!(
            target.origin.as_deref(),
            Some("https://abc.execute-api.eu-west-1.amazonaws.com")
        );
        assert_eq!(
            target.authority(),
            Some("abc.execute-api.eu-west-1.amazonaws.com")
        );
    }

    #[test]
    fn payload_v2_without_a_query() {
        let event = V2.replace(
            r#""rawQueryString": "b=2&a=one%20two&a=3&p=a+b""#,
            r#""rawQueryString": """#,
        );
        let target = lambda_target(&parts(&event)).expect("a target");
        assert_eq!(target.raw_query, None);
        assert_eq!(
            target.request_target(&[]),
            RequestTarget::Raw("/prod/api/webhook")
        );
    }

    const V1: &str = r#"{
        "resource": "/{proxy+}", "path": "/api/webhook", "httpMethod": "POST",
        "headers": {"Host": "abc.execute-api.eu-west-1.amazonaws.com"},
        "multiValueHeaders": {"Host": ["abc.execute-api.eu-west-1.amazonaws.com"]},
        "queryStringParameters": {"a": "3", "b": "2", "p": "a b"},
        "multiValueQueryStringParameters": {"a": ["one two", "3"], "b": ["2"], "p": ["a b"]},
        "requestContext": {"path": "/prod/api/webhook", "stage": "prod", "httpMethod": "POST",
            "domainName": "abc.execute-api.eu-west-1.amazonaws.com", "requestTimeEpoch": 0,
            "identity": {}},
        "isBase64Encoded": false
    }"#;

    #[test]
    fn rest_takes_the_context_path_with_the_stage_and_every_value() {
        let parts = parts(V1);
        // What `lambda_http` did to the URI does not matter to the target.
        assert_eq!(parts.uri.path(), "/prod/api/webhook");
        let target = lambda_target(&parts).expect("a target");
        assert_eq!(target.path, "/prod/api/webhook");
        assert_eq!(target.raw_query, None);
        assert_eq!(
            sorted(&target),
            owned(&[("a", "one two"), ("a", "3"), ("b", "2"), ("p", "a b")])
        );
        let pairs = target.pair_refs();
        assert!(matches!(
            target.request_target(&pairs),
            RequestTarget::DecodedQuery { path: "/prod/api/webhook", query } if query.len() == 4
        ));
    }

    #[test]
    fn rest_without_a_context_path_prepends_the_stage() {
        let event = V1.replace(r#""path": "/prod/api/webhook", "#, "");
        let target = lambda_target(&parts(&event)).expect("a target");
        assert_eq!(target.path, "/prod/api/webhook");
        assert_eq!(with_stage(Some("$default"), "/x"), "/x");
        assert_eq!(with_stage(None, ""), "/");
    }

    #[test]
    fn rest_on_a_custom_domain_keeps_the_base_path() {
        let event = V1
            .replace(r#""path": "/api/webhook""#, r#""path": "/v1/api/webhook""#)
            .replace(
                r#""path": "/prod/api/webhook""#,
                r#""path": "/v1/api/webhook""#,
            )
            .replace("abc.execute-api.eu-west-1.amazonaws.com", "api.example.com");
        let parts = parts(&event);
        // `lambda_http` prepends the stage, though a custom domain's URL has none.
        assert_eq!(parts.uri.path(), "/prod/v1/api/webhook");
        let target = lambda_target(&parts).expect("a target");
        assert_eq!(target.path, "/v1/api/webhook");
        assert_eq!(target.origin.as_deref(), Some("https://api.example.com"));
    }

    #[test]
    fn rest_only_single_values() {
        let event = V1.replace(
            r#""multiValueQueryStringParameters": {"a": ["one two", "3"], "b": ["2"], "p": ["a b"]}"#,
            r#""multiValueQueryStringParameters": null"#,
        );
        let target = lambda_target(&parts(&event)).expect("a target");
        assert_eq!(
            sorted(&target),
            owned(&[("a", "3"), ("b", "2"), ("p", "a b")])
        );
    }

    const ALB: &str = r#"{
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg/abc"}},
        "httpMethod": "POST", "path": "/api/webhook",
        "multiValueQueryStringParameters": {"a": ["one%20two", "3"], "amp": ["x%26y%3Dz"], "p": ["a+b"], "plus": ["1%2B1"], "e": ["%E2%9C%93"]},
        "multiValueHeaders": {"host": ["alb.example.com"]},
        "body": "", "isBase64Encoded": false
    }"#;

    #[test]
    fn alb_values_arrive_encoded_and_lambda_http_decodes_them_once() {
        let parts = parts(ALB);
        let target = lambda_target(&parts).expect("a target");
        assert_eq!(target.path, "/api/webhook");
        assert_eq!(target.origin, None);
        // Pinned: `+` is a space, `%2B` a plus, an escaped `&` or `=` stays in its value.
        assert_eq!(
            sorted(&target),
            owned(&[
                ("a", "one two"),
                ("a", "3"),
                ("amp", "x&y=z"),
                ("e", "✓"),
                ("p", "a b"),
                ("plus", "1+1"),
            ])
        );
        // Pinned: the URI's query is rebuilt from those pairs, re-encoded form-style.
        let query = parts.uri.query().expect("a query");
        assert!(query.contains("a=one+two"), "{query}");
        assert!(query.contains("plus=1%2B1"), "{query}");
    }

    #[test]
    fn alb_single_value_map() {
        let event = ALB.replace(
            r#""multiValueQueryStringParameters": {"a": ["one%20two", "3"], "amp": ["x%26y%3Dz"], "p": ["a+b"], "plus": ["1%2B1"], "e": ["%E2%9C%93"]}"#,
            r#""queryStringParameters": {"q": "a%20b"}"#,
        );
        let target = lambda_target(&parts(&event)).expect("a target");
        assert_eq!(sorted(&target), owned(&[("q", "a b")]));
    }

    /// The target through the core's pipeline, as the layer hands it over.
    #[test]
    fn the_head_passes_the_pipeline() {
        use qstash_receiver::{Receiver, Signer, SigningKeys, Verifier, subject::SubjectPolicy};

        let receiver = Receiver::new(Verifier::new(SigningKeys::new("sig_a", "sig_b").unwrap()));
        let signer = Signer::new("sig_a").unwrap();
        for (event, url) in [
            (
                V2,
                "https://abc.execute-api.eu-west-1.amazonaws.com/prod/api/webhook?b=2&a=one%20two&a=3&p=a+b",
            ),
            (
                V1,
                "https://abc.execute-api.eu-west-1.amazonaws.com/prod/api/webhook?a=3&p=a+b&b=2&a=one%20two",
            ),
        ] {
            let mut parts = parts(event);
            parts
                .headers
                .extend(signer.delivery_headers(url, b"", "msg_1", 0));
            let target = lambda_target(&parts).unwrap();
            let pairs = target.pair_refs();
            let head = || target.head(&pairs, RequestHead::new("POST", "/ignored", &parts.headers));
            assert!(receiver.check_head(&head()).is_ok(), "{url}");
            let host = receiver.clone().subject_policy(
                SubjectPolicy::public_base_url("https://abc.execute-api.eu-west-1.amazonaws.com")
                    .unwrap(),
            );
            assert!(host.check_head(&head()).is_ok(), "{url}");
            let other = receiver.clone().subject_policy(
                SubjectPolicy::public_base_url("https://other.example.com").unwrap(),
            );
            let refused = other.check_head(&head()).unwrap_err();
            assert_eq!(refused.reason().as_str(), "subject_mismatch", "{url}");
            // Forwarded headers fall back to the event's host (API Gateway sets `Host`).
            let forwarded = receiver
                .clone()
                .subject_policy(SubjectPolicy::TrustForwardedHeaders);
            assert!(forwarded.check_head(&head()).is_ok(), "{url}");
        }
    }

    #[test]
    fn no_context_no_target() {
        let parts = http::Request::post("/api/webhook")
            .body(())
            .expect("a request")
            .into_parts()
            .0;
        assert_eq!(lambda_target(&parts), None);
    }

    #[test]
    fn odd_domain_names_give_no_origin() {
        assert_eq!(origin(Some("")), None);
        assert_eq!(origin(Some("a/b")), None);
        assert_eq!(origin(Some("a b")), None);
        assert_eq!(
            origin(Some("a.example")).as_deref(),
            Some("https://a.example")
        );
    }
}
