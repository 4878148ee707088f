//! Lingering close, as nginx's `lingering_close`: when the api answers before reading the whole
//! request body (413, 415, 401, 404 …), the rest of the body is still read and thrown away, up to
//! a bound in bytes and time, while the answer goes out. Closing with unread bytes makes the
//! kernel reset the connection, and a client that sends its whole body before reading (Python's
//! `http.client`, `requests`) then gets a broken pipe instead of the status and the JSON.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

/// How much of an unread body is still read before the connection closes.
#[derive(Debug, Clone, Copy)]
pub struct Linger {
    pub bytes: u64,
    pub time: Duration,
}

/// Where the request body comes back if the handler drops it unfinished.
type Slot = Arc<Mutex<Option<Body>>>;

pub async fn linger(State(limits): State<Linger>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    if !has_body {
        return next.run(request).await;
    }
    let slot = Slot::default();
    let request = request.map(|body| {
        Body::new(Returning {
            inner: Some(body),
            slot: slot.clone(),
        })
    });
    let response = next.run(request).await;
    let unread = slot.lock().expect("the slot lock is never poisoned").take();
    if let Some(body) = unread {
        tokio::spawn(drain(body, limits));
    }
    response
}

/// Reads and drops what is left, within the bounds; then the connection may close cleanly.
async fn drain(mut body: Body, limits: Linger) {
    let mut read = 0_u64;
    let reading = async {
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > limits.bytes {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(limits.time, reading).await;
}

/// The request body as the handler sees it; dropped unfinished, it hands the rest back.
struct Returning {
    inner: Option<Body>,
    slot: Slot,
}

impl http_body::Body for Returning {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take()
            && !http_body::Body::is_end_stream(&body)
            && let Ok(mut slot) = self.slot.lock()
        {
            *slot = Some(body);
        }
    }
}
