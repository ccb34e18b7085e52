//! [`RedisStore`]: marks shared between instances through a Redis-protocol server.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Script};

use crate::store::{Begin, DedupeStore, Settled, StoreError, StoreErrorKind, ttl_millis};

/// The environment variable [`RedisStore::from_env`] reads: `REDIS_URL`.
pub const REDIS_URL_ENV: &str = "REDIS_URL";

/// The key prefix by default: `qstash-dedupe:` (keys are `qstash-dedupe:msg:<message id>`
/// and `qstash-dedupe:jti:<token id>`).
pub const DEFAULT_KEY_PREFIX: &str = "qstash-dedupe:";

/// How long one command may take by default before the store counts as unavailable: 2 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// `SET key 'p:'..owner NX PX lease`; when the key exists, what it holds and its TTL. One
/// round trip, atomic (a script runs alone, and keys do not expire during it).
/// Returns `{0, 0}` started, `{1, pttl}` in progress, `{2, pttl}` done.
const BEGIN: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, 0}
end
local held = redis.call('GET', KEYS[1])
local state = 1
if held and string.sub(held, 1, 2) == 'd:' then state = 2 end
return {state, redis.call('PTTL', KEYS[1])}
";

/// Compare-and-set to done: only the lease's owner, or nobody when the lease expired
/// unclaimed. Returns 1 when set.
const COMPLETE: &str = r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] or not held then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Compare-and-delete: only the lease's owner. Returns 1 when deleted.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

static SCRIPTS: LazyLock<[Script; 3]> = LazyLock::new(|| {
    [
        Script::new(BEGIN),
        Script::new(COMPLETE),
        Script::new(RELEASE),
    ]
});

/// Dedupe marks in Redis (or Valkey, Upstash Redis, any server that speaks the protocol and
/// runs Lua scripts), shared by every instance that uses the same server and key prefix.
///
/// A mark is one string key with a TTL: `p:<owner>` while in progress (TTL = lease), then
/// `d:<owner>` when done (TTL = retention). `begin` is `SET NX PX` (inside a script that also
/// reads the existing mark in the same round trip); `complete` and `release` are
/// compare-and-set scripts, so a stale attempt never touches another attempt's mark.
///
/// One multiplexed connection, re-established in the background after it breaks. Commands
/// time out after [`DEFAULT_TIMEOUT`] (configurable); a broken or slow server makes calls fail
/// with [`StoreErrorKind::Unavailable`] rather than hang.
///
/// TLS (`rediss://`, which Upstash Redis requires): this crate builds the `redis` crate
/// without TLS; enable one of its TLS features in your own `Cargo.toml`, e.g.
/// `redis = { version = "1", default-features = false, features = ["tokio-rustls-comp"] }`,
/// and Cargo builds it with TLS for this crate too.
///
/// Needs a Tokio runtime.
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: Arc<str>,
}

impl fmt::Debug for RedisStore {
    // No URL: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`RedisStore`]; [`connect`](Self::connect) builds it.
#[derive(Clone)]
#[must_use]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisStoreBuilder {
    /// The prefix of every key. Defaults to [`DEFAULT_KEY_PREFIX`]; give each service that
    /// shares a server its own if their message ids could meet.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long connecting, and each command, may take before the store counts as
    /// unavailable. Defaults to [`DEFAULT_TIMEOUT`] (2 seconds).
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects (and checks the connection).
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::Unavailable`] when the URL is not a Redis URL or the server cannot
    /// be reached. The error never contains the URL.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let client = Client::open(self.url.as_str()).map_err(|error| {
            StoreError::new(
                StoreErrorKind::Unavailable,
                format!("not a valid Redis URL ({:?})", error.kind()),
            )
        })?;
        // Few, quick reconnection attempts: a request waiting for the connection should
        // fail fast (and be retried by QStash) rather than hang through a long backoff.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(store_error)?;
        let store = RedisStore {
            connection,
            prefix: self.prefix.into(),
        };
        store.ping().await?;
        Ok(store)
    }
}

impl RedisStore {
    /// Settings for a store at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` with a TLS feature of the `redis` crate).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Connects to `url` with the defaults.
    ///
    /// # Errors
    ///
    /// As [`RedisStoreBuilder::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// Connects to the URL in `REDIS_URL` with the defaults.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::Unavailable`] when `REDIS_URL` is unset, and as
    /// [`RedisStoreBuilder::connect`].
    pub async fn from_env() -> Result<Self, StoreError> {
        let url = std::env::var(REDIS_URL_ENV)
            .map_err(|_| StoreError::new(StoreErrorKind::Unavailable, "REDIS_URL is not set"))?;
        Self::connect(url).await
    }

    /// Sends `PING`: a health check.
    ///
    /// # Errors
    ///
    /// The server cannot be reached or does not answer `PONG`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let pong: String = ::redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(store_error)?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::new(
                StoreErrorKind::Unexpected,
                "PING was not answered with PONG",
            ))
        }
    }

    /// The key prefix.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }

    async fn run_begin(
        &self,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Begin, StoreError> {
        let mut connection = self.connection.clone();
        let (state, pttl): (i64, i64) = SCRIPTS[0]
            .key(self.key(key))
            .arg(format!("p:{owner}"))
            .arg(ttl_millis(lease))
            .invoke_async(&mut connection)
            .await
            .map_err(store_error)?;
        let remaining = u64::try_from(pttl).ok().map(Duration::from_millis);
        match state {
            0 => Ok(Begin::Started),
            1 => Ok(Begin::InProgress { remaining }),
            2 => Ok(Begin::Done),
            _ => Err(StoreError::new(
                StoreErrorKind::Unexpected,
                "begin script returned an unknown state",
            )),
        }
    }

    async fn run_complete(
        &self,
        key: &str,
        owner: &str,
        retention: Duration,
    ) -> Result<Settled, StoreError> {
        let mut connection = self.connection.clone();
        let set: i64 = SCRIPTS[1]
            .key(self.key(key))
            .arg(format!("p:{owner}"))
            .arg(format!("d:{owner}"))
            .arg(ttl_millis(retention))
            .invoke_async(&mut connection)
            .await
            .map_err(store_error)?;
        Ok(settled(set))
    }

    async fn run_release(&self, key: &str, owner: &str) -> Result<Settled, StoreError> {
        let mut connection = self.connection.clone();
        let deleted: i64 = SCRIPTS[2]
            .key(self.key(key))
            .arg(format!("p:{owner}"))
            .invoke_async(&mut connection)
            .await
            .map_err(store_error)?;
        Ok(settled(deleted))
    }
}

impl DedupeStore for RedisStore {
    async fn begin(&self, key: &str, owner: &str, lease: Duration) -> Result<Begin, StoreError> {
        self.run_begin(key, owner, lease).await
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        retention: Duration,
    ) -> Result<Settled, StoreError> {
        self.run_complete(key, owner, retention).await
    }

    async fn release(&self, key: &str, owner: &str) -> Result<Settled, StoreError> {
        self.run_release(key, owner).await
    }
}

const fn settled(changed: i64) -> Settled {
    if changed == 1 {
        Settled::Applied
    } else {
        Settled::NotOwner
    }
}

fn store_error(error: RedisError) -> StoreError {
    let kind = if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
    {
        StoreErrorKind::Unavailable
    } else {
        StoreErrorKind::Unexpected
    };
    StoreError::new(kind, error.to_string())
}
