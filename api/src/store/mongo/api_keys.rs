//! API keys in MongoDB: the `api_keys` collection, one document per key (`_id` its id), its hash
//! in hex.

use async_trait::async_trait;
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;

use super::{MongoStore, map_error, stamp, time};
use crate::auth::{ApiKeyRecord, KeyHash, KeyId, KeyName, Scopes};
use crate::store::{ApiKeyStore, StoreError};

pub(super) const COLLECTION: &str = "api_keys";

fn to_document(key: &ApiKeyRecord) -> Document {
    let optional = |at: Option<DateTime<Utc>>| at.map_or(Bson::Null, |t| Bson::DateTime(stamp(t)));
    doc! {
        "_id": key.id.as_str(),
        "name": key.name.as_str(),
        "hash": key.hash.to_hex(),
        "scopes": key.scopes.names(),
        "created_at": stamp(key.created_at),
        "expires_at": optional(key.expires_at),
        "revoked_at": optional(key.revoked_at),
    }
}

fn from_document(document: &Document) -> Result<ApiKeyRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Internal(anyhow::anyhow!("a malformed API key: {what}"));
    let text = |field: &str| document.get_str(field).map_err(|_| corrupt(field));
    let scopes = document
        .get_array("scopes")
        .map_err(|_| corrupt("scopes"))?
        .iter()
        .map(|s| s.as_str().ok_or_else(|| corrupt("scopes")))
        .collect::<Result<Vec<&str>, _>>()?;
    Ok(ApiKeyRecord {
        id: KeyId::parse(text("_id")?).map_err(|e| corrupt(&e))?,
        name: KeyName::from_stored(text("name")?.to_owned()),
        hash: KeyHash::from_hex(text("hash")?).map_err(|e| corrupt(&e))?,
        scopes: Scopes::parse(scopes).map_err(|e| corrupt(&e))?,
        created_at: time(document.get("created_at")).ok_or_else(|| corrupt("created_at"))?,
        expires_at: time(document.get("expires_at")),
        revoked_at: time(document.get("revoked_at")),
    })
}

#[async_trait]
impl ApiKeyStore for MongoStore {
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.api_keys
            .insert_one(to_document(key))
            .await
            .map(drop)
            .map_err(map_error)
    }

    async fn find_api_key(&self, id: KeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.api_keys
            .find_one(doc! { "_id": id.as_str() })
            .await
            .map_err(map_error)?
            .as_ref()
            .map(from_document)
            .transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let documents: Vec<Document> = self
            .api_keys
            .find(doc! {})
            .sort(doc! { "created_at": 1, "_id": 1 })
            .await
            .map_err(map_error)?
            .try_collect()
            .await
            .map_err(map_error)?;
        documents.iter().map(from_document).collect()
    }

    async fn revoke_api_key(
        &self,
        id: KeyId,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.api_keys
            .update_one(
                doc! { "_id": id.as_str(), "revoked_at": Bson::Null },
                doc! { "$set": { "revoked_at": stamp(now) } },
            )
            .await
            .map_err(map_error)?;
        self.find_api_key(id).await
    }
}
