//! The `ProxyHttp` implementation: policy in short hooks, pingora doing the proxying.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};
use service::request_id::{self, HEADER as REQUEST_ID};
use smallvec::SmallVec;

use crate::access_log::{AccessLog, Entry};
use crate::limits::{Admitted, Limits, Refusal};
use crate::metrics::Metrics;
use crate::upstreams::{InFlight, Upstreams};

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded; `Transfer-Encoding` is pingora's to
/// handle since it frames the body.
const HOP_BY_HOP: [&str; 5] = ["keep-alive", "proxy-connection", "te", "trailer", "upgrade"];

pub struct Policy {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub client_body_timeout: Duration,
    pub client_keepalive_seconds: u64,
    pub linger: Duration,
    pub linger_bytes: u64,
    pub max_retries: usize,
    pub max_body_bytes: u64,
    pub max_header_bytes: usize,
    /// Requests slower than this also get a warning line (every request is in the access log).
    pub slow_request: Duration,
    /// Answered 404 here, never forwarded (`server.internal_paths`).
    pub internal_paths: Vec<String>,
}

/// Whether `path` (as sent, percent-encoded or not) is one of `internal` or below one.
fn is_internal(path: &str, internal: &[String]) -> bool {
    // Borrowed, not copied, when there is nothing to decode (nearly every path).
    let decoded = std::borrow::Cow::<[u8]>::from(percent_encoding::percent_decode_str(path));
    internal.iter().any(|p| {
        decoded
            .strip_prefix(p.as_bytes())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
    })
}

/// What TLS changes for a request (`tls` settings).
pub struct TlsPolicy {
    /// Plain-HTTP requests are redirected to HTTPS on this port.
    pub redirect_to_port: Option<u16>,
    /// The `Strict-Transport-Security` value for HTTPS answers.
    pub hsts: Option<String>,
    /// Where ACME HTTP-01 challenges are answered from, or proxied to.
    pub acme_dir: Option<std::path::PathBuf>,
    pub acme_upstream: Option<SocketAddr>,
}

pub struct Proxy {
    pub access_log: Option<AccessLog>,
    pub tls: TlsPolicy,
    pub limits: Limits,
    pub upstreams: Arc<Upstreams>,
    pub metrics: Arc<Metrics>,
    pub policy: Policy,
}

/// What the balancer knows of one request.
pub struct Request {
    started: Instant,
    id: String,
    /// Replicas tried so far, the current one last (inline: most requests try one or two).
    tried: SmallVec<[SocketAddr; 2]>,
    body_bytes: u64,
    /// Counts the request in flight until it ends.
    admitted: Option<Admitted>,
    /// Counts it in flight on the replica it is on.
    on_upstream: Option<InFlight>,
    /// It came over TLS.
    secure: bool,
    /// An ACME challenge for `tls.acme_challenge_upstream`.
    acme: bool,
}

impl Request {
    fn upstream(&self) -> Option<SocketAddr> {
        self.tried.last().copied()
    }
}

/// Safe to send again to another replica: the idempotent methods, and a POST that carries an
/// `Idempotency-Key` (the client promises a repeat is harmless).
fn repeatable(request: &RequestHeader) -> bool {
    matches!(
        request.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    ) || (request.method == Method::POST && request.headers.contains_key("idempotency-key"))
}

/// The body length the request declares (`Content-Length`), if it does.
fn declared_length(request: &RequestHeader) -> Option<u64> {
    request
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn header_bytes(request: &RequestHeader) -> usize {
    request
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + request.uri.path_and_query().map_or(0, |p| p.as_str().len())
        + request.uri.authority().map_or(0, |a| a.as_str().len())
}

/// A redirect to the same URL on HTTPS.
async fn respond_redirect(session: &mut Session, location: &str) -> Result<()> {
    let body = Bytes::from(serde_json::json!({ "message": "use HTTPS" }).to_string());
    let mut header = ResponseHeader::build(308, Some(3))?;
    header.insert_header("location", location)?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len().to_string())?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await
}

