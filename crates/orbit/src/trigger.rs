//! Triggers: when a [`wire::Condition`] holds along a satellite's orbit. The one evaluator of
//! triggers: the ground predicts firing times with it before a plan goes up, and the flight
//! agent fires with it onboard, from the same element set ([`wire::Elements`], carried by the
//! plan and read by [`parse_elements`]).
//!
//! Every leaf becomes the list of intervals where it holds, found like passes and eclipses: a
//! smooth function of time sampled and its sign changes refined with Brent's method to a
//! millisecond (humps between samples caught by refining every sampled maximum); a polygon,
//! which has no smooth margin, is sampled at a step its size sets and its boundary crossings
//! bisected to a millisecond. `all` intersects the lists, `any` joins them.
//!
//! A telemetry test ([`wire::Condition::Telemetry`]) is not the orbit's to judge: the evaluator
//! takes it as holding, so what it finds is when the trigger may fire. The flight agent judges
//! the tests from its newest telemetry sample first ([`wire::Condition::judged`]); the ground
//! predicts the rest and says the tests are decided onboard.

use crate::eclipse::sun_centre_hidden;
use crate::frames::{Geodetic, geodetic_to_ecef, rotate_teme_to_ecef};
use crate::geo::{
    Geofence, LatLon, geocentric_elevation_deg, great_circle_distance_km, off_nadir_angle_deg,
    subsatellite_point,
};
use crate::passes::search_step_s;
use crate::propagate::{PropagationError, Propagator};
use crate::search::positive_intervals;
use crate::station::{GroundStation, Topocentric};
use crate::sun::sun_position_km;
use crate::time::Epoch;
use crate::tle::{Tle, TleError, checksum};
use crate::vec3::angle_between;

/// Tolerance of firing times, seconds.
const ROOT_TOL_S: f64 = 1e-3;
/// [`next_firing`] searches this much of the future at a time, seconds, so that a trigger that
/// fires soon costs little however far its deadline.
const CHUNK_S: f64 = 6.0 * 3600.0;
/// The fastest a sub-satellite point moves over the ground (LEO), km/s: a polygon is sampled so
/// that the point moves at most half its smaller side between samples.
const GROUND_SPEED_KM_S: f64 = 8.0;

/// An interval in which a trigger's condition holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Firing {
    /// When it starts to hold (the search start if it held already).
    pub start: Epoch,
    /// When it stops holding (the search end if it still held).
    pub end: Epoch,
}

/// The element set of `tle` as two-line text (canonical columns; a value parsed from a TLE
/// formats back to the same digits), for a plan to carry.
pub fn elements_of(tle: &Tle) -> wire::Elements {
    let (year, ..) = tle.epoch.to_utc();
    let day = tle.epoch.seconds_since(Epoch::from_year_and_day(year, 1.0)) / 86_400.0 + 1.0;
    let line1 = format!(
        "1 {}{} {:<8} {:02}{:012.8} {} {} {} 0 {:>4}",
        catalog(tle.catalog_number),
        tle.classification,
        tle.international_designator,
        year.rem_euclid(100),
        day,
        first_derivative(tle.mean_motion_dot),
        implied_exponent(tle.mean_motion_ddot),
        implied_exponent(tle.bstar),
        tle.element_set_number % 10_000,
    );
    let ecc = format!("{:.7}", tle.eccentricity);
    let line2 = format!(
        "2 {} {:8.4} {:8.4} {} {:8.4} {:8.4} {:11.8}{:>5}",
        catalog(tle.catalog_number),
        tle.inclination_deg,
        tle.raan_deg,
        ecc.trim_start_matches("0."),
        tle.arg_perigee_deg,
        tle.mean_anomaly_deg,
        tle.mean_motion_rev_per_day,
        tle.revolution_number % 100_000,
    );
    wire::Elements {
        name: tle.name.clone(),
        line1: format!("{line1}{}", checksum(line1.as_bytes())),
        line2: format!("{line2}{}", checksum(line2.as_bytes())),
    }
}

/// Reads an element set a plan carries, with the parser the ground used.
pub fn parse_elements(elements: &wire::Elements) -> Result<Tle, TleError> {
    Tle::parse(elements.name.as_deref(), &elements.line1, &elements.line2)
}

