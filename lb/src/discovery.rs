//! Where the replicas are, found again every `upstreams.resolve_interval_ms` (pingora's
//! `ServiceDiscovery`, run by the balancer's background service): the `upstreams.addresses`
//! entries and the lines of `upstreams.file`, each `HOST:PORT` with HOST an address or a DNS
//! name. A name gives one upstream per address it resolves to (a compose service, droplets'
//! private DNS). A name that fails to resolve, or a file that cannot be read, keeps what it gave
//! last time: a DNS blip must not empty the balancer.
//!
//! A new upstream takes no traffic before its first passing health check ([`FirstPass`]);
//! pingora would count it healthy from the start.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use pingora::lb::Backend;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck};
use pingora::prelude::Result;

/// Upstreams whose health check has passed at least once since they appeared.
pub type Passed = Arc<RwLock<HashSet<SocketAddr>>>;

pub struct Discovery {
    entries: Vec<String>,
    file: Option<PathBuf>,
    passed: Passed,
    /// What each entry resolved to last time it did, and the file's last readable entries.
    last: Mutex<Last>,
}

#[derive(Default)]
struct Last {
    resolved: HashMap<String, Vec<SocketAddr>>,
    file_entries: Vec<String>,
}

impl Discovery {
    pub fn new(entries: Vec<String>, file: Option<PathBuf>, passed: Passed) -> Self {
        Self {
            entries,
            file,
            passed,
            last: Mutex::new(Last::default()),
        }
    }

    /// The file's entries: one `HOST:PORT` per line; blank lines and `#` comments skipped.
    fn file_entries(&self) -> Vec<String> {
        let Some(file) = &self.file else {
            return Vec::new();
        };
        match std::fs::read_to_string(file) {
            Ok(text) => {
                let entries: Vec<String> = text
                    .lines()
                    .map(|line| line.split('#').next().unwrap_or_default().trim())
                    .filter(|line| !line.is_empty())
                    .map(str::to_owned)
                    .collect();
                self.last.lock().expect("never poisoned").file_entries = entries.clone();
                entries
            }
            Err(error) => {
                tracing::warn!(file = %file.display(), %error,
                    "the upstreams file cannot be read; keeping its last entries");
                self.last
                    .lock()
                    .expect("never poisoned")
                    .file_entries
                    .clone()
            }
        }
    }

    async fn resolve(&self, entry: &str) -> Vec<SocketAddr> {
        if let Ok(addr) = entry.parse::<SocketAddr>() {
            return vec![addr];
        }
        match tokio::net::lookup_host(entry).await {
            Ok(found) => {
                let mut found: Vec<SocketAddr> = found.collect();
                found.sort();
                found.dedup();
                self.last
                    .lock()
                    .expect("never poisoned")
                    .resolved
                    .insert(entry.to_owned(), found.clone());
                found
            }
            Err(error) => {
                tracing::warn!(entry, %error, "an upstream name did not resolve; keeping its last addresses");
                self.last
                    .lock()
                    .expect("never poisoned")
                    .resolved
                    .get(entry)
                    .cloned()
                    .unwrap_or_default()
            }
        }
    }
}

#[async_trait]
impl ServiceDiscovery for Discovery {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let mut addresses = BTreeSet::new();
        for entry in self.entries.iter().cloned().chain(self.file_entries()) {
            addresses.extend(self.resolve(&entry).await);
        }
        // An upstream that left and comes back waits for a passing check again.
        self.passed
            .write()
            .expect("never poisoned")
            .retain(|addr| addresses.contains(addr));
        let backends = addresses
            .into_iter()
            .map(|addr| Backend::new(&addr.to_string()))
            .collect::<Result<BTreeSet<_>>>()?;
        Ok((backends, HashMap::new()))
    }
}

/// The HTTP health check, recording which upstreams have passed it.
pub struct FirstPass {
    pub check: HttpHealthCheck,
    pub passed: Passed,
}

#[async_trait]
impl HealthCheck for FirstPass {
    async fn check(&self, target: &Backend) -> Result<()> {
        self.check.check(target).await?;
        if let Some(addr) = target.addr.as_inet()
            && !self.passed.read().expect("never poisoned").contains(addr)
        {
            self.passed.write().expect("never poisoned").insert(*addr);
        }
        Ok(())
    }

    fn health_threshold(&self, success: bool) -> usize {
        self.check.health_threshold(success)
    }
}

/// Whether `entry` is `HOST:PORT` (HOST an address or a name), for the settings' check.
pub fn is_host_port(entry: &str) -> bool {
    if entry.parse::<SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = entry.rsplit_once(':') else {
        return false;
    };
    port.parse::<u16>().is_ok_and(|port| port > 0)
        && !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_an_address_or_a_name_with_a_port() {
        for good in [
            "127.0.0.1:8081",
            "[::1]:8081",
            "api:8080",
            "api-1.internal:80",
        ] {
            assert!(is_host_port(good), "{good}");
        }
        for bad in [
            "127.0.0.1",
            "api",
            "api:",
            ":80",
            "api:0",
            "api:http",
            "a b:80",
            "",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_file_and_names_give_one_upstream_per_address_and_keep_the_last_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("upstreams");
        std::fs::write(
            &file,
            "# replicas\n127.0.0.1:9101\n\n127.0.0.1:9102 # second\n",
        )
        .unwrap();
        let passed = Passed::default();
        passed.write().unwrap().extend([
            "127.0.0.1:9101".parse::<SocketAddr>().unwrap(),
            "127.0.0.1:9999".parse().unwrap(),
        ]);
        let discovery = Discovery::new(
            vec!["localhost:9103".into()],
            Some(file.clone()),
            passed.clone(),
        );
        let addresses = |backends: &BTreeSet<Backend>| -> Vec<String> {
            backends.iter().map(|b| b.addr.to_string()).collect()
        };
        let (found, _) = discovery.discover().await.unwrap();
        let found = addresses(&found);
        for expected in ["127.0.0.1:9101", "127.0.0.1:9102", "127.0.0.1:9103"] {
            assert!(found.contains(&expected.to_owned()), "{found:?}");
        }
        // What is no longer an upstream forgets its passed check.
        assert_eq!(passed.read().unwrap().len(), 1);
        // The file gone: its last entries stay.
        std::fs::remove_file(&file).unwrap();
        let (again, _) = discovery.discover().await.unwrap();
        assert_eq!(addresses(&again), found);
        // An entry removed from the file goes.
        std::fs::write(&file, "127.0.0.1:9102\n").unwrap();
        let (fewer, _) = discovery.discover().await.unwrap();
        assert!(!addresses(&fewer).contains(&"127.0.0.1:9101".to_owned()));
    }
}
