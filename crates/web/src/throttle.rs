//! The login throttle: failed logins are counted per client (its IP address, see
//! [`crate::auth::client_ip`]) and overall, each in a fixed window that starts with its first
//! failure. A client with too many failures in its window — or everyone, when the whole server
//! has seen too many — is refused (HTTP 429 with `Retry-After`) until the window ends, without
//! its password being checked; a successful login clears its client's count. The per-client
//! table is bounded: expired entries are dropped, and when it is still full the oldest goes.
//! Time comes from the state's [`Clock`], so tests move it instead of sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::tracking::Clock;

/// How many failures are allowed, over which windows.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginLimits {
    /// Failures one client may make in `client_window` seconds.
    pub per_client: u32,
    pub client_window: i64,
    /// Failures all clients together may make in `overall_window` seconds.
    pub overall: u32,
    pub overall_window: i64,
    /// How long a failed or refused login waits before it is answered.
    pub delay: Duration,
    /// At most this many clients are remembered.
    pub max_clients: usize,
}

impl Default for LoginLimits {
    /// 5 failures per client per 15 minutes, 100 overall per minute, 400 ms delay.
    fn default() -> Self {
        Self {
            per_client: 5,
            client_window: 15 * 60,
            overall: 100,
            overall_window: 60,
            delay: Duration::from_millis(400),
            max_clients: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: i64,
    failures: u32,
}

impl Window {
    fn live(&self, now: i64, len: i64) -> bool {
        now < self.start.saturating_add(len)
    }
}

#[derive(Debug, Default)]
struct Counts {
    clients: HashMap<IpAddr, Window>,
    overall: Window,
}

/// Failed-login counts.
#[derive(Debug)]
pub struct LoginThrottle {
    limits: LoginLimits,
    clock: Clock,
    counts: Mutex<Counts>,
}

impl LoginThrottle {
    pub fn new(limits: LoginLimits, clock: Clock) -> Self {
        Self {
            limits,
            clock,
            counts: Mutex::new(Counts::default()),
        }
    }

    pub fn limits(&self) -> &LoginLimits {
        &self.limits
    }

    /// `Err(seconds)`: `client` may not try now; it may again in that many seconds.
    pub fn check(&self, client: IpAddr) -> Result<(), i64> {
        let now = self.clock.now();
        let l = &self.limits;
        // A poisoned lock only means a panic elsewhere; the counts are still usable.
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = 0;
        if c.overall.live(now, l.overall_window) && c.overall.failures >= l.overall {
            wait = c.overall.start + l.overall_window - now;
        }
        if let Some(w) = c.clients.get(&client) {
            if w.live(now, l.client_window) && w.failures >= l.per_client {
                wait = wait.max(w.start + l.client_window - now);
            }
        }
        if wait > 0 {
            Err(wait)
        } else {
            Ok(())
        }
    }

    /// Counts a failed login of `client`.
    pub fn failed(&self, client: IpAddr) {
        let now = self.clock.now();
        let l = &self.limits;
        let mut guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let c = &mut *guard;
        if !c.overall.live(now, l.overall_window) {
            c.overall = Window {
                start: now,
                failures: 0,
            };
        }
        c.overall.failures = c.overall.failures.saturating_add(1);
        if !c.clients.contains_key(&client) && c.clients.len() >= l.max_clients {
            c.clients.retain(|_, w| w.live(now, l.client_window));
            if c.clients.len() >= l.max_clients {
                if let Some(oldest) = c.clients.iter().min_by_key(|(_, w)| w.start).map(|e| *e.0) {
                    c.clients.remove(&oldest);
                }
            }
        }
        let w = c.clients.entry(client).or_default();
        if !w.live(now, l.client_window) {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }

    /// A successful login: the client's failures are forgotten.
    pub fn succeeded(&self, client: IpAddr) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.clients.remove(&client);
    }

    /// How many clients are remembered.
    pub fn clients(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clients
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn throttle(limits: LoginLimits) -> (LoginThrottle, Clock) {
        let clock = Clock::default();
        clock.set(1_000_000);
        (LoginThrottle::new(limits, clock.clone()), clock)
    }

    #[test]
    fn a_client_is_refused_after_its_failures_until_the_window_ends() {
        let (t, clock) = throttle(LoginLimits::default());
        for _ in 0..5 {
            assert_eq!(t.check(ip(1)), Ok(()));
            t.failed(ip(1));
        }
        assert_eq!(t.check(ip(1)), Err(900));
        assert_eq!(t.check(ip(2)), Ok(()), "other clients are not affected");
        clock.advance(899);
        assert_eq!(t.check(ip(1)), Err(1));
        clock.advance(1);
        assert_eq!(t.check(ip(1)), Ok(()));
        // A new window: five more tries.
        t.failed(ip(1));
        assert_eq!(t.check(ip(1)), Ok(()));
        t.succeeded(ip(1));
        assert_eq!(t.clients(), 0);
    }

    #[test]
    fn everyone_is_refused_after_too_many_failures_overall() {
        let (t, clock) = throttle(LoginLimits::default());
        for n in 0..100 {
            assert_eq!(t.check(ip(n / 4)), Ok(()), "attempt {n}");
            t.failed(ip(n / 4));
        }
        assert_eq!(t.check(ip(999)), Err(60));
        clock.advance(60);
        assert_eq!(t.check(ip(999)), Ok(()));
    }

    #[test]
    fn the_client_table_is_bounded() {
        let (t, clock) = throttle(LoginLimits {
            max_clients: 10,
            overall: u32::MAX,
            ..LoginLimits::default()
        });
        for n in 0..10 {
            t.failed(ip(n));
            clock.advance(1);
        }
        for _ in 0..4 {
            t.failed(ip(9));
        }
        assert_eq!(t.check(ip(9)), Err(899));
        // Full: a new client evicts the oldest (ip 0), never a refusal of the newcomer.
        t.failed(ip(100));
        assert_eq!(t.clients(), 10);
        assert!(t.check(ip(9)).is_err(), "a recent client is kept");
        // Past every window the expired entries go at once.
        clock.advance(1_000);
        t.failed(ip(200));
        assert_eq!(t.clients(), 1);
        for n in 0..10_000 {
            t.failed(ip(300 + n));
        }
        assert_eq!(t.clients(), 10);
    }
}
