//! `qstash-receiver send`: publishes one message to an in-process local QStash engine
//! (`qstash-local`, on the system clock) and reports each attempt it makes — the same engine
//! `qstash-receiver dev` serves, so `send` and `dev` deliver, retry and call back alike.

mod args;

pub(crate) use self::args::parse_delay_scale;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use qstash_local::{Attempt, Clock, Config, Engine, MessageKind, Publish, Verdict};
use qstash_receiver::keys::ENV_CURRENT;

use self::args::check_url;
pub(crate) use self::args::{ForwardedHeader, SendArgs};
use crate::error::{CliError, Verdict as CliVerdict};
use crate::keys::{self, KeySource};
use crate::progress::{attempt_line, describe};

/// The publish headers that make the engine deliver as `args` asks.
fn publish_headers(args: &SendArgs, body: &[u8]) -> Result<HeaderMap, CliError> {
    let mut headers = HeaderMap::new();
    let value = |text: String| {
        HeaderValue::from_str(&text)
            .map_err(|_| CliError::usage(format!("`{text}` is not a valid header value")))
    };
    for header in &args.headers {
        if header.name == http::header::CONTENT_TYPE {
            headers.insert(http::header::CONTENT_TYPE, header.value.clone());
            continue;
        }
        let name = HeaderName::from_bytes(format!("upstash-forward-{}", header.name).as_bytes())
            .map_err(|_| {
                CliError::usage(format!(
                    "`{}` is not a valid header name",
                    header.given_name
                ))
            })?;
        headers.append(name, header.value.clone());
    }
    if let Some(content_type) = &args.content_type {
        headers.insert(http::header::CONTENT_TYPE, content_type.clone());
    } else if !headers.contains_key(http::header::CONTENT_TYPE)
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
    {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    headers.insert("upstash-method", value(args.method.to_string())?);
    headers.insert("upstash-retries", value(args.retries.to_string())?);
    headers.insert("upstash-timeout", value(format!("{}s", args.timeout))?);
    for (name, url) in [
        ("upstash-callback", &args.callback),
        ("upstash-failure-callback", &args.failure_callback),
    ] {
        let Some(url) = url else { continue };
        headers.insert(HeaderName::from_static(name), value(url.clone())?);
        let retries = HeaderName::from_bytes(format!("{name}-retries").as_bytes())
            .map_err(|_| CliError::usage("bad header name"))?;
        headers.insert(retries, value(args.retries.to_string())?);
        let timeout = HeaderName::from_bytes(format!("{name}-timeout").as_bytes())
            .map_err(|_| CliError::usage("bad header name"))?;
        headers.insert(timeout, value(format!("{}s", args.timeout))?);
    }
    Ok(headers)
}

/// What the observer saw, for the verdict.
#[derive(Default)]
struct Outcome {
    delivered: Option<bool>,
    callback: Option<(bool, String)>,
}

/// Runs `send`: prints progress on standard output.
pub(crate) fn run(
    args: &SendArgs,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<CliVerdict, CliError> {
    check_url(&args.url, "URL")?;
    if let Some(url) = &args.callback {
        check_url(url, "--callback")?;
    }
    if let Some(url) = &args.failure_callback {
        check_url(url, "--failure-callback")?;
    }
    let body = args.body.read()?;
    let key = keys::signing_key(args.key.as_deref(), false, lookup)?;
    if key.source() == KeySource::Dev {
        eprintln!("{}", keys::dev_notice("--key", ENV_CURRENT));
    }
    key.signer()?;
    let headers = publish_headers(args, &body)?;
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let scale = args.delay_scale;
    let seen = outcome.clone();
    let observer = Arc::new(move |attempt: &Attempt| report(attempt, scale, &seen));
    let config = Config::new()
        .with_signing_keys(key.value(), key.value())
        .map_err(|e| CliError::usage(format!("{}: {e}", key.source())))?
        .with_delay_scale(scale)
        .with_default_timeout(Duration::from_secs(args.timeout))
        .with_observer(observer);
    let engine = Engine::new(config, Clock::system()).map_err(CliError::failed)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    let body_len = body.len();
    runtime.block_on(async {
        let driver = tokio::spawn(engine.clone().run());
        let mut publish = Publish::new(args.url.clone(), Bytes::from(body));
        publish.headers = headers;
        let answer = engine
            .publish(publish)
            .map_err(|e| CliError::usage(e.message().to_owned()))?;
        let id = &answer.messages()[0].message_id;
        println!(
            "{} {} ({body_len} bytes), message {id}, {}",
            args.method,
            args.url,
            match args.retries {
                0 => "one attempt".to_owned(),
                n => format!("up to {} attempts", n + 1),
            }
        );
        engine.settled().await;
        driver.abort();
        Ok::<_, CliError>(())
    })?;
    let outcome = outcome
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut verdict = if outcome.delivered == Some(true) {
        CliVerdict::Success
    } else {
        CliVerdict::Failure
    };
    if let Some((false, _)) = &outcome.callback {
        verdict = CliVerdict::Failure;
    }
    Ok(verdict)
}

/// Prints the line of one attempt, and the verdict once there is one.
fn report(attempt: &Attempt, scale: f64, outcome: &Mutex<Outcome>) {
    let mut outcome = outcome
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let what = match attempt.kind {
        MessageKind::Message => None,
        MessageKind::FailureCallback => Some("failure callback"),
        _ => Some("callback"),
    };
    if let Some(what) = what {
        if attempt.retried == 0 {
            println!(
                "{what}: {} {} ({} bytes), message {}",
                attempt.method,
                attempt.url,
                attempt.body.len(),
                attempt.message_id
            );
        }
    }
    println!("  {}", attempt_line(attempt, scale));
    let finished = !matches!(attempt.verdict, Verdict::Retry { .. });
    if !finished {
        return;
    }
    let delivered = attempt.verdict == Verdict::Delivered;
    match what {
        None => {
            outcome.delivered = Some(delivered);
            if delivered {
                println!("delivered");
            } else {
                println!("failed: {}", describe(attempt));
            }
        }
        Some(what) => {
            if delivered {
                println!("{what} delivered");
            } else {
                println!("{what} failed: {}", describe(attempt));
            }
            outcome.callback = Some((delivered, what.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> SendArgs {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            send: SendArgs,
        }
        let mut argv = vec!["send", "http://127.0.0.1:9/hook"];
        argv.extend(extra);
        Wrapper::try_parse_from(argv).unwrap().send
    }

    #[test]
    fn content_type_is_set_as_a_publisher_sets_it() {
        let cases: [(&[&str], &[u8], Option<&str>); 5] = [
            (
                &["--body", "x"],
                br#"{"order":1}"#,
                Some("application/json"),
            ),
            (&["--body", "x"], b"plain words", None),
            (
                &["--body", "x", "--content-type", "text/csv"],
                b"{}",
                Some("text/csv"),
            ),
            (
                &["--body", "x", "-H", "Content-Type: text/xml"],
                b"{}",
                Some("text/xml"),
            ),
            (
                &[
                    "--body",
                    "x",
                    "-H",
                    "Content-Type: text/xml",
                    "--content-type",
                    "a/b",
                ],
                b"<x/>",
                Some("a/b"),
            ),
        ];
        for (extra, body, want) in cases {
            let headers = publish_headers(&args(extra), body).unwrap();
            assert_eq!(
                headers.get("content-type").map(|v| v.to_str().unwrap()),
                want,
                "{extra:?}"
            );
        }
    }

    #[test]
    fn flags_become_publish_headers() {
        let headers = publish_headers(
            &args(&[
                "--body",
                "x",
                "-H",
                "X-Team: blue",
                "-H",
                "X-Team: green",
                "--retries",
                "2",
                "--method",
                "put",
                "--timeout",
                "5",
                "--callback",
                "http://127.0.0.1:9/cb",
            ]),
            b"x",
        )
        .unwrap();
        let teams: Vec<_> = headers.get_all("upstash-forward-x-team").iter().collect();
        assert_eq!(teams, ["blue", "green"]);
        assert_eq!(headers["upstash-method"], "PUT");
        assert_eq!(headers["upstash-retries"], "2");
        assert_eq!(headers["upstash-timeout"], "5s");
        assert_eq!(headers["upstash-callback"], "http://127.0.0.1:9/cb");
        assert_eq!(headers["upstash-callback-retries"], "2");
        assert!(!headers.contains_key("upstash-failure-callback"));
    }
}
