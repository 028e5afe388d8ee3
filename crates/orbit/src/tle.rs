//! Two-line element sets and OMM JSON: parsing with column-exact errors.

use std::fmt;

use crate::time::Epoch;

/// Mean orbital elements of one satellite at one epoch, as published in a TLE or an OMM.
///
/// The values are exactly those of the source (SGP4 "Kozai" mean elements, TEME frame); they are
/// checked for range when parsed and are meaningful only to SGP4 (see [`crate::Propagator`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Tle {
    /// The object name (line 0 of a three-line set, or `OBJECT_NAME`), if given.
    pub name: Option<String>,
    /// NORAD catalog number (Alpha-5 numbers such as `A0001` decode to 100001).
    pub catalog_number: u32,
    /// Classification: `U`, `C` or `S`.
    pub classification: char,
    /// International designator, TLE style (`98067A`), possibly empty.
    pub international_designator: String,
    /// Epoch of the elements (UTC).
    pub epoch: Epoch,
    /// First time derivative of the mean motion divided by two, rev/day² (TLE field; unused by SGP4).
    pub mean_motion_dot: f64,
    /// Second time derivative of the mean motion divided by six, rev/day³ (unused by SGP4).
    pub mean_motion_ddot: f64,
    /// B* drag term, 1/Earth radii.
    pub bstar: f64,
    /// Element set number.
    pub element_set_number: u32,
    /// Inclination, degrees in [0, 180].
    pub inclination_deg: f64,
    /// Right ascension of the ascending node, degrees in [0, 360].
    pub raan_deg: f64,
    /// Eccentricity in [0, 1).
    pub eccentricity: f64,
    /// Argument of perigee, degrees in [0, 360].
    pub arg_perigee_deg: f64,
    /// Mean anomaly, degrees in [0, 360].
    pub mean_anomaly_deg: f64,
    /// Mean motion, revolutions per day (> 0).
    pub mean_motion_rev_per_day: f64,
    /// Revolution number at epoch.
    pub revolution_number: u32,
}

/// Why a TLE or OMM could not be read. Opaque: match on [`TleError::kind`].
#[derive(Debug, Clone, PartialEq)]
pub struct TleError {
    kind: TleErrorKind,
    line: u8,
    text_line: Option<usize>,
    detail: String,
}

/// The ways a TLE or OMM can be bad. Columns are 1-based, as in the TLE format specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TleErrorKind {
    /// A line is not 69 characters long (after trailing whitespace is removed).
    BadLength {
        /// The length found.
        len: usize,
    },
    /// A character that is not printable ASCII.
    BadCharacter {
        /// Where it is.
        column: usize,
    },
    /// Column 1 is not the line number (`1` or `2`).
    BadLineNumber,
    /// The modulo-10 checksum in column 69 does not match the line.
    BadChecksum {
        /// The checksum computed from columns 1–68.
        expected: u8,
        /// The digit in column 69.
        found: u8,
    },
    /// A field that does not parse or is out of range.
    BadField {
        /// The first column of the field.
        column: usize,
    },
    /// Lines 1 and 2 carry different catalog numbers.
    MismatchedCatalogNumber,
    /// A set is missing a line (text input ended early, or a line 1 without its line 2).
    MissingLine,
    /// The OMM document is not JSON, or not an object or array of objects.
    BadJson,
    /// An OMM key is missing or its value is unusable.
    BadOmmField,
}

impl TleError {
    /// What was wrong.
    pub fn kind(&self) -> TleErrorKind {
        self.kind
    }

    /// The TLE line (0 = name, 1 or 2) the error is on; 0 also for OMM errors.
    pub fn line(&self) -> u8 {
        self.line
    }

    /// For [`parse_tle_text`], the 1-based line of the text where the faulty set starts.
    pub fn text_line(&self) -> Option<usize> {
        self.text_line
    }

    fn new(kind: TleErrorKind, line: u8, detail: impl Into<String>) -> TleError {
        TleError {
            kind,
            line,
            text_line: None,
            detail: detail.into(),
        }
    }

    fn omm(kind: TleErrorKind, detail: impl Into<String>) -> TleError {
        TleError::new(kind, 0, detail)
    }
}

