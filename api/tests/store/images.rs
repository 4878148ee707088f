//! What every `ImageStore` backend must do: keep an upload's record and move it through its
//! states as workers report. Each backend module calls `image_store_suite!` with the same opener
//! as the order suite.

use api::images::{AttemptEnd, Image, ImageFormat, ImageId, ImageStatus, Picture};
use api::orders::truncate_to_millis;
use api::store::{ImageStore, StoreError};
use chrono::{DateTime, Duration, Utc};

fn now() -> DateTime<Utc> {
    truncate_to_millis(Utc::now())
}

fn upload() -> Image {
    let original = Picture {
        format: ImageFormat::Jpeg,
        width: 1600,
        height: 1200,
        bytes: 345_678,
    };
    Image::queued(ImageId::generate(), original, now())
}

fn thumbnail() -> Picture {
    Picture {
        format: ImageFormat::Png,
        width: 300,
        height: 225,
        bytes: 12_345,
    }
}

fn failed(reason: &str, last: bool, at: DateTime<Utc>) -> AttemptEnd {
    AttemptEnd::Failed {
        reason: reason.to_owned(),
        last,
        at,
    }
}

fn done(at: DateTime<Utc>) -> AttemptEnd {
    AttemptEnd::Done {
        thumbnail: thumbnail(),
        at,
    }
}

async fn stored(store: &dyn ImageStore, id: ImageId) -> Image {
    store
        .get_image(id)
        .await
        .unwrap()
        .expect("the image is stored")
}

pub async fn an_inserted_image_is_read_back_unchanged(store: &dyn ImageStore) {
    let image = upload();
    store.insert_image(&image).await.unwrap();
    assert_eq!(stored(store, image.id).await, image);
}

pub async fn an_unknown_image_is_absent(store: &dyn ImageStore) {
    store.insert_image(&upload()).await.unwrap();
    let unknown = ImageId::generate();
    assert_eq!(store.get_image(unknown).await.unwrap(), None);
    assert_eq!(store.start_attempt(unknown, now()).await.unwrap(), None);
}

pub async fn a_deleted_image_is_gone(store: &dyn ImageStore) {
    let (gone, kept) = (upload(), upload());
    store.insert_image(&gone).await.unwrap();
    store.insert_image(&kept).await.unwrap();
    assert!(store.delete_image(gone.id).await.unwrap());
    assert_eq!(store.get_image(gone.id).await.unwrap(), None);
    assert!(
        !store.delete_image(gone.id).await.unwrap(),
        "a second delete finds nothing"
    );
    assert_eq!(stored(store, kept.id).await, kept);
}

pub async fn inserting_a_duplicate_id_is_a_conflict(store: &dyn ImageStore) {
    let image = upload();
    store.insert_image(&image).await.unwrap();
    let outcome = store.insert_image(&image).await;
    assert!(
        matches!(outcome, Err(StoreError::Conflict(_))),
        "{outcome:?}"
    );
}

pub async fn each_start_counts_an_attempt_and_marks_it_processing(store: &dyn ImageStore) {
    let image = upload();
    store.insert_image(&image).await.unwrap();
    let later = image.created_at + Duration::seconds(3);
    let first = store.start_attempt(image.id, later).await.unwrap().unwrap();
    assert_eq!(first.status, ImageStatus::Processing);
    assert_eq!(first.attempts, 1);
    assert_eq!(first.updated_at, later);
    assert_eq!(first.created_at, image.created_at);
    // A worker that died left it `processing`: the next one starts it again.
    let second = store.start_attempt(image.id, later).await.unwrap().unwrap();
    assert_eq!(second.attempts, 2);
    assert_eq!(stored(store, image.id).await, second);
}

pub async fn finishing_records_the_thumbnail_and_clears_the_error(store: &dyn ImageStore) {
    let image = upload();
    store.insert_image(&image).await.unwrap();
    store.start_attempt(image.id, now()).await.unwrap();
    store
        .end_attempt(image.id, &failed("the disk was full", false, now()))
        .await
        .unwrap();
    store.start_attempt(image.id, now()).await.unwrap();
    let done_at = now() + Duration::seconds(1);
    store.end_attempt(image.id, &done(done_at)).await.unwrap();
    let done = stored(store, image.id).await;
    assert_eq!(done.status, ImageStatus::Done);
    assert_eq!(done.thumbnail, Some(thumbnail()));
    assert_eq!(done.error, None);
    assert_eq!(done.attempts, 2);
    assert_eq!(done.original, image.original);
    assert_eq!(done.updated_at, done_at);
}

pub async fn a_failed_attempt_is_queued_again_or_failed_when_last(store: &dyn ImageStore) {
    let image = upload();
    store.insert_image(&image).await.unwrap();
    store.start_attempt(image.id, now()).await.unwrap();
    store
        .end_attempt(image.id, &failed("cannot decode", false, now()))
        .await
        .unwrap();
    let again = stored(store, image.id).await;
    assert_eq!(again.status, ImageStatus::Queued);
    assert_eq!(again.error.as_deref(), Some("cannot decode"));
    store.start_attempt(image.id, now()).await.unwrap();
    store
        .end_attempt(image.id, &failed("still cannot decode", true, now()))
        .await
        .unwrap();
    let failed = stored(store, image.id).await;
    assert_eq!(failed.status, ImageStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("still cannot decode"));
    assert_eq!(failed.thumbnail, None);
    // A failed image is not started again.
    let start = store.start_attempt(image.id, now()).await.unwrap().unwrap();
    assert_eq!(start, failed);
}

