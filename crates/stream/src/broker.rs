//! The brokers a stream source reads (DESIGN §10): a NATS JetStream
//! durable pull consumer and a Redis Streams consumer group, behind one
//! small synchronous [`Consumer`] trait, so the ingest loop knows nothing of
//! either protocol. Both start at the beginning of the stream the first
//! time and at their last acknowledged position after that, and both hand
//! back what was delivered but not acknowledged before a crash first.

use std::time::Duration;

use almanac::core::{Broker, Source};
use futures::StreamExt;

use crate::error::StreamError;

/// One message as delivered: its payload (a JSON event) and when the
/// broker received it (µs since the epoch, for the event-to-servable
/// latency), when the broker says.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub payload: Vec<u8>,
    pub published_micros: Option<i64>,
    position: Position,
}

#[derive(Debug, Clone)]
enum Position {
    /// The last message of each pull carries its handle: acknowledging it
    /// (`AckPolicy::All`) acknowledges everything up to it.
    /// With the consumer generation it came from: after a reset, acks of
    /// the old consumer's messages are moot (the new one redelivers from
    /// the acknowledged floor, and the repeats are dropped as duplicates).
    Nats(u64, Option<std::sync::Arc<jetstream::Message>>),
    Redis(String),
}

/// A broker consumer. Deliveries come in stream order; [`Consumer::ack`]
/// acknowledges a batch of them (after the caller has written it to both
/// stores), up to its last delivery, even when later ones were already
/// fetched.
pub trait Consumer: Send {
    /// Up to `max` deliveries, waiting at most about `wait` for the first.
    fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, StreamError>;
    /// Acknowledge `deliveries` (all fetched since the last ack).
    fn ack(&mut self, deliveries: &[Delivery]) -> Result<(), StreamError>;
    /// Messages in the stream not yet acknowledged by this consumer.
    fn lag(&mut self) -> Result<u64, StreamError>;
    fn describe(&self) -> String;
}

/// The durable consumer's (or the consumer group's) name for a source.
pub fn consumer_name(source: &str) -> String {
    format!("almanac-{source}")
}

/// Connect a consumer for stream source `source`. A broker that cannot be
/// reached is an error naming it (the caller decides whether to retry).
pub fn connect(source: &Source) -> Result<Box<dyn Consumer>, StreamError> {
    let stream = source.stream.as_ref().ok_or_else(|| StreamError::NotAStream(source.name.clone()))?;
    Ok(match &stream.broker {
        Broker::Nats { url, stream: name, subject } => Box::new(NatsConsumer::connect(&source.name, url, name, subject)?),
        Broker::Redis { url, key } => Box::new(RedisConsumer::connect(&source.name, url, key)?),
    })
}

/// Publish JSON events to a stream source's broker, in order, each
/// confirmed by the broker; returns how many. For `almanac publish`, the
/// demo, tests and benchmarks: producers in production use their own clients.
pub fn publish(source: &Source, events: &mut dyn Iterator<Item = Vec<u8>>) -> Result<u64, StreamError> {
    Publisher::connect(source)?.send(events)
}

/// A connection that publishes to a stream source's broker.
pub struct Publisher {
    source: String,
    kind: PublisherKind,
}

enum PublisherKind {
    Nats { runtime: tokio::runtime::Runtime, client: async_nats::Client, context: Box<jetstream::Context>, subject: String },
    Redis { connection: redis::Connection, key: String },
}

impl Publisher {
    pub fn connect(source: &Source) -> Result<Publisher, StreamError> {
        let stream = source.stream.as_ref().ok_or_else(|| StreamError::NotAStream(source.name.clone()))?;
        let kind = match &stream.broker {
            Broker::Nats { url, stream: name, subject } => {
                let runtime = runtime()?;
                let describe = format!("NATS stream `{name}` at {url}");
                let (client, context) = runtime.block_on(async {
                    let (client, context) = nats_context(&source.name, url, &describe).await?;
                    nats_stream(&source.name, &context, name, subject).await?;
                    Ok::<_, StreamError>((client, context))
                })?;
                PublisherKind::Nats { runtime, client, context: Box::new(context), subject: subject.clone() }
            }
            Broker::Redis { url, key } => {
                let connection = redis_connection(&source.name, url, key)?;
                PublisherKind::Redis { connection, key: key.clone() }
            }
        };
        Ok(Publisher { source: source.name.clone(), kind })
    }

