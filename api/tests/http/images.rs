//! `/images` over HTTP without a worker: what the api itself promises about an upload (the
//! checks before storing, the status record, the downloads). With workers: api/tests/pipeline.rs.

use std::time::{Duration, Instant};

use harness::Fetch;
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{TestApp, error_body, error_for, raw_http, spawn_app, spawn_app_with};
use harness::pictures::{self, form};

async fn upload(app: &TestApp, bytes: &[u8], name: &str) -> reqwest::Response {
    app.request(Method::POST, "/images")
        .multipart(form(bytes, name))
        .fetch()
        .await
}

async fn upload_ok(app: &TestApp, bytes: &[u8]) -> Value {
    let response = upload(app, bytes, "photo.jpg").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Success");
    assert_eq!(body["status_url"], location);
    body
}

#[tokio::test]
async fn an_upload_is_stored_queued_and_described() {
    let app = spawn_app().await;
    let bytes = pictures::jpeg(640, 480);
    let accepted = upload_ok(&app, &bytes).await;
    let id = accepted["job_id"].as_str().unwrap();
    assert_eq!(accepted["status_url"], format!("/images/{id}"));

    let status: Value = app.get_json(&format!("/images/{id}")).await;
    assert_eq!(status["id"], id);
    assert_eq!(status["status"], "queued");
    assert_eq!(status["attempts"], 0);
    assert_eq!(status["original"]["format"], "jpeg");
    assert_eq!(status["original"]["content_type"], "image/jpeg");
    assert_eq!(status["original"]["width"], 640);
    assert_eq!(status["original"]["height"], 480);
    assert_eq!(status["original"]["bytes"], bytes.len());
    assert_eq!(status["thumbnail"], Value::Null);
    assert_eq!(
        status["links"]["original"],
        format!("/images/{id}/original")
    );
    assert!(status["links"].get("thumbnail").is_none());

    let original = app.get(&format!("/images/{id}/original")).await;
    assert_eq!(original.status(), 200);
    assert_eq!(original.headers()["content-type"], "image/jpeg");
    assert_eq!(original.headers()["x-content-type-options"], "nosniff");
    assert!(
        original.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let etag = original.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(original.bytes().await.unwrap(), bytes.as_slice());

    let again = app
        .request(Method::GET, &format!("/images/{id}/original"))
        .header("if-none-match", &etag)
        .fetch()
        .await;
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    // No worker runs here: the thumbnail is not ready, and says so in JSON.
    let thumbnail = app.get(&format!("/images/{id}/thumbnail")).await;
    let body = error_body(thumbnail, 409).await;
    assert!(
        body["message"].as_str().unwrap().contains("queued"),
        "{body}"
    );
}

#[tokio::test]
async fn png_and_webp_are_accepted_by_their_bytes_not_their_names() {
    let app = spawn_app().await;
    let png = pictures::png_with_alpha(64);
    let response = upload(&app, &png, "holiday.jpg").await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let status: Value = app.get_json(&format!("/images/{id}")).await;
    assert_eq!(status["original"]["format"], "png");

    let mut webp = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(32, 16))
        .write_to(
            &mut std::io::Cursor::new(&mut webp),
            image::ImageFormat::WebP,
        )
        .unwrap();
    let response = upload(&app, &webp, "no-extension").await;
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_and_400() {
    let app = spawn_app().await;
    let unknown = "0123456789abcdef0123456789abcdef";
    for path in ["", "/original", "/thumbnail"] {
        error_body(app.get(&format!("/images/{unknown}{path}")).await, 404).await;
        error_body(app.get(&format!("/images/not-an-id{path}")).await, 400).await;
    }
    error_body(
        app.get("/images/..%2F..%2Fetc%2Fpasswd/original").await,
        400,
    )
    .await;
}

#[tokio::test]
async fn hostile_uploads_get_a_clear_4xx_and_nothing_is_stored() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("an empty file", Vec::new(), 422),
        ("text named .jpg", b"just some text, honestly".to_vec(), 415),
        (
            "a GIF",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            415,
        ),
        (
            "a JPEG magic number and garbage",
            b"\xff\xd8\xff\xe0not really".to_vec(),
            422,
        ),
        (
            "a PNG declaring 30000x30000",
            pictures::png_declaring(30_000, 30_000),
            422,
        ),
        ("a PNG declaring 0x10", pictures::png_declaring(0, 10), 422),
    ];
    for (what, bytes, status) in cases {
        let body = error_body(upload(&app, &bytes, "x.jpg").await, status).await;
        eprintln!("{what}: {body}");
    }
    let blobs = app.dir.path().join("blobs").join("originals");
    let stored = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0, "a refused upload left a file behind");
}