impl fmt::Display for TleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.text_line {
            write!(f, "text line {n}: ")?;
        }
        match self.kind {
            TleErrorKind::BadJson | TleErrorKind::BadOmmField => write!(f, "omm: {}", self.detail),
            TleErrorKind::BadLength { .. } | TleErrorKind::MissingLine if self.line == 0 => {
                write!(f, "tle: {}", self.detail)
            }
            TleErrorKind::BadCharacter { column } | TleErrorKind::BadField { column } => {
                write!(
                    f,
                    "tle line {}, column {column}: {}",
                    self.line, self.detail
                )
            }
            TleErrorKind::BadChecksum { .. } => {
                write!(f, "tle line {}, column 69: {}", self.line, self.detail)
            }
            _ => write!(f, "tle line {}: {}", self.line, self.detail),
        }
    }
}

impl std::error::Error for TleError {}

impl Tle {
    /// Parses a two-line element set. `name` is the optional line 0 (a leading `0 ` is removed).
    ///
    /// Each line must be exactly 69 printable ASCII characters (trailing whitespace, such as
    /// `\r`, is ignored) with a valid checksum. Never panics.
    pub fn parse(name: Option<&str>, line1: &str, line2: &str) -> Result<Tle, TleError> {
        let l1 = check_line(line1, 1)?;
        let l2 = check_line(line2, 2)?;

        let catalog_number = parse_catalog(l1, 1)?;
        let classification = char::from(l1[7]);
        if !matches!(classification, 'U' | 'C' | 'S' | ' ') {
            return Err(bad_field(
                1,
                8,
                "classification",
                "expected U, C or S",
                &l1[7..8],
            ));
        }
        let international_designator = text(l1, 10, 17).trim().to_owned();
        let epoch_year = parse_uint(l1, 1, 19, 20, "epoch year")?;
        let epoch_day = parse_decimal(l1, 1, 21, 32, "epoch day")?;
        if !(1.0..367.0).contains(&epoch_day) {
            return Err(bad_field(
                1,
                21,
                "epoch day",
                "out of range [1, 367)",
                text(l1, 21, 32),
            ));
        }
        // Two-digit years: 57–99 are 1957–1999, 00–56 are 2000–2056 (the TLE convention).
        let year = if epoch_year < 57 {
            2000 + epoch_year
        } else {
            1900 + epoch_year
        };
        let epoch = Epoch::from_year_and_day(year as i32, epoch_day);
        let mean_motion_dot = parse_decimal(l1, 1, 34, 43, "mean motion derivative")?;
        let mean_motion_ddot =
            parse_implied_exponent(l1, 1, 45, 52, "mean motion second derivative")?;
        let bstar = parse_implied_exponent(l1, 1, 54, 61, "bstar")?;
        let element_set_number = parse_uint_or_blank(l1, 1, 65, 68, "element set number")?;

        if parse_catalog(l2, 2)? != catalog_number {
            return Err(TleError::new(
                TleErrorKind::MismatchedCatalogNumber,
                2,
                format!(
                    "catalog number {:?} differs from line 1's {:?}",
                    text(l2, 3, 7),
                    text(l1, 3, 7)
                ),
            ));
        }
        let inclination_deg = parse_decimal(l2, 2, 9, 16, "inclination")?;
        let raan_deg = parse_decimal(l2, 2, 18, 25, "right ascension of the ascending node")?;
        let ecc_text = text(l2, 27, 33);
        if !ecc_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_field(
                2,
                27,
                "eccentricity",
                "expected 7 digits",
                ecc_text,
            ));
        }
        let eccentricity = parse_f64(&format!("0.{ecc_text}"))
            .ok_or_else(|| bad_field(2, 27, "eccentricity", "expected 7 digits", ecc_text))?;
        let arg_perigee_deg = parse_decimal(l2, 2, 35, 42, "argument of perigee")?;
        let mean_anomaly_deg = parse_decimal(l2, 2, 44, 51, "mean anomaly")?;
        let mean_motion_rev_per_day = parse_decimal(l2, 2, 53, 63, "mean motion")?;
        let revolution_number = parse_uint_or_blank(l2, 2, 64, 68, "revolution number")?;

        let tle = Tle {
            name: name.map(clean_name).filter(|n| !n.is_empty()),
            catalog_number,
            classification,
            international_designator,
            epoch,
            mean_motion_dot,
            mean_motion_ddot,
            bstar,
            element_set_number,
            inclination_deg,
            raan_deg,
            eccentricity,
            arg_perigee_deg,
            mean_anomaly_deg,
            mean_motion_rev_per_day,
            revolution_number,
        };
        if let Some((field, why)) = tle.range_problem() {
            let (line, column) = match field {
                "inclination" => (2, 9),
                "right ascension of the ascending node" => (2, 18),
                "argument of perigee" => (2, 35),
                "mean anomaly" => (2, 44),
                _ => (2, 53),
            };
            return Err(TleError::new(
                TleErrorKind::BadField { column },
                line,
                format!("{field}: {why}"),
            ));
        }
        Ok(tle)
    }

    /// The orbital period in seconds, from the mean motion.
    pub fn period_s(&self) -> f64 {
        86_400.0 / self.mean_motion_rev_per_day
    }

    /// The first range violation of the elements, as `(field, why)`.
    fn range_problem(&self) -> Option<(&'static str, String)> {
        let angle = |name: &'static str, v: f64, max: f64| {
            (!(0.0..=max).contains(&v)).then(|| (name, format!("{v} out of range [0, {max}]")))
        };
        angle("inclination", self.inclination_deg, 180.0)
            .or_else(|| {
                angle(
                    "right ascension of the ascending node",
                    self.raan_deg,
                    360.0,
                )
            })
            .or_else(|| angle("argument of perigee", self.arg_perigee_deg, 360.0))
            .or_else(|| angle("mean anomaly", self.mean_anomaly_deg, 360.0))
            .or_else(|| {
                (!(0.0..1.0).contains(&self.eccentricity)).then(|| {
                    (
                        "eccentricity",
                        format!("{} out of range [0, 1)", self.eccentricity),
                    )
                })
            })
            .or_else(|| {
                (!(self.mean_motion_rev_per_day > 0.0 && self.mean_motion_rev_per_day < 20.0)).then(
                    || {
                        (
                            "mean motion",
                            format!(
                                "{} rev/day out of range (0, 20)",
                                self.mean_motion_rev_per_day
                            ),
                        )
                    },
                )
            })
    }
}

