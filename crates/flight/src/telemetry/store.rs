//! The telemetry history onboard: the last [`CAPACITY`] samples, kept in memory and in an
//! append-only file (`state_dir/telemetry/samples.jsonl`, one JSON sample a line) that survives
//! restarts.
//!
//! Crash-safe without a database: samples are only ever appended, a batch at a time, then
//! synced; a crash can leave at most a torn last line, which the next start cuts off (the
//! samples before it stay). The file is bounded: once it holds twice [`CAPACITY`] lines it is
//! rewritten with the last [`CAPACITY`] (a temporary file renamed over it, `fsutil::write_atomic`),
//! so it never exceeds twice the history.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::model::Sample;

/// Samples kept: a day at one every 10 s.
pub(crate) const CAPACITY: usize = 8640;

/// The history: samples in time order, at most `capacity`.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    capacity: usize,
    samples: VecDeque<Sample>,
    /// Lines in the file (kept samples and older ones not yet compacted away).
    lines: usize,
}

impl Store {
    /// Opens the history at `path` (made empty if missing), cutting off a torn or unreadable
    /// tail, keeping the last `capacity` samples.
    pub(crate) fn open(path: &Path, capacity: usize) -> io::Result<Store> {
        let mut store = Store {
            path: path.to_path_buf(),
            capacity: capacity.max(1),
            samples: VecDeque::new(),
            lines: 0,
        };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(store),
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::new(file);
        let (mut good, mut line) = (0u64, Vec::new());
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            let whole = line.last() == Some(&b'\n');
            let parsed = whole
                .then(|| serde_json::from_slice::<Sample>(&line).ok())
                .flatten()
                .filter(|s| store.samples.back().is_none_or(|b| b.t_ms < s.t_ms));
            let Some(sample) = parsed else {
                tracing::warn!(
                    file = %path.display(),
                    offset = good,
                    "the telemetry history ends in a torn or unreadable line; cut off there"
                );
                OpenOptions::new().write(true).open(path)?.set_len(good)?;
                break;
            };
            good += n as u64;
            store.lines += 1;
            store.push(sample);
        }
        if store.lines >= 2 * store.capacity {
            store.compact()?;
        }
        Ok(store)
    }

    /// Appends `batch` (later than every sample held, in time order) and syncs it.
    pub(crate) fn append(&mut self, batch: Vec<Sample>) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for s in &batch {
            serde_json::to_writer(&mut bytes, s).map_err(io::Error::other)?;
            bytes.push(b'\n');
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        // A batch written in part (a full disk) is cut off again: the next one must not be glued
        // to a torn line, which the next start would cut off with everything after it.
        let before = file.metadata()?.len();
        if let Err(e) = file.write_all(&bytes).and_then(|()| file.sync_data()) {
            let _ = file.set_len(before);
            return Err(e);
        }
        self.lines += batch.len();
        for s in batch {
            self.push(s);
        }
        if self.lines >= 2 * self.capacity {
            self.compact()?;
        }
        Ok(())
    }

    /// The samples held, oldest first.
    pub(crate) fn samples(&self) -> &VecDeque<Sample> {
        &self.samples
    }

    /// The newest sample.
    pub(crate) fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    fn push(&mut self, sample: Sample) {
        self.samples.push_back(sample);
        while self.samples.len() > self.capacity {
            self.samples.pop_front();
        }
    }

    /// Rewrites the file with the samples held only.
    fn compact(&mut self) -> io::Result<()> {
        let mut bytes = Vec::new();
        for s in &self.samples {
            serde_json::to_writer(&mut bytes, s).map_err(io::Error::other)?;
            bytes.push(b'\n');
        }
        crate::fsutil::write_atomic(&self.path, &bytes)?;
        self.lines = self.samples.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::Power;
    use super::*;

    fn at(t_ms: u64) -> Sample {
        Sample {
            t_ms,
            position_km: [7000.0, 0.0, 0.0],
            velocity_km_s: [0.0, 7.5, 0.0],
            quaternion: [1.0, 0.0, 0.0, 0.0],
            angular_velocity: [0.0, -0.001, 0.0],
            temperatures_c: [20.0; 8],
            power: Power {
                battery_soc_percent: 80.0,
                illumination: "sunlit".into(),
                solar_w: 40.0,
                load_w: 18.0,
            },
            tle: "x".into(),
        }
    }

    fn times(store: &Store) -> Vec<u64> {
        store.samples().iter().map(|s| s.t_ms).collect()
    }

    #[test]
    fn the_history_survives_a_restart_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.jsonl");
        let mut store = Store::open(&path, 4).unwrap();
        for batch in [vec![at(1), at(2), at(3)], vec![at(4), at(5)]] {
            store.append(batch).unwrap();
        }
        assert_eq!(times(&store), [2, 3, 4, 5]);
        let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
        assert_eq!(lines(&path), 5);
        // Eight lines or more are cut back to the four kept.
        store.append(vec![at(6), at(7), at(8)]).unwrap();
        assert_eq!(lines(&path), 4);
        let again = Store::open(&path, 4).unwrap();
        assert_eq!(times(&again), [5, 6, 7, 8]);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_samples_before_it_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.jsonl");
        let mut store = Store::open(&path, 10).unwrap();
        store.append(vec![at(1), at(2)]).unwrap();
        let whole = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"t_ms\":3,\"posi").unwrap();
        drop(f);
        let mut store = Store::open(&path, 10).unwrap();
        assert_eq!(times(&store), [1, 2]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        store.append(vec![at(3)]).unwrap();
        assert_eq!(times(&Store::open(&path, 10).unwrap()), [1, 2, 3]);
        // A line that is no sample, or goes back in time, ends the history there too.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"garbage\n").unwrap();
        drop(f);
        assert_eq!(times(&Store::open(&path, 10).unwrap()), [1, 2, 3]);
    }
}
