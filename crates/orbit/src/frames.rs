//! TEME → ECEF (GMST IAU-82), ECEF ↔ geodetic (WGS-84).

use std::f64::consts::{PI, TAU};

use crate::propagate::StateVector;
use crate::time::Epoch;
use crate::vec3::{V3, cross, sub};

/// WGS-84 semi-major axis, km.
pub(crate) const WGS84_A_KM: f64 = 6378.137;
/// WGS-84 flattening.
const WGS84_F: f64 = 1.0 / 298.257_223_563;
/// WGS-84 first eccentricity squared.
const WGS84_E2: f64 = WGS84_F * (2.0 - WGS84_F);
/// Earth rotation rate, rad/s (Vallado, IERS nominal).
pub(crate) const EARTH_ROTATION_RAD_S: f64 = 7.292_115_146_706_979e-5;

/// A point given by WGS-84 geodetic latitude, longitude and height above the ellipsoid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geodetic {
    /// Geodetic latitude, degrees north, in [-90, 90].
    pub latitude_deg: f64,
    /// Longitude, degrees east, in (-180, 180].
    pub longitude_deg: f64,
    /// Height above the WGS-84 ellipsoid, km.
    pub altitude_km: f64,
}

/// Greenwich mean sidereal time (IAU-82, the angle SGP4's TEME is defined with), radians in
/// [0, 2π). UTC is used for UT1.
pub fn gmst_rad(t: Epoch) -> f64 {
    // Julian centuries of UT1 since J2000.0.
    let tut1 = t.days_since_j2000_utc() / 36_525.0;
    let seconds = ((-6.2e-6 * tut1 + 0.093_104) * tut1 + (876_600.0 * 3600.0 + 8_640_184.812_866))
        * tut1
        + 67_310.548_41;
    (seconds * (PI / 180.0) / 240.0).rem_euclid(TAU)
}

/// Rotates a TEME position into ECEF (pseudo-Earth-fixed frame), km.
pub(crate) fn rotate_teme_to_ecef(r: V3, t: Epoch) -> V3 {
    let (s, c) = gmst_rad(t).sin_cos();
    [c * r[0] + s * r[1], -s * r[0] + c * r[1], r[2]]
}

/// Converts a TEME state (as returned by [`crate::Propagator::state_teme`]) to the Earth-fixed
/// frame.
///
/// TEME is rotated about the pole by GMST (IAU-82), as in Vallado et al. (2006, AIAA 2006-6753).
/// TEME's x-axis is the *mean* equinox, so the equation of the equinoxes does not enter this
/// rotation; what is neglected is polar motion (the pseudo-Earth-fixed frame is taken as ITRF;
/// ≤ 0.3″, about 10 m at the surface) and UT1 − UTC (UTC is used for UT1: |UT1 − UTC| < 0.9 s
/// turns the Earth by up to 0.4 km at the equator; tens of metres in 2020–2025).
pub fn teme_to_ecef(state: &StateVector) -> StateVector {
    let t = state.epoch;
    let r = rotate_teme_to_ecef(state.position_km, t);
    let v = rotate_teme_to_ecef(state.velocity_km_s, t);
    let omega_cross_r = cross([0.0, 0.0, EARTH_ROTATION_RAD_S], r);
    StateVector {
        epoch: t,
        position_km: r,
        velocity_km_s: sub(v, omega_cross_r),
    }
}

/// ECEF position (km) to WGS-84 geodetic coordinates. Exact to well below a millimetre from the
/// Earth's centre region to beyond geostationary altitude, including at the poles.
pub fn ecef_to_geodetic(position_km: [f64; 3]) -> Geodetic {
    let [x, y, z] = position_km;
    let p = x.hypot(y);
    let longitude = y.atan2(x);
    let mut lat = z.atan2(p * (1.0 - WGS84_E2));
    for _ in 0..10 {
        let s = lat.sin();
        let n = WGS84_A_KM / (1.0 - WGS84_E2 * s * s).sqrt();
        let next = (z + WGS84_E2 * n * s).atan2(p);
        let done = (next - lat).abs() < 1e-14;
        lat = next;
        if done {
            break;
        }
    }
    let (s, c) = lat.sin_cos();
    let altitude = p * c + z * s - WGS84_A_KM * (1.0 - WGS84_E2 * s * s).sqrt();
    Geodetic {
        latitude_deg: lat.to_degrees(),
        longitude_deg: normalize_longitude(longitude.to_degrees()),
        altitude_km: altitude,
    }
}