/// Every interval of `[from, until]` in which `condition` holds, in time order.
pub fn firings(
    propagator: &Propagator,
    condition: &wire::Condition,
    from: Epoch,
    until: Epoch,
) -> Result<Vec<Firing>, PropagationError> {
    let (a, b) = (from.unix_seconds(), until.unix_seconds());
    if b.is_nan() || a.is_nan() || b <= a {
        return Ok(Vec::new());
    }
    let found = holds(propagator, condition, a, b)?;
    Ok(found
        .into_iter()
        .map(|(s, e)| Firing {
            start: Epoch::from_unix_seconds(s),
            end: Epoch::from_unix_seconds(e),
        })
        .collect())
}

/// The first interval of `[from, until]` in which `condition` holds (its start is `from` when
/// it holds already), searched a few hours at a time.
pub fn next_firing(
    propagator: &Propagator,
    condition: &wire::Condition,
    from: Epoch,
    until: Epoch,
) -> Result<Option<Firing>, PropagationError> {
    let mut start = from;
    while start < until {
        let end =
            Epoch::from_unix_seconds((start.unix_seconds() + CHUNK_S).min(until.unix_seconds()));
        if let Some(first) = firings(propagator, condition, start, end)?
            .into_iter()
            .next()
        {
            return Ok(Some(first));
        }
        start = end;
    }
    Ok(None)
}

/// Sorted, disjoint intervals of Unix seconds.
type Spans = Vec<(f64, f64)>;

fn holds(
    p: &Propagator,
    condition: &wire::Condition,
    a: f64,
    b: f64,
) -> Result<Spans, PropagationError> {
    use wire::Condition as C;
    Ok(match condition {
        C::Window {
            not_before_ms,
            not_after_ms,
        } => {
            let lo = not_before_ms.map_or(a, |t| a.max(t as f64 / 1000.0));
            let hi = not_after_ms.map_or(b, |t| b.min(t as f64 / 1000.0));
            if lo < hi { vec![(lo, hi)] } else { Vec::new() }
        }
        C::Eclipse => eclipse(p, a, b)?,
        C::Sunlit => complement(&eclipse(p, a, b)?, a, b),
        C::Location(l) => location(p, l, a, b)?,
        C::Nadir(n) => nadir(p, n, a, b)?,
        // Judged onboard from the telemetry, not from the orbit (see the module's doc).
        C::Telemetry(_) => vec![(a, b)],
        C::All(items) => {
            let mut acc = vec![(a, b)];
            for item in items {
                if acc.is_empty() {
                    break;
                }
                // Only where the conditions so far hold is the next one searched.
                let mut next = Vec::new();
                for &(s, e) in &acc {
                    next.extend(holds(p, item, s, e)?);
                }
                acc = next;
            }
            acc
        }
        C::Any(items) => {
            let mut acc = Vec::new();
            for item in items {
                acc = union(&acc, &holds(p, item, a, b)?);
            }
            acc
        }
    })
}

/// Where `f` is positive in `[a, b]`, sampled every `step` seconds.
fn positive(
    f: &mut impl FnMut(f64) -> Result<f64, PropagationError>,
    a: f64,
    b: f64,
    step: f64,
) -> Result<Spans, PropagationError> {
    Ok(positive_intervals(f, a, b, step, ROOT_TOL_S)?
        .into_iter()
        .map(|i| (i.start, i.end))
        .collect())
}

fn eclipse(p: &Propagator, a: f64, b: f64) -> Result<Spans, PropagationError> {
    let step = (p.period_s() / 100.0).min(600.0);
    positive(
        &mut |t| {
            let epoch = Epoch::from_unix_seconds(t);
            let s = p.state_teme(epoch)?;
            Ok(sun_centre_hidden(s.position_km, sun_position_km(epoch)))
        },
        a,
        b,
        step,
    )
}

