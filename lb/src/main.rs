//! `lb`: the load balancer in front of the api replicas. `main` only wires services into a
//! pingora `Server`: the proxy, the health check in the background, and the admin server.

mod access_log;
mod admin;
mod config;
mod discovery;
mod limits;
mod metrics;
mod proxy;
mod slow_clients;
mod tls;
mod upstreams;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use pingora::http::RequestHeader;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backends, LoadBalancer};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::access_log::{AccessLog, Destination};
use crate::config::{Settings, millis};
use crate::discovery::{Discovery, FirstPass, Passed};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::proxy::{Policy, Proxy, TlsPolicy};
use crate::slow_clients::HeaderDeadline;
use crate::tls::ReloadingCertificate;
use crate::upstreams::Upstreams;

#[derive(clap::Parser)]
#[command(version, about = "Load balancer for the orders api replicas")]
struct Args {
    #[command(flatten)]
    config: service::ConfigFile,
    /// Take the listening sockets over from the lb running with the same `server.run_dir` and
    /// `server.instance`, which is then sent SIGQUIT: it hands them over and finishes its
    /// requests, and no connection is refused meanwhile (pingora's graceful upgrade).
    #[arg(long)]
    upgrade: bool,
}

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    service::run(
        env!("CARGO_BIN_NAME"),
        &args.config,
        Settings::check,
        |settings| match run(&settings, args.upgrade)? {},
    )
}

/// Runs until a signal stops the server (pingora then exits the process itself).
fn run(settings: &Settings, upgrade: bool) -> anyhow::Result<std::convert::Infallible> {
    let run_dir = &settings.server.run_dir;
    let instance = &settings.server.instance;
    let conf = ServerConf {
        threads: settings.server.threads,
        upstream_keepalive_pool_size: settings.upstreams.keepalive_pool_size,
        grace_period_seconds: Some(settings.server.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(settings.server.graceful_shutdown_timeout_seconds),
        pid_file: run_dir
            .join(format!("{instance}.pid"))
            .display()
            .to_string(),
        upgrade_sock: run_dir
            .join(format!("{instance}.sock"))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let opt = pingora::server::configuration::Opt {
        upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();

    let passed = Passed::default();
    let file = match settings.upstreams.file.as_str() {
        "" => None,
        file => Some(file.into()),
    };
    let discovery = Discovery::new(settings.upstreams.addresses.clone(), file, passed.clone());
    let mut balancer =
        LoadBalancer::<RoundRobin>::from_backends(Backends::new(Box::new(discovery)));
    balancer.update_frequency = Some(millis(settings.upstreams.resolve_interval_ms));
    let mut check = HttpHealthCheck::new("localhost", false);
    check.req = RequestHeader::build("GET", settings.health.path.as_bytes(), None)?;
    check.req.insert_header("host", "localhost")?;
    check.peer_template.options.connection_timeout = Some(millis(settings.health.timeout_ms));
    check.peer_template.options.read_timeout = Some(millis(settings.health.timeout_ms));
    balancer.set_health_check(Box::new(FirstPass {
        check,
        passed: passed.clone(),
    }));
    balancer.health_check_frequency = Some(millis(settings.health.interval_ms));
    balancer.parallel_health_check = true;
    // Found and checked once now, so that the first requests (the very first ones after an
    // upgrade, too) find ready replicas; then every interval.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            balancer.update().await?;
            balancer.backends().run_health_check(true).await;
            Ok::<_, Box<pingora::Error>>(())
        })?;
    let health = background_service("health check", balancer);
    let upstreams = Arc::new(Upstreams::new(
        health.task(),
        passed,
        millis(settings.health.failure_cooldown_ms),
    ));

    let metrics = Arc::new(Metrics::new(instance));
    let access_log = AccessLog::open(&Destination::parse(&settings.access_log.path))
        .map_err(|e| anyhow::anyhow!("opening access_log.path: {e}"))?;
    let tls = &settings.tls;
    let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    let proxy = Proxy {
        access_log,
        tls: TlsPolicy {
            redirect_to_port: tls
                .redirect_http
                .then(|| tls.listen.first().map(SocketAddr::port))
                .flatten(),
            hsts: (tls.hsts_max_age_seconds > 0)
                .then(|| format!("max-age={}", tls.hsts_max_age_seconds)),
            acme_dir: non_empty(&tls.acme_challenge_dir).map(Into::into),
            acme_upstream: tls.acme_challenge_upstream.parse().ok(),
        },
        limits: Limits::new(
            settings.limits.client_rate_per_second,
            settings.limits.client_burst,
            settings.limits.trusted_proxies.clone(),
            settings.limits.max_in_flight,
        ),
        upstreams: upstreams.clone(),
        metrics: metrics.clone(),
        policy: Policy {
            internal_paths: settings.server.internal_paths.clone(),
            connect_timeout: millis(settings.timeouts.connect_ms),
            read_timeout: millis(settings.timeouts.upstream_read_ms),
            write_timeout: millis(settings.timeouts.upstream_write_ms),
            idle_timeout: millis(settings.timeouts.upstream_idle_ms),
            client_body_timeout: millis(settings.timeouts.client_body_ms),
            client_keepalive_seconds: settings.timeouts.client_keepalive_seconds,
            linger: millis(settings.timeouts.client_linger_ms),
            linger_bytes: settings.limits.linger_bytes,
            max_retries: settings.retries.max,
            max_body_bytes: settings.limits.max_body_bytes,
            max_header_bytes: settings.limits.max_header_bytes,
            slow_request: millis(settings.log.slow_request_ms),
        },
    };
    let app = HeaderDeadline {
        app: Arc::new(pingora::proxy::http_proxy(&server.configuration, proxy)),
        limit: millis(settings.timeouts.client_header_ms),
    };
    let mut service = Service::new("orders lb".into(), app);
    for addr in &settings.server.listen {
        service.add_tcp(&addr.to_string());
    }
    if !tls.listen.is_empty() {
        let certificate =
            ReloadingCertificate::watch(tls.cert_file.clone().into(), tls.key_file.clone().into())
                .map_err(|e| anyhow::anyhow!(e))?;
        for addr in &tls.listen {
            let mut accept = pingora::listeners::tls::TlsSettings::intermediate("", "")?;
            accept.set_cert_resolver(certificate.clone());
            service.add_tls_with_settings(&addr.to_string(), None, accept);
        }
    }
    let token = match settings.server.admin_token_file.as_str() {
        "" => None,
        file => {
            let token = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("server.admin_token_file: reading {file}: {e}"))?;
            let token = token.trim().to_owned();
            anyhow::ensure!(
                !token.is_empty(),
                "server.admin_token_file: {file} is empty"
            );
            Some(token)
        }
    };
    admin::serve(settings.server.admin_listen, metrics, upstreams, token)?;
    tracing::info!(
        listen = ?settings.server.listen,
        admin = %settings.server.admin_listen,
        https = ?settings.tls.listen,
        upstreams = ?settings.upstreams.addresses,
        upstreams_file = %settings.upstreams.file,
        "listening on http://{}",
        settings.server.listen[0]
    );
    server.add_service(service);
    server.add_service(health);
    server.run_forever()
}
