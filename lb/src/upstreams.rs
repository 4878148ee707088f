//! Which replica gets the next request: pingora's round-robin over the replicas its health check
//! calls ready, minus those this balancer saw fail a request moments ago (passive marking, which
//! pingora does not do itself), minus those this request already tried.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, LoadBalancer};

pub struct Upstreams {
    balancer: Arc<LoadBalancer<RoundRobin>>,
    /// Replicas that failed, and until when they are avoided.
    benched: Mutex<HashMap<SocketAddr, Instant>>,
    cooldown: Duration,
}

impl Upstreams {
    pub fn new(balancer: Arc<LoadBalancer<RoundRobin>>, cooldown: Duration) -> Self {
        Self {
            balancer,
            benched: Mutex::new(HashMap::new()),
            cooldown,
        }
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
            ready && !tried.contains(addr) && (allow_benched || !benched(addr))
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

    /// Avoids `addr` for the cooldown.
    pub fn bench(&self, addr: SocketAddr) {
        self.benched
            .lock()
            .expect("the bench lock is never poisoned")
            .insert(addr, Instant::now() + self.cooldown);
    }

    /// Every configured replica with whether it may take traffic now.
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
                    && benched.get(&addr).is_none_or(|until| *until <= now);
                Some((addr, ready))
            })
            .collect()
    }

    fn len(&self) -> usize {
        self.balancer.backends().get_backend().len()
    }
}
