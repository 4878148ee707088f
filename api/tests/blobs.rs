//! The blob store's behaviour, written once and run on a folder and on a real S3-compatible
//! server (Garage, started by `infra/test`), and what a bucket that cannot be used does.

use std::time::{Duration, Instant};

use api::blobs::{BlobError, BlobKey, BlobStore};
use api::config::{ImageSettings, Settings};
use api::images::ImageId;
use bytes::Bytes;
use futures_util::StreamExt;
use harness::s3::S3Bucket;

/// A pattern that shows a misplaced or missing byte.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 251) as u8).wrapping_add(seed))
        .collect()
}

async fn read_all(blobs: &BlobStore, key: BlobKey) -> Option<(u64, Vec<u8>, usize)> {
    let blob = blobs.read(key).await.unwrap()?;
    let chunks: Vec<Bytes> = blob.chunks.map(Result::unwrap).collect().await;
    Some((blob.len, chunks.concat(), chunks.len()))
}

async fn files_round_trip_by_key_and_vanish_on_delete(blobs: &BlobStore) {
    let id = ImageId::generate();
    let original = BlobKey::Original(id);
    assert!(blobs.get(original).await.unwrap().is_none());
    assert!(blobs.read(original).await.unwrap().is_none());
    blobs
        .put(original, Bytes::from_static(b"first"))
        .await
        .unwrap();
    blobs
        .put(original, Bytes::from_static(b"second"))
        .await
        .unwrap();
    blobs
        .put(BlobKey::Thumbnail(id), Bytes::from_static(b"small"))
        .await
        .unwrap();
    assert_eq!(&blobs.get(original).await.unwrap().unwrap()[..], b"second");
    assert_eq!(
        &blobs.get(BlobKey::Thumbnail(id)).await.unwrap().unwrap()[..],
        b"small"
    );
    // Another image's keys are its own.
    assert!(
        blobs
            .get(BlobKey::Original(ImageId::generate()))
            .await
            .unwrap()
            .is_none()
    );
    blobs.delete(original).await.unwrap();
    blobs.delete(original).await.unwrap();
    assert!(blobs.get(original).await.unwrap().is_none());
    assert!(blobs.get(BlobKey::Thumbnail(id)).await.unwrap().is_some());
}

async fn a_file_is_read_back_in_chunks_with_its_length(blobs: &BlobStore) {
    let key = BlobKey::Original(ImageId::generate());
    let bytes = pattern(3_000_000, 7);
    blobs.put(key, Bytes::from(bytes.clone())).await.unwrap();
    let (len, read, chunks) = read_all(blobs, key).await.unwrap();
    assert_eq!(len, 3_000_000);
    assert!(chunks > 1, "read in one piece");
    assert!(read == bytes, "the bytes read back differ");
}

/// Past one part (5 MiB) the writer switches to a multipart upload; nothing is visible before
/// it is finished.
async fn a_large_file_streams_in_and_appears_whole_when_finished(blobs: &BlobStore) {
    let key = BlobKey::Original(ImageId::generate());
    let bytes = pattern(12 * 1024 * 1024 + 12_345, 3);
    let mut writer = blobs.writer(key);
    for chunk in bytes.chunks(64 * 1024) {
        writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert!(blobs.get(key).await.unwrap().is_none(), "visible early");
    writer.finish().await.unwrap();
    let (len, read, _) = read_all(blobs, key).await.unwrap();
    assert_eq!(len, bytes.len() as u64);
    assert!(read == bytes, "the bytes read back differ");
}

async fn a_small_file_written_in_pieces_is_stored(blobs: &BlobStore) {
    let key = BlobKey::Thumbnail(ImageId::generate());
    let mut writer = blobs.writer(key);
    writer.write(Bytes::from_static(b"thumb")).await.unwrap();
    writer.write(Bytes::from_static(b"nail")).await.unwrap();
    writer.finish().await.unwrap();
    assert_eq!(&blobs.get(key).await.unwrap().unwrap()[..], b"thumbnail");
}

async fn an_abandoned_upload_leaves_nothing(blobs: &BlobStore) {
    for len in [1_000, 7 * 1024 * 1024] {
        let key = BlobKey::Original(ImageId::generate());
        let mut writer = blobs.writer(key);
        writer.write(Bytes::from(pattern(len, 1))).await.unwrap();
        writer.abort().await;
        assert!(blobs.get(key).await.unwrap().is_none(), "{len} bytes kept");
    }
}

async fn suite(blobs: &BlobStore) {
    files_round_trip_by_key_and_vanish_on_delete(blobs).await;
    a_file_is_read_back_in_chunks_with_its_length(blobs).await;
    a_large_file_streams_in_and_appears_whole_when_finished(blobs).await;
    a_small_file_written_in_pieces_is_stored(blobs).await;
    an_abandoned_upload_leaves_nothing(blobs).await;
}

fn s3_settings(bucket: &S3Bucket) -> ImageSettings {
    let mut settings = Settings::default().images;
    settings.blob_url = bucket.unique_url();
    settings.blob_access_key_id = bucket.key_id.clone();
    settings.blob_secret_access_key = bucket.secret.clone();
    settings
}

#[tokio::test]
async fn the_suite_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::folder(dir.path()).unwrap();
    suite(&blobs).await;
    // Keys are laid out by kind and id, two-character fan-out: `originals/ab/ab12…`.
    let id = ImageId::generate();
    blobs
        .put(BlobKey::Original(id), Bytes::from_static(b"x"))
        .await
        .unwrap();
    let text = id.to_string();
    let path = dir.path().join("originals").join(&text[..2]).join(&text);
    assert!(path.is_file(), "{} is missing", path.display());
}

