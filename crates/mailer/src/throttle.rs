//! Pace of sending: a rate limiter (messages per second, shared by all workers) that halves its
//! rate when the server answers 421/451 and creeps back to the configured rate on success, and
//! the exponential backoff with jitter between retries of one message.

use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

#[derive(Debug)]
struct Pace {
    /// Current rate (msg/s); `None`: unlimited.
    rate: Option<f64>,
    next: Instant,
}

/// Spaces attempts `1/rate` apart across all workers.
#[derive(Debug)]
pub struct RateLimiter {
    target: Option<f64>,
    min_rate: f64,
    pace: Mutex<Pace>,
}

impl RateLimiter {
    /// `rate` messages per second; `0` or less: unlimited.
    pub fn new(rate: f64) -> Self {
        let target = (rate.is_finite() && rate > 0.0).then_some(rate);
        Self {
            target,
            min_rate: target.map(|t| (t / 64.0).max(0.2)).unwrap_or(1.0),
            pace: Mutex::new(Pace {
                rate: target,
                next: Instant::now(),
            }),
        }
    }

    /// Waits for this attempt's slot.
    pub async fn acquire(&self) {
        let wait_until = {
            let Ok(mut p) = self.pace.lock() else { return };
            let Some(rate) = p.rate else { return };
            let now = Instant::now();
            let slot = if p.next > now { p.next } else { now };
            p.next = slot + Duration::from_secs_f64(1.0 / rate);
            slot
        };
        tokio::time::sleep_until(wait_until).await;
    }

    /// The server asked us to slow down: halve the rate (an unlimited limiter starts at a
    /// measured-safe 50 msg/s).
    pub fn slow_down(&self) {
        if let Ok(mut p) = self.pace.lock() {
            let r = p.rate.unwrap_or(100.0);
            p.rate = Some((r / 2.0).max(self.min_rate));
        }
    }

    /// A success: recover 2% towards the configured rate.
    pub fn success(&self) {
        if let Ok(mut p) = self.pace.lock() {
            if let Some(r) = p.rate {
                p.rate = match self.target {
                    Some(t) => Some((r * 1.02 + 0.05).min(t)),
                    None if r > 10_000.0 => None,
                    None => Some(r * 1.02 + 0.05),
                };
            }
        }
    }

    /// The current rate (msg/s), `None` when unlimited.
    pub fn rate(&self) -> Option<f64> {
        self.pace.lock().ok().and_then(|p| p.rate)
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

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_slots_and_adapts() {
        let l = RateLimiter::new(10.0);
        let t0 = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        // 5 slots at 10/s: the 5th starts 0.4 s after the first (virtual time).
        assert_eq!(Instant::now() - t0, Duration::from_millis(400));
        l.slow_down();
        assert_eq!(l.rate(), Some(5.0));
        l.slow_down();
        l.slow_down();
        l.slow_down();
        l.slow_down();
        l.slow_down();
        l.slow_down();
        assert!(l.rate().is_some_and(|r| r >= 0.2), "floor");
        for _ in 0..1000 {
            l.success();
        }
        assert_eq!(l.rate(), Some(10.0), "back to the target, never above");
        let u = RateLimiter::new(0.0);
        assert_eq!(u.rate(), None);
        u.slow_down();
        assert_eq!(u.rate(), Some(50.0));
    }
}
