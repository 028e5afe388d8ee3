//! The digest of the history the agent downlinks ([`wire::TelemetryDigest`]): per data type
//! ([`SERIES`]), buckets of [`BUCKET_MS`] of mission time with their sample count, minimum, mean
//! and maximum. Pure: [`digest_after`] reads samples and returns a digest.
//!
//! A bucket is sent once it is closed: the history holds a sample at or after its end. The
//! sampler only ever appends later samples (after a restart it fills the gap from the last one),
//! so nothing lands in a closed bucket afterwards, and a bucket is sent whole, once. What was
//! sent is remembered as a mark, the end of the last bucket sent, kept in
//! `state_dir/telemetry/digest-mark.json` (written atomically, synced) only once the digest is in
//! the link's outbox, which survives restarts itself: a restart between the two sends the same
//! buckets again, which the ground's upsert takes as nothing new; none is lost.

use std::collections::VecDeque;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::Sample;

/// Every bucket's width, mission ms: a minute.
pub(crate) const BUCKET_MS: u32 = 60_000;
/// The most buckets a digest carries per series: an hour at [`BUCKET_MS`]. A digest is then
/// about 12 kB; a backlog goes as several.
pub(crate) const BUCKETS_PER_DIGEST: usize = 60;
/// The file keeping the mark, in the telemetry folder.
pub(crate) const MARK_FILE: &str = "digest-mark.json";

/// The Earth's equatorial radius, km (WGS 72, SGP4's): altitude is the distance from the
/// Earth's centre less this.
const EARTH_RADIUS_KM: f64 = 6378.135;

/// How a sample reads one series.
type Reader = fn(&Sample) -> f64;

/// The series digested: the data type (its unit in its name) and how a sample reads it.
pub(crate) const SERIES: [(&str, Reader); 12] = [
    ("battery_soc_percent", |s| s.power.battery_soc_percent),
    ("sunlit_fraction", sunlit_share),
    ("solar_w", |s| s.power.solar_w),
    ("altitude_km", altitude_km),
    ("temperature_sensor0", |s| s.temperatures_c[0]),
    ("temperature_sensor1", |s| s.temperatures_c[1]),
    ("temperature_sensor2", |s| s.temperatures_c[2]),
    ("temperature_sensor3", |s| s.temperatures_c[3]),
    ("temperature_sensor4", |s| s.temperatures_c[4]),
    ("temperature_sensor5", |s| s.temperatures_c[5]),
    ("temperature_sensor6", |s| s.temperatures_c[6]),
    ("temperature_sensor7", |s| s.temperatures_c[7]),
];

/// The mark as kept on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    /// The end of the last bucket sent, mission ms: buckets starting here or later are not
    /// sent yet.
    sent_until_ms: u64,
}

/// The mark kept in `dir`, if there is one that reads (one that does not is said, and the
/// history is digested again from its start: the ground takes the buckets it has as nothing
/// new).
pub(crate) fn load_mark(dir: &Path) -> Option<u64> {
    let path = dir.join(MARK_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the telemetry digest's mark; the history is sent again");
            return None;
        }
    };
    match serde_json::from_slice::<Mark>(&bytes) {
        Ok(m) => Some(m.sent_until_ms),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable telemetry digest mark; the history is sent again");
            None
        }
    }
}

/// Keeps `sent_until_ms` as the mark in `dir` (written, synced, renamed).
pub(crate) fn save_mark(dir: &Path, sent_until_ms: u64) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(&Mark { sent_until_ms }).map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&dir.join(MARK_FILE), &bytes)
}

