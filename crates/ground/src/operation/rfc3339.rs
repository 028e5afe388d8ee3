//! `scheduled_time`: an RFC 3339 date and time with its offset, read strictly (the engine's
//! own timestamps are read in the flight agent).

/// An RFC 3339 date and time with its offset (`2025-05-22T12:10:00+02:00`,
/// `2026-01-01T00:00:00.5Z`) in milliseconds since the Unix epoch. A time before the epoch or
/// after 9999 is refused; one in the past is allowed (the pod starts at once).
pub(crate) fn rfc3339_ms(s: &str) -> Result<u64, String> {
    let bad = |why: &str| {
        format!(
            "'{s}' is not an RFC 3339 date and time with an offset (2025-05-22T12:10:00+02:00, or Z for UTC): {why}"
        )
    };
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Result<i64, String> {
        let part = b.get(from..from + len).ok_or_else(|| bad("too short"))?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(bad("expected digits"));
        }
        Ok(part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, want: &[u8]| -> Result<(), String> {
        match b.get(at) {
            Some(c) if want.contains(c) => Ok(()),
            _ => Err(bad("misplaced separator")),
        }
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    sep(4, b"-")?;
    sep(7, b"-")?;
    sep(10, b"Tt ")?;
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    sep(13, b":")?;
    sep(16, b":")?;
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return Err(bad("no digits after '.'"));
        }
        let frac = &b[at + 1..at + 1 + digits];
        millis = frac
            .iter()
            .chain(b"000".iter())
            .take(3)
            .fold(0, |n, d| n * 10 + i64::from(d - b'0'));
        at += 1 + digits;
    }
    let offset_min = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if at + 6 == b.len() => {
            sep(at + 3, b":")?;
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return Err(bad("offset out of range"));
            }
            let o = h * 60 + m;
            if *c == b'-' { -o } else { o }
        }
        _ => return Err(bad("missing or malformed offset")),
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return Err(bad("no such date"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("no such time"));
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_min * 60;
    let ms = secs * 1000 + millis;
    u64::try_from(ms).map_err(|_| bad("before 1970"))
}
