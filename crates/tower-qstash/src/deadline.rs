//! The timer an [`Admission`](qstash_receiver::Admission) asks for when a body first has to
//! be waited for ([`BodyStep::StartTimer`](qstash_receiver::BodyStep::StartTimer)), on
//! Tokio's timer. Without the `tokio` feature, or outside a Tokio runtime, there is none: the
//! admission is then told [`BodyFailure::NoTimer`](qstash_receiver::BodyFailure::NoTimer)
//! and answers for it.

use std::task::Context;
use std::time::Duration;

/// A running timer.
pub(crate) struct Timer {
    /// Boxed because `Sleep` cannot move, and only a body that had to be waited for needs one:
    /// every other request's future stays small.
    #[cfg(feature = "tokio")]
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// No timer can exist without Tokio.
    #[cfg(not(feature = "tokio"))]
    never: std::convert::Infallible,
}

impl Timer {
    /// A timer of `timeout` from now, or `None` where none can run (no Tokio runtime).
    #[cfg(feature = "tokio")]
    pub(crate) fn start(timeout: Duration) -> Option<Self> {
        tokio::runtime::Handle::try_current().ok()?;
        Some(Self {
            sleep: Box::pin(tokio::time::sleep(timeout)),
        })
    }

    /// None: built without the `tokio` feature.
    #[cfg(not(feature = "tokio"))]
    pub(crate) const fn start(_timeout: Duration) -> Option<Self> {
        None
    }

    /// Whether the time is up; otherwise `cx` is woken when it is.
    #[cfg(feature = "tokio")]
    pub(crate) fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        use std::future::Future as _;

        self.sleep.as_mut().poll(cx).is_ready()
    }

    /// Never called: no timer exists without Tokio.
    #[cfg(not(feature = "tokio"))]
    pub(crate) fn expired(&mut self, _cx: &mut Context<'_>) -> bool {
        match self.never {}
    }
}
