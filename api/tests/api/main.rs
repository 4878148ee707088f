//! The orders API over real HTTP: each test starts its own server on 127.0.0.1 port 0 with its
//! own temporary SQLite file (in-process), or the real `api` binary where processes matter.
//!
//! With `ORDERS_TEST_BACKEND=mongodb` the in-process servers use a fresh MongoDB database at
//! `ORDERS_TEST_MONGODB_URI` instead, so the same HTTP tests run against that backend.

#[path = "../support/mongo.rs"]
mod mongo_support;

#[path = "../support/pictures.rs"]
mod pictures;

mod browser;
mod helpers;
mod hostile;
mod images;
mod mongo;
mod operations;
mod orders;
mod pipeline;
mod processes;
mod servers;
mod validation;
