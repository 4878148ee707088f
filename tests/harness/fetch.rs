//! Requests in tests: sent, and a failure to send is the test's failure.

use std::future::Future;

use reqwest::{RequestBuilder, Response};
use serde_json::Value;

pub trait Fetch {
    /// Sends the request; panics if it cannot be sent or answered.
    fn fetch(self) -> impl Future<Output = Response> + Send;

    /// Sends the request and reads the answer as JSON, whatever its status.
    fn fetch_json(self) -> impl Future<Output = Value> + Send;
}

impl Fetch for RequestBuilder {
    async fn fetch(self) -> Response {
        self.send().await.unwrap()
    }

    async fn fetch_json(self) -> Value {
        self.fetch().await.json().await.unwrap()
    }
}
