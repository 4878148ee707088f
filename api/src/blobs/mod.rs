//! Where image files are kept: a folder, or an S3-compatible bucket (DigitalOcean Spaces, AWS S3,
//! Garage, MinIO) when api replicas and workers are on several machines. Both go through the
//! `object_store` crate (the Apache Arrow project's), which signs S3 requests, retries them with
//! backoff, and streams multipart uploads; keys are built from image ids only, so no
//! user-supplied name ever reaches a path or a key.

mod location;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

pub use self::location::{BlobLocation, S3Location};
use crate::config::ImageSettings;
use crate::images::ImageId;

/// Which file of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKey {
    Original(ImageId),
    Thumbnail(ImageId),
}

impl BlobKey {
    /// `originals/ab/ab12…`: two-character fan-out keeps a folder's directories small.
    fn path(&self, prefix: &Path) -> Path {
        let (kind, id) = match self {
            Self::Original(id) => ("originals", id),
            Self::Thumbnail(id) => ("thumbnails", id),
        };
        let id = id.to_string();
        prefix.clone().join(kind).join(&id[..2]).join(id.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The disk (or quota) holding the files is full.
    #[error("blob store: no space left")]
    Full,
    /// The object store refused the credentials: a setting to fix, not a moment to wait out.
    #[error(
        "the blob store refused the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or \
         images.blob_access_key_id / images.blob_secret_access_key): {0}"
    )]
    Denied(String),
    /// Unreachable, timed out, or failing: worth trying again later.
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
}

impl From<object_store::Error> for BlobError {
    fn from(error: object_store::Error) -> Self {
        use object_store::Error::{PermissionDenied, Unauthenticated};
        if matches!(error, PermissionDenied { .. } | Unauthenticated { .. }) {
            return Self::Denied(error.to_string());
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(cause) = source {
            if let Some(io) = cause.downcast_ref::<std::io::Error>()
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
            {
                return Self::Full;
            }
            source = cause.source();
        }
        Self::Unavailable(error.to_string())
    }
}

/// Parts of a multipart upload: S3's smallest, so an upload holds a few of them in memory
/// whatever the file's size. A smaller file is sent in one request.
const PART: usize = 5 * 1024 * 1024;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// A stored file being read.
pub struct Blob {
    pub len: u64,
    pub chunks: BoxStream<'static, std::io::Result<Bytes>>,
}

/// The files of every image, wherever `images.blob_url` puts them.
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// Where the files are, safe to log.
    description: String,
}

impl BlobStore {
    /// Opens the folder (creating it) or the bucket. A bucket is asked for one missing key so
    /// that refused credentials stop the process at start with the settings to fix; an
    /// unreachable one is only warned about: orders do not need it.
    pub async fn open(settings: &ImageSettings) -> Result<Self, BlobError> {
        let location = BlobLocation::parse(&settings.blob_url)
            .map_err(|why| BlobError::Unavailable(format!("images.blob_url {why}")))?;
        match location {
            BlobLocation::Folder(folder) => Self::folder(&folder),
            BlobLocation::S3(s3) => {
                let blobs = Self::s3(&s3, settings)?;
                blobs.check_credentials().await?;
                Ok(blobs)
            }
        }
    }

