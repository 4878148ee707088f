//! The image path end to end with real processes: the `api` binary, `worker` binaries and, for
//! the Redis queue, a real `redis-server`. The store follows `ORDERS_TEST_BACKEND`.

mod common;

use std::time::{Duration, Instant};

use image::GenericImageView;
use reqwest::Client;
use serde_json::Value;
use tempfile::TempDir;

use harness::pictures::{self, decode, form};
use harness::s3::S3Bucket;
use harness::{Api, Fetch, RedisServer, Worker};

use crate::common::{client, error_body};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Queue {
    Sqlite,
    Redis,
}

struct Pipeline {
    dir: TempDir,
    env: Vec<(&'static str, String)>,
    redis: Option<RedisServer>,
    api: Api,
    http: Client,
}

impl Pipeline {
    /// `None` when the queue's server is not installed (outside CI only).
    fn start(queue: Queue, extra: &[(&'static str, &str)]) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut env: Vec<(&'static str, String)> = vec![
            (
                "APP__IMAGES__BLOB_URL",
                dir.path().join("blobs").display().to_string(),
            ),
            ("APP__QUEUE__LEASE_MS", "1500".into()),
            ("APP__QUEUE__RETRY_BASE_MS", "50".into()),
            ("APP__QUEUE__RETRY_MAX_MS", "200".into()),
        ];
        let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
        if harness::mongo::selected() {
            let uri = harness::mongo::uri().expect("ORDERS_TEST_BACKEND=mongodb needs a URI");
            env.push(("APP__STORE__URI", uri));
            env.push(("APP__STORE__DATABASE", harness::mongo::unique_database()));
            env.push(("APP__QUEUE__URL", sqlite("queue.db")));
        } else {
            env.push(("APP__STORE__URI", sqlite("orders.db")));
        }
        let redis = match queue {
            Queue::Sqlite => None,
            Queue::Redis => {
                let server = RedisServer::start(&dir.path().join("redis"))?;
                env.retain(|(key, _)| *key != "APP__QUEUE__URL");
                env.push(("APP__QUEUE__URL", server.url()));
                Some(server)
            }
        };
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let api = Api::start(dir.path(), "api-1", &env);
        Some(Self {
            dir,
            env,
            redis,
            api,
            http: client(),
        })
    }

    fn worker(&self, name: &str) -> Worker {
        Worker::start(self.dir.path(), name, &self.env)
    }

    async fn upload(&self, bytes: &[u8]) -> reqwest::Response {
        self.http
            .post(self.api.url("/images"))
            .multipart(form(bytes, "upload.jpg"))
            .fetch()
            .await
    }

    async fn upload_ok(&self, bytes: &[u8]) -> String {
        let response = self.upload(bytes).await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        body["job_id"].as_str().unwrap().to_owned()
    }

    async fn status(&self, id: &str) -> Value {
        let response = self
            .http
            .get(self.api.url(&format!("/images/{id}")))
            .fetch()
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Polls until the image is `done` or `failed` (bounded).
    async fn settled(&self, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status(id).await;
            if status["status"] == "done" || status["status"] == "failed" {
                return status;
            }
            assert!(Instant::now() < deadline, "image {id} still {status}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn thumbnail(&self, id: &str) -> (String, Vec<u8>) {
        let response = self
            .http
            .get(self.api.url(&format!("/images/{id}/thumbnail")))
            .fetch()
            .await;
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (content_type, response.bytes().await.unwrap().to_vec())
    }
}

/// Settings that put the files in a fresh prefix of the S3 test server's bucket, or `None`
/// (skip) without one.
fn s3_blobs() -> Option<Vec<(&'static str, String)>> {
    let bucket = S3Bucket::from_env()?;
    Some(vec![
        ("APP__IMAGES__BLOB_URL", bucket.unique_url()),
        ("APP__IMAGES__BLOB_ACCESS_KEY_ID", bucket.key_id),
        ("APP__IMAGES__BLOB_SECRET_ACCESS_KEY", bucket.secret),
    ])
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn thumbnails_are_made(queue: Queue) {
    let Some(pipeline) = Pipeline::start(queue, &[]) else {
        return;
    };
    thumbnails_are_made_by(&pipeline).await;
}

async fn thumbnails_are_made_by(pipeline: &Pipeline) {
    let _worker = pipeline.worker("worker-1");
    let photo = pipeline.upload_ok(&pictures::jpeg(1600, 1200)).await;
    let logo = pipeline.upload_ok(&pictures::png_with_alpha(800)).await;
    let sideways = pipeline.upload_ok(&pictures::sideways_jpeg(400, 200)).await;

    let status = pipeline.settled(&photo, Duration::from_secs(30)).await;
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["attempts"], 1);
    assert_eq!(status["thumbnail"]["width"], 300);
    assert_eq!(status["thumbnail"]["height"], 225);
    assert_eq!(
        status["links"]["thumbnail"],
        format!("/images/{photo}/thumbnail")
    );
    let (content_type, bytes) = pipeline.thumbnail(&photo).await;
    assert_eq!(content_type, "image/jpeg");
    assert_eq!(status["thumbnail"]["bytes"], bytes.len());
    assert_eq!(decode(&bytes).dimensions(), (300, 225));

    let status = pipeline.settled(&logo, Duration::from_secs(30)).await;
    assert_eq!(status["status"], "done", "{status}");
    let (content_type, bytes) = pipeline.thumbnail(&logo).await;
    assert_eq!(content_type, "image/png");
    let logo = decode(&bytes).into_rgba8();
    assert_eq!(logo.dimensions(), (300, 300));
    assert_eq!(
        logo.get_pixel(2, 2).0[3],
        0,
        "the transparent corner stays transparent"
    );
    assert_eq!(logo.get_pixel(150, 150).0, [0, 200, 0, 255]);

    // Stored 400x200 red over blue, EXIF "rotate 90° clockwise": shown 200x400, red on the right.
    let status = pipeline.settled(&sideways, Duration::from_secs(30)).await;
    assert_eq!(status["status"], "done", "{status}");
    let (_, bytes) = pipeline.thumbnail(&sideways).await;
    let upright = decode(&bytes).into_rgb8();
    assert_eq!(upright.dimensions(), (150, 300));
    let right = upright.get_pixel(130, 150).0;
    let left = upright.get_pixel(20, 150).0;
    assert!(
        right[0] > 200 && right[2] < 60,
        "right side {right:?} should be red"
    );
    assert!(
        left[2] > 200 && left[0] < 60,
        "left side {left:?} should be blue"
    );
}

#[tokio::test]
async fn thumbnails_are_made_end_to_end_with_the_sqlite_queue() {
    thumbnails_are_made(Queue::Sqlite).await;
}

#[tokio::test]
async fn thumbnails_are_made_end_to_end_with_the_redis_queue() {
    thumbnails_are_made(Queue::Redis).await;
}

/// As on several machines: the files in an S3 bucket (Garage), the jobs in Redis. The
/// originals are read back whole through the api, as stored.
#[tokio::test]
async fn thumbnails_are_made_end_to_end_with_the_files_on_s3() {
    let Some(s3) = s3_blobs() else {
        return;
    };
    let Some(pipeline) = Pipeline::start(Queue::Redis, &borrowed(&s3)) else {
        return;
    };
    thumbnails_are_made_by(&pipeline).await;
    let _worker = pipeline.worker("worker-2");
    // Larger than one multipart part: streamed to the bucket in parts, and back.
    let big = pictures::noise_png(1600);
    assert!(big.len() > 6 * 1024 * 1024, "{} bytes", big.len());
    let id = pipeline.upload_ok(&big).await;
    let response = pipeline
        .http
        .get(pipeline.api.url(&format!("/images/{id}/original")))
        .fetch()
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.unwrap() == big,
        "the original differs"
    );
    let status = pipeline.settled(&id, Duration::from_secs(60)).await;
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["original"]["bytes"], big.len());
}

/// With `images.delete_originals_after`, a worker removes an original that long after its
/// thumbnail was made: the file is gone, `GET …/original` answers 410, the record says when,
/// and the thumbnail stays.
#[tokio::test]
async fn originals_are_removed_after_the_retention_time_and_thumbnails_kept() {
    let retention = [("APP__IMAGES__DELETE_ORIGINALS_AFTER", "2s")];
    let Some(pipeline) = Pipeline::start(Queue::Sqlite, &retention) else {
        return;
    };
    let _worker = pipeline.worker("worker-1");
    let id = pipeline.upload_ok(&pictures::jpeg(640, 480)).await;
    let status = pipeline.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["original_removed_at"], Value::Null);
    let original = |id: &str| {
        pipeline
            .http
            .get(pipeline.api.url(&format!("/images/{id}/original")))
            .fetch()
    };
    assert_eq!(original(&id).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let removed = loop {
        let status = pipeline.status(&id).await;
        if !status["original_removed_at"].is_null() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the original is still kept: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(removed["links"].get("original").is_none(), "{removed}");
    let body = error_body(original(&id).await, 410).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("images.delete_originals_after"),
        "{body}"
    );
    let (_, thumbnail) = pipeline.thumbnail(&id).await;
    assert_eq!(decode(&thumbnail).dimensions(), (300, 225));
    let blobs = pipeline.dir.path().join("blobs");
    assert_eq!(count_files(&blobs.join("originals")), 0);
    assert_eq!(count_files(&blobs.join("thumbnails")), 1);
}

/// The worker cannot reach the bucket: its attempts are not counted and the job waits; a worker
/// that can reach it makes the thumbnail. Nothing is failed, nothing lost.
#[tokio::test]
async fn a_bucket_the_worker_cannot_reach_delays_jobs_and_loses_none() {
    let Some(s3) = s3_blobs() else {
        return;
    };
    let Some(pipeline) = Pipeline::start(Queue::Sqlite, &borrowed(&s3)) else {
        return;
    };
    let id = pipeline.upload_ok(&pictures::jpeg(640, 480)).await;
    let mut cut_off = pipeline.env.clone();
    cut_off.push((
        "APP__IMAGES__BLOB_URL",
        format!(
            "s3://nowhere?endpoint=http://127.0.0.1:{}&region=garage",
            harness::free_port()
        ),
    ));
    cut_off.push(("APP__IMAGES__BLOB_TIMEOUT_MS", "300".into()));
    let mut stranded = Worker::start(pipeline.dir.path(), "worker-cut-off", &cut_off);
    stranded
        .process
        .wait_for(|log| (log.matches("not counted as an attempt").count() >= 3).then_some(()));
    let status = pipeline.status(&id).await;
    assert_ne!(status["status"], "failed", "{status}");
    stranded.process.signal("TERM");
    stranded.process.wait_for_exit(Duration::from_secs(15));
    let _worker = pipeline.worker("worker-1");
    let status = pipeline.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["attempts"], 1, "{status}");
}

/// The api's bucket is unreachable: an upload is answered 503 JSON within the time limit, and
/// orders are served meanwhile.
#[tokio::test]
async fn an_unreachable_bucket_is_503_for_uploads_within_its_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let blob_url = format!(
        "s3://shop?endpoint=http://127.0.0.1:{}&region=garage",
        harness::free_port()
    );
    let env = [
        (
            "APP__STORE__URI",
            format!("sqlite://{}", dir.path().join("orders.db").display()),
        ),
        ("APP__IMAGES__BLOB_URL", blob_url),
        ("APP__IMAGES__BLOB_TIMEOUT_MS", "1000".into()),
        ("AWS_ACCESS_KEY_ID", "GK0123456789abcdef01234567".into()),
        ("AWS_SECRET_ACCESS_KEY", "f".repeat(64)),
    ];
    let api = Api::start(dir.path(), "api-1", &env);
    let http = client();
    let started = Instant::now();
    let response = http
        .post(api.url("/images"))
        .multipart(form(&pictures::jpeg(64, 48), "a.jpg"))
        .fetch()
        .await;
    let waited = started.elapsed();
    let body = error_body(response, 503).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("file storage is unavailable"),
        "{body}"
    );
    assert!(waited < Duration::from_secs(8), "answered after {waited:?}");
    let orders = http.get(api.url("/orders")).fetch().await;
    assert_eq!(orders.status(), 200);
}

