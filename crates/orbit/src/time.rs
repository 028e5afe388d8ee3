//! Instants as UTC Unix seconds.

use std::fmt;

/// Seconds in a day.
pub(crate) const DAY_S: f64 = 86_400.0;

/// Julian date of the Unix epoch, 1970-01-01T00:00:00Z.
const JD_UNIX_EPOCH: f64 = 2_440_587.5;

/// Days from 1970-01-01 to J2000.0 (2000-01-01T12:00).
const J2000_FROM_UNIX_DAYS: f64 = 10_957.5;

/// TT − UTC in seconds, valid from 2017-01-01 (37 leap seconds + 32.184 s) until the next leap
/// second. Only the Sun model uses it; an error of a few seconds there is far below its accuracy.
const TT_MINUS_UTC_S: f64 = 69.184;

/// An instant, as UTC seconds since 1970-01-01T00:00:00Z (Unix time, no leap seconds).
///
/// `f64` keeps sub-microsecond resolution over this century, enough for root finding to
/// milliseconds. Everything in this crate that needs Earth rotation treats UTC as UT1: the
/// difference (|UT1 − UTC| < 0.9 s, tens of milliseconds in 2020–2025) rotates the Earth by at
/// most 0.4 km at the equator. See [`crate`] docs for the resulting error budget.
///
/// The crate never reads a clock: callers pass `Epoch`s in.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Epoch(f64);

impl Epoch {
    /// From Unix seconds (UTC).
    pub const fn from_unix_seconds(seconds: f64) -> Epoch {
        Epoch(seconds)
    }

    /// From Unix milliseconds (UTC).
    pub fn from_unix_millis(millis: i64) -> Epoch {
        Epoch(millis as f64 / 1000.0)
    }

    /// Unix seconds (UTC).
    pub const fn unix_seconds(self) -> f64 {
        self.0
    }

    /// Unix milliseconds (UTC), rounded to the nearest millisecond.
    pub fn unix_millis(self) -> i64 {
        (self.0 * 1000.0).round() as i64
    }

    /// The instant `seconds` later (earlier if negative).
    pub fn plus_seconds(self, seconds: f64) -> Epoch {
        Epoch(self.0 + seconds)
    }

    /// Seconds from `earlier` to `self` (negative if `self` is before `earlier`).
    pub fn seconds_since(self, earlier: Epoch) -> f64 {
        self.0 - earlier.0
    }

    /// The Julian date, on the UTC scale (treated as UT1 for Earth rotation).
    pub fn julian_date(self) -> f64 {
        self.0 / DAY_S + JD_UNIX_EPOCH
    }

    /// From a Julian date on the UTC scale.
    pub fn from_julian_date(jd: f64) -> Epoch {
        Epoch((jd - JD_UNIX_EPOCH) * DAY_S)
    }

    /// Days since J2000.0 (2000-01-01T12:00) on the UTC scale, computed without forming the large
    /// Julian date so no precision is lost.
    pub(crate) fn days_since_j2000_utc(self) -> f64 {
        self.0 / DAY_S - J2000_FROM_UNIX_DAYS
    }

    /// Days since J2000.0 on the TT scale (UTC + 69.184 s).
    pub(crate) fn days_since_j2000_tt(self) -> f64 {
        (self.0 + TT_MINUS_UTC_S) / DAY_S - J2000_FROM_UNIX_DAYS
    }

    /// From a UTC calendar date and time. Returns `None` for an invalid date or time
    /// (`second` may be fractional, in `[0, 60)`).
    pub fn from_utc(
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: f64,
    ) -> Option<Epoch> {
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || !(0.0..60.0).contains(&second)
        {
            return None;
        }
        let days = days_from_civil(year, month, day) as f64;
        Some(Epoch(
            days * DAY_S + f64::from(hour) * 3600.0 + f64::from(minute) * 60.0 + second,
        ))
    }

    /// The instant at fractional day-of-year `day_of_year` (1.0 = January 1st, 00:00 UTC) of
    /// `year`, as TLE epochs are written.
    pub(crate) fn from_year_and_day(year: i32, day_of_year: f64) -> Epoch {
        let jan1 = days_from_civil(year, 1, 1) as f64;
        Epoch((jan1 + day_of_year - 1.0) * DAY_S)
    }