/// Parses text holding any number of two- or three-line element sets (CelesTrak's `.txt`
/// format). Blank lines are skipped; a name line may carry a leading `0 `. The first faulty set
/// stops the parse; its error says at which line of the text the set starts.
pub fn parse_tle_text(text: &str) -> Result<Vec<Tle>, TleError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end()))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (start, first) = lines[i];
        let is_line1 = |l: &str| l.starts_with("1 ");
        let (name, l1_at) = if is_line1(first) {
            (None, i)
        } else {
            (Some(first), i + 1)
        };
        let at = |e: TleError| TleError {
            text_line: Some(start),
            ..e
        };
        let (Some(&(_, l1)), Some(&(_, l2))) = (lines.get(l1_at), lines.get(l1_at + 1)) else {
            return Err(at(TleError::new(
                TleErrorKind::MissingLine,
                0,
                "element set ends before its line 2",
            )));
        };
        out.push(Tle::parse(name, l1, l2).map_err(at)?);
        i = l1_at + 2;
    }
    Ok(out)
}

/// Parses OMM JSON as served by CelesTrak (`FORMAT=json`) or Space-Track: one object or an
/// array of objects with keys such as `EPOCH`, `MEAN_MOTION`, `ECCENTRICITY`, `INCLINATION`,
/// `RA_OF_ASC_NODE`, `ARG_OF_PERICENTER`, `MEAN_ANOMALY`, `NORAD_CAT_ID`, `BSTAR`. Numbers may be
/// JSON numbers or strings. Never panics.
pub fn parse_omm_json(json: &str) -> Result<Vec<Tle>, TleError> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| TleError::omm(TleErrorKind::BadJson, format!("invalid json: {e}")))?;
    let records = match value {
        serde_json::Value::Array(items) => items,
        object @ serde_json::Value::Object(_) => vec![object],
        _ => {
            return Err(TleError::omm(
                TleErrorKind::BadJson,
                "expected an object or an array of objects",
            ));
        }
    };
    records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            omm_record(record).map_err(|detail| {
                TleError::omm(
                    TleErrorKind::BadOmmField,
                    format!("record {index}: {detail}"),
                )
            })
        })
        .collect()
}

