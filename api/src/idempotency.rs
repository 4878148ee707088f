//! Idempotency keys on creating requests, after the IETF httpapi draft "The Idempotency-Key HTTP
//! Header Field" and the rules Stripe documents: the first request with a key creates the
//! resource and its answer is kept with it; a repeat with the same key and the same request gets
//! that answer again; the same key with another request is refused.
//!
//! The key is written in the same row or document as what it created, in one atomic write
//! guarded by a unique index, so there is never a key without its resource or the reverse, and of
//! two racing requests exactly one creates.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest key accepted, in characters.
pub const MAX_KEY_LEN: usize = 255;

/// A client's key: the header's value, 1 to 255 printable ASCII characters, compared byte for
/// byte (the draft's quoted form, `"abc"`, is a key like any other, quotes included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > MAX_KEY_LEN {
            return Err(format!("must be at most {MAX_KEY_LEN} characters"));
        }
        match std::str::from_utf8(raw) {
            Ok(key) if key.bytes().all(|b| (0x20..=0x7e).contains(&b)) => Ok(Self(key.into())),
            _ => Err("must be printable ASCII characters".into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the request asked for, reduced to a digest: a repeat must ask for the same thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The digest of the parts, each length-prefixed so that no two lists share one.
    pub fn of<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut digest = Sha256::new();
        for part in parts {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        Self(hex::encode(digest.finalize()))
    }

    /// The digest of one part fed in pieces: its bytes, then its length.
    pub fn streaming() -> FingerprintStream {
        FingerprintStream {
            digest: Sha256::new(),
            len: 0,
        }
    }

    /// As stored.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A fingerprint being computed piece by piece (an upload as it streams in).
pub struct FingerprintStream {
    digest: Sha256,
    len: u64,
}

impl FingerprintStream {
    pub fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
        self.len += bytes.len() as u64;
    }

    pub fn finish(mut self) -> Fingerprint {
        self.digest.update(self.len.to_be_bytes());
        Fingerprint(hex::encode(self.digest.finalize()))
    }
}

/// The answer given to the first request, given again to repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub location: String,
    /// The JSON body, as sent.
    pub body: String,
}

/// What is kept with the created resource until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub key: IdempotencyKey,
    pub fingerprint: Fingerprint,
    pub response: StoredResponse,
    pub expires_at: DateTime<Utc>,
}

impl KeyRecord {
    /// What a repeat with `fingerprint` gets: the stored answer, or `None` when it asks for
    /// something else than the first request did.
    pub fn replay_for(&self, fingerprint: &Fingerprint) -> Option<&StoredResponse> {
        (self.fingerprint == *fingerprint).then_some(&self.response)
    }
}

/// How a write carrying a key went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free: the resource was created with it.
    Created,
    /// An earlier request holds the key: nothing was written; here is what it stored.
    Taken(KeyRecord),
}

/// Where a key is unique: each creating endpoint has its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Orders,
    Images,
}

impl Scope {
    /// Its name in stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Images => "images",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Fingerprint, IdempotencyKey};

    #[test]
    fn keys_are_1_to_255_printable_ascii_characters() {
        let parse = |raw: &[u8]| IdempotencyKey::parse(raw).map(|k| k.as_str().to_owned());
        assert_eq!(parse(b"abc-123").unwrap(), "abc-123");
        assert_eq!(parse(b"\"abc 123\"").unwrap(), "\"abc 123\"");
        assert_eq!(parse(&[b'k'; 255]).unwrap().len(), 255);
        for bad in [
            &b""[..],
            &[b'k'; 256],
            b"tab\there",
            b"del\x7f",
            "caf\u{e9}".as_bytes(),
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn fingerprints_tell_part_boundaries_apart() {
        let ab = Fingerprint::of([&b"a"[..], b"b"]);
        assert_eq!(ab, Fingerprint::of([&b"a"[..], b"b"]));
        assert_ne!(ab, Fingerprint::of([&b"ab"[..], b""]));
        assert_eq!(ab.as_str().len(), 64);
    }
}
