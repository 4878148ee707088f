//! The production queue: a Redis stream read by one consumer group. A claimed entry stays in the
//! group's pending list until XACK; its idle time is the lease (renewed with XCLAIM), and
//! XAUTOCLAIM hands entries idle longer than the lease to a live worker. Delayed retries wait in
//! a sorted set and are moved into the stream by a Lua script once due. Every change of state
//! is one script, so a crash never leaves a job in two places or in none; renewing, acknowledging
//! and handing back first check that the entry is still this delivery's (same consumer, same
//! delivery count), so a worker whose job was taken over cannot settle it.
//!
//! For no job to be lost when Redis itself restarts, run it with `appendonly yes`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use backon::Retryable;
use chrono::Utc;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisError, Script};

use super::{Delivery, JobQueue, QueueError};
use crate::images::ImageId;

const GROUP: &str = "workers";
const FIELD: &str = "image";
/// How long one XREADGROUP waits for a new entry.
const BLOCK: Duration = Duration::from_secs(1);

/// Moves due members of the delayed set (KEYS[2]) into the stream (KEYS[1]).
const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, image in ipairs(due) do
  redis.call('XADD', KEYS[1], '*', ARGV[2], image)
  redis.call('ZREM', KEYS[2], image)
end
return #due
";

/// Takes or keeps the lease KEYS[1] for holder ARGV[1] for ARGV[2] ms, unless another holds it.
const LEASE: &str = r"
local current = redis.call('GET', KEYS[1])
if not current or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Renews (`renew`), acknowledges (`ack`) or hands back (`retry`) one delivery, only while the
/// group's pending entry is still held by that consumer for that delivery; 0 otherwise.
/// KEYS: stream, delayed set. ARGV: group, entry id, consumer, deliveries, action, field, image,
/// due time in ms (0: at once).
const SETTLE: &str = r"
local held = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)[1]
if not held or held[2] ~= ARGV[3] or tostring(held[4]) ~= ARGV[4] then
  return 0
end
if ARGV[5] == 'renew' then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
  return 1
end
if ARGV[5] == 'retry' then
  if ARGV[8] == '0' then
    redis.call('XADD', KEYS[1], '*', ARGV[6], ARGV[7])
  else
    redis.call('ZADD', KEYS[2], ARGV[8], ARGV[7])
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
";

pub struct RedisQueue {
    /// Short commands, shared by every caller of this process.
    commands: ConnectionManager,
    /// XREADGROUP … BLOCK holds a connection while it waits; it gets its own.
    blocking: ConnectionManager,
    stream: String,
    /// `queue.name`: the prefix of every key.
    prefix: String,
    delayed: String,
    lease: Duration,
    promote: Script,
    settle: Script,
    /// Set once the consumer group is known to exist (reset when Redis says it does not).
    grouped: AtomicBool,
}

