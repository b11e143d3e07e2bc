//! Pace of sending, shared by every worker through the store: a campaign's rate and each
//! recipient domain's rate are pacing rows in the database ([`retain_store::Store::reserve_rate`]),
//! so N processes together keep one limit; a 421/451 answer from a domain pushes that domain's
//! next slot out for every worker ([`retain_store::Store::throttle_rate`]). Also the exponential
//! backoff with jitter between retries of one message.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;
use retain_store::Store;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A per-domain limit: one shared rate for a group of domains of one mailbox provider.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainRate {
    /// The domains, lowercase; the first names the group's key (`domain:<first>`).
    pub domains: Vec<String>,
    /// Messages per second to the whole group, across all workers.
    pub rate: f64,
}

/// Parses `smtp.domain_rates` entries (`"gmail.com,googlemail.com" = 20.0`): keys are
/// comma-separated domain groups; rates ≤ 0 are dropped (no limit).
pub fn domain_rates<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a f64)>,
) -> Vec<DomainRate> {
    let mut out: Vec<DomainRate> = entries
        .into_iter()
        .filter(|(_, r)| r.is_finite() && **r > 0.0)
        .map(|(k, r)| DomainRate {
            domains: k
                .split(',')
                .map(|d| d.trim().to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
            rate: *r,
        })
        .filter(|d| !d.domains.is_empty())
        .collect();
    out.sort_by(|a, b| a.domains.cmp(&b.domains));
    out
}

/// Slots reserved in the database and not used yet, for one key.
#[derive(Debug)]
struct Block {
    next: Instant,
    left: u32,
    interval: Duration,
}

/// The shared pacer of one campaign run (see the module docs).
#[derive(Debug)]
pub struct Pacer {
    store: Store,
    /// `campaign:<id>` and its rate, when limited.
    campaign: Option<(String, f64)>,
    domains: Vec<DomainRate>,
    pause: Duration,
    blocks: Mutex<HashMap<String, Block>>,
    /// Back-offs recorded in the database, refreshed at most twice a second.
    waits: Mutex<(Option<Instant>, HashMap<String, Instant>)>,
}

impl Pacer {
    /// `rate` messages per second for the campaign (≤ 0: unlimited), `domains` limits, and how
    /// long a 421/451 pauses its domain for everyone.
    pub fn new(
        store: Store,
        campaign_id: &str,
        rate: f64,
        domains: Vec<DomainRate>,
        pause: Duration,
    ) -> Self {
        Self {
            store,
            campaign: (rate.is_finite() && rate > 0.0)
                .then(|| (format!("campaign:{campaign_id}"), rate)),
            domains,
            pause,
            blocks: Mutex::new(HashMap::new()),
            waits: Mutex::new((None, HashMap::new())),
        }
    }

    /// The pacing key of a recipient domain and its rate, if limited.
    pub fn domain_key(&self, domain: &str) -> (String, Option<f64>) {
        let d = domain.to_ascii_lowercase();
        for g in &self.domains {
            if g.domains.contains(&d) {
                return (format!("domain:{}", g.domains[0]), Some(g.rate));
            }
        }
        (format!("domain:{d}"), None)
    }

    /// Waits for this message's slot: [`Pacer::wait_domain`] then [`Pacer::wait_campaign`].
    pub async fn acquire(&self, domain: &str) -> Result<(), retain_store::StoreError> {
        self.wait_domain(domain).await?;
        self.wait_campaign().await
    }

    /// Waits for any back-off recorded for the recipient's domain by any worker, and for the
    /// domain's own slot when it is limited.
    pub async fn wait_domain(&self, domain: &str) -> Result<(), retain_store::StoreError> {
        let (key, rate) = self.domain_key(domain);
        let mut until = None;
        if let Some(t) = self.backoff(&key).await? {
            until = Some(t);
        }
        if let Some(rate) = rate {
            let slot = self.slot(&key, rate).await?;
            until = Some(until.map_or(slot, |u: Instant| u.max(slot)));
        }
        // No timer when there is nothing to wait for: tokio's timers tick in milliseconds, so
        // even a deadline already past would hold every message for up to a millisecond.
        if let Some(until) = until.filter(|u| *u > Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
        Ok(())
    }

    /// Waits for the campaign's next slot. Taken last, right before the SMTP transaction, so
    /// the campaign's slots are used when they fall due and never pile up behind a paused
    /// domain or a slow database write.
    ///
    /// A slot this process wakes up for too late (a busy machine) is not used: a fresh one is
    /// taken instead, so late messages never bunch up with the ones on time.
    pub async fn wait_campaign(&self) -> Result<(), retain_store::StoreError> {
        if let Some((key, rate)) = &self.campaign {
            let late = Duration::from_millis(30).max(Duration::from_secs_f64(0.5 / rate));
            for _ in 0..8 {
                let at = self.slot(key, *rate).await?;
                if at > Instant::now() {
                    tokio::time::sleep_until(at).await;
                }
                if Instant::now().duration_since(at) <= late {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn slot(&self, key: &str, rate: f64) -> Result<Instant, retain_store::StoreError> {
        let mut blocks = self.blocks.lock().await;
        if let Some(b) = blocks.get_mut(key) {
            if b.left > 0 {
                b.left -= 1;
                let at = b.next;
                b.next += b.interval;
                return Ok(at);
            }
        }
        // About 20 ms of slots per reservation: few database round trips, little bunching.
        let n = ((rate / 50.0).floor() as u32).clamp(1, 64);
        let wait = self.store.reserve_rate(key, rate, n).await?;
        let interval = Duration::from_secs_f64(1.0 / rate);
        let first = Instant::now() + Duration::from_secs_f64(wait.min(3600.0));
        blocks.insert(
            key.to_string(),
            Block {
                next: first + interval,
                left: n - 1,
                interval,
            },
        );
        Ok(first)
    }

    async fn backoff(&self, key: &str) -> Result<Option<Instant>, retain_store::StoreError> {
        let mut w = self.waits.lock().await;
        let now = Instant::now();
        if w.0
            .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(500))
        {
            let fresh = self.store.rate_waits().await?;
            w.1 = fresh
                .into_iter()
                .map(|(k, s)| (k, now + Duration::from_secs_f64(s.clamp(0.0, 3600.0))))
                .collect();
            w.0 = Some(now);
        }
        Ok(w.1.get(key).copied().filter(|t| *t > now))
    }

    /// The server of `domain` answered 421/451: every worker pauses that domain.
    pub async fn throttled(&self, domain: &str) -> Result<(), retain_store::StoreError> {
        let (key, _) = self.domain_key(domain);
        self.store
            .throttle_rate(&key, self.pause.as_secs_f64())
            .await?;
        let mut w = self.waits.lock().await;
        let until = Instant::now() + self.pause;
        let e = w.1.entry(key.clone()).or_insert(until);
        *e = (*e).max(until);
        // Reserved slots of the domain are dropped: the next ones come after the pause.
        self.blocks.lock().await.remove(&key);
        Ok(())
    }
}

/// Delay before retry number `attempt` (1 = the first retry): `base · 2^(attempt-1)`, capped at
/// `max`, with jitter drawn uniformly from the upper half.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let d = exp.min(max);
    let half = d / 2;
    let jitter = rand::thread_rng().gen_range(0.0..=1.0);
    half + half.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Duration::from_millis(100);
        let m = Duration::from_secs(5);
        for attempt in 1..=10 {
            let d = backoff(b, m, attempt);
            let full = b.saturating_mul(1 << (attempt - 1)).min(m);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
        let many: std::collections::HashSet<Duration> = (0..20).map(|_| backoff(b, m, 3)).collect();
        assert!(many.len() > 1, "jitter");
    }

    /// With no back-off and no domain limit there is nothing to wait for: the wait must finish
    /// on its first poll, not park the message on a timer (tokio's timers tick in milliseconds,
    /// which held every message of an unpaced send for up to a millisecond).
    #[tokio::test]
    async fn an_unlimited_domain_is_not_held_on_a_timer() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(&dir.path().join("t.db"))
            .await
            .expect("store");
        let pacer = Pacer::new(store, "c-1", 0.0, Vec::new(), Duration::from_secs(1));
        // The first wait reads the recorded back-offs from the database.
        pacer.wait_domain("example.com").await.expect("first wait");
        for _ in 0..3 {
            let mut wait = std::pin::pin!(pacer.wait_domain("example.com"));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(
                matches!(wait.as_mut().poll(&mut cx), Poll::Ready(Ok(()))),
                "an unlimited domain without back-off waited"
            );
            // The campaign has no rate either: its slot is free at once too.
            let mut slot = std::pin::pin!(pacer.wait_campaign());
            assert!(matches!(slot.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        }
    }

    #[test]
    fn domain_groups_share_a_key() {
        let mut m = std::collections::BTreeMap::new();
        m.insert("Gmail.com, googlemail.com".to_string(), 20.0);
        m.insert("nolimit.example".to_string(), 0.0);
        let groups = domain_rates(&m);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].domains, vec!["gmail.com", "googlemail.com"]);
    }
}
