//! What one client, and all clients together, may ask of the replicas: a token bucket per client
//! address (governor's GCRA: `client_rate_per_second` refilled, `client_burst` at once; over it,
//! 429 with `Retry-After`), and a cap on the requests in flight through this balancer
//! (pingora-limits' `Inflight`; over it, 503). Both are off unless configured.
//!
//! The client is the TCP peer, unless the peer is a trusted proxy (`limits.trusted_proxies`):
//! then it is the last address in `X-Forwarded-For` that is not itself a trusted proxy, so that
//! a client cannot pick its own identity by sending the header.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use pingora_limits::inflight::{Guard, Inflight};

/// Per-client state unused for this long is forgotten (it would be full again anyway).
const FORGET_EVERY: Duration = Duration::from_secs(60);

pub struct Limits {
    per_client: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    trusted: Vec<IpNet>,
    in_flight: Inflight,
    max_in_flight: usize,
}

/// Why a request is not let through.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The client is over its rate: it may try again after this many seconds.
    TooFast { retry_after_seconds: u64 },
    /// Too many requests are in flight through the balancer.
    Busy,
}

/// Held while a request is in flight.
pub struct Admitted {
    _in_flight: Option<Guard>,
}

impl Limits {
    /// `rate` 0 turns the per-client limit off; `max_in_flight` 0 the global cap.
    pub fn new(rate: u32, burst: u32, trusted: Vec<IpNet>, max_in_flight: usize) -> Self {
        let per_client = NonZeroU32::new(rate).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            let limiter = Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ));
            forget_idle_clients(&limiter);
            limiter
        });
        Self {
            per_client,
            trusted,
            in_flight: Inflight::new(),
            max_in_flight,
        }
    }

    /// The client a request comes from: `peer`, or the first untrusted hop of `forwarded_for`
    /// (read from the right) when `peer` is a trusted proxy.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: &IpAddr| self.trusted.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let hops = forwarded_for.unwrap_or_default().rsplit(',');
        for hop in hops {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if trusted(&ip) => continue,
                Ok(ip) => return ip,
                // A malformed hop: the chain cannot be trusted past it.
                Err(_) => return peer,
            }
        }
        peer
    }

    /// Lets a request from `client` through, or says why not.
    pub fn admit(&self, client: IpAddr) -> Result<Admitted, Refusal> {
        if let Some(limiter) = &self.per_client
            && let Err(not_until) = limiter.check_key(&client)
        {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(Refusal::TooFast {
                retry_after_seconds: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            });
        }
        if self.max_in_flight == 0 {
            return Ok(Admitted { _in_flight: None });
        }
        let (guard, count) = self.in_flight.incr("all", 1);
        if count > self.max_in_flight as isize {
            return Err(Refusal::Busy);
        }
        Ok(Admitted {
            _in_flight: Some(guard),
        })
    }
}

/// Drops the state of clients idle long enough to be full again, now and then, so that many
/// addresses seen once do not grow the balancer.
fn forget_idle_clients(limiter: &Arc<DefaultKeyedRateLimiter<IpAddr>>) {
    let limiter = Arc::downgrade(limiter);
    std::thread::Builder::new()
        .name("rate-limit-gc".into())
        .spawn(move || {
            loop {
                std::thread::sleep(FORGET_EVERY);
                let Some(limiter) = limiter.upgrade() else {
                    return;
                };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        })
        .expect("starting the rate limiter's clean-up thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let limits = Limits::new(0, 0, vec!["10.0.0.0/8".parse().unwrap()], 0);
        let forwarded = Some("203.0.113.9, 198.51.100.4, 10.1.2.3");
        // An untrusted peer cannot choose its identity with the header.
        assert_eq!(limits.client(ip("192.0.2.1"), forwarded), ip("192.0.2.1"));
        // From a trusted proxy: the last hop that is not a trusted proxy.
        assert_eq!(limits.client(ip("10.0.0.5"), forwarded), ip("198.51.100.4"));
        assert_eq!(limits.client(ip("10.0.0.5"), None), ip("10.0.0.5"));
        assert_eq!(
            limits.client(ip("10.0.0.5"), Some("nonsense, 10.1.1.1")),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn a_client_past_its_burst_waits_and_others_do_not() {
        let limits = Limits::new(1, 3, vec![], 0);
        for _ in 0..3 {
            assert!(limits.admit(ip("127.0.0.2")).is_ok());
        }
        assert_eq!(
            limits.admit(ip("127.0.0.2")).err(),
            Some(Refusal::TooFast {
                retry_after_seconds: 1
            })
        );
        assert!(limits.admit(ip("127.0.0.3")).is_ok());
    }

    #[test]
    fn requests_in_flight_past_the_cap_are_refused_until_one_ends() {
        let limits = Limits::new(0, 0, vec![], 2);
        let first = limits.admit(ip("127.0.0.2")).unwrap();
        let _second = limits.admit(ip("127.0.0.3")).unwrap();
        assert_eq!(limits.admit(ip("127.0.0.4")).err(), Some(Refusal::Busy));
        drop(first);
        assert!(limits.admit(ip("127.0.0.4")).is_ok());
    }
}
