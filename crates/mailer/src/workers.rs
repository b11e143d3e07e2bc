//! This process as a worker among several senders: its id and host, its registration and
//! heartbeat in the store while it sends ([`WorkerGuard`]), finding dead workers on the same host
//! by their PID (their claims return to the queue at once), and `retain worker`'s loop
//! ([`run_worker`]): every approved campaign whose scheduled time has come is queued and sent,
//! and every follow-up step that falls due is created and, once approved, sent — by any number
//! of workers on any number of machines.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use retain_store::Store;
use serde::Serialize;

use crate::engine::{send_campaign, Progress, SendOptions, SendReport};
use crate::error::MailerError;
use crate::transport::Transport;

/// This machine's name (Linux: the kernel's hostname; else `$HOSTNAME`, else `localhost`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process of this machine is running. Linux: `/proc/<pid>` exists and is not a
/// zombie. Elsewhere always true: such workers are found dead by their heartbeat's expiry.
pub fn pid_alive(pid: i64) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S …": the state follows the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}

/// Stops the workers of this host whose process is gone (their claimed rows go back to the
/// queue at once). Returns how many.
pub async fn reap_dead_local_workers(store: &Store, me: &str) -> Result<usize, MailerError> {
    let mut n = 0;
    for (id, pid) in store.unstopped_workers_on(&host_name()).await? {
        if id != me && !pid_alive(pid) {
            store.stop_worker(&id).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// This process registered as a worker for as long as it lives: a heartbeat every third of the
/// claim TTL (which also extends its claims and reaps dead workers of this host).
pub struct WorkerGuard {
    store: Store,
    owner: String,
    owned: bool,
    lost: Arc<AtomicBool>,
    beat: Option<tokio::task::JoinHandle<()>>,
}

impl WorkerGuard {
    /// Registers `opts.owner` when `opts.standalone` (a `retain worker` registers itself once
    /// and runs campaigns with `standalone: false`).
    pub async fn start(store: &Store, opts: &SendOptions) -> Result<Self, MailerError> {
        let lost = Arc::new(AtomicBool::new(false));
        if !opts.standalone {
            return Ok(Self {
                store: store.clone(),
                owner: opts.owner.clone(),
                owned: false,
                lost,
                beat: None,
            });
        }
        let ttl = opts.claim_ttl_s.max(1);
        store
            .register_worker(
                &opts.owner,
                &host_name(),
                i64::from(std::process::id()),
                ttl,
            )
            .await?;
        reap_dead_local_workers(store, &opts.owner).await?;
        let beat = {
            let store = store.clone();
            let owner = opts.owner.clone();
            let lost = lost.clone();
            tokio::spawn(async move {
                let every = Duration::from_millis((ttl as u64 * 1000 / 3).max(300));
                loop {
                    tokio::time::sleep(every).await;
                    match store.heartbeat_worker(&owner, ttl).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(_) => {} // transient database trouble: the next beat retries
                    }
                    let _ = reap_dead_local_workers(&store, &owner).await;
                }
            })
        };
        Ok(Self {
            store: store.clone(),
            owner: opts.owner.clone(),
            owned: true,
            lost,
            beat: Some(beat),
        })
    }

    /// Set when another worker declared this one dead: stop claiming.
    pub fn lost(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    /// Stops the heartbeat and, when this guard registered the worker, marks it stopped (its
    /// remaining claims return to the queue).
    pub async fn finish(self) -> Result<(), MailerError> {
        if let Some(b) = &self.beat {
            b.abort();
        }
        if self.owned {
            self.store.stop_worker(&self.owner).await?;
        }
        Ok(())
    }
}

/// A campaign ready to send, as the caller (the CLI, which knows workspaces and templates)
/// loads it for the worker loop.
pub struct LoadedCampaign<T> {
    pub composer: Arc<crate::Composer>,
    pub transport: Arc<T>,
    pub recipients: Arc<std::collections::HashMap<String, crate::Recipient>>,
    pub members: Vec<crate::Member>,
    pub opts: SendOptions,
}

/// What one worker did, campaign by campaign.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerReport {
    pub worker: String,
    pub runs: Vec<SendReport>,
    /// Campaigns that could not be loaded or sent, with why.
    pub errors: Vec<(String, String)>,
    /// Follow-up steps this worker created (each step is created once, by whichever worker
    /// comes first).
    pub steps_created: Vec<crate::DueStep>,
}

/// The follow-up steps' part of the worker's job.
#[derive(Debug, Clone)]
pub struct StepWork {
    /// Gives the steps' queued rows their Message-IDs.
    pub identity: crate::Identity,
    /// The frequency cap a step respects (other campaigns within it hold a recipient back).
    pub frequency_cap_days: u32,
    /// The time taken as now when deciding which steps are due (`None`: the clock; set by
    /// tests to reach a step's day).
    pub now: Option<i64>,
}

/// How the worker loop runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Between looks for due campaigns when there is nothing to do.
    pub poll: Duration,
    /// Exit when nothing is due (instead of waiting for more).
    pub until_idle: bool,
    /// Create the follow-up steps that fall due and send them (`None`: campaigns only).
    pub steps: Option<StepWork>,
}

/// `retain worker`: registers this process, then until `stop`: creates the follow-up steps that
/// have fallen due (with `wopts.steps`; [`crate::create_due_steps`]: holdout, suppression,
/// consent and the frequency cap applied, each step created once), finds every scheduled
/// campaign whose time has come (database clock) and queues its audience once (idempotent,
/// whichever worker comes first), and sends these campaigns and every approved step with
/// recipients queued alongside any other workers; waits `poll` when nothing is due. `load`
/// builds a campaign's (or a step's ledger id's) composer, transport, recipients and options
/// (`None`: not sendable, e.g. its plan is not approved — skipped). `stop` lets in-flight
/// messages finish.
pub async fn run_worker<T, L, F>(
    store: &Store,
    base: &SendOptions,
    wopts: &WorkerOptions,
    stop: Arc<AtomicBool>,
    load: L,
) -> Result<WorkerReport, MailerError>
where
    T: Transport,
    L: Fn(String) -> F,
    F: Future<Output = Result<Option<LoadedCampaign<T>>, MailerError>>,
{
    let guard = WorkerGuard::start(store, base).await?;
    let lost = guard.lost();
    let mut report = WorkerReport {
        worker: base.owner.clone(),
        ..Default::default()
    };
    let mut failed_once: std::collections::HashSet<String> = Default::default();
    while !stop.load(Ordering::SeqCst) && !lost.load(Ordering::SeqCst) {
        // Follow-up steps that fall due become ledger rows here, before due campaigns are
        // looked up, so the same loop sends them (below, after the scheduled campaigns).
        let mut step_ids: Vec<String> = Vec::new();
        if let Some(work) = &wopts.steps {
            let fopts = crate::FollowupOptions {
                now: work.now.unwrap_or_else(|| chrono::Utc::now().timestamp()),
                frequency_cap_days: work.frequency_cap_days,
                consent: base.consent,
                dry_run: false,
            };
            match crate::create_due_steps(store, &work.identity, &fopts).await {
                Ok(created) => report.steps_created.extend(created),
                Err(e) => report
                    .errors
                    .push(("follow-up steps".into(), e.to_string())),
            }
            match crate::sendable_steps(store).await {
                Ok(steps) => step_ids = steps.into_iter().map(|s| s.ledger_id).collect(),
                Err(e) => report
                    .errors
                    .push(("follow-up steps".into(), e.to_string())),
            }
        }
        let due = match store.due_campaigns().await {
            Ok(d) => d,
            Err(e) => {
                report.errors.push((String::new(), e.to_string()));
                tokio::time::sleep(wopts.poll).await;
                continue;
            }
        };
        let mut worked = false;
        for ledger in step_ids {
            if stop.load(Ordering::SeqCst) || lost.load(Ordering::SeqCst) {
                break;
            }
            if failed_once.contains(&ledger) {
                continue;
            }
            // A step's rows were queued when it was created: only sending is left.
            let loaded = match load(ledger.clone()).await {
                Ok(Some(l)) => l,
                Ok(None) => {
                    failed_once.insert(ledger);
                    continue;
                }
                Err(e) => {
                    report.errors.push((ledger.clone(), e.to_string()));
                    failed_once.insert(ledger);
                    continue;
                }
            };
            let mut opts = loaded.opts.clone();
            opts.owner = base.owner.clone();
            opts.standalone = false;
            opts.claim_ttl_s = base.claim_ttl_s;
            match send_campaign(
                store,
                loaded.composer,
                loaded.transport,
                loaded.recipients,
                &opts,
                Arc::new(Progress::default()),
                stop.clone(),
                0,
            )
            .await
            {
                Ok(rep) => {
                    worked |= rep.sent + rep.failed > 0;
                    report.runs.push(rep);
                }
                Err(e) => {
                    report.errors.push((ledger.clone(), e.to_string()));
                    failed_once.insert(ledger);
                }
            }
        }
        for sched in due {
            if stop.load(Ordering::SeqCst) || lost.load(Ordering::SeqCst) {
                break;
            }
            let id = sched.campaign_id.clone();
            if failed_once.contains(&id) {
                continue;
            }
            let loaded = match load(id.clone()).await {
                Ok(Some(l)) => l,
                Ok(None) => {
                    failed_once.insert(id);
                    continue;
                }
                Err(e) => {
                    report.errors.push((id.clone(), e.to_string()));
                    failed_once.insert(id);
                    continue;
                }
            };
            let mut opts = loaded.opts.clone();
            opts.owner = base.owner.clone();
            opts.standalone = false;
            opts.claim_ttl_s = base.claim_ttl_s;
            let mut skipped = 0;
            // Whichever worker comes first queues the audience (idempotent, so a race only
            // costs time); the others find the ledger filled.
            if sched.queued_at.is_none() && store.send_counts(&id).await?.total() > 0 {
                store.mark_schedule_queued(&id).await?;
            } else if sched.queued_at.is_none() {
                let q = crate::engine::queue_campaign(
                    store,
                    &loaded.composer,
                    &loaded.members,
                    &loaded.recipients,
                    opts.consent,
                )
                .await?;
                store.mark_schedule_queued(&id).await?;
                skipped = q.holdout;
            }
            match send_campaign(
                store,
                loaded.composer,
                loaded.transport,
                loaded.recipients,
                &opts,
                Arc::new(Progress::default()),
                stop.clone(),
                skipped,
            )
            .await
            {
                Ok(rep) => {
                    worked |= rep.sent + rep.failed > 0;
                    report.runs.push(rep);
                }
                Err(e) => {
                    report.errors.push((id.clone(), e.to_string()));
                    failed_once.insert(id);
                }
            }
        }
        if !worked {
            if wopts.until_idle {
                break;
            }
            let mut waited = Duration::ZERO;
            while waited < wopts.poll && !stop.load(Ordering::SeqCst) {
                let step = Duration::from_millis(100);
                tokio::time::sleep(step).await;
                waited += step;
            }
        }
    }
    guard.finish().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_is_alive_and_a_reaped_child_is_not() {
        assert!(pid_alive(i64::from(std::process::id())));
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = i64::from(child.id());
        child.wait().expect("wait");
        assert!(!pid_alive(pid), "an exited, reaped child");
    }
}
