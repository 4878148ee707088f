use super::text::text_field;

text_field!(
    /// Where the order goes: 1 to 500 characters, not blank; may span several lines.
    CustomerAddress,
    max_chars = 500,
    multiline = true
);

#[cfg(test)]
mod tests {
    use super::CustomerAddress;

    #[test]
    fn a_multiline_address_is_valid() {
        assert!(CustomerAddress::parse("1 Main St\nSpringfield").is_ok());
    }

    #[test]
    fn an_address_of_500_characters_is_valid_and_501_is_rejected() {
        assert!(CustomerAddress::parse("a".repeat(500)).is_ok());
        assert!(CustomerAddress::parse("a".repeat(501)).is_err());
    }

    #[test]
    fn a_blank_address_is_rejected() {
        assert!(CustomerAddress::parse("\n \n").is_err());
    }

    #[test]
    fn an_address_with_a_nul_byte_is_rejected() {
        assert!(CustomerAddress::parse("1 Main St\u{0}").is_err());
    }
}
