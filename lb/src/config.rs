//! Settings of the load balancer, loaded by `service` like every binary's: built-in defaults,
//! then a TOML file (`--config`), then `APP__SECTION__KEY` environment variables. A bad value
//! stops start-up with one line naming the key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use service::ConfigError;
use service::logs::LogSettings;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub upstreams: UpstreamSettings,
    pub health: HealthSettings,
    pub timeouts: TimeoutSettings,
    pub retries: RetrySettings,
    pub limits: LimitSettings,
    pub access_log: AccessLogSettings,
    pub tls: TlsSection,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// HTTPS listeners; empty: no TLS. (`default`: the settings loader drops an empty list.)
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// PEM certificate chain and private key; read again when either file changes.
    pub cert_file: String,
    pub key_file: String,
    /// Plain-HTTP requests are answered 308 to the same URL on HTTPS, except ACME HTTP-01
    /// challenges (`/.well-known/acme-challenge/…`).
    pub redirect_http: bool,
    /// `Strict-Transport-Security: max-age=N` on HTTPS answers; 0: not sent.
    pub hsts_max_age_seconds: u64,
    /// ACME HTTP-01 challenges answered from this folder (`certbot certonly --webroot -w DIR`);
    /// empty: not answered here.
    pub acme_challenge_dir: String,
    /// ACME HTTP-01 challenges proxied to this address (`certbot --standalone
    /// --http-01-port 8888`), when no folder is set; empty: none.
    pub acme_challenge_upstream: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogSettings {
    /// One line per request: a file (appended to), `-` for stdout, empty for none.
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Where clients connect.
    pub listen: Vec<SocketAddr>,
    /// The admin server: metrics (`/metrics`), the balancer's own health (`/healthz`) and the
    /// upstreams API (`/upstreams`, drain, enable). Keep it on loopback or a private address.
    pub admin_listen: SocketAddr,
    /// A file holding a token the admin server then asks for (`Authorization: Bearer …`) on
    /// everything but `/healthz`; empty: none asked.
    pub admin_token_file: String,
    /// This balancer's name, in logs and metrics; also names its pid and upgrade files.
    pub instance: String,
    /// Worker threads of the proxy.
    pub threads: usize,
    /// After SIGTERM (or an upgrade's hand-over), how long requests in flight may take to
    /// finish; pingora always waits the whole time (its default is 300 s).
    pub grace_period_seconds: u64,
    /// After the grace period, how long pingora waits for its runtimes' blocking work; requests
    /// still running then are cut.
    pub graceful_shutdown_timeout_seconds: u64,
    /// Folder of the pid file and the upgrade socket.
    pub run_dir: PathBuf,
    /// Paths answered 404 on the public listeners, never forwarded (with what lies below
    /// them, percent-encoded or not): the replicas' metrics stay for Prometheus on the private
    /// network.
    pub internal_paths: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// The api replicas, `HOST:PORT`: an address, or a DNS name that gives one upstream per
    /// address it resolves to (`api:8080` for a compose service).
    pub addresses: Vec<String>,
    /// A file of more replicas, one `HOST:PORT` per line (`#` comments), read again every
    /// `resolve_interval_ms`: edit it to add or remove replicas without a restart. Empty: none.
    pub file: String,
    /// How often names are resolved and the file is read again.
    pub resolve_interval_ms: u64,
    /// Idle connections kept open to the upstreams, in all.
    pub keepalive_pool_size: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// Asked of every upstream; 200 means it may take traffic.
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// A replica that failed a request is avoided for this long, before the next health check
    /// can say so.
    pub failure_cooldown_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSettings {
    pub connect_ms: u64,
    /// Upstream read and write, per operation.
    pub upstream_read_ms: u64,
    pub upstream_write_ms: u64,
    /// A pooled connection to a replica unused for this long is closed; shorter than the api's
    /// `server.header_read_timeout_ms`, so that the lb, not the replica, closes idle connections
    /// and never sends a request on one the replica is closing.
    pub upstream_idle_ms: u64,
    /// A request's header block must arrive within this time (from the connection's accept, or
    /// from the first byte of a later request); slower clients are disconnected.
    pub client_header_ms: u64,
    /// How long a client connection may sit idle between requests.
    pub client_keepalive_seconds: u64,
    /// A client must keep its request body moving: at most this long between reads.
    pub client_body_ms: u64,
    /// After an answer given before the client finished sending its body (413, an early answer
    /// of the api), how long the rest is still read and dropped so that the client can read the
    /// answer (nginx's lingering close).
    pub client_linger_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Other replicas tried after the first fails, per request.
    pub max: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest request body accepted, in bytes (413 above).
    pub max_body_bytes: u64,
    /// A body left unread is still read and dropped (`timeouts.client_linger_ms`) only when it
    /// declares at most this many bytes; a larger one is cut at once.
    pub linger_bytes: u64,
    /// Largest request header block, in bytes (431 above).
    pub max_header_bytes: usize,
    /// Requests per second one client may make on average (a token bucket refilled at this
    /// rate); past it, 429 with `Retry-After`. 0: no limit.
    pub client_rate_per_second: u32,
    /// Requests one client may make at once before the rate applies (the bucket's size).
    pub client_burst: u32,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the client; behind
    /// one, every request would otherwise count as the proxy's. (`default`: the settings
    /// loader drops an empty list.)
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Requests in flight through this balancer at once; past it, 503 with `Retry-After: 1`.
    /// 0: no cap.
    pub max_in_flight: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings {
                listen: vec![SocketAddr::from(([127, 0, 0, 1], 8000))],
                admin_listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
                admin_token_file: String::new(),
                instance: "lb".into(),
                threads: 2,
                grace_period_seconds: 5,
                graceful_shutdown_timeout_seconds: 5,
                run_dir: std::env::temp_dir(),
                internal_paths: vec!["/metrics".into()],
            },
            upstreams: UpstreamSettings {
                addresses: vec!["127.0.0.1:8080".into()],
                file: String::new(),
                resolve_interval_ms: 5000,
                keepalive_pool_size: 256,
            },
            health: HealthSettings {
                path: "/readyz".into(),
                interval_ms: 1000,
                timeout_ms: 500,
                failure_cooldown_ms: 2000,
            },
            timeouts: TimeoutSettings {
                connect_ms: 500,
                upstream_read_ms: 30_000,
                upstream_write_ms: 30_000,
                upstream_idle_ms: 20_000,
                client_header_ms: 10_000,
                client_keepalive_seconds: 60,
                client_body_ms: 10_000,
                client_linger_ms: 5_000,
            },
            retries: RetrySettings { max: 2 },
            limits: LimitSettings {
                max_body_bytes: 20 * 1024 * 1024,
                linger_bytes: 64 * 1024 * 1024,
                max_header_bytes: 16 * 1024,
                client_rate_per_second: 0,
                client_burst: 0,
                trusted_proxies: Vec::new(),
                max_in_flight: 0,
            },
            access_log: AccessLogSettings { path: "-".into() },
            tls: TlsSection {
                listen: Vec::new(),
                cert_file: String::new(),
                key_file: String::new(),
                redirect_http: false,
                hsts_max_age_seconds: 0,
                acme_challenge_dir: String::new(),
                acme_challenge_upstream: String::new(),
            },
            log: LogSettings::default(),
        }
    }
}