    /// Publish `events` in order; returns once the broker has confirmed
    /// every one.
    pub fn send(&mut self, events: &mut dyn Iterator<Item = Vec<u8>>) -> Result<u64, StreamError> {
        let source = self.source.as_str();
        match &mut self.kind {
            PublisherKind::Nats { runtime, client, context, subject } => runtime.block_on(async {
                let mut pending = std::collections::VecDeque::new();
                let mut sent = 0u64;
                for event in events {
                    let ack = context.publish(subject.clone(), event.into()).await.map_err(|e| broker_error(source, "publish", e))?;
                    pending.push_back(ack);
                    // A window of unconfirmed publishes keeps the pipe full
                    // while every message is still confirmed, in order.
                    if pending.len() >= 4096
                        && let Some(ack) = pending.pop_front()
                    {
                        ack.await.map_err(|e| broker_error(source, "publish", e))?;
                    }
                    sent += 1;
                }
                for ack in pending {
                    ack.await.map_err(|e| broker_error(source, "publish", e))?;
                }
                client.flush().await.map_err(|e| broker_error(source, "flush", e))?;
                Ok(sent)
            }),
            PublisherKind::Redis { connection, key } => {
                let mut sent = 0u64;
                loop {
                    let mut pipe = redis::pipe();
                    let mut n = 0;
                    for event in (&mut *events).take(2_000) {
                        pipe.cmd("XADD").arg(key.as_str()).arg("*").arg("data").arg(event).ignore();
                        n += 1;
                    }
                    if n == 0 {
                        return Ok(sent);
                    }
                    let _: () = pipe.query(connection).map_err(|e| broker_error(source, "XADD", e))?;
                    sent += n;
                }
            }
        }
    }
}

/// A connection to the Redis holding stream `key`, or an error naming it.
fn redis_connection(source: &str, url: &str, key: &str) -> Result<redis::Connection, StreamError> {
    let describe = format!("Redis stream `{key}` at {url}");
    let client = redis::Client::open(url).map_err(|e| unreachable(source, describe.clone(), e))?;
    client.get_connection_with_timeout(Duration::from_secs(3)).map_err(|e| unreachable(source, describe, e))
}

fn unreachable(source: &str, broker: String, error: impl std::fmt::Display) -> StreamError {
    StreamError::Unreachable { source_name: source.to_string(), broker, reason: error.to_string() }
}

fn broker_error(source: &str, what: &str, error: impl std::fmt::Display) -> StreamError {
    StreamError::Broker { source_name: source.to_string(), reason: format!("{what}: {error}") }
}

// ---------------------------------------------------------------- NATS

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};

/// A JetStream durable pull consumer with `AckPolicy::All`: acknowledging a
/// batch's last message acknowledges the batch, one round trip per batch.
pub struct NatsConsumer {
    source: String,
    subject: String,
    runtime: tokio::runtime::Runtime,
    stream: jetstream::stream::Stream,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    /// A pull failed: restart at the acknowledged floor before the next.
    reset: bool,
    /// How many times the consumer was recreated in this process.
    generation: u64,
    describe: String,
}

fn runtime() -> Result<tokio::runtime::Runtime, StreamError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| StreamError::Broker { source_name: String::new(), reason: format!("cannot start an async runtime: {e}") })
}

async fn nats_context(source: &str, url: &str, describe: &str) -> Result<(async_nats::Client, jetstream::Context), StreamError> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .map_err(|e| unreachable(source, describe.to_string(), e))?;
    let context = jetstream::new(client.clone());
    Ok((client, context))
}

async fn nats_stream(source: &str, context: &jetstream::Context, name: &str, subject: &str) -> Result<jetstream::stream::Stream, StreamError> {
    // An existing stream is used as it is; a missing one is created for the subject.
    context
        .get_or_create_stream(jetstream::stream::Config { name: name.to_string(), subjects: vec![subject.to_string()], ..Default::default() })
        .await
        .map_err(|e| broker_error(source, &format!("cannot open or create JetStream stream `{name}` (is JetStream enabled on the server?)"), e))
}

