//! Sub-satellite point, ground track, geofences and pointing predicates.

use crate::frames::{Geodetic, ecef_to_geodetic, geodetic_to_ecef};
use crate::propagate::{PropagationError, Propagator};
use crate::time::Epoch;
use crate::vec3::{angle_between, dot, scale, sub};

/// Mean Earth radius (IUGG), km: the sphere used for great-circle distances.
pub const MEAN_EARTH_RADIUS_KM: f64 = 6371.0088;
/// The most points [`ground_track`] returns.
pub const MAX_TRACK_POINTS: usize = 100_000;

/// A latitude and longitude on the Earth, degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLon {
    /// Latitude, degrees north.
    pub latitude_deg: f64,
    /// Longitude, degrees east (any value; normalised where it matters).
    pub longitude_deg: f64,
}

/// One sample of a ground track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackPoint {
    /// The instant.
    pub epoch: Epoch,
    /// The sub-satellite point and the satellite's height.
    pub position: Geodetic,
}

/// An area on the ground, for "run when over …" triggers.
#[derive(Debug, Clone, PartialEq)]
pub enum Geofence {
    /// All points within `radius_km` (great-circle distance on the mean sphere) of `center`.
    Circle {
        /// The centre.
        center: LatLon,
        /// The radius, km.
        radius_km: f64,
    },
    /// A polygon whose edges are straight in latitude/longitude (plate carrée), given by its
    /// vertices in order (either orientation, not repeated at the end). Edges take the short way
    /// round in longitude, so a polygon may straddle the antimeridian; one whose edges circle a
    /// pole encloses that pole. Fewer than three vertices enclose nothing.
    Polygon(Vec<LatLon>),
}

impl Geofence {
    /// Whether `point` is inside (boundary points may go either way).
    pub fn contains(&self, point: LatLon) -> bool {
        match self {
            Geofence::Circle { center, radius_km } => {
                great_circle_distance_km(*center, point) <= *radius_km
            }
            Geofence::Polygon(vertices) => polygon_contains(vertices, point),
        }
    }
}

/// The point on the WGS-84 ellipsoid below the satellite (geodetic nadir) and its height.
pub fn subsatellite_point(propagator: &Propagator, t: Epoch) -> Result<Geodetic, PropagationError> {
    Ok(ecef_to_geodetic(propagator.position_ecef(t)?))
}

/// The ground track from `start` to `end` inclusive, every `step_s` seconds (the step is raised
/// if needed so at most [`MAX_TRACK_POINTS`] points are returned; a non-positive or non-finite
/// step, or `end < start`, gives the single point at `start` or nothing).
pub fn ground_track(
    propagator: &Propagator,
    start: Epoch,
    end: Epoch,
    step_s: f64,
) -> Result<Vec<TrackPoint>, PropagationError> {
    let span = end.seconds_since(start);
    if span.is_nan() || span < 0.0 {
        return Ok(Vec::new());
    }
    let count = if step_s.is_finite() && step_s > 0.0 {
        let step = step_s.max(span / (MAX_TRACK_POINTS - 1) as f64);
        ((span / step).floor() as usize + 1).min(MAX_TRACK_POINTS)
    } else {
        1
    };
    let step = if count > 1 {
        step_s.max(span / (MAX_TRACK_POINTS - 1) as f64)
    } else {
        0.0
    };
    (0..count)
        .map(|k| {
            let t = start.plus_seconds(k as f64 * step);
            Ok(TrackPoint {
                epoch: t,
                position: subsatellite_point(propagator, t)?,
            })
        })
        .collect()
}

/// Great-circle distance between two points on the mean Earth sphere (haversine), km.
pub fn great_circle_distance_km(a: LatLon, b: LatLon) -> f64 {
    let (la, lb) = (a.latitude_deg.to_radians(), b.latitude_deg.to_radians());
    let dlat = lb - la;
    let dlon = (b.longitude_deg - a.longitude_deg).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la.cos() * lb.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * MEAN_EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The angle, degrees, between the satellite's nadir (towards the Earth's centre) and the line of
/// sight to `target`. Satellite position in ECEF, km.
pub fn off_nadir_angle_deg(satellite_ecef_km: [f64; 3], target: &Geodetic) -> f64 {
    let los = sub(geodetic_to_ecef(target), satellite_ecef_km);
    angle_between(los, scale(satellite_ecef_km, -1.0)).to_degrees()
}

