//! TLS for the clients of Redis (`rediss://`) and MongoDB (`tls=true`): rustls, whose crypto
//! provider must be chosen once per process when, as here, more than one is built in.

/// Makes aws-lc-rs (rustls's default) the process's provider, if none is yet.
pub fn ensure_crypto_provider() {
    // Fails only when a provider is already installed, which is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
