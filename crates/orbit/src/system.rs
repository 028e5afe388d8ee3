//! A flying system as every process sees it: its elements and its ground stations, the one
//! place its contact plan is computed from, and the demo's synthetic flight model.

use crate::contact::{ContactPlan, StationLink};
use crate::propagate::{PropagationError, Propagator};
use crate::station::GroundStation;
use crate::time::Epoch;
use crate::tle::{Tle, checksum};

/// A flying system: its latest elements and the ground stations that reach it, with their
/// rates. Plain data; the ground (passes, uplink ETAs), the flight agent and the link emulator
/// all take their windows from [`SystemOrbit::contact_plan`], so they agree on when the link
/// is up.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemOrbit {
    /// Its latest element set.
    pub tle: Tle,
    /// The stations that talk to it, with their uplink and downlink rates.
    pub stations: Vec<StationLink>,
}

impl SystemOrbit {
    /// The contact plan from `start` to `end`: every pass over every station as a
    /// [`crate::Window`] with its station's rates ([`ContactPlan::windows`]), and the same
    /// windows merged across stations ([`ContactPlan::contacts`]). A pass in progress at `start`
    /// or at `end` is cut there.
    ///
    /// Fails if the elements cannot be propagated over the whole span (decayed, or too far
    /// from their epoch).
    pub fn contact_plan(&self, start: Epoch, end: Epoch) -> Result<ContactPlan, PropagationError> {
        let propagator = Propagator::new(&self.tle)?;
        ContactPlan::compute(&propagator, &self.stations, start, end)
    }

    /// The highest uplink and downlink rates of its stations, bit/s (0 without stations): the
    /// one rate per direction of a link that does not change its rate from pass to pass.
    pub fn best_rates(&self) -> (f64, f64) {
        self.stations.iter().fold((0.0, 0.0), |(up, down), s| {
            (up.max(s.uplink_bps), down.max(s.downlink_bps))
        })
    }
}

/// The demo's flight model `fm`: its elements as TLE text (what a systems file holds) and its
/// stations.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSystem {
    /// Three TLE lines: a name, line 1, line 2, each ending in a newline.
    pub tle_text: String,
    /// Svalbard (256 kbit/s up, 2 Mbit/s down) and Matera (64 kbit/s up, 1 Mbit/s down), each
    /// with a 5° mask.
    pub stations: Vec<StationLink>,
}

/// The demo's flight model with its element epoch at `at`: a circular sun-synchronous orbit at
/// 520 km (right ascension of the ascending node 30°), seen from Svalbard and Matera. The
/// elements are always fresh, so its passes (and so its uplink ETAs) are real.
pub fn demo_system(at: Epoch) -> DemoSystem {
    let station = |name: &str, lat, lon, alt, up, down| StationLink {
        station: GroundStation {
            name: name.into(),
            latitude_deg: lat,
            longitude_deg: lon,
            altitude_m: alt,
            min_elevation_deg: 5.0,
        },
        uplink_bps: up,
        downlink_bps: down,
    };
    DemoSystem {
        tle_text: sun_synchronous_tle(at, 520.0, 30.0),
        stations: vec![
            station("Svalbard", 78.23, 15.39, 500.0, 256_000.0, 2_000_000.0),
            station("Matera", 40.65, 16.70, 540.0, 64_000.0, 1_000_000.0),
        ],
    }
}

