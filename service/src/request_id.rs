//! Request ids (`X-Request-Id`) travel with a request through every process and land in every
//! log line. One sent by a client is kept only when it is short and plain; otherwise the process
//! that receives it makes a fresh one, so that ids can neither flood logs nor forge their
//! structure.

/// The header that carries it.
pub const HEADER: &str = "x-request-id";

/// At most 128 ASCII letters, digits, `-`, `_`, `.` and `:`: room for UUIDs and trace ids.
pub fn is_plain(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::is_plain;

    #[test]
    fn uuids_and_trace_ids_are_plain() {
        assert!(is_plain(b"6a16f14f-2c8a-41a0-a389-cfcf3a94dbf6"));
        assert!(is_plain(b"trace-abc_123.4:5"));
        assert!(is_plain(&[b'a'; 128]));
    }

    #[test]
    fn empty_long_spaced_quoted_or_non_ascii_ids_are_not() {
        assert!(!is_plain(b""));
        assert!(!is_plain(&[b'a'; 129]));
        assert!(!is_plain(b"a b"));
        assert!(!is_plain(b"x\" level=ERROR"));
        assert!(!is_plain("ünï".as_bytes()));
    }
}
