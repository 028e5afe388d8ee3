//! SGP4 propagation with clear errors for decayed orbits and stale elements.

use std::f64::consts::PI;
use std::fmt;

use crate::frames;
use crate::time::Epoch;
use crate::tle::Tle;
use crate::vec3::{V3, norm};

/// WGS-72 equatorial radius (km): the SGP4 Earth radius, used for the "inside the Earth" check.
const SGP4_EARTH_RADIUS_KM: f64 = 6378.135;

/// Position and velocity at an instant, in one frame (TEME or ECEF, said by the function that
/// returns it). Kilometres and kilometres per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StateVector {
    /// The instant.
    pub epoch: Epoch,
    /// Position, km.
    pub position_km: [f64; 3],
    /// Velocity, km/s.
    pub velocity_km_s: [f64; 3],
}

/// Tuning of a [`Propagator`]. No `Default`: use [`PropagatorConfig::STANDARD`] or say what you want.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PropagatorConfig {
    /// Queries further than this from the element epoch fail with
    /// [`PropagationErrorKind::EpochTooFar`]. SGP4 error grows by roughly 1–3 km per day for LEO;
    /// values above 3650 days are clamped to 3650.
    pub max_epoch_distance_days: f64,
}

impl PropagatorConfig {
    /// 30 days either side of the element epoch.
    pub const STANDARD: PropagatorConfig = PropagatorConfig {
        max_epoch_distance_days: 30.0,
    };
}

/// An SGP4/SDP4 propagator for one element set.
///
/// Uses the `sgp4` crate with the WGS-72 geopotential and the IAU-82 sidereal time ("improved"
/// mode, the same constants as Vallado's reference code and Python `sgp4` defaults, which is what
/// TLEs are fitted with). Output is in the TEME frame of date; see [`Propagator::state_ecef`] for
/// Earth-fixed coordinates.
#[derive(Debug, Clone)]
pub struct Propagator {
    tle: Tle,
    constants: sgp4::Constants,
    max_epoch_distance_s: f64,
}

/// Why a state could not be computed. Opaque: match on [`PropagationError::kind`].
#[derive(Debug, Clone, PartialEq)]
pub struct PropagationError {
    kind: PropagationErrorKind,
    detail: String,
}

/// The ways propagation can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PropagationErrorKind {
    /// The elements cannot initialise SGP4 (e.g. the mean motion implies a negative semi-major axis).
    InvalidElements,
    /// The orbit has decayed by the query time: SGP4 diverged (eccentricity out of range, negative
    /// semi-latus rectum), the position is inside the Earth, or the elements are sub-orbital.
    Decayed,
    /// The query time is further from the element epoch than the configured limit, or not finite.
    EpochTooFar,
}

impl PropagationError {
    /// What went wrong.
    pub fn kind(&self) -> PropagationErrorKind {
        self.kind
    }

    pub(crate) fn new(kind: PropagationErrorKind, detail: String) -> PropagationError {
        PropagationError { kind, detail }
    }
}

impl fmt::Display for PropagationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for PropagationError {}

impl Propagator {
    /// A propagator with [`PropagatorConfig::STANDARD`] (30-day limit).
    pub fn new(tle: &Tle) -> Result<Propagator, PropagationError> {
        Propagator::with_config(tle, PropagatorConfig::STANDARD)
    }

