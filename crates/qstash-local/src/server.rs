//! [`LocalQStash`]: the engine and its HTTP API on a loopback port, in process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use qstash_receiver::Clock;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::engine::Engine;
use crate::record::{Attempt, DeadLetter, Event};

/// A local QStash serving its API on a port, with its engine on a [`Clock`].
///
/// Dropping it stops the server and the engine.
#[derive(Debug)]
pub struct LocalQStash {
    engine: Arc<Engine>,
    addr: SocketAddr,
    server: JoinHandle<()>,
    driver: Option<JoinHandle<()>>,
}

/// How long a client may take to send a request's head, or stay idle between requests on a
/// keep-alive connection, before the server closes the connection: 5 s.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds a [`LocalQStash`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    config: Config,
    clock: Clock,
    addr: SocketAddr,
    header_read_timeout: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            config: Config::new(),
            clock: Clock::system(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

impl Builder {
    /// The engine's configuration. Defaults to [`Config::new`] (the dev keys and token).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The clock. Defaults to [`Clock::system()`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A manual clock showing `start_ms` (unix milliseconds): nothing is delivered until
    /// [`LocalQStash::advance`] or [`LocalQStash::run_due`].
    pub fn manual_clock(self, start_ms: u64) -> Self {
        self.clock(Clock::manual(start_ms))
    }

    /// Where to listen. Defaults to `127.0.0.1:0` (a free loopback port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// How long a client may take to send a request's head (or idle between requests).
    /// Defaults to [`HEADER_READ_TIMEOUT`].
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Binds and starts serving on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound or the HTTP client cannot be built.
    pub async fn start(self) -> std::io::Result<LocalQStash> {
        let listener = TcpListener::bind(self.addr).await?;
        let engine = Engine::new(self.config, self.clock).map_err(std::io::Error::other)?;
        LocalQStash::serve_with(engine, listener, self.header_read_timeout)
    }
}

impl LocalQStash {
    /// A builder; [`Builder::start`] binds a free loopback port by default.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Serves `engine` on `listener` (and, on the system clock, runs its deliveries), closing
    /// connections that do not send a request head within [`HEADER_READ_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// When the listener's address cannot be read.
    pub fn serve(engine: Arc<Engine>, listener: TcpListener) -> std::io::Result<Self> {
        Self::serve_with(engine, listener, HEADER_READ_TIMEOUT)
    }

    fn serve_with(
        engine: Arc<Engine>,
        listener: TcpListener,
        header_read_timeout: Duration,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        // The console's static shell beside the API; its data comes through the API.
        let app = crate::console::routes().merge(crate::api::router(engine.clone()));
        let server = tokio::spawn(accept_loop(listener, app, header_read_timeout));
        let driver = (!engine.clock().is_manual()).then(|| tokio::spawn(engine.clone().run()));
        Ok(Self {
            engine,
            addr,
            server,
            driver,
        })
    }

    /// The address it listens on.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, e.g. `http://127.0.0.1:41234`: the clients' `QSTASH_URL`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The web console's address, with the token in its fragment, e.g.
    /// `http://127.0.0.1:41234/console#token=...`. The page at `/console` holds no data; it
    /// reads everything through the API with that token.
    #[must_use]
    pub fn console_url(&self) -> String {
        crate::console::url(&self.url(), self.token())
    }

    /// The token clients must send (`QSTASH_TOKEN`).
    #[must_use]
    pub fn token(&self) -> &str {
        self.engine.config().token()
    }

    /// The engine, to publish without HTTP and to inspect.
    #[must_use]
    pub const fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The engine's time, unix milliseconds.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.engine.now_ms()
    }

    /// Moves a manual clock forward by `by`, running everything that falls due on the way,
    /// in order (see [`Engine::advance_to`]). Returns how many attempts were made.
    pub async fn advance(&self, by: Duration) -> usize {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let target = self.engine.now_ms().saturating_add(by);
        self.engine.advance_to(target).await
    }

    /// Runs what is due now (a message published without a delay, a callback), and what
    /// that makes due now, without moving the clock.
    pub async fn run_due(&self) -> usize {
        self.advance(Duration::ZERO).await
    }

    /// Every attempt made so far (bounded), oldest first.
    #[must_use]
    pub fn attempts(&self) -> Vec<Attempt> {
        self.engine.attempts()
    }

    /// The dead-letter queue, oldest first.
    #[must_use]
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.engine.dead_letters()
    }

    /// The event log, oldest first.
    #[must_use]
    pub fn events(&self) -> Vec<Event> {
        self.engine.events()
    }
}

/// Serves `app` with hyper's HTTP/1.1 server and the timer `axum::serve` does not set: a
/// dripped or partial request head cannot hold a connection open for ever.
async fn accept_loop(listener: TcpListener, app: axum::Router, header_read_timeout: Duration) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors, or a connection reset while queued: wait, retry.
            Err(error) if is_transient(&error) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            // Any other accept error ends the server; the handle's owner sees requests fail.
            Err(_) => return,
        };
        let service = TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            // A client that goes away or is timed out is not the server's error.
            drop(served);
        });
    }
}

fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) || matches!(error.raw_os_error(), Some(23 | 24)) // ENFILE, EMFILE
}

impl Drop for LocalQStash {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}
