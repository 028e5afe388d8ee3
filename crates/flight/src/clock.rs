//! The onboard clock that triggers and `scheduled_time` are judged by: the host's, or a
//! simulated one that starts at a chosen instant and runs `scale` times faster, so that a day of
//! orbits passes in minutes against the real agent and the real Docker Engine.
//!
//! [`MissionClock`] is pure: it maps a wall-clock reading to mission time and back, and is
//! handed every `now`; only [`MissionClock::now_ms`] and [`MissionClock::sleep_until`] read the
//! wall clock. A simulated clock is anchored to the wall-clock instant it started at, kept in
//! `state_dir/clock.json`, so a restarted agent goes on from where the mission time is now (the
//! time it was down counts, as it would in orbit) instead of starting over; a changed start or
//! scale anchors it again.
//!
//! Plan expiry, event timestamps and the quota day keep the host's clock: they are the ground's
//! and the operator's business, not the mission's.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fsutil::now_ms;

/// The fastest a simulated clock may run: a week of mission time in about ten minutes.
pub const MAX_CLOCK_SCALE: f64 = 1000.0;
/// The longest one sleep of [`MissionClock::sleep_until`] lasts before it reads the clock again.
const SLEEP_SLICE: Duration = Duration::from_secs(5);

/// How the agent's mission clock runs (the agent's `--clock-start` and `--clock-scale`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockConfig {
    /// The host's clock.
    Host,
    /// Starts at `start_ms` (milliseconds since the Unix epoch) when the agent first starts with
    /// it, and runs `scale` times as fast as the host's.
    Simulated {
        /// Mission time at the anchor.
        start_ms: u64,
        /// How many mission seconds pass in a host second, above 0 and at most
        /// [`MAX_CLOCK_SCALE`].
        scale: f64,
    },
}

impl ClockConfig {
    /// A simulated clock, if `scale` is usable.
    pub fn simulated(start_ms: u64, scale: f64) -> Result<ClockConfig, String> {
        if !(scale.is_finite() && scale > 0.0 && scale <= MAX_CLOCK_SCALE) {
            return Err(format!(
                "clock scale {scale} must be above 0 and at most {MAX_CLOCK_SCALE}"
            ));
        }
        Ok(ClockConfig::Simulated { start_ms, scale })
    }
}

/// Mission time as a function of the host's clock: `start_ms + (wall − anchor) × scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MissionClock {
    /// Mission time at the anchor, ms since the Unix epoch.
    start_ms: u64,
    /// The host's time at the anchor.
    anchor_wall_ms: u64,
    /// Mission seconds per host second.
    scale: f64,
}

impl MissionClock {
    /// The host's clock itself.
    pub const HOST: MissionClock = MissionClock {
        start_ms: 0,
        anchor_wall_ms: 0,
        scale: 1.0,
    };

    /// A clock that reads `start_ms` at host time `anchor_wall_ms` and runs `scale` times as
    /// fast.
    pub fn anchored(start_ms: u64, anchor_wall_ms: u64, scale: f64) -> MissionClock {
        MissionClock {
            start_ms,
            anchor_wall_ms,
            scale,
        }
    }

    /// The clock `config` asks for, anchored as `state_dir/clock.json` says when that file
    /// holds the same start and scale, else now (and the anchor saved).
    pub fn open(config: ClockConfig, state_dir: &Path) -> MissionClock {
        let ClockConfig::Simulated { start_ms, scale } = config else {
            return MissionClock::HOST;
        };
        let path = state_dir.join("clock.json");
        // A file that cannot be read now (permissions, an I/O error) may hold a good anchor: it
        // is not written over.
        let mut keep_file = false;
        let kept = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<MissionClock>(&bytes) {
                Ok(clock) => Some(clock),
                Err(e) => {
                    // Said, and kept aside for a look: the mission time starts again from
                    // `start_ms`, which the operator must know.
                    cas::set_aside_with_warning(&path, "simulated clock anchor", &e);
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the simulated clock's anchor; the clock starts again, and the file is left as it is");
                keep_file = true;
                None
            }
        }
        .filter(|c| c.start_ms == start_ms && c.scale == scale);
        if let Some(kept) = kept {
            tracing::info!(
                mission_ms = kept.at(now_ms()),
                scale,
                "the simulated clock goes on from its anchor"
            );
            return kept;
        }
        let clock = MissionClock::anchored(start_ms, now_ms(), scale);
        if keep_file {
            return clock;
        }
        let saved = serde_json::to_vec(&clock)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::fsutil::write_atomic(&path, &bytes));
        if let Err(e) = saved {
            tracing::warn!(error = %e, "cannot save the simulated clock's anchor; a restart starts it again");
        }
        tracing::info!(start_ms, scale, "a simulated clock starts");
        clock
    }

    /// Mission time at host time `wall_ms`.
    pub fn at(&self, wall_ms: u64) -> u64 {
        let elapsed = wall_ms as f64 - self.anchor_wall_ms as f64;
        (self.start_ms as f64 + elapsed * self.scale)
            .max(0.0)
            .round() as u64
    }

    /// The host time at which the clock reads `mission_ms`.
    pub fn wall_for(&self, mission_ms: u64) -> u64 {
        let ahead = mission_ms as f64 - self.start_ms as f64;
        (self.anchor_wall_ms as f64 + ahead / self.scale)
            .max(0.0)
            .ceil() as u64
    }

    /// How many mission seconds pass in a host second.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Mission time now.
    pub fn now_ms(&self) -> u64 {
        self.at(now_ms())
    }

    /// Waits until the clock reads `mission_ms` (at once if it does already), in slices, so a
    /// host clock set meanwhile is noticed.
    pub async fn sleep_until(&self, mission_ms: u64) {
        loop {
            let (wall, target) = (now_ms(), self.wall_for(mission_ms));
            if wall >= target && self.at(wall) >= mission_ms {
                return;
            }
            let left = Duration::from_millis(target.saturating_sub(wall).max(1));
            tokio::time::sleep(left.min(SLEEP_SLICE)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mission_time_maps_both_ways() {
        let c = MissionClock::anchored(1_796_256_000_000, 1_000_000, 600.0);
        assert_eq!(c.at(1_000_000), 1_796_256_000_000);
        // One host second is ten mission minutes.
        assert_eq!(c.at(1_001_000), 1_796_256_600_000);
        assert_eq!(c.wall_for(1_796_256_600_000), 1_001_000);
        assert!(c.at(c.wall_for(1_796_300_000_123)) >= 1_796_300_000_123);
        assert_eq!(MissionClock::HOST.at(123_456), 123_456);
        assert_eq!(MissionClock::HOST.wall_for(123_456), 123_456);
        assert!(ClockConfig::simulated(0, 0.0).is_err());
        assert!(ClockConfig::simulated(0, 5000.0).is_err());
    }

    #[test]
    fn a_restart_goes_on_from_the_anchor_and_a_new_setting_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let config = ClockConfig::simulated(1_796_256_000_000, 60.0).unwrap();
        let first = MissionClock::open(config, dir.path());
        let again = MissionClock::open(config, dir.path());
        assert_eq!(first, again);
        let other = ClockConfig::simulated(1_796_256_000_000, 30.0).unwrap();
        let moved = MissionClock::open(other, dir.path());
        assert_eq!(moved.scale(), 30.0);
        assert_eq!(
            MissionClock::open(ClockConfig::Host, dir.path()),
            MissionClock::HOST
        );
    }
}
