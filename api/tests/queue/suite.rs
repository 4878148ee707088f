//! What every `JobQueue` backend must do. Each backend module calls `job_queue_suite!` with an
//! async function returning a fresh, empty queue with the lease it is given (or `None` when its
//! server is not installed), so the same cases run against every backend.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::images::ImageId;
use api::queue::{Delivery, JobQueue, QueueError};

/// Short, so that an expired lease can be seen within a test.
pub const LEASE: Duration = Duration::from_millis(600);
/// Long, for cases where no lease should expire however slow the machine is.
pub const LONG_LEASE: Duration = Duration::from_secs(60);

async fn claim(queue: &dyn JobQueue, consumer: &str) -> Option<Delivery> {
    queue.claim(consumer).await.unwrap()
}

/// Claims until a job comes (bounded).
async fn claim_soon(queue: &dyn JobQueue, consumer: &str, limit: Duration) -> Delivery {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(delivery) = claim(queue, consumer).await {
            return delivery;
        }
        assert!(
            Instant::now() < deadline,
            "no job for {consumer} in {limit:?}"
        );
    }
}

fn lease_lost(outcome: Result<(), QueueError>) -> bool {
    matches!(outcome, Err(QueueError::LeaseLost))
}

pub async fn a_job_is_claimed_then_acknowledged_once(queue: &dyn JobQueue) {
    let image = ImageId::generate();
    queue.enqueue(image).await.unwrap();
    let delivery = claim_soon(queue, "a", Duration::from_secs(5)).await;
    assert_eq!(delivery.image, image);
    queue.ack(&delivery).await.unwrap();
    assert_eq!(claim(queue, "b").await, None, "an acknowledged job is gone");
    assert!(
        lease_lost(queue.ack(&delivery).await),
        "a second ack is refused"
    );
}

pub async fn retry_after_delays_the_next_claim(queue: &dyn JobQueue) {
    let image = ImageId::generate();
    queue.enqueue(image).await.unwrap();
    let delivery = claim_soon(queue, "a", Duration::from_secs(5)).await;
    // Longer than one claim's wait for work (about a second), with room for a slow machine.
    let delay = Duration::from_secs(3);
    let handed_back = Instant::now();
    queue.retry_after(&delivery, delay).await.unwrap();
    assert_eq!(claim(queue, "b").await, None, "not due yet");
    let again = claim_soon(queue, "b", Duration::from_secs(10)).await;
    assert!(
        handed_back.elapsed() >= delay,
        "due after {:?}",
        handed_back.elapsed()
    );
    assert_eq!(again.image, image);
    queue.retry_after(&again, Duration::ZERO).await.unwrap();
    let at_once = claim_soon(queue, "c", Duration::from_secs(5)).await;
    assert_eq!(at_once.image, image);
    queue.ack(&at_once).await.unwrap();
}

pub async fn renewing_keeps_the_lease(queue: &dyn JobQueue) {
    queue.enqueue(ImageId::generate()).await.unwrap();
    let held = claim_soon(queue, "a", Duration::from_secs(5)).await;
    let started = Instant::now();
    while started.elapsed() < LEASE * 4 {
        queue.renew(&held).await.unwrap();
        // Each claim waits about a second for work; renewals keep coming in between.
        let renewing = async {
            loop {
                tokio::time::sleep(LEASE / 4).await;
                queue.renew(&held).await.unwrap();
            }
        };
        tokio::select! {
            taken = claim(queue, "b") => assert_eq!(taken, None, "a renewed job was taken over"),
            () = renewing => {}
        }
    }
    queue.ack(&held).await.unwrap();
}

pub async fn an_expired_lease_is_taken_over_and_the_old_holder_loses_the_job(queue: &dyn JobQueue) {
    let image = ImageId::generate();
    queue.enqueue(image).await.unwrap();
    let old = claim_soon(queue, "a", Duration::from_secs(5)).await;
    tokio::time::sleep(LEASE + Duration::from_millis(200)).await;
    let new = claim_soon(queue, "b", Duration::from_secs(5)).await;
    assert_eq!(new.image, image);
    assert!(
        lease_lost(queue.renew(&old).await),
        "the old holder renewed"
    );
    assert!(
        lease_lost(queue.ack(&old).await),
        "the old holder acknowledged"
    );
    assert!(
        lease_lost(queue.retry_after(&old, Duration::ZERO).await),
        "the old holder handed it back"
    );
    queue.renew(&new).await.unwrap();
    queue.ack(&new).await.unwrap();
    assert_eq!(claim(queue, "c").await, None, "the job is done once");
}

