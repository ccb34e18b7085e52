//! [`MemoryStore`]: marks in this process's memory, bounded, with TTL eviction.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::{Future, ready};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use qstash_receiver::Clock;

use crate::store::{Begin, DedupeStore, Settled, StoreError, StoreErrorKind, ttl_millis};

/// How many marks a [`MemoryStore`] keeps by default: 100 000 (a few tens of MiB with
/// QStash's ~40-byte message ids).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Dedupe marks in memory: the default store.
///
/// Shared by every clone (it is an `Arc` inside), but not between processes: with several
/// instances of a service, use `RedisStore` (feature `redis`).
///
/// Bounded: it holds at most [`capacity`](MemoryStore::with_capacity) marks. Expired marks
/// are dropped as soon as any call sees them (each call removes every expired mark, oldest
/// first, so memory never holds more than the marks still alive). When it is full of live
/// marks, the *done* mark closest to its expiry is evicted first, with a `warn` event: a
/// duplicate of that message would then run the handler again. Marks in progress are never
/// evicted: when every mark is in progress, `begin` fails with [`StoreErrorKind::Full`]
/// (which the layers answer with 503 + `Retry-After` by default).
///
/// Time: marks expire on the store's [`Clock`] (see [`with_clock`](MemoryStore::with_clock)),
/// in unix milliseconds. The default, [`Clock::system`], is the wall clock, as a Redis server
/// counts its expiries: a step of the system clock moves every expiry with it (stepped forward
/// by a minute, marks end a minute early, so a lease can end while its handler still runs;
/// stepped back, they last longer). NTP slews small corrections rather than stepping, so steps
/// are rare (a clock set at boot or by hand). In return the store, the receiver and a local
/// QStash read one time, and a test moves all three with one [`Clock::manual`].
///
/// No async runtime is needed: every call completes at once under a `std::sync::Mutex`.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Marks>>,
    clock: Clock,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let marks = self.lock();
        f.debug_struct("MemoryStore")
            .field("capacity", &marks.capacity)
            .field("len", &marks.map.len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store of [`DEFAULT_CAPACITY`] marks on the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// An empty store of at most `capacity` marks (at least 1).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Marks::new(capacity.max(1)))),
            clock: Clock::system(),
        }
    }

    /// The same store on `clock`. Defaults to [`Clock::system`].
    ///
    /// For tests, a [`Clock::manual`] moves time without sleeping; the receiver and a local
    /// QStash can share it.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// How many marks are alive now.
    #[must_use]
    pub fn len(&self) -> usize {
        let now = self.clock.now_ms();
        let mut marks = self.lock();
        marks.purge(now);
        marks.map.len()
    }

    /// Whether no mark is alive now.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Marks> {
        // Every update below leaves the maps consistent before it can panic, so a poisoned
        // lock holds usable data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin_now(&self, key: &str, owner: &str, lease: Duration) -> Result<Begin, StoreError> {
        let now = self.clock.now_ms();
        let mut marks = self.lock();
        marks.purge(now);
        if let Some(mark) = marks.map.get(key) {
            return Ok(match mark.state {
                State::Leased(_) => Begin::InProgress {
                    remaining: Some(Duration::from_millis(mark.expires.saturating_sub(now))),
                },
                State::Done => Begin::Done,
            });
        }
        marks.make_room()?;
        marks.insert(key, State::Leased(owner.into()), expiry(now, lease));
        Ok(Begin::Started)
    }

    fn complete_now(
        &self,
        key: &str,
        owner: &str,
        retention: Duration,
    ) -> Result<Settled, StoreError> {
        let now = self.clock.now_ms();
        let mut marks = self.lock();
        marks.purge(now);
        match marks.map.get(key).map(|mark| &mark.state) {
            Some(State::Leased(held)) if **held == *owner => {
                marks.remove(key);
            }
            Some(_) => return Ok(Settled::NotOwner),
            None => marks.make_room()?,
        }
        marks.insert(key, State::Done, expiry(now, retention));
        Ok(Settled::Applied)
    }

    fn release_now(&self, key: &str, owner: &str) -> Settled {
        let now = self.clock.now_ms();
        let mut marks = self.lock();
        marks.purge(now);
        match marks.map.get(key).map(|mark| &mark.state) {
            Some(State::Leased(held)) if **held == *owner => {
                marks.remove(key);
                Settled::Applied
            }
            _ => Settled::NotOwner,
        }
    }
}

