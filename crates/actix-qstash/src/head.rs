//! The glue between an actix request and the core's pipeline: the request head the core
//! decides on, and how actix frames the body.

use std::iter::Map;
use std::slice;

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::web;
use qstash_receiver::{Admission, Receiver, RequestHead, headers::HeaderLookup, receive::Refusal};

/// actix-web's header map (http 0.2 types) as the core's [`HeaderLookup`]: looked up by name,
/// never copied.
pub(crate) struct Headers<'a>(pub(crate) &'a HeaderMap);

impl HeaderLookup for Headers<'_> {
    type Values<'h>
        = Map<slice::Iter<'h, HeaderValue>, fn(&HeaderValue) -> &[u8]>
    where
        Self: 'h;

    /// Looks the name up by its text (actix parses it again). The pipeline reads the headers
    /// in one walk ([`for_each`](HeaderLookup::for_each)); this serves only the few lookups
    /// outside it, such as the forwarded-headers subject policy's.
    fn get_all<'h>(&'h self, name: &http::HeaderName) -> Self::Values<'h> {
        self.0
            .get_all(name.as_str())
            .map(HeaderValue::as_bytes as fn(&HeaderValue) -> &[u8])
    }

    /// One walk over the map: cheaper than the pipeline's nine lookups, each of which hashes
    /// its name.
    fn for_each<'h>(&'h self, visit: &mut dyn FnMut(&str, &'h [u8])) {
        for (name, value) in self.0.iter() {
            visit(name.as_str(), value.as_bytes());
        }
    }
}

/// The receiver in `app_data`: `Receiver`, then `web::Data<Receiver>` (as actix's `JsonConfig`).
pub(crate) fn receiver(req: &HttpRequest) -> Option<&Receiver> {
    req.app_data::<Receiver>()
        .or_else(|| req.app_data::<web::Data<Receiver>>().map(|d| d.get_ref()))
}

/// Step 1 of the pipeline for an actix request: everything its head can decide, before any
/// byte of the body is read.
pub(crate) fn check_head(receiver: &Receiver, req: &HttpRequest) -> Result<Admission, Refusal> {
    let headers = Headers(req.headers());
    let uri = req.uri();
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    // What the server itself knows: `connection_info()` would read forwarded headers, which
    // only the core may do, and only when the receiver trusts them.
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let head = RequestHead::new(req.method().as_str(), target, &headers)
        .scheme(Some(scheme))
        .authority(uri.authority().map(|a| a.as_str()))
        .version(version(req.version()));
    receiver.check_head(&head)
}

/// actix-web 4's HTTP version (http 0.2) as the core's (http 1).
fn version(version: actix_web::http::Version) -> http::Version {
    use actix_web::http::Version as V;
    match version {
        V::HTTP_09 => http::Version::HTTP_09,
        V::HTTP_10 => http::Version::HTTP_10,
        V::HTTP_2 => http::Version::HTTP_2,
        V::HTTP_3 => http::Version::HTTP_3,
        _ => http::Version::HTTP_11,
    }
}

/// How many bytes the body has when actix-http does not end the payload itself.
///
/// actix-http's HTTP/1 decoder reads the body of a request that carries `Upgrade: websocket`
/// (with or without `Connection: Upgrade`) until the connection closes, whatever its
/// `Content-Length` says (`actix-http` 3.x, `src/h1/decoder.rs`: `PayloadLength::UpgradeWebSocket`
/// → `PayloadDecoder::eof()`), so the payload of such a delivery never ends while the client
/// waits for its answer. Without an upgrade service (actix-web's `HttpServer` has none) the
/// request is served like any other, so its body is framed here as HTTP/1.1 frames a request
/// body (RFC 9112 §6.3): by `Content-Length`, else empty. A chunked body (which actix-http
/// decodes as chunked, upgrade or not) and HTTP/2 need nothing. After the answer actix-http
/// closes the connection, since the payload it started was not read to its end.
pub(crate) fn upgrade_body_len(req: &HttpRequest) -> Option<u64> {
    use actix_web::http::Version as V;
    let headers = req.headers();
    let websocket = headers.get_all(header::UPGRADE).any(|v| {
        v.to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
    });
    let http1 = matches!(req.version(), V::HTTP_09 | V::HTTP_10 | V::HTTP_11);
    let chunked = req.version() == V::HTTP_11
        && headers
            .get(header::TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
    if !websocket || !http1 || chunked {
        return None;
    }
    // actix-http has already refused a request with a repeated or invalid `Content-Length`.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    Some(declared.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    use actix_web::test::TestRequest;

    #[test]
    fn headers_are_looked_up_by_name_in_order() {
        let req = TestRequest::post()
            .append_header(("x-a", "1"))
            .append_header(("x-a", "2"))
            .to_http_request();
        let headers = Headers(req.headers());
        let name = http::HeaderName::from_static("x-a");
        let values: Vec<&[u8]> = headers.get_all(&name).collect();
        assert_eq!(values, [&b"1"[..], &b"2"[..]]);
        let none = http::HeaderName::from_static("x-b");
        assert_eq!(headers.get_all(&none).count(), 0);
    }

    #[test]
    fn versions() {
        use actix_web::http::Version as V;
        let cases = [
            (V::HTTP_09, http::Version::HTTP_09),
            (V::HTTP_10, http::Version::HTTP_10),
            (V::HTTP_11, http::Version::HTTP_11),
            (V::HTTP_2, http::Version::HTTP_2),
            (V::HTTP_3, http::Version::HTTP_3),
        ];
        for (actix, want) in cases {
            assert_eq!(version(actix), want, "{actix:?}");
        }
    }

    #[test]
    fn upgrade_framing() {
        use actix_web::http::Version as V;
        let cases = [
            (
                "no upgrade",
                vec![("content-length", "5")],
                V::HTTP_11,
                None,
            ),
            (
                "websocket",
                vec![("upgrade", "websocket"), ("content-length", "5")],
                V::HTTP_11,
                Some(5),
            ),
            (
                "websocket, any case, with connection",
                vec![
                    ("connection", "Upgrade"),
                    ("upgrade", " WebSocket "),
                    ("content-length", "7"),
                ],
                V::HTTP_11,
                Some(7),
            ),
            (
                "websocket without a length is empty",
                vec![("upgrade", "websocket")],
                V::HTTP_11,
                Some(0),
            ),
            (
                "HTTP/1.0",
                vec![("upgrade", "websocket"), ("content-length", "3")],
                V::HTTP_10,
                Some(3),
            ),
            (
                "chunked is decoded by actix",
                vec![("upgrade", "websocket"), ("transfer-encoding", "chunked")],
                V::HTTP_11,
                None,
            ),
            (
                "another protocol is framed by actix",
                vec![("upgrade", "h2c"), ("content-length", "5")],
                V::HTTP_11,
                None,
            ),
            (
                "HTTP/2 has no upgrade",
                vec![("upgrade", "websocket"), ("content-length", "5")],
                V::HTTP_2,
                None,
            ),
        ];
        for (name, headers, version, want) in cases {
            let mut req = TestRequest::post().version(version);
            for header in headers {
                req = req.append_header(header);
            }
            assert_eq!(upgrade_body_len(&req.to_http_request()), want, "{name}");
        }
    }
}
