//! The suites against SQLite files in a temporary folder, plus what only SQLite must do.

use api::config::Settings;
use api::store::{self, OrderStore, SqliteStore, Stores};
use tempfile::TempDir;

use crate::orders::order;

pub struct Backend {
    pub stores: Stores,
    _dir: TempDir,
}

pub async fn open() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default().store;
    settings.uri = format!("sqlite://{}", dir.path().join("orders.db").display());
    Some(Backend {
        stores: store::open(&settings).await.unwrap(),
        _dir: dir,
    })
}

impl Backend {
    pub async fn finish(self) {}
}

order_store_suite!(open);
image_store_suite!(open);
key_store_suite!(open);
api_key_store_suite!(open);

#[tokio::test]
async fn stores_opened_together_on_a_new_file_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/folder/orders.db");
    let settings = Settings::default().store;
    let (a, b, c, d) = tokio::join!(
        SqliteStore::open(&path, &settings),
        SqliteStore::open(&path, &settings),
        SqliteStore::open(&path, &settings),
        SqliteStore::open(&path, &settings)
    );
    let (a, b, c, d) = (a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap());
    c.ping().await.unwrap();
    d.ping().await.unwrap();
    let placed = order("Laptop", "A", 1);
    a.insert(&placed).await.unwrap();
    assert_eq!(b.get(placed.id).await.unwrap(), Some(placed));
}

#[tokio::test]
async fn reopening_a_file_keeps_its_orders() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.db");
    let settings = Settings::default().store;
    let placed = order("Laptop", "A", 1);
    SqliteStore::open(&path, &settings)
        .await
        .unwrap()
        .insert(&placed)
        .await
        .unwrap();
    let reopened = SqliteStore::open(&path, &settings).await.unwrap();
    assert_eq!(reopened.get(placed.id).await.unwrap(), Some(placed));
}

#[tokio::test]
async fn the_file_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.db");
    SqliteStore::open(&path, &Settings::default().store)
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}