    /// Asks for a key that is not there: refused credentials are an error; an unreachable
    /// bucket only a warning.
    async fn check_credentials(&self) -> Result<(), BlobError> {
        let probe = self.prefix.clone().join("readiness-probe");
        match self.store.head(&probe).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => match BlobError::from(error) {
                denied @ BlobError::Denied(_) => Err(denied),
                other => {
                    tracing::warn!(blobs = %self.description, error = %other,
                        "the blob store did not answer at start; uploads will fail until it does");
                    Ok(())
                }
            },
        }
    }

    /// Files under a local folder, each written aside, flushed to disk and renamed into place:
    /// a crash leaves the old file or the whole new one.
    pub fn folder(folder: &std::path::Path) -> Result<Self, BlobError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            BlobError::Unavailable(format!("creating {}: {e}", folder.display()))
        };
        std::fs::create_dir_all(folder).map_err(|e| unavailable(&e))?;
        let store = LocalFileSystem::new_with_prefix(folder)
            .map_err(|e| unavailable(&e))?
            .with_fsync(true);
        Ok(Self {
            store: Arc::new(store),
            prefix: Path::default(),
            description: folder.display().to_string(),
        })
    }

    fn s3(s3: &S3Location, settings: &ImageSettings) -> Result<Self, BlobError> {
        let timeout = Duration::from_millis(settings.blob_timeout_ms);
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&s3.bucket)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(timeout)
                    .with_connect_timeout(timeout.min(Duration::from_secs(2))),
            )
            // A request is retried with backoff within the time limit, so that an unreachable
            // store answers the client (503) within it.
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: timeout,
            });
        if let Some(endpoint) = &s3.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &s3.region {
            builder = builder.with_region(region);
        }
        if !settings.blob_access_key_id.is_empty() {
            builder = builder
                .with_access_key_id(&settings.blob_access_key_id)
                .with_secret_access_key(&settings.blob_secret_access_key);
        } else if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            // Without keys the crate would ask a cloud's instance-metadata address, which a
            // droplet does not have.
            return Err(BlobError::Denied(
                "no access key: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
            ));
        }
        let store = builder
            .build()
            .map_err(|e| BlobError::Unavailable(format!("images.blob_url: {e}")))?;
        let mut description = format!("s3://{}/{}", s3.bucket, s3.prefix);
        if let Some(endpoint) = &s3.endpoint {
            description.push_str(&format!(" at {endpoint}"));
        }
        Ok(Self {
            store: Arc::new(store),
            prefix: Path::from(s3.prefix.as_str()),
            description,
        })
    }

    /// Where the files are, safe to log.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Stores `bytes` under `key` in one request, replacing what was there; readers see the
    /// old file or the new one, never a part.
    pub async fn put(&self, key: BlobKey, bytes: Bytes) -> Result<(), BlobError> {
        self.store
            .put(&key.path(&self.prefix), bytes.into())
            .await?;
        Ok(())
    }

    /// A file written piece by piece ([`BlobWriter::write`]), visible once
    /// [`BlobWriter::finish`]ed.
    pub fn writer(&self, key: BlobKey) -> BlobWriter {
        BlobWriter {
            inner: BufWriter::with_capacity(self.store.clone(), key.path(&self.prefix), PART)
                .with_max_concurrency(PARTS_IN_FLIGHT),
        }
    }

    /// The whole file in memory (the worker decodes it whole anyway).
    pub async fn get(&self, key: BlobKey) -> Result<Option<Bytes>, BlobError> {
        match self.store.get(&key.path(&self.prefix)).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The file as a stream of chunks, with its length: what one reader holds in memory does
    /// not grow with the file's size.
    pub async fn read(&self, key: BlobKey) -> Result<Option<Blob>, BlobError> {
        match self.store.get(&key.path(&self.prefix)).await {
            Ok(found) => Ok(Some(Blob {
                len: found.meta.size,
                chunks: found
                    .into_stream()
                    .map(|chunk| chunk.map_err(std::io::Error::other))
                    .boxed(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes the file if present.
    pub async fn delete(&self, key: BlobKey) -> Result<(), BlobError> {
        match self.store.delete(&key.path(&self.prefix)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

/// A file being stored: small ones in one request, larger ones as a multipart upload of
/// [`PART`]-sized parts.
pub struct BlobWriter {
    inner: BufWriter,
}

impl BlobWriter {
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        Ok(self.inner.put(chunk).await?)
    }

    /// Completes the file: from now on readers see it whole.
    pub async fn finish(mut self) -> Result<(), BlobError> {
        use tokio::io::AsyncWriteExt;
        self.inner.shutdown().await.map_err(|error| {
            match error
                .into_inner()
                .map(|e| e.downcast::<object_store::Error>())
            {
                Some(Ok(error)) => BlobError::from(*error),
                Some(Err(other)) => BlobError::Unavailable(other.to_string()),
                None => BlobError::Unavailable("the upload did not complete".into()),
            }
        })
    }

    /// Gives up: a multipart upload's parts are removed; nothing becomes visible.
    pub async fn abort(mut self) {
        if let Err(error) = self.inner.abort().await {
            tracing::warn!(%error, "an abandoned upload's parts could not be removed");
        }
    }
}
