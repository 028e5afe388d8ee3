//! Earth shadow: illumination state and eclipse entry/exit search.

use crate::propagate::{PropagationError, Propagator};
use crate::search::{Interval, positive_intervals};
use crate::sun::sun_position_km;
use crate::time::Epoch;
use crate::vec3::{V3, angle_between, norm, scale, sub};

/// Radius of the shadowing Earth, km (WGS-84 equatorial; the Earth is taken as a sphere).
const EARTH_SHADOW_RADIUS_KM: f64 = 6378.137;
/// Nominal solar radius (IAU 2015), km.
const SUN_RADIUS_KM: f64 = 695_700.0;
/// Tolerance of entry/exit times, seconds.
const ROOT_TOL_S: f64 = 1e-3;

/// How much of the Sun a satellite sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Illumination {
    /// The whole solar disc is visible.
    Sunlit,
    /// The Earth hides part of the solar disc.
    Penumbra,
    /// The Earth hides the whole solar disc.
    Umbra,
}

/// One passage through the Earth's shadow. Times are clipped to the search window; the entries
/// and exits of the inner phases are `None` when the satellite did not reach them.
#[derive(Debug, Clone, PartialEq)]
pub struct Eclipse {
    /// The Earth's limb starts to cover the Sun.
    pub penumbra_entry: Epoch,
    /// The Sun's centre goes behind the limb (half the disc hidden): the boundary of a
    /// cylindrical or "sun centre" shadow test such as Skyfield's `is_sunlit`.
    pub center_entry: Option<Epoch>,
    /// The whole disc is hidden.
    pub umbra_entry: Option<Epoch>,
    /// The disc starts to reappear.
    pub umbra_exit: Option<Epoch>,
    /// The Sun's centre reappears.
    pub center_exit: Option<Epoch>,
    /// The disc is whole again.
    pub penumbra_exit: Epoch,
    /// Already in shadow at the search start.
    pub in_progress_at_start: bool,
    /// Still in shadow at the search end.
    pub in_progress_at_end: bool,
}

/// The conical shadow model: angular radii of Sun and Earth seen from the satellite, and the
/// angle between their centres. Inputs in one geocentric frame, km.
struct ShadowAngles {
    sun: f64,
    earth: f64,
    separation: f64,
}

impl ShadowAngles {
    fn new(satellite_km: V3, sun_km: V3) -> ShadowAngles {
        let to_sun = sub(sun_km, satellite_km);
        let to_earth = scale(satellite_km, -1.0);
        ShadowAngles {
            sun: (SUN_RADIUS_KM / norm(to_sun)).min(1.0).asin(),
            earth: (EARTH_SHADOW_RADIUS_KM / norm(satellite_km))
                .min(1.0)
                .asin(),
            separation: angle_between(to_sun, to_earth),
        }
    }

    /// Positive inside the penumbra or umbra.
    fn penumbra(&self) -> f64 {
        self.sun + self.earth - self.separation
    }

    /// Positive while the Sun's centre is hidden.
    fn center(&self) -> f64 {
        self.earth - self.separation
    }

    /// Positive inside the umbra.
    fn umbra(&self) -> f64 {
        self.earth - self.sun - self.separation
    }
}

/// The illumination of a satellite at `satellite_km`, with the Sun at `sun_km` (both
/// geocentric, same frame, km), by the conical shadow model with a spherical Earth of radius
/// 6378.137 km (no atmosphere; the Earth's oblateness moves the real shadow edge by up to 21 km
/// at high latitudes, a few seconds of LEO timing).
pub fn illumination(satellite_km: [f64; 3], sun_km: [f64; 3]) -> Illumination {
    let a = ShadowAngles::new(satellite_km, sun_km);
    if a.umbra() > 0.0 {
        Illumination::Umbra
    } else if a.penumbra() > 0.0 {
        Illumination::Penumbra
    } else {
        Illumination::Sunlit
    }
}