fn location(p: &Propagator, l: &wire::Location, a: f64, b: f64) -> Result<Spans, PropagationError> {
    let step = search_step_s(p);
    let mut spans = vec![(a, b)];
    let narrow = |spans: &Spans,
                  f: &mut dyn FnMut(f64) -> Result<f64, PropagationError>,
                  step: f64|
     -> Result<Spans, PropagationError> {
        let mut out = Vec::new();
        for &(s, e) in spans {
            out.extend(positive(&mut |t| f(t), s, e, step)?);
        }
        Ok(out)
    };
    match &l.area {
        wire::Area::Point {
            at,
            altitude_m,
            radius_m,
        } => {
            let centre = LatLon {
                latitude_deg: at.latitude_deg(),
                longitude_deg: at.longitude_deg(),
            };
            let station = GroundStation {
                name: String::new(),
                latitude_deg: at.latitude_deg(),
                longitude_deg: at.longitude_deg(),
                altitude_m: f64::from(*altitude_m),
                min_elevation_deg: 0.0,
            };
            let topo = Topocentric::new(&station);
            if let Some(r) = radius_m {
                let radius_km = f64::from(*r) / 1000.0;
                spans = narrow(
                    &spans,
                    &mut |t| {
                        let g = subsatellite_point(p, Epoch::from_unix_seconds(t))?;
                        let here = LatLon {
                            latitude_deg: g.latitude_deg,
                            longitude_deg: g.longitude_deg,
                        };
                        Ok(radius_km - great_circle_distance_km(centre, here))
                    },
                    step,
                )?;
            }
            if let Some(min) = l.min_elevation_mdeg {
                let min = f64::from(min) / 1000.0;
                spans = narrow(
                    &spans,
                    &mut |t| {
                        let r = p.position_ecef(Epoch::from_unix_seconds(t))?;
                        Ok(topo.elevation_deg(r) - min)
                    },
                    step,
                )?;
            }
            if let Some(min) = l.min_sun_elevation_mdeg {
                let min = f64::from(min) / 1000.0;
                spans = narrow(
                    &spans,
                    &mut |t| {
                        let epoch = Epoch::from_unix_seconds(t);
                        let sun = rotate_teme_to_ecef(sun_position_km(epoch), epoch);
                        Ok(topo.elevation_deg(sun) - min)
                    },
                    600.0,
                )?;
            }
        }
        wire::Area::Polygon(vertices) => {
            let fence = Geofence::Polygon(
                vertices
                    .iter()
                    .map(|v| LatLon {
                        latitude_deg: v.latitude_deg(),
                        longitude_deg: v.longitude_deg(),
                    })
                    .collect(),
            );
            let poly_step = polygon_step(vertices).min(step);
            let mut out = Vec::new();
            for &(s, e) in &spans {
                out.extend(inside(p, &fence, s, e, poly_step)?);
            }
            spans = out;
            if let Some(min) = l.min_sun_elevation_mdeg {
                let min = f64::from(min) / 1000.0;
                spans = narrow(
                    &spans,
                    &mut |t| {
                        let epoch = Epoch::from_unix_seconds(t);
                        let s = p.state_teme(epoch)?;
                        // The Sun's elevation at the sub-satellite point (geocentric vertical).
                        let zenith = angle_between(s.position_km, sun_position_km(epoch));
                        Ok(90.0 - zenith.to_degrees() - min)
                    },
                    step,
                )?;
            }
        }
    }
    Ok(spans)
}

/// Where the target is above its (geocentric) horizon seen from the satellite and within the
/// angle of nadir, the boresight of a nadir-pointing attitude ([`crate::is_near_nadir`]).
fn nadir(p: &Propagator, n: &wire::Nadir, a: f64, b: f64) -> Result<Spans, PropagationError> {
    let target = Geodetic {
        latitude_deg: n.target.latitude_deg(),
        longitude_deg: n.target.longitude_deg(),
        altitude_km: f64::from(n.altitude_m) / 1000.0,
    };
    let at = geodetic_to_ecef(&target);
    let within = f64::from(n.within_mdeg) / 1000.0;
    let step = search_step_s(p);
    let seen = positive(
        &mut |t| {
            Ok(geocentric_elevation_deg(
                p.position_ecef(Epoch::from_unix_seconds(t))?,
                at,
            ))
        },
        a,
        b,
        step,
    )?;
    let mut out = Vec::new();
    for (s, e) in seen {
        out.extend(positive(
            &mut |t| {
                let r = p.position_ecef(Epoch::from_unix_seconds(t))?;
                Ok(within - off_nadir_angle_deg(r, &target))
            },
            s,
            e,
            step,
        )?);
    }
    Ok(out)
}

