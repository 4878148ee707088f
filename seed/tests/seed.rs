//! The `seed` binary against real SQLite files: the same count gives the same orders, and
//! `reset` leaves exactly the sample set, whatever was there before.

use std::path::Path;
use std::process::Command;

use api::config::Settings;
use api::orders::{ListRequest, Order, PageSize};
use api::store::{OrderStore, SqliteStore};

fn seed(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_seed"))
        .args(args)
        .env("APP__STORE__URI", format!("sqlite://{}", db.display()))
        .output()
        .unwrap()
}

async fn all_orders(db: &Path) -> Vec<Order> {
    let store = SqliteStore::open(db, &Settings::default().store)
        .await
        .unwrap();
    let mut request = ListRequest {
        size: PageSize::parse(1000).unwrap(),
        ..ListRequest::default()
    };
    let mut orders = Vec::new();
    loop {
        let page = store.list(&request).await.unwrap();
        orders.extend(page.orders);
        match page.next {
            Some(next) => request.after = Some(next),
            None => return orders,
        }
    }
}

#[tokio::test]
async fn the_same_count_loads_the_same_orders() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    assert!(
        seed(
            &a,
            &["load", "--count", "2500", "--batch", "700", "--quiet"]
        )
        .status
        .success()
    );
    assert!(
        seed(&b, &["load", "--count", "2500", "--quiet"])
            .status
            .success()
    );
    let (first, second) = (all_orders(&a).await, all_orders(&b).await);
    assert_eq!(first.len(), 2500);
    assert_eq!(first, second);
    let customers: std::collections::HashSet<_> = first
        .iter()
        .map(|o| o.customer_name.as_ref().to_owned())
        .collect();
    assert!(
        customers.len() > 100,
        "realistic variety: {} names",
        customers.len()
    );
}

#[tokio::test]
async fn reset_empties_the_store_then_loads_the_set() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orders.db");
    assert!(
        seed(&db, &["load", "--count", "300", "--quiet"])
            .status
            .success()
    );
    let again = seed(&db, &["load", "--count", "300", "--quiet"]);
    assert!(
        !again.status.success(),
        "loading twice must fail, not duplicate"
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("seed reset"), "{stderr}");

    let store = SqliteStore::open(&db, &Settings::default().store)
        .await
        .unwrap();
    let mut extra = all_orders(&db).await[0].clone();
    extra.id = api::orders::OrderId::generate();
    store.insert(&extra).await.unwrap();
    assert_eq!(all_orders(&db).await.len(), 301);

    assert!(
        seed(&db, &["reset", "--count", "50", "--quiet"])
            .status
            .success()
    );
    let orders = all_orders(&db).await;
    assert_eq!(orders.len(), 50);
    assert!(
        orders.iter().all(|o| o.id != extra.id),
        "reset left a foreign order"
    );

    assert!(seed(&db, &["clear"]).status.success());
    assert!(all_orders(&db).await.is_empty());
}

/// On MongoDB, `seed` needs the store's settings and nothing else: no queue URL.
#[tokio::test]
async fn on_mongodb_it_needs_only_the_store_settings() {
    let Some(uri) = harness::mongo::uri() else {
        return;
    };
    let mut store = Settings::default().store;
    store.uri = uri.clone();
    store.database = harness::mongo::unique_database();
    let run = |args: &[&str]| {
        Command::new(harness::binary("seed"))
            .env_clear()
            .env("APP__STORE__URI", &store.uri)
            .env("APP__STORE__DATABASE", &store.database)
            .args(args)
            .output()
            .unwrap()
    };
    let reset = run(&["reset", "--count", "250", "--quiet"]);
    assert!(reset.status.success(), "{reset:?}");
    let orders = api::store::open(&store).await.unwrap().orders;
    let page = ListRequest {
        size: PageSize::parse(1000).unwrap(),
        ..ListRequest::default()
    };
    assert_eq!(orders.list(&page).await.unwrap().orders.len(), 250);
    let cleared = run(&["clear"]);
    assert!(cleared.status.success(), "{cleared:?}");
    assert!(orders.list(&page).await.unwrap().orders.is_empty());
    harness::mongo::drop_database(&uri, &store.database).await;
}
