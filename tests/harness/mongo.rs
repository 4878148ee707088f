//! Where the MongoDB tests find their server.
//!
//! `ORDERS_TEST_MONGODB_URI` names a running MongoDB (or the SecantusDB test server that
//! `infra/test` starts); each test uses a database of its own. `ORDERS_TEST_SECANTUSD` names the
//! test server's binary, for the tests that start and stop a server of their own. Without them
//! the MongoDB tests skip, except under CI.

use std::path::PathBuf;

fn required(variable: &str) -> Option<String> {
    let value = std::env::var(variable).ok().filter(|v| !v.is_empty());
    if crate::available(value.is_some(), variable) {
        value
    } else {
        None
    }
}

/// The test server's URI, or `None` (skip).
pub fn uri() -> Option<String> {
    required("ORDERS_TEST_MONGODB_URI")
}

/// The test server's binary, or `None` (skip).
pub fn server_binary() -> Option<PathBuf> {
    required("ORDERS_TEST_SECANTUSD").map(PathBuf::from)
}

/// Whether the suites run their servers on MongoDB (`ORDERS_TEST_BACKEND=mongodb`, the second
/// pass of `infra/test`).
pub fn selected() -> bool {
    std::env::var("ORDERS_TEST_BACKEND").is_ok_and(|b| b == "mongodb")
}

/// A database name no other test uses.
pub fn unique_database() -> String {
    format!("test_{}", uuid::Uuid::new_v4().simple())
}

/// Drops a test's database (best effort).
pub async fn drop_database(uri: &str, database: &str) {
    if let Ok(client) = mongodb::Client::with_uri_str(uri).await {
        let _ = client.database(database).drop().await;
    }
}

/// A MongoDB test server process of a test's own, on a fixed port and folder, so that it can be
/// stopped and started again in place (an outage).
pub struct MongoServer {
    binary: PathBuf,
    port: u16,
    storage: tempfile::TempDir,
    process: Option<crate::Process>,
    /// Speaks TLS only, with these certificates.
    tls: Option<crate::tls::ServerFiles>,
    /// Requires authentication (SCRAM-SHA-256).
    auth: bool,
}

impl MongoServer {
    /// Starts one, or `None` (skip) when the test server's binary is not named.
    pub fn start() -> Option<Self> {
        Self::launch(None, false)
    }

    /// One that requires authentication (SCRAM-SHA-256) for everything but the handshake.
    pub fn start_with_auth() -> Option<Self> {
        Self::launch(None, true)
    }

    /// One that speaks TLS only, with a certificate `ca` signs (its files are in
    /// [`Self::tls_files`]).
    pub fn start_tls(ca: &crate::tls::TestCa) -> Option<Self> {
        Self::launch(Some(ca), false)
    }

    pub fn tls_files(&self) -> Option<&crate::tls::ServerFiles> {
        self.tls.as_ref()
    }

    fn launch(ca: Option<&crate::tls::TestCa>, auth: bool) -> Option<Self> {
        let storage = tempfile::tempdir().unwrap();
        let tls = ca.map(|ca| ca.server_files(&storage.path().join("tls")));
        let mut server = Self {
            binary: server_binary()?,
            port: crate::free_port(),
            storage,
            process: None,
            tls,
            auth,
        };
        server.restart();
        Some(server)
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    /// Starts the server again after [`Self::stop`], on the same port and data.
    pub fn restart(&mut self) {
        let mut command = std::process::Command::new(&self.binary);
        command
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(self.storage.path())
            .args(["--log-file-max", "8MB"])
            .current_dir(self.storage.path());
        if self.auth {
            command.arg("--auth");
        }
        if let Some(files) = &self.tls {
            command
                .arg("--tls-cert-file")
                .arg(&files.cert)
                .arg("--tls-key-file")
                .arg(&files.key);
        }
        let log = self.storage.path().join("server.log");
        self.process = Some(crate::Process::spawn(command, log));
        crate::wait_for_port(self.port);
    }

    /// SIGTERM, then waits (bounded, killing it past 15 s).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.signal("TERM");
            if process
                .wait_bounded(std::time::Duration::from_secs(15))
                .is_none()
            {
                process.kill();
            }
        }
    }
}
