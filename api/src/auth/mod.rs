//! API keys: who may call the api, and with which scopes. A key is made once (`api keys
//! create`), kept only as its hash in the order store (so every replica sees the same keys),
//! and checked on every request to `/orders`, `/images` and `/metrics`; each replica caches what it read for
//! `auth.cache_ttl`, so a revoked key stops working within that time.

mod key;
pub mod manage;
mod scope;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use self::key::{ApiKey, KeyHash, KeyId, LENGTH, PREFIX};
pub use self::scope::{Scope, Scopes};
use crate::store::{ApiKeyStore, StoreError};

/// A stored key: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: KeyId,
    /// Who or what it is for, as its creator wrote it.
    pub name: KeyName,
    pub hash: KeyHash,
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyRecord {
    /// Makes a key and its record; the key is returned once, to be shown once.
    pub fn create(
        name: KeyName,
        scopes: Scopes,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> (ApiKey, Self) {
        let key = ApiKey::generate();
        let record = Self {
            id: key.id(),
            name,
            hash: key.hash(),
            scopes,
            created_at: crate::orders::truncate_to_millis(now),
            expires_at: expires_at.map(crate::orders::truncate_to_millis),
            revoked_at: None,
        };
        (key, record)
    }

    /// `active`, `revoked` or `expired` at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        }
    }
}

/// A key's name: 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(value: impl Into<String>) -> Result<Self, String> {
        let value = value.into();
        crate::orders::text::check(&value, Self::MAX_CHARS, false)?;
        Ok(Self(value))
    }

    /// As stored, unchecked (reading never fails on a name).
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a request was not let through.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("an API key is required: send Authorization: Bearer <key>")]
    Missing,
    #[error("the Authorization header must be Bearer <key>")]
    Malformed,
    #[error("unknown API key")]
    Unknown,
    #[error("this API key was revoked")]
    Revoked(KeyId),
    #[error("this API key expired")]
    Expired(KeyId),
    #[error("this API key lacks the scope {needed}")]
    Forbidden { id: KeyId, needed: Scope },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks presented keys against the store, through a per-replica cache.
pub struct Authenticator {
    keys: Arc<dyn ApiKeyStore>,
    /// Found records by id. Unknown ids are not cached: a flood of made-up keys costs a lookup
    /// each but no memory.
    cache: moka::future::Cache<KeyId, Arc<ApiKeyRecord>>,
}

impl Authenticator {
    pub fn new(keys: Arc<dyn ApiKeyStore>, cache_ttl: Duration, cache_capacity: u64) -> Self {
        Self {
            keys,
            cache: moka::future::Cache::builder()
                .max_capacity(cache_capacity)
                .time_to_live(cache_ttl)
                .build(),
        }
    }

    /// The key's id when `presented` (the Authorization header's value) holds a live key with
    /// `needed`.
    pub async fn check(
        &self,
        presented: &str,
        needed: Scope,
        now: DateTime<Utc>,
    ) -> Result<KeyId, AuthError> {
        let key = bearer(presented)?;
        let id = key.id();
        // Concurrent requests with one key share one lookup; failures are not cached.
        let record = self
            .cache
            .try_get_with(id, async {
                match self.keys.find_api_key(id).await {
                    Ok(Some(record)) => Ok(Arc::new(record)),
                    Ok(None) => Err(Miss::Unknown),
                    Err(error) => Err(Miss::Store(error)),
                }
            })
            .await
            .map_err(|miss| match &*miss {
                Miss::Unknown => AuthError::Unknown,
                // The error is shared by the requests that waited on this lookup.
                Miss::Store(StoreError::Unavailable(cause)) => {
                    AuthError::Store(StoreError::Unavailable(cause.clone()))
                }
                Miss::Store(StoreError::Full) => AuthError::Store(StoreError::Full),
                Miss::Store(other) => {
                    AuthError::Store(StoreError::Internal(anyhow::anyhow!("{other}")))
                }
            })?;
        if !record.hash.matches(&key.hash()) {
            return Err(AuthError::Unknown);
        }
        if record.revoked_at.is_some() {
            return Err(AuthError::Revoked(id));
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Expired(id));
        }
        if !record.scopes.allow(needed) {
            return Err(AuthError::Forbidden { id, needed });
        }
        Ok(id)
    }
}

/// Why a lookup found no record.
enum Miss {
    Unknown,
    Store(StoreError),
}

/// The key in an Authorization value `Bearer <key>` (the scheme in any case, RFC 9110).
fn bearer(value: &str) -> Result<ApiKey, AuthError> {
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    ApiKey::parse(token.trim_matches(' ')).ok_or(AuthError::Unknown)
}

/// Whether `text` (a URL's query) carries something shaped like a key: keys belong in the
/// header, and a URL ends up in logs and browser histories. Percent-encoding is undone first,
/// so `shop%5F…` is caught too.
pub fn holds_a_key(text: &str) -> bool {
    let text = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    text.match_indices(PREFIX).any(|(at, _)| {
        text.get(at..at + LENGTH)
            .is_some_and(|k| ApiKey::parse(k).is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_takes_bearer_in_any_case_and_nothing_else() {
        let key = ApiKey::generate();
        let text = key.reveal();
        for good in [format!("Bearer {text}"), format!("bearer  {text}")] {
            assert_eq!(bearer(&good).unwrap().id(), key.id(), "{good}");
        }
        assert!(matches!(bearer(text), Err(AuthError::Malformed)));
        assert!(matches!(
            bearer(&format!("Basic {text}")),
            Err(AuthError::Malformed)
        ));
        assert!(matches!(bearer("Bearer nope"), Err(AuthError::Unknown)));
    }

    #[test]
    fn a_key_is_found_anywhere_in_a_query() {
        let key = ApiKey::generate();
        assert!(holds_a_key(&format!("access_token={}", key.reveal())));
        assert!(holds_a_key(&format!("limit=5&k={}&x=1", key.reveal())));
        let encoded = key.reveal().replace('_', "%5F");
        assert!(holds_a_key(&format!("access_token={encoded}")));
        assert!(!holds_a_key("customer_name=shop_owner"));
        assert!(!holds_a_key("shop_é"));
    }
}
