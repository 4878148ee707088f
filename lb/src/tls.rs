//! TLS termination (rustls, through pingora's `rustls` feature): the certificate chain and key
//! come from `tls.cert_file` and `tls.key_file`, and are read again when either file changes
//! (certbot's renewals), without a restart and without touching open connections: each new
//! handshake asks [`ReloadingCertificate`] for the current one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the files' modification times are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct ReloadingCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("never poisoned").clone())
    }
}

fn load(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert_file {}: no certificate in it",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("tls.key_file {}: {e}", key_file.display()))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| format!("tls.key_file {}: {e}", key_file.display()))?;
    let certified = CertifiedKey::new(certs, signing);
    certified
        .keys_match()
        .map_err(|e| format!("tls.key_file does not match tls.cert_file: {e}"))?;
    Ok(certified)
}

fn modified(files: &[&Path]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|file| std::fs::metadata(file).and_then(|m| m.modified()).ok())
        .collect()
}

impl ReloadingCertificate {
    /// Loads the pair (an error names the setting) and watches both files from a thread of its
    /// own; a pair that fails to load later is logged and the one in use kept.
    pub fn watch(cert_file: PathBuf, key_file: PathBuf) -> Result<Arc<Self>, String> {
        let loaded = Arc::new(Self {
            current: RwLock::new(Arc::new(load(&cert_file, &key_file)?)),
        });
        let watched = Arc::downgrade(&loaded);
        std::thread::Builder::new()
            .name("tls-reload".into())
            .spawn(move || {
                let mut seen = modified(&[&cert_file, &key_file]);
                loop {
                    std::thread::sleep(WATCH_EVERY);
                    let Some(certificate) = watched.upgrade() else {
                        return;
                    };
                    let now = modified(&[&cert_file, &key_file]);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    match load(&cert_file, &key_file) {
                        Ok(pair) => {
                            *certificate.current.write().expect("never poisoned") = Arc::new(pair);
                            tracing::info!(cert = %cert_file.display(), "certificate reloaded");
                        }
                        Err(error) => tracing::warn!(%error,
                            "the new certificate could not be loaded; keeping the one in use"),
                    }
                }
            })
            .map_err(|e| format!("starting the certificate watcher: {e}"))?;
        Ok(loaded)
    }
}

/// A token of an ACME HTTP-01 challenge path (`/.well-known/acme-challenge/TOKEN`): base64url
/// characters only, so that it can name a file in the challenge folder and nothing else.
pub fn acme_token(path: &str) -> Option<&str> {
    let token = path.strip_prefix(ACME_PREFIX)?;
    let plain = !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then_some(token)
}

pub const ACME_PREFIX: &str = "/.well-known/acme-challenge/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_tokens_name_a_challenge_file() {
        assert_eq!(
            acme_token("/.well-known/acme-challenge/abc-DEF_123"),
            Some("abc-DEF_123")
        );
        for hostile in [
            "/.well-known/acme-challenge/",
            "/.well-known/acme-challenge/../../etc/passwd",
            "/.well-known/acme-challenge/a/b",
            "/.well-known/acme-challenge/a.b",
            "/orders",
        ] {
            assert_eq!(acme_token(hostile), None, "{hostile}");
        }
    }
}
