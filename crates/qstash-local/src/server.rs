//! [`LocalQStash`]: the engine and its HTTP API on a loopback port, in process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::clock::Clock;
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

/// Builds a [`LocalQStash`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    config: Config,
    clock: Clock,
    addr: SocketAddr,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            config: Config::new(),
            clock: Clock::System,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

impl Builder {
    /// The engine's configuration. Defaults to [`Config::new`] (the dev keys and token).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The clock. Defaults to [`Clock::System`].
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

    /// Binds and starts serving on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound or the HTTP client cannot be built.
    pub async fn start(self) -> std::io::Result<LocalQStash> {
        let listener = TcpListener::bind(self.addr).await?;
        let engine = Engine::new(self.config, self.clock).map_err(std::io::Error::other)?;
        LocalQStash::serve(engine, listener)
    }
}

impl LocalQStash {
    /// A builder; [`Builder::start`] binds a free loopback port by default.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Serves `engine` on `listener` (and, on the system clock, runs its deliveries).
    ///
    /// # Errors
    ///
    /// When the listener's address cannot be read.
    pub fn serve(engine: Arc<Engine>, listener: TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        // The console's static shell beside the API; its data comes through the API.
        let app = crate::console::routes()
            .merge(crate::api::router(engine.clone()))
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            // An accept loop error ends the server; the handle's owner sees requests fail.
            let _ = axum::serve(listener, app).await;
        });
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

impl Drop for LocalQStash {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}