/// A secret the bucket refuses stops the api at start with the setting to fix; the secret
/// itself is not in what it prints.
#[test]
fn refused_bucket_credentials_stop_the_api_naming_the_setting() {
    let Some(bucket) = S3Bucket::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wrong = "e".repeat(64);
    let output = std::process::Command::new(harness::binary("api"))
        .env_clear()
        .env(
            "APP__STORE__URI",
            format!("sqlite://{}", dir.path().join("orders.db").display()),
        )
        .env("APP__SERVER__LISTEN", "127.0.0.1:0")
        .env("APP__IMAGES__BLOB_URL", bucket.unique_url())
        .env("AWS_ACCESS_KEY_ID", &bucket.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &wrong)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.contains("images.blob_secret_access_key"),
        "{printed}"
    );
    assert!(printed.contains("AWS_SECRET_ACCESS_KEY"), "{printed}");
    assert!(!printed.contains(&wrong), "{printed}");
}

async fn a_broken_picture_fails_at_once_with_the_reason(queue: Queue) {
    let Some(pipeline) = Pipeline::start(queue, &[("APP__QUEUE__MAX_ATTEMPTS", "3")]) else {
        return;
    };
    let worker = pipeline.worker("worker-1");
    // Its header is fine, so the api accepts it; the pixels are not.
    let id = pipeline.upload_ok(&pictures::truncated_jpeg()).await;
    let good = pipeline.upload_ok(&pictures::jpeg(100, 100)).await;
    let status = pipeline.settled(&id, Duration::from_secs(30)).await;
    // The same bytes would fail the same way: no second attempt.
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(status["attempts"], 1);
    assert!(
        status["error"].as_str().unwrap().contains("decoded"),
        "{status}"
    );
    let body = error_body(
        pipeline
            .http
            .get(pipeline.api.url(&format!("/images/{id}/thumbnail")))
            .fetch()
            .await,
        409,
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("could not be made"),
        "{body}"
    );
    // The worker is still working.
    let status = pipeline.settled(&good, Duration::from_secs(30)).await;
    assert_eq!(status["status"], "done");
    assert!(
        worker
            .process
            .output()
            .contains("thumbnail failed for good")
    );
}