/// The nadir-pointing predicate: `target` is above its horizon as seen from the satellite's side
/// and within `max_off_nadir_deg` of nadir. Satellite position in ECEF, km.
pub fn is_near_nadir(
    satellite_ecef_km: [f64; 3],
    target: &Geodetic,
    max_off_nadir_deg: f64,
) -> bool {
    visible(satellite_ecef_km, target)
        && off_nadir_angle_deg(satellite_ecef_km, target) <= max_off_nadir_deg
}

/// The attitude-aware variant: `target` is visible and within `half_angle_deg` of the
/// `boresight_ecef` direction (any length, ECEF axes).
pub fn is_in_boresight(
    satellite_ecef_km: [f64; 3],
    boresight_ecef: [f64; 3],
    target: &Geodetic,
    half_angle_deg: f64,
) -> bool {
    let los = sub(geodetic_to_ecef(target), satellite_ecef_km);
    visible(satellite_ecef_km, target)
        && angle_between(los, boresight_ecef).to_degrees() <= half_angle_deg
}

/// The satellite's elevation above `target_ecef_km`'s geocentric horizon, degrees: positive
/// where [`is_near_nadir`] counts the target visible (the smooth margin searches refine).
pub(crate) fn geocentric_elevation_deg(
    satellite_ecef_km: [f64; 3],
    target_ecef_km: [f64; 3],
) -> f64 {
    90.0 - angle_between(target_ecef_km, sub(satellite_ecef_km, target_ecef_km)).to_degrees()
}

/// Whether the satellite is above the target's (geocentric) horizon.
fn visible(satellite_ecef_km: [f64; 3], target: &Geodetic) -> bool {
    let t = geodetic_to_ecef(target);
    dot(t, sub(satellite_ecef_km, t)) > 0.0
}

fn wrap180(deg: f64) -> f64 {
    (deg + 180.0).rem_euclid(360.0) - 180.0
}

fn polygon_contains(vertices: &[LatLon], point: LatLon) -> bool {
    if vertices.len() < 3 {
        return false;
    }
    // Unwrap longitudes so each edge takes the short way round: the polygon becomes an ordinary
    // planar polygon in (longitude, latitude), possibly extending past ±180°.
    let mut ring: Vec<(f64, f64)> = Vec::with_capacity(vertices.len() + 3);
    let mut lon = vertices[0].longitude_deg;
    ring.push((lon, vertices[0].latitude_deg));
    for pair in vertices.windows(2) {
        lon += wrap180(pair[1].longitude_deg - pair[0].longitude_deg);
        ring.push((lon, pair[1].latitude_deg));
    }
    let closing =
        lon + wrap180(vertices[0].longitude_deg - vertices[vertices.len() - 1].longitude_deg);
    let winding = closing - ring[0].0;
    if winding.abs() > 180.0 {
        // The edges circle a pole: close the ring through it.
        let mean_lat = vertices.iter().map(|v| v.latitude_deg).sum::<f64>() / vertices.len() as f64;
        let pole = if mean_lat >= 0.0 { 90.0 } else { -90.0 };
        ring.push((closing, vertices[0].latitude_deg));
        ring.push((closing, pole));
        ring.push((ring[0].0, pole));
    }
    let (min, max) = ring.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &(x, _)| {
        (lo.min(x), hi.max(x))
    });
    // Try the point's longitude in every turn the unwrapped ring reaches.
    let base = wrap180(point.longitude_deg);
    let first = ((min - base) / 360.0).floor() as i64;
    let last = ((max - base) / 360.0).ceil() as i64;
    (first..=last).any(|k| {
        let x = base + 360.0 * k as f64;
        x >= min && x <= max && even_odd(&ring, x, point.latitude_deg)
    })
}

