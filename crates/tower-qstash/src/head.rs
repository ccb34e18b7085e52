//! The request's head as the core's pipeline reads it: the one place where an `http` request
//! becomes a [`RequestHead`], for the layer and the extractors alike.

use http::Uri;
use http::request::Parts;
use http_body::Body;
use qstash_receiver::{Admission, Receiver, RequestHead, receive::Refusal};

/// Step 1 of the pipeline for `parts`, before any byte of `body` is read.
pub(crate) fn check<B: Body>(
    receiver: &Receiver,
    parts: &Parts,
    body: &B,
) -> Result<Admission, Refusal> {
    let uri = target_uri(parts);
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let head = RequestHead::new(parts.method.as_str(), target, &parts.headers)
        .scheme(uri.scheme_str())
        .authority(uri.authority().map(|a| a.as_str()))
        .version(parts.version)
        .declared_len(body.size_hint().exact());
    // Under lambda_http, the event's request context names the public URL (the REST stage,
    // the raw query or its decoded pairs), which the request's URI no longer does.
    #[cfg(feature = "lambda")]
    let lambda = crate::lambda::lambda_target(parts);
    #[cfg(feature = "lambda")]
    let pairs = lambda
        .as_ref()
        .map(crate::lambda::LambdaTarget::pair_refs)
        .unwrap_or_default();
    #[cfg(feature = "lambda")]
    let head = match &lambda {
        Some(target) => target.head(&pairs, head),
        None => head,
    };
    receiver.check_head(&head)
}

/// The URI the client asked for: axum's `OriginalUri` when a `Router::nest` stripped a prefix
/// from the request's URI, else the request's.
fn target_uri(parts: &Parts) -> &Uri {
    #[cfg(feature = "original-uri")]
    if let Some(axum::extract::OriginalUri(uri)) = parts.extensions.get() {
        return uri;
    }
    &parts.uri
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use qstash_receiver::{Signer, SigningKeys, Verifier};

    fn receiver() -> Receiver {
        Receiver::new(Verifier::new(
            SigningKeys::new("sig_current", "sig_next").unwrap(),
        ))
    }

    fn parts(uri: &str, sub: &str) -> Parts {
        let mut request = http::Request::post(uri).body(()).unwrap();
        *request.headers_mut() = Signer::new("sig_current")
            .unwrap()
            .delivery_headers(sub, b"{}", "msg_1", 0);
        request.into_parts().0
    }

    #[test]
    fn the_target_is_the_path_and_query() {
        let body = http_body_util::Full::new(Bytes::from_static(b"{}"));
        let ok = parts("/hook?a=1", "https://app.example.com/hook?a=1");
        assert!(check(&receiver(), &ok, &body).is_ok());
        let other = parts("/hook?a=2", "https://app.example.com/hook?a=1");
        let refusal = check(&receiver(), &other, &body).unwrap_err();
        assert_eq!(refusal.reason().as_str(), "subject_mismatch");
    }

    #[test]
    fn the_body_size_hint_is_the_declared_length() {
        let receiver = receiver().max_body_bytes(1);
        let body = http_body_util::Full::new(Bytes::from_static(b"{}"));
        let refusal = check(&receiver, &parts("/", "https://a.example/"), &body).unwrap_err();
        assert_eq!(refusal.status(), 413);
    }

    #[cfg(feature = "original-uri")]
    #[test]
    fn original_uri_wins_over_the_stripped_one() {
        let body = http_body_util::Empty::<Bytes>::new();
        let mut p = parts("/hook", "https://app.example.com/api/hook");
        assert!(check(&receiver(), &p, &body).is_err());
        p.extensions
            .insert(axum::extract::OriginalUri(Uri::from_static("/api/hook")));
        // The body claim is checked later; the head passes.
        assert!(check(&receiver(), &p, &body).is_ok());
    }
}