/// A TLE (three lines, named `ORBITDOCK-FM`, catalog number 99001) for a circular
/// sun-synchronous orbit at `altitude_km` with its right ascension of the ascending node at
/// `raan_deg`, and its epoch at `at` (truncated to the TLE's 10⁻⁸ day; instants before 1970
/// count as 1970).
pub fn sun_synchronous_tle(at: Epoch, altitude_km: f64, raan_deg: f64) -> String {
    const MU: f64 = 398_600.441_8;
    const RE: f64 = 6378.137;
    let a = RE + altitude_km;
    let mean_motion = 86_400.0 / (2.0 * std::f64::consts::PI * (a.powi(3) / MU).sqrt());
    // Sun-synchronous inclination: cos i = -(a/12352 km)^3.5 (J2 nodal precession of 0.9856°/day).
    let inclination = (-(a / 12_352.0).powf(3.5)).acos().to_degrees();
    let at = Epoch::from_unix_seconds(at.unix_seconds().max(0.0));
    let (year, ..) = at.to_utc();
    let day_of_year = at.seconds_since(Epoch::from_year_and_day(year, 1.0)) / 86_400.0 + 1.0;
    // Truncated, so that rounding the last digit never writes day 366 of a common year.
    let day_of_year = (day_of_year * 1e8).floor() / 1e8;
    let line1 = format!(
        "1 99001U 26001A   {:02}{:012.8}  .00000000  00000+0  00000+0 0  999",
        year % 100,
        day_of_year
    );
    let line2 = format!(
        "2 99001 {:8.4} {:8.4} 0001000  90.0000 270.0000 {:11.8}    1",
        inclination, raan_deg, mean_motion
    );
    format!(
        "ORBITDOCK-FM\n{line1}{}\n{line2}{}\n",
        checksum(line1.as_bytes()),
        checksum(line2.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tle::parse_tle_text;

    /// 2026-11-18T22:13:20Z.
    const AT: Epoch = Epoch::from_unix_seconds(1_795_000_000.0);

    fn demo() -> SystemOrbit {
        let d = demo_system(AT);
        let tles = parse_tle_text(&d.tle_text).expect("the demo's TLE parses");
        assert_eq!(tles.len(), 1);
        SystemOrbit {
            tle: tles.into_iter().next().unwrap(),
            stations: d.stations,
        }
    }

    #[test]
    fn the_demo_orbit_passes_over_its_stations() {
        let fm = demo();
        assert_eq!(fm.tle.name.as_deref(), Some("ORBITDOCK-FM"));
        assert!((fm.tle.epoch.unix_seconds() - AT.unix_seconds()).abs() < 1e-3);
        assert!(
            (fm.tle.inclination_deg - 97.5).abs() < 0.2,
            "sun-synchronous"
        );
        let plan = fm.contact_plan(AT, AT.plus_seconds(86_400.0)).unwrap();
        for station in ["Svalbard", "Matera"] {
            let n = plan
                .windows()
                .iter()
                .filter(|w| w.station == station)
                .count();
            assert!(n >= 2, "{station} sees the demo orbit {n} times a day");
        }
        let contacts = plan.contacts();
        assert!(
            contacts.len() >= 6,
            "Svalbard sees a polar orbit often: {}",
            contacts.len()
        );
        assert!(contacts.iter().all(|c| c.los > c.aos));
        assert!(contacts.windows(2).all(|p| p[0].los < p[1].aos));
        assert_eq!(fm.best_rates(), (256_000.0, 2_000_000.0));
    }

    #[test]
    fn the_demo_orbit_is_fresh_at_any_instant() {
        // The last instant of a leap year, the first of the next, and the Unix epoch itself.
        for at in [1_798_761_599.999_999, 1_798_761_600.0, 0.0, -5.0] {
            let d = demo_system(Epoch::from_unix_seconds(at));
            let tle = &parse_tle_text(&d.tle_text).unwrap()[0];
            assert!(
                (tle.epoch.unix_seconds() - at.max(0.0)).abs() < 1e-3,
                "{at}: {}",
                tle.epoch
            );
        }
    }

    #[test]
    fn contacts_are_cut_at_the_horizon_of_the_computation() {
        let fm = demo();
        let day = fm.contact_plan(AT, AT.plus_seconds(86_400.0)).unwrap();
        let contacts = day.contacts();
        let (first, last) = (&contacts[1], &contacts[contacts.len() - 2]);
        // From the middle of one contact to the middle of another.
        let start = first
            .aos
            .plus_seconds(first.los.seconds_since(first.aos) / 2.0);
        let end = last
            .aos
            .plus_seconds(last.los.seconds_since(last.aos) / 2.0);
        let cut = fm.contact_plan(start, end).unwrap().contacts();
        // Root finding from another start may move a crossing by its tolerance (1 ms).
        let close = |a: Epoch, b: Epoch| a.seconds_since(b).abs() < 0.01;
        assert_eq!(cut.len(), contacts.len() - 2);
        let n = cut.len() - 1;
        assert_eq!((cut[0].aos, cut[n].los), (start, end));
        assert!(close(cut[0].los, first.los) && close(cut[n].aos, last.aos));
        // Whole in between.
        for (c, whole) in cut[1..n].iter().zip(&contacts[2..contacts.len() - 2]) {
            assert!(close(c.aos, whole.aos) && close(c.los, whole.los));
        }
    }
}