/// The even-odd rule for a planar ring.
fn even_odd(ring: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut j = ring.len() - 1;
    for i in 0..ring.len() {
        let (xi, yi) = ring[i];
        let (xj, yj) = ring[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll(latitude_deg: f64, longitude_deg: f64) -> LatLon {
        LatLon {
            latitude_deg,
            longitude_deg,
        }
    }

    #[test]
    fn circles() {
        // One degree of arc on the mean sphere is 111.195 km.
        assert!((great_circle_distance_km(ll(0.0, 0.0), ll(0.0, 1.0)) - 111.195).abs() < 1e-3);
        let fence = Geofence::Circle {
            center: ll(0.0, 0.0),
            radius_km: 111.2,
        };
        assert!(fence.contains(ll(0.0, 0.99)) && !fence.contains(ll(0.0, 1.01)));
        // Across the antimeridian.
        let fence = Geofence::Circle {
            center: ll(0.0, 179.5),
            radius_km: 200.0,
        };
        assert!(fence.contains(ll(0.0, -179.5)) && !fence.contains(ll(0.0, -177.0)));
        // Around a pole, longitudes do not matter.
        let fence = Geofence::Circle {
            center: ll(90.0, 0.0),
            radius_km: 500.0,
        };
        assert!(fence.contains(ll(86.0, -135.0)) && !fence.contains(ll(85.0, 40.0)));
    }

    #[test]
    fn polygons() {
        // Montevideo-ish box (Uruguay).
        let uruguay = Geofence::Polygon(vec![
            ll(-30.0, -58.5),
            ll(-30.0, -53.0),
            ll(-35.0, -53.0),
            ll(-35.0, -58.5),
        ]);
        assert!(uruguay.contains(ll(-34.9, -56.2)) && !uruguay.contains(ll(-34.6, -58.4 - 1.0)));
        // Fiji-ish box straddling the antimeridian, given with longitudes on both sides.
        let fiji = Geofence::Polygon(vec![
            ll(-15.0, 175.0),
            ll(-15.0, -175.0),
            ll(-22.0, -175.0),
            ll(-22.0, 175.0),
        ]);
        for inside in [
            ll(-18.0, 179.9),
            ll(-18.0, -179.5),
            ll(-18.0, 180.0),
            ll(-18.0, 540.0 - 0.1),
        ] {
            assert!(fiji.contains(inside), "{inside:?}");
        }
        for outside in [
            ll(-18.0, 170.0),
            ll(-18.0, -170.0),
            ll(-18.0, 0.0),
            ll(-10.0, 179.0),
        ] {
            assert!(!fiji.contains(outside), "{outside:?}");
        }
        // A ring at 80°N encloses the north pole.
        let arctic = Geofence::Polygon(vec![
            ll(80.0, 0.0),
            ll(80.0, 90.0),
            ll(80.0, 180.0),
            ll(80.0, -90.0),
        ]);
        assert!(arctic.contains(ll(85.0, 45.0)) && arctic.contains(ll(89.0, -100.0)));
        assert!(!arctic.contains(ll(75.0, 0.0)) && !arctic.contains(ll(-85.0, 0.0)));
        // Degenerate polygons enclose nothing.
        assert!(!Geofence::Polygon(vec![ll(0.0, 0.0), ll(1.0, 1.0)]).contains(ll(0.5, 0.5)));
    }

    #[test]
    fn nadir() {
        let sat = geodetic_to_ecef(&Geodetic {
            latitude_deg: 10.0,
            longitude_deg: 20.0,
            altitude_km: 500.0,
        });
        let below = Geodetic {
            latitude_deg: 10.0,
            longitude_deg: 20.0,
            altitude_km: 0.0,
        };
        // The geodetic and geocentric verticals differ by < 0.2° at 10° latitude.
        assert!(off_nadir_angle_deg(sat, &below) < 0.2);
        assert!(is_near_nadir(sat, &below, 1.0));
        // 5° of longitude away (547 km) is about 46.3° off nadir from 500 km up.
        let aside = Geodetic {
            latitude_deg: 10.0,
            longitude_deg: 25.0,
            altitude_km: 0.0,
        };
        let angle = off_nadir_angle_deg(sat, &aside);
        assert!((46.0..46.6).contains(&angle), "{angle}");
        assert!(!is_near_nadir(sat, &aside, 30.0) && is_near_nadir(sat, &aside, 50.0));
        // The far side of the Earth is never "near nadir", even with a wide cone.
        let antipode = Geodetic {
            latitude_deg: -10.0,
            longitude_deg: -160.0,
            altitude_km: 0.0,
        };
        assert!(!is_near_nadir(sat, &antipode, 180.0));
        // Boresight along the nadir equals the nadir predicate.
        let nadir = scale(sat, -1.0);
        assert!(
            is_in_boresight(sat, nadir, &below, 1.0) && !is_in_boresight(sat, nadir, &aside, 30.0)
        );
    }
}