/// Positive while the Sun's centre is hidden by the Earth (radians), for a satellite and the Sun
/// in one geocentric frame, km: the boundary of [`Eclipse::center_entry`].
pub(crate) fn sun_centre_hidden(satellite_km: V3, sun_km: V3) -> f64 {
    ShadowAngles::new(satellite_km, sun_km).center()
}

/// The illumination of the satellite at `t`, with the Sun from [`crate::sun_position_km`].
pub fn illumination_at(
    propagator: &Propagator,
    t: Epoch,
) -> Result<Illumination, PropagationError> {
    let s = propagator.state_teme(t)?;
    Ok(illumination(s.position_km, sun_position_km(t)))
}

/// Finds the eclipses between `start` and `end`, in time order.
///
/// Each boundary (penumbra, sun centre, umbra) is the root of a smooth angle function, sampled
/// every 1/100 of the orbital period (at most 10 minutes) and refined with Brent's method to
/// 1 ms; humps between samples are caught as in [`crate::passes`].
pub fn eclipses(
    propagator: &Propagator,
    start: Epoch,
    end: Epoch,
) -> Result<Vec<Eclipse>, PropagationError> {
    let step = (propagator.period_s() / 100.0).min(600.0);
    let search = |which: fn(&ShadowAngles) -> f64| -> Result<Vec<Interval>, PropagationError> {
        let mut f = |t: f64| -> Result<f64, PropagationError> {
            let epoch = Epoch::from_unix_seconds(t);
            let s = propagator.state_teme(epoch)?;
            Ok(which(&ShadowAngles::new(
                s.position_km,
                sun_position_km(epoch),
            )))
        };
        positive_intervals(
            &mut f,
            start.unix_seconds(),
            end.unix_seconds(),
            step,
            ROOT_TOL_S,
        )
    };
    let penumbra = search(ShadowAngles::penumbra)?;
    let center = search(ShadowAngles::center)?;
    let umbra = search(ShadowAngles::umbra)?;
    let inside = |outer: &Interval, list: &[Interval]| {
        list.iter()
            .find(|i| i.start >= outer.start && i.end <= outer.end)
            .copied()
    };
    let at = Epoch::from_unix_seconds;
    Ok(penumbra
        .iter()
        .map(|p| {
            let c = inside(p, &center);
            let u = inside(p, &umbra);
            Eclipse {
                penumbra_entry: at(p.start),
                center_entry: c.map(|c| at(c.start)),
                umbra_entry: u.map(|u| at(u.start)),
                umbra_exit: u.map(|u| at(u.end)),
                center_exit: c.map(|c| at(c.end)),
                penumbra_exit: at(p.end),
                in_progress_at_start: p.open_start,
                in_progress_at_end: p.open_end,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conical_shadow_geometry() {
        let sun = [149_597_870.7, 0.0, 0.0];
        // Day side, and straight behind the Earth.
        assert_eq!(illumination([7000.0, 0.0, 0.0], sun), Illumination::Sunlit);
        assert_eq!(illumination([-7000.0, 0.0, 0.0], sun), Illumination::Umbra);
        // 7000 km behind the Earth the umbra has narrowed, and the penumbra widened, by
        // 7000 km × tan(0.2666°) ≈ 33 km (the Sun's angular radius): radii ≈ 6345 and 6411 km.
        assert_eq!(
            illumination([-7000.0, 6330.0, 0.0], sun),
            Illumination::Umbra
        );
        assert_eq!(
            illumination([-7000.0, 6360.0, 0.0], sun),
            Illumination::Penumbra
        );
        assert_eq!(
            illumination([-7000.0, 6390.0, 0.0], sun),
            Illumination::Penumbra
        );
        assert_eq!(
            illumination([-7000.0, 6420.0, 0.0], sun),
            Illumination::Sunlit
        );
        // Far beyond the umbra's apex (1.4 million km), only penumbra remains.
        assert_eq!(
            illumination([-2.0e6, 0.0, 0.0], sun),
            Illumination::Penumbra
        );
    }
}
