//! Image records in MongoDB: the `images` collection beside the orders, `_id` the image id.

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::options::ReturnDocument;

use super::{MongoStore, map_error, stamp, time};
use crate::idempotency::{Claim, KeyRecord, Scope};
use crate::images::{AttemptEnd, Image, ImageId, ImageStatus, Picture};
use crate::store::{ImageStore, StoreError};

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(anyhow::anyhow!("an image document with {what}"))
}

fn picture_document(picture: &Picture) -> Document {
    doc! {
        "format": picture.format.as_str(),
        "width": i64::from(picture.width),
        "height": i64::from(picture.height),
        "bytes": picture.bytes as i64,
    }
}

fn to_document(image: &Image) -> Document {
    doc! {
        "_id": image.id.to_string(),
        "status": image.status.as_str(),
        "original": picture_document(&image.original),
        "thumbnail": image.thumbnail.as_ref().map(picture_document),
        "attempts": i64::from(image.attempts),
        "error": image.error.clone(),
        "created_at": stamp(image.created_at),
        "updated_at": stamp(image.updated_at),
        "original_removed_at": image.original_removed_at.map(stamp),
    }
}

fn read_picture(value: Option<&Bson>) -> Result<Option<Picture>, StoreError> {
    let Some(Bson::Document(document)) = value else {
        return Ok(None);
    };
    let number = |field: &str| -> Result<i64, StoreError> {
        match document.get(field) {
            Some(Bson::Int32(n)) => Ok(i64::from(*n)),
            Some(Bson::Int64(n)) => Ok(*n),
            _ => Err(corrupt(&format!("no {field}"))),
        }
    };
    let format = document
        .get_str("format")
        .ok()
        .and_then(crate::images::ImageFormat::parse)
        .ok_or_else(|| corrupt("an unknown format"))?;
    let dimension = |field: &str| {
        number(field).and_then(|n| u32::try_from(n).map_err(|_| corrupt("a bad size")))
    };
    Ok(Some(Picture {
        format,
        width: dimension("width")?,
        height: dimension("height")?,
        bytes: u64::try_from(number("bytes")?).map_err(|_| corrupt("a bad size"))?,
    }))
}

