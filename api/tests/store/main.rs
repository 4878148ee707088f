//! The behavioural suite of the order store, run against every backend.

#[path = "../support/mongo.rs"]
mod mongo_support;

#[macro_use]
mod suite;
mod mongo;
mod sqlite;
