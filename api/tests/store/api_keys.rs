//! What every backend must do with API keys: keep each record whole (hash, scopes, dates), find
//! it by id, list them oldest first, refuse a second key with an id in use, and revoke once.

use api::auth::{ApiKeyRecord, KeyId, KeyName, Scope, Scopes, manage};
use api::store::{StoreError, Stores};
use chrono::{Duration, Utc};

fn record(name: &str, scopes: &[Scope], expires_in: Option<Duration>) -> ApiKeyRecord {
    let now = Utc::now();
    ApiKeyRecord::create(
        KeyName::parse(name).unwrap(),
        Scopes::of(scopes.iter().copied()),
        expires_in.map(|span| now + span),
        now,
    )
    .1
}

pub async fn a_key_is_kept_whole_and_found_by_its_id(stores: &Stores) {
    let keys = &stores.api_keys;
    let kept = record(
        "shop front ✓",
        &[Scope::OrdersRead, Scope::ImagesWrite],
        Some(Duration::days(30)),
    );
    keys.insert_api_key(&kept).await.unwrap();
    assert_eq!(
        keys.find_api_key(kept.id).await.unwrap(),
        Some(kept.clone())
    );
    let unknown = KeyId::parse("0000000000000000").unwrap();
    assert_eq!(keys.find_api_key(unknown).await.unwrap(), None);
}

pub async fn keys_are_listed_oldest_first_and_an_id_is_never_reused(stores: &Stores) {
    let keys = &stores.api_keys;
    let mut made = Vec::new();
    for name in ["first", "second", "third"] {
        let key = record(name, &[Scope::Admin], None);
        keys.insert_api_key(&key).await.unwrap();
        made.push(key);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(keys.api_keys().await.unwrap(), made);
    let mut twin = record("twin", &[Scope::OrdersRead], None);
    twin.id = made[0].id;
    assert!(matches!(
        keys.insert_api_key(&twin).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        keys.find_api_key(made[0].id).await.unwrap(),
        Some(made[0].clone())
    );
}

pub async fn a_key_is_revoked_once(stores: &Stores) {
    let keys = &*stores.api_keys;
    let key = record("laptop", &[Scope::OrdersWrite], None);
    keys.insert_api_key(&key).await.unwrap();
    let first = Utc::now();
    let revoked = match manage::revoke(keys, key.id, first).await.unwrap() {
        manage::Revoked::Now(record) => record,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        revoked.revoked_at,
        Some(api::orders::truncate_to_millis(first))
    );
    assert_eq!(revoked.state(Utc::now()), "revoked");
    // A second revocation keeps the first time.
    let later = first + Duration::seconds(5);
    match manage::revoke(keys, key.id, later).await.unwrap() {
        manage::Revoked::Already(record) => assert_eq!(record.revoked_at, revoked.revoked_at),
        other => panic!("{other:?}"),
    }
    assert_eq!(keys.find_api_key(key.id).await.unwrap(), Some(revoked));
    let unknown = KeyId::parse("ffffffffffffffff").unwrap();
    assert!(matches!(
        manage::revoke(keys, unknown, later).await.unwrap(),
        manage::Revoked::Unknown
    ));
}

macro_rules! api_key_store_suite {
    ($open:path) => {
        mod api_keys {
            use super::*;
            api_key_store_suite!(@cases $open;
                a_key_is_kept_whole_and_found_by_its_id,
                keys_are_listed_oldest_first_and_an_id_is_never_reused,
                a_key_is_revoked_once,
            );
        }
    };
    (@cases $open:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(backend) = $open().await else { return };
                crate::api_keys::$case(&backend.stores).await;
                backend.finish().await;
            }
        )+
    };
}