/// An ACME challenge's answer: the token file's bytes, as certbot's webroot wrote them.
async fn respond_text(session: &mut Session, body: Vec<u8>) -> Result<()> {
    let mut header = ResponseHeader::build(200, Some(2))?;
    header.insert_header("content-type", "text/plain")?;
    header.insert_header("content-length", body.len().to_string())?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body.into()), true).await
}

async fn respond_json(session: &mut Session, status: u16, message: &str) -> Result<()> {
    respond_json_after(session, status, message, None).await
}

/// A JSON error answer, with `Retry-After` when the client should come back later.
async fn respond_json_after(
    session: &mut Session,
    status: u16,
    message: &str,
    retry_after_seconds: Option<u64>,
) -> Result<()> {
    let body = Bytes::from(serde_json::json!({ "message": message }).to_string());
    let mut header = ResponseHeader::build(status, Some(4))?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len().to_string())?;
    if let Some(seconds) = retry_after_seconds {
        header.insert_header("retry-after", seconds.to_string())?;
    }
    session.set_keepalive(None);
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await
}

impl Proxy {
    /// Plain HTTP only: an ACME challenge answered from the folder (or marked for its
    /// upstream), anything else redirected to HTTPS when so configured. `true` when answered.
    async fn plain_http(&self, session: &mut Session, ctx: &mut Request) -> Result<bool> {
        let path = session.req_header().uri.path();
        if path.starts_with(crate::tls::ACME_PREFIX) {
            if let Some(dir) = &self.tls.acme_dir {
                let file = crate::tls::acme_token(path).map(|token| dir.join(token));
                match file.map(std::fs::read) {
                    Some(Ok(body)) => respond_text(session, body).await?,
                    _ => respond_json(session, 404, "no such challenge").await?,
                }
                return Ok(true);
            }
            if self.tls.acme_upstream.is_some() {
                ctx.acme = true;
                return Ok(false);
            }
        }
        let Some(port) = self.tls.redirect_to_port else {
            return Ok(false);
        };
        let request = session.req_header();
        let host = request
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| request.uri.host())
            .unwrap_or("localhost");
        // The host without its port (an IPv6 literal keeps its brackets).
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let target = request.uri.path_and_query().map_or("/", |p| p.as_str());
        let location = if port == 443 {
            format!("https://{name}{target}")
        } else {
            format!("https://{name}:{port}{target}")
        };
        respond_redirect(session, &location).await?;
        Ok(true)
    }

    /// Lingering close (nginx's `lingering_close`): the answer is out, but the client may still
    /// be sending a body nobody read (a 413, an early answer of the api). Closing now would
    /// reset the connection under a client that writes everything before reading, and it would
    /// never see the answer; so the rest is read and dropped, within the bounds, first.
    async fn linger(&self, session: &mut Session) {
        if session.is_body_done() {
            return;
        }
        let declared = declared_length(session.req_header());
        if declared.is_some_and(|length| length > self.policy.linger_bytes) {
            return;
        }
        let _ = tokio::time::timeout(self.policy.linger, session.drain_request_body()).await;
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Request;

    /// None: pingora adds a response-compression module (level 0, off) by default, which still
    /// runs on every response; the api's answers pass through as they are.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    fn new_ctx(&self) -> Request {
        Request {
            started: Instant::now(),
            id: String::new(),
            tried: SmallVec::new(),
            body_bytes: 0,
            admitted: None,
            on_upstream: None,
            secure: false,
            acme: false,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Request) -> Result<bool> {
        let id = session
            .req_header()
            .headers
            .get(REQUEST_ID)
            .filter(|v| request_id::is_plain(v.as_bytes()))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        ctx.id = match id {
            Some(id) => id,
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                session.req_header_mut().insert_header(REQUEST_ID, &id)?;
                id
            }
        };
        ctx.secure = session
            .digest()
            .is_some_and(|digest| digest.ssl_digest.is_some());
        if !ctx.secure && self.plain_http(session, ctx).await? {
            return Ok(true);
        }
        if let Some(peer) = session.client_addr().and_then(|a| a.as_inet()) {
            let forwarded = session
                .req_header()
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok());
            let client = self.limits.client(peer.ip(), forwarded);
            match self.limits.admit(client) {
                Ok(admitted) => ctx.admitted = Some(admitted),
                Err(Refusal::TooFast {
                    retry_after_seconds,
                }) => {
                    let message = "too many requests from this client, slow down";
                    respond_json_after(session, 429, message, Some(retry_after_seconds)).await?;
                    return Ok(true);
                }
                Err(Refusal::Busy) => {
                    let message = "too many requests in flight, try again shortly";
                    respond_json_after(session, 503, message, Some(1)).await?;
                    return Ok(true);
                }
            }
        }
        if is_internal(session.req_header().uri.path(), &self.policy.internal_paths) {
            respond_json(session, 404, "no such resource").await?;
            return Ok(true);
        }
        if header_bytes(session.req_header()) > self.policy.max_header_bytes {
            respond_json(session, 431, "request headers are too large").await?;
            return Ok(true);
        }
        let declared = declared_length(session.req_header());
        if declared.is_some_and(|length| length > self.policy.max_body_bytes) {
            let message = format!(
                "request body is larger than the limit of {} bytes",
                self.policy.max_body_bytes
            );
            respond_json(session, 413, &message).await?;
            return Ok(true);
        }
        session.set_read_timeout(Some(self.policy.client_body_timeout));
        session.set_keepalive(Some(self.policy.client_keepalive_seconds));
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Request,
    ) -> Result<()> {
        ctx.body_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        if ctx.body_bytes > self.policy.max_body_bytes {
            return Error::e_explain(ErrorType::HTTPStatus(413), "request body over the limit");
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Request,
    ) -> Result<Box<HttpPeer>> {
        if ctx.acme
            && let Some(addr) = self.tls.acme_upstream
        {
            return Ok(Box::new(HttpPeer::new(addr, false, String::new())));
        }
        let Some(addr) = self.upstreams.select(&ctx.tried) else {
            return Error::e_explain(ErrorType::HTTPStatus(503), "no api replica is available");
        };
        if !ctx.tried.is_empty() {
            self.metrics.retried(addr);
        }
        ctx.tried.push(addr);
        ctx.on_upstream = Some(self.upstreams.start(addr));
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(self.policy.connect_timeout);
        peer.options.read_timeout = Some(self.policy.read_timeout);
        peer.options.write_timeout = Some(self.policy.write_timeout);
        peer.options.idle_timeout = Some(self.policy.idle_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Request,
    ) -> Result<()> {
        // pingora's remove_header also rewrites its case-preserving name map: only call it for
        // headers that are there (the profile showed the blind removals at ~8% of a request).
        let listed: Vec<String> = upstream
            .headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|name| name.trim().to_ascii_lowercase())
            .filter(|name| !name.is_empty() && name != "close" && name != "keep-alive")
            .collect();
        for name in listed.iter().map(String::as_str).chain(HOP_BY_HOP) {
            if upstream.headers.contains_key(name) {
                upstream.remove_header(name);
            }
        }
        if let Some(client) = session.client_addr().and_then(|a| a.as_inet()) {
            let forwarded = match upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(earlier) => format!("{earlier}, {}", client.ip()),
                None => client.ip().to_string(),
            };
            upstream.insert_header("x-forwarded-for", forwarded)?;
        }
        let scheme = if ctx.secure { "https" } else { "http" };
        upstream.insert_header("x-forwarded-proto", scheme)?;
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Request,
    ) -> Result<()> {
        if !response.headers.contains_key(REQUEST_ID) {
            response.insert_header(REQUEST_ID, &ctx.id)?;
        }
        if ctx.secure
            && let Some(hsts) = &self.tls.hsts
        {
            response.insert_header("strict-transport-security", hsts)?;
        }
        Ok(())
    }

    /// Could not connect: bench the replica and try another one.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Request,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(addr) = ctx.upstream() {
            self.upstreams.bench(addr);
        }
        e.set_retry(ctx.tried.len() <= self.policy.max_retries);
        e.more_context(format!("connecting to {peer}"))
    }

    /// Failed after connecting: bench the replica; retry elsewhere only when repeating the request
    /// is safe and its body can be replayed.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        mut e: Box<Error>,
        ctx: &mut Request,
        client_reused: bool,
    ) -> Box<Error> {
        if e.esource() == &ErrorSource::Upstream
            && let Some(addr) = ctx.upstream()
        {
            self.upstreams.bench(addr);
        }
        let retry = repeatable(session.req_header())
            && !session.as_ref().retry_buffer_truncated()
            && ctx.tried.len() <= self.policy.max_retries;
        if retry {
            e.set_retry(true);
        } else {
            e.set_retry(false);
            e.retry.decide_reuse(client_reused);
        }
        e.more_context(format!("proxying to {peer}"))
    }

    /// Every failure answers JSON with a `message`, as the api does.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut Request,
    ) -> FailToProxy
    where
        Self::CTX: Send + Sync,
    {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    ErrorType::ReadTimedout => 408,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        let message = match code {
            408 => "the request was not received in time",
            413 => "request body is larger than the limit",
            502 => "no api replica could answer",
            503 => "no api replica is available",
            400 => "malformed request",
            _ => "the request failed",
        };
        if code > 0 && respond_json(session, code, message).await.is_err() {
            tracing::debug!("the client left before the error answer");
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// A client that hangs up is not an error of ours.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Request, error: &Error) -> bool {
        error.esource() == &ErrorSource::Downstream
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut Request) {
        // The replica is done with it (a drain waits for this), whatever lingering follows.
        ctx.on_upstream = None;
        self.linger(session).await;
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let duration = ctx.started.elapsed();
        self.metrics
            .record(ctx.upstream(), status, duration.as_secs_f64());
        let request = session.req_header();
        if let Some(log) = &self.access_log {
            log.write(&Entry {
                client: session
                    .client_addr()
                    .and_then(|a| a.as_inet())
                    .map(|a| a.ip()),
                method: request.method.as_str(),
                path: request.uri.path(),
                status,
                upstream: ctx.upstream(),
                bytes: session.body_bytes_sent(),
                duration,
                tries: ctx.tried.len(),
                request_id: &ctx.id,
            });
        }
        let failed = error.filter(|e| e.esource() != &ErrorSource::Downstream);
        if failed.is_some() || duration >= self.policy.slow_request {
            let what = if failed.is_some() {
                "request failed"
            } else {
                "slow request"
            };
            tracing::warn!(
                request_id = %ctx.id, method = %request.method, path = request.uri.path(),
                status, upstream = ?ctx.upstream(), tries = ctx.tried.len(),
                duration_us = duration.as_micros() as u64,
                error = failed.map(tracing::field::display), "{what}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_internal;

    #[test]
    fn internal_paths_match_below_and_encoded_but_not_by_prefix_alone() {
        let internal = ["/metrics".to_owned()];
        for path in [
            "/metrics",
            "/metrics/",
            "/metrics/x",
            "/%6detrics",
            "/%6D%65trics/a",
        ] {
            assert!(is_internal(path, &internal), "{path}");
        }
        for path in [
            "/",
            "/metricsx",
            "/orders/metrics",
            "/Metrics",
            "//metrics",
            "/metric",
        ] {
            assert!(!is_internal(path, &internal), "{path}");
        }
    }
}