fn omm_record(record: &serde_json::Value) -> Result<Tle, String> {
    let object = record.as_object().ok_or("expected a json object")?;
    let get = |key: &str| object.get(key).filter(|v| !v.is_null());
    let number = |key: &str, default: Option<f64>| -> Result<f64, String> {
        match get(key) {
            None => default.ok_or_else(|| format!("missing key {key}")),
            Some(serde_json::Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| format!("{key}: not a finite number")),
            Some(serde_json::Value::String(s)) => {
                parse_f64(s.trim()).ok_or_else(|| format!("{key}: {s:?} is not a number"))
            }
            Some(other) => Err(format!("{key}: expected a number, found {other}")),
        }
    };
    let whole = |key: &str, default: Option<f64>| -> Result<u32, String> {
        let v = number(key, default)?;
        if v.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&v) {
            return Err(format!("{key}: {v} is not a non-negative integer"));
        }
        Ok(v as u32)
    };
    let string = |key: &str| get(key).and_then(|v| v.as_str()).map(str::trim);

    let epoch_text = string("EPOCH").ok_or("missing key EPOCH")?;
    let epoch = Epoch::parse_iso8601(epoch_text)
        .ok_or_else(|| format!("EPOCH: {epoch_text:?} is not an ISO 8601 UTC date-time"))?;
    let classification = match string("CLASSIFICATION_TYPE") {
        None | Some("") => 'U',
        Some(c @ ("U" | "C" | "S")) => c.chars().next().unwrap_or('U'),
        Some(c) => return Err(format!("CLASSIFICATION_TYPE: {c:?} is not U, C or S")),
    };
    let tle = Tle {
        name: string("OBJECT_NAME")
            .map(str::to_owned)
            .filter(|n| !n.is_empty()),
        catalog_number: whole("NORAD_CAT_ID", None)?,
        classification,
        international_designator: string("OBJECT_ID").map(tle_designator).unwrap_or_default(),
        epoch,
        mean_motion_dot: number("MEAN_MOTION_DOT", Some(0.0))?,
        mean_motion_ddot: number("MEAN_MOTION_DDOT", Some(0.0))?,
        bstar: number("BSTAR", Some(0.0))?,
        element_set_number: whole("ELEMENT_SET_NO", Some(0.0))?,
        inclination_deg: number("INCLINATION", None)?,
        raan_deg: number("RA_OF_ASC_NODE", None)?,
        eccentricity: number("ECCENTRICITY", None)?,
        arg_perigee_deg: number("ARG_OF_PERICENTER", None)?,
        mean_anomaly_deg: number("MEAN_ANOMALY", None)?,
        mean_motion_rev_per_day: number("MEAN_MOTION", None)?,
        revolution_number: whole("REV_AT_EPOCH", Some(0.0))?,
    };
    if let Some((field, why)) = tle.range_problem() {
        return Err(format!("{field}: {why}"));
    }
    Ok(tle)
}

/// `1998-067A` → `98067A`; anything else is kept as is.
fn tle_designator(object_id: &str) -> String {
    let b = object_id.as_bytes();
    if b.len() >= 9 && b[4] == b'-' && b[..4].iter().all(u8::is_ascii_digit) {
        format!("{}{}", &object_id[2..4], &object_id[5..])
    } else {
        object_id.to_owned()
    }
}

fn clean_name(name: &str) -> String {
    let name = name.trim();
    name.strip_prefix("0 ").unwrap_or(name).trim().to_owned()
}

