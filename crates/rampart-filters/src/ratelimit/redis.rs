//! [`RedisStore`]: GCRA buckets in Redis, shared by every Rampart instance that uses the same
//! server. One Lua script reads the bucket, decides with Redis's clock and writes it back
//! atomically, with the same arithmetic as [`super::gcra::Rate::decide`].
//!
//! Each worker keeps its own multiplexed connection (redis' `ConnectionManager`, created lazily
//! on the worker's runtime and reconnecting by itself). Every call is bounded by `timeout`;
//! after a failure, calls are skipped for `retry_interval` so that a dead Redis costs requests
//! nothing but the policy's `on_redis_error` decision.
//!
//! A connection is also pinged every `retry_interval` by a task on its worker, traffic or not:
//! a connection broken by a Redis restart is found and re-opened before a request needs it,
//! and the first answer after a failure ends the skipping at once, so that instances go back
//! to the shared budget within one interval of Redis answering again.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::gcra::{Rate, Verdict};

/// The GCRA script. Times are integer microseconds from Redis's `TIME`; numbers written back
/// are formatted as integers (Lua would otherwise write large ones in exponent form).
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or 0
local fill = tat - now
if fill < 0 then fill = 0 end
local after = fill + interval
if after > capacity then
  return {0, fill}
end
redis.call('SET', KEYS[1], string.format('%.0f', now + after), 'PX', string.format('%.0f', math.ceil(after / 1000)))
return {1, after}
";

/// Why a Redis call gave no verdict.
#[derive(Debug)]
pub enum RedisUnavailable {
    /// A recent call failed; Redis is not being asked until the retry interval has passed.
    Backoff,
    /// The call failed now.
    Failed(String),
}

/// A connection to one Redis server, shared by the policies that use it.
#[derive(Debug)]
pub struct RedisStore {
    client: redis::Client,
    /// Identifies this store's server in each worker's connection slots (a reload with the
    /// same URL keeps the connections).
    url: String,
    timeout: Duration,
    retry_interval: Duration,
    key_prefix: String,
    script: redis::Script,
    health: Arc<Health>,
}

/// Whether Redis answers, as calls and pings found it; shared with the ping tasks.
#[derive(Debug)]
struct Health {
    epoch: Instant,
    retry_interval: Duration,
    /// Microseconds since `epoch` before which calls are skipped after a failure.
    down_until_us: AtomicU64,
    /// A call or ping failed and none has succeeded since.
    failing: AtomicBool,
    failures: AtomicU64,
    recoveries: AtomicU64,
}

/// What [`RedisStore::health`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisHealth {
    /// Requests are skipping Redis after a failure (for up to `retry_interval`).
    pub down: bool,
    /// Calls and pings that failed.
    pub failures: u64,
    /// Times Redis answered again after a failure.
    pub recoveries: u64,
}

/// One worker's connection to one Redis URL, and the store whose ping task keeps it.
struct Slot {
    url: String,
    conn: ConnectionManager,
    pinged_for: Weak<Health>,
}