/// The sampling step for a polygon: half its smaller side's crossing time, from 0.5 s to 30 s.
fn polygon_step(vertices: &[wire::GeoPoint]) -> f64 {
    let lat = |v: &wire::GeoPoint| v.latitude_deg();
    let (lo, hi) = vertices.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| {
        (lo.min(lat(v)), hi.max(lat(v)))
    });
    let mid = (lo + hi) / 2.0;
    // The longitude extent the short way round, as the polygon's edges take it.
    let mut lon = vertices.first().map_or(0.0, |v| v.longitude_deg());
    let (mut west, mut east) = (lon, lon);
    for pair in vertices.windows(2) {
        lon +=
            ((pair[1].longitude_deg() - pair[0].longitude_deg()) + 180.0).rem_euclid(360.0) - 180.0;
        west = west.min(lon);
        east = east.max(lon);
    }
    let km_per_deg = 111.195;
    let height = (hi - lo) * km_per_deg;
    let width = (east - west).min(360.0) * km_per_deg * mid.to_radians().cos().max(0.01);
    (height.min(width) / GROUND_SPEED_KM_S / 2.0).clamp(0.5, 30.0)
}

/// Where the sub-satellite point is inside `fence` in `[a, b]`: sampled every `step` seconds,
/// each crossing bisected to [`ROOT_TOL_S`].
fn inside(
    p: &Propagator,
    fence: &Geofence,
    a: f64,
    b: f64,
    step: f64,
) -> Result<Spans, PropagationError> {
    let test = |t: f64| -> Result<bool, PropagationError> {
        let g = subsatellite_point(p, Epoch::from_unix_seconds(t))?;
        Ok(fence.contains(LatLon {
            latitude_deg: g.latitude_deg,
            longitude_deg: g.longitude_deg,
        }))
    };
    let crossing = |mut lo: f64, mut hi: f64, lo_in: bool| -> Result<f64, PropagationError> {
        while hi - lo > ROOT_TOL_S {
            let mid = 0.5 * (lo + hi);
            if test(mid)? == lo_in {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(hi)
    };
    let n = ((b - a) / step).ceil().clamp(1.0, 1e9) as u64;
    let h = (b - a) / n as f64;
    let mut out = Vec::new();
    let mut prev = (a, test(a)?);
    let mut open = prev.1.then_some(a);
    for k in 1..=n {
        let t = if k == n { b } else { a + k as f64 * h };
        let now = test(t)?;
        if now != prev.1 {
            let at = crossing(prev.0, t, prev.1)?;
            match open.take() {
                Some(s) => out.push((s, at)),
                None => open = Some(at),
            }
        }
        prev = (t, now);
    }
    if let Some(s) = open {
        out.push((s, b));
    }
    Ok(out)
}

fn complement(spans: &Spans, a: f64, b: f64) -> Spans {
    let mut out = Vec::new();
    let mut at = a;
    for &(s, e) in spans {
        if s > at {
            out.push((at, s));
        }
        at = at.max(e);
    }
    if at < b {
        out.push((at, b));
    }
    out
}

fn union(x: &Spans, y: &Spans) -> Spans {
    let mut all: Spans = x.iter().chain(y).copied().collect();
    all.sort_by(|p, q| p.0.total_cmp(&q.0));
    let mut out: Spans = Vec::with_capacity(all.len());
    for (s, e) in all {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn catalog(n: u32) -> String {
    if n < 100_000 {
        return format!("{n:05}");
    }
    // Alpha-5: A=10 … Z=33, skipping I and O.
    let lead = (n / 10_000).min(33) as u8 - 10;
    let letter = lead + b'A' + u8::from(lead + b'A' >= b'I');
    let letter = letter + u8::from(letter >= b'O');
    format!("{}{:04}", char::from(letter), n % 10_000)
}

/// Columns 34–43 of line 1: sign and eight decimals, no leading zero.
fn first_derivative(v: f64) -> String {
    let s = format!("{:.8}", v.abs());
    let sign = if v < 0.0 { '-' } else { ' ' };
    format!("{sign}{}", s.trim_start_matches('0'))
}

/// The TLE's implied-decimal form `±NNNNN±E` (0.NNNNN × 10^±E).
fn implied_exponent(v: f64) -> String {
    let sign = if v < 0.0 { '-' } else { ' ' };
    if v == 0.0 || !v.is_finite() {
        return " 00000+0".into();
    }
    let mut exp = v.abs().log10().floor() as i32 + 1;
    let mut mantissa = (v.abs() / 10f64.powi(exp) * 1e5).round() as u32;
    if mantissa >= 100_000 {
        mantissa /= 10;
        exp += 1;
    }
    let exp = exp.clamp(-9, 9);
    let exp_sign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{mantissa:05}{exp_sign}{}", exp.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tle::parse_tle_text;

    const REFERENCE: &str = include_str!("../tests/data/reference_tles.txt");

    #[test]
    fn elements_format_back_to_their_text() {
        for tle in parse_tle_text(REFERENCE).unwrap() {
            let e = elements_of(&tle);
            let again = parse_elements(&e).unwrap();
            assert_eq!(
                again,
                Tle {
                    epoch: again.epoch,
                    ..tle.clone()
                },
                "{e:?}"
            );
            assert!((again.epoch.seconds_since(tle.epoch)).abs() < 1e-3, "{e:?}");
            // The reference file's own lines come back digit for digit.
            assert!(REFERENCE.contains(&e.line2), "{}", e.line2);
        }
        assert_eq!(implied_exponent(0.00030275), " 30275-3");
        assert_eq!(implied_exponent(-1.2e-5), "-12000-4");
        assert_eq!(catalog(100_001), "A0001");
        assert_eq!(catalog(339_999), "Z9999");
    }

    fn iss() -> Propagator {
        Propagator::new(&parse_tle_text(REFERENCE).unwrap()[0]).unwrap()
    }

    #[test]
    fn sunlit_and_eclipse_partition_the_time_and_all_any_combine() {
        let p = iss();
        let t0 = p.tle().epoch;
        let t1 = t0.plus_seconds(6.0 * 3600.0);
        let dark = firings(&p, &wire::Condition::Eclipse, t0, t1).unwrap();
        let lit = firings(&p, &wire::Condition::Sunlit, t0, t1).unwrap();
        assert!(dark.len() >= 3, "{dark:?}");
        let total: f64 = dark
            .iter()
            .chain(&lit)
            .map(|f| f.end.seconds_since(f.start))
            .sum();
        assert!((total - 6.0 * 3600.0).abs() < 1e-6, "{total}");
        // Any of both is always; all of both is never.
        let any = wire::Condition::Any(vec![wire::Condition::Eclipse, wire::Condition::Sunlit]);
        assert_eq!(firings(&p, &any, t0, t1).unwrap().len(), 1);
        let all = wire::Condition::All(vec![wire::Condition::Eclipse, wire::Condition::Sunlit]);
        assert!(
            firings(&p, &all, t0, t1)
                .unwrap()
                .iter()
                .all(|f| f.end.seconds_since(f.start) < 0.01)
        );
        // A window cuts the eclipses.
        let later = wire::Condition::All(vec![
            wire::Condition::Window {
                not_before_ms: Some(dark[1].start.unix_millis() as u64 + 60_000),
                not_after_ms: None,
            },
            wire::Condition::Eclipse,
        ]);
        let next = next_firing(&p, &later, t0, t1).unwrap().unwrap();
        assert!((next.start.seconds_since(dark[1].start) - 60.0).abs() < 1e-3);
        assert!((next.end.seconds_since(dark[1].end)).abs() < 1e-3);
    }

    #[test]
    fn nadir_holds_where_the_target_is_near_nadir_and_telemetry_is_left_to_the_agent() {
        let p = iss();
        let t0 = p.tle().epoch;
        let t1 = t0.plus_seconds(86_400.0);
        let target = Geodetic {
            latitude_deg: 46.27,
            longitude_deg: 6.96,
            altitude_km: 0.372,
        };
        let nadir = |deg: f64| {
            wire::Condition::Nadir(wire::Nadir {
                target: wire::GeoPoint::from_degrees(46.27, 6.96).unwrap(),
                altitude_m: 372,
                within_mdeg: (deg * 1000.0) as u32,
            })
        };
        let near = firings(&p, &nadir(40.0), t0, t1).unwrap();
        assert!(!near.is_empty(), "the ISS passes near Geneva within a day");
        // Every sample agrees with the predicate, and the margins hold at the boundaries.
        for k in 0..(86_400 / 5) {
            let t = t0.plus_seconds(f64::from(k) * 5.0);
            let r = p.position_ecef(t).unwrap();
            let within = near.iter().any(|f| f.start <= t && t <= f.end);
            assert_eq!(within, crate::is_near_nadir(r, &target, 40.0), "{t}");
        }
        for f in &near {
            let r = p.position_ecef(f.start).unwrap();
            assert!(
                (off_nadir_angle_deg(r, &target) - 40.0).abs() < 0.01,
                "{f:?}"
            );
        }
        // A wide angle reaches to the horizon and no further (the far side of the Earth is
        // as close to nadir, but hidden).
        let wide = firings(&p, &nadir(90.0), t0, t1).unwrap();
        for f in &wide {
            let mid =
                Epoch::from_unix_seconds(0.5 * (f.start.unix_seconds() + f.end.unix_seconds()));
            let r = p.position_ecef(mid).unwrap();
            assert!(geocentric_elevation_deg(r, geodetic_to_ecef(&target)) > 0.0);
        }
        assert!(wide.len() >= near.len());
        // Telemetry tests hold for the orbit; judged, they decide.
        let battery = wire::TelemetryTest::Range {
            value: wire::Measured::BatterySocPercent,
            min_milli: Some(60_000),
            max_milli: None,
        };
        let both = wire::Condition::All(vec![nadir(40.0), wire::Condition::Telemetry(battery)]);
        assert_eq!(firings(&p, &both, t0, t1).unwrap(), near);
        assert!(
            firings(&p, &both.judged(&|_| false), t0, t1)
                .unwrap()
                .is_empty()
        );
        assert_eq!(firings(&p, &both.judged(&|_| true), t0, t1).unwrap(), near);
    }

    #[test]
    fn a_circle_and_a_polygon_around_it_fire_together() {
        let p = iss();
        let t0 = p.tle().epoch;
        let t1 = t0.plus_seconds(86_400.0);
        let point = |lat, lon| wire::GeoPoint::from_degrees(lat, lon).unwrap();
        let circle = wire::Condition::Location(wire::Location {
            area: wire::Area::Point {
                at: point(0.0, 179.9),
                altitude_m: 0,
                radius_m: Some(1_500_000),
            },
            min_elevation_mdeg: None,
            min_sun_elevation_mdeg: None,
        });
        // A square across the antimeridian holding the circle.
        let square = wire::Condition::Location(wire::Location {
            area: wire::Area::Polygon(vec![
                point(-15.0, 164.0),
                point(-15.0, -164.0),
                point(15.0, -164.0),
                point(15.0, 164.0),
            ]),
            min_elevation_mdeg: None,
            min_sun_elevation_mdeg: None,
        });
        let c = firings(&p, &circle, t0, t1).unwrap();
        let s = firings(&p, &square, t0, t1).unwrap();
        assert!(
            !c.is_empty(),
            "the ISS crosses the equator at 180° within a day"
        );
        // Every sample within the radius lies in a firing, and every firing holds such samples.
        let centre = LatLon {
            latitude_deg: 0.0,
            longitude_deg: 179.9,
        };
        for k in 0..(86_400 / 5) {
            let t = t0.plus_seconds(f64::from(k) * 5.0);
            let g = subsatellite_point(&p, t).unwrap();
            let d = great_circle_distance_km(
                centre,
                LatLon {
                    latitude_deg: g.latitude_deg,
                    longitude_deg: g.longitude_deg,
                },
            );
            let within = c.iter().any(|f| f.start <= t && t <= f.end);
            assert_eq!(within, d <= 1500.0, "{t} at {d} km");
        }
        for f in &c {
            assert!(
                s.iter().any(|g| g.start <= f.start && g.end >= f.end),
                "{f:?} not within {s:?}"
            );
        }
        // Seen from the circle's centre, the satellite is high while over it.
        let high = wire::Condition::Location(wire::Location {
            area: wire::Area::Point {
                at: point(0.0, 179.9),
                altitude_m: 0,
                radius_m: None,
            },
            min_elevation_mdeg: Some(60_000),
            min_sun_elevation_mdeg: None,
        });
        for f in firings(&p, &high, t0, t1).unwrap() {
            assert!(
                c.iter().any(|g| g.start <= f.start && g.end >= f.end),
                "{f:?}"
            );
        }
    }
}
