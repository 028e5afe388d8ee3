//! Contact plans: passes × link rates → windows with byte capacity, and transfer ETAs.

use crate::passes::passes;
use crate::propagate::{PropagationError, Propagator};
use crate::station::GroundStation;
use crate::time::Epoch;

/// A ground station with the link rates it achieves with the satellite.
#[derive(Debug, Clone, PartialEq)]
pub struct StationLink {
    /// The station (its elevation mask bounds the windows).
    pub station: GroundStation,
    /// Ground → satellite information rate, bit/s.
    pub uplink_bps: f64,
    /// Satellite → ground information rate, bit/s.
    pub downlink_bps: f64,
}

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Ground to satellite.
    Uplink,
    /// Satellite to ground.
    Downlink,
}

/// A contact window of one station: a pass with its byte capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The station's name.
    pub station: String,
    /// Start of the window.
    pub aos: Epoch,
    /// End of the window.
    pub los: Epoch,
    /// The highest elevation reached, degrees.
    pub max_elevation_deg: f64,
    /// Uplink rate during the window, bit/s.
    pub uplink_bps: f64,
    /// Downlink rate during the window, bit/s.
    pub downlink_bps: f64,
    /// Bytes the uplink carries over the whole window (rate × duration, rounded down).
    pub up_bytes: u64,
    /// Bytes the downlink carries over the whole window.
    pub down_bytes: u64,
}

impl Window {
    fn new(
        station: String,
        aos: Epoch,
        los: Epoch,
        max_elevation_deg: f64,
        uplink_bps: f64,
        downlink_bps: f64,
    ) -> Window {
        let seconds = los.seconds_since(aos).max(0.0);
        let bytes = |bps: f64| (bps.max(0.0) * seconds / 8.0).floor() as u64;
        Window {
            station,
            aos,
            los,
            max_elevation_deg,
            uplink_bps,
            downlink_bps,
            up_bytes: bytes(uplink_bps),
            down_bytes: bytes(downlink_bps),
        }
    }

    /// The rate in `direction`, bytes per second.
    fn bytes_per_s(&self, direction: Direction) -> f64 {
        let bps = match direction {
            Direction::Uplink => self.uplink_bps,
            Direction::Downlink => self.downlink_bps,
        };
        if bps.is_finite() && bps > 0.0 {
            bps / 8.0
        } else {
            0.0
        }
    }
}

/// A span of time when at least one station sees the satellite: the windows of every station
/// merged where they overlap or touch. A link with one radio per direction is up exactly
/// during contacts.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// The first AOS of the windows merged into it.
    pub aos: Epoch,
    /// The last LOS of the windows merged into it.
    pub los: Epoch,
    /// The highest uplink rate of the windows merged into it, bit/s.
    pub uplink_bps: f64,
    /// The highest downlink rate of the windows merged into it, bit/s.
    pub downlink_bps: f64,
}

/// When one queued transfer is predicted to move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferEta {
    /// When its first byte goes (`None` if no window is left).
    pub start: Option<Epoch>,
    /// When its last byte arrives (`None` if the plan's windows cannot carry it).
    pub completion: Option<Epoch>,
    /// Index into the plan's windows of the window it completes in.
    pub window: Option<usize>,
}

/// The contact windows of one satellite with a set of stations, sorted by AOS.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactPlan {
    windows: Vec<Window>,
}

impl ContactPlan {
    /// Predicts the passes over every station between `start` and `end` and turns them into
    /// windows with capacity (see [`crate::passes`]).
    pub fn compute(
        propagator: &Propagator,
        links: &[StationLink],
        start: Epoch,
        end: Epoch,
    ) -> Result<ContactPlan, PropagationError> {
        let mut windows = Vec::new();
        for link in links {
            for pass in passes(propagator, &link.station, start, end)? {
                windows.push(Window::new(
                    link.station.name.clone(),
                    pass.aos,
                    pass.los,
                    pass.max_elevation_deg,
                    link.uplink_bps,
                    link.downlink_bps,
                ));
            }
        }
        Ok(ContactPlan::from_windows(windows))
    }

