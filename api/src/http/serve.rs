//! Serving connections, with the bounds axum's `serve` does not offer: a deadline for a
//! request's headers (which hyper also applies while a kept-alive connection waits for its next
//! request, so it is the idle timeout too), and a shutdown that closes idle connections at once
//! and gives requests in flight a bounded time.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// How long connections may take.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From the first byte of a request (or the end of the previous one) to its last header.
    pub header_read: Duration,
    /// After the shutdown signal, for the requests in flight.
    pub shutdown: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, closes idle
/// connections, and waits at most `limits.shutdown` for the others before returning.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, most likely: pause rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_ms = limits.shutdown.as_millis() as u64,
            "requests still in flight at the shutdown timeout are cut"
        );
    }
}
