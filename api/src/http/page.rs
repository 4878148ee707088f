//! `GET /`: the upload page, one self-contained HTML file (no build step).

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("page.html");

pub async fn show() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' blob:; style-src 'unsafe-inline'; \
                 script-src 'unsafe-inline'",
            ),
        ],
        PAGE,
    )
}