    /// A plan from windows given by other means: sorted by AOS (then station name), and
    /// overlapping or touching windows of the same station merged (capacity recomputed).
    pub fn from_windows(mut windows: Vec<Window>) -> ContactPlan {
        windows.sort_by(|a, b| {
            a.station
                .cmp(&b.station)
                .then(a.aos.unix_seconds().total_cmp(&b.aos.unix_seconds()))
        });
        let mut merged: Vec<Window> = Vec::with_capacity(windows.len());
        for w in windows {
            match merged.last_mut() {
                Some(last) if last.station == w.station && w.aos <= last.los => {
                    let los = if w.los > last.los { w.los } else { last.los };
                    *last = Window::new(
                        w.station,
                        last.aos,
                        los,
                        last.max_elevation_deg.max(w.max_elevation_deg),
                        last.uplink_bps,
                        last.downlink_bps,
                    );
                }
                _ => merged.push(w),
            }
        }
        merged.sort_by(|a, b| {
            a.aos
                .unix_seconds()
                .total_cmp(&b.aos.unix_seconds())
                .then(a.station.cmp(&b.station))
        });
        ContactPlan { windows: merged }
    }

    /// The windows, sorted by AOS.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// The windows merged across stations, sorted: when the link is up. Windows that overlap
    /// or touch (one station's LOS at or after another's AOS) make one contact.
    pub fn contacts(&self) -> Vec<Contact> {
        // `windows` is sorted by AOS, so each window either extends the last contact or starts
        // the next one.
        let mut out: Vec<Contact> = Vec::new();
        for w in &self.windows {
            match out.last_mut() {
                Some(last) if w.aos <= last.los => {
                    if w.los > last.los {
                        last.los = w.los;
                    }
                    last.uplink_bps = last.uplink_bps.max(w.uplink_bps);
                    last.downlink_bps = last.downlink_bps.max(w.downlink_bps);
                }
                _ => out.push(Contact {
                    aos: w.aos,
                    los: w.los,
                    uplink_bps: w.uplink_bps,
                    downlink_bps: w.downlink_bps,
                }),
            }
        }
        out
    }

    /// Predicts when each of `sizes` (bytes, in queue order) completes in `direction` when
    /// sending starts at `now`; see [`predict_transfers`].
    pub fn predict(&self, direction: Direction, now: Epoch, sizes: &[u64]) -> Vec<TransferEta> {
        predict_transfers(&self.windows, direction, now, sizes)
    }
}

