//! Fuzzes `Callback::from_slice`: never panics; when it accepts, the accessors do not panic
//! and agree with an independent reading of the same JSON by `serde_json::Value`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qstash_receiver::Callback;

fuzz_target!(|data: &[u8]| {
    let parsed = Callback::from_slice(data);
    // serde_json skips the strings of ignored (unknown) fields without checking their UTF-8,
    // so the parser accepts such bodies; read them lossily for the comparison.
    let value: Option<serde_json::Value> = serde_json::from_slice(data)
        .ok()
        .or_else(|| serde_json::from_str(&String::from_utf8_lossy(data)).ok());
    match parsed {
        Ok(cb) => {
            // Accessors and derived facts.
            assert_eq!(cb.is_success(), (200..300).contains(&cb.status));
            assert_eq!(
                cb.is_last_attempt(),
                cb.retried >= cb.max_retries.unwrap_or(0)
            );
            let _ = cb.header_value("content-type");
            let _ = cb.header_value("");
            let _ = cb.body_json::<serde_json::Value>();
            let _ = cb.source_body_json::<serde_json::Value>();
            let _ = format!("{cb:?}");

            // What serde_json::Value reads from the same bytes.
            let value = value.expect("an accepted callback is JSON");
            let object = value
                .as_object()
                .expect("an accepted callback is an object");
            assert_eq!(
                object.get("status").and_then(serde_json::Value::as_u64),
                Some(u64::from(cb.status))
            );
            match object.get("retried") {
                None | Some(serde_json::Value::Null) => assert_eq!(cb.retried, 0),
                Some(n) => assert_eq!(n.as_u64(), Some(u64::from(cb.retried))),
            }
            for (field, got) in [("body", &cb.body), ("sourceBody", &cb.source_body)] {
                if object
                    .get(field)
                    .and_then(serde_json::Value::as_str)
                    .is_none()
                {
                    assert!(
                        got.is_empty(),
                        "{field} absent or null but decoded to bytes"
                    );
                }
            }
            if let Some(id) = object.get("sourceMessageId").and_then(|v| v.as_str()) {
                assert_eq!(cb.source_message_id.as_deref(), Some(id));
            }
        }
        Err(err) => {
            let text = err.to_string();
            // Error messages never quote the input: no long string value of it shows up.
            if let Some(value) = &value {
                let mut strings = Vec::new();
                collect_strings(value, &mut strings);
                for s in strings {
                    let distinctive = s.len() >= 12
                        && s.chars().any(|c| c.is_ascii_digit())
                        && s.chars().any(|c| c.is_ascii_alphabetic());
                    assert!(
                        !(distinctive && text.contains(s.as_str())),
                        "error text quotes the input {s:?}: {text}"
                    );
                }
            }
        }
    }
});

fn collect_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}
