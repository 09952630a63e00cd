//! Request collapsing: the first miss for an object leads ([`Leader`]), later misses for it
//! wait for the leader's response to be stored, for a bounded time. The leader lets them go
//! when it is dropped, whatever happened: the response was stored, was not cacheable, failed,
//! or the client left. Waiters then look the object up again, and go upstream themselves when
//! it is still not there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// The requests in flight, by object (key and variant values).
#[derive(Debug, Default)]
pub(crate) struct Flights(Mutex<HashMap<Box<str>, Arc<Flight>>>);

/// One in-flight request that others may wait for.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    done: AtomicBool,
    notify: Notify,
}

/// The request that others wait for; dropping it lets them go.
pub(crate) struct Leader {
    flights: Arc<Flights>,
    key: Box<str>,
    flight: Arc<Flight>,
}

impl std::fmt::Debug for Leader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leader").field("key", &self.key).finish()
    }
}

/// What joining the requests in flight for a key gives.
pub(crate) enum Join {
    /// No request was in flight: this one leads.
    Lead(Leader),
    /// Another request is in flight: wait for it.
    Wait(Arc<Flight>),
}

/// Leads the requests for `key`, or joins the one in flight.
pub(crate) fn join(table: &Arc<Flights>, key: &str) -> Join {
    let mut flights = table.0.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(flight) = flights.get(key) {
        return Join::Wait(Arc::clone(flight));
    }
    let flight = Arc::new(Flight::default());
    flights.insert(Box::from(key), Arc::clone(&flight));
    Join::Lead(Leader {
        flights: Arc::clone(table),
        key: Box::from(key),
        flight,
    })
}

/// Leads the requests for `key` when none is in flight (a background refresh); `None` when
/// one is.
pub(crate) fn try_lead(table: &Arc<Flights>, key: &str) -> Option<Leader> {
    match join(table, key) {
        Join::Lead(leader) => Some(leader),
        Join::Wait(_) => None,
    }
}

/// Waits until `flight` is over or `limit` has passed; true when it is over.
pub(crate) async fn wait(flight: &Flight, limit: Duration) -> bool {
    let notified = flight.notify.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if flight.done.load(Ordering::Acquire) {
        return true;
    }
    tokio::time::timeout(limit, notified).await.is_ok()
}

impl Drop for Leader {
    fn drop(&mut self) {
        {
            let mut flights = self
                .flights
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if flights
                .get(&*self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                flights.remove(&*self.key);
            }
        }
        self.flight.done.store(true, Ordering::Release);
        self.flight.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_are_released_when_the_leader_goes() {
        let store = Arc::new(Flights::default());
        let Join::Lead(leader) = join(&store, "k") else {
            panic!("first joiner leads")
        };
        let Join::Wait(flight) = join(&store, "k") else {
            panic!("second joiner waits")
        };
        assert!(try_lead(&store, "k").is_none());
        let waiter = tokio::spawn(async move { wait(&flight, Duration::from_secs(10)).await });
        tokio::task::yield_now().await;
        drop(leader);
        assert!(waiter.await.unwrap());
        assert!(try_lead(&store, "k").is_some());
    }

    #[tokio::test]
    async fn a_wait_is_bounded() {
        let store = Arc::new(Flights::default());
        let _leader = try_lead(&store, "k").unwrap();
        let Join::Wait(flight) = join(&store, "k") else {
            panic!("waits")
        };
        assert!(!wait(&flight, Duration::from_millis(10)).await);
    }
}
