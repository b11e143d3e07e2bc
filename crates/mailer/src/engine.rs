//! The send engine: queues a campaign's recipients in the ledger, checks the templates, then
//! claims rows in small batches for this worker (claims carry the worker id and an expiry on the
//! database clock), and for each row: renders it, waits for its shared rate slot (campaign and
//! recipient domain, [`crate::throttle::Pacer`]), marks it `sending` durably right before its own
//! SMTP transaction ([`Store::begin_sends`], only while the claim is still ours; the rows of
//! connections that reach that point together share one statement), sends it, and records
//! outcomes in batched, durable transactions (`sent` right after the 250).
//!
//! Any number of senders (`retain send`, `retain worker`, on any machines) may work on one
//! campaign at once. Guarantees: a `sent` row is never sent again; a row left `sending` by a
//! worker that died is reported as unconfirmed and not sent again unless asked
//! (`resend_unconfirmed`) — at most the messages that worker had in flight; rows it had claimed
//! but not started return to the queue when their claim expires, or at once when a worker on
//! the same host finds its PID gone; a clean stop (Ctrl-C, SIGTERM, pause, cancel, limit) gives
//! claimed-but-unattempted rows back; suppressed, unsubscribed, non-consenting and invalid
//! addresses are re-checked at claim time; holdout members are never queued.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use retain_core::SuppressionReason;
use retain_store::{
    Claim, ClaimedSend, ConsentCheck, NewSend, SendCounts, SendFailure, SendLedger, Store,
};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::composer::Composer;
use crate::context::Recipient;
use crate::error::MailerError;
use crate::throttle::{backoff, DomainRate, Pacer};
use crate::transport::{Transport, TransportError};

/// A member of a campaign's audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub customer_id: String,
    /// Kept unmailed as the control group.
    pub holdout: bool,
}

/// What queueing did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueSummary {
    /// Rows added to the ledger now (queued or suppressed).
    pub added: u64,
    /// Of those, recorded as suppressed.
    pub suppressed: u64,
    /// Members in the holdout: never queued.
    pub holdout: u64,
}

/// Why a recipient may not be mailed at queue time, if so.
pub fn queue_time_exclusion(
    r: Option<&Recipient>,
    suppressions: &retain_store::SuppressionList,
    check: ConsentCheck,
) -> Option<String> {
    let Some(r) = r else {
        return Some("customer not found".into());
    };
    let c = &r.customer;
    let email = c.email.as_deref().map(str::trim).unwrap_or("");
    if email.is_empty() {
        return Some("no email address".into());
    }
    if let Some(reason) = suppressions.get(email) {
        return Some(format!("suppressed: {}", reason.as_str()));
    }
    match c.subscribed {
        Some(false) => return Some("unsubscribed".into()),
        None if check.require_opt_in => return Some("no consent".into()),
        _ => {}
    }
    if !c.email_valid || email.parse::<lettre::Address>().is_err() {
        return Some("invalid email address".into());
    }
    None
}

/// Adds every non-holdout member to the ledger (idempotent): `queued`, or `suppressed` with the
/// reason when they may not be mailed.
pub async fn queue_campaign(
    store: &Store,
    composer: &Composer,
    members: &[Member],
    recipients: &HashMap<String, Recipient>,
    check: ConsentCheck,
) -> Result<QueueSummary, MailerError> {
    let suppressions = store.suppression_list().await?;
    let mut rows = Vec::with_capacity(members.len());
    let mut holdout = 0;
    for m in members {
        if m.holdout {
            holdout += 1;
            continue;
        }
        let r = recipients.get(&m.customer_id);
        let email = r
            .and_then(|r| r.customer.email.as_deref())
            .map(str::trim)
            .unwrap_or("")
            .to_string();
        rows.push(NewSend {
            customer_id: m.customer_id.clone(),
            email,
            message_id: composer.identity().new_message_id(),
            suppressed: queue_time_exclusion(r, &suppressions, check),
        });
    }
    let campaign = &composer.shared().campaign.id;
    let before = store.send_counts(campaign).await?;
    let added = store.queue_sends(campaign, &rows).await?;
    let after = store.send_counts(campaign).await?;
    Ok(QueueSummary {
        added,
        suppressed: (after.suppressed - before.suppressed).max(0) as u64,
        holdout,
    })
}

