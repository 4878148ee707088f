//! Idempotency keys in MongoDB: the `idempotency_keys` collection, one document per scope and
//! key (`_id` `"orders:KEY"`), beside the orders and images they created.
//!
//! Without a multi-document transaction the key and what it creates are made one step by rolling
//! forward: the key document is written first and carries the document to create (`pending`);
//! then that document is inserted under its fixed `_id`, then `pending` is removed. Whoever meets
//! a pending key (a repeat, a racing request) finishes the insert, and a second insert of the same
//! `_id` is refused, so a key never creates twice and never stays without its document once it
//! has been seen again.

use async_trait::async_trait;
use bson::{Document, doc};
use chrono::{DateTime, Utc};
use mongodb::{Collection, IndexModel};

use super::{MongoStore, map_error, stamp, time};
use crate::idempotency::{Claim, Fingerprint, IdempotencyKey, KeyRecord, Scope, StoredResponse};
use crate::store::{KeyStore, StoreError};

pub(super) const COLLECTION: &str = "idempotency_keys";

/// Expiry, for the clean-up.
pub(super) fn index() -> IndexModel {
    IndexModel::builder().keys(doc! { "expires_at": 1 }).build()
}

fn id(scope: Scope, key: &IdempotencyKey) -> String {
    format!("{}:{}", scope.as_str(), key.as_str())
}

fn to_document(scope: Scope, record: &KeyRecord, pending: Document) -> Document {
    doc! {
        "_id": id(scope, &record.key),
        "fingerprint": record.fingerprint.as_str(),
        "response": {
            "status": i32::from(record.response.status),
            "location": &record.response.location,
            "body": &record.response.body,
        },
        "expires_at": stamp(record.expires_at),
        "pending": pending,
    }
}

fn from_document(key: &IdempotencyKey, document: &Document) -> Result<KeyRecord, StoreError> {
    let corrupt = || StoreError::Internal(anyhow::anyhow!("a malformed idempotency record"));
    let response = document.get_document("response").map_err(|_| corrupt())?;
    Ok(KeyRecord {
        key: key.clone(),
        fingerprint: Fingerprint::from_stored(
            document
                .get_str("fingerprint")
                .map_err(|_| corrupt())?
                .into(),
        ),
        response: StoredResponse {
            status: response
                .get_i32("status")
                .ok()
                .and_then(|s| u16::try_from(s).ok())
                .ok_or_else(corrupt)?,
            location: response.get_str("location").map_err(|_| corrupt())?.into(),
            body: response.get_str("body").map_err(|_| corrupt())?.into(),
        },
        expires_at: time(document.get("expires_at")).ok_or_else(corrupt)?,
    })
}

/// Inserts `document` into `target` unless it is there already, then marks the key done.
async fn finish(
    keys: &Collection<Document>,
    key_id: &str,
    target: &Collection<Document>,
    document: &Document,
) -> Result<(), StoreError> {
    match target.insert_one(document).await.map_err(map_error) {
        Ok(_) | Err(StoreError::Conflict(_)) => {}
        Err(other) => return Err(other),
    }
    keys.update_one(doc! { "_id": key_id }, doc! { "$unset": { "pending": "" } })
        .await
        .map_err(map_error)?;
    Ok(())
}

impl MongoStore {
    fn target(&self, scope: Scope) -> &Collection<Document> {
        match scope {
            Scope::Orders => &self.orders,
            Scope::Images => &self.images,
        }
    }

    /// The unexpired record of `key`, its creation finished first if it was left pending.
    async fn holder(
        &self,
        scope: Scope,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let key_id = id(scope, key);
        let found = self
            .keys
            .find_one(doc! { "_id": &key_id, "expires_at": { "$gt": stamp(now) } })
            .await
            .map_err(map_error)?;
        let Some(found) = found else {
            return Ok(None);
        };
        if let Ok(pending) = found.get_document("pending") {
            finish(&self.keys, &key_id, self.target(scope), pending).await?;
        }
        from_document(key, &found).map(Some)
    }

    /// Stores `record` and inserts `document` (see the module's documentation), unless the key
    /// is held: then nothing is written and the holder's record is returned.
    pub(super) async fn insert_claiming(
        &self,
        scope: Scope,
        document: Document,
        record: &KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let key_id = id(scope, &record.key);
        let claim = to_document(scope, record, document.clone());
        // A holder may expire or be removed between the refused insert and the lookup.
        for _ in 0..3 {
            self.keys
                .delete_one(doc! { "_id": &key_id, "expires_at": { "$lte": stamp(now) } })
                .await
                .map_err(map_error)?;
            match self.keys.insert_one(&claim).await.map_err(map_error) {
                Ok(_) => {
                    finish(&self.keys, &key_id, self.target(scope), &document).await?;
                    return Ok(Claim::Created);
                }
                Err(StoreError::Conflict(_)) => {
                    if let Some(earlier) = self.holder(scope, &record.key, now).await? {
                        return Ok(Claim::Taken(earlier));
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Unavailable(
            "the idempotency key is changing hands, try again".into(),
        ))
    }
}

#[async_trait]
impl KeyStore for MongoStore {
    async fn find_key(
        &self,
        scope: Scope,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.holder(scope, key, now).await
    }

    async fn forget_expired_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.keys
            .delete_many(doc! { "expires_at": { "$lte": stamp(now) } })
            .await
            .map(|outcome| outcome.deleted_count)
            .map_err(map_error)
    }
}
