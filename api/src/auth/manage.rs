//! What `api keys …` does with the store: make, list and revoke keys.

use chrono::{DateTime, Utc};

use super::{ApiKey, ApiKeyRecord, KeyId, KeyName, Scopes};
use crate::store::{ApiKeyStore, StoreError};

/// Makes a key with `scopes`, stores its record and returns the key (to be shown once).
pub async fn create(
    store: &dyn ApiKeyStore,
    name: KeyName,
    scopes: Scopes,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(ApiKey, ApiKeyRecord), StoreError> {
    let (key, record) = ApiKeyRecord::create(name, scopes, expires_at, now);
    store.insert_api_key(&record).await?;
    Ok((key, record))
}

/// What revoking found.
#[derive(Debug)]
pub enum Revoked {
    Now(ApiKeyRecord),
    Already(ApiKeyRecord),
    Unknown,
}

pub async fn revoke(
    store: &dyn ApiKeyStore,
    id: KeyId,
    now: DateTime<Utc>,
) -> Result<Revoked, StoreError> {
    let now = crate::orders::truncate_to_millis(now);
    Ok(match store.revoke_api_key(id, now).await? {
        None => Revoked::Unknown,
        Some(record) if record.revoked_at == Some(now) => Revoked::Now(record),
        Some(record) => Revoked::Already(record),
    })
}

/// `--expires`: a duration from now (`30d`, `12h`) or an RFC 3339 time; in the future.
pub fn parse_expiry(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let at = match DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => {
            let span = humantime::parse_duration(text).map_err(|_| {
                format!("{text:?} is neither a duration (30d, 12h) nor an RFC 3339 time")
            })?;
            chrono::Duration::from_std(span)
                .ok()
                .and_then(|span| now.checked_add_signed(span))
                .ok_or_else(|| format!("{text:?} is too far in the future"))?
        }
    };
    if at <= now {
        return Err(format!("{text:?} is not in the future"));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_a_duration_or_a_time_in_the_future() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_expiry("30d", now).unwrap().to_rfc3339(),
            "2026-12-24T10:00:00+00:00"
        );
        assert_eq!(
            parse_expiry("2027-01-01T00:00:00Z", now)
                .unwrap()
                .to_rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
        for bad in ["0s", "2020-01-01T00:00:00Z", "soon", "", "99999999999999d"] {
            assert!(parse_expiry(bad, now).is_err(), "{bad}");
        }
    }
}
