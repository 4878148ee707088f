/// How many items are ordered: a whole number from 1 to 1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i64);

impl Quantity {
    pub const MIN: i64 = 1;
    pub const MAX: i64 = 1_000_000;

    pub fn parse(value: i64) -> Result<Self, String> {
        if (Self::MIN..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(Self::rule())
        }
    }

    /// The rule, worded for a person; also used when the value is not an integer at all.
    pub fn rule() -> String {
        format!("must be an integer from {} to {}", Self::MIN, Self::MAX)
    }

    /// A value as another writer stored it, kept as it is so that reading it never fails.
    pub fn from_stored(value: i64) -> Self {
        Self(value)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Quantity;

    #[test]
    fn the_bounds_are_valid() {
        assert_eq!(Quantity::parse(1).unwrap().get(), 1);
        assert_eq!(Quantity::parse(1_000_000).unwrap().get(), 1_000_000);
    }

    #[test]
    fn zero_negative_and_too_large_are_rejected() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(-3).is_err());
        assert!(Quantity::parse(1_000_001).is_err());
        assert!(Quantity::parse(i64::MAX).is_err());
    }
}
