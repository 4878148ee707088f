//! The key a client presents: `shop_<id>_<secret>`, 16 hex digits of id (not secret: it names
//! the key in logs, lists and revocations) and 256 random bits of secret. Only the SHA-256 of
//! the whole key is kept: with 256 bits of entropy nobody can search for a preimage, so a slow
//! password hash (bcrypt, Argon2) would only add milliseconds to every request.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every key starts with, so that a key pasted in the wrong place is recognisable (and
/// secret scanners can match it).
pub const PREFIX: &str = "shop_";
const ID_HEX: usize = 16;
const SECRET_BYTES: usize = 32;
/// Base64 (URL alphabet, unpadded) of the secret.
const SECRET_CHARS: usize = 43;
/// The whole key's length.
pub const LENGTH: usize = PREFIX.len() + ID_HEX + 1 + SECRET_CHARS;

/// A key's public name: 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; ID_HEX]);

impl KeyId {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = text.as_bytes();
        if bytes.len() != ID_HEX || !bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("a key id is {ID_HEX} lowercase hex digits"));
        }
        let mut id = [0; ID_HEX];
        id.copy_from_slice(bytes);
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SHA-256 of a whole key: what is stored. Compared in constant time.
#[derive(Clone, Copy)]
pub struct KeyHash([u8; 32]);

impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other)
    }
}

impl Eq for KeyHash {}

impl KeyHash {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Result<Self, String> {
        let mut hash = [0; 32];
        hex::decode_to_slice(text, &mut hash).map_err(|e| format!("a key hash: {e}"))?;
        Ok(Self(hash))
    }

    /// In constant time: how much of a guess matches says nothing through timing.
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

/// A key as presented (or just made): never logged, never stored.
pub struct ApiKey {
    text: String,
    id: KeyId,
}

impl ApiKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 8 + SECRET_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        let id = hex::encode(&bytes[..8]);
        let secret = URL_SAFE_NO_PAD.encode(&bytes[8..]);
        let text = format!("{PREFIX}{id}_{secret}");
        Self::parse(&text).expect("a generated key has the key's shape")
    }

    /// `None` unless `text` has a key's exact shape.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != LENGTH {
            return None;
        }
        let rest = text.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_at_checked(ID_HEX)?;
        let secret = secret.strip_prefix('_')?;
        let alphabet = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_');
        if secret.len() != SECRET_CHARS || !secret.as_bytes().iter().all(alphabet) {
            return None;
        }
        Some(Self {
            id: KeyId::parse(id).ok()?,
            text: text.to_owned(),
        })
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.text)
    }

    /// The key itself: shown once, to whoever created it.
    pub fn reveal(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}, ..)", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_back_with_its_id_and_hash() {
        let key = ApiKey::generate();
        assert!(key.reveal().starts_with(PREFIX));
        assert_eq!(key.reveal().len(), LENGTH);
        let again = ApiKey::parse(key.reveal()).unwrap();
        assert_eq!(again.id(), key.id());
        assert!(again.hash().matches(&key.hash()));
        assert!(!ApiKey::generate().hash().matches(&key.hash()));
        assert!(!format!("{key:?}").contains(&key.reveal()[22..]));
    }

    #[test]
    fn anything_without_the_exact_shape_is_not_a_key() {
        let key = ApiKey::generate().reveal().to_owned();
        for bad in [
            String::new(),
            key[1..].to_owned(),
            format!("{key}A"),
            key.replace(PREFIX, "shoq_"),
            format!("{}{}", &key[..5], key[5..].to_uppercase()),
            format!("{}!{}", &key[..30], &key[31..]),
            format!("{}-{}", &key[..21], &key[22..]),
            "shop_é".repeat(13),
        ] {
            assert!(ApiKey::parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let hash = KeyHash::of("anything");
        assert!(KeyHash::from_hex(&hash.to_hex()).unwrap().matches(&hash));
        assert!(KeyHash::from_hex("zz").is_err());
    }
}
