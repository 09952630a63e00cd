//! Per-worker connection pools.
//!
//! Each worker thread runs a single-threaded event loop, so its pools live in a thread-local
//! and are used without locks or atomics (hand-written on purpose: a general pool such as
//! hyper-util's locks a mutex per checkout). Pools are indexed by a dense per-target key.
//! Idle HTTP/1.1 connections are kept LIFO (the most recently used is the most likely alive);
//! HTTP/2 keeps one multiplexed connection per target.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use hyper::client::conn::http2;
use rampart_core::Body;
use rampart_core::body::{PooledConn, UpstreamSender};

/// The HTTP/2 upstream connection handle.
pub(crate) type H2Sender = http2::SendRequest<Body>;

struct Idle {
    sender: UpstreamSender,
    expires: Instant,
}

#[derive(Default)]
struct Slot {
    idle: Vec<Idle>,
    h2: Option<H2Sender>,
}

#[derive(Default)]
struct WorkerPools {
    slots: Vec<Slot>,
    sweeper_started: bool,
}

impl WorkerPools {
    fn slot(&mut self, key: usize) -> &mut Slot {
        if key >= self.slots.len() {
            self.slots.resize_with(key + 1, Slot::default);
        }
        &mut self.slots[key]
    }
}

thread_local! {
    static POOLS: RefCell<WorkerPools> = RefCell::default();
}

/// How often idle connections are checked for expiry.
const SWEEP_INTERVAL: Duration = Duration::from_secs(2);

/// Takes the most recently used live idle connection for `key`, dropping expired or closed
/// ones on the way.
pub(crate) fn take_h1(key: usize) -> Option<UpstreamSender> {
    POOLS.with_borrow_mut(|pools| {
        let slot = pools.slot(key);
        let now = Instant::now();
        while let Some(idle) = slot.idle.pop() {
            if !idle.sender.is_closed() && idle.expires > now {
                return Some(idle.sender);
            }
        }
        None
    })
}

/// Puts an HTTP/1.1 connection back after its response was read to the end. Used as the
/// release function of [`rampart_core::body::PoolReturn`].
pub(crate) fn release_h1(conn: PooledConn) {
    if conn.sender.is_closed() {
        return;
    }
    POOLS.with_borrow_mut(|pools| {
        if !pools.sweeper_started && tokio::runtime::Handle::try_current().is_ok() {
            pools.sweeper_started = true;
            tokio::spawn(sweep_forever());
        }
        let slot = pools.slot(conn.pool_key);
        if slot.idle.len() < conn.max_idle {
            let expires = Instant::now() + conn.idle_timeout;
            slot.idle.push(Idle { sender: conn.sender, expires });
        }
    });
}

/// The live HTTP/2 connection for `key`, if any.
pub(crate) fn get_h2(key: usize) -> Option<H2Sender> {
    POOLS.with_borrow_mut(|pools| {
        let slot = pools.slot(key);
        match &slot.h2 {
            Some(s) if !s.is_closed() => Some(s.clone()),
            _ => {
                slot.h2 = None;
                None
            }
        }
    })
}

/// Stores the HTTP/2 connection for `key`.
pub(crate) fn put_h2(key: usize, sender: H2Sender) {
    POOLS.with_borrow_mut(|pools| pools.slot(key).h2 = Some(sender));
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
                slot.idle.retain(|i| !i.sender.is_closed() && i.expires > now);
                if slot.h2.as_ref().is_some_and(H2Sender::is_closed) {
                    slot.h2 = None;
                }
            }
        });
    }
}
