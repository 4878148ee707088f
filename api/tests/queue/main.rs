//! The behavioural suite of the job queue, written once and run against every backend: a table
//! in a SQLite file, and a real `redis-server`.

#[macro_use]
mod suite;

mod redis;
mod sqlite;
