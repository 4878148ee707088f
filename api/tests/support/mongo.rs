#![allow(dead_code)] // shared by several test crates, each using part of it
//! Where the MongoDB tests find their server.
//!
//! `ORDERS_TEST_MONGODB_URI` names a running MongoDB (or the SecantusDB test server that
//! `infra/test` starts). Without it the MongoDB tests skip with a message, except under CI
//! (`CI=true`), where a missing server fails them. `ORDERS_TEST_SECANTUSD` names the test
//! server's binary, for the tests that start and stop a server of their own.

use std::path::PathBuf;

fn required(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("{variable} is not set: CI must run the MongoDB tests")
        }
        _ => {
            eprintln!("skipping: set {variable} to run the MongoDB tests");
            None
        }
    }
}

pub fn uri() -> Option<String> {
    required("ORDERS_TEST_MONGODB_URI")
}

pub fn server_binary() -> Option<PathBuf> {
    required("ORDERS_TEST_SECANTUSD").map(PathBuf::from)
}

/// A database name no other test uses.
pub fn unique_database() -> String {
    format!("test_{}", uuid::Uuid::new_v4().simple())
}

/// Store settings pointing at `uri` and a fresh database, with short timeouts.
pub fn settings(uri: &str) -> api::config::StoreSettings {
    let mut settings = api::config::Settings::default().store;
    settings.uri = uri.to_owned();
    settings.database = unique_database();
    settings.server_selection_timeout_ms = 1500;
    settings.connect_timeout_ms = 1000;
    settings
}

/// Drops the test's database (best effort).
pub async fn drop_database(uri: &str, database: &str) {
    if let Ok(client) = mongodb::Client::with_uri_str(uri).await {
        let _ = client.database(database).drop().await;
    }
}
