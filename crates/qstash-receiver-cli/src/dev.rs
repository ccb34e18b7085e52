//! `qstash-receiver dev`: a local QStash on the system clock that the official clients publish
//! to, serving `qstash-local`'s API until interrupted.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use qstash_local::{Attempt, Clock, Config, Engine, LocalQStash, MessageKind};

use crate::error::{CliError, Verdict};
use crate::progress::attempt_line;
use crate::send::parse_delay_scale;

/// Arguments of `dev`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Answers QStash's API (publish, enqueue, batch, messages, DLQ, schedules, URL groups, queues, \
keys, events) with the public dev token and signs deliveries with the public dev keys, as the \
official dev server does. State is in memory and bounded; a restart forgets everything.

Point a client at it with QSTASH_URL=http://127.0.0.1:8080 and QSTASH_TOKEN=<the dev token>, \
or, with the TypeScript SDK, QSTASH_DEV=true alone (it finds the server through GET /v2/keys). \
Receivers verify with QSTASH_CURRENT_SIGNING_KEY / QSTASH_NEXT_SIGNING_KEY set to the dev keys \
(or QSTASH_DEV=1 for this workspace's examples).")]
pub(crate) struct DevArgs {
    /// The port to listen on.
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    port: u16,
    /// The address to listen on.
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Multiply every retry delay by this factor (0.001 turns QStash's 12 s backoff into 12 ms).
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, allow_negative_numbers = true,
        value_parser = parse_delay_scale)]
    delay_scale: f64,
    /// Print nothing per attempt.
    #[arg(long)]
    quiet: bool,
}

/// The banner: where it listens and how to point clients and receivers at it.
pub(crate) fn banner(url: &str, console: &str, config: &Config, port: u16) -> String {
    let (current, next) = config.signing_keys();
    let mut text = format!(
        "qstash-receiver dev: a local QStash at {url} (in memory: a restart forgets everything)\n\
         \n\
         Publishers (official clients):\n\
         \x20 QSTASH_URL={url}\n\
         \x20 QSTASH_TOKEN={token}\n",
        token = config.token()
    );
    if port == 8080 {
        text.push_str("  or, with the TypeScript SDK, QSTASH_DEV=true and nothing else\n");
    } else {
        text.push_str(&format!(
            "  or, with the TypeScript SDK, QSTASH_DEV=true QSTASH_DEV_PORT={port}\n"
        ));
    }
    text.push_str(&format!(
        "\nReceivers (signing keys):\n\
         \x20 QSTASH_CURRENT_SIGNING_KEY={current}\n\
         \x20 QSTASH_NEXT_SIGNING_KEY={next}\n\
         \n\
         Console (every message, attempt and refusal; the DLQ, schedules, queues, URL groups):\n\
         \x20 {console}\n"
    ));
    text
}

/// What stopping forgets: said on Ctrl-C, since the state lives only in memory.
pub(crate) fn discarded(engine: &Engine) -> String {
    let pending = engine.pending().len();
    let dead = engine.dead_letters().len();
    let schedules = engine.schedule_ids().len();
    format!(
        "qstash-receiver dev: stopped, discarding {pending} message(s) waiting or under way \
         (callbacks included), {dead} dead letter(s) and {schedules} schedule(s)"
    )
}

fn log_attempt(attempt: &Attempt, scale: f64) {
    let what = match attempt.kind {
        MessageKind::Message => "message",
        MessageKind::FailureCallback => "failure callback",
        _ => "callback",
    };
    println!(
        "{what} {} {} {}: {}",
        attempt.message_id,
        attempt.method,
        attempt.url,
        attempt_line(attempt, scale)
    );
}

/// Runs `dev` until interrupted.
pub(crate) fn run(args: &DevArgs) -> Result<Verdict, CliError> {
    let scale = args.delay_scale;
    let mut config = Config::new().with_delay_scale(scale);
    if !args.quiet {
        config = config.with_observer(Arc::new(move |attempt: &Attempt| {
            log_attempt(attempt, scale)
        }));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let addr = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| CliError::failed(format!("cannot listen on {addr}: {e}")))?;
        let engine = Engine::new(config.clone(), Clock::system()).map_err(CliError::failed)?;
        let server = LocalQStash::serve(engine, listener)
            .map_err(|e| CliError::failed(format!("cannot serve: {e}")))?;
        println!(
            "{}",
            banner(
                &server.url(),
                &server.console_url(),
                &config,
                server.addr().port()
            )
        );
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| CliError::failed(format!("cannot wait for Ctrl-C: {e}")))?;
        println!("{}", discarded(server.engine()));
        drop(server);
        Ok(Verdict::Success)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopping_says_what_is_discarded() {
        let engine = Engine::new(Config::new(), Clock::manual(0)).unwrap();
        let publish = qstash_local::Publish::new("http://127.0.0.1:9/hook", "x");
        engine.publish(publish.clone()).unwrap();
        engine.publish(publish).unwrap();
        let text = discarded(&engine);
        assert!(
            text.contains("discarding 2 message(s)") && text.contains("0 dead letter(s)"),
            "{text}"
        );
    }

    #[test]
    fn the_banner_says_how_to_point_clients_and_receivers() {
        let config = Config::new();
        let console = "http://127.0.0.1:8080/console#token=t";
        let text = banner("http://127.0.0.1:8080", console, &config, 8080);
        for want in [
            "QSTASH_URL=http://127.0.0.1:8080",
            &format!("QSTASH_TOKEN={}", qstash_local::DEV_TOKEN),
            "QSTASH_DEV=true and nothing else",
            &format!(
                "QSTASH_CURRENT_SIGNING_KEY={}",
                qstash_receiver::keys::DEV_CURRENT_SIGNING_KEY
            ),
            &format!(
                "QSTASH_NEXT_SIGNING_KEY={}",
                qstash_receiver::keys::DEV_NEXT_SIGNING_KEY
            ),
            "restart forgets",
            "Console",
            console,
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
        let other = banner("http://127.0.0.1:9000", console, &config, 9000);
        assert!(other.contains("QSTASH_DEV_PORT=9000"), "{other}");
    }
}
