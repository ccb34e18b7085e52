//! The arguments of `send` and their parsers.

use http::{HeaderName, HeaderValue, Method};

use crate::body::BodyArgs;
use crate::error::CliError;

/// Arguments of `send`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Delivers like QStash, through the same engine as `qstash-receiver dev`: each attempt carries a \
fresh `Upstash-Signature` (sub = URL), the same `Upstash-Message-Id`, `Upstash-Retried: n` and \
`User-Agent: Upstash-QStash`. A 2xx answer delivers; anything else (or no answer) is retried \
after min(86400, e^(2.5 n)) s for retry n (12 s, 2.5 min, 30 min, ...), or after the answer's \
`Retry-After` / `X-RateLimit-Reset` wait, each delay multiplied by --delay-scale. A 489 answer \
with `Upstash-NonRetryable-Error: true` stops at once. Then the callback body (JSON, see \
QStash's docs) is POSTed, signed for its own URL, to --callback after a delivery or to \
--failure-callback after the last failure, with the same retry policy.

`Content-Type` is sent as a publisher sends it: --content-type, else a `-H Content-Type` \
header, else `application/json` when the body is JSON, else none.

The key is --key, else $QSTASH_CURRENT_SIGNING_KEY, else the public dev-server key (with a \
notice on standard error). Redirects are not followed.

Exit code 0 when the message (and its callback, if any) was delivered, 1 when not, 2 for a \
usage error.

Example, against a local receiver, with retries 1000 times faster than QStash's:
  qstash-receiver send http://localhost:3000/api/qstash --body '{\"order\":42}' \\
      --delay-scale 0.001 --failure-callback http://localhost:3000/api/failed")]
pub(crate) struct SendArgs {
    /// The destination URL (http://, or https:// when built with the `https` feature).
    #[arg(value_name = "URL")]
    pub(crate) url: String,
    #[command(flatten)]
    pub(crate) body: BodyArgs,
    /// A header to send with every attempt, as given, e.g. `X-Team: blue`. Repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE", value_parser = parse_header)]
    pub(crate) headers: Vec<ForwardedHeader>,
    /// The body's `Content-Type` (default: `application/json` for a JSON body).
    #[arg(long, value_name = "TYPE", value_parser = parse_content_type)]
    pub(crate) content_type: Option<HeaderValue>,
    /// How often to retry a failed attempt (so up to N + 1 attempts).
    #[arg(long, value_name = "N", default_value_t = 3, allow_negative_numbers = true,
        value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(crate) retries: u32,
    /// After a delivery, POST the callback body to this URL.
    #[arg(long, value_name = "URL")]
    pub(crate) callback: Option<String>,
    /// After the last failed attempt, POST the failure-callback body to this URL.
    #[arg(long, value_name = "URL")]
    pub(crate) failure_callback: Option<String>,
    /// Multiply every retry delay by this factor (0.001 turns 12 s into 12 ms).
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, allow_negative_numbers = true,
        value_parser = parse_delay_scale)]
    pub(crate) delay_scale: f64,
    /// The HTTP method of the delivery.
    #[arg(long, value_name = "METHOD", default_value = "POST", value_parser = parse_method)]
    pub(crate) method: Method,
    /// Give up on an attempt after this many seconds without a full answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout: u64,
    /// The signing key (`sig_...`).
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<String>,
}

/// A `--header` value: the name as typed and as sent.
#[derive(Debug, Clone)]
pub(crate) struct ForwardedHeader {
    pub(crate) given_name: String,
    pub(crate) name: HeaderName,
    pub(crate) value: HeaderValue,
}

pub(crate) fn parse_header(text: &str) -> Result<ForwardedHeader, String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not NAME:VALUE"))?;
    let given_name = name.trim().to_owned();
    let name = HeaderName::from_bytes(given_name.as_bytes())
        .map_err(|_| format!("`{given_name}` is not a valid header name"))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of `{given_name}` is not a valid header value"))?;
    Ok(ForwardedHeader {
        given_name,
        name,
        value,
    })
}

fn parse_content_type(text: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(text.trim()).map_err(|_| format!("`{text}` is not a valid header value"))
}

pub(crate) fn parse_delay_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(scale) if scale.is_finite() && scale >= 0.0 => Ok(scale),
        _ => Err(format!("`{text}` is not a number >= 0")),
    }
}

fn parse_method(text: &str) -> Result<Method, String> {
    let method = text.to_ascii_uppercase();
    match method.as_str() {
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" => Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("`{text}` is not an HTTP method")),
        _ => Err(format!(
            "`{text}` is not one of GET, POST, PUT, PATCH, DELETE"
        )),
    }
}

/// Checks a URL given on the command line: absolute, `http` (or `https` with TLS built in).
pub(crate) fn check_url(url: &str, what: &str) -> Result<(), CliError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| CliError::usage(format!("{what} `{url}` is not a valid URL: {e}")))?;
    match parsed.scheme() {
        "http" => Ok(()),
        "https" if cfg!(feature = "https") => Ok(()),
        "https" => Err(CliError::usage(format!(
            "{what} `{url}`: this build speaks plain HTTP only (built without the `https` feature)"
        ))),
        other => Err(CliError::usage(format!(
            "{what} `{url}`: the scheme `{other}` is not http or https"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked() {
        let header = parse_header("Content-Type:  application/json ").unwrap();
        assert_eq!(
            (header.name.as_str(), header.value.to_str().unwrap()),
            ("content-type", "application/json")
        );
        assert_eq!(header.given_name, "Content-Type");
        assert!(parse_header("no colon").unwrap_err().contains("NAME:VALUE"));
        assert!(
            parse_header("bad name: x")
                .unwrap_err()
                .contains("header name")
        );
        assert!(
            parse_header("x: a\nb")
                .unwrap_err()
                .contains("header value")
        );
        assert_eq!(parse_delay_scale("0.001"), Ok(0.001));
        for bad in ["-1", "NaN", "inf", "fast"] {
            assert!(parse_delay_scale(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_method("put"), Ok(Method::PUT));
        assert!(parse_method("TRACE").is_err());
        assert!(check_url("http://127.0.0.1:1/x", "URL").is_ok());
        assert!(
            matches!(check_url("ftp://x/", "URL"), Err(CliError::Usage(m)) if m.contains("`ftp`"))
        );
        assert!(matches!(
            check_url("/relative", "URL"),
            Err(CliError::Usage(_))
        ));
    }
}
