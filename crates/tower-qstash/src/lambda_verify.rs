//! The subject check of Lambda events for this layer, through the core's receiving pipeline
//! (which compares a query given as decoded pairs). Once the layer itself runs on
//! `Receiver::check_head`, this file goes: the layer hands
//! [`LambdaTarget::request_target`] to `RequestHead::target` directly.

use bytes::Bytes;
use http::HeaderMap;
use http::request::Parts;
use qstash_receiver::{Claims, Delivery, Receiver, Refusal, RequestHead, Subject};

use crate::config::{QStashConfig, SubjectPolicy};
use crate::lambda::LambdaTarget;
use crate::rejection::{InvalidDelivery, InvalidSignature, QStashRejection};
use crate::verify::{refuse, too_large};

/// Verifies a Lambda request whose whole body is `body`, comparing `sub` with `target`.
pub(crate) fn verify(
    config: &QStashConfig,
    parts: &Parts,
    target: &LambdaTarget,
    body: &[u8],
) -> Result<(Claims, Delivery), QStashRejection> {
    let headers = &parts.headers;
    let policy = match config.subject_policy() {
        SubjectPolicy::PathAndQuery => qstash_receiver::SubjectPolicy::PathAndQuery,
        SubjectPolicy::Forwarded => qstash_receiver::SubjectPolicy::TrustForwardedHeaders,
        SubjectPolicy::DangerouslySkip => qstash_receiver::SubjectPolicy::DangerouslySkipCheck,
        SubjectPolicy::PublicBaseUrl(base) => {
            match qstash_receiver::SubjectPolicy::public_base_url(base) {
                Ok(policy) => policy,
                // Not a base URL: compared as the layer does elsewhere, it matches no `sub`
                // that QStash can sign.
                Err(_) => {
                    let url = format!("{base}{}", target.path);
                    let claims = config
                        .verifier()
                        .verify_headers(headers, body, Subject::Url(&url))
                        .map_err(|e| refuse(InvalidSignature::new(e, config.hook()), headers))?;
                    let delivery = delivery(config, headers)?;
                    return Ok((claims, delivery));
                }
            }
        }
    };
    let receiver = Receiver::new(config.verifier().clone())
        .subject_policy(policy)
        .max_body_bytes(config.limit());
    let pairs = target.pair_refs();
    let head = RequestHead::new(parts.method.as_str(), "/", headers)
        .version(parts.version)
        .declared_len(u64::try_from(body.len()).ok());
    let head = target.head(&pairs, head);
    let verified = receiver
        .check_head(&head)
        .and_then(|admission| admission.finish(Bytes::copy_from_slice(body)))
        .map_err(|refusal| rejection(&refusal, config, headers))?;
    Ok((verified.claims, verified.delivery))
}

fn delivery(config: &QStashConfig, headers: &HeaderMap) -> Result<Delivery, QStashRejection> {
    Delivery::from_headers(headers).map_err(|e| {
        refuse(
            InvalidDelivery::new(e, config.payload_status(), config.hook()),
            headers,
        )
    })
}

/// This layer's rejection for the pipeline's refusal.
fn rejection(refusal: &Refusal, config: &QStashConfig, headers: &HeaderMap) -> QStashRejection {
    if let Some(error) = refusal.error() {
        return refuse(InvalidSignature::new(error.clone(), config.hook()), headers);
    }
    match delivery(config, headers) {
        Err(rejection) => rejection,
        Ok(_) => too_large(config, headers),
    }
}