#[tokio::test]
async fn a_huge_canvas_is_refused_by_the_pixel_limit_with_the_numbers() {
    let app = spawn_app_with(|s| s.images.max_pixels = 1000).await;
    let body = error_body(upload(&app, &pictures::jpeg(40, 30), "a.jpg").await, 422).await;
    assert!(
        body["errors"]["file"].as_str().unwrap().contains("40x30"),
        "{body}"
    );
    let response = upload(&app, &pictures::jpeg(20, 20), "b.jpg").await;
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_declared_or_streamed() {
    let app = spawn_app_with(|s| s.images.max_upload_bytes = 64 * 1024).await;
    let big = pictures::jpeg(2000, 2000);
    assert!(big.len() > 64 * 1024);
    error_body(upload(&app, &big, "big.jpg").await, 413).await;

    // Chunked, so no Content-Length warns the server in advance.
    let mut body =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n"
            .to_vec();
    body.extend(&big[..100 * 1024]);
    body.extend(b"\r\n--XyZ--\r\n");
    let mut request = b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for chunk in body.chunks(8192) {
        request.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        request.extend(chunk);
        request.extend(b"\r\n");
    }
    request.extend(b"0\r\n\r\n");
    let answer = raw_http(&app, &request).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"message\""), "{answer}");
    // The api is still there.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_form_without_the_file_field_with_two_or_with_another_field_is_422() {
    let app = spawn_app().await;
    let response = app
        .request(Method::POST, "/images")
        .header("content-type", "multipart/form-data; boundary=X")
        .body("--X--\r\n")
        .fetch()
        .await;
    let body = error_body(response, 422).await;
    assert_eq!(body["errors"]["file"], "is required");

    let other = pictures::form(&pictures::jpeg(10, 10), "a.jpg").text("picture", "nope");
    let response = app
        .request(Method::POST, "/images")
        .multipart(other)
        .fetch()
        .await;
    let body = error_body(response, 422).await;
    assert_eq!(body["errors"]["picture"], "is not a field of an upload");

    let jpeg = pictures::jpeg(10, 10);
    let two = pictures::form(&jpeg, "a.jpg").part(
        "file",
        reqwest::multipart::Part::bytes(jpeg.clone()).file_name("b.jpg"),
    );
    error_for(app.request(Method::POST, "/images").multipart(two), 422).await;
}

#[tokio::test]
async fn a_body_that_is_not_a_multipart_form_is_415_or_400() {
    let app = spawn_app().await;
    error_for(
        app.request(Method::POST, "/images")
            .json(&serde_json::json!({"file": "aGVsbG8="})),
        415,
    )
    .await;

    let response = app
        .request(Method::POST, "/images")
        .header("content-type", "multipart/form-data; boundary=abc")
        .body("--abc\r\nthis is not a part header\r\n\r\nzzz")
        .fetch()
        .await;
    error_body(response, 400).await;
}

#[tokio::test]
async fn a_hostile_file_name_never_reaches_the_disk() {
    let app = spawn_app().await;
    let accepted = {
        let response = upload(&app, &pictures::jpeg(16, 16), "../../../../tmp/evil.jpg").await;
        assert_eq!(response.status(), 202);
        response.json::<Value>().await.unwrap()
    };
    let id = accepted["job_id"].as_str().unwrap();
    let stored: Vec<String> = walk(&app.dir.path().join("blobs"));
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].ends_with(id), "{stored:?}");
    assert!(!stored.iter().any(|p| p.contains("evil")));
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path.display().to_string());
        }
    }
    files
}

