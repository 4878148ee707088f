use super::text::text_field;

text_field!(
    /// The name of the customer: 1 to 200 characters, not blank.
    CustomerName,
    max_chars = 200,
    multiline = false
);

#[cfg(test)]
mod tests {
    use super::CustomerName;

    #[test]
    fn a_name_of_200_graphemes_is_valid() {
        assert!(CustomerName::parse("ё".repeat(200)).is_ok());
    }

    #[test]
    fn a_name_longer_than_200_characters_is_rejected() {
        assert!(CustomerName::parse("a".repeat(201)).is_err());
    }

    #[test]
    fn a_blank_name_is_rejected() {
        assert!(CustomerName::parse("   ").is_err());
    }

    #[test]
    fn a_name_with_a_line_break_is_rejected() {
        assert!(CustomerName::parse("John\nDoe").is_err());
    }
}
