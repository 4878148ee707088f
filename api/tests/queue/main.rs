//! The behavioural suite of the job queue, written once and run against every backend: a table
//! in a SQLite file, and a real `redis-server`, in the clear and over TLS.

#[macro_use]
mod suite;

mod redis;
mod redis_tls;
mod sqlite;