impl NatsConsumer {
    fn connect(source: &str, url: &str, name: &str, subject: &str) -> Result<NatsConsumer, StreamError> {
        let runtime = runtime()?;
        let describe = format!("NATS stream `{name}` (subject `{subject}`) at {url}");
        let (stream, consumer) = runtime.block_on(async {
            let (_client, context) = nats_context(source, url, &describe).await?;
            let stream = nats_stream(source, &context, name, subject).await?;
            let durable = consumer_name(source);
            match stream.get_consumer::<pull::Config>(&durable).await {
                Ok(mut existing) => {
                    let info = existing.info().await.map_err(|e| broker_error(source, "consumer info", e))?;
                    if info.num_ack_pending == 0 {
                        return Ok::<_, StreamError>((stream, existing));
                    }
                    // Delivered but unacknowledged before a crash: restart
                    // the consumer just past its acknowledged floor, so the
                    // replay comes now rather than after the ack wait.
                    let consumer = recreate(source, &stream, subject, info.ack_floor.stream_sequence + 1).await?;
                    Ok((stream, consumer))
                }
                // New: from the beginning, so events published before the
                // first ingest are not lost.
                Err(_) => {
                    let consumer = stream.create_consumer(consumer_config(source, subject, DeliverPolicy::All)).await.map_err(|e| broker_error(source, "create the consumer", e))?;
                    Ok((stream, consumer))
                }
            }
        })?;
        Ok(NatsConsumer { source: source.to_string(), subject: subject.to_string(), runtime, stream, consumer, reset: false, generation: 0, describe })
    }

    /// Recreate the durable consumer just past its acknowledged floor.
    fn restart_at_ack_floor(&mut self) -> Result<(), StreamError> {
        let (source, subject) = (self.source.clone(), self.subject.clone());
        let stream = &self.stream;
        let consumer = &mut self.consumer;
        let fresh = self.runtime.block_on(async {
            let info = consumer.info().await.map_err(|e| broker_error(&source, "consumer info", e))?;
            recreate(&source, stream, &subject, info.ack_floor.stream_sequence + 1).await
        })?;
        self.consumer = fresh;
        self.reset = false;
        self.generation += 1;
        Ok(())
    }
}

fn consumer_config(source: &str, subject: &str, deliver_policy: DeliverPolicy) -> pull::Config {
    pull::Config {
        durable_name: Some(consumer_name(source)),
        deliver_policy,
        ack_policy: AckPolicy::All,
        ack_wait: Duration::from_secs(60),
        filter_subject: subject.to_string(),
        max_ack_pending: 1_000_000,
        ..Default::default()
    }
}

async fn recreate(source: &str, stream: &jetstream::stream::Stream, subject: &str, start_sequence: u64) -> Result<jetstream::consumer::Consumer<pull::Config>, StreamError> {
    stream.delete_consumer(&consumer_name(source)).await.map_err(|e| broker_error(source, "reset the consumer", e))?;
    stream.create_consumer(consumer_config(source, subject, DeliverPolicy::ByStartSequence { start_sequence })).await.map_err(|e| broker_error(source, "recreate the consumer", e))
}