#[tokio::test]
async fn the_suite_on_s3() {
    let Some(bucket) = S3Bucket::from_env() else {
        return;
    };
    let blobs = BlobStore::open(&s3_settings(&bucket)).await.unwrap();
    assert!(blobs.description().starts_with("s3://"));
    suite(&blobs).await;
}

#[tokio::test]
async fn two_prefixes_in_one_bucket_do_not_see_each_other() {
    let Some(bucket) = S3Bucket::from_env() else {
        return;
    };
    let one = BlobStore::open(&s3_settings(&bucket)).await.unwrap();
    let other = BlobStore::open(&s3_settings(&bucket)).await.unwrap();
    let key = BlobKey::Original(ImageId::generate());
    one.put(key, Bytes::from_static(b"mine")).await.unwrap();
    assert!(other.get(key).await.unwrap().is_none());
}

#[tokio::test]
async fn refused_credentials_stop_the_start_naming_the_setting_not_the_secret() {
    let Some(bucket) = S3Bucket::from_env() else {
        return;
    };
    let mut settings = s3_settings(&bucket);
    settings.blob_secret_access_key = "0".repeat(64);
    let error = match BlobStore::open(&settings).await {
        Ok(_) => panic!("a wrong secret was accepted"),
        Err(error) => error,
    };
    assert!(matches!(error, BlobError::Denied(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("images.blob_secret_access_key"),
        "{message}"
    );
    assert!(!message.contains(&"0".repeat(64)), "{message}");
    assert!(!message.contains(&bucket.secret), "{message}");
}

/// Nothing listens at the endpoint: every operation fails as unavailable within the time limit
/// (retries included), and the store still opens (orders do not need it).
#[tokio::test]
async fn an_unreachable_bucket_fails_each_operation_within_its_time_limit() {
    let port = harness::free_port();
    let mut settings = Settings::default().images;
    settings.blob_url = format!("s3://shop?endpoint=http://127.0.0.1:{port}&region=garage");
    settings.blob_access_key_id = "GK0123456789abcdef01234567".into();
    settings.blob_secret_access_key = "a".repeat(64);
    settings.blob_timeout_ms = 1000;
    let blobs = BlobStore::open(&settings).await.unwrap();
    let key = BlobKey::Original(ImageId::generate());
    let started = Instant::now();
    let put = blobs.put(key, Bytes::from_static(b"x")).await;
    assert!(matches!(put, Err(BlobError::Unavailable(_))), "{put:?}");
    let read = blobs.get(key).await;
    assert!(matches!(read, Err(BlobError::Unavailable(_))), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn s3_without_an_access_key_is_refused_at_start() {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return;
    }
    let mut settings = Settings::default().images;
    settings.blob_url = "s3://shop?endpoint=http://127.0.0.1:9&region=garage".into();
    let error = match BlobStore::open(&settings).await {
        Ok(_) => panic!("opened without a key"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("AWS_ACCESS_KEY_ID"), "{error}");
}
