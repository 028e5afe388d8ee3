//! A digest of the onboard telemetry history ([`Message::TelemetryDigest`]): per data type,
//! buckets of a fixed width of mission time, each with how many samples it holds and their
//! minimum, mean and maximum. The flight agent sends what it has not sent yet; the ground keeps
//! it and plots it (`docs/telemetry.md`).
//!
//! Values are whole thousandths of the series' unit (`i32`: 80.125 % is `80125`), so that a
//! bucket is a dozen bytes on the link and the ground stores integers. A digest is checked whole
//! by [`TelemetryDigest::check`], which [`decode_message`](crate::decode_message) calls: one that
//! breaks a bound is refused with a message saying which.
//!
//! [`Message::TelemetryDigest`]: crate::Message::TelemetryDigest

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The most series one digest carries.
pub const MAX_DIGEST_SERIES: usize = 16;
/// The most buckets one series of a digest carries (at one a minute: four hours).
pub const MAX_DIGEST_BUCKETS: usize = 240;
/// The longest data type name, in bytes.
pub const MAX_DATA_TYPE: usize = 40;
/// The narrowest bucket, ms of mission time.
pub const MIN_BUCKET_MS: u32 = 1_000;
/// The widest bucket, ms of mission time (an hour).
pub const MAX_BUCKET_MS: u32 = 3_600_000;

/// Flight → ground: buckets of the telemetry history, per data type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelemetryDigest {
    /// Every bucket's width, ms of mission time, [`MIN_BUCKET_MS`] to [`MAX_BUCKET_MS`]; bucket
    /// starts are multiples of it.
    pub bucket_ms: u32,
    /// At most [`MAX_DIGEST_SERIES`], each data type once.
    pub series: Vec<DigestSeries>,
}

/// The buckets of one data type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestSeries {
    /// What is measured, with its unit in the name where it has one (`battery_soc_percent`,
    /// `temperature_sensor0` in °C): 1 to [`MAX_DATA_TYPE`] bytes of `a-z`, `0-9` and `_`.
    pub data_type: String,
    /// At most [`MAX_DIGEST_BUCKETS`], oldest first, no two with the same start.
    pub buckets: Vec<DigestBucket>,
}

/// The samples of one bucket: `[start_ms, start_ms + bucket_ms)` of mission time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestBucket {
    /// Its start, ms since the Unix epoch (mission time).
    pub start_ms: u64,
    /// Samples in it, at least 1.
    pub count: u32,
    /// The smallest, in thousandths of the unit.
    pub min: i32,
    /// The mean, in thousandths of the unit; between `min` and `max`.
    pub mean: i32,
    /// The largest, in thousandths of the unit.
    pub max: i32,
}

/// Why a [`TelemetryDigest`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The bucket width is out of bounds.
    #[error("bucket width {0} ms is out of range: {MIN_BUCKET_MS} to {MAX_BUCKET_MS}")]
    BucketWidth(u32),
    /// Too many series.
    #[error("{0} series; at most {MAX_DIGEST_SERIES}")]
    TooManySeries(usize),
    /// A data type name breaks the rules (the name, cut, and why).
    #[error("data type '{name}' {why}")]
    DataType {
        /// The name (at most [`MAX_DATA_TYPE`] bytes of it).
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A series has too many buckets.
    #[error("series '{data_type}' has {count} buckets; at most {MAX_DIGEST_BUCKETS}")]
    TooManyBuckets {
        /// The series.
        data_type: String,
        /// How many it has.
        count: usize,
    },
    /// A bucket is wrong (its series, its start, why).
    #[error("series '{data_type}': the bucket at {start_ms} {why}")]
    Bucket {
        /// The series.
        data_type: String,
        /// The bucket's start.
        start_ms: u64,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl TelemetryDigest {
    /// Checks every bound and rule documented on the types; the first broken one.
    pub fn check(&self) -> Result<(), DigestError> {
        if !(MIN_BUCKET_MS..=MAX_BUCKET_MS).contains(&self.bucket_ms) {
            return Err(DigestError::BucketWidth(self.bucket_ms));
        }
        if self.series.len() > MAX_DIGEST_SERIES {
            return Err(DigestError::TooManySeries(self.series.len()));
        }
        let mut seen = BTreeSet::new();
        for s in &self.series {
            check_data_type(&s.data_type)?;
            if !seen.insert(s.data_type.as_str()) {
                return Err(DigestError::DataType {
                    name: s.data_type.clone(),
                    why: "comes twice",
                });
            }
            if s.buckets.len() > MAX_DIGEST_BUCKETS {
                return Err(DigestError::TooManyBuckets {
                    data_type: s.data_type.clone(),
                    count: s.buckets.len(),
                });
            }
            let mut after: Option<u64> = None;
            for b in &s.buckets {
                let why = if b.start_ms % u64::from(self.bucket_ms) != 0 {
                    Some("does not start on a multiple of the bucket width")
                } else if after.is_some_and(|a| b.start_ms <= a) {
                    Some("is not after the bucket before it")
                } else if b.count == 0 {
                    Some("holds no sample")
                } else if b.count > self.bucket_ms {
                    Some("holds more samples than its width has milliseconds")
                } else if !(b.min <= b.mean && b.mean <= b.max) {
                    Some("does not have min <= mean <= max")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(DigestError::Bucket {
                        data_type: s.data_type.clone(),
                        start_ms: b.start_ms,
                        why,
                    });
                }
                after = Some(b.start_ms);
            }
        }
        Ok(())
    }

    /// Buckets in all, over every series.
    pub fn bucket_count(&self) -> usize {
        self.series.iter().map(|s| s.buckets.len()).sum()
    }
}

/// Checks a data type name: 1 to [`MAX_DATA_TYPE`] bytes of `a-z`, `0-9` and `_`.
pub fn check_data_type(name: &str) -> Result<(), DigestError> {
    let why = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_DATA_TYPE {
        Some("is longer than 40 bytes")
    } else if !name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
    {
        Some("has a character other than a-z, 0-9 and _")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(DigestError::DataType {
            name: name.chars().take(MAX_DATA_TYPE).collect(),
            why,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_bound_in_the_message_matches_the_constant() {
        let long = "a".repeat(MAX_DATA_TYPE + 1);
        assert!(check_data_type(&long[..MAX_DATA_TYPE]).is_ok());
        let refused = check_data_type(&long).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("{MAX_DATA_TYPE} bytes")),
            "{refused}"
        );
    }
}
