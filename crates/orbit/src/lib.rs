//! Where the satellite is and when it can talk: TLE/OMM elements, SGP4 propagation, Earth
//! frames, ground-station passes, eclipses, geofences and contact plans with transfer ETAs.
//!
//! `orbit` is pure computation. It never does I/O, never reads a clock (every instant is an
//! [`Epoch`] argument), spawns nothing and uses no async runtime; the same inputs always give
//! the same outputs. Nothing in it panics on bad input: parsers return [`TleError`], propagation
//! returns [`PropagationError`].
//!
//! The types that matter:
//!
//! - [`Tle`] (from [`Tle::parse`], [`parse_tle_text`] or [`parse_omm_json`]) → [`Propagator`]
//!   (SGP4 via the `sgp4` crate, WGS-72, "improved" mode) → [`StateVector`] in TEME or ECEF.
//! - [`GroundStation`] + [`passes`] → [`Pass`] (AOS, LOS, culmination, by root finding).
//! - [`ContactPlan`] from passes × [`StationLink`] rates → [`Window`]s with byte capacity, and
//!   the same merged across stations into [`Contact`]s (when the link is up);
//!   [`predict_transfers`] turns a queue of transfers into [`TransferEta`]s.
//! - [`SystemOrbit`] (elements and stations, plain data): [`SystemOrbit::contact_plan`] is the
//!   one computation of a system's windows that the ground, the flight agent and the link
//!   emulator all use. [`demo_system`] is the demo's synthetic flight model.
//! - [`eclipses`] / [`illumination_at`] (conical umbra/penumbra with [`sun_position_km`]),
//!   [`subsatellite_point`], [`ground_track`], [`Geofence`], [`is_near_nadir`] for onboard
//!   triggers.
//! - [`firings`] / [`next_firing`]: when a task's trigger (a [`wire::Condition`]) holds, the one
//!   evaluator of the ground's predictions and the flight agent's firing; [`elements_of`] and
//!   [`parse_elements`] carry an element set in a plan.
//!
//! # Accuracy and approximations
//!
//! - Time: [`Epoch`] is UTC Unix seconds; UTC is used for UT1 (|UT1 − UTC| < 0.9 s; at most
//!   0.4 km of Earth rotation at the equator, tens of metres in 2020–2025).
//! - TEME → ECEF rotates by GMST (IAU-82), as SGP4's TEME is defined; polar motion is neglected
//!   (≤ ~10 m); the equation of the equinoxes is not part of the TEME → PEF rotation.
//! - The Sun is the Astronomical Almanac low-precision series (0.01°); the Earth's shadow is a
//!   sphere of 6378.137 km, with no atmosphere.
//! - Measured against Skyfield 1.55 (DE421 Sun, its bundled UT1) by `tests/skyfield.rs` over
//!   6 TLEs × 8 stations × 3 days: AOS/LOS within 3 ms, culmination elevation within 0.001°,
//!   eclipse (penumbra, sun-centre, umbra) boundaries within 0.1 s. The error of SGP4 itself
//!   (about a kilometre per day of element age) dominates all of these.
//!
//! ```
//! use orbit::{Epoch, GroundStation, Propagator, Tle, passes};
//!
//! let tle = Tle::parse(
//!     Some("ISS (ZARYA)"),
//!     "1 25544U 98067A   24075.50000000  .00016717  00000+0  30275-3 0  9994",
//!     "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579445214",
//! )?;
//! let sat = Propagator::new(&tle)?;
//! let station = GroundStation {
//!     name: "Darmstadt".into(),
//!     latitude_deg: 49.87,
//!     longitude_deg: 8.65,
//!     altitude_m: 150.0,
//!     min_elevation_deg: 10.0,
//! };
//! let start = Epoch::parse_iso8601("2024-03-15T12:00:00Z").unwrap();
//! for pass in passes(&sat, &station, start, start.plus_seconds(86_400.0))? {
//!     println!("{} → {}  max {:.1}°", pass.aos, pass.los, pass.max_elevation_deg);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bench;
mod contact;
mod eclipse;
mod frames;
mod geo;
mod passes;
mod propagate;
mod search;
mod station;
mod sun;
mod system;
mod time;
mod tle;
mod trigger;
mod vec3;

pub use bench::PassBenchmark;
pub use contact::{
    Contact, ContactPlan, Direction, StationLink, TransferEta, Window, predict_transfers,
};
pub use eclipse::{Eclipse, Illumination, eclipses, illumination, illumination_at};
pub use frames::{Geodetic, ecef_to_geodetic, geodetic_to_ecef, gmst_rad, teme_to_ecef};
pub use geo::{
    Geofence, LatLon, MAX_TRACK_POINTS, MEAN_EARTH_RADIUS_KM, TrackPoint, great_circle_distance_km,
    ground_track, is_in_boresight, is_near_nadir, off_nadir_angle_deg, subsatellite_point,
};
pub use passes::{Pass, passes, search_step_s};
pub use propagate::{
    PropagationError, PropagationErrorKind, Propagator, PropagatorConfig, StateVector,
};
pub use station::{GroundStation, LookAngles};
pub use sun::sun_position_km;
pub use system::{DemoSystem, SystemOrbit, demo_system, sun_synchronous_tle};
pub use time::Epoch;
pub use tle::{Tle, TleError, TleErrorKind, parse_omm_json, parse_tle_text};
pub use trigger::{Firing, elements_of, firings, next_firing, parse_elements};
