//! A low-precision Sun position.

use crate::time::Epoch;

/// The astronomical unit, km.
const AU_KM: f64 = 149_597_870.7;

/// The Sun's geocentric position, km, in the equator and equinox of date (used as TEME: the
/// two differ by the equation of the equinoxes, ≤ 1.2″, far below this model's accuracy).
///
/// The Astronomical Almanac's low-precision formula (section C, "Sun"): mean longitude and
/// anomaly, a two-term equation of the centre, ecliptic latitude taken as zero. Its direction is
/// good to 0.01° (36″) between 1950 and 2050 and includes aberration (apparent position); the
/// distance is good to about 1e-4 AU. At the 0.063°/s a LEO satellite sweeps past the shadow
/// boundary, 0.01° is about 0.2 s of eclipse timing at low beta angles (more in grazing eclipses).
pub fn sun_position_km(t: Epoch) -> [f64; 3] {
    let n = t.days_since_j2000_tt();
    let l = (280.460 + 0.985_647_4 * n).to_radians();
    let g = (357.528 + 0.985_600_3 * n).to_radians();
    let lambda = l + (1.915 * g.sin() + 0.020 * (2.0 * g).sin()).to_radians();
    let epsilon = (23.439 - 0.000_000_4 * n).to_radians();
    let r = (1.000_14 - 0.016_71 * g.cos() - 0.000_14 * (2.0 * g).cos()) * AU_KM;
    let (sl, cl) = lambda.sin_cos();
    let (se, ce) = epsilon.sin_cos();
    [r * cl, r * ce * sl, r * se * sl]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vec3::{angle_between, norm};

    #[test]
    fn known_positions() {
        // 2024-03-20T03:06Z is the March equinox: the Sun crosses the equator at RA 0.
        let equinox = Epoch::from_utc(2024, 3, 20, 3, 6, 0.0).unwrap();
        let s = sun_position_km(equinox);
        let dec = (s[2] / norm(s)).asin().to_degrees();
        let ra = s[1].atan2(s[0]).to_degrees();
        assert!(dec.abs() < 0.01 && ra.abs() < 0.02, "ra {ra} dec {dec}");
        // Perihelion 2024-01-03 ~01 UTC at 0.983307 AU; aphelion 2024-07-05 ~05 UTC at 1.016725 AU.
        let peri = norm(sun_position_km(
            Epoch::from_utc(2024, 1, 3, 1, 0, 0.0).unwrap(),
        )) / AU_KM;
        let aph = norm(sun_position_km(
            Epoch::from_utc(2024, 7, 5, 5, 0, 0.0).unwrap(),
        )) / AU_KM;
        assert!(
            (peri - 0.983_307).abs() < 2e-4 && (aph - 1.016_725).abs() < 2e-4,
            "{peri} {aph}"
        );
        // The June solstice (2024-06-20T20:51Z): declination = obliquity.
        let sol = sun_position_km(Epoch::from_utc(2024, 6, 20, 20, 51, 0.0).unwrap());
        let pole = [0.0, 0.0, 1.0];
        assert!((90.0 - angle_between(sol, pole).to_degrees() - 23.4393).abs() < 0.01);
    }
}