impl RedisQueue {
    /// Connects lazily: Redis may start after the api and workers, and come and go; calls made
    /// while it is down fail with `Unavailable` within `timeout`. A `rediss://` URL speaks TLS
    /// (rustls), trusting the system's CAs, or only `ca` (PEM) when given.
    pub fn open(
        url: &str,
        ca: Option<Vec<u8>>,
        name: &str,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Self, QueueError> {
        crate::tls::ensure_crypto_provider();
        let client = match ca {
            None => redis::Client::open(url),
            Some(pem) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            ),
        }
        .map_err(|e| anyhow::anyhow!("queue.url: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(timeout);
        let blocking_config = config.clone().set_response_timeout(Some(BLOCK + timeout));
        let manager = |config| {
            ConnectionManager::new_lazy_with_config(client.clone(), config)
                .map_err(|e| QueueError::Internal(anyhow::anyhow!("connecting to Redis: {e}")))
        };
        let commands = manager(config)?;
        tokio::spawn(warn_unless_durable(commands.clone()));
        Ok(Self {
            commands,
            blocking: manager(blocking_config)?,
            stream: format!("{name}:jobs"),
            prefix: name.to_owned(),
            delayed: format!("{name}:delayed"),
            lease,
            promote: Script::new(PROMOTE),
            settle: Script::new(SETTLE),
            grouped: AtomicBool::new(false),
        })
    }

    async fn ensure_group(&self) -> Result<(), QueueError> {
        if self.grouped.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut connection = self.commands.clone();
        // From the start of the stream: jobs added before the group existed are delivered too.
        let created: Result<(), RedisError> = connection
            .xgroup_create_mkstream(&self.stream, GROUP, "0")
            .await;
        match created {
            Ok(()) => {}
            Err(error) if error.code() == Some("BUSYGROUP") => {}
            Err(error) => return Err(self.map_error(error)),
        }
        self.grouped.store(true, Ordering::Release);
        Ok(())
    }

    fn map_error(&self, error: RedisError) -> QueueError {
        if error.code() == Some("NOGROUP") {
            // Redis restarted without its data: create the group again on the next call.
            self.grouped.store(false, Ordering::Release);
            return QueueError::Unavailable("the consumer group is gone; recreating it".into());
        }
        if error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.code() == Some("LOADING")
        {
            return QueueError::Unavailable(error.to_string());
        }
        QueueError::Internal(anyhow::anyhow!("Redis: {error}"))
    }

    fn delivery(entry: &StreamId, consumer: &str, deliveries: u64) -> Result<Delivery, QueueError> {
        let image: String = entry
            .get(FIELD)
            .ok_or_else(|| anyhow::anyhow!("stream entry {} has no {FIELD} field", entry.id))?;
        let image = ImageId::parse(&image)
            .map_err(|e| anyhow::anyhow!("stream entry {} names image {image:?}: {e}", entry.id))?;
        Ok(Delivery {
            image,
            receipt: entry.id.clone(),
            consumer: consumer.to_owned(),
            deliveries,
        })
    }

    /// How many times the group has delivered `id` (it counts takeovers too).
    async fn deliveries(&self, id: &str) -> Result<u64, QueueError> {
        let mut connection = self.commands.clone();
        let pending: redis::streams::StreamPendingCountReply = connection
            .xpending_count(&self.stream, GROUP, id, id, 1)
            .await
            .map_err(|e| self.map_error(e))?;
        pending
            .ids
            .first()
            .map(|entry| entry.times_delivered as u64)
            .ok_or(QueueError::LeaseLost)
    }

    /// Runs SETTLE for `delivery`; `LeaseLost` when it is no longer this delivery's.
    async fn settle(
        &self,
        delivery: &Delivery,
        action: &str,
        due_ms: i64,
    ) -> Result<(), QueueError> {
        let mut connection = self.commands.clone();
        let settled: i64 = self
            .settle
            .key(&self.stream)
            .key(&self.delayed)
            .arg(GROUP)
            .arg(&delivery.receipt)
            .arg(&delivery.consumer)
            .arg(delivery.deliveries)
            .arg(action)
            .arg(FIELD)
            .arg(delivery.image.to_string())
            .arg(due_ms)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.map_error(e))?;
        if settled == 1 {
            Ok(())
        } else {
            Err(QueueError::LeaseLost)
        }
    }
}

#[async_trait]
impl JobQueue for RedisQueue {
    async fn enqueue(&self, image: ImageId) -> Result<(), QueueError> {
        self.ensure_group().await?;
        let mut connection = self.commands.clone();
        let _: String = connection
            .xadd(&self.stream, "*", &[(FIELD, image.to_string())])
            .await
            .map_err(|e| self.map_error(e))?;
        Ok(())
    }

    async fn claim(&self, consumer: &str) -> Result<Option<Delivery>, QueueError> {
        self.ensure_group().await?;
        let mut connection = self.commands.clone();
        let _: i64 = self
            .promote
            .key(&self.stream)
            .key(&self.delayed)
            .arg(Utc::now().timestamp_millis())
            .arg(FIELD)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.map_error(e))?;
        // First, a job whose holder stopped renewing its lease.
        let abandoned: redis::streams::StreamAutoClaimReply = connection
            .xautoclaim_options(
                &self.stream,
                GROUP,
                consumer,
                self.lease.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(1),
            )
            .await
            .map_err(|e| self.map_error(e))?;
        if let Some(entry) = abandoned.claimed.first() {
            tracing::info!(entry = %entry.id, "taking over a job whose lease expired");
            let deliveries = self.deliveries(&entry.id).await?;
            return Self::delivery(entry, consumer, deliveries).map(Some);
        }
        let mut blocking = self.blocking.clone();
        let options = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(1)
            .block(BLOCK.as_millis() as usize);
        let reply: Option<StreamReadReply> = blocking
            .xread_options(&[&self.stream], &[">"], &options)
            .await
            .map_err(|e| self.map_error(e))?;
        match reply
            .as_ref()
            .and_then(|reply| reply.keys.first())
            .and_then(|key| key.ids.first())
        {
            Some(entry) => Self::delivery(entry, consumer, 1).map(Some),
            None => Ok(None),
        }
    }