/// The digest of the closed buckets of `samples` (oldest first, as the history holds them) that
/// start at or after `mark` (all of them for none), at most `max_buckets` of them, with the end
/// of its last bucket: the next mark. `None` when no such bucket is closed yet.
pub(crate) fn digest_after(
    samples: &VecDeque<Sample>,
    mark: Option<u64>,
    max_buckets: usize,
) -> Option<(wire::TelemetryDigest, u64)> {
    let width = u64::from(BUCKET_MS);
    let latest = samples.back()?.t_ms;
    let first = mark.map_or(0, |m| samples.partition_point(|s| s.t_ms < m));
    // Per bucket (its start), per series.
    let mut buckets: Vec<(u64, [Acc; SERIES.len()])> = Vec::new();
    for s in samples.range(first..) {
        let start = s.t_ms / width * width;
        // Not closed: no sample at or after its end yet (nor in any later bucket).
        if start + width > latest {
            break;
        }
        if buckets.last().is_none_or(|(b, _)| *b != start) {
            if buckets.len() == max_buckets {
                break;
            }
            buckets.push((start, [Acc::default(); SERIES.len()]));
        }
        if let Some((_, accs)) = buckets.last_mut() {
            for (acc, (_, read)) in accs.iter_mut().zip(SERIES.iter()) {
                acc.add(read(s));
            }
        }
    }
    let end = buckets.last()?.0 + width;
    let series = SERIES
        .iter()
        .enumerate()
        .map(|(i, (name, _))| wire::DigestSeries {
            data_type: (*name).to_string(),
            buckets: buckets
                .iter()
                .filter_map(|(start, accs)| accs[i].bucket(*start))
                .collect(),
        })
        .collect();
    Some((
        wire::TelemetryDigest {
            bucket_ms: BUCKET_MS,
            series,
        },
        end,
    ))
}

/// What one series read in one bucket.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    count: u32,
    min: f64,
    max: f64,
    sum: f64,
}

impl Acc {
    /// Adds a reading; one that is not a finite number is left out.
    fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (v, v);
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        self.sum += v;
    }

    /// The bucket at `start`, in thousandths; `None` when it read nothing.
    fn bucket(&self, start: u64) -> Option<wire::DigestBucket> {
        if self.count == 0 {
            return None;
        }
        let (min, max) = (milli(self.min), milli(self.max));
        Some(wire::DigestBucket {
            start_ms: start,
            count: self.count,
            min,
            // Rounding cannot take the mean outside the range it lies in.
            mean: milli(self.sum / f64::from(self.count)).clamp(min, max),
            max,
        })
    }
}