/// `queues`: one handle per claimer on the same backend, as separate worker processes have.
pub async fn concurrent_claimers_never_get_the_same_job_twice(queues: Vec<Arc<dyn JobQueue>>) {
    let queue = &queues[0];
    let jobs = 40;
    let mut enqueued = HashSet::new();
    for _ in 0..jobs {
        let image = ImageId::generate();
        queue.enqueue(image).await.unwrap();
        enqueued.insert(image);
    }
    let claimers: Vec<_> = queues
        .iter()
        .enumerate()
        .map(|(i, queue)| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(delivery) = queue.claim(&format!("claimer-{i}")).await.unwrap() {
                    got.push(delivery.image);
                    queue.ack(&delivery).await.unwrap();
                }
                got
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    let distinct: HashSet<ImageId> = claimed.iter().copied().collect();
    assert_eq!(
        claimed.len(),
        jobs,
        "{} deliveries for {jobs} jobs",
        claimed.len()
    );
    assert_eq!(distinct, enqueued);
}

/// What the reconciler asks: every image with a job waiting, delayed or held is listed; one
/// acknowledged is not.
pub async fn the_queued_images_are_every_live_job(queue: &dyn JobQueue) {
    let (waiting, held, delayed, finished) = (
        ImageId::generate(),
        ImageId::generate(),
        ImageId::generate(),
        ImageId::generate(),
    );
    for image in [held, delayed, finished] {
        queue.enqueue(image).await.unwrap();
        let delivery = claim_soon(queue, "a", Duration::from_secs(5)).await;
        assert_eq!(delivery.image, image);
        if image == delayed {
            queue
                .retry_after(&delivery, Duration::from_secs(60))
                .await
                .unwrap();
        } else if image == finished {
            queue.ack(&delivery).await.unwrap();
        }
    }
    queue.enqueue(waiting).await.unwrap();
    let live = queue.queued_images().await.unwrap();
    assert_eq!(live, HashSet::from([waiting, held, delayed]));
}

/// One holder at a time: the lease is kept by its holder, refused to others until it runs out.
pub async fn a_lease_has_one_holder_until_it_runs_out(queue: &dyn JobQueue) {
    let ttl = Duration::from_millis(800);
    assert!(queue.try_lease("job", "a", ttl).await.unwrap());
    assert!(!queue.try_lease("job", "b", ttl).await.unwrap());
    assert!(
        queue.try_lease("job", "a", ttl).await.unwrap(),
        "kept by its holder"
    );
    assert!(
        queue.try_lease("other", "b", ttl).await.unwrap(),
        "leases are by name"
    );
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert!(
        queue.try_lease("job", "b", ttl).await.unwrap(),
        "free once run out"
    );
    assert!(!queue.try_lease("job", "a", ttl).await.unwrap());
}

/// Declares one test per case above, each on a fresh queue from `$open`.
macro_rules! job_queue_suite {
    ($open:path) => {
        job_queue_suite!(@cases $open;
            a_job_is_claimed_then_acknowledged_once,
            retry_after_delays_the_next_claim,
            renewing_keeps_the_lease,
            an_expired_lease_is_taken_over_and_the_old_holder_loses_the_job,
            the_queued_images_are_every_live_job,
            a_lease_has_one_holder_until_it_runs_out,
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_claimers_never_get_the_same_job_twice() {
            let Some(backend) = $open(crate::suite::LONG_LEASE).await else { return };
            let mut queues = vec![backend.queue.clone()];
            for _ in 1..8 {
                queues.push(backend.another(crate::suite::LONG_LEASE).await);
            }
            crate::suite::concurrent_claimers_never_get_the_same_job_twice(queues).await;
        }
    };
    (@cases $open:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(backend) = $open(crate::suite::LEASE).await else { return };
                crate::suite::$case(&*backend.queue).await;
            }
        )+
    };
}
