//! The behavioural suite of the order store, run against every backend.

#[macro_use]
mod suite;
mod sqlite;