#[tokio::test]
async fn a_broken_picture_fails_at_once_with_the_sqlite_queue() {
    a_broken_picture_fails_at_once_with_the_reason(Queue::Sqlite).await;
}

#[tokio::test]
async fn a_broken_picture_fails_at_once_with_the_redis_queue() {
    a_broken_picture_fails_at_once_with_the_reason(Queue::Redis).await;
}

/// 200 jobs, 3 workers, one SIGKILLed mid-run: every image ends `done` with a thumbnail, and
/// each thumbnail file exists once.
async fn no_job_is_lost_when_a_worker_dies(queue: Queue) {
    let Some(pipeline) = Pipeline::start(queue, &[("APP__WORKER__CONCURRENCY", "4")]) else {
        return;
    };
    let picture = pictures::jpeg(2400, 1800);
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(pipeline.upload_ok(&picture).await);
    }
    // One worker first, killed once work is under way and while it holds a job it has started:
    // it is paused (SIGSTOP) until an image is `processing`, which only it can have started.
    // Killing just after a "thumbnail done" line raced on a loaded machine: a job claimed but
    // not yet started is taken over as a first attempt, and nothing showed the takeover.
    let mut first = pipeline.worker("worker-1");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = first.process.output().matches("thumbnail done").count();
        if done >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "worker-1 made no thumbnails");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    loop {
        first.process.signal("STOP");
        let mut holding = false;
        for id in &ids {
            if pipeline.status(id).await["status"] == "processing" {
                holding = true;
                break;
            }
        }
        if holding {
            break;
        }
        first.process.signal("CONT");
        assert!(
            Instant::now() < deadline,
            "worker-1 never held a started job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.process.signal("KILL");
    first.process.wait_for_exit(Duration::from_secs(5));
    let _others: Vec<Worker> = (2..=3)
        .map(|i| pipeline.worker(&format!("worker-{i}")))
        .collect();

    let mut started_twice = 0;
    for id in &ids {
        let status = pipeline.settled(id, Duration::from_secs(120)).await;
        assert_eq!(status["status"], "done", "{status}");
        if status["attempts"].as_u64().unwrap() > 1 {
            started_twice += 1;
        }
    }
    // The killed worker held jobs: each was taken over after its lease and done by another.
    assert!(
        started_twice >= 1,
        "no job was in flight in the killed worker"
    );
    let (thumbnails, partial) = count_thumbnails(&pipeline.dir.path().join("blobs"));
    assert_eq!(thumbnails, 200);
    // The folder store writes `NAME#N` and renames it into place: a write cut by the kill leaves
    // its partial file, which the store never lists or serves. At most one per job it held.
    assert!(partial <= 4, "{partial} partial files");
    for id in ids.iter().step_by(20) {
        let (_, bytes) = pipeline.thumbnail(id).await;
        assert_eq!(decode(&bytes).dimensions(), (300, 225));
    }
    eprintln!("{queue:?}: jobs taken over from the killed worker: {started_twice}");
}

/// Published thumbnails, and partial files a killed write left beside them.
fn count_thumbnails(blobs: &std::path::Path) -> (usize, usize) {
    let mut published = 0;
    let mut partial = 0;
    let mut dirs = vec![blobs.join("thumbnails")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().contains('#') {
                partial += 1;
            } else {
                published += 1;
            }
        }
    }
    (published, partial)
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .map(|p| if p.is_dir() { count_files(&p) } else { 1 })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn no_job_is_lost_when_a_worker_dies_with_the_sqlite_queue() {
    no_job_is_lost_when_a_worker_dies(Queue::Sqlite).await;
}

#[tokio::test]
async fn no_job_is_lost_when_a_worker_dies_with_the_redis_queue() {
    no_job_is_lost_when_a_worker_dies(Queue::Redis).await;
}

#[tokio::test]
async fn a_redis_outage_is_503_and_the_service_recovers_by_itself() {
    let Some(mut pipeline) = Pipeline::start(Queue::Redis, &[]) else {
        return;
    };
    let _worker = pipeline.worker("worker-1");
    let before = pipeline.upload_ok(&pictures::jpeg(64, 64)).await;
    assert_eq!(
        pipeline.settled(&before, Duration::from_secs(30)).await["status"],
        "done"
    );

    pipeline.redis.as_mut().unwrap().stop();
    let started = Instant::now();
    let body = error_body(pipeline.upload(&pictures::jpeg(64, 64)).await, 503).await;
    assert!(
        body["message"].as_str().unwrap().contains("queue"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "503 took {:?}",
        started.elapsed()
    );
    // Orders do not depend on the queue.
    let orders = pipeline.http.get(pipeline.api.url("/orders")).fetch().await;
    assert_eq!(orders.status(), 200);

    pipeline.redis.as_mut().unwrap().restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let response = pipeline.upload(&pictures::jpeg(64, 64)).await;
        if response.status() == 202 {
            break response.json::<Value>().await.unwrap()["job_id"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        assert!(Instant::now() < deadline, "uploads did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = pipeline.settled(&after, Duration::from_secs(30)).await;
    assert_eq!(status["status"], "done", "{status}");
}

#[tokio::test]
async fn a_worker_stops_cleanly_on_sigterm() {
    let Some(pipeline) = Pipeline::start(Queue::Sqlite, &[]) else {
        return;
    };
    let mut worker = pipeline.worker("worker-1");
    let id = pipeline.upload_ok(&pictures::jpeg(800, 600)).await;
    assert_eq!(
        pipeline.settled(&id, Duration::from_secs(30)).await["status"],
        "done"
    );
    let started = Instant::now();
    worker.process.signal("TERM");
    let status = worker.process.wait_for_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(worker.process.output().contains("stopped"));
}

#[test]
fn a_worker_with_a_bad_setting_names_it_and_exits_2() {
    let stderr = harness::refused_start("worker", &[], &[("APP__WORKER__CONCURRENCY", "0")]);
    assert!(stderr.contains("worker.concurrency"), "{stderr}");
}

/// A CA file is for TLS: beside a `redis://` URL it is a mistake named at start; a CA file that
/// cannot be read stops the start naming the setting.
#[test]
fn a_queue_ca_file_needs_rediss_and_must_be_readable() {
    let env = [
        ("APP__QUEUE__URL", "redis://127.0.0.1:9/0"),
        ("APP__QUEUE__TLS_CA_FILE", "ca.crt"),
    ];
    let stderr = harness::refused_start("worker", &[], &env);
    assert!(stderr.contains("queue.tls_ca_file"), "{stderr}");
    assert!(stderr.contains("rediss://"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(harness::binary("worker"))
        .env_clear()
        .env("APP__QUEUE__URL", "rediss://127.0.0.1:9/0")
        .env("APP__QUEUE__TLS_CA_FILE", "missing-ca.crt")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("queue.tls_ca_file"), "{stderr}");
    assert!(stderr.contains("missing-ca.crt"), "{stderr}");
}

/// A worker cannot work without a queue: beside MongoDB with no queue URL it names the setting.
#[test]
fn a_worker_on_mongodb_without_a_queue_url_names_it_and_exits_2() {
    let env = [("APP__STORE__URI", "mongodb://127.0.0.1:9/")];
    let stderr = harness::refused_start("worker", &[], &env);
    assert!(stderr.contains("queue.url"), "{stderr}");
}

/// The api and the worker read Redis's persistence settings and name the risk when the queue
/// would not survive a restart of Redis; with `appendonly yes` they say nothing.
#[test]
fn a_redis_without_persistence_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let Some(volatile) = RedisServer::start_in_memory(&dir.path().join("volatile")) else {
        return;
    };
    let Some(durable) = RedisServer::start(&dir.path().join("durable")) else {
        return;
    };
    let warning = "Redis keeps the job queue in memory only";
    for (name, redis, warned) in [("volatile", &volatile, true), ("durable", &durable, false)] {
        let env = [
            (
                "APP__STORE__URI",
                format!("sqlite://{}", dir.path().join("orders.db").display()),
            ),
            ("APP__QUEUE__URL", redis.url()),
            (
                "APP__IMAGES__BLOB_URL",
                dir.path().join("blobs").display().to_string(),
            ),
        ];
        let mut api = Api::start(dir.path(), &format!("api-{name}"), &env);
        let mut worker = Worker::start(dir.path(), &format!("worker-{name}"), &env);
        for process in [&mut api.process, &mut worker.process] {
            if warned {
                process.wait_for(|log| log.contains(warning).then_some(()));
            } else {
                std::thread::sleep(Duration::from_millis(500));
                assert!(process.warnings().is_empty(), "{}", process.output());
            }
        }
    }
}

/// A worker stopped (SIGTERM) during a job hands it back, and that attempt does not count: a job
/// interrupted by three worker restarts in a row (as many as `queue.max_attempts`) is done by the
/// fourth worker, with one attempt counted, instead of being given up as a poison job.
#[tokio::test]
async fn a_job_handed_back_three_times_is_not_failed() {
    let extra = [("APP__WORKER__SHUTDOWN_TIMEOUT_MS", "1")];
    let Some(pipeline) = Pipeline::start(Queue::Sqlite, &extra) else {
        return;
    };
    let id = pipeline.upload_ok(&pictures::patterned_png(5000)).await;
    for round in 1..=3 {
        let mut worker = pipeline.worker(&format!("worker-{round}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while pipeline.status(&id).await["status"] != "processing" {
            assert!(Instant::now() < deadline, "the job was not started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worker.process.signal("TERM");
        assert!(
            worker
                .process
                .wait_for_exit(Duration::from_secs(10))
                .success()
        );
        let log = worker.process.output();
        assert!(
            log.contains("handing the job back"),
            "round {round}:\n{log}"
        );
        let status = pipeline.status(&id).await;
        assert_eq!(
            (status["status"].as_str(), status["attempts"].as_u64()),
            (Some("queued"), Some(0))
        );
    }
    let _worker = pipeline.worker("worker-4");
    let done = pipeline.settled(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["attempts"], 1);
}

/// A job lost from the queue after its image was stored (SQLite: its row deleted; Redis: its
/// data flushed, as a restart without persistence does) is found by a worker's reconciler and
/// queued again: the image reaches `done`.
async fn a_lost_job_is_queued_again_and_done(queue: Queue) {
    let extra = [("APP__QUEUE__RECONCILE_AFTER_MS", "1000")];
    let Some(pipeline) = Pipeline::start(queue, &extra) else {
        return;
    };
    let id = pipeline.upload_ok(&pictures::jpeg(640, 480)).await;
    match &pipeline.redis {
        Some(redis) => {
            let client = redis::Client::open(redis.url()).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            let () = redis::cmd("FLUSHALL")
                .query_async(&mut connection)
                .await
                .unwrap();
        }
        None => {
            let url = pipeline
                .env
                .iter()
                .find(|(key, _)| *key == "APP__QUEUE__URL")
                .or_else(|| {
                    pipeline
                        .env
                        .iter()
                        .find(|(key, _)| *key == "APP__STORE__URI")
                })
                .map(|(_, url)| url.trim_start_matches("sqlite://").to_owned())
                .unwrap();
            let conn = rusqlite::Connection::open(url).unwrap();
            assert_eq!(conn.execute("DELETE FROM image_jobs", []).unwrap(), 1);
        }
    }
    let worker = pipeline.worker("worker-1");
    let done = pipeline.settled(&id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "done", "{done}");
    let log = worker.process.output();
    assert!(log.contains("its job was lost: queued again"), "{log}");
}

#[tokio::test]
async fn a_lost_job_is_queued_again_and_done_with_the_sqlite_queue() {
    a_lost_job_is_queued_again_and_done(Queue::Sqlite).await;
}

#[tokio::test]
async fn a_lost_job_is_queued_again_and_done_with_the_redis_queue() {
    a_lost_job_is_queued_again_and_done(Queue::Redis).await;
}

/// A picture that takes longer to resize than `worker.job_timeout_ms` fails cleanly, attempt
/// after attempt, and ends `failed` with the reason, instead of holding a worker.
#[tokio::test]
async fn a_job_past_its_time_limit_fails_with_the_reason() {
    let extra = [("APP__WORKER__JOB_TIMEOUT_MS", "1")];
    let Some(pipeline) = Pipeline::start(Queue::Sqlite, &extra) else {
        return;
    };
    let _worker = pipeline.worker("worker-1");
    let id = pipeline.upload_ok(&pictures::patterned_png(3000)).await;
    let settled = pipeline.settled(&id, Duration::from_secs(60)).await;
    assert_eq!(settled["status"], "failed", "{settled}");
    assert_eq!(settled["attempts"], 3);
    let reason = settled["error"].as_str().unwrap();
    assert!(reason.contains("took longer than 1 ms"), "{reason}");
}

/// A picture whose decode would take more memory than `worker.decode_max_bytes` fails at its
/// first attempt with the reason, before any pixel is decoded; the worker goes on.
#[tokio::test]
async fn a_picture_past_the_decode_memory_bound_fails_at_once() {
    let extra = [("APP__WORKER__DECODE_MAX_BYTES", "1048576")];
    let Some(pipeline) = Pipeline::start(Queue::Sqlite, &extra) else {
        return;
    };
    let _worker = pipeline.worker("worker-1");
    let big = pipeline.upload_ok(&pictures::patterned_png(1000)).await;
    let small = pipeline.upload_ok(&pictures::jpeg(100, 100)).await;
    let settled = pipeline.settled(&big, Duration::from_secs(30)).await;
    assert_eq!(settled["status"], "failed", "{settled}");
    assert_eq!(settled["attempts"], 1);
    let reason = settled["error"].as_str().unwrap();
    assert!(reason.contains("worker.decode_max_bytes"), "{reason}");
    let settled = pipeline.settled(&small, Duration::from_secs(30)).await;
    assert_eq!(settled["status"], "done", "{settled}");
}

/// `worker.listen`: the worker answers `/healthz` and `/metrics` (jobs by outcome), and nothing
/// else; an address it cannot bind stops it naming the setting.
#[tokio::test]
async fn a_worker_shows_its_health_and_job_metrics_on_its_listener() {
    let Some(pipeline) = Pipeline::start(Queue::Sqlite, &[("APP__QUEUE__MAX_ATTEMPTS", "1")])
    else {
        return;
    };
    let mut env = pipeline.env.clone();
    env.push(("APP__WORKER__LISTEN", "127.0.0.1:0".into()));
    let mut worker = Worker::start(pipeline.dir.path(), "worker-7", &env);
    let addr = worker.process.wait_for(|log| {
        let (_, rest) = log.split_once("health and metrics on http://")?;
        Some(rest.split_whitespace().next()?.to_owned())
    });
    let done = pipeline.upload_ok(&pictures::jpeg(640, 480)).await;
    let failed = pipeline.upload_ok(&pictures::truncated_jpeg()).await;
    assert_eq!(
        pipeline.settled(&done, Duration::from_secs(30)).await["status"],
        "done"
    );
    assert_eq!(
        pipeline.settled(&failed, Duration::from_secs(30)).await["status"],
        "failed"
    );

    let health: Value = pipeline
        .http
        .get(format!("http://{addr}/healthz"))
        .fetch_json()
        .await;
    assert_eq!(health["instance"], "worker-7", "{health}");
    let metrics = pipeline
        .http
        .get(format!("http://{addr}/metrics"))
        .fetch()
        .await
        .text()
        .await
        .unwrap();
    for line in [
        r#"worker_jobs_total{instance="worker-7",outcome="done"} 1"#,
        r#"worker_jobs_total{instance="worker-7",outcome="failed"} 1"#,
        r#"worker_job_duration_seconds_count{instance="worker-7"} 1"#,
        r#"worker_jobs_running{instance="worker-7"} 0"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    let body = error_body(
        pipeline
            .http
            .get(format!("http://{addr}/images"))
            .fetch()
            .await,
        404,
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("/healthz"),
        "{body}"
    );
    worker.process.kill();

    // The address is taken now by a listener of this test.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    env.retain(|(key, _)| *key != "APP__WORKER__LISTEN");
    env.push((
        "APP__WORKER__LISTEN",
        taken.local_addr().unwrap().to_string(),
    ));
    let output = std::process::Command::new(harness::binary("worker"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(pipeline.dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stderr);
    assert!(printed.contains("worker.listen"), "{printed}");
}
