//! What every backend must do with idempotency keys: claim each once, atomically with what it
//! creates, return the holder to a repeat, and let go of a key when its retention ends. Each
//! backend module calls `key_store_suite!` with the same opener as the other suites.

use api::idempotency::{Claim, Fingerprint, IdempotencyKey, KeyRecord, Scope, StoredResponse};
use api::images::{Image, ImageFormat, ImageId, Picture};
use api::orders::{ListRequest, Order, truncate_to_millis};
use api::store::Stores;
use chrono::{DateTime, Duration, Utc};

use crate::orders::order;

fn record(key: &str, body: &str, expires_at: DateTime<Utc>) -> KeyRecord {
    KeyRecord {
        key: IdempotencyKey::parse(key.as_bytes()).unwrap(),
        fingerprint: Fingerprint::of([body.as_bytes()]),
        response: StoredResponse {
            status: 201,
            location: format!("/orders/{body}"),
            body: format!(r#"{{"body":"{body}"}}"#),
        },
        expires_at: truncate_to_millis(expires_at),
    }
}

fn placed_at(at: DateTime<Utc>) -> Order {
    let mut placed = order("Pen", "Ada", 1);
    placed.created_at = truncate_to_millis(at);
    placed.updated_at = placed.created_at;
    placed
}

async fn count(stores: &Stores) -> usize {
    stores
        .orders
        .list(&ListRequest::default())
        .await
        .unwrap()
        .orders
        .len()
}

pub async fn a_key_is_claimed_once_and_a_repeat_gets_the_holder(stores: &Stores) {
    let now = Utc::now();
    let first = record("k-1", "first", now + Duration::hours(1));
    let (a, b) = (placed_at(now), placed_at(now));
    assert_eq!(
        stores.orders.insert_keyed(&a, &first).await.unwrap(),
        Claim::Created
    );
    let second = record("k-1", "second", now + Duration::hours(1));
    assert_eq!(
        stores.orders.insert_keyed(&b, &second).await.unwrap(),
        Claim::Taken(first.clone())
    );
    assert_eq!(stores.orders.get(b.id).await.unwrap(), None);
    assert_eq!(stores.orders.get(a.id).await.unwrap(), Some(a));
    let found = stores.keys.find_key(Scope::Orders, &first.key, now).await;
    assert_eq!(found.unwrap(), Some(first.clone()));
    let elsewhere = stores.keys.find_key(Scope::Images, &first.key, now).await;
    assert_eq!(elsewhere.unwrap(), None, "each endpoint has its own keys");
}

pub async fn concurrent_claims_of_one_key_create_exactly_one(stores: &Stores) {
    let now = Utc::now();
    let key = record("racing", "same", now + Duration::hours(1));
    let orders: Vec<Order> = (0..8).map(|_| placed_at(now)).collect();
    let claims =
        futures_util::future::join_all(orders.iter().map(|o| stores.orders.insert_keyed(o, &key)))
            .await;
    let created = claims
        .into_iter()
        .filter(|c| *c.as_ref().unwrap() == Claim::Created)
        .count();
    assert_eq!(created, 1);
    assert_eq!(count(stores).await, 1);
}

pub async fn an_expired_key_is_free_again_and_then_forgotten(stores: &Stores) {
    let start = Utc::now();
    let old = record("k-old", "old", start + Duration::seconds(1));
    let first = placed_at(start);
    assert_eq!(
        stores.orders.insert_keyed(&first, &old).await.unwrap(),
        Claim::Created
    );
    let later = start + Duration::seconds(2);
    assert_eq!(
        stores
            .keys
            .find_key(Scope::Orders, &old.key, later)
            .await
            .unwrap(),
        None
    );
    let new = record("k-old", "new", later + Duration::seconds(1));
    let second = placed_at(later);
    assert_eq!(
        stores.orders.insert_keyed(&second, &new).await.unwrap(),
        Claim::Created
    );
    let kept = record("k-kept", "kept", later + Duration::hours(1));
    stores
        .orders
        .insert_keyed(&placed_at(later), &kept)
        .await
        .unwrap();

    let forgotten = stores
        .keys
        .forget_expired_keys(later + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(forgotten, 1, "only the key expired by then");
    assert_eq!(
        stores
            .keys
            .find_key(Scope::Orders, &new.key, later)
            .await
            .unwrap(),
        None
    );
    let still = stores.keys.find_key(Scope::Orders, &kept.key, later).await;
    assert_eq!(still.unwrap(), Some(kept));
    assert_eq!(count(stores).await, 3, "forgetting keys keeps the orders");
}

/// As Stripe does: a repeat within the retention gets the first answer even when what it
/// created was deleted since, rather than creating it again.
pub async fn a_key_outlives_what_it_created(stores: &Stores) {
    let now = Utc::now();
    let key = record("k-del", "one", now + Duration::hours(1));
    let first = placed_at(now);
    stores.orders.insert_keyed(&first, &key).await.unwrap();
    assert!(stores.orders.delete(first.id).await.unwrap());
    let again = placed_at(now);
    assert_eq!(
        stores.orders.insert_keyed(&again, &key).await.unwrap(),
        Claim::Taken(key)
    );
    assert_eq!(count(stores).await, 0);
}

pub async fn image_records_claim_keys_too(stores: &Stores) {
    let now = truncate_to_millis(Utc::now());
    let image = || {
        let original = Picture {
            format: ImageFormat::Png,
            width: 10,
            height: 10,
            bytes: 100,
        };
        Image::queued(ImageId::generate(), original, now)
    };
    let key = record("k-img", "picture", now + Duration::hours(1));
    let (a, b) = (image(), image());
    assert_eq!(
        stores.images.insert_image_keyed(&a, &key).await.unwrap(),
        Claim::Created
    );
    assert_eq!(
        stores.images.insert_image_keyed(&b, &key).await.unwrap(),
        Claim::Taken(key.clone())
    );
    assert_eq!(stores.images.get_image(b.id).await.unwrap(), None);
    assert_eq!(stores.images.get_image(a.id).await.unwrap(), Some(a));
    let found = stores.keys.find_key(Scope::Images, &key.key, now).await;
    assert_eq!(found.unwrap(), Some(key));
}

/// Declares one test per case above, each on fresh stores from `$open`.
macro_rules! key_store_suite {
    ($open:path) => {
        mod keys {
            use super::*;
            key_store_suite!(@cases $open;
                a_key_is_claimed_once_and_a_repeat_gets_the_holder,
                concurrent_claims_of_one_key_create_exactly_one,
                an_expired_key_is_free_again_and_then_forgotten,
                a_key_outlives_what_it_created,
                image_records_claim_keys_too,
            );
        }
    };
    (@cases $open:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(backend) = $open().await else { return };
                crate::keys::$case(&backend.stores).await;
                backend.finish().await;
            }
        )+
    };
}