impl DedupeStore for MemoryStore {
    fn begin(
        &self,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> impl Future<Output = Result<Begin, StoreError>> + Send {
        ready(self.begin_now(key, owner, lease))
    }

    fn complete(
        &self,
        key: &str,
        owner: &str,
        retention: Duration,
    ) -> impl Future<Output = Result<Settled, StoreError>> + Send {
        ready(self.complete_now(key, owner, retention))
    }

    fn release(
        &self,
        key: &str,
        owner: &str,
    ) -> impl Future<Output = Result<Settled, StoreError>> + Send {
        ready(Ok(self.release_now(key, owner)))
    }
}

/// When a mark made at `now` (unix milliseconds) for `ttl` expires.
fn expiry(now: u64, ttl: Duration) -> u64 {
    now.saturating_add(ttl_millis(ttl))
}

enum State {
    Leased(Box<str>),
    Done,
}

struct Mark {
    state: State,
    /// Unix milliseconds on the store's clock.
    expires: u64,
    /// Distinguishes this mark's entry in the expiry index from an older one of the same key.
    seq: u64,
}

/// The marks, with one expiry index per state so that expired marks and the done mark to
/// evict first are both found at the front.
struct Marks {
    capacity: usize,
    map: HashMap<Box<str>, Mark>,
    leases: BTreeMap<(u64, u64), Box<str>>,
    done: BTreeMap<(u64, u64), Box<str>>,
    seq: u64,
}

impl Marks {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: HashMap::new(),
            leases: BTreeMap::new(),
            done: BTreeMap::new(),
            seq: 0,
        }
    }

    fn insert(&mut self, key: &str, state: State, expires: u64) {
        self.seq += 1;
        let seq = self.seq;
        let index = match state {
            State::Leased(_) => &mut self.leases,
            State::Done => &mut self.done,
        };
        index.insert((expires, seq), key.into());
        self.map.insert(
            key.into(),
            Mark {
                state,
                expires,
                seq,
            },
        );
    }

    fn remove(&mut self, key: &str) {
        if let Some(mark) = self.map.remove(key) {
            let index = match mark.state {
                State::Leased(_) => &mut self.leases,
                State::Done => &mut self.done,
            };
            index.remove(&(mark.expires, mark.seq));
        }
    }

    /// Drops every mark that expired at or before `now`.
    fn purge(&mut self, now: u64) {
        for index in [&mut self.leases, &mut self.done] {
            while let Some(entry) = index.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let key = entry.remove();
                self.map.remove(&key);
            }
        }
    }

    /// Frees one slot if the store is full, evicting the done mark that expires first.
    fn make_room(&mut self) -> Result<(), StoreError> {
        if self.map.len() < self.capacity {
            return Ok(());
        }
        let Some((_, key)) = self.done.pop_first() else {
            return Err(StoreError::new(
                StoreErrorKind::Full,
                format!("all {} marks are in progress", self.capacity),
            ));
        };
        self.map.remove(&key);
        tracing::warn!(
            capacity = self.capacity,
            "dedupe memory store full: evicted a done mark before its retention ended; \
             a duplicate of that message would run the handler again (raise the capacity)"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn store(capacity: usize) -> (MemoryStore, Clock) {
        let clock = Clock::manual(1_767_225_600_000);
        (
            MemoryStore::with_capacity(capacity).with_clock(clock.clone()),
            clock,
        )
    }

    #[test]
    fn begin_complete_then_duplicate_is_done() {
        let (store, _) = store(10);
        assert_eq!(store.begin_now("k", "a", SEC), Ok(Begin::Started));
        assert_eq!(store.complete_now("k", "a", SEC * 60), Ok(Settled::Applied));
        assert_eq!(store.begin_now("k", "b", SEC), Ok(Begin::Done));
    }

    #[test]
    fn second_begin_sees_the_lease_and_its_remaining_time() {
        let (store, clock) = store(10);
        assert_eq!(store.begin_now("k", "a", SEC * 10), Ok(Begin::Started));
        clock.advance(SEC * 4);
        assert_eq!(
            store.begin_now("k", "b", SEC * 10),
            Ok(Begin::InProgress {
                remaining: Some(SEC * 6)
            })
        );
    }

    #[test]
    fn release_lets_the_next_attempt_start() {
        let (store, _) = store(10);
        assert_eq!(store.begin_now("k", "a", SEC), Ok(Begin::Started));
        assert_eq!(store.release_now("k", "a"), Settled::Applied);
        assert_eq!(store.begin_now("k", "b", SEC), Ok(Begin::Started));
    }

    #[test]
    fn an_expired_lease_lets_the_next_attempt_start() {
        let (store, clock) = store(10);
        assert_eq!(store.begin_now("k", "a", SEC), Ok(Begin::Started));
        clock.advance(SEC);
        assert_eq!(store.begin_now("k", "b", SEC), Ok(Begin::Started));
    }

    #[test]
    fn a_stale_owner_cannot_complete_or_release_a_newer_lease() {
        let (store, clock) = store(10);
        assert_eq!(store.begin_now("k", "stale", SEC), Ok(Begin::Started));
        clock.advance(SEC * 2);
        assert_eq!(store.begin_now("k", "fresh", SEC * 10), Ok(Begin::Started));
        assert_eq!(store.release_now("k", "stale"), Settled::NotOwner);
        assert_eq!(
            store.complete_now("k", "stale", SEC * 60),
            Ok(Settled::NotOwner)
        );
        // The fresh lease is untouched.
        assert!(matches!(
            store.begin_now("k", "other", SEC),
            Ok(Begin::InProgress { .. })
        ));
        assert_eq!(
            store.complete_now("k", "fresh", SEC * 60),
            Ok(Settled::Applied)
        );
    }

    #[test]
    fn complete_after_an_unclaimed_expiry_still_marks_done() {
        let (store, clock) = store(10);
        assert_eq!(store.begin_now("k", "a", SEC), Ok(Begin::Started));
        clock.advance(SEC * 2);
        assert_eq!(store.complete_now("k", "a", SEC * 60), Ok(Settled::Applied));
        assert_eq!(store.begin_now("k", "b", SEC), Ok(Begin::Done));
    }

    #[test]
    fn release_does_not_undo_done() {
        let (store, _) = store(10);
        assert_eq!(store.begin_now("k", "a", SEC), Ok(Begin::Started));
        assert_eq!(store.complete_now("k", "a", SEC * 60), Ok(Settled::Applied));
        assert_eq!(store.release_now("k", "a"), Settled::NotOwner);
        assert_eq!(store.begin_now("k", "b", SEC), Ok(Begin::Done));
    }

    #[test]
    fn done_marks_expire_after_retention() {
        let (store, clock) = store(10);
        assert_eq!(store.begin_now("k", "a", SEC), Ok(Begin::Started));
        assert_eq!(store.complete_now("k", "a", SEC * 60), Ok(Settled::Applied));
        clock.advance(SEC * 59);
        assert_eq!(store.begin_now("k", "b", SEC), Ok(Begin::Done));
        clock.advance(SEC);
        assert_eq!(store.begin_now("k", "c", SEC), Ok(Begin::Started));
    }

    #[test]
    fn expired_marks_are_dropped_from_memory() {
        let (store, clock) = store(100);
        for i in 0..50 {
            let key = format!("k{i}");
            assert_eq!(store.begin_now(&key, "o", SEC), Ok(Begin::Started));
            if i % 2 == 0 {
                assert_eq!(store.complete_now(&key, "o", SEC * 2), Ok(Settled::Applied));
            }
        }
        assert_eq!(store.len(), 50);
        clock.advance(SEC);
        assert_eq!(store.len(), 25, "the leases expired");
        clock.advance(SEC);
        assert!(store.is_empty(), "the done marks expired");
        let marks = store.lock();
        assert!(marks.leases.is_empty() && marks.done.is_empty());
    }

    #[test]
    fn full_store_evicts_the_done_mark_closest_to_expiry() {
        let (store, clock) = store(3);
        assert_eq!(store.begin_now("old", "o", SEC), Ok(Begin::Started));
        assert_eq!(
            store.complete_now("old", "o", SEC * 10),
            Ok(Settled::Applied)
        );
        clock.advance(SEC);
        assert_eq!(store.begin_now("new", "o", SEC), Ok(Begin::Started));
        assert_eq!(
            store.complete_now("new", "o", SEC * 10),
            Ok(Settled::Applied)
        );
        assert_eq!(
            store.begin_now("running", "o", SEC * 60),
            Ok(Begin::Started)
        );
        // Full: "next" evicts "old", the done mark that expires first.
        assert_eq!(store.begin_now("next", "o", SEC * 60), Ok(Begin::Started));
        assert_eq!(store.len(), 3);
        assert_eq!(store.begin_now("new", "p", SEC), Ok(Begin::Done));
        assert_eq!(store.begin_now("old", "p", SEC * 60), Ok(Begin::Started));
        // Now only leases are left: nothing more can be evicted.
        assert_eq!(
            store.begin_now("new", "p", SEC).unwrap_err().kind(),
            StoreErrorKind::Full
        );
    }

    #[test]
    fn full_of_leases_fails_instead_of_evicting_one() {
        let (store, _) = store(2);
        assert_eq!(store.begin_now("a", "o", SEC), Ok(Begin::Started));
        assert_eq!(store.begin_now("b", "o", SEC), Ok(Begin::Started));
        let err = store.begin_now("c", "o", SEC).unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Full);
        // Existing leases still answer.
        assert!(matches!(
            store.begin_now("a", "p", SEC),
            Ok(Begin::InProgress { .. })
        ));
    }

    #[test]
    fn zero_ttl_lasts_a_millisecond() {
        let (store, clock) = store(10);
        assert_eq!(
            store.begin_now("k", "a", Duration::ZERO),
            Ok(Begin::Started)
        );
        assert!(matches!(
            store.begin_now("k", "b", SEC),
            Ok(Begin::InProgress { .. })
        ));
        clock.advance(Duration::from_millis(1));
        assert_eq!(store.begin_now("k", "b", SEC), Ok(Begin::Started));
    }

    #[test]
    fn a_ttl_past_the_end_of_time_saturates() {
        let (store, clock) = store(10);
        assert_eq!(store.begin_now("k", "a", Duration::MAX), Ok(Begin::Started));
        clock.advance_to(u64::MAX - 1);
        assert!(matches!(
            store.begin_now("k", "b", SEC),
            Ok(Begin::InProgress { .. })
        ));
    }

    #[test]
    fn marks_follow_a_clock_shared_with_others() {
        let clock = Clock::manual(1_767_225_600_000);
        let store = MemoryStore::new().with_clock(clock.clone());
        assert_eq!(store.begin_now("k", "a", SEC), Ok(Begin::Started));
        assert_eq!(store.complete_now("k", "a", SEC * 60), Ok(Settled::Applied));
        // Whoever holds another clone (a test, a local QStash) moves the store's time.
        let elsewhere = clock.clone();
        elsewhere.advance_to(1_767_225_600_000 + 60_000);
        assert_eq!(store.begin_now("k", "b", SEC), Ok(Begin::Started));
    }

    #[test]
    fn clones_share_marks() {
        let (store, _) = store(10);
        let clone = store.clone();
        assert_eq!(store.begin_now("k", "a", SEC), Ok(Begin::Started));
        assert!(matches!(
            clone.begin_now("k", "b", SEC),
            Ok(Begin::InProgress { .. })
        ));
    }
}
