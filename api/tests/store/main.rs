//! The behavioural suites of the order store, the image store and their idempotency keys, each written once and run
//! against every backend (SQLite here, MongoDB when `ORDERS_TEST_MONGODB_URI` names a server).

#[path = "../common/mod.rs"]
mod common;

#[macro_use]
mod api_keys;
#[macro_use]
mod images;
#[macro_use]
mod keys;
#[macro_use]
mod orders;

mod mongo;
mod sqlite;