/// How to send.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Messages per second for the campaign across all workers (shared through the database);
    /// 0: unlimited.
    pub rate: f64,
    /// Per recipient domain limits, across all workers and campaigns.
    pub domain_rates: Vec<DomainRate>,
    /// How long a 421/451 answer pauses its domain for every worker.
    pub throttle_pause: Duration,
    /// Parallel SMTP connections.
    pub concurrency: usize,
    /// Attempt at most this many messages in this run.
    pub limit: Option<u64>,
    /// Queue rows left `sending` by a crashed run again (they may be duplicates).
    pub resend_unconfirmed: bool,
    /// Queue transient failures of earlier runs again.
    pub retry_failed: bool,
    /// SMTP attempts per message in one run (transient failures).
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Claims (and this worker's liveness) last this long without a heartbeat (seconds).
    pub claim_ttl_s: i64,
    /// Rows claimed per transaction (0: chosen from rate and concurrency).
    pub claim_batch: usize,
    /// Outcomes are written at least this often.
    pub flush_interval: Duration,
    pub consent: ConsentCheck,
    /// This worker's id (`host:pid:random`): claims carry it.
    pub owner: String,
    /// The deliverability guardrail checked between batches (`None`: not checked).
    pub guardrail: Option<crate::deliverability::GuardrailLimits>,
    /// The run registers `owner` as a worker, heartbeats it and stops it at the end (false when
    /// a long-running `retain worker` does that itself).
    pub standalone: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            rate: 20.0,
            domain_rates: Vec::new(),
            throttle_pause: Duration::from_secs(1),
            concurrency: 4,
            limit: None,
            resend_unconfirmed: false,
            retry_failed: false,
            max_attempts: 5,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            claim_ttl_s: test_hooks::claim_ttl_s().unwrap_or(30),
            claim_batch: 0,
            flush_interval: Duration::from_millis(50),
            consent: ConsentCheck::default(),
            owner: default_owner(),
            guardrail: Some(crate::deliverability::GuardrailLimits::default()),
            standalone: true,
        }
    }
}

