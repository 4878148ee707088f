//! Which replica gets the next request: pingora's round-robin over the replicas its health check
//! calls ready, minus those this balancer saw fail a request moments ago (passive marking, which
//! pingora does not do itself), minus those an operator is draining, minus those this request
//! already tried. Also what the admin API shows of each: requests in flight, requests, failures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, LoadBalancer};
use serde::Serialize;

use crate::discovery::Passed;

pub struct Upstreams {
    balancer: Arc<LoadBalancer<RoundRobin>>,
    /// Upstreams whose health check has passed since they appeared: only those take traffic.
    passed: Passed,
    /// Replicas that failed, and until when they are avoided.
    benched: Mutex<HashMap<SocketAddr, Instant>>,
    cooldown: Duration,
    /// Counters and the draining flag, per replica ever seen.
    stats: RwLock<HashMap<SocketAddr, Arc<Stats>>>,
}

#[derive(Default)]
struct Stats {
    in_flight: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
    draining: AtomicBool,
}

/// A request's turn on one replica: counted in flight until dropped.
pub struct InFlight(Arc<Stats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One replica as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct UpstreamView {
    pub address: SocketAddr,
    /// Its health check passes.
    pub healthy: bool,
    /// It failed a request moments ago and is avoided for a while.
    pub benched: bool,
    /// An operator took it out: it gets no new requests.
    pub draining: bool,
    pub in_flight: usize,
    /// Requests sent to it, and how many of those failed, since this balancer started.
    pub requests: u64,
    pub failures: u64,
}

impl Upstreams {
    pub fn new(
        balancer: Arc<LoadBalancer<RoundRobin>>,
        passed: Passed,
        cooldown: Duration,
    ) -> Self {
        Self {
            balancer,
            passed,
            benched: Mutex::new(HashMap::new()),
            cooldown,
            stats: RwLock::new(HashMap::new()),
        }
    }

    fn stats(&self, addr: SocketAddr) -> Arc<Stats> {
        if let Some(stats) = self.stats.read().expect("never poisoned").get(&addr) {
            return stats.clone();
        }
        self.stats
            .write()
            .expect("never poisoned")
            .entry(addr)
            .or_default()
            .clone()
    }

    fn passed(&self, addr: &SocketAddr) -> bool {
        self.passed.read().expect("never poisoned").contains(addr)
    }

    fn draining(&self, addr: &SocketAddr) -> bool {
        self.stats
            .read()
            .expect("never poisoned")
            .get(addr)
            .is_some_and(|stats| stats.draining.load(Ordering::Relaxed))
    }

    /// A request goes to `addr`: counted until the returned guard is dropped.
    pub fn start(&self, addr: SocketAddr) -> InFlight {
        let stats = self.stats(addr);
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(stats)
    }

    /// The replica is one of the configured ones.
    pub fn knows(&self, addr: SocketAddr) -> bool {
        self.balancer
            .backends()
            .get_backend()
            .iter()
            .any(|backend| backend.addr.as_inet() == Some(&addr))
    }

    /// No new requests for `addr` (`true`), or again (`false`).
    pub fn set_draining(&self, addr: SocketAddr, draining: bool) {
        self.stats(addr).draining.store(draining, Ordering::Relaxed);
    }

    /// Requests in flight on `addr` now.
    pub fn in_flight(&self, addr: SocketAddr) -> usize {
        self.stats(addr).in_flight.load(Ordering::Relaxed)
    }

    /// The next ready replica not in `tried` and not benched; if every ready one is benched, a
    /// benched one rather than none (the bench is a guess, the health check is the truth).
    pub fn select(&self, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let now = Instant::now();
        let benched = |addr: &SocketAddr| {
            self.benched
                .lock()
                .expect("the bench lock is never poisoned")
                .get(addr)
                .is_some_and(|until| *until > now)
        };
        let fresh = |backend: &Backend, ready: bool, allow_benched: bool| {
            let Some(addr) = backend.addr.as_inet() else {
                return false;
            };
            ready
                && self.passed(addr)
                && !tried.contains(addr)
                && !self.draining(addr)
                && (allow_benched || !benched(addr))
        };
        let iterations = 2 * self.len().max(1);
        self.balancer
            .select_with(b"", iterations, |b, ready| fresh(b, ready, false))
            .or_else(|| {
                self.balancer
                    .select_with(b"", iterations, |b, ready| fresh(b, ready, true))
            })
            .and_then(|backend| backend.addr.as_inet().copied())
    }

    /// Avoids `addr` for the cooldown, and counts its failure.
    pub fn bench(&self, addr: SocketAddr) {
        self.stats(addr).failures.fetch_add(1, Ordering::Relaxed);
        self.benched
            .lock()
            .expect("the bench lock is never poisoned")
            .insert(addr, Instant::now() + self.cooldown);
    }

    /// Every configured replica with whether it may take traffic now (healthy, not benched, not
    /// draining).
    pub fn health(&self) -> Vec<(SocketAddr, bool)> {
        let now = Instant::now();
        let benched = self
            .benched
            .lock()
            .expect("the bench lock is never poisoned");
        self.balancer
            .backends()
            .get_backend()
            .iter()
            .filter_map(|backend| {
                let addr = *backend.addr.as_inet()?;
                let ready = self.balancer.backends().ready(backend)
                    && self.passed(&addr)
                    && benched.get(&addr).is_none_or(|until| *until <= now)
                    && !self.draining(&addr);
                Some((addr, ready))
            })
            .collect()
    }

    /// Every configured replica, for the admin API.
    pub fn views(&self) -> Vec<UpstreamView> {
        let now = Instant::now();
        let benched = self
            .benched
            .lock()
            .expect("the bench lock is never poisoned")
            .clone();
        self.balancer
            .backends()
            .get_backend()
            .iter()
            .filter_map(|backend| {
                let address = *backend.addr.as_inet()?;
                let stats = self.stats(address);
                Some(UpstreamView {
                    address,
                    healthy: self.balancer.backends().ready(backend) && self.passed(&address),
                    benched: benched.get(&address).is_some_and(|until| *until > now),
                    draining: stats.draining.load(Ordering::Relaxed),
                    in_flight: stats.in_flight.load(Ordering::Relaxed),
                    requests: stats.requests.load(Ordering::Relaxed),
                    failures: stats.failures.load(Ordering::Relaxed),
                })
            })
            .collect()
    }

    fn len(&self) -> usize {
        self.balancer.backends().get_backend().len()
    }
}
