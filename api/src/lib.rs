//! The orders service: the domains (`orders`, `images`), where they are kept (`store`, `blobs`,
//! `queue`, on `sqlite_pool` for the embedded file), how they are served (`http`) and worked on
//! (`worker`), and how a process is configured and started (`config`, `startup`).

pub mod auth;
pub mod blobs;
pub mod config;
pub mod http;
pub mod idempotency;
mod ids;
pub mod images;
pub mod orders;
pub mod queue;
pub mod sqlite_pool;
pub mod startup;
pub mod store;
pub mod tls;
pub mod worker;
