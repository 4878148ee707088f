//! Where the S3 tests find their server: `infra/test` starts Garage (`infra/s3-test-server`)
//! and names it in `ORDERS_TEST_S3_*`. Without them the S3 tests skip, except under CI.

/// A bucket on the S3 test server and a key allowed to use it.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

impl S3Bucket {
    /// The test server, or `None` (skip).
    pub fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let endpoint = var("ORDERS_TEST_S3_ENDPOINT");
        if !crate::available(
            endpoint.is_some(),
            "ORDERS_TEST_S3_ENDPOINT (the S3 test server)",
        ) {
            return None;
        }
        Some(Self {
            endpoint: endpoint?,
            region: var("ORDERS_TEST_S3_REGION").unwrap_or_else(|| "garage".into()),
            bucket: var("ORDERS_TEST_S3_BUCKET")?,
            key_id: var("ORDERS_TEST_S3_KEY_ID")?,
            secret: var("ORDERS_TEST_S3_SECRET")?,
        })
    }

    /// `images.blob_url` for a prefix no other test uses.
    pub fn unique_url(&self) -> String {
        format!(
            "s3://{}/test-{}?endpoint={}&region={}",
            self.bucket,
            uuid::Uuid::new_v4().simple(),
            self.endpoint,
            self.region
        )
    }
}