/// `v` in whole thousandths, saturated to `i32`.
fn milli(v: f64) -> i32 {
    (v * 1000.0)
        .round()
        .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

/// 1 in sunlight, ½ in penumbra, 0 in umbra: a bucket's mean is the share of it in sunlight.
fn sunlit_share(s: &Sample) -> f64 {
    match s.power.illumination.as_str() {
        "sunlit" => 1.0,
        "penumbra" => 0.5,
        _ => 0.0,
    }
}

fn altitude_km(s: &Sample) -> f64 {
    let [x, y, z] = s.position_km;
    (x * x + y * y + z * z).sqrt() - EARTH_RADIUS_KM
}

#[cfg(test)]
mod tests {
    use super::super::model::Power;
    use super::*;

    const T0: u64 = 1_796_256_000_000;

    fn at(t_ms: u64, soc: f64, light: &str) -> Sample {
        Sample {
            t_ms,
            position_km: [6378.135 + 420.0, 0.0, 0.0],
            velocity_km_s: [0.0, 7.5, 0.0],
            quaternion: [1.0, 0.0, 0.0, 0.0],
            angular_velocity: [0.0, -0.001, 0.0],
            temperatures_c: [20.0, 21.0, -35.5, 50.0, 30.0, 18.0, 35.0, 15.0],
            power: Power {
                battery_soc_percent: soc,
                illumination: light.into(),
                solar_w: 40.0,
                load_w: 18.0,
            },
            tle: "x".into(),
        }
    }

    fn series<'a>(d: &'a wire::TelemetryDigest, name: &str) -> &'a [wire::DigestBucket] {
        &d.series
            .iter()
            .find(|s| s.data_type == name)
            .unwrap()
            .buckets
    }

    #[test]
    fn closed_buckets_carry_min_mean_max_and_an_open_one_waits() {
        // Two whole minutes and the start of a third, every 10 s.
        let samples: VecDeque<Sample> = (0..14)
            .map(|i| {
                let light = if i < 3 { "umbra" } else { "sunlit" };
                at(T0 + i * 10_000, 80.0 - i as f64 * 0.5, light)
            })
            .collect();
        let (d, end) = digest_after(&samples, None, BUCKETS_PER_DIGEST).unwrap();
        d.check().unwrap();
        assert_eq!(d.bucket_ms, 60_000);
        assert_eq!(d.series.len(), SERIES.len());
        // The third minute has samples, but none after it: not sent.
        assert_eq!(end, T0 + 120_000);
        let soc = series(&d, "battery_soc_percent");
        assert_eq!(soc.len(), 2);
        assert_eq!(
            soc[0],
            wire::DigestBucket {
                start_ms: T0,
                count: 6,
                min: 77_500,
                mean: 78_750,
                max: 80_000,
            }
        );
        assert_eq!(
            (soc[1].min, soc[1].mean, soc[1].max),
            (74_500, 75_750, 77_000)
        );
        // Half of the first minute in the Earth's shadow.
        let light = series(&d, "sunlit_fraction");
        assert_eq!((light[0].min, light[0].mean, light[0].max), (0, 500, 1000));
        assert_eq!(series(&d, "altitude_km")[0].mean, 420_000);
        assert_eq!(series(&d, "temperature_sensor2")[1].min, -35_500);

        // From the mark on, nothing until the open minute closes.
        assert!(digest_after(&samples, Some(end), BUCKETS_PER_DIGEST).is_none());
        let mut more = samples.clone();
        more.push_back(at(T0 + 180_000, 70.0, "sunlit"));
        let (d, next) = digest_after(&more, Some(end), BUCKETS_PER_DIGEST).unwrap();
        assert_eq!(next, T0 + 180_000);
        let soc = series(&d, "battery_soc_percent");
        assert_eq!(soc.len(), 1);
        assert_eq!((soc[0].start_ms, soc[0].count), (T0 + 120_000, 2));
    }

    #[test]
    fn a_backlog_goes_in_bounded_digests_and_gaps_make_no_buckets() {
        // Ten minutes, then nothing for an hour (no element set), then five more.
        let mut samples: VecDeque<Sample> = (0..60)
            .map(|i| at(T0 + i * 10_000, 50.0, "sunlit"))
            .collect();
        samples.extend((0..31).map(|i| at(T0 + 4_200_000 + i * 10_000, 50.0, "sunlit")));
        let mut mark = None;
        let mut starts = Vec::new();
        while let Some((d, end)) = digest_after(&samples, mark, 4) {
            d.check().unwrap();
            let soc = series(&d, "battery_soc_percent");
            assert!(soc.len() <= 4);
            starts.extend(soc.iter().map(|b| (b.start_ms - T0) / 60_000));
            mark = Some(end);
        }
        let expected: Vec<u64> = (0..10).chain(70..75).collect();
        assert_eq!(starts, expected);
    }

    #[test]
    fn a_restart_goes_on_from_the_mark_neither_losing_nor_repeating_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let append = |t: &super::super::Telemetry, minutes: std::ops::Range<u64>| {
            let batch = (minutes.start * 6..minutes.end * 6)
                .map(|i| at(T0 + i * 10_000, 50.0, "sunlit"))
                .collect();
            super::super::lock(&t.inner.store).append(batch).unwrap();
        };
        let sent = |t: &super::super::Telemetry| -> Vec<u64> {
            let mut starts = Vec::new();
            while let Some((d, end)) = t.next_digest() {
                starts.extend(
                    d.series[0]
                        .buckets
                        .iter()
                        .map(|b| (b.start_ms - T0) / 60_000),
                );
                t.digest_sent(end).unwrap();
            }
            starts
        };
        let clock = crate::MissionClock::HOST;
        let t = super::super::Telemetry::open(dir.path(), clock).unwrap();
        append(&t, 0..70);
        // Sent in digests of at most an hour: all but the last minute, still open.
        assert_eq!(sent(&t), (0..69).collect::<Vec<_>>());
        drop(t);
        let t = super::super::Telemetry::open(dir.path(), clock).unwrap();
        assert_eq!(sent(&t), Vec::<u64>::new());
        append(&t, 70..73);
        assert_eq!(sent(&t), [69, 70, 71]);
    }

    #[test]
    fn the_mark_survives_a_restart_and_a_bad_one_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_mark(dir.path()), None);
        save_mark(dir.path(), T0).unwrap();
        assert_eq!(load_mark(dir.path()), Some(T0));
        std::fs::write(dir.path().join(MARK_FILE), b"{\"sent_until").unwrap();
        assert_eq!(load_mark(dir.path()), None);
    }
}