service::settings_family!(Settings, Lb);

impl Settings {
    pub fn check(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError::key(key, why));
        if self.server.listen.is_empty() {
            return fail("server.listen", "needs at least one address");
        }
        if let Some(bad) = self
            .server
            .internal_paths
            .iter()
            .find(|p| !p.starts_with('/') || p.len() < 2 || p.ends_with('/'))
        {
            return fail(
                "server.internal_paths",
                &format!("{bad:?}: each is a path like /metrics (no trailing slash)"),
            );
        }
        if self.upstreams.addresses.is_empty() && self.upstreams.file.is_empty() {
            return fail(
                "upstreams.addresses",
                "needs at least one api replica (or upstreams.file)",
            );
        }
        if let Some(bad) = self
            .upstreams
            .addresses
            .iter()
            .find(|entry| !crate::discovery::is_host_port(entry))
        {
            return fail(
                "upstreams.addresses",
                &format!("{bad:?} is not HOST:PORT (an address or a DNS name, and a port)"),
            );
        }
        if self.upstreams.resolve_interval_ms == 0 {
            return fail("upstreams.resolve_interval_ms", "must be at least 1 ms");
        }
        if self.server.threads == 0 {
            return fail("server.threads", "must be at least 1");
        }
        if !self.health.path.starts_with('/') {
            return fail("health.path", "must start with /");
        }
        if self.health.interval_ms == 0 || self.health.timeout_ms == 0 {
            return fail("health.interval_ms", "health timings must be at least 1 ms");
        }
        if self.timeouts.connect_ms == 0
            || self.timeouts.client_body_ms == 0
            || self.timeouts.client_header_ms == 0
            || self.timeouts.upstream_idle_ms == 0
        {
            return fail("timeouts.connect_ms", "timeouts must be at least 1 ms");
        }
        if self.server.instance.is_empty()
            || !self
                .server
                .instance
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return fail("server.instance", "letters, digits, - and _ only");
        }
        if !self.tls.listen.is_empty()
            && (self.tls.cert_file.is_empty() || self.tls.key_file.is_empty())
        {
            return fail(
                "tls.cert_file",
                "HTTPS (tls.listen) needs a certificate and a key file",
            );
        }
        if self.tls.redirect_http && self.tls.listen.is_empty() {
            return fail("tls.redirect_http", "needs an HTTPS listener (tls.listen)");
        }
        if !self.tls.acme_challenge_upstream.is_empty()
            && self
                .tls
                .acme_challenge_upstream
                .parse::<SocketAddr>()
                .is_err()
        {
            return fail(
                "tls.acme_challenge_upstream",
                "must be HOST:PORT, an address",
            );
        }
        if let Err(why) = crate::access_log::check(&self.access_log.path) {
            return fail("access_log.path", &why);
        }
        Ok(())
    }
}

pub fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_catalogue_lists_every_key() {
        service::settings::check_catalogue::<super::Settings>(service::Family::Lb).unwrap();
    }
}
