use super::text::text_field;

text_field!(
    /// The name of the ordered product: 1 to 200 characters, not blank.
    Product,
    max_chars = 200,
    multiline = false
);

#[cfg(test)]
mod tests {
    use super::Product;

    #[test]
    fn a_200_character_product_is_valid() {
        assert!(Product::parse("é".repeat(200)).is_ok());
    }

    #[test]
    fn a_product_longer_than_200_characters_is_rejected() {
        assert!(Product::parse("a".repeat(201)).is_err());
    }

    #[test]
    fn an_empty_or_whitespace_product_is_rejected() {
        assert!(Product::parse("").is_err());
        assert!(Product::parse(" \t ").is_err());
    }

    #[test]
    fn a_product_with_a_control_character_is_rejected() {
        assert!(Product::parse("Lap\u{0}top").is_err());
        assert!(Product::parse("Lap\ntop").is_err());
    }
}
