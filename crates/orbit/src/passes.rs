//! Pass prediction: AOS, LOS and culmination by root finding.

use std::f64::consts::PI;

use crate::propagate::{PropagationError, Propagator};
use crate::search::{brent_max, positive_intervals};
use crate::station::{GroundStation, Topocentric};
use crate::time::Epoch;

/// Tolerance of AOS/LOS times, seconds.
const ROOT_TOL_S: f64 = 1e-3;
/// Tolerance of the culmination time, seconds (elevation is flat there: 0.01 s is < 1e-6°).
const MAX_TOL_S: f64 = 1e-2;
/// Standard gravitational parameter of the Earth (WGS-72, as SGP4), km³/s².
const MU_KM3_S2: f64 = 398_600.8;
/// Mean Earth radius for the horizon geometry of the search step, km.
const EARTH_RADIUS_KM: f64 = 6378.137;

/// One pass of a satellite over a ground station, above the station's elevation mask.
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    /// Acquisition of signal: the satellite rises through the mask (the search start if
    /// `in_progress_at_start`).
    pub aos: Epoch,
    /// Loss of signal: the satellite sets through the mask (the search end if
    /// `in_progress_at_end`).
    pub los: Epoch,
    /// Time of maximum elevation within `[aos, los]`.
    pub culmination: Epoch,
    /// Maximum elevation, degrees.
    pub max_elevation_deg: f64,
    /// Azimuth at `aos`, degrees.
    pub aos_azimuth_deg: f64,
    /// Azimuth at `culmination`, degrees.
    pub culmination_azimuth_deg: f64,
    /// Azimuth at `los`, degrees.
    pub los_azimuth_deg: f64,
    /// The satellite was already above the mask at the search start.
    pub in_progress_at_start: bool,
    /// The satellite is still above the mask at the search end.
    pub in_progress_at_end: bool,
}

impl Pass {
    /// `los − aos`, seconds.
    pub fn duration_s(&self) -> f64 {
        self.los.seconds_since(self.aos)
    }
}

/// Predicts the passes of a satellite over `station` between `start` and `end`, in time order.
///
/// The elevation above the station's mask is sampled with a step chosen from the orbit (see
/// [`search_step_s`]); crossings are refined with Brent's method to 1 ms, and each sampled local
/// maximum below the mask is refined with Brent's minimiser so a pass shorter than the step is
/// not missed. Culmination is found with Brent's minimiser to 0.01 s. Passes cut by the search
/// window are returned clipped and flagged.
///
/// Fails if the satellite cannot be propagated anywhere in the window (decayed, or the window
/// reaches further from the element epoch than the propagator allows).
pub fn passes(
    propagator: &Propagator,
    station: &GroundStation,
    start: Epoch,
    end: Epoch,
) -> Result<Vec<Pass>, PropagationError> {
    let topo = Topocentric::new(station);
    let mask = station.min_elevation_deg;
    let step = search_step_s(propagator);
    let mut above_mask = |t: f64| -> Result<f64, PropagationError> {
        let r = propagator.position_ecef(Epoch::from_unix_seconds(t))?;
        Ok(topo.elevation_deg(r) - mask)
    };
    let intervals = positive_intervals(
        &mut above_mask,
        start.unix_seconds(),
        end.unix_seconds(),
        step,
        ROOT_TOL_S,
    )?;
    let azimuth = |t: f64| -> Result<f64, PropagationError> {
        Ok(topo.azimuth_deg(propagator.position_ecef(Epoch::from_unix_seconds(t))?))
    };
    let mut out = Vec::with_capacity(intervals.len());
    for i in intervals {
        // Elevation may have more than one maximum in a long pass (high orbits): refine around
        // the best sample.
        let n = ((i.end - i.start) / step).ceil().max(1.0) as usize;
        let h = (i.end - i.start) / n as f64;
        let mut best = (i.start, f64::NEG_INFINITY);
        for k in 0..=n {
            let t = i.start + k as f64 * h;
            let v = above_mask(t)?;
            if v > best.1 {
                best = (t, v);
            }
        }
        let lo = (best.0 - h).max(i.start);
        let hi = (best.0 + h).min(i.end);
        let (tc, vc) = brent_max(&mut above_mask, lo, hi, MAX_TOL_S)?;
        out.push(Pass {
            aos: Epoch::from_unix_seconds(i.start),
            los: Epoch::from_unix_seconds(i.end),
            culmination: Epoch::from_unix_seconds(tc),
            max_elevation_deg: vc + mask,
            aos_azimuth_deg: azimuth(i.start)?,
            culmination_azimuth_deg: azimuth(tc)?,
            los_azimuth_deg: azimuth(i.end)?,
            in_progress_at_start: i.open_start,
            in_progress_at_end: i.open_end,
        });
    }
    Ok(out)
}

