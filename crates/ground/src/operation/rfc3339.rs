//! `scheduled_time`: an RFC 3339 date and time with its offset, read strictly (the engine's
//! own timestamps are read in the flight agent).

/// An RFC 3339 date and time with its offset (`2025-05-22T12:10:00+02:00`,
/// `2026-01-01T00:00:00.5Z`) in milliseconds since the Unix epoch. A time before the epoch is
/// refused; one in the past is allowed (the pod starts at once).
pub(crate) fn rfc3339_ms(s: &str) -> Result<u64, String> {
    let bad = |why: &dyn std::fmt::Display| {
        format!(
            "'{s}' is not an RFC 3339 date and time with an offset (2025-05-22T12:10:00+02:00, or Z for UTC): {why}"
        )
    };
    let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| {
        use chrono::format::ParseErrorKind as K;
        match e.kind() {
            // Everything up to the seconds read, so what is missing is the offset.
            K::TooShort if s.len() >= 19 => bad(&"missing offset (Z or +hh:mm)"),
            K::TooShort => bad(&"too short"),
            K::OutOfRange => bad(&"no such date or time"),
            K::TooLong => bad(&"unexpected characters at the end"),
            _ => bad(&"malformed"),
        }
    })?;
    u64::try_from(t.timestamp_millis()).map_err(|_| bad(&"before 1970"))
}

#[cfg(test)]
mod tests {
    use super::rfc3339_ms;

    #[test]
    fn offsets_fractions_and_separators_read() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(rfc3339_ms("2026-01-01T00:00:00.5Z"), Ok(1_767_225_600_500));
        assert_eq!(
            rfc3339_ms("2025-05-22T12:10:00+02:00"),
            rfc3339_ms("2025-05-22T10:10:00Z")
        );
        assert_eq!(
            rfc3339_ms("2025-05-22t10:10:00z"),
            rfc3339_ms("2025-05-22T10:10:00Z")
        );
        assert_eq!(
            rfc3339_ms("2024-02-29T00:00:00-00:30"),
            Ok(1_709_166_600_000)
        );
    }

    #[test]
    fn malformed_or_early_times_say_what_is_wrong() {
        for bad in [
            "2025-05-22T12:10:00",
            "2025-02-30T00:00:00Z",
            "2025-05-22T24:00:00Z",
            "2025-05-22",
            "tomorrow",
            "1969-12-31T23:59:59Z",
            "2025-05-22T12:10:00+2:00",
        ] {
            let e = rfc3339_ms(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("RFC 3339"), "{bad}: {e}");
        }
        assert!(
            rfc3339_ms("1969-12-31T23:59:59Z")
                .unwrap_err()
                .ends_with("before 1970")
        );
    }
}
