//! Per-worker connection pools.
//!
//! Each worker thread runs a single-threaded event loop, so its pools live in a thread-local
//! and are used without locks or atomics (hand-written on purpose: a general pool such as
//! hyper-util's locks a mutex per checkout). Pools are indexed by a dense per-target key.
//! Idle HTTP/1.1 connections are kept LIFO (the most recently used is the most likely alive)
//! and checked for a close from the upstream (reactor readiness, no system call) when taken;
//! HTTP/2 keeps one multiplexed connection per target, and requests arriving while it is being
//! opened wait for that connection instead of opening their own.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::client::conn::http2;
use rampart_core::{Body, ProxyError};
use tokio::sync::watch;

use crate::h1::H1Conn;

/// The HTTP/2 upstream connection handle.
pub(crate) type H2Sender = http2::SendRequest<Body>;

/// The outcome of opening an HTTP/2 connection, shared with the requests waiting for it
/// (`None` until it is known).
pub(crate) type H2Outcome = Option<Result<H2Sender, ProxyError>>;

/// The HTTP/2 connection of one target.
#[derive(Default)]
enum H2Slot {
    /// None open.
    #[default]
    Empty,
    /// A request is opening one; others wait on this channel.
    Connecting(watch::Receiver<H2Outcome>),
    /// One is open.
    Ready(H2Sender),
}

/// What a request should do to get the HTTP/2 connection of a target.
pub(crate) enum H2Checkout {
    /// Use this open connection.
    Ready(H2Sender),
    /// Another request is opening it: wait for the outcome.
    Wait(watch::Receiver<H2Outcome>),
    /// Open it, then report with [`H2Connecting::finish`].
    Connect(H2Connecting),
}

/// The duty of opening a target's HTTP/2 connection. Dropping it unfinished (the request was
/// abandoned) closes the channel, so waiters and later requests try again.
pub(crate) struct H2Connecting {
    key: usize,
    tx: watch::Sender<H2Outcome>,
}

impl H2Connecting {
    /// Stores the new connection (or forgets the attempt) and wakes the waiting requests.
    pub(crate) fn finish(self, outcome: &Result<H2Sender, ProxyError>) {
        POOLS.with_borrow_mut(|pools| {
            pools.slot(self.key).h2 = match outcome {
                Ok(sender) => H2Slot::Ready(sender.clone()),
                Err(_) => H2Slot::Empty,
            };
        });
        self.tx.send_replace(Some(outcome.clone()));
    }
}

/// Where an HTTP/1.1 connection goes back to, and on what terms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSlot {
    /// The target's pool.
    pub(crate) key: usize,
    /// Most idle connections kept.
    pub(crate) max_idle: usize,
    /// How long a connection may stay idle.
    pub(crate) idle_timeout: Duration,
}

/// An idle connection; boxed, so taking it from the pool and handing it back moves a pointer.
struct Idle {
    conn: Box<H1Conn>,
    expires: Instant,
}

struct Slot {
    idle: Vec<Idle>,
    h2: H2Slot,
    /// This key's process-wide idle count, kept in step with `idle`.
    gauge: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.fetch_sub(self.idle.len(), Ordering::Relaxed);
    }
}

/// Idle HTTP/1.1 connections per pool key, summed over workers (for metrics). Locked only when
/// a worker first uses a key and when metrics are read, never per request.
static IDLE_GAUGES: Mutex<Vec<Arc<AtomicUsize>>> = Mutex::new(Vec::new());

fn idle_gauge(key: usize) -> Arc<AtomicUsize> {
    let mut gauges = IDLE_GAUGES.lock().unwrap_or_else(PoisonError::into_inner);
    if key >= gauges.len() {
        gauges.resize_with(key + 1, Arc::default);
    }
    Arc::clone(&gauges[key])
}

/// Idle HTTP/1.1 connections kept for pool `key` by all workers now.
pub(crate) fn idle_connections(key: usize) -> usize {
    let gauges = IDLE_GAUGES.lock().unwrap_or_else(PoisonError::into_inner);
    gauges.get(key).map_or(0, |g| g.load(Ordering::Relaxed))
}

#[derive(Default)]
struct WorkerPools {
    slots: Vec<Slot>,
    sweeper_started: bool,
}

impl WorkerPools {
    fn slot(&mut self, key: usize) -> &mut Slot {
        while self.slots.len() <= key {
            self.slots.push(Slot {
                idle: Vec::new(),
                h2: H2Slot::default(),
                gauge: idle_gauge(self.slots.len()),
            });
        }
        &mut self.slots[key]
    }
}

thread_local! {
    static POOLS: RefCell<WorkerPools> = RefCell::default();
}

/// How often idle connections are checked for expiry.
const SWEEP_INTERVAL: Duration = Duration::from_secs(2);

/// Takes the most recently used live idle connection for `key`, dropping the ones expired at
/// `now` or closed on the way.
pub(crate) fn take_h1(key: usize, now: Instant) -> Option<Box<H1Conn>> {
    POOLS.with_borrow_mut(|pools| {
        let slot = pools.slot(key);
        while let Some(mut idle) = slot.idle.pop() {
            slot.gauge.fetch_sub(1, Ordering::Relaxed);
            if idle.expires > now && idle.conn.is_reusable() {
                return Some(idle.conn);
            }
        }
        None
    })
}

/// Puts an HTTP/1.1 connection back after its response was read to the end.
pub(crate) fn release_h1(conn: Box<H1Conn>, to: PoolSlot) {
    POOLS.with_borrow_mut(|pools| {
        if !pools.sweeper_started && tokio::runtime::Handle::try_current().is_ok() {
            pools.sweeper_started = true;
            tokio::spawn(sweep_forever());
        }
        let slot = pools.slot(to.key);
        if slot.idle.len() < to.max_idle {
            let expires = Instant::now() + to.idle_timeout;
            slot.idle.push(Idle { conn, expires });
            slot.gauge.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// The live HTTP/2 connection for `key`, or who opens it: the first request to find none
/// opens it, requests arriving meanwhile wait for it (one connection per target and worker).
pub(crate) fn checkout_h2(key: usize) -> H2Checkout {
    POOLS.with_borrow_mut(|pools| {
        let slot = pools.slot(key);
        match &slot.h2 {
            H2Slot::Ready(sender) if !sender.is_closed() => {
                return H2Checkout::Ready(sender.clone());
            }
            // An opener that went away leaves a closed channel: open anew.
            H2Slot::Connecting(rx) if rx.has_changed().is_ok() => {
                return H2Checkout::Wait(rx.clone());
            }
            _ => {}
        }
        let (tx, rx) = watch::channel(None);
        slot.h2 = H2Slot::Connecting(rx);
        H2Checkout::Connect(H2Connecting { key, tx })
    })
}

/// Closes connections that are dead or idle past their upstream's `idle_timeout`, so a worker
/// does not hold sockets longer than configured or after the upstream gave up on them.
async fn sweep_forever() {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        POOLS.with_borrow_mut(|pools| {
            let now = Instant::now();
            for slot in &mut pools.slots {
                let before = slot.idle.len();
                slot.idle
                    .retain_mut(|i| i.expires > now && i.conn.is_reusable());
                slot.gauge
                    .fetch_sub(before - slot.idle.len(), Ordering::Relaxed);
                if matches!(&slot.h2, H2Slot::Ready(sender) if sender.is_closed()) {
                    slot.h2 = H2Slot::Empty;
                }
            }
        });
    }
}