/// WGS-84 geodetic coordinates to ECEF position, km.
pub fn geodetic_to_ecef(point: &Geodetic) -> [f64; 3] {
    let (sl, cl) = point.latitude_deg.to_radians().sin_cos();
    let (so, co) = point.longitude_deg.to_radians().sin_cos();
    let n = WGS84_A_KM / (1.0 - WGS84_E2 * sl * sl).sqrt();
    let h = point.altitude_km;
    [
        (n + h) * cl * co,
        (n + h) * cl * so,
        (n * (1.0 - WGS84_E2) + h) * sl,
    ]
}

/// Maps a longitude in degrees to (-180, 180].
pub(crate) fn normalize_longitude(deg: f64) -> f64 {
    let l = (deg + 180.0).rem_euclid(360.0) - 180.0;
    if l == -180.0 { 180.0 } else { l }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn gmst_known_values() {
        // Vallado, Fundamentals of Astrodynamics, example 3-5: 1992-08-20 12:14:00 UT1
        // gives GMST = 152.578 787 886°.
        let t = Epoch::from_utc(1992, 8, 20, 12, 14, 0.0).unwrap();
        assert!(
            close(gmst_rad(t).to_degrees(), 152.578_787_886, 1e-7),
            "{}",
            gmst_rad(t)
        );
        // At J2000.0 GMST is 280.460 618 37°.
        let j2000 = Epoch::from_utc(2000, 1, 1, 12, 0, 0.0).unwrap();
        assert!(close(gmst_rad(j2000).to_degrees(), 280.460_618_37, 1e-7));
    }

    #[test]
    fn teme_to_ecef_vallado_example() {
        // Vallado et al. 2006 (AIAA 2006-6753), §"TEME": 2004-04-06 07:51:28.386 UTC.
        // rTEME = (5094.18016210, 6127.64465950, 6380.34453270) km gives
        // rPEF = (−1033.4750313, 7901.3055856, 6380.3445327) km and
        // vPEF = (−3.225632747, −2.872442511, 5.531931288) km/s, with UT1 = UTC − 0.439961 s.
        let t = Epoch::from_utc(2004, 4, 6, 7, 51, 28.386_009).unwrap();
        let teme = StateVector {
            epoch: t.plus_seconds(-0.439_961),
            position_km: [5094.1801621, 6127.6446595, 6380.3445327],
            velocity_km_s: [-4.746_131_487, 0.785_818_041, 5.531_931_288],
        };
        let ecef = teme_to_ecef(&teme);
        let expect_r = [-1033.4750313, 7901.3055856, 6380.3445327];
        let expect_v = [-3.225_632_747, -2.872_442_511, 5.531_931_288];
        for i in 0..3 {
            assert!(
                close(ecef.position_km[i], expect_r[i], 1e-3),
                "{:?}",
                ecef.position_km
            );
            assert!(
                close(ecef.velocity_km_s[i], expect_v[i], 1e-7),
                "{:?}",
                ecef.velocity_km_s
            );
        }
    }

    #[test]
    fn geodetic_round_trip_and_known_points() {
        let equator = geodetic_to_ecef(&Geodetic {
            latitude_deg: 0.0,
            longitude_deg: 0.0,
            altitude_km: 0.0,
        });
        assert_eq!(equator, [WGS84_A_KM, 0.0, 0.0]);
        // The pole is at the semi-minor axis b = a(1 − f) = 6356.752 314 245 km.
        let pole = ecef_to_geodetic([0.0, 0.0, 6_356.752_314_245]);
        assert!(close(pole.latitude_deg, 90.0, 1e-12) && close(pole.altitude_km, 0.0, 1e-9));
        for &(lat, lon, h) in &[
            (78.2297, 15.4078, 0.5),
            (-33.15, -70.67, 0.6),
            (45.0, 179.999, 500.0),
            (-89.99, -45.0, 35_786.0),
            (0.0, -180.0, 400.0),
        ] {
            let g = Geodetic {
                latitude_deg: lat,
                longitude_deg: lon,
                altitude_km: h,
            };
            let back = ecef_to_geodetic(geodetic_to_ecef(&g));
            assert!(close(back.latitude_deg, lat, 1e-10), "{back:?}");
            assert!(
                close(normalize_longitude(back.longitude_deg - lon), 0.0, 1e-10),
                "{back:?}"
            );
            assert!(close(back.altitude_km, h, 1e-9), "{back:?}");
        }
    }
}
