//! Image records in the SQLite file: the `images` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, invalid, keys, time, timestamp};
use crate::idempotency::{Claim, KeyRecord, Scope};
use crate::images::{AttemptEnd, Image, ImageFormat, ImageId, ImageStatus, Picture};
use crate::store::{ImageStore, StoreError};

const COLUMNS: &str = "id, status, original_format, original_width, original_height, \
    original_bytes, thumbnail_format, thumbnail_width, thumbnail_height, thumbnail_bytes, \
    attempts, error, created_at, updated_at, original_removed_at";

fn read_image(row: &Row<'_>) -> rusqlite::Result<Image> {
    let format = |index: usize| -> rusqlite::Result<Option<ImageFormat>> {
        row.get::<_, Option<String>>(index)?
            .map(|text| {
                ImageFormat::parse(&text).ok_or_else(|| invalid(index, format!("format {text}")))
            })
            .transpose()
    };
    let picture = |first: usize| -> rusqlite::Result<Option<Picture>> {
        let Some(format) = format(first)? else {
            return Ok(None);
        };
        Ok(Some(Picture {
            format,
            width: row.get(first + 1)?,
            height: row.get(first + 2)?,
            bytes: u64::try_from(row.get::<_, i64>(first + 3)?)
                .map_err(|_| invalid(first + 3, "a negative size".into()))?,
        }))
    };
    let id: String = row.get(0)?;
    let status: String = row.get(1)?;
    Ok(Image {
        id: ImageId::parse(&id).map_err(|e| invalid(0, e))?,
        status: ImageStatus::parse(&status).ok_or_else(|| invalid(1, status.clone()))?,
        original: picture(2)?.ok_or_else(|| invalid(2, "no original format".into()))?,
        thumbnail: picture(6)?,
        attempts: row.get(10)?,
        error: row.get(11)?,
        created_at: time(row, 12)?,
        updated_at: time(row, 13)?,
        original_removed_at: match row.get_ref(14)? {
            rusqlite::types::ValueRef::Null => None,
            _ => Some(time(row, 14)?),
        },
    })
}

