use std::fmt;

use uuid::Uuid;

use crate::ids::parse_hex;

/// An image's identity: a random UUID, shown as 32 lowercase hex characters. It is the only
/// name an image's files get on disk, so nothing a user sends ever becomes part of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageId(Uuid);

impl ImageId {
    /// Accepts exactly 32 hexadecimal characters, in either case.
    pub fn parse(value: &str) -> Result<Self, String> {
        parse_hex(value, 32, |hex| Uuid::try_parse(hex).ok()).map(Self)
    }

    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

#[cfg(test)]
mod tests {
    use super::ImageId;

    #[test]
    fn ids_round_trip_and_only_hex_is_accepted() {
        let id = ImageId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(ImageId::parse(&text).unwrap(), id);
        assert_eq!(ImageId::parse(&text.to_uppercase()).unwrap(), id);
        for bad in [
            "",
            "../../etc/passwd",
            &text[..31],
            &format!("{text}0"),
            "g".repeat(32).as_str(),
        ] {
            assert!(ImageId::parse(bad).is_err(), "{bad:?}");
        }
        let dashed = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert!(ImageId::parse(dashed).is_err());
    }
}
