//! The admin server, on `server.admin_listen` (loopback or a private address; never the public
//! listener): `/metrics`, `/healthz`, and the upstreams an operator can take out and put back:
//!
//! - `GET /upstreams`: each replica's address, health, benched and draining flags, requests in
//!   flight, requests and failures;
//! - `POST /upstreams/{address}/drain[?timeout_ms=N]`: no new requests for it; answers once its
//!   requests in flight are done (`drained: true`) or after the timeout (`drained: false`);
//! - `POST /upstreams/{address}/enable`: it takes requests again.
//!
//! With `server.admin_token_file` set, everything but `/healthz` needs
//! `Authorization: Bearer <the file's token>`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use service::metrics::CONTENT_TYPE;
use sha2::{Digest, Sha256};

use crate::metrics::Metrics;
use crate::upstreams::{UpstreamView, Upstreams};

/// How long a drain waits for the requests in flight when the caller does not say.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Admin {
    metrics: Arc<Metrics>,
    upstreams: Arc<Upstreams>,
    /// SHA-256 of the token, compared in constant time; `None`: no token asked.
    token: Option<[u8; 32]>,
}

/// Serves the admin API on `addr` from a thread of its own, apart from the proxy's runtime.
pub fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    upstreams: Arc<Upstreams>,
    token: Option<String>,
) -> std::io::Result<()> {
    // SO_REUSEPORT: during a graceful upgrade the new lb binds it while the old one still has it.
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    let listener: std::net::TcpListener = socket.into();
    listener.set_nonblocking(true)?;
    let admin = Admin {
        metrics,
        upstreams,
        token: token.map(|token| Sha256::digest(token.as_bytes()).into()),
    };
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building the admin runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("using the admin listener");
                let guarded = Router::new()
                    .route("/metrics", get(show_metrics))
                    .route("/upstreams", get(list))
                    .route("/upstreams/{address}/drain", post(drain))
                    .route("/upstreams/{address}/enable", post(enable))
                    .route_layer(middleware::from_fn_with_state(admin.clone(), authorise));
                let router = Router::new()
                    .route("/healthz", get(|| async { "ok\n" }))
                    .merge(guarded)
                    .with_state(admin);
                if let Err(error) = axum::serve(listener, router).await {
                    tracing::error!(%error, "the admin server stopped");
                }
            });
        })?;
    Ok(())
}

/// An admin request that cannot be done: its status and why, as JSON.
struct AdminError(StatusCode, &'static str);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "message": self.1 }))).into_response()
    }
}

async fn authorise(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    let Some(expected) = admin.token else {
        return next.run(request).await;
    };
    let offered = bearer(request.headers()).map(|token| Sha256::digest(token.as_bytes()));
    // Digests of equal length, compared without stopping at the first difference.
    let matches = offered.is_some_and(|offered| {
        offered
            .iter()
            .zip(expected.iter())
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
    });
    if matches {
        next.run(request).await
    } else {
        let mut response =
            AdminError(StatusCode::UNAUTHORIZED, "a valid admin token is required").into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer".parse().expect("a valid value"),
        );
        response
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

async fn show_metrics(State(admin): State<Admin>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        admin.metrics.show(&admin.upstreams),
    )
}

async fn list(State(admin): State<Admin>) -> Json<Vec<UpstreamView>> {
    Json(admin.upstreams.views())
}

#[derive(Deserialize)]
struct DrainOptions {
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct Drained {
    address: SocketAddr,
    draining: bool,
    /// Every request in flight on it has ended.
    drained: bool,
    in_flight: usize,
}

/// The configured replica at `address`, or a 400/404 answer.
fn known(admin: &Admin, address: &str) -> Result<SocketAddr, AdminError> {
    let addr: SocketAddr = address.parse().map_err(|_| {
        AdminError(
            StatusCode::BAD_REQUEST,
            "not an address: expected HOST:PORT",
        )
    })?;
    if admin.upstreams.knows(addr) {
        Ok(addr)
    } else {
        Err(AdminError(StatusCode::NOT_FOUND, "no such upstream"))
    }
}

async fn drain(
    State(admin): State<Admin>,
    Path(address): Path<String>,
    Query(options): Query<DrainOptions>,
) -> Result<Json<Drained>, AdminError> {
    let addr = known(&admin, &address)?;
    admin.upstreams.set_draining(addr, true);
    tracing::info!(upstream = %addr, "draining");
    let timeout = options
        .timeout_ms
        .map_or(DRAIN_TIMEOUT, Duration::from_millis);
    let deadline = Instant::now() + timeout;
    let mut in_flight = admin.upstreams.in_flight(addr);
    while in_flight > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        in_flight = admin.upstreams.in_flight(addr);
    }
    Ok(Json(Drained {
        address: addr,
        draining: true,
        drained: in_flight == 0,
        in_flight,
    }))
}

async fn enable(
    State(admin): State<Admin>,
    Path(address): Path<String>,
) -> Result<Json<Drained>, AdminError> {
    let addr = known(&admin, &address)?;
    admin.upstreams.set_draining(addr, false);
    tracing::info!(upstream = %addr, "enabled");
    Ok(Json(Drained {
        address: addr,
        draining: false,
        drained: false,
        in_flight: admin.upstreams.in_flight(addr),
    }))
}