/// `host:pid:random`, unique per process.
pub fn default_owner() -> String {
    format!(
        "{}:{}:{}",
        crate::workers::host_name(),
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

impl SendOptions {
    fn batch(&self) -> usize {
        if self.claim_batch > 0 {
            return self.claim_batch;
        }
        let per_50ms = if self.rate > 0.0 {
            (self.rate / 20.0).ceil() as usize
        } else {
            256
        };
        per_50ms.clamp(self.concurrency.max(1), 256)
    }
}

/// Live counters of a run, for progress bars.
#[derive(Debug, Default)]
pub struct Progress {
    /// Rows queued when the run started (capped by the limit).
    pub total: AtomicU64,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    /// Moved to `suppressed` by the send-time check.
    pub suppressed: AtomicU64,
    /// Transient failures retried.
    pub retries: AtomicU64,
}

impl Progress {
    pub fn done(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.suppressed.load(Ordering::Relaxed)
    }
}

/// Why a run ended before the queue was empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Interrupted,
    Paused,
    Cancelled,
    /// Another worker found this one dead (its heartbeat had expired): it stopped claiming.
    WorkerLost,
    Limit,
    /// The transport cannot send at all (TLS, authentication).
    TransportFailed(String),
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct SendReport {
    pub campaign_id: String,
    /// Accepted by the server in this run.
    pub sent: u64,
    /// Given up in this run (permanent rejections, retries exhausted, render errors).
    pub failed: u64,
    /// Recipients of the campaign never mailed because suppressed, unsubscribed, without
    /// consent or without a valid address (whole ledger).
    pub suppressed: i64,
    /// Holdout members (never mailed).
    pub skipped_holdout: u64,
    /// Rows left `sending` by a worker that died: possibly sent, not sent again.
    pub unconfirmed: i64,
    /// Rows other live workers are sending right now (not unconfirmed).
    pub in_flight_elsewhere: i64,
    pub elapsed_s: f64,
    /// Still queued after the run.
    pub remaining: i64,
    /// Unconfirmed rows queued again at the start (`resend_unconfirmed`).
    pub requeued_unconfirmed: u64,
    /// Hard bounces added to the suppression list in this run.
    pub hard_bounces: u64,
    pub retries: u64,
    pub stopped: Option<StopReason>,
    /// Why the campaign paused itself (the guardrail), when it did.
    pub pause_reason: Option<String>,
    pub transport: String,
    /// The whole ledger of the campaign after the run.
    pub totals: SendCounts,
}

#[derive(Debug)]
enum Outcome {
    Sent {
        id: i64,
        at: i64,
        extra_attempts: i64,
    },
    Failed {
        failure: SendFailure,
        extra_attempts: i64,
    },
    /// Not accepted and not given up: back to the queue, due now.
    Requeue {
        id: i64,
        error: String,
        extra_attempts: i64,
    },
    /// Claimed but never attempted: the claim is given back.
    Unclaim(i64),
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A connection task's request to mark its row `sending`, and where the answer goes.
type StartRequest = (i64, tokio::sync::oneshot::Sender<Result<bool, String>>);

struct Shared<T> {
    store: Store,
    /// Marks rows `sending` (see [`start_loop`]).
    starter: mpsc::UnboundedSender<StartRequest>,
    composer: Arc<Composer>,
    transport: Arc<T>,
    recipients: Arc<HashMap<String, Recipient>>,
    pacer: Pacer,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    opts: SendOptions,
    fatal: Mutex<Option<String>>,
    /// The first database error of a connection task (the run stops and reports it).
    db_error: Mutex<Option<String>>,
    hard_bounces: AtomicU64,
}

/// Sends a queued campaign (see the module docs). `stop` is set by the caller on Ctrl-C: the
/// run finishes in-flight messages and returns.
#[allow(clippy::too_many_arguments)]
pub async fn send_campaign<T: Transport>(
    store: &Store,
    composer: Arc<Composer>,
    transport: Arc<T>,
    recipients: Arc<HashMap<String, Recipient>>,
    opts: &SendOptions,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    skipped_holdout: u64,
) -> Result<SendReport, MailerError> {
    let started = Instant::now();
    let campaign = composer.shared().campaign.id.clone();
    let alive = crate::workers::WorkerGuard::start(store, opts).await?;
    let result = run_claims(
        store,
        &campaign,
        composer,
        transport.clone(),
        recipients,
        opts,
        progress,
        stop,
        skipped_holdout,
        started,
        alive.lost(),
    )
    .await;
    transport.close().await;
    alive.finish().await?;
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_claims<T: Transport>(
    store: &Store,
    campaign: &str,
    composer: Arc<Composer>,
    transport: Arc<T>,
    recipients: Arc<HashMap<String, Recipient>>,
    opts: &SendOptions,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    skipped_holdout: u64,
    started: Instant,
    worker_lost: Arc<AtomicBool>,
) -> Result<SendReport, MailerError> {
    let state = store.send_campaign_state(campaign).await?;
    if state != retain_store::CampaignSendState::Active {
        return Err(MailerError::CampaignStopped {
            campaign: campaign.to_string(),
            state: state.to_string(),
        });
    }
    // Templates first: nothing is sent when one does not render.
    let real = store
        .first_queued_send(campaign)
        .await?
        .and_then(|s| recipients.get(&s.customer_id).map(|r| (s.email, r)));
    composer.check(real.as_ref().map(|(e, r)| (e.as_str(), *r)))?;

    let requeued_unconfirmed = if opts.resend_unconfirmed {
        store.requeue_unconfirmed(campaign).await?
    } else {
        0
    };
    if opts.retry_failed {
        store.requeue_failed(campaign, false).await?;
    }
    let before = store.send_counts(campaign).await?;
    let total = match opts.limit {
        Some(l) => (before.queued as u64).min(l),
        None => before.queued as u64,
    };
    progress.total.store(total, Ordering::Relaxed);

    let concurrency = opts.concurrency.max(1);
    let ledger = store.send_ledger()?;
    let (start_tx, start_rx) = mpsc::unbounded_channel::<StartRequest>();
    let starter = tokio::spawn(start_loop(ledger.clone(), opts.owner.clone(), start_rx));
    let shared = Arc::new(Shared {
        store: store.clone(),
        starter: start_tx,
        composer,
        transport: transport.clone(),
        recipients,
        pacer: Pacer::new(
            store.clone(),
            campaign,
            opts.rate,
            opts.domain_rates.clone(),
            opts.throttle_pause,
        ),
        stop: stop.clone(),
        progress: progress.clone(),
        opts: opts.clone(),
        fatal: Mutex::new(None),
        db_error: Mutex::new(None),
        hard_bounces: AtomicU64::new(0),
    });

    let (out_tx, out_rx) = mpsc::unbounded_channel::<Outcome>();
    let flusher = tokio::spawn(flush_loop(
        ledger.clone(),
        opts.owner.clone(),
        out_rx,
        opts.flush_interval,
        stop.clone(),
    ));
    let (job_tx, job_rx) = mpsc::channel::<ClaimedSend>(concurrency);
    let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        workers.push(tokio::spawn(worker(
            w,
            shared.clone(),
            job_rx.clone(),
            out_tx.clone(),
        )));
    }
    let batch = opts.batch();
    let mut left = total;
    let mut stopped = None;
    let mut claim_error = None;
    let mut guard_error = None;
    loop {
        if worker_lost.load(Ordering::SeqCst) {
            stopped = Some(StopReason::WorkerLost);
            break;
        }
        if stop.load(Ordering::SeqCst) {
            stopped = Some(StopReason::Interrupted);
            break;
        }
        if left == 0 {
            if opts.limit.is_some() && total < before.queued as u64 {
                stopped = Some(StopReason::Limit);
            }
            break;
        }
        if let Some(limits) = &opts.guardrail {
            // Reports that arrived while sending (webhooks, ingest) may pause the campaign.
            // The pause itself is seen by the claim below.
            if let Err(e) =
                crate::deliverability::guardrail_between_batches(store, campaign, limits).await
            {
                guard_error = Some(e);
                break;
            }
        }
        let want = (batch as u64).min(left) as usize;
        let claim = match ledger
            .claim_rows(campaign, &opts.owner, opts.claim_ttl_s, want, opts.consent)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                claim_error = Some(e);
                break;
            }
        };
        match claim {
            Claim::Stopped(s) => {
                stopped = Some(match s {
                    retain_store::CampaignSendState::Paused => StopReason::Paused,
                    _ => StopReason::Cancelled,
                });
                break;
            }
            Claim::Claimed { sends, suppressed } => {
                if sends.is_empty() && suppressed.is_empty() {
                    break;
                }
                progress
                    .suppressed
                    .fetch_add(suppressed.len() as u64, Ordering::Relaxed);
                for s in sends {
                    left = left.saturating_sub(1);
                    if let Err(mpsc::error::SendError(job)) = job_tx.send(s).await {
                        let _ = out_tx.send(Outcome::Unclaim(job.id));
                    }
                }
            }
        }
    }
    drop(job_tx);
    for w in workers {
        let _ = w.await;
    }
    // Every connection task has finished: nothing waits for the starter any more.
    starter.abort();
    drop(out_tx);
    let flushed = flusher.await;
    if let Some(e) = claim_error {
        return Err(e.into());
    }
    if let Some(e) = guard_error {
        return Err(e);
    }
    if let Some(e) = shared.db_error.lock().ok().and_then(|d| d.clone()) {
        return Err(MailerError::Ledger(e));
    }
    match flushed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => {
            return Err(MailerError::Config(format!(
                "the ledger writer stopped unexpectedly: {e}"
            )))
        }
    }
    let fatal = shared.fatal.lock().ok().and_then(|f| f.clone());
    if let Some(f) = fatal {
        stopped = Some(StopReason::TransportFailed(f));
    } else if worker_lost.load(Ordering::SeqCst) {
        stopped = Some(StopReason::WorkerLost);
    } else if stopped.is_none() && stop.load(Ordering::SeqCst) {
        stopped = Some(StopReason::Interrupted);
    }
    let totals = store.send_counts(campaign).await?;
    let pause_reason = match stopped {
        Some(StopReason::Paused) => store.send_campaign_reason(campaign).await?,
        _ => None,
    };
    let unconfirmed = store.unconfirmed_sends(campaign).await?;
    Ok(SendReport {
        pause_reason,
        campaign_id: campaign.to_string(),
        sent: progress.sent.load(Ordering::Relaxed),
        failed: progress.failed.load(Ordering::Relaxed),
        suppressed: totals.suppressed,
        skipped_holdout,
        unconfirmed,
        in_flight_elsewhere: (totals.sending - unconfirmed).max(0),
        elapsed_s: started.elapsed().as_secs_f64(),
        remaining: totals.queued,
        requeued_unconfirmed,
        hard_bounces: shared.hard_bounces.load(Ordering::Relaxed),
        retries: progress.retries.load(Ordering::Relaxed),
        stopped,
        transport: transport.describe(),
        totals,
    })
}