fn from_document(document: &Document) -> Result<Image, StoreError> {
    let id = document
        .get_str("_id")
        .ok()
        .and_then(|id| ImageId::parse(id).ok())
        .ok_or_else(|| corrupt("a bad _id"))?;
    let status = document
        .get_str("status")
        .ok()
        .and_then(ImageStatus::parse)
        .ok_or_else(|| corrupt("an unknown status"))?;
    let created_at = time(document.get("created_at")).ok_or_else(|| corrupt("no created_at"))?;
    Ok(Image {
        id,
        status,
        original: read_picture(document.get("original"))?.ok_or_else(|| corrupt("no original"))?,
        thumbnail: read_picture(document.get("thumbnail"))?,
        attempts: match document.get("attempts") {
            Some(Bson::Int32(n)) => u32::try_from(*n).unwrap_or(0),
            Some(Bson::Int64(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
            _ => 0,
        },
        error: document.get_str("error").ok().map(str::to_owned),
        created_at,
        updated_at: time(document.get("updated_at")).unwrap_or(created_at),
        original_removed_at: time(document.get("original_removed_at")),
    })
}

#[async_trait]
impl ImageStore for MongoStore {
    async fn insert_image(&self, image: &Image) -> Result<(), StoreError> {
        self.images
            .insert_one(to_document(image))
            .await
            .map(drop)
            .map_err(map_error)
    }

    async fn insert_image_keyed(
        &self,
        image: &Image,
        key: &KeyRecord,
    ) -> Result<Claim, StoreError> {
        self.insert_claiming(Scope::Images, to_document(image), key, image.created_at)
            .await
    }

    async fn get_image(&self, id: ImageId) -> Result<Option<Image>, StoreError> {
        let found = self
            .images
            .find_one(doc! { "_id": id.to_string() })
            .await
            .map_err(map_error)?;
        found.as_ref().map(from_document).transpose()
    }

    async fn delete_image(&self, id: ImageId) -> Result<bool, StoreError> {
        self.images
            .delete_one(doc! { "_id": id.to_string() })
            .await
            .map(|outcome| outcome.deleted_count > 0)
            .map_err(map_error)
    }

    async fn start_attempt(
        &self,
        id: ImageId,
        now: DateTime<Utc>,
    ) -> Result<Option<Image>, StoreError> {
        let started = self
            .images
            .find_one_and_update(
                doc! { "_id": id.to_string(), "status": { "$in": ["queued", "processing"] } },
                doc! {
                    "$set": { "status": "processing", "updated_at": stamp(now) },
                    "$inc": { "attempts": 1_i64 },
                },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(map_error)?;
        match started {
            Some(document) => from_document(&document).map(Some),
            None => self.get_image(id).await,
        }
    }

    async fn unfinished_since(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ImageId>, StoreError> {
        self.ids_by_age(
            doc! {
                "status": { "$in": ["queued", "processing"] },
                "updated_at": { "$lt": stamp(before) },
            },
            limit,
        )
        .await
    }

    async fn originals_done_before(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ImageId>, StoreError> {
        // `null` matches a missing field too: records written before retention existed.
        self.ids_by_age(
            doc! {
                "status": "done",
                "updated_at": { "$lt": stamp(before) },
                "original_removed_at": Bson::Null,
            },
            limit,
        )
        .await
    }

    async fn original_removed(&self, id: ImageId, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.images
            .update_one(
                doc! { "_id": id.to_string(), "original_removed_at": Bson::Null },
                doc! { "$set": { "original_removed_at": stamp(at) } },
            )
            .await
            .map(drop)
            .map_err(map_error)
    }

    async fn end_attempt(&self, id: ImageId, end: &AttemptEnd) -> Result<(), StoreError> {
        if let AttemptEnd::HandedBack { at } = end {
            return self
                .images
                .update_one(
                    doc! { "_id": id.to_string(), "status": "processing", "attempts": { "$gt": 0 } },
                    doc! {
                        "$set": { "status": "queued", "updated_at": stamp(*at) },
                        "$inc": { "attempts": -1_i64 },
                    },
                )
                .await
                .map(drop)
                .map_err(map_error);
        }
        let (filter, set) = match end {
            AttemptEnd::Done { thumbnail, at } => (
                doc! { "_id": id.to_string() },
                doc! {
                    "status": "done",
                    "thumbnail": picture_document(thumbnail),
                    "error": Bson::Null,
                    "updated_at": stamp(*at),
                },
            ),
            AttemptEnd::Failed { reason, last, at } => (
                doc! { "_id": id.to_string(), "status": { "$ne": "done" } },
                doc! {
                    "status": if *last { "failed" } else { "queued" },
                    "error": reason,
                    "updated_at": stamp(*at),
                },
            ),
            AttemptEnd::HandedBack { .. } => unreachable!("answered above"),
        };
        self.images
            .update_one(filter, doc! { "$set": set })
            .await
            .map(drop)
            .map_err(map_error)
    }
}

impl MongoStore {
    /// The ids of up to `limit` images matching `filter`, least recently updated first.
    async fn ids_by_age(&self, filter: Document, limit: u32) -> Result<Vec<ImageId>, StoreError> {
        let documents: Vec<Document> = self
            .images
            .find(filter)
            .sort(doc! { "updated_at": 1 })
            .limit(i64::from(limit))
            .projection(doc! { "_id": 1 })
            .await
            .map_err(map_error)?
            .try_collect()
            .await
            .map_err(map_error)?;
        documents
            .iter()
            .map(|d| {
                d.get_str("_id")
                    .ok()
                    .and_then(|id| ImageId::parse(id).ok())
                    .ok_or_else(|| corrupt("a bad _id"))
            })
            .collect()
    }
}
