//! An upload's file field streamed into the blob store as it arrives: the first bytes are held
//! until the picture's header can be read (a file that is no picture is refused before anything
//! is stored), then every chunk goes on to the store. Memory per upload is bounded by the header
//! allowance and the store's part size, whatever the file's size.

use axum::extract::multipart::Field;
use bytes::{Bytes, BytesMut};

use super::upload::{field_error, multipart_error};
use crate::blobs::{BlobKey, BlobStore, BlobWriter};
use crate::http::error::ApiError;
use crate::idempotency::{Fingerprint, FingerprintStream};
use crate::images::{ImageId, Picture, UploadError, UploadLimits, inspect};

/// The header is first looked for once this much has arrived, then at each doubling.
const FIRST_LOOK: usize = 64 * 1024;
/// A header not readable within this many bytes makes the upload unacceptable. JPEG metadata
/// (EXIF, ICC profiles) before the frame header rarely passes 200 KiB.
const HEADER_ALLOWANCE: usize = 2 * 1024 * 1024;

/// A file stored under `Original(id)`.
pub struct Received {
    pub id: ImageId,
    pub picture: Picture,
    pub fingerprint: Fingerprint,
}

/// Streams `field` into the store under a new id. On any failure nothing of it remains.
pub async fn receive(
    blobs: &BlobStore,
    field: &mut Field<'_>,
    limits: UploadLimits,
    body_limit: usize,
) -> Result<Received, ApiError> {
    let id = ImageId::generate();
    let mut incoming = Incoming {
        head: BytesMut::new(),
        next_look: FIRST_LOOK,
        picture: None,
        writer: None,
        digest: Fingerprint::streaming(),
        len: 0,
    };
    match incoming.run(blobs, id, field, limits, body_limit).await {
        Ok(received) => Ok(received),
        Err(error) => {
            if let Some(writer) = incoming.writer.take() {
                writer.abort().await;
            }
            Err(error)
        }
    }
}

struct Incoming {
    head: BytesMut,
    next_look: usize,
    picture: Option<Picture>,
    writer: Option<BlobWriter>,
    digest: FingerprintStream,
    len: u64,
}

impl Incoming {
    async fn run(
        &mut self,
        blobs: &BlobStore,
        id: ImageId,
        field: &mut Field<'_>,
        limits: UploadLimits,
        body_limit: usize,
    ) -> Result<Received, ApiError> {
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| multipart_error(e, body_limit))?
        {
            self.digest.update(&chunk);
            self.len += chunk.len() as u64;
            if let Some(writer) = &mut self.writer {
                writer.write(chunk).await?;
                continue;
            }
            self.head.extend_from_slice(&chunk);
            if self.head.len() >= self.next_look {
                match inspect(&self.head, limits) {
                    Ok(picture) => self.start(blobs, id, picture).await?,
                    // Perhaps cut short: looked at again with more bytes, up to the allowance.
                    Err(UploadError::UnreadableHeader(..))
                        if self.head.len() < HEADER_ALLOWANCE =>
                    {
                        self.next_look = (self.next_look * 2).min(HEADER_ALLOWANCE);
                    }
                    Err(error) => return Err(refusal(error)),
                }
            }
        }
        if self.writer.is_none() {
            // The whole file arrived before its header was looked at (or could be read).
            let picture = inspect(&self.head, limits).map_err(refusal)?;
            self.start(blobs, id, picture).await?;
        }
        let writer = self.writer.take().expect("started above");
        writer.finish().await?;
        let mut picture = self.picture.expect("set with the writer");
        picture.bytes = self.len;
        let digest = std::mem::replace(&mut self.digest, Fingerprint::streaming());
        Ok(Received {
            id,
            picture,
            fingerprint: digest.finish(),
        })
    }

    /// The header is good: the bytes held so far go to the store, and so will the rest.
    async fn start(
        &mut self,
        blobs: &BlobStore,
        id: ImageId,
        picture: Picture,
    ) -> Result<(), ApiError> {
        self.picture = Some(picture);
        let mut writer = blobs.writer(BlobKey::Original(id));
        let head: Bytes = std::mem::take(&mut self.head).freeze();
        let written = writer.write(head).await;
        // Kept even on failure, so that the caller aborts it.
        self.writer = Some(writer);
        Ok(written?)
    }
}

/// Why a file is not an acceptable picture, as the client is told.
fn refusal(error: UploadError) -> ApiError {
    match error {
        UploadError::UnsupportedFormat => ApiError::UnsupportedMediaType(error.to_string()),
        other => field_error(other.to_string()),
    }
}
