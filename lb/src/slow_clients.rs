//! A deadline for each request's header block, which pingora lacks: it reads headers with a
//! timeout *per read*, so a client sending one byte every few seconds could hold a connection
//! forever. Each accepted connection is wrapped before pingora sees it; the wrapper fails the
//! read once a header block has taken longer than the limit, counted from the connection's
//! accept (first request) or from the first byte of the next request (keep-alive).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps a pingora app so that every connection it serves gets the header deadline.
pub struct HeaderDeadline<A> {
    pub app: Arc<A>,
    pub limit: Duration,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeaderDeadline<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let wrapped: Stream = Box::new(Deadlined::new(session, self.limit));
        self.app.process_new(wrapped, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

enum Phase {
    /// Reading a header block that must end before the timer fires.
    Header { tail: [u8; 3] },
    /// Headers done: reading a body, or idle between requests (pingora's keep-alive timeout).
    Passing,
    /// A response was written: the next byte read starts the next request's deadline.
    BetweenRequests,
}

struct Deadlined {
    inner: Stream,
    limit: Duration,
    phase: Phase,
    timer: Pin<Box<Sleep>>,
}

impl Deadlined {
    fn new(inner: Stream, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            phase: Phase::Header { tail: [0; 3] },
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }

    /// Follows the bytes just read: starts a deadline at a new request, ends it at `\r\n\r\n`.
    fn observe(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if matches!(self.phase, Phase::BetweenRequests) {
            self.phase = Phase::Header { tail: [0; 3] };
            self.timer.as_mut().reset(Instant::now() + self.limit);
        }
        if let Phase::Header { tail } = &mut self.phase {
            // The end may straddle two reads: look at the last 3 bytes seen before these.
            let joined = tail.iter().chain(bytes).copied();
            let mut window = [0u8; 4];
            let mut ended = false;
            for byte in joined {
                window = [window[1], window[2], window[3], byte];
                if &window == b"\r\n\r\n" {
                    ended = true;
                    break;
                }
            }
            if ended {
                self.phase = Phase::Passing;
            } else {
                *tail = [window[1], window[2], window[3]];
            }
        }
    }
}

impl AsyncRead for Deadlined {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if !matches!(self.phase, Phase::Passing) {
                    self.observe(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                let waiting_for_headers = matches!(self.phase, Phase::Header { .. });
                if waiting_for_headers && self.timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request headers did not arrive in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Deadlined {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if matches!(self.phase, Phase::Passing) {
            self.phase = Phase::BetweenRequests;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl fmt::Debug for Deadlined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadlined")
            .field("inner", &self.inner)
            .finish()
    }
}

// The rest only hands pingora's questions about the connection to the wrapped stream.

#[async_trait]
impl Shutdown for Deadlined {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Deadlined {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Deadlined {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Deadlined {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl GetProxyDigest for Deadlined {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Deadlined {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Deadlined {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadlined() -> Deadlined {
        let (a, _b) = tokio::io::duplex(64);
        Deadlined::new(Box::new(a), Duration::from_secs(1))
    }

    #[tokio::test]
    async fn the_header_end_is_found_across_reads() {
        let mut d = deadlined();
        d.observe(b"GET / HTTP/1.1\r\nHost: x\r");
        assert!(matches!(d.phase, Phase::Header { .. }));
        d.observe(b"\n\r");
        assert!(matches!(d.phase, Phase::Header { .. }));
        d.observe(b"\n");
        assert!(matches!(d.phase, Phase::Passing));
    }

    #[tokio::test]
    async fn a_response_then_new_bytes_start_a_new_header_deadline() {
        let mut d = deadlined();
        d.observe(b"GET / HTTP/1.1\r\n\r\n");
        d.phase = Phase::BetweenRequests;
        d.observe(b"G");
        assert!(matches!(d.phase, Phase::Header { tail } if tail == [0, 0, b'G']));
    }
}