    async fn renew(&self, delivery: &Delivery) -> Result<(), QueueError> {
        // XCLAIM resets the entry's idle time, which is what XAUTOCLAIM measures the lease by.
        self.settle(delivery, "renew", 0).await
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.settle(delivery, "ack", 0).await
    }

    async fn retry_after(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let due = if delay.is_zero() {
            0
        } else {
            Utc::now().timestamp_millis() + delay.as_millis() as i64
        };
        self.settle(delivery, "retry", due).await
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let mut connection = self.commands.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(|e| self.map_error(e))?;
        Ok(())
    }

    async fn queued_images(&self) -> Result<HashSet<ImageId>, QueueError> {
        let mut connection = self.commands.clone();
        let entries: StreamRangeReply = connection
            .xrange_all(&self.stream)
            .await
            .map_err(|e| self.map_error(e))?;
        let delayed: Vec<String> = connection
            .zrange(&self.delayed, 0, -1)
            .await
            .map_err(|e| self.map_error(e))?;
        let waiting = entries.ids.iter().filter_map(|entry| {
            entry
                .get::<String>(FIELD)
                .and_then(|id| ImageId::parse(&id).ok())
        });
        let later = delayed.iter().filter_map(|id| ImageId::parse(id).ok());
        Ok(waiting.chain(later).collect())
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, QueueError> {
        let mut connection = self.commands.clone();
        let taken: i64 = Script::new(LEASE)
            .key(format!("{}:lease:{name}", self.prefix))
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.map_error(e))?;
        Ok(taken == 1)
    }
}

/// Reads the server's persistence settings once it first answers, and warns when queued jobs
/// would not survive a restart of Redis, or could be evicted. Managed servers may refuse
/// `CONFIG`: that is said once too.
async fn warn_unless_durable(commands: ConnectionManager) {
    let needs = "the queue needs appendonly yes, appendfsync everysec or always, \
                 maxmemory-policy noeviction";
    let mut settings = std::collections::HashMap::new();
    for name in ["appendonly", "appendfsync", "save", "maxmemory-policy"] {
        let read = (|| {
            let mut commands = commands.clone();
            async move {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(name)
                    .query_async::<Vec<String>>(&mut commands)
                    .await
            }
        })
        .retry(
            backon::ExponentialBuilder::default()
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(20),
        )
        .when(unreachable)
        .await;
        match read {
            Ok(pair) => {
                settings.insert(name, pair.get(1).cloned().unwrap_or_default());
            }
            // Never reached: the queue's own errors say so.
            Err(error) if unreachable(&error) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot read Redis's persistence settings; {needs}");
                return;
            }
        }
    }
    let setting = |name: &str| settings.get(name).map_or("", String::as_str);
    if setting("appendonly") != "yes" {
        let risk = if setting("save").is_empty() {
            "Redis keeps the job queue in memory only: every queued job is lost if it restarts"
        } else {
            "Redis saves the job queue in snapshots only: jobs queued since the last one are lost if it restarts"
        };
        tracing::warn!(
            appendonly = setting("appendonly"),
            save = setting("save"),
            "{risk}; {needs}"
        );
    } else if setting("appendfsync") == "no" {
        tracing::warn!(
            "Redis leaves flushing its append-only file to the OS: the last seconds of queued jobs can be lost on a machine crash; {needs}"
        );
    }
    if !matches!(setting("maxmemory-policy"), "noeviction" | "") {
        tracing::warn!(
            policy = setting("maxmemory-policy"),
            "Redis may evict queued jobs when its memory is full; {needs}"
        );
    }
}

fn unreachable(error: &RedisError) -> bool {
    error.is_io_error() || error.is_timeout() || error.is_connection_dropped()
}
