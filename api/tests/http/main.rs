//! The API over real HTTP, in-process: each test starts its own app on 127.0.0.1 port 0 with its
//! own temporary SQLite file, or, with `ORDERS_TEST_BACKEND=mongodb`, a fresh MongoDB database
//! at `ORDERS_TEST_MONGODB_URI`, so the same tests run against that backend.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod hostile;
mod idempotency;
mod images;
mod operations;
mod orders;
mod validation;