/// Predicts the window and completion time of each transfer of a queue.
///
/// Transfers go one after another, in order, at the window's rate, starting at `now` (only the
/// rest of a window in progress counts). The satellite has one radio per direction: where
/// windows of two stations overlap, the overlap is used once (by the window that started
/// first). A zero-byte transfer completes at the next moment a window is open. A transfer the
/// windows cannot finish, and every one after it, gets `completion: None`.
pub fn predict_transfers(
    windows: &[Window],
    direction: Direction,
    now: Epoch,
    sizes: &[u64],
) -> Vec<TransferEta> {
    // Non-overlapping usable segments: (window index, start, end, bytes/s).
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.sort_by(|&a, &b| {
        windows[a]
            .aos
            .unix_seconds()
            .total_cmp(&windows[b].aos.unix_seconds())
    });
    let mut segments = Vec::with_capacity(windows.len());
    let mut covered = now.unix_seconds();
    for i in order {
        let w = &windows[i];
        let rate = w.bytes_per_s(direction);
        let start = w.aos.unix_seconds().max(covered);
        let end = w.los.unix_seconds();
        if rate > 0.0 && end > start {
            segments.push((i, start, end, rate));
            covered = end;
        }
    }

    let mut out = Vec::with_capacity(sizes.len());
    let mut cursor = now.unix_seconds();
    let mut next = 0;
    for &size in sizes {
        let mut remaining = size as f64;
        let mut eta = TransferEta {
            start: None,
            completion: None,
            window: None,
        };
        while let Some(&(index, seg_start, seg_end, rate)) = segments.get(next) {
            let from = seg_start.max(cursor);
            if from >= seg_end {
                next += 1;
                continue;
            }
            eta.start.get_or_insert(Epoch::from_unix_seconds(from));
            let capacity = (seg_end - from) * rate;
            if remaining <= capacity {
                cursor = (from + remaining / rate).min(seg_end);
                eta.completion = Some(Epoch::from_unix_seconds(cursor));
                eta.window = Some(index);
                break;
            }
            remaining -= capacity;
            cursor = seg_end;
            next += 1;
        }
        out.push(eta);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: f64) -> Epoch {
        Epoch::from_unix_seconds(s)
    }

    fn window(station: &str, aos: f64, los: f64, up_bps: f64) -> Window {
        Window::new(station.into(), at(aos), at(los), 30.0, up_bps, 8.0 * up_bps)
    }

    #[test]
    fn windows_are_sorted_and_merged_per_station() {
        let plan = ContactPlan::from_windows(vec![
            window("b", 500.0, 600.0, 8000.0),
            window("a", 100.0, 200.0, 8000.0),
            window("a", 150.0, 300.0, 8000.0),
            window("b", 250.0, 400.0, 8000.0),
        ]);
        let got: Vec<_> = plan
            .windows()
            .iter()
            .map(|w| {
                (
                    w.station.as_str(),
                    w.aos.unix_seconds(),
                    w.los.unix_seconds(),
                    w.up_bytes,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", 100.0, 300.0, 200_000),
                ("b", 250.0, 400.0, 150_000),
                ("b", 500.0, 600.0, 100_000)
            ]
        );
        assert_eq!(plan.windows()[0].down_bytes, 1_600_000);
    }

    #[test]
    fn contacts_merge_the_windows_of_two_stations() {
        // `a` and `b` overlap, `c` touches the merged pair at 400, `a` again stands alone later.
        let plan = ContactPlan::from_windows(vec![
            window("a", 100.0, 300.0, 8000.0),
            window("b", 250.0, 400.0, 64_000.0),
            window("c", 400.0, 450.0, 1000.0),
            window("a", 1000.0, 1100.0, 8000.0),
            window("b", 1020.0, 1050.0, 800.0),
        ]);
        let got: Vec<_> = plan
            .contacts()
            .iter()
            .map(|c| {
                (
                    c.aos.unix_seconds(),
                    c.los.unix_seconds(),
                    c.uplink_bps,
                    c.downlink_bps,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (100.0, 450.0, 64_000.0, 512_000.0),
                // `b` lies inside `a`: the contact keeps `a`'s LOS and its better rate.
                (1000.0, 1100.0, 8000.0, 64_000.0),
            ]
        );
        // The per-station windows are untouched.
        assert_eq!(plan.windows().len(), 5);
        assert_eq!(ContactPlan::from_windows(Vec::new()).contacts(), vec![]);
    }

    #[test]
    fn transfers_fill_windows_in_order() {
        // 1000 B/s windows at [100, 200) and [300, 400); a slow one of another station overlaps
        // the second from 350 to 500 at 100 B/s, usable only after 400.
        let plan = ContactPlan::from_windows(vec![
            window("a", 100.0, 200.0, 8000.0),
            window("a", 300.0, 400.0, 8000.0),
            window("b", 350.0, 500.0, 800.0),
        ]);
        let etas = plan.predict(
            Direction::Uplink,
            at(150.0),
            &[20_000, 40_000, 0, 45_000, 5_000, 1_000],
        );
        let got: Vec<_> = etas
            .iter()
            .map(|e| {
                (
                    e.start.map(Epoch::unix_seconds),
                    e.completion.map(Epoch::unix_seconds),
                    e.window,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                // Starts mid-window (now = 150): 20 s of 1000 B/s.
                (Some(150.0), Some(170.0), Some(0)),
                // 30 kB in the rest of window 0, 10 kB in window 1.
                (Some(170.0), Some(310.0), Some(1)),
                // Zero bytes complete at once, in the open window.
                (Some(310.0), Some(310.0), Some(1)),
                // 45 kB fit in [310, 355).
                (Some(310.0), Some(355.0), Some(1)),
                (Some(355.0), Some(360.0), Some(1)),
                (Some(360.0), Some(361.0), Some(1)),
            ]
        );
        // More than the plan carries: 40 kB left in window 1 and 10 kB in window 2 after 400.
        let etas = plan.predict(Direction::Uplink, at(360.0), &[50_000, 1, 1]);
        assert_eq!(etas[0].completion, Some(at(500.0)));
        assert_eq!(etas[0].window, Some(2));
        assert_eq!((etas[1].start, etas[1].completion), (None, None));
        assert_eq!(etas[2].completion, None);
        // Downlink rates are separate (8× here).
        let etas = plan.predict(Direction::Downlink, at(0.0), &[800_000]);
        assert_eq!(etas[0].completion, Some(at(200.0)));
    }
}