/// Validates length, characters, line number and checksum; returns the 69 bytes.
fn check_line(line: &str, number: u8) -> Result<&[u8], TleError> {
    let line = line.trim_end();
    if let Some(i) = line.bytes().position(|b| !(b' '..=b'~').contains(&b)) {
        // Report the character column, not the byte offset.
        let column = line[..i].chars().count() + 1;
        return Err(TleError::new(
            TleErrorKind::BadCharacter { column },
            number,
            "not a printable ascii character",
        ));
    }
    let b = line.as_bytes();
    if b.len() != 69 {
        return Err(TleError::new(
            TleErrorKind::BadLength { len: b.len() },
            number,
            format!("expected 69 characters, found {}", b.len()),
        ));
    }
    if b[0] != b'0' + number {
        return Err(TleError::new(
            TleErrorKind::BadLineNumber,
            number,
            format!(
                "expected line number {number} in column 1, found {:?}",
                char::from(b[0])
            ),
        ));
    }
    if !b[68].is_ascii_digit() {
        return Err(bad_field(
            number,
            69,
            "checksum",
            "expected a digit",
            &b[68..69],
        ));
    }
    let expected = checksum(&b[..68]);
    let found = b[68] - b'0';
    if expected != found {
        return Err(TleError::new(
            TleErrorKind::BadChecksum { expected, found },
            number,
            format!("checksum is {found}, the line sums to {expected}"),
        ));
    }
    Ok(b)
}

/// The TLE checksum: digits count their value, `-` counts 1, modulo 10.
pub(crate) fn checksum(bytes: &[u8]) -> u8 {
    let sum: u32 = bytes
        .iter()
        .map(|&b| match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'-' => 1,
            _ => 0,
        })
        .sum();
    (sum % 10) as u8
}

/// Columns `from..=to` (1-based) of a validated 69-byte ASCII line.
fn text(line: &[u8], from: usize, to: usize) -> &str {
    // The line is printable ASCII (checked), so any byte range is valid UTF-8.
    std::str::from_utf8(&line[from - 1..to]).unwrap_or("")
}

fn bad_field(line: u8, column: usize, field: &str, why: &str, found: impl AsRef<[u8]>) -> TleError {
    TleError::new(
        TleErrorKind::BadField { column },
        line,
        format!(
            "{field}: {why}, found {:?}",
            String::from_utf8_lossy(found.as_ref())
        ),
    )
}

fn parse_catalog(line: &[u8], number: u8) -> Result<u32, TleError> {
    let field = text(line, 3, 7);
    let err = || {
        bad_field(
            number,
            3,
            "catalog number",
            "expected 5 digits or Alpha-5",
            field,
        )
    };
    let trimmed = field.trim_start();
    let first = *field.as_bytes().first().ok_or_else(err)?;
    if first.is_ascii_uppercase() {
        // Alpha-5: A=10 … Z=33, skipping I and O.
        let rest = &field[1..];
        if first == b'I' || first == b'O' || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let skip = u32::from(first > b'I') + u32::from(first > b'O');
        let lead = u32::from(first - b'A') + 10 - skip;
        return rest
            .parse::<u32>()
            .map(|r| lead * 10_000 + r)
            .map_err(|_| err());
    }
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    trimmed.parse().map_err(|_| err())
}

fn parse_uint(
    line: &[u8],
    number: u8,
    from: usize,
    to: usize,
    field: &str,
) -> Result<u32, TleError> {
    let s = text(line, from, to);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_field(number, from, field, "expected digits", s));
    }
    s.parse()
        .map_err(|_| bad_field(number, from, field, "expected digits", s))
}

fn parse_uint_or_blank(
    line: &[u8],
    number: u8,
    from: usize,
    to: usize,
    field: &str,
) -> Result<u32, TleError> {
    let s = text(line, from, to).trim();
    if s.is_empty() {
        return Ok(0);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_field(number, from, field, "expected digits", s));
    }
    s.parse()
        .map_err(|_| bad_field(number, from, field, "expected digits", s))
}

/// A decimal number such as ` 51.6416`, `-.00002218` or `+.00001`.
fn parse_decimal(
    line: &[u8],
    number: u8,
    from: usize,
    to: usize,
    field: &str,
) -> Result<f64, TleError> {
    let raw = text(line, from, to);
    let s = raw.trim();
    let err = || bad_field(number, from, field, "expected a decimal number", raw);
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || digits.bytes().filter(|&b| b == b'.').count() > 1
        || digits == "."
    {
        return Err(err());
    }
    let v = parse_f64(s.strip_prefix('+').unwrap_or(s)).ok_or_else(err)?;
    Ok(v)
}

