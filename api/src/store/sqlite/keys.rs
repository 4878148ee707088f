//! Idempotency keys in the SQLite file: the `idempotency_keys` table, one row per scope and key,
//! written in the transaction that inserts what the key created.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{SqliteStore, invalid, timestamp};
use crate::idempotency::{Claim, Fingerprint, IdempotencyKey, KeyRecord, Scope, StoredResponse};
use crate::store::{KeyStore, StoreError};

/// The record of `key`, unless its retention ended by `now`.
fn holder(
    conn: &Connection,
    scope: Scope,
    key: &IdempotencyKey,
    now: DateTime<Utc>,
) -> rusqlite::Result<Option<KeyRecord>> {
    conn.prepare_cached(
        "SELECT fingerprint, response, expires_at FROM idempotency_keys
         WHERE scope = ?1 AND key = ?2 AND expires_at > ?3",
    )?
    .query_row(
        params![scope.as_str(), key.as_str(), timestamp(&now)],
        |row| {
            let response: String = row.get(1)?;
            Ok(KeyRecord {
                key: key.clone(),
                fingerprint: Fingerprint::from_stored(row.get(0)?),
                response: serde_json::from_str::<StoredResponse>(&response)
                    .map_err(|e| invalid(1, e.to_string()))?,
                expires_at: super::time(row, 2)?,
            })
        },
    )
    .optional()
}

/// Runs `insert` and stores `record`, in one transaction, unless the key is held: then nothing
/// is written and the holder's record is returned.
pub(super) fn insert_claiming(
    conn: &mut Connection,
    scope: Scope,
    record: &KeyRecord,
    now: DateTime<Utc>,
    insert: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> rusqlite::Result<Claim> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(earlier) = holder(&tx, scope, &record.key, now)? {
        return Ok(Claim::Taken(earlier));
    }
    insert(&tx)?;
    let response = serde_json::to_string(&record.response)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    // An expired row of the same key is replaced.
    tx.prepare_cached(
        "INSERT OR REPLACE INTO idempotency_keys (scope, key, fingerprint, response, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        scope.as_str(),
        record.key.as_str(),
        record.fingerprint.as_str(),
        response,
        timestamp(&record.expires_at),
    ])?;
    tx.commit()?;
    Ok(Claim::Created)
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn find_key(
        &self,
        scope: Scope,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let key = key.clone();
        self.pool
            .run(move |conn| holder(conn, scope, &key, now))
            .await
    }

    async fn forget_expired_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.pool
            .run(move |conn| {
                conn.prepare_cached("DELETE FROM idempotency_keys WHERE expires_at <= ?1")?
                    .execute([timestamp(&now)])
            })
            .await
            .map(|forgotten| forgotten as u64)
    }
}