thread_local! {
    /// This worker's connections, by Redis URL.
    static CONNECTIONS: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

impl RedisStore {
    /// A store for `url`; nothing is connected until the first call.
    ///
    /// # Errors
    /// A URL the redis client does not accept.
    pub fn new(
        url: &str,
        timeout: Duration,
        retry_interval: Duration,
        key_prefix: &str,
    ) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
        Ok(Self {
            client,
            url: url.to_owned(),
            timeout,
            retry_interval,
            key_prefix: key_prefix.to_owned(),
            script: redis::Script::new(SCRIPT),
            health: Arc::new(Health {
                epoch: Instant::now(),
                retry_interval,
                down_until_us: AtomicU64::new(0),
                failing: AtomicBool::new(false),
                failures: AtomicU64::new(0),
                recoveries: AtomicU64::new(0),
            }),
        })
    }

    /// What calls and pings found so far.
    #[must_use]
    pub fn health(&self) -> RedisHealth {
        let h = &self.health;
        RedisHealth {
            down: h.now_us() < h.down_until_us.load(Ordering::Relaxed),
            failures: h.failures.load(Ordering::Relaxed),
            recoveries: h.recoveries.load(Ordering::Relaxed),
        }
    }

    /// The Redis key of bucket `key` of `policy`: the prefix, the policy name and a SHA-256 of
    /// the key parts (Redis never sees API keys or other header values in clear).
    #[must_use]
    pub fn bucket_key(&self, policy: &str, key: &[u8]) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
        let mut out = String::with_capacity(self.key_prefix.len() + policy.len() + 33);
        out.push_str(&self.key_prefix);
        out.push_str(policy);
        out.push(':');
        for b in &digest.as_ref()[..16] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    /// Runs GCRA on bucket `key` in Redis, within the timeout.
    ///
    /// # Errors
    /// Redis was unreachable, too slow or answered nonsense (or failed recently).
    pub async fn check(&self, key: &str, rate: &Rate) -> Result<Verdict, RedisUnavailable> {
        if self.health.now_us() < self.health.down_until_us.load(Ordering::Relaxed) {
            return Err(RedisUnavailable::Backoff);
        }
        let mut conn = self.connection().map_err(|e| self.failed(&e))?;
        let mut invocation = self.script.key(key);
        invocation.arg(rate.interval_us()).arg(rate.capacity_us());
        let call = invocation.invoke_async::<(u8, u64)>(&mut conn);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((allowed, fill_us))) => {
                self.health.answered();
                Ok(Verdict {
                    allowed: allowed == 1,
                    fill_us,
                })
            }
            Ok(Err(e)) => Err(self.failed(&e.to_string())),
            Err(_) => Err(self.failed(&format!("no answer within {:?}", self.timeout))),
        }
    }

    /// Records a failure: calls are skipped for the retry interval.
    fn failed(&self, why: &str) -> RedisUnavailable {
        self.health.failed(why);
        RedisUnavailable::Failed(why.to_owned())
    }

    /// This worker's connection, created on first use, with a task on this worker that pings
    /// it every retry interval for as long as this store is in service.
    fn connection(&self) -> Result<ConnectionManager, String> {
        CONNECTIONS.with(|slots| {
            let mut slots = slots.borrow_mut();
            let at = slots.iter().position(|slot| slot.url == self.url);
            let slot = match at {
                Some(i) => &mut slots[i],
                None => {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(self.timeout))
                        .set_response_timeout(Some(self.timeout))
                        .set_number_of_retries(1)
                        .set_max_delay(self.retry_interval);
                    let conn = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                        .map_err(|e| e.to_string())?;
                    slots.push(Slot {
                        url: self.url.clone(),
                        conn,
                        pinged_for: Weak::new(),
                    });
                    slots.last_mut().ok_or("no connection slot")?
                }
            };
            // A store that replaced another with the same URL (a reload) pings it anew.
            if !std::ptr::eq(slot.pinged_for.as_ptr(), Arc::as_ptr(&self.health))
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                slot.pinged_for = Arc::downgrade(&self.health);
                runtime.spawn(keep_pinging(
                    Arc::downgrade(&self.health),
                    slot.conn.clone(),
                    self.timeout,
                ));
            }
            Ok(slot.conn.clone())
        })
    }
}

impl Health {
    fn now_us(&self) -> u64 {
        duration_us(self.epoch.elapsed())
    }

    /// Redis answered: a failure before ends here, and requests ask Redis again at once.
    fn answered(&self) {
        // A load first: the common case writes nothing shared.
        if self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::Relaxed) {
            self.down_until_us.store(0, Ordering::Relaxed);
            self.recoveries.fetch_add(1, Ordering::Relaxed);
            tracing::info!("Redis rate-limit store answers again");
        }
    }

    /// A call or ping failed: requests skip Redis for the retry interval.
    fn failed(&self, why: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.failing.store(true, Ordering::Relaxed);
        let now = self.now_us();
        let until = now.saturating_add(duration_us(self.retry_interval));
        if self.down_until_us.swap(until, Ordering::Relaxed) <= now {
            tracing::warn!(error = %why, retry_in = ?self.retry_interval, "Redis rate-limit store unavailable");
        }
    }
}

/// Pings `conn` every retry interval until the store is dropped. A failed ping makes the
/// connection manager re-open the connection, and marks Redis down; the next answer ends that.
async fn keep_pinging(health: Weak<Health>, mut conn: ConnectionManager, timeout: Duration) {
    let Some(interval) = health.upgrade().map(|h| h.retry_interval) else {
        return;
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(health) = health.upgrade() else {
            return;
        };
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(timeout, ping).await {
            Ok(Ok(_)) => health.answered(),
            Ok(Err(e)) => health.failed(&format!("ping: {e}")),
            Err(_) => health.failed(&format!("ping: no answer within {timeout:?}")),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