    /// A propagator with an explicit configuration.
    pub fn with_config(
        tle: &Tle,
        config: PropagatorConfig,
    ) -> Result<Propagator, PropagationError> {
        let name = describe(tle);
        let invalid = |e: &dyn fmt::Display| {
            PropagationError::new(
                PropagationErrorKind::InvalidElements,
                format!("{name}: elements cannot initialise sgp4: {e}"),
            )
        };
        let deg = PI / 180.0;
        let orbit = sgp4::Orbit::from_kozai_elements(
            &sgp4::WGS72,
            tle.inclination_deg * deg,
            tle.raan_deg * deg,
            tle.eccentricity,
            tle.arg_perigee_deg * deg,
            tle.mean_anomaly_deg * deg,
            tle.mean_motion_rev_per_day * (2.0 * PI / 1440.0),
        )
        .map_err(|e| invalid(&e))?;
        // Semi-major axis in Earth radii from the Brouwer mean motion (rad/min).
        let a = (sgp4::WGS72.ke / orbit.mean_motion).powf(2.0 / 3.0);
        let perigee = a * (1.0 - tle.eccentricity);
        if perigee.is_nan() || perigee < 1.0 {
            return Err(PropagationError::new(
                PropagationErrorKind::Decayed,
                format!(
                    "{name}: sub-orbital elements: perigee radius {:.1} km is inside the earth",
                    perigee * SGP4_EARTH_RADIUS_KM
                ),
            ));
        }
        let epoch_years = tle.epoch.days_since_j2000_utc() / 365.25;
        let constants = sgp4::Constants::new(
            sgp4::WGS72,
            sgp4::iau_epoch_to_sidereal_time,
            epoch_years,
            tle.bstar,
            orbit,
        )
        .map_err(|e| invalid(&e))?;
        let days = config.max_epoch_distance_days.clamp(0.0, 3650.0);
        Ok(Propagator {
            tle: tle.clone(),
            constants,
            max_epoch_distance_s: days * 86_400.0,
        })
    }

    /// The element set.
    pub fn tle(&self) -> &Tle {
        &self.tle
    }

    /// The orbital period from the mean motion, seconds.
    pub fn period_s(&self) -> f64 {
        self.tle.period_s()
    }

    /// Position and velocity in TEME (true equator, mean equinox of date), km and km/s.
    pub fn state_teme(&self, t: Epoch) -> Result<StateVector, PropagationError> {
        let dt = t.seconds_since(self.tle.epoch);
        if dt.is_nan() || dt.abs() > self.max_epoch_distance_s {
            return Err(PropagationError::new(
                PropagationErrorKind::EpochTooFar,
                format!(
                    "{}: query time {t} is {:.1} days from the element epoch {} (limit {:.1} days)",
                    describe(&self.tle),
                    dt / 86_400.0,
                    self.tle.epoch,
                    self.max_epoch_distance_s / 86_400.0
                ),
            ));
        }
        let decayed = |why: String| {
            PropagationError::new(
                PropagationErrorKind::Decayed,
                format!(
                    "{}: orbit decayed {:.2} days after the element epoch: {why}",
                    describe(&self.tle),
                    dt / 86_400.0
                ),
            )
        };
        let p = self
            .constants
            .propagate(sgp4::MinutesSinceEpoch(dt / 60.0))
            .map_err(|e| decayed(e.to_string()))?;
        let r = norm(p.position);
        if r.is_nan() || r < SGP4_EARTH_RADIUS_KM {
            return Err(decayed(format!(
                "position radius {r:.1} km is inside the earth"
            )));
        }
        Ok(StateVector {
            epoch: t,
            position_km: p.position,
            velocity_km_s: p.velocity,
        })
    }

    /// Position and velocity in the Earth-fixed frame (ECEF/ITRF, see [`crate::teme_to_ecef`]).
    pub fn state_ecef(&self, t: Epoch) -> Result<StateVector, PropagationError> {
        Ok(frames::teme_to_ecef(&self.state_teme(t)?))
    }

    /// Position only, in ECEF, km.
    pub(crate) fn position_ecef(&self, t: Epoch) -> Result<V3, PropagationError> {
        let s = self.state_teme(t)?;
        Ok(frames::rotate_teme_to_ecef(s.position_km, t))
    }
}

fn describe(tle: &Tle) -> String {
    match &tle.name {
        Some(name) => format!("satellite {} ({name})", tle.catalog_number),
        None => format!("satellite {}", tle.catalog_number),
    }
}