impl Consumer for NatsConsumer {
    /// No-wait pulls (the server answers at once with what it has), polled
    /// every 2 ms until something comes or `wait` is up. A pull that waits
    /// on the server instead ends only when the server's expiry notice
    /// arrives, which is late or missing for short expiries, and a pull
    /// abandoned early could still deliver messages no one reads, which the
    /// next `AckPolicy::All` acknowledgement would then acknowledge unread.
    fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, StreamError> {
        if self.reset {
            self.restart_at_ack_floor()?;
        }
        let source = self.source.clone();
        let started = std::time::Instant::now();
        let consumer = &self.consumer;
        let result: Result<Vec<jetstream::Message>, StreamError> = self.runtime.block_on(async {
            loop {
                let mut batch = consumer.fetch().max_messages(max).messages().await.map_err(|e| broker_error(&source, "fetch", e))?;
                let mut out = Vec::new();
                while let Some(message) = batch.next().await {
                    out.push(message.map_err(|e| broker_error(&source, "fetch", e))?);
                }
                if !out.is_empty() || started.elapsed() >= wait {
                    return Ok(out);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let messages = match result {
            Ok(messages) => messages,
            Err(error) => {
                // Messages of the failed pull may still be delivered to no
                // one: restart the consumer at its acknowledged floor before
                // the next pull, so they come again instead of being
                // acknowledged unread by a later `AckPolicy::All` ack.
                self.reset = true;
                return Err(error);
            }
        };
        let count = messages.len();
        let deliveries = messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| Delivery {
                payload: m.payload.to_vec(),
                published_micros: m.info().ok().map(|i| (i.published.unix_timestamp_nanos() / 1_000) as i64),
                position: Position::Nats(self.generation, (i + 1 == count).then(|| std::sync::Arc::new(m))),
            })
            .collect();
        Ok(deliveries)
    }

    fn ack(&mut self, deliveries: &[Delivery]) -> Result<(), StreamError> {
        // The batch ends with a pull's last message, which carries its handle.
        let Some(Position::Nats(generation, Some(last))) = deliveries.last().map(|d| &d.position) else { return Ok(()) };
        if *generation != self.generation {
            return Ok(());
        }
        // Wait for the server's confirmation: after this returns, a restart
        // does not replay the batch.
        self.runtime.block_on(last.double_ack()).map_err(|error| broker_error(&self.source, "ack", error))
    }

    fn lag(&mut self) -> Result<u64, StreamError> {
        let source = self.source.clone();
        let info = self.runtime.block_on(self.consumer.info()).map_err(|e| broker_error(&source, "consumer info", e))?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

// --------------------------------------------------------------- Redis

/// A Redis Streams consumer group (one group per source, one consumer in
/// it). Entries delivered but not acknowledged before a restart are read
/// first (`XREADGROUP … 0`), then new ones (`>`).
pub struct RedisConsumer {
    source: String,
    client: redis::Client,
    connection: Option<redis::Connection>,
    key: String,
    group: String,
    /// Still replaying this consumer's pending entries.
    replaying: bool,
    describe: String,
}

const REDIS_CONSUMER: &str = "almanac";

impl RedisConsumer {
    fn connect(source: &str, url: &str, key: &str) -> Result<RedisConsumer, StreamError> {
        let describe = format!("Redis stream `{key}` at {url}");
        let client = redis::Client::open(url).map_err(|e| unreachable(source, describe.clone(), e))?;
        let mut consumer = RedisConsumer { source: source.to_string(), client, connection: None, key: key.to_string(), group: consumer_name(source), replaying: true, describe };
        let group = consumer.group.clone();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP").arg("CREATE").arg(key).arg(&group).arg("0").arg("MKSTREAM").query(consumer.connection()?);
        match created {
            Ok(()) => {}
            Err(error) if error.code() == Some("BUSYGROUP") => {}
            Err(error) => return Err(broker_error(source, &format!("cannot create consumer group `{group}`"), error)),
        }
        Ok(consumer)
    }

    fn connection(&mut self) -> Result<&mut redis::Connection, StreamError> {
        if self.connection.is_none() {
            let connection = self.client.get_connection_with_timeout(Duration::from_secs(3)).map_err(|e| unreachable(&self.source, self.describe.clone(), e))?;
            self.connection = Some(connection);
        }
        self.connection.as_mut().ok_or_else(|| broker_error(&self.source, "connect", "no connection"))
    }

    /// Run `query`; a failed one drops the connection so the next call
    /// reconnects (a restarted Redis is picked up again).
    fn run<T>(&mut self, what: &str, query: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>) -> Result<T, StreamError> {
        let connection = match self.connection() {
            Ok(connection) => connection,
            Err(error) => {
                self.replaying = true;
                return Err(error);
            }
        };
        let result = query(connection);
        result.map_err(|error| {
            // Entries delivered in a reply that never arrived stay pending
            // for this consumer: read the pending ones again first (those
            // already written come back as duplicates and are dropped).
            self.connection = None;
            self.replaying = true;
            broker_error(&self.source, what, error)
        })
    }
}

impl Consumer for RedisConsumer {
    fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, StreamError> {
        let (key, group) = (self.key.clone(), self.group.clone());
        let from = if self.replaying { "0" } else { ">" };
        let mut command = redis::cmd("XREADGROUP");
        command.arg("GROUP").arg(&group).arg(REDIS_CONSUMER).arg("COUNT").arg(max.max(1));
        if !self.replaying {
            command.arg("BLOCK").arg(wait.as_millis().max(1) as u64);
        }
        command.arg("STREAMS").arg(&key).arg(from);
        let reply: Option<redis::streams::StreamReadReply> = self.run("XREADGROUP", |c| command.query(c))?;
        let entries: Vec<redis::streams::StreamId> = reply.map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect()).unwrap_or_default();
        if self.replaying && entries.is_empty() {
            self.replaying = false;
            return self.fetch(max, wait);
        }
        Ok(entries
            .into_iter()
            .map(|entry| {
                let payload = match entry.map.get("data") {
                    Some(redis::Value::BulkString(bytes)) => bytes.clone(),
                    Some(redis::Value::SimpleString(text)) => text.clone().into_bytes(),
                    _ => Vec::new(),
                };
                let published_micros = entry.id.split('-').next().and_then(|ms| ms.parse::<i64>().ok()).map(|ms| ms * 1_000);
                Delivery { payload, published_micros, position: Position::Redis(entry.id) }
            })
            .collect())
    }

    fn ack(&mut self, deliveries: &[Delivery]) -> Result<(), StreamError> {
        let ids: Vec<&str> = deliveries.iter().filter_map(|d| if let Position::Redis(id) = &d.position { Some(id.as_str()) } else { None }).collect();
        let (key, group) = (self.key.clone(), self.group.clone());
        for chunk in ids.chunks(2_000) {
            let _: u64 = self.run("XACK", |c| redis::cmd("XACK").arg(&key).arg(&group).arg(chunk).query(c))?;
        }
        Ok(())
    }

    fn lag(&mut self) -> Result<u64, StreamError> {
        let (key, group) = (self.key.clone(), self.group.clone());
        let groups: Vec<std::collections::HashMap<String, redis::Value>> = self.run("XINFO GROUPS", |c| redis::cmd("XINFO").arg("GROUPS").arg(&key).query(c))?;
        let number = |value: Option<&redis::Value>| match value {
            Some(redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        let named = |value: Option<&redis::Value>| match value {
            Some(redis::Value::BulkString(n)) => n == group.as_bytes(),
            Some(redis::Value::SimpleString(n)) => n == &group,
            _ => false,
        };
        let Some(info) = groups.iter().find(|g| named(g.get("name"))) else {
            return Err(broker_error(&self.source, "XINFO GROUPS", format!("no consumer group `{group}` on `{key}`")));
        };
        // `lag` (entries not yet delivered to the group) is null when Redis
        // cannot tell (after deletions); pending ones are counted as well.
        Ok(number(info.get("lag")) + number(info.get("pending")))
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// Delete a stream source's stream (NATS) or key (Redis) with everything
/// in it, and Almanac's consumer with it. For tests and teardown scripts.
pub fn delete(source: &Source) -> Result<(), StreamError> {
    let stream = source.stream.as_ref().ok_or_else(|| StreamError::NotAStream(source.name.clone()))?;
    match &stream.broker {
        Broker::Nats { url, stream: name, .. } => runtime()?.block_on(async {
            let (_client, context) = nats_context(&source.name, url, url).await?;
            context.delete_stream(name).await.map(|_| ()).map_err(|e| broker_error(&source.name, "delete stream", e))
        }),
        Broker::Redis { url, key } => {
            let mut connection = redis_connection(&source.name, url, key)?;
            redis::cmd("DEL").arg(key).query::<()>(&mut connection).map_err(|e| broker_error(&source.name, "DEL", e))
        }
    }
}