impl<T> Shared<T> {
    /// Marks `id` `sending` right before its SMTP transaction. `Ok(false)`: the claim was taken
    /// over (do not send); `Err`: the database could not be written (stop).
    async fn begin(&self, id: i64) -> Result<bool, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let gone = || "the task marking rows `sending` stopped".to_string();
        self.starter.send((id, tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Records a database failure of a connection task and stops the run.
    fn db_failed(&self, e: impl std::fmt::Display) {
        if let Ok(mut d) = self.db_error.lock() {
            d.get_or_insert_with(|| e.to_string());
        }
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Marks rows `sending` for the connection tasks, with group commit: each task asks for its own
/// row when its SMTP transaction is about to start and waits for the answer; the requests that
/// arrive while one statement runs go together in the next one. A row is still marked only
/// when its own transaction is next, so this worker never has more rows `sending` than
/// connections, and a crash leaves at most that many unconfirmed. (Several statements in flight
/// at once were tried on PostgreSQL: smaller batches, more commits, one sender slower.)
async fn start_loop(
    ledger: SendLedger,
    owner: String,
    mut rx: mpsc::UnboundedReceiver<StartRequest>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
        match ledger.begin_sends(&ids, &owner).await {
            Ok(started) => {
                let started: std::collections::HashSet<i64> = started.into_iter().collect();
                for (id, reply) in batch {
                    let _ = reply.send(Ok(started.contains(&id)));
                }
            }
            Err(e) => {
                let e = e.to_string();
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

async fn worker<T: Transport>(
    index: usize,
    sh: Arc<Shared<T>>,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<ClaimedSend>>>,
    out: mpsc::UnboundedSender<Outcome>,
) {
    loop {
        let job = { jobs.lock().await.recv().await };
        let Some(job) = job else { return };
        if sh.stop.load(Ordering::SeqCst) {
            let _ = out.send(Outcome::Unclaim(job.id));
            continue;
        }
        let fallback;
        let recipient = match sh.recipients.get(&job.customer_id) {
            Some(r) => r,
            None => {
                fallback = Recipient {
                    customer: retain_core::Customer {
                        id: job.customer_id.clone(),
                        email: Some(job.email.clone()),
                        email_valid: true,
                        ..Default::default()
                    },
                    ..Default::default()
                };
                &fallback
            }
        };
        let msg = match sh
            .composer
            .compose(job.id, &job.message_id, &job.email, recipient)
        {
            Ok(m) => m,
            Err(e) => {
                match sh.begin(job.id).await {
                    Ok(true) => {}
                    Ok(false) => continue, // taken over by another worker
                    Err(e) => {
                        sh.db_failed(e);
                        let _ = out.send(Outcome::Unclaim(job.id));
                        continue;
                    }
                }
                sh.progress.failed.fetch_add(1, Ordering::Relaxed);
                let _ = out.send(Outcome::Failed {
                    failure: SendFailure {
                        id: job.id,
                        error: format!("not sent: {e}"),
                        permanent: true,
                    },
                    extra_attempts: 0,
                });
                continue;
            }
        };
        let domain = retain_store::email_domain(&job.email);
        // A domain's back-off is waited for while the row is still only claimed: a worker
        // killed while waiting leaves nothing unconfirmed. The campaign's slot comes after
        // `sending` is recorded, right before the transaction, so the pace is kept at the server.
        if let Err(e) = sh.pacer.wait_domain(&domain).await {
            sh.db_failed(e);
        }
        if sh.stop.load(Ordering::SeqCst) {
            let _ = out.send(Outcome::Unclaim(job.id));
            continue;
        }
        match sh.begin(job.id).await {
            Ok(true) => {}
            // The claim expired and another worker took the row: it is theirs now.
            Ok(false) => continue,
            Err(e) => {
                sh.db_failed(e);
                let _ = out.send(Outcome::Unclaim(job.id));
                continue;
            }
        }
        let mut attempt: u32 = 0;
        let mut reached_server = false;
        loop {
            attempt += 1;
            let extra = i64::from(attempt) - 1;
            let paced = if attempt > 1 {
                sh.pacer.acquire(&domain).await
            } else {
                sh.pacer.wait_campaign().await
            };
            if let Err(e) = paced {
                sh.db_failed(e);
            }
            match sh.transport.send(index, &msg).await {
                Ok(_) => {
                    test_hooks::after_accept();
                    sh.progress.sent.fetch_add(1, Ordering::Relaxed);
                    let _ = out.send(Outcome::Sent {
                        id: job.id,
                        at: unix_now(),
                        extra_attempts: extra,
                    });
                    break;
                }
                Err(TransportError::Fatal(m)) => {
                    // Nothing was transmitted: the row goes back to the queue.
                    if let Ok(mut f) = sh.fatal.lock() {
                        f.get_or_insert(m.clone());
                    }
                    sh.stop.store(true, Ordering::SeqCst);
                    let _ = out.send(Outcome::Requeue {
                        id: job.id,
                        error: m,
                        extra_attempts: extra - 1,
                    });
                    break;
                }
                Err(e @ TransportError::Permanent { .. }) => {
                    if e.is_hard_bounce() {
                        let source = format!("smtp:{}", sh.composer.shared().campaign.id);
                        if sh
                            .store
                            .suppress(&job.email, SuppressionReason::HardBounce, &source)
                            .await
                            .unwrap_or(false)
                        {
                            sh.hard_bounces.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    sh.progress.failed.fetch_add(1, Ordering::Relaxed);
                    let _ = out.send(Outcome::Failed {
                        failure: SendFailure {
                            id: job.id,
                            error: e.to_string(),
                            permanent: true,
                        },
                        extra_attempts: extra,
                    });
                    break;
                }
                Err(e) => {
                    if e.is_throttle() {
                        if let Err(db) = sh.pacer.throttled(&domain).await {
                            sh.db_failed(db);
                        }
                    }
                    reached_server |= !matches!(e, TransportError::Unavailable(_));
                    if attempt >= sh.opts.max_attempts.max(1) && !reached_server {
                        // The server was never reached for this message: stop the run rather
                        // than fail every recipient; nothing was transmitted.
                        if let Ok(mut f) = sh.fatal.lock() {
                            f.get_or_insert(e.to_string());
                        }
                        sh.stop.store(true, Ordering::SeqCst);
                        let _ = out.send(Outcome::Requeue {
                            id: job.id,
                            error: e.to_string(),
                            extra_attempts: extra,
                        });
                        break;
                    }
                    if attempt >= sh.opts.max_attempts.max(1) {
                        sh.progress.failed.fetch_add(1, Ordering::Relaxed);
                        let _ = out.send(Outcome::Failed {
                            failure: SendFailure {
                                id: job.id,
                                error: format!("gave up after {attempt} attempts: {e}"),
                                permanent: false,
                            },
                            extra_attempts: extra,
                        });
                        break;
                    }
                    if sh.stop.load(Ordering::SeqCst) {
                        // Not accepted; stopping: queue it again for the next run.
                        let _ = out.send(Outcome::Requeue {
                            id: job.id,
                            error: e.to_string(),
                            extra_attempts: extra,
                        });
                        break;
                    }
                    sh.progress.retries.fetch_add(1, Ordering::Relaxed);
                    let delay = backoff(sh.opts.retry_base, sh.opts.retry_max, attempt);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// TEST HOOKS, read from the environment; no effect unless a test sets them. They let the
/// end-to-end tests open the crash windows on purpose in a real `retain send` process.
mod test_hooks {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    fn var(name: &str) -> Option<i64> {
        std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
    }

    /// `RETAIN_TEST_CLAIM_TTL_S`: the default claim TTL (seconds), so a test can see a killed
    /// worker's claims expire for real.
    pub(super) fn claim_ttl_s() -> Option<i64> {
        var("RETAIN_TEST_CLAIM_TTL_S").filter(|s| *s > 0)
    }

    /// `RETAIN_TEST_CRASH_AFTER_ACCEPT=N`: the process aborts right after the server accepted
    /// the N-th message (its 250 after DATA) and before the ledger hears of it.
    pub(super) fn after_accept() {
        static AT: OnceLock<Option<u64>> = OnceLock::new();
        static ACCEPTED: AtomicU64 = AtomicU64::new(0);
        let at = *AT.get_or_init(|| {
            var("RETAIN_TEST_CRASH_AFTER_ACCEPT")
                .filter(|n| *n > 0)
                .map(|n| n as u64)
        });
        if let Some(at) = at {
            if ACCEPTED.fetch_add(1, Ordering::SeqCst) + 1 >= at {
                eprintln!("RETAIN_TEST_CRASH_AFTER_ACCEPT: aborting after accepted message {at}");
                std::process::abort();
            }
        }
    }
}

#[derive(Default)]
struct Pending {
    sent: Vec<(i64, i64)>,
    failed: Vec<SendFailure>,
    requeue: Vec<(i64, String)>,
    unclaim: Vec<i64>,
    extra: Vec<(i64, i64)>,
}

impl Pending {
    fn len(&self) -> usize {
        self.sent.len() + self.failed.len() + self.requeue.len() + self.unclaim.len()
    }

    fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Sent {
                id,
                at,
                extra_attempts,
            } => {
                self.sent.push((id, at));
                if extra_attempts != 0 {
                    self.extra.push((id, extra_attempts));
                }
            }
            Outcome::Failed {
                failure,
                extra_attempts,
            } => {
                if extra_attempts != 0 {
                    self.extra.push((failure.id, extra_attempts));
                }
                self.failed.push(failure);
            }
            Outcome::Requeue {
                id,
                error,
                extra_attempts,
            } => {
                if extra_attempts != 0 {
                    self.extra.push((id, extra_attempts));
                }
                self.requeue.push((id, error));
            }
            Outcome::Unclaim(id) => self.unclaim.push(id),
        }
    }

    async fn flush(&mut self, ledger: &SendLedger, owner: &str) -> retain_store::Result<()> {
        let store = ledger.store();
        // `sent` first: it is what exactly-once depends on.
        if !self.sent.is_empty() {
            ledger.mark_sent(&self.sent).await?;
            self.sent.clear();
        }
        if !self.failed.is_empty() {
            ledger.mark_failed(&self.failed).await?;
            self.failed.clear();
        }
        while let Some((id, error)) = self.requeue.last() {
            store.retry_send_later(*id, error, 0).await?;
            self.requeue.pop();
        }
        if !self.unclaim.is_empty() {
            ledger.release_claims(owner, &self.unclaim).await?;
            self.unclaim.clear();
        }
        while let Some((id, n)) = self.extra.last() {
            store.add_send_attempts(*id, *n).await?;
            self.extra.pop();
        }
        Ok(())
    }
}

/// Writes outcomes in batches: when `interval` has passed or 512 are pending. On database
/// trouble it stops the run and keeps retrying; rows it cannot write stay `sending`
/// (unconfirmed), never `queued`.
async fn flush_loop(
    ledger: SendLedger,
    owner: String,
    mut rx: mpsc::UnboundedReceiver<Outcome>,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> retain_store::Result<()> {
    let mut pending = Pending::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    while open {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(o) => {
                    pending.add(o);
                    while let Ok(o) = rx.try_recv() {
                        pending.add(o);
                    }
                    if pending.len() < 512 {
                        continue;
                    }
                }
                None => open = false,
            },
            _ = tick.tick() => {}
        }
        let mut tries = 0;
        while let Err(e) = pending.flush(&ledger, &owner).await {
            tries += 1;
            stop.store(true, Ordering::SeqCst);
            if tries >= 20 {
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

/// What `--dry-run` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DryRunReport {
    pub campaign_id: String,
    /// Would be sent now.
    pub would_send: u64,
    /// Would not be mailed, by reason.
    pub would_suppress: std::collections::BTreeMap<String, u64>,
    pub skipped_holdout: u64,
    pub already_sent: i64,
    pub unconfirmed: i64,
    pub failed: i64,
    /// Messages rendered and built without error.
    pub rendered: u64,
}

/// Checks everything `send` would do without writing anything: who would be mailed, who not
/// and why, and renders every message that would be sent.
pub async fn dry_run(
    store: &Store,
    composer: &Composer,
    members: &[Member],
    recipients: &HashMap<String, Recipient>,
    check: ConsentCheck,
) -> Result<DryRunReport, MailerError> {
    composer.check(None)?;
    let campaign = composer.shared().campaign.id.clone();
    let ledger: HashMap<String, retain_store::SendRecord> = store
        .sends_of(&campaign)
        .await?
        .into_iter()
        .map(|r| (r.customer_id.clone(), r))
        .collect();
    let suppressions = store.suppression_list().await?;
    let mut rep = DryRunReport {
        campaign_id: campaign,
        ..Default::default()
    };
    for m in members {
        if m.holdout {
            rep.skipped_holdout += 1;
            continue;
        }
        let r = recipients.get(&m.customer_id);
        let (id, message_id) = match ledger.get(&m.customer_id) {
            Some(row) => match row.state {
                retain_store::SendState::Sent => {
                    rep.already_sent += 1;
                    continue;
                }
                retain_store::SendState::Sending => {
                    rep.unconfirmed += 1;
                    continue;
                }
                retain_store::SendState::Failed => {
                    rep.failed += 1;
                    continue;
                }
                retain_store::SendState::Suppressed => {
                    *rep.would_suppress
                        .entry(
                            row.last_error
                                .clone()
                                .unwrap_or_else(|| "suppressed".into()),
                        )
                        .or_default() += 1;
                    continue;
                }
                retain_store::SendState::Queued => (row.id, row.message_id.clone()),
            },
            None => (0, composer.identity().new_message_id()),
        };
        if let Some(why) = queue_time_exclusion(r, &suppressions, check) {
            *rep.would_suppress.entry(why).or_default() += 1;
            continue;
        }
        if let Some(r) = r {
            let email = r.customer.email.as_deref().unwrap_or("").trim();
            composer.compose(id, &message_id, email, r)?;
            rep.rendered += 1;
        }
        rep.would_send += 1;
    }
    Ok(rep)
}
