//! Ground stations and topocentric look angles.

use crate::frames::{Geodetic, geodetic_to_ecef};
use crate::propagate::StateVector;
use crate::vec3::{dot, norm, sub};

/// A ground station: a WGS-84 location and an elevation mask below which it cannot work.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundStation {
    /// A name for display and for contact-plan windows.
    pub name: String,
    /// Geodetic latitude, degrees north.
    pub latitude_deg: f64,
    /// Longitude, degrees east.
    pub longitude_deg: f64,
    /// Height above the WGS-84 ellipsoid, metres.
    pub altitude_m: f64,
    /// Minimum elevation for a contact, degrees.
    pub min_elevation_deg: f64,
}

/// Where a satellite appears from a ground station (geometric, no refraction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LookAngles {
    /// Azimuth, degrees clockwise from north, in [0, 360).
    pub azimuth_deg: f64,
    /// Elevation above the local (geodetic) horizon, degrees.
    pub elevation_deg: f64,
    /// Slant range, km.
    pub range_km: f64,
    /// Rate of change of the slant range, km/s (positive when receding).
    pub range_rate_km_s: f64,
}

impl GroundStation {
    /// The station's position as [`Geodetic`] (altitude in km).
    pub fn geodetic(&self) -> Geodetic {
        Geodetic {
            latitude_deg: self.latitude_deg,
            longitude_deg: self.longitude_deg,
            altitude_km: self.altitude_m / 1000.0,
        }
    }

    /// The station's ECEF position, km.
    pub fn position_ecef_km(&self) -> [f64; 3] {
        geodetic_to_ecef(&self.geodetic())
    }

    /// Look angles to a satellite whose state is given in ECEF (see
    /// [`crate::Propagator::state_ecef`]).
    pub fn look_angles(&self, satellite_ecef: &StateVector) -> LookAngles {
        let topo = Topocentric::new(self);
        let rho = sub(satellite_ecef.position_km, topo.origin);
        let range = norm(rho);
        let (e, n, u) = topo.enu(rho);
        LookAngles {
            azimuth_deg: e.atan2(n).to_degrees().rem_euclid(360.0),
            elevation_deg: u.atan2(e.hypot(n)).to_degrees(),
            range_km: range,
            range_rate_km_s: dot(rho, satellite_ecef.velocity_km_s) / range,
        }
    }
}

/// A station's local east-north-up frame, precomputed for repeated elevation evaluations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Topocentric {
    pub(crate) origin: [f64; 3],
    east: [f64; 3],
    north: [f64; 3],
    up: [f64; 3],
}

impl Topocentric {
    pub(crate) fn new(station: &GroundStation) -> Topocentric {
        let (sl, cl) = station.latitude_deg.to_radians().sin_cos();
        let (so, co) = station.longitude_deg.to_radians().sin_cos();
        Topocentric {
            origin: station.position_ecef_km(),
            east: [-so, co, 0.0],
            north: [-sl * co, -sl * so, cl],
            up: [cl * co, cl * so, sl],
        }
    }

    fn enu(&self, rho: [f64; 3]) -> (f64, f64, f64) {
        (dot(rho, self.east), dot(rho, self.north), dot(rho, self.up))
    }

    /// Elevation in degrees of an ECEF position (km).
    pub(crate) fn elevation_deg(&self, position_ecef_km: [f64; 3]) -> f64 {
        let (e, n, u) = self.enu(sub(position_ecef_km, self.origin));
        u.atan2(e.hypot(n)).to_degrees()
    }

    /// Azimuth in degrees of an ECEF position (km).
    pub(crate) fn azimuth_deg(&self, position_ecef_km: [f64; 3]) -> f64 {
        let (e, n, _) = self.enu(sub(position_ecef_km, self.origin));
        e.atan2(n).to_degrees().rem_euclid(360.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Epoch;

    #[test]
    fn look_angles_of_known_geometry() {
        let station = GroundStation {
            name: "equator".into(),
            latitude_deg: 0.0,
            longitude_deg: 0.0,
            altitude_m: 0.0,
            min_elevation_deg: 0.0,
        };
        let at = |position_km, velocity_km_s| StateVector {
            epoch: Epoch::from_unix_seconds(0.0),
            position_km,
            velocity_km_s,
        };
        // Straight overhead, 500 km up, climbing at 1 km/s.
        let zenith = station.look_angles(&at([6878.137, 0.0, 0.0], [1.0, 0.0, 0.0]));
        assert!((zenith.elevation_deg - 90.0).abs() < 1e-9);
        assert!((zenith.range_km - 500.0).abs() < 1e-9);
        assert!((zenith.range_rate_km_s - 1.0).abs() < 1e-12);
        // Due north on the horizon plane, and due east 45° up.
        let north = station.look_angles(&at([6378.137, 0.0, 1000.0], [0.0; 3]));
        assert!(north.elevation_deg.abs() < 1e-9 && north.azimuth_deg.abs() < 1e-9);
        let east = station.look_angles(&at([6378.137 + 100.0, 100.0, 0.0], [0.0; 3]));
        assert!((east.elevation_deg - 45.0).abs() < 1e-9);
        assert!((east.azimuth_deg - 90.0).abs() < 1e-9);
    }
}