/// The sampling step of the pass search, seconds.
///
/// Seen from a station, elevation rises and falls once per pass and is unimodal over at least
/// the duration of an overhead pass at a 0° horizon, `2·acos(R⊕/r)/ω`. The step is 1/20 of that
/// duration, with `r` the perigee radius and `ω` the fastest angular rate of the orbit (at
/// perigee) plus the Earth's rotation, capped at 10 minutes. A pass of any length above the mask
/// then either spans a sample or produces a sampled local maximum that gets refined. For the ISS
/// the step is about 25 s; for a 500 km orbit, about 24 s.
pub fn search_step_s(propagator: &Propagator) -> f64 {
    let tle = propagator.tle();
    let n = tle.mean_motion_rev_per_day * 2.0 * PI / 86_400.0;
    let a = (MU_KM3_S2 / (n * n)).cbrt();
    let e = tle.eccentricity.clamp(0.0, 0.99);
    let perigee = (a * (1.0 - e)).max(EARTH_RADIUS_KM + 1.0);
    let rate =
        n * (1.0 + e).powi(2) / (1.0 - e * e).powf(1.5) + crate::frames::EARTH_ROTATION_RAD_S;
    let half_angle = (EARTH_RADIUS_KM / perigee).acos();
    (2.0 * half_angle / rate / 20.0).min(600.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tle::Tle;

    fn iss() -> Propagator {
        let tle = Tle::parse(
            None,
            "1 25544U 98067A   24075.50000000  .00016717  00000+0  30275-3 0  9994",
            "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579445214",
        )
        .unwrap();
        Propagator::new(&tle).unwrap()
    }

    fn station(lat: f64, lon: f64, mask: f64) -> GroundStation {
        GroundStation {
            name: "gs".into(),
            latitude_deg: lat,
            longitude_deg: lon,
            altitude_m: 0.0,
            min_elevation_deg: mask,
        }
    }

    #[test]
    fn passes_are_consistent() {
        let p = iss();
        let gs = station(48.0, 11.0, 5.0);
        let start = p.tle().epoch;
        let found = passes(&p, &gs, start, start.plus_seconds(86_400.0)).unwrap();
        // An ISS-like orbit passes a 48°N station several times a day (see link-and-delta §2.5).
        assert!((4..=8).contains(&found.len()), "{found:?}");
        // This station happens to see the ISS overhead at the element epoch.
        assert!(found[0].in_progress_at_start && found[0].max_elevation_deg > 85.0);
        for pass in &found[1..] {
            assert!(!pass.in_progress_at_start && !pass.in_progress_at_end);
            assert!(pass.aos < pass.culmination && pass.culmination < pass.los);
            assert!(pass.duration_s() < 12.0 * 60.0, "{pass:?}");
            assert!(pass.max_elevation_deg >= 5.0 && pass.max_elevation_deg <= 90.0);
            // Elevation is at the mask at AOS and LOS.
            for t in [pass.aos, pass.los] {
                let el = gs.look_angles(&p.state_ecef(t).unwrap()).elevation_deg;
                assert!((el - 5.0).abs() < 1e-3, "{el}");
            }
        }
        let step = search_step_s(&p);
        assert!((20.0..30.0).contains(&step), "{step}");
    }

    #[test]
    fn windows_cutting_a_pass_are_flagged() {
        let p = iss();
        let gs = station(48.0, 11.0, 5.0);
        let start = p.tle().epoch;
        let all = passes(&p, &gs, start, start.plus_seconds(86_400.0)).unwrap();
        let first = &all[1];
        let mid = first.culmination;
        let before = passes(&p, &gs, start, mid).unwrap();
        let last = before.last().unwrap();
        assert!(last.in_progress_at_end && !last.in_progress_at_start);
        assert!(last.aos.seconds_since(first.aos).abs() < 2e-3);
        assert_eq!(last.los, mid);
        let after = passes(&p, &gs, mid, start.plus_seconds(86_400.0)).unwrap();
        assert!(after[0].in_progress_at_start && !after[0].in_progress_at_end);
        assert_eq!(after[0].aos, mid);
        assert!(after[0].los.seconds_since(first.los).abs() < 2e-3);
        assert_eq!(after.len(), all.len() - 1);
    }
}
