//! API keys in the SQLite file: the `api_keys` table, one row per key, its hash in hex.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, invalid, time, timestamp};
use crate::auth::{ApiKeyRecord, KeyHash, KeyId, KeyName, Scopes};
use crate::store::{ApiKeyStore, StoreError};

const COLUMNS: &str = "id, name, hash, scopes, created_at, expires_at, revoked_at";

fn record(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let optional_time = |index| -> rusqlite::Result<Option<DateTime<Utc>>> {
        match row.get::<_, Option<String>>(index)? {
            Some(_) => time(row, index).map(Some),
            None => Ok(None),
        }
    };
    let id: String = row.get(0)?;
    let hash: String = row.get(2)?;
    let scopes: String = row.get(3)?;
    Ok(ApiKeyRecord {
        id: KeyId::parse(&id).map_err(|e| invalid(0, e))?,
        name: KeyName::from_stored(row.get(1)?),
        hash: KeyHash::from_hex(&hash).map_err(|e| invalid(2, e))?,
        scopes: Scopes::parse(scopes.split(',')).map_err(|e| invalid(3, e))?,
        created_at: time(row, 4)?,
        expires_at: optional_time(5)?,
        revoked_at: optional_time(6)?,
    })
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.pool
            .run(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO api_keys (id, name, hash, scopes, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    key.id.as_str(),
                    key.name.as_str(),
                    key.hash.to_hex(),
                    key.scopes.to_string(),
                    timestamp(&key.created_at),
                    key.expires_at.as_ref().map(timestamp),
                ])
                .map(drop)
            })
            .await
    }

    async fn find_api_key(&self, id: KeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.pool
            .run(move |conn| {
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"))?
                    .query_row([id.as_str()], record)
                    .optional()
            })
            .await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.pool
            .run(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
                ))?
                .query_map([], record)?
                .collect()
            })
            .await
    }

    async fn revoke_api_key(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.pool
            .run(move |conn| {
                conn.prepare_cached(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![id.as_str(), timestamp(&now)])?;
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"))?
                    .query_row([id.as_str()], record)
                    .optional()
            })
            .await
    }
}
