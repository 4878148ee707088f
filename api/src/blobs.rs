//! Where image files are kept. The interface is a key-value store of whole files so that an
//! S3-compatible store can stand beside the directory one; keys are built from image ids only,
//! so no user-supplied name ever reaches a path.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use std::io::Write;

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio_util::io::ReaderStream;

use crate::images::ImageId;

/// Which file of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKey {
    Original(ImageId),
    Thumbnail(ImageId),
}

impl BlobKey {
    /// `originals/ab/ab12…`: two-character fan-out keeps directories small.
    fn relative_path(&self) -> PathBuf {
        let (kind, id) = match self {
            Self::Original(id) => ("originals", id),
            Self::Thumbnail(id) => ("thumbnails", id),
        };
        let id = id.to_string();
        PathBuf::from(kind).join(&id[..2]).join(id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The disk (or quota) holding the files is full.
    #[error("blob store: no space left")]
    Full,
    #[error("blob store: {0:#}")]
    Other(#[from] anyhow::Error),
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `key`, replacing what was there; readers see the old file or the
    /// new one, never a part.
    async fn put(&self, key: BlobKey, bytes: Bytes) -> Result<(), BlobError>;

    /// The whole file in memory (the worker decodes it whole anyway).
    async fn get(&self, key: BlobKey) -> Result<Option<Vec<u8>>, BlobError>;

    /// The file as a stream of chunks, with its length: what one reader holds in memory does
    /// not grow with the file's size.
    async fn read(&self, key: BlobKey) -> Result<Option<Blob>, BlobError>;

    /// Removes the file if present.
    async fn delete(&self, key: BlobKey) -> Result<(), BlobError>;
}

/// What a reader of a file holds at a time.
const CHUNK: usize = 64 * 1024;

/// A stored file being read.
pub struct Blob {
    pub len: u64,
    pub chunks: BoxStream<'static, std::io::Result<Bytes>>,
}

/// Files under one directory (a local folder or a shared volume).
pub struct DirBlobStore {
    root: PathBuf,
}

impl DirBlobStore {
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(root.join("tmp"))
            .with_context(|| format!("creating {}", root.display()))?;
        Ok(Self {
            root: root.to_owned(),
        })
    }
}

/// Written aside, flushed to disk, then renamed into place: a crash leaves the old file or the
/// whole new one, and two workers writing the same thumbnail cannot mix bytes.
fn write_atomically(temporary: &Path, path: &Path, bytes: &[u8]) -> Result<(), BlobError> {
    let parent = path.parent().expect("blob paths have a parent");
    let written = (|| {
        std::fs::create_dir_all(parent)?;
        let mut file = std::fs::File::create(temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(temporary, path)?;
        // The rename is durable once the folder that now names the file is on disk.
        std::fs::File::open(parent)?.sync_all()
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(temporary);
        if matches!(
            error.kind(),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded
        ) {
            return Err(BlobError::Full);
        }
        return Err(anyhow::Error::new(error)
            .context(format!("writing {}", path.display()))
            .into());
    }
    Ok(())
}

#[async_trait]
impl BlobStore for DirBlobStore {
    async fn put(&self, key: BlobKey, bytes: Bytes) -> Result<(), BlobError> {
        let path = self.root.join(key.relative_path());
        let temporary = self
            .root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string());
        // One blocking task for the whole write: tokio::fs would hop threads per call.
        tokio::task::spawn_blocking(move || write_atomically(&temporary, &path, &bytes))
            .await
            .context("the blob writer stopped")??;
        Ok(())
    }

    async fn get(&self, key: BlobKey) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.root.join(key.relative_path());
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(anyhow::Error::new(error)
                .context(format!("reading {}", path.display()))
                .into()),
        }
    }

    async fn read(&self, key: BlobKey) -> Result<Option<Blob>, BlobError> {
        let path = self.root.join(key.relative_path());
        let opened = async {
            let file = tokio::fs::File::open(&path).await?;
            let len = file.metadata().await?.len();
            Ok::<_, std::io::Error>(Blob {
                len,
                chunks: ReaderStream::with_capacity(file, CHUNK).boxed(),
            })
        };
        match opened.await {
            Ok(blob) => Ok(Some(blob)),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(anyhow::Error::new(error)
                .context(format!("reading {}", path.display()))
                .into()),
        }
    }

    async fn delete(&self, key: BlobKey) -> Result<(), BlobError> {
        let path = self.root.join(key.relative_path());
        match tokio::fs::remove_file(&path).await {
            Err(error) if error.kind() != ErrorKind::NotFound => Err(anyhow::Error::new(error)
                .context(format!("removing {}", path.display()))
                .into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_round_trip_by_key_and_vanish_on_delete() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = DirBlobStore::open(dir.path()).unwrap();
        let id = ImageId::generate();
        assert_eq!(blobs.get(BlobKey::Original(id)).await.unwrap(), None);
        let put = |key, bytes: &'static [u8]| blobs.put(key, Bytes::from_static(bytes));
        put(BlobKey::Original(id), b"first").await.unwrap();
        put(BlobKey::Original(id), b"second").await.unwrap();
        put(BlobKey::Thumbnail(id), b"small").await.unwrap();
        assert_eq!(
            blobs.get(BlobKey::Original(id)).await.unwrap().unwrap(),
            b"second"
        );
        assert_eq!(
            blobs.get(BlobKey::Thumbnail(id)).await.unwrap().unwrap(),
            b"small"
        );
        let text = id.to_string();
        assert!(
            dir.path()
                .join("originals")
                .join(&text[..2])
                .join(&text)
                .is_file()
        );
        blobs.delete(BlobKey::Original(id)).await.unwrap();
        blobs.delete(BlobKey::Original(id)).await.unwrap();
        assert_eq!(blobs.get(BlobKey::Original(id)).await.unwrap(), None);
        let leftovers = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
        assert_eq!(leftovers, 0);
    }

    #[tokio::test]
    async fn a_file_is_read_back_in_chunks_with_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = DirBlobStore::open(dir.path()).unwrap();
        let id = ImageId::generate();
        assert!(blobs.read(BlobKey::Original(id)).await.unwrap().is_none());
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        blobs
            .put(BlobKey::Original(id), Bytes::from(bytes.clone()))
            .await
            .unwrap();
        let blob = blobs.read(BlobKey::Original(id)).await.unwrap().unwrap();
        assert_eq!(blob.len, 300_000);
        let chunks: Vec<Bytes> = blob.chunks.map(Result::unwrap).collect().await;
        assert!(chunks.len() > 1, "read in one piece");
        assert_eq!(chunks.concat(), bytes);
    }
}