#[tokio::test]
async fn the_upload_page_is_served_at_the_root() {
    let app = spawn_app().await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("<form") && page.contains("type=\"file\"") && page.contains("/images"));
}

/// With one upload slot, a second upload waits (its body unread) until the first is done,
/// while the rest of the API keeps answering.
#[tokio::test]
async fn uploads_beyond_the_concurrency_limit_wait_their_turn() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.images.max_concurrent_uploads = 1).await;
    let jpeg = pictures::jpeg(64, 64);
    let mut body =
        b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n"
            .to_vec();
    body.extend(&jpeg);
    body.extend(b"\r\n--B--\r\n");
    let head = format!(
        "POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.key,
        body.len()
    );
    // The first upload holds the slot: its body arrives in two parts.
    let mut first = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    first.write_all(head.as_bytes()).await.unwrap();
    first.write_all(&body[..100]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let second = tokio::spawn({
        let (client, url, jpeg) = (app.client.clone(), app.url("/images"), jpeg.clone());
        async move {
            let response = client
                .post(url)
                .multipart(form(&jpeg, "b.jpg"))
                .send()
                .await;
            (std::time::Instant::now(), response.unwrap().status())
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "the second upload did not wait for the slot"
    );
    assert_eq!(app.get("/healthz").await.status(), 200);

    first.write_all(&body[100..]).await.unwrap();
    let mut answer = Vec::new();
    first.read_to_end(&mut answer).await.unwrap();
    let first_done = std::time::Instant::now();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 202"));
    let (second_done, status) = second.await.unwrap();
    assert_eq!(status, 202);
    assert!(second_done >= first_done);
}

/// An upload that waits longer than `images.upload_wait_ms` for its turn is answered 503 JSON
/// with `Retry-After`, instead of holding the connection until the lb gives up on the replica.
#[tokio::test]
async fn an_upload_that_waits_too_long_for_its_turn_is_told_to_retry() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(|s| {
        s.images.max_concurrent_uploads = 1;
        s.images.upload_wait_ms = 300;
    })
    .await;
    // The first upload takes the only slot and keeps it: its body never ends.
    let mut first = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n\
         Authorization: Bearer {}\r\nContent-Length: 100000\r\n\r\n--B\r\n",
        app.key
    );
    first.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let jpeg = pictures::jpeg(64, 64);
    let response = app
        .request(Method::POST, "/images")
        .multipart(form(&jpeg, "b.jpg"))
        .fetch()
        .await;
    let waited = started.elapsed();
    assert_eq!(response.headers()["retry-after"], "1");
    let body = error_body(response, 503).await;
    assert!(
        body["message"].as_str().unwrap().contains("try again"),
        "{body}"
    );
    assert!(
        waited >= Duration::from_millis(300),
        "answered after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    drop(first);
}

/// `DELETE /images/{id}` removes the record and both files, so space can be reclaimed; a second
/// delete answers 404, and a malformed id 400.
#[tokio::test]
async fn a_deleted_image_is_gone_with_its_files() {
    let app = spawn_app().await;
    let id = upload_ok(&app, &pictures::jpeg(64, 64)).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let blobs = app.dir.path().join("blobs");
    assert_eq!(walk(&blobs.join("originals")).len(), 1);
    let deleted = app.delete(&format!("/images/{id}")).await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(
        deleted.json::<Value>().await.unwrap()["message"],
        "Image deleted successfully"
    );
    error_body(app.get(&format!("/images/{id}")).await, 404).await;
    error_body(app.get(&format!("/images/{id}/original")).await, 404).await;
    assert!(
        walk(&blobs.join("originals")).is_empty(),
        "the original is left"
    );
    error_body(app.delete(&format!("/images/{id}")).await, 404).await;
    error_body(app.delete("/images/not-an-id").await, 400).await;
}