fn insert_row(conn: &Connection, image: &Image) -> rusqlite::Result<()> {
    let thumbnail = image.thumbnail;
    conn.prepare_cached(&format!(
        "INSERT INTO images ({COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))?
    .execute(params![
        image.id.to_string(),
        image.status.as_str(),
        image.original.format.as_str(),
        image.original.width,
        image.original.height,
        image.original.bytes as i64,
        thumbnail.map(|t| t.format.as_str()),
        thumbnail.map(|t| t.width),
        thumbnail.map(|t| t.height),
        thumbnail.map(|t| t.bytes as i64),
        image.attempts,
        image.error,
        timestamp(&image.created_at),
        timestamp(&image.updated_at),
        image.original_removed_at.as_ref().map(timestamp),
    ])
    .map(drop)
}

#[async_trait]
impl ImageStore for SqliteStore {
    async fn insert_image(&self, image: &Image) -> Result<(), StoreError> {
        let image = image.clone();
        self.pool.run(move |conn| insert_row(conn, &image)).await
    }

    async fn insert_image_keyed(
        &self,
        image: &Image,
        key: &KeyRecord,
    ) -> Result<Claim, StoreError> {
        let (image, key) = (image.clone(), key.clone());
        self.pool
            .run(move |conn| {
                keys::insert_claiming(conn, Scope::Images, &key, image.created_at, |tx| {
                    insert_row(tx, &image)
                })
            })
            .await
    }

    async fn get_image(&self, id: ImageId) -> Result<Option<Image>, StoreError> {
        self.pool
            .read_here(move |conn| {
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM images WHERE id = ?1"))?
                    .query_row([id.to_string()], read_image)
                    .optional()
            })
            .await
    }

    async fn delete_image(&self, id: ImageId) -> Result<bool, StoreError> {
        self.pool
            .run(move |conn| {
                conn.prepare_cached("DELETE FROM images WHERE id = ?1")?
                    .execute([id.to_string()])
            })
            .await
            .map(|deleted| deleted > 0)
    }

    async fn start_attempt(
        &self,
        id: ImageId,
        now: DateTime<Utc>,
    ) -> Result<Option<Image>, StoreError> {
        self.pool
            .run(move |conn| {
                conn.prepare_cached(&format!(
                "UPDATE images SET status = 'processing', attempts = attempts + 1, updated_at = ?2
                 WHERE id = ?1 AND status IN ('queued', 'processing')
                 RETURNING {COLUMNS}"
            ))?
                .query_row(params![id.to_string(), timestamp(&now)], read_image)
                .optional()?
                .map_or_else(
                    || {
                        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM images WHERE id = ?1"))?
                            .query_row([id.to_string()], read_image)
                            .optional()
                    },
                    |image| Ok(Some(image)),
                )
            })
            .await
    }

    async fn unfinished_since(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ImageId>, StoreError> {
        let ids: Vec<String> = self
            .pool
            .run::<_, StoreError, _>(move |conn| {
                conn.prepare_cached(
                    "SELECT id FROM images
                     WHERE status IN ('queued', 'processing') AND updated_at < ?1
                     ORDER BY updated_at LIMIT ?2",
                )?
                .query_map(params![timestamp(&before), limit], |row| row.get(0))?
                .collect()
            })
            .await?;
        ids.iter()
            .map(|id| ImageId::parse(id).map_err(|e| StoreError::Internal(anyhow::anyhow!(e))))
            .collect()
    }

    async fn originals_done_before(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ImageId>, StoreError> {
        let ids: Vec<String> = self
            .pool
            .run::<_, StoreError, _>(move |conn| {
                conn.prepare_cached(
                    "SELECT id FROM images
                     WHERE status = 'done' AND updated_at < ?1 AND original_removed_at IS NULL
                     ORDER BY updated_at LIMIT ?2",
                )?
                .query_map(params![timestamp(&before), limit], |row| row.get(0))?
                .collect()
            })
            .await?;
        ids.iter()
            .map(|id| ImageId::parse(id).map_err(|e| StoreError::Internal(anyhow::anyhow!(e))))
            .collect()
    }

    async fn original_removed(&self, id: ImageId, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.pool
            .run(move |conn| {
                conn.prepare_cached(
                    "UPDATE images SET original_removed_at = ?2
                     WHERE id = ?1 AND original_removed_at IS NULL",
                )?
                .execute(params![id.to_string(), timestamp(&at)])
            })
            .await
            .map(drop)
    }

    async fn end_attempt(&self, id: ImageId, end: &AttemptEnd) -> Result<(), StoreError> {
        let (id, end) = (id.to_string(), end.clone());
        self.pool
            .run(move |conn| match end {
                AttemptEnd::Done { thumbnail, at } => conn
                    .prepare_cached(
                        "UPDATE images SET status = 'done', thumbnail_format = ?2,
                            thumbnail_width = ?3, thumbnail_height = ?4, thumbnail_bytes = ?5,
                            error = NULL, updated_at = ?6
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        id,
                        thumbnail.format.as_str(),
                        thumbnail.width,
                        thumbnail.height,
                        thumbnail.bytes as i64,
                        timestamp(&at),
                    ]),
                AttemptEnd::Failed { reason, last, at } => conn
                    .prepare_cached(
                        "UPDATE images SET status = ?2, error = ?3, updated_at = ?4
                         WHERE id = ?1 AND status != 'done'",
                    )?
                    .execute(params![
                        id,
                        if last { "failed" } else { "queued" },
                        reason,
                        timestamp(&at)
                    ]),
                AttemptEnd::HandedBack { at } => conn
                    .prepare_cached(
                        "UPDATE images SET status = 'queued', attempts = attempts - 1,
                            updated_at = ?2
                         WHERE id = ?1 AND status = 'processing' AND attempts > 0",
                    )?
                    .execute(params![id, timestamp(&at)]),
            })
            .await
            .map(drop)
    }
}