/// The TLE "implied decimal point" form: ` 12345-4` is 0.12345e-4, `-11606-4` is −0.11606e-4.
fn parse_implied_exponent(
    line: &[u8],
    number: u8,
    from: usize,
    to: usize,
    field: &str,
) -> Result<f64, TleError> {
    let raw = text(line, from, to);
    let err = || bad_field(number, from, field, "expected the form ±NNNNN±N", raw);
    let s = raw.trim();
    if s.is_empty() {
        return Ok(0.0);
    }
    let (sign, rest) = match s.as_bytes()[0] {
        b'-' => (-1.0, &s[1..]),
        b'+' => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    let rb = rest.as_bytes();
    if rb.len() < 3 {
        return Err(err());
    }
    let exp_digit = rb[rb.len() - 1];
    let exp_sign = rb[rb.len() - 2];
    let mantissa = &rest[..rest.len() - 2];
    if !exp_digit.is_ascii_digit()
        || !matches!(exp_sign, b'+' | b'-' | b' ')
        || mantissa.is_empty()
        || !mantissa.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(err());
    }
    let m = parse_f64(&format!("0.{mantissa}")).ok_or_else(err)?;
    let e = i32::from(exp_digit - b'0') * if exp_sign == b'-' { -1 } else { 1 };
    Ok(sign * m * 10f64.powi(e))
}

