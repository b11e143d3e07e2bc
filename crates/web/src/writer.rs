//! The event writer: tracking endpoints hand events to a bounded channel and return at once; one
//! task drains it and writes batches to the store — every `flush_every` or as soon as
//! `max_batch` events are waiting — so a burst of opens costs one transaction per batch, not one
//! per request. A full channel makes endpoints wait (back-pressure) rather than drop events; a
//! failed write is retried with the batch kept; shutdown drains the channel and flushes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use retain_store::{NewEvent, Store};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

/// How the writer batches.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub flush_every: Duration,
    pub max_batch: usize,
    pub channel: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            flush_every: Duration::from_millis(50),
            max_batch: 2000,
            channel: 50_000,
        }
    }
}

/// Why an event could not be queued.
#[derive(Debug, thiserror::Error)]
#[error("the event writer has stopped")]
pub struct WriterClosed;

/// Counters of the writer, readable while it runs.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub queued: AtomicU64,
    pub written: AtomicU64,
    pub batches: AtomicU64,
    pub failed_writes: AtomicU64,
}

/// The sending side, cloned into every request handler.
#[derive(Debug, Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<NewEvent>,
    stats: Arc<WriterStats>,
}

impl EventWriter {
    /// Queues an event (waits while the channel is full).
    pub async fn record(&self, e: NewEvent) -> Result<(), WriterClosed> {
        self.tx.send(e).await.map_err(|_| WriterClosed)?;
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

/// The writing task; [`WriterTask::shutdown`] drains and flushes it.
#[derive(Debug)]
pub struct WriterTask {
    stop: Arc<Notify>,
    join: JoinHandle<u64>,
    stats: Arc<WriterStats>,
}

impl WriterTask {
    /// Stops accepting events, writes everything queued, and returns how many events could not
    /// be written (0 unless the database stayed unreachable).
    pub async fn shutdown(self) -> u64 {
        self.stop.notify_one();
        self.join.await.unwrap_or(u64::MAX)
    }

    /// The counters, kept after shutdown.
    pub fn stats_handle(&self) -> Arc<WriterStats> {
        self.stats.clone()
    }

    /// Events written so far.
    pub fn written(&self) -> u64 {
        self.stats.written.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

/// Starts the writer on the current runtime.
pub fn spawn(store: Store, cfg: WriterConfig) -> (EventWriter, WriterTask) {
    let (tx, rx) = mpsc::channel(cfg.channel.max(1));
    let stats = Arc::new(WriterStats::default());
    let stop = Arc::new(Notify::new());
    let join = tokio::spawn(run(store, cfg, rx, stop.clone(), stats.clone()));
    (
        EventWriter {
            tx,
            stats: stats.clone(),
        },
        WriterTask { stop, join, stats },
    )
}

async fn run(
    store: Store,
    cfg: WriterConfig,
    mut rx: mpsc::Receiver<NewEvent>,
    stop: Arc<Notify>,
    stats: Arc<WriterStats>,
) -> u64 {
    let max = cfg.max_batch.max(1);
    let mut buf: Vec<NewEvent> = Vec::with_capacity(max);
    let mut tick = tokio::time::interval(cfg.flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.notified() => break,
            msg = rx.recv() => match msg {
                Some(e) => {
                    buf.push(e);
                    while buf.len() < max {
                        match rx.try_recv() {
                            Ok(e) => buf.push(e),
                            Err(_) => break,
                        }
                    }
                    if buf.len() >= max {
                        flush(&store, &mut buf, &stats, None).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                if !buf.is_empty() {
                    flush(&store, &mut buf, &stats, None).await;
                }
            }
        }
    }
    // Drain: no new events; everything already queued is written.
    rx.close();
    while let Some(e) = rx.recv().await {
        buf.push(e);
        if buf.len() >= max {
            flush(&store, &mut buf, &stats, Some(20)).await;
        }
    }
    flush(&store, &mut buf, &stats, Some(20)).await;
    buf.len() as u64
}

/// Writes `buf`, retrying with a growing pause; `attempts: None` retries until it succeeds.
/// Written events leave `buf`; on giving up they stay in it.
async fn flush(store: &Store, buf: &mut Vec<NewEvent>, stats: &WriterStats, attempts: Option<u32>) {
    let mut attempt = 0u32;
    while !buf.is_empty() {
        match store.record_events(buf).await {
            Ok(n) => {
                stats.written.fetch_add(n, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                buf.clear();
            }
            Err(e) => {
                stats.failed_writes.fetch_add(1, Ordering::Relaxed);
                attempt += 1;
                eprintln!(
                    "retain serve: writing {} events failed (attempt {attempt}): {e}",
                    buf.len()
                );
                if attempts.is_some_and(|a| attempt >= a) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt.min(40)))).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retain_store::EventKind;

    #[tokio::test]
    async fn batches_and_flushes_everything_on_shutdown() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_sqlite(&dir.path().join("t.db"))
            .await
            .expect("open");
        let (w, task) = spawn(
            store.clone(),
            WriterConfig {
                flush_every: Duration::from_secs(3600),
                max_batch: 100,
                channel: 64,
            },
        );
        let mut handles = Vec::new();
        for t in 0..8 {
            let w = w.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..1000 {
                    w.record(NewEvent {
                        send_id: t * 1000 + i,
                        kind: EventKind::Open,
                        at: 1,
                        bot: false,
                        url: None,
                        user_agent: None,
                    })
                    .await
                    .expect("queued");
                }
            }));
        }
        for h in handles {
            h.await.expect("join");
        }
        // 8,000 events with a 100-event batch: most were written in full batches already.
        assert_eq!(task.shutdown().await, 0);
        assert_eq!(store.event_total().await.expect("count"), 8000);
        assert!(w.stats().batches.load(Ordering::Relaxed) >= 80);
        assert!(w
            .record(NewEvent {
                send_id: 1,
                kind: EventKind::Open,
                at: 1,
                bot: false,
                url: None,
                user_agent: None,
            })
            .await
            .is_err());
    }
}
