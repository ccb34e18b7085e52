//! The total-time limit on reading a body: a timer started the first time the body is not
//! ready, so a body that is already buffered (the usual case) never touches the timer.

use std::task::Context;
use std::time::Duration;

/// A deadline of `timeout` from the first time [`expired`](Deadline::expired) is asked.
pub(crate) struct Deadline {
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    timeout: Option<Duration>,
    /// Boxed because `Sleep` cannot move, and only a body that had to be waited for needs one:
    /// every other request's future stays small.
    #[cfg(feature = "tokio")]
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Deadline {
    pub(crate) const fn new(timeout: Option<Duration>) -> Self {
        Self {
            timeout,
            #[cfg(feature = "tokio")]
            sleep: None,
        }
    }

    /// Whether the deadline has passed; otherwise `cx` is woken when it does. Outside a Tokio
    /// runtime, or without the `tokio` feature, there is no timer to start, so the deadline
    /// never passes (rather than panic).
    #[cfg(feature = "tokio")]
    pub(crate) fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        use std::future::Future as _;

        if self.sleep.is_none() {
            let Some(timeout) = self.timeout.take() else {
                return false;
            };
            if tokio::runtime::Handle::try_current().is_err() {
                return false;
            }
            self.sleep = Some(Box::pin(tokio::time::sleep(timeout)));
        }
        self.sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }

    #[cfg(not(feature = "tokio"))]
    #[allow(clippy::unused_self)]
    pub(crate) fn expired(&mut self, _cx: &mut Context<'_>) -> bool {
        false
    }
}