/// `str::parse::<f64>` that refuses `inf`, `nan` and non-finite results.
fn parse_f64(s: &str) -> Option<f64> {
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    const L1: &str = "1 25544U 98067A   24075.50000000  .00016717  00000+0  30275-3 0  9994";
    const L2: &str = "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579445214";

    fn kind_of(l1: &str, l2: &str) -> TleErrorKind {
        Tle::parse(None, l1, l2).unwrap_err().kind()
    }

    /// Replaces column `col` (1-based) with `c` and fixes the checksum.
    fn patch(line: &str, col: usize, c: char) -> String {
        let mut b: Vec<u8> = line.as_bytes().to_vec();
        b[col - 1] = c as u8;
        b[68] = b'0' + checksum(&b[..68]);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn parses_fields() {
        let tle = Tle::parse(Some("0 ISS (ZARYA)"), L1, L2).unwrap();
        assert_eq!(tle.name.as_deref(), Some("ISS (ZARYA)"));
        assert_eq!(tle.catalog_number, 25544);
        assert_eq!(tle.international_designator, "98067A");
        assert_eq!(tle.epoch, Epoch::from_utc(2024, 3, 15, 12, 0, 0.0).unwrap());
        assert_eq!(tle.mean_motion_dot, 0.00016717);
        assert!((tle.bstar - 0.30275e-3).abs() < 1e-15);
        assert_eq!(tle.element_set_number, 999);
        assert_eq!(tle.inclination_deg, 51.6416);
        assert_eq!(tle.eccentricity, 0.0006703);
        assert_eq!(tle.mean_motion_rev_per_day, 15.50377579);
        assert_eq!(tle.revolution_number, 44521);
        // Trailing whitespace and CR are tolerated.
        assert!(Tle::parse(None, &format!("{L1} \r"), L2).is_ok());
    }

    #[test]
    fn clear_errors() {
        let bad_sum = format!("{}5", &L1[..68]);
        assert_eq!(
            kind_of(&bad_sum, L2),
            TleErrorKind::BadChecksum {
                expected: 4,
                found: 5
            }
        );
        let e = Tle::parse(None, &bad_sum, L2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tle line 1, column 69: checksum is 5, the line sums to 4"
        );

        assert_eq!(kind_of(&L1[..60], L2), TleErrorKind::BadLength { len: 60 });
        assert_eq!(kind_of(L1, L1), TleErrorKind::BadLineNumber);
        assert_eq!(
            kind_of(L1, &patch(L2, 7, '5')),
            TleErrorKind::MismatchedCatalogNumber
        );
        assert_eq!(
            kind_of(L1, &patch(L2, 30, 'x')),
            TleErrorKind::BadField { column: 27 }
        );
        assert_eq!(
            kind_of(&patch(L1, 25, 'x'), L2),
            TleErrorKind::BadField { column: 21 }
        );
        assert_eq!(
            kind_of(&patch(L1, 58, 'x'), L2),
            TleErrorKind::BadField { column: 54 }
        );
        // Inclination 251.6416 parses but is out of range.
        assert_eq!(
            kind_of(L1, &patch(L2, 9, '2')),
            TleErrorKind::BadField { column: 9 }
        );
        let e = Tle::parse(None, L1, &patch(L2, 9, '2')).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tle line 2, column 9: inclination: 251.6416 out of range [0, 180]"
        );
        assert_eq!(
            kind_of(L1, &L2.replace("51.6416", "5é.641")),
            TleErrorKind::BadCharacter { column: 11 }
        );
        // `nan` is not a number here.
        let nan = format!("2 25544      nan{}", &L2[16..]);
        assert_eq!(
            kind_of(L1, &patch(&nan, 1, '2')),
            TleErrorKind::BadField { column: 9 }
        );
    }

    #[test]
    fn alpha5_catalog_numbers() {
        let l1 = patch(L1, 3, 'A');
        let l2 = patch(L2, 3, 'A');
        let l1 = patch(&l1, 4, '0');
        let l2 = patch(&l2, 4, '0');
        assert_eq!(Tle::parse(None, &l1, &l2).unwrap().catalog_number, 100544);
        let l1 = patch(L1, 3, 'Z');
        let l2 = patch(L2, 3, 'Z');
        assert_eq!(Tle::parse(None, &l1, &l2).unwrap().catalog_number, 335544);
    }

    #[test]
    fn text_with_two_and_three_line_sets() {
        let text = format!("ISS (ZARYA)\n{L1}\n{L2}\n\n{L1}\r\n{L2}\r\n");
        let sets = parse_tle_text(&text).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].name.as_deref(), Some("ISS (ZARYA)"));
        assert_eq!(sets[1].name, None);

        let e = parse_tle_text(&format!("ISS\n{L1}\n{L2}\nNEXT\n{L1}\n")).unwrap_err();
        assert_eq!(e.kind(), TleErrorKind::MissingLine);
        assert_eq!(e.text_line(), Some(4));
        let e = parse_tle_text(&format!("{L1}\n{}0\n", &L2[..68])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "text line 1: tle line 2, column 69: checksum is 0, the line sums to 4"
        );
    }

    #[test]
    fn omm_json() {
        let json = r#"[{"OBJECT_NAME":"ISS (ZARYA)","OBJECT_ID":"1998-067A",
            "EPOCH":"2024-03-15T12:00:00.000000","MEAN_MOTION":15.50377579,
            "ECCENTRICITY":0.0006703,"INCLINATION":51.6416,"RA_OF_ASC_NODE":247.4627,
            "ARG_OF_PERICENTER":130.536,"MEAN_ANOMALY":325.0288,"EPHEMERIS_TYPE":0,
            "CLASSIFICATION_TYPE":"U","NORAD_CAT_ID":25544,"ELEMENT_SET_NO":999,
            "REV_AT_EPOCH":44521,"BSTAR":0.00030275,"MEAN_MOTION_DOT":0.00016717,
            "MEAN_MOTION_DDOT":0}]"#;
        let from_omm = parse_omm_json(json).unwrap().remove(0);
        let mut from_tle = Tle::parse(Some("ISS (ZARYA)"), L1, L2).unwrap();
        from_tle.bstar = from_omm.bstar;
        assert_eq!(from_omm, from_tle);

        // Space-Track style: numbers as strings.
        let strings = json.replace("15.50377579", "\"15.50377579\"");
        assert_eq!(
            parse_omm_json(&strings).unwrap()[0].mean_motion_rev_per_day,
            15.50377579
        );

        let e = parse_omm_json(&json.replace("\"MEAN_MOTION\":", "\"MM\":")).unwrap_err();
        assert_eq!(e.kind(), TleErrorKind::BadOmmField);
        assert_eq!(e.to_string(), "omm: record 0: missing key MEAN_MOTION");
        assert_eq!(
            parse_omm_json("[1").unwrap_err().kind(),
            TleErrorKind::BadJson
        );
        let e = parse_omm_json(&json.replace("0.0006703", "1.5")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "omm: record 0: eccentricity: 1.5 out of range [0, 1)"
        );
    }
}
