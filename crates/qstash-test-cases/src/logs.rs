//! Capturing the refusals' log events, to check their level and reason.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, OnceLock};

use qstash_receiver::{receive::LOG_TARGET, receive::LogLevel};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// One event of target [`LOG_TARGET`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Its level.
    pub level: LogLevel,
    /// Its fields, as text (`reason`, `status`, `message_id`, `method`, `error`).
    pub fields: BTreeMap<String, String>,
}

impl Logged {
    /// The `reason` field.
    #[must_use]
    pub fn reason(&self) -> &str {
        self.fields.get("reason").map_or("", String::as_str)
    }

    /// The `message_id` field.
    #[must_use]
    pub fn message_id(&self) -> &str {
        self.fields.get("message_id").map_or("", String::as_str)
    }
}

/// A process-wide subscriber that keeps every event of target [`LOG_TARGET`], from every
/// thread (servers answer on their own threads). Cases carry unique message ids, so a test
/// takes the events of one case with [`LogCapture::take`].
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<Logged>>>);

impl LogCapture {
    /// The capture, installed as the global default subscriber on first use.
    ///
    /// # Panics
    ///
    /// When another global subscriber was installed first.
    #[must_use]
    pub fn global() -> Self {
        static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
        CAPTURE
            .get_or_init(|| {
                let capture = Self::default();
                tracing::subscriber::set_global_default(capture.clone())
                    .expect("no other global subscriber");
                tracing::callsite::rebuild_interest_cache();
                capture
            })
            .clone()
    }

    /// Removes and returns the events whose `message_id` field is `message_id`.
    ///
    /// # Panics
    ///
    /// If a test thread panicked while holding the lock.
    #[must_use]
    pub fn take(&self, message_id: &str) -> Vec<Logged> {
        let mut events = self.0.lock().expect("log capture lock");
        let (taken, kept) = events
            .drain(..)
            .partition(|e: &Logged| e.message_id() == message_id);
        *events = kept;
        taken
    }

    /// Removes and returns every event.
    ///
    /// # Panics
    ///
    /// If a test thread panicked while holding the lock.
    #[must_use]
    pub fn take_all(&self) -> Vec<Logged> {
        std::mem::take(&mut *self.0.lock().expect("log capture lock"))
    }
}

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

fn ours(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with(LOG_TARGET)
}

impl Subscriber for LogCapture {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if ours(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        ours(metadata)
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let level = match *event.metadata().level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            _ => LogLevel::Debug,
        };
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        if let Ok(mut events) = self.0.lock() {
            events.push(Logged {
                level,
                fields: fields.0,
            });
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
