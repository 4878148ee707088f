//! The rules shared by the free-text fields of an order, and the newtype shape they share.

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
pub(crate) use text_field;
