//! The free-text fields of an order (`Product`, `CustomerName`, `CustomerAddress`): the rules
//! they share, the newtype shape they share, and what sets each apart.

/// Checks a free-text value: not blank, at most `max_chars` characters (Unicode scalar values),
/// and no control characters except, where `multiline` is set, line breaks and tabs.
pub(crate) fn check(value: &str, max_chars: usize, multiline: bool) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("must not be blank".into());
    }
    if value.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Declares a validated text newtype whose only constructor is `parse`.
macro_rules! text_field {
    ($(#[$doc:meta])* $name:ident, max_chars = $max:expr, multiline = $multiline:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(value: impl Into<String>) -> Result<Self, String> {
                let value = value.into();
                $crate::orders::text::check(&value, Self::MAX_CHARS, $multiline)?;
                Ok(Self(value))
            }

            /// A value as another writer stored it (data from before these rules, or from
            /// another application), kept as it is so that reading it never fails.
            pub fn from_stored(value: String) -> Self {
                Self(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

text_field!(
    /// The name of the ordered product: 1 to 200 characters, not blank.
    Product,
    max_chars = 200,
    multiline = false
);

text_field!(
    /// The name of the customer: 1 to 200 characters, not blank.
    CustomerName,
    max_chars = 200,
    multiline = false
);

text_field!(
    /// Where the order goes: 1 to 500 characters, not blank; may span several lines.
    CustomerAddress,
    max_chars = 500,
    multiline = true
);

#[cfg(test)]
mod tests {
    use super::{CustomerAddress, CustomerName, Product};

    #[test]
    fn each_field_takes_up_to_its_length_in_characters_and_no_more() {
        // Counted in characters, not bytes: "é" and "ё" are two bytes each.
        assert!(Product::parse("é".repeat(200)).is_ok());
        assert!(Product::parse("a".repeat(201)).is_err());
        assert!(CustomerName::parse("ё".repeat(200)).is_ok());
        assert!(CustomerName::parse("a".repeat(201)).is_err());
        assert!(CustomerAddress::parse("a".repeat(500)).is_ok());
        assert!(CustomerAddress::parse("a".repeat(501)).is_err());
    }

    #[test]
    fn a_blank_value_is_rejected_in_every_field() {
        assert!(Product::parse("").is_err());
        assert!(Product::parse(" \t ").is_err());
        assert!(CustomerName::parse("   ").is_err());
        assert!(CustomerAddress::parse("\n \n").is_err());
    }

    #[test]
    fn only_the_address_may_span_several_lines() {
        assert!(CustomerAddress::parse("1 Main St\nSpringfield").is_ok());
        assert!(CustomerName::parse("John\nDoe").is_err());
        assert!(Product::parse("Lap\ntop").is_err());
    }

    #[test]
    fn a_control_character_is_rejected_in_every_field() {
        assert!(Product::parse("Lap\u{0}top").is_err());
        assert!(CustomerName::parse("John\u{7}").is_err());
        assert!(CustomerAddress::parse("1 Main St\u{0}").is_err());
    }
}
