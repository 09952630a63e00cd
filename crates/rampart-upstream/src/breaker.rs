//! Circuit breaking: at most `max_requests` requests in flight to an upstream; up to
//! `max_pending` more wait up to `queue_timeout` for a slot; the rest get a 503 with
//! `Retry-After` at once. The uncontended path is one atomic operation.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use rampart_config::model::CircuitBreaker;
use rampart_core::{ErrorKind, ProxyError};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Compiled `[upstreams.circuit_breaker]`.
#[derive(Debug)]
pub(crate) struct Breaker {
    /// `None`: no upstream-wide in-flight limit.
    slots: Option<Semaphore>,
    waiting: AtomicU32,
    max_pending: u32,
    queue_timeout: Duration,
    retry_after: HeaderValue,
    /// Per-target in-flight limit (`u32::MAX` = none).
    pub(crate) per_target: u32,
}

impl Breaker {
    pub(crate) fn new(c: &CircuitBreaker) -> Self {
        let secs = c.retry_after.get().as_secs().max(1);
        Self {
            slots: c.max_requests.map(|n| {
                Semaphore::new(
                    usize::try_from(n)
                        .unwrap_or(usize::MAX)
                        .min(Semaphore::MAX_PERMITS),
                )
            }),
            waiting: AtomicU32::new(0),
            max_pending: c.max_pending,
            queue_timeout: c.queue_timeout.get(),
            retry_after: HeaderValue::from(secs),
            per_target: c.max_requests_per_target.unwrap_or(u32::MAX),
        }
    }

    /// A slot for one request, waiting in the queue when allowed.
    pub(crate) async fn admit(
        &self,
        upstream: &str,
    ) -> Result<Option<SemaphorePermit<'_>>, ProxyError> {
        let Some(slots) = &self.slots else {
            return Ok(None);
        };
        if let Ok(permit) = slots.try_acquire() {
            return Ok(Some(permit));
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_pending {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(self.overloaded(upstream, "no slot and the queue is full"));
        }
        let waited = tokio::time::timeout(self.queue_timeout, slots.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        match waited {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(self.overloaded(upstream, "no slot within queue_timeout")),
        }
    }

    /// The 503 for a request that found no slot.
    pub(crate) fn overloaded(&self, upstream: &str, why: &str) -> ProxyError {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, self.retry_after.clone());
        ProxyError::new(ErrorKind::UpstreamOverloaded, format!("{upstream}: {why}"))
            .with_headers(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(text: &str) -> Breaker {
        Breaker::new(&toml::from_str(text).unwrap())
    }

    #[tokio::test]
    async fn requests_beyond_the_limit_queue_then_fail_with_retry_after() {
        let b = breaker(
            "max_requests = 1\nmax_pending = 1\nqueue_timeout = \"50ms\"\nretry_after = \"7s\"",
        );
        let first = b.admit("u").await.unwrap();
        // The second waits in the queue and times out; a third concurrent one is refused.
        let (second, third) = tokio::join!(b.admit("u"), async {
            tokio::task::yield_now().await;
            b.admit("u").await
        });
        let third = third.unwrap_err();
        assert_eq!(third.kind, ErrorKind::UpstreamOverloaded);
        assert_eq!(third.headers.unwrap().get("retry-after").unwrap(), "7");
        assert_eq!(second.unwrap_err().kind, ErrorKind::UpstreamOverloaded);
        drop(first);
        assert!(b.admit("u").await.is_ok());
    }
}
