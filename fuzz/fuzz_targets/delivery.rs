//! Fuzzes `Delivery::from_headers` (and the signature look-up) over a `HeaderMap` built from
//! arbitrary name/value pairs: never panics, and an accepted delivery agrees with the headers.
#![no_main]

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use qstash_receiver::{
    Delivery, SigningKeys, Subject, Validation, Verifier, delivery::DeliveryError,
    headers::signature,
};

/// The names the parser reads, so that the fuzzer hits them without guessing their spelling.
const NAMES: [&str; 9] = [
    "upstash-message-id",
    "upstash-retried",
    "upstash-schedule-id",
    "upstash-topic-name",
    "upstash-caller-ip",
    "upstash-region",
    "content-type",
    "upstash-signature",
    "Upstash-Message-Id",
];

#[derive(Arbitrary, Debug)]
struct Pair<'a> {
    /// Below `NAMES.len()`: one of the known names; otherwise `raw_name`.
    name_index: u8,
    raw_name: &'a [u8],
    value: &'a [u8],
}

fuzz_target!(|pairs: Vec<Pair<'_>>| {
    let mut headers = HeaderMap::new();
    for pair in &pairs {
        let name = match NAMES.get(usize::from(pair.name_index)) {
            Some(known) => HeaderName::from_bytes(known.as_bytes()),
            None => HeaderName::from_bytes(pair.raw_name),
        };
        let (Ok(name), Ok(value)) = (name, HeaderValue::from_bytes(pair.value)) else {
            continue;
        };
        headers.append(name, value);
    }

    let values = |name: &str| -> Vec<&HeaderValue> { headers.get_all(name).iter().collect() };
    match Delivery::from_headers(&headers) {
        Ok(delivery) => {
            let ids = values("upstash-message-id");
            assert_eq!(ids.len(), 1);
            assert_eq!(ids[0].to_str().ok(), Some(delivery.message_id.as_str()));
            assert!(!delivery.message_id.is_empty());
            match values("upstash-retried").as_slice() {
                [] => assert_eq!(delivery.retried, 0),
                [one] => {
                    let text = one
                        .to_str()
                        .expect("accepted value is visible ASCII")
                        .trim();
                    assert!(text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty());
                    assert_eq!(text.parse::<u32>().ok(), Some(delivery.retried));
                }
                _ => panic!("accepted a repeated Upstash-Retried"),
            }
            assert_eq!(delivery.is_retry(), delivery.retried > 0);
            for (name, got) in [
                ("upstash-schedule-id", &delivery.schedule_id),
                ("upstash-topic-name", &delivery.topic_name),
                ("upstash-caller-ip", &delivery.caller_ip),
                ("upstash-region", &delivery.region),
                ("content-type", &delivery.content_type),
            ] {
                let want = match values(name).as_slice() {
                    [] => None,
                    [one] => one.to_str().ok(),
                    _ => panic!("accepted a repeated {name}"),
                };
                assert_eq!(got.as_deref(), want, "{name}");
            }
        }
        Err(err) => {
            let _ = err.to_string();
            match err {
                DeliveryError::Missing(_)
                | DeliveryError::Repeated(_)
                | DeliveryError::Invalid(_) => {}
                _ => {}
            }
        }
    }

    // The signature look-up and the header-level verification never panic either.
    let _ = signature(&headers);
    let verifier = Verifier::new(SigningKeys::dev());
    let _ = verifier.verify_headers(
        &headers,
        b"",
        &Validation::new(Subject::PathAndQuery("/")).at(1_700_000_000),
    );
});