/// The reconciler's question: which unfinished images have not changed since a time.
pub async fn unfinished_images_are_listed_by_age(store: &dyn ImageStore) {
    let old = now() - Duration::minutes(10);
    let image_at = |at| {
        let mut image = upload();
        image.created_at = at;
        image.updated_at = at;
        image
    };
    let (queued, processing, done, fresh) = (image_at(old), image_at(old), image_at(old), upload());
    for image in [&queued, &processing, &done, &fresh] {
        store.insert_image(image).await.unwrap();
    }
    store.start_attempt(processing.id, old).await.unwrap();
    store.start_attempt(done.id, old).await.unwrap();
    store.end_attempt(done.id, &self::done(old)).await.unwrap();
    let before = now() - Duration::minutes(1);
    let mut found = store.unfinished_since(before, 10).await.unwrap();
    found.sort_by_key(ToString::to_string);
    let mut expected = vec![queued.id, processing.id];
    expected.sort_by_key(ToString::to_string);
    assert_eq!(found, expected);
    assert_eq!(store.unfinished_since(before, 1).await.unwrap().len(), 1);
}

/// Retention's question: which done images, finished before a time, still have their original;
/// once an original is recorded removed it is not listed again, and the record keeps the rest.
pub async fn originals_of_images_done_long_ago_are_listed_until_removed(store: &dyn ImageStore) {
    let old = now() - Duration::minutes(10);
    let (first, second, recent, unfinished) = (upload(), upload(), upload(), upload());
    for image in [&first, &second, &recent, &unfinished] {
        store.insert_image(image).await.unwrap();
        store.start_attempt(image.id, old).await.unwrap();
    }
    store
        .end_attempt(first.id, &done(old - Duration::minutes(1)))
        .await
        .unwrap();
    store.end_attempt(second.id, &done(old)).await.unwrap();
    store.end_attempt(recent.id, &done(now())).await.unwrap();
    let before = now() - Duration::minutes(1);
    let due = store.originals_done_before(before, 10).await.unwrap();
    assert_eq!(due, vec![first.id, second.id], "oldest first");
    assert_eq!(
        store.originals_done_before(before, 1).await.unwrap(),
        vec![first.id]
    );
    let at = now();
    store.original_removed(first.id, at).await.unwrap();
    // Said twice (two workers), the first time stays.
    store
        .original_removed(first.id, at + Duration::seconds(9))
        .await
        .unwrap();
    assert_eq!(
        store.originals_done_before(before, 10).await.unwrap(),
        vec![second.id]
    );
    let removed = stored(store, first.id).await;
    assert_eq!(removed.original_removed_at, Some(at));
    assert_eq!(removed.status, ImageStatus::Done);
    assert_eq!(removed.thumbnail, Some(thumbnail()));
    assert_eq!(stored(store, second.id).await.original_removed_at, None);
}

/// A worker that stops during an attempt hands the job back: however often, no attempt is
/// counted against the image, which is `queued` again for the next worker.
pub async fn a_handed_back_attempt_does_not_count(store: &dyn ImageStore) {
    let image = upload();
    store.insert_image(&image).await.unwrap();
    for _ in 0..3 {
        let started = store.start_attempt(image.id, now()).await.unwrap().unwrap();
        assert_eq!(
            (started.status, started.attempts),
            (ImageStatus::Processing, 1)
        );
        let back = AttemptEnd::HandedBack { at: now() };
        store.end_attempt(image.id, &back).await.unwrap();
        let queued = stored(store, image.id).await;
        assert_eq!((queued.status, queued.attempts), (ImageStatus::Queued, 0));
    }
    store.start_attempt(image.id, now()).await.unwrap();
    store.end_attempt(image.id, &done(now())).await.unwrap();
    // Handing back after the end changes nothing.
    let back = AttemptEnd::HandedBack { at: now() };
    store.end_attempt(image.id, &back).await.unwrap();
    let finished = stored(store, image.id).await;
    assert_eq!((finished.status, finished.attempts), (ImageStatus::Done, 1));
}

pub async fn a_done_image_stays_done(store: &dyn ImageStore) {
    let image = upload();
    store.insert_image(&image).await.unwrap();
    store.start_attempt(image.id, now()).await.unwrap();
    store.end_attempt(image.id, &done(now())).await.unwrap();
    let done = stored(store, image.id).await;
    // A second worker that held the same job reports late.
    store
        .end_attempt(
            image.id,
            &failed("late failure", true, now() + Duration::seconds(5)),
        )
        .await
        .unwrap();
    assert_eq!(stored(store, image.id).await, done);
    let start = store.start_attempt(image.id, now()).await.unwrap().unwrap();
    assert_eq!(start, done, "starting a done image changes nothing");
}

/// Declares one test per case above, each on fresh stores from `$open`.
macro_rules! image_store_suite {
    ($open:path) => {
        mod images {
            use super::*;
            image_store_suite!(@cases $open;
                an_inserted_image_is_read_back_unchanged,
                an_unknown_image_is_absent,
                a_deleted_image_is_gone,
                inserting_a_duplicate_id_is_a_conflict,
                each_start_counts_an_attempt_and_marks_it_processing,
                finishing_records_the_thumbnail_and_clears_the_error,
                a_failed_attempt_is_queued_again_or_failed_when_last,
                a_done_image_stays_done,
                a_handed_back_attempt_does_not_count,
                unfinished_images_are_listed_by_age,
                originals_of_images_done_long_ago_are_listed_until_removed,
            );
        }
    };
    (@cases $open:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(backend) = $open().await else { return };
                crate::images::$case(&*backend.stores.images).await;
                backend.finish().await;
            }
        )+
    };
}