    /// Parses an ISO 8601 UTC date-time such as `2024-03-15T12:00:00Z`,
    /// `2024-03-15T12:00:00.123456` (OMM style, no zone), or `2024-03-15 12:00:00+00:00`.
    /// Only UTC offsets (`Z`, `+00:00`, or none) are accepted.
    pub fn parse_iso8601(text: &str) -> Option<Epoch> {
        let text = text.trim();
        let text = text
            .strip_suffix('Z')
            .or_else(|| text.strip_suffix("+00:00"))
            .unwrap_or(text);
        let (date, time) = match text.find(['T', 't', ' ']) {
            Some(i) => (&text[..i], &text[i + 1..]),
            None => (text, "00:00:00"),
        };
        let mut d = date.split('-');
        let year: i32 = parse_digits(d.next()?, 4)?.try_into().ok()?;
        let month = parse_digits(d.next()?, 2)?;
        let day = parse_digits(d.next()?, 2)?;
        if d.next().is_some() {
            return None;
        }
        let mut t = time.split(':');
        let hour = parse_digits(t.next()?, 2)?;
        let minute = parse_digits(t.next()?, 2)?;
        let second = match t.next() {
            Some(s) => parse_seconds(s)?,
            None => 0.0,
        };
        if t.next().is_some() {
            return None;
        }
        Epoch::from_utc(year, month, day, hour, minute, second)
    }

    /// The UTC calendar fields `(year, month, day, hour, minute, second)`.
    pub fn to_utc(self) -> (i32, u32, u32, u32, u32, f64) {
        let days = (self.0 / DAY_S).floor();
        let secs = self.0 - days * DAY_S;
        let (y, m, d) = civil_from_days(days as i64);
        let hour = (secs / 3600.0).floor().clamp(0.0, 23.0);
        let minute = ((secs - hour * 3600.0) / 60.0).floor().clamp(0.0, 59.0);
        let second = secs - hour * 3600.0 - minute * 60.0;
        (y, m, d, hour as u32, minute as u32, second)
    }
}

impl fmt::Display for Epoch {
    /// ISO 8601 with milliseconds, e.g. `2024-03-15T12:00:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounded = Epoch((self.0 * 1000.0).round() / 1000.0);
        let (y, mo, d, h, mi, s) = rounded.to_utc();
        let ms = ((s * 1000.0).round() as u32).min(59_999);
        write!(
            f,
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{:02}.{:03}Z",
            ms / 1000,
            ms % 1000
        )
    }
}

fn parse_digits(s: &str, len: usize) -> Option<u32> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_seconds(s: &str) -> Option<f64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.len() != 2
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 12
    {
        return None;
    }
    s.parse().ok()
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((y + i64::from(m <= 2)) as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trip() {
        let e = Epoch::from_utc(2024, 3, 15, 12, 30, 15.25).unwrap();
        assert_eq!(e.unix_seconds(), 1_710_505_815.25);
        assert_eq!(e.to_string(), "2024-03-15T12:30:15.250Z");
        assert_eq!(Epoch::parse_iso8601("2024-03-15T12:30:15.25Z"), Some(e));
        assert_eq!(Epoch::parse_iso8601("2024-03-15 12:30:15.250000"), Some(e));
        assert_eq!(Epoch::parse_iso8601("2024-02-30T00:00:00"), None);
        assert_eq!(Epoch::parse_iso8601("2024-03-15T12:30:15+02:00"), None);
        assert_eq!(
            Epoch::from_unix_seconds(0.0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Epoch::from_utc(1969, 12, 31, 23, 59, 59.5)
                .unwrap()
                .unix_seconds(),
            -0.5
        );
    }

    #[test]
    fn julian_dates() {
        let j2000 = Epoch::from_utc(2000, 1, 1, 12, 0, 0.0).unwrap();
        assert_eq!(j2000.julian_date(), 2_451_545.0);
        assert_eq!(j2000.days_since_j2000_utc(), 0.0);
        assert_eq!(Epoch::from_julian_date(2_451_545.0), j2000);
        // TLE-style day of year: day 75.5 of 2024 (a leap year) is March 15th, 12:00.
        assert_eq!(
            Epoch::from_year_and_day(2024, 75.5),
            Epoch::from_utc(2024, 3, 15, 12, 0, 0.0).unwrap()
        );
    }
}
