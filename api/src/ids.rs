//! How the domains' ids are written: a fixed number of hexadecimal digits, read strictly so that
//! a malformed id is a clear client error, never a lookup.

/// Decodes `value` with `decode` if it is exactly `digits` hexadecimal characters (either case).
pub(crate) fn parse_hex<T>(
    value: &str,
    digits: usize,
    decode: impl FnOnce(&str) -> Option<T>,
) -> Result<T, String> {
    let why = || format!("must be {digits} hexadecimal characters");
    if value.len() != digits || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(why());
    }
    decode(value).ok_or_else(why)
}
