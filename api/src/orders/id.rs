use std::fmt;

use bson::oid::ObjectId;

use crate::ids::parse_hex;

/// An order's identity: a MongoDB ObjectId, shown as 24 lowercase hex characters on every backend.
/// ObjectIds start with their creation time, so ordering by id is ordering by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderId(ObjectId);

impl OrderId {
    pub fn generate() -> Self {
        Self(ObjectId::new())
    }

    /// Accepts exactly 24 hexadecimal characters, in either case.
    pub fn parse(value: &str) -> Result<Self, String> {
        parse_hex(value, 24, |hex| ObjectId::parse_str(hex).ok()).map(Self)
    }

    pub fn from_bytes(bytes: [u8; 12]) -> Self {
        Self(ObjectId::from_bytes(bytes))
    }

    pub fn bytes(&self) -> [u8; 12] {
        self.0.bytes()
    }

    pub fn object_id(&self) -> ObjectId {
        self.0
    }
}

impl From<ObjectId> for OrderId {
    fn from(id: ObjectId) -> Self {
        Self(id)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderId;

    #[test]
    fn a_generated_id_round_trips_through_its_text() {
        let id = OrderId::generate();
        assert_eq!(OrderId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(id.to_string().len(), 24);
    }

    #[test]
    fn uppercase_hex_is_accepted_and_shown_lowercase() {
        let id = OrderId::parse("65A1B2C3D4E5F60718293A4B").unwrap();
        assert_eq!(id.to_string(), "65a1b2c3d4e5f60718293a4b");
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "123",
            "zzzzzzzzzzzzzzzzzzzzzzzz",
            "65a1b2c3d4e5f60718293a4b0",
            "../../etc/passwd",
        ] {
            assert!(OrderId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let first = OrderId::generate();
        let second = OrderId::generate();
        assert!(first < second);
        assert!(first.to_string() < second.to_string());
    }
}
