//! [`LazyTimer`]: a deadline timer whose deadline may move later without touching tokio's timer
//! wheel.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// A reusable timer for a deadline that mostly moves later (the next request's header read, the
/// next exchange's response head).
///
/// Hot path: resetting a tokio sleep removes it from the timer wheel and inserts it again. Here
/// a deadline later than the armed one leaves the sleep where it is; when it fires early it is
/// re-armed for the deadline then in force. A busy connection so re-arms once per timeout
/// interval instead of once or twice per request (measured with callgrind).
#[derive(Debug)]
pub struct LazyTimer {
    sleep: Pin<Box<Sleep>>,
    /// Where the sleep is armed.
    armed: Instant,
}

impl LazyTimer {
    /// A timer armed at `deadline` (which may already have passed). Needs a tokio runtime.
    #[must_use]
    pub fn new(deadline: Instant) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            armed: deadline,
        }
    }

    /// Ready once `deadline` has passed; otherwise the task is woken at or before it.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        if self.armed > deadline {
            self.rearm(deadline);
        }
        loop {
            std::task::ready!(self.sleep.as_mut().poll(cx));
            if self.armed == deadline {
                return Poll::Ready(());
            }
            // Fired for a deadline that has since moved later.
            self.rearm(deadline);
        }
    }

    fn rearm(&mut self, deadline: Instant) {
        self.sleep.as_mut().reset(deadline);
        self.armed = deadline;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn expired(timer: &mut LazyTimer, deadline: Instant) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(timer.poll_expired(cx, deadline).is_ready())).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_is_honoured_after_the_earlier_one_fires() {
        let start = Instant::now();
        let mut timer = LazyTimer::new(start + Duration::from_secs(1));
        let later = start + Duration::from_secs(5);
        assert!(!expired(&mut timer, later).await);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            !expired(&mut timer, later).await,
            "the first deadline moved later"
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(expired(&mut timer, later).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_re_arms_at_once() {
        let start = Instant::now();
        let mut timer = LazyTimer::new(start + Duration::from_secs(10));
        let sooner = start + Duration::from_secs(1);
        assert!(!expired(&mut timer, sooner).await);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(expired(&mut timer, sooner).await);
    }
}
