//! The total-time limit on reading a body: a timer started the first time the body is not
//! ready, so a body that is already buffered (the usual case) never touches the timer.

use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

#[cfg(feature = "tokio")]
use pin_project_lite::pin_project;

#[cfg(feature = "tokio")]
pin_project! {
    /// A deadline of `timeout` from the first time [`expired`](Deadline::expired) is asked.
    pub(crate) struct Deadline {
        timeout: Option<Duration>,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
    }
}

#[cfg(feature = "tokio")]
impl Deadline {
    pub(crate) const fn new(timeout: Option<Duration>) -> Self {
        Self {
            timeout,
            sleep: None,
        }
    }

    /// Whether the deadline has passed; otherwise `cx` is woken when it does. Outside a Tokio
    /// runtime there is no timer to start, so the deadline never passes (rather than panic).
    pub(crate) fn expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        use std::future::Future as _;

        let mut this = self.project();
        if this.sleep.is_none() {
            let Some(timeout) = this.timeout.take() else {
                return false;
            };
            if tokio::runtime::Handle::try_current().is_err() {
                return false;
            }
            this.sleep.set(Some(tokio::time::sleep(timeout)));
        }
        this.sleep
            .as_pin_mut()
            .is_some_and(|sleep| sleep.poll(cx).is_ready())
    }
}

/// Without the `tokio` feature there is no timer: the deadline never passes.
#[cfg(not(feature = "tokio"))]
pub(crate) struct Deadline;

#[cfg(not(feature = "tokio"))]
impl Deadline {
    pub(crate) const fn new(_timeout: Option<Duration>) -> Self {
        Self
    }

    #[allow(clippy::unused_self)]
    pub(crate) fn expired(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> bool {
        false
    }
}
