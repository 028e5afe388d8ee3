//! What the onboard sensors read, simulated from the orbit: one [`Sample`] per instant, made by
//! [`sample`] from the satellite's state (SGP4 of the element set, by `orbit`), the Sun's
//! shadow (`orbit::illumination`) and the sample before it. Pure: no clock, no I/O.
//!
//! - Position and velocity: TEME (an Earth-centred inertial frame), km and km/s.
//! - Attitude: nadir pointing, exactly: the body's +Z toward the Earth's centre, +Y along the
//!   negative orbit normal, +X completing the frame (along the velocity on a circular orbit);
//!   the quaternion turns body axes into TEME; the body turns once an orbit about its −Y axis.
//! - Power: a battery of [`BATTERY_WH`] fed by the solar panels in sunlight ([`SOLAR_W`], half
//!   in penumbra, none in umbra) and drained by a constant load ([`LOAD_W`]): its state of charge
//!   falls in eclipse and rises in sunlight, between 0 and 100 %.
//! - Temperatures: eight sensors, each a first-order lag toward its sunlit or its eclipse
//!   temperature.

use serde::{Deserialize, Serialize};

/// The battery's capacity, Wh.
pub(crate) const BATTERY_WH: f64 = 80.0;
/// What the panels give in full sunlight, W.
pub(crate) const SOLAR_W: f64 = 40.0;
/// What the satellite draws, W.
pub(crate) const LOAD_W: f64 = 18.0;
/// The battery's charge when sampling starts, %.
const INITIAL_SOC: f64 = 80.0;

/// Each sensor: its name's index, its temperature in sunlight and in umbra (°C), and its time
/// constant (s).
const SENSORS: [(f64, f64, f64); 8] = [
    (24.0, 14.0, 3600.0),  // sensor0: on-board computer
    (21.0, 12.0, 5400.0),  // sensor1: battery
    (55.0, -35.0, 900.0),  // sensor2: solar panel +X
    (50.0, -40.0, 900.0),  // sensor3: solar panel -X
    (30.0, 5.0, 1800.0),   // sensor4: payload computer
    (18.0, -5.0, 2400.0),  // sensor5: camera
    (35.0, 20.0, 1200.0),  // sensor6: power board
    (15.0, -10.0, 3000.0), // sensor7: structure
];

/// What the sensors read at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sample {
    /// Mission time, ms since the Unix epoch.
    pub(crate) t_ms: u64,
    /// TEME, km.
    pub(crate) position_km: [f64; 3],
    /// TEME, km/s.
    pub(crate) velocity_km_s: [f64; 3],
    /// Body to TEME, `[w, x, y, z]`.
    pub(crate) quaternion: [f64; 4],
    /// In body axes, rad/s.
    pub(crate) angular_velocity: [f64; 3],
    /// `sensor0` to `sensor7`, °C.
    pub(crate) temperatures_c: [f64; 8],
    /// The power system.
    pub(crate) power: Power,
    /// The element set the state was propagated from (three-line text).
    pub(crate) tle: String,
}

/// The power system at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Power {
    /// The battery's state of charge, %.
    pub(crate) battery_soc_percent: f64,
    /// `sunlit`, `penumbra` or `umbra`.
    pub(crate) illumination: String,
    /// What the panels give, W.
    pub(crate) solar_w: f64,
    /// What the satellite draws, W.
    pub(crate) load_w: f64,
}

/// The sample at `t_ms` for a satellite at `state` (TEME) with the Sun at `sun_km` (same
/// frame), following `previous` (the battery and the temperatures go on from it; the first
/// sample starts from [`INITIAL_SOC`] and the sunlit temperatures).
pub(crate) fn sample(
    previous: Option<&Sample>,
    t_ms: u64,
    state: &orbit::StateVector,
    sun_km: [f64; 3],
    tle: &str,
) -> Sample {
    let (r, v) = (state.position_km, state.velocity_km_s);
    let light = orbit::illumination(r, sun_km);
    let (name, share) = match light {
        orbit::Illumination::Sunlit => ("sunlit", 1.0),
        orbit::Illumination::Penumbra => ("penumbra", 0.5),
        orbit::Illumination::Umbra => ("umbra", 0.0),
    };
    let solar_w = SOLAR_W * share;
    let dt_s = previous.map_or(0.0, |p| t_ms.saturating_sub(p.t_ms) as f64 / 1000.0);
    let soc = previous.map_or(INITIAL_SOC, |p| p.power.battery_soc_percent);
    let soc = (soc + (solar_w - LOAD_W) * dt_s / 3600.0 / BATTERY_WH * 100.0).clamp(0.0, 100.0);
    let mut temperatures_c = [0.0; 8];
    for (i, (sunlit, umbra, tau)) in SENSORS.iter().enumerate() {
        let target = umbra + (sunlit - umbra) * share;
        temperatures_c[i] = match previous {
            None => *sunlit,
            Some(p) => {
                let was = p.temperatures_c[i];
                round2(target + (was - target) * (-dt_s / tau).exp())
            }
        };
    }
    // Nadir pointing: +Z to the Earth's centre, +Y along the negative orbit normal.
    let z = unit(scale(r, -1.0));
    let h = cross(r, v);
    let y = unit(scale(h, -1.0));
    let x = cross(y, z);
    let rate = norm(h) / dot(r, r);
    Sample {
        t_ms,
        position_km: r,
        velocity_km_s: v,
        quaternion: quaternion_of([x, y, z]),
        angular_velocity: [0.0, -rate, 0.0],
        temperatures_c,
        power: Power {
            battery_soc_percent: soc,
            illumination: name.to_string(),
            solar_w,
            load_w: LOAD_W,
        },
        tle: tle.to_string(),
    }
}

/// Turns a vector of body axes by `q` (`[w, x, y, z]`, body to TEME).
#[cfg(test)]
pub(crate) fn rotate(q: [f64; 4], b: [f64; 3]) -> [f64; 3] {
    let [w, x, y, z] = q;
    let u = [x, y, z];
    let t = scale(cross(u, b), 2.0);
    let c = cross(u, t);
    [
        b[0] + w * t[0] + c[0],
        b[1] + w * t[1] + c[1],
        b[2] + w * t[2] + c[2],
    ]
}

/// The quaternion of the rotation whose matrix has the body axes `axes` (in TEME) as columns
/// (Shepperd's method), scalar first and non-negative.
fn quaternion_of(axes: [[f64; 3]; 3]) -> [f64; 4] {
    // m[row][column]
    let m = |i: usize, j: usize| axes[j][i];
    let trace = m(0, 0) + m(1, 1) + m(2, 2);
    let q = if trace > 0.0 {
        let s = (trace + 1.0).sqrt() * 2.0;
        [
            0.25 * s,
            (m(2, 1) - m(1, 2)) / s,
            (m(0, 2) - m(2, 0)) / s,
            (m(1, 0) - m(0, 1)) / s,
        ]
    } else if m(0, 0) > m(1, 1) && m(0, 0) > m(2, 2) {
        let s = (1.0 + m(0, 0) - m(1, 1) - m(2, 2)).sqrt() * 2.0;
        [
            (m(2, 1) - m(1, 2)) / s,
            0.25 * s,
            (m(0, 1) + m(1, 0)) / s,
            (m(0, 2) + m(2, 0)) / s,
        ]
    } else if m(1, 1) > m(2, 2) {
        let s = (1.0 + m(1, 1) - m(0, 0) - m(2, 2)).sqrt() * 2.0;
        [
            (m(0, 2) - m(2, 0)) / s,
            (m(0, 1) + m(1, 0)) / s,
            0.25 * s,
            (m(1, 2) + m(2, 1)) / s,
        ]
    } else {
        let s = (1.0 + m(2, 2) - m(0, 0) - m(1, 1)).sqrt() * 2.0;
        [
            (m(1, 0) - m(0, 1)) / s,
            (m(0, 2) + m(2, 0)) / s,
            (m(1, 2) + m(2, 1)) / s,
            0.25 * s,
        ]
    };
    let n = q.iter().map(|c| c * c).sum::<f64>().sqrt();
    let sign = if q[0] < 0.0 { -1.0 } else { 1.0 };
    q.map(|c| sign * c / n)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn scale(a: [f64; 3], k: f64) -> [f64; 3] {
    a.map(|c| c * k)
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

fn unit(a: [f64; 3]) -> [f64; 3] {
    scale(a, 1.0 / norm(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLE: &str = "ISS (ZARYA)\n1 25544U 98067A   24075.50000000  .00016717  00000+0  30275-3 0  9994\n2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579445214";

    /// Samples every 10 s over `hours` from the element epoch.
    fn run(hours: u64) -> Vec<Sample> {
        let tle = &orbit::parse_tle_text(TLE).unwrap()[0];
        let p = orbit::Propagator::new(tle).unwrap();
        let start = tle.epoch.unix_millis() as u64;
        let mut out: Vec<Sample> = Vec::new();
        for k in 0..hours * 360 {
            let t = start + k * 10_000;
            let e = orbit::Epoch::from_unix_millis(t as i64);
            let s = p.state_teme(e).unwrap();
            out.push(sample(out.last(), t, &s, orbit::sun_position_km(e), TLE));
        }
        out
    }

    #[test]
    fn the_body_points_at_nadir_and_turns_once_an_orbit() {
        for s in run(2).iter().step_by(37) {
            let q = s.quaternion;
            assert!((q.iter().map(|c| c * c).sum::<f64>() - 1.0).abs() < 1e-9);
            let boresight = rotate(q, [0.0, 0.0, 1.0]);
            let nadir = unit(scale(s.position_km, -1.0));
            assert!(
                dot(boresight, nadir) > 1.0 - 1e-9,
                "{boresight:?} {nadir:?}"
            );
            // +X along the velocity, within the flight path angle of a near-circular orbit.
            let ahead = rotate(q, [1.0, 0.0, 0.0]);
            assert!(dot(ahead, unit(s.velocity_km_s)) > 0.999);
            let period = 2.0 * std::f64::consts::PI / -s.angular_velocity[1];
            assert!((5500.0..5600.0).contains(&period), "{period}");
        }
    }

    #[test]
    fn the_battery_falls_in_eclipse_and_rises_in_sunlight() {
        let samples = run(6);
        let (mut fell, mut rose) = (0, 0);
        for w in samples.windows(2) {
            let d = w[1].power.battery_soc_percent - w[0].power.battery_soc_percent;
            match w[1].power.illumination.as_str() {
                "umbra" => {
                    assert!(d < 0.0 || w[1].power.battery_soc_percent == 0.0);
                    fell += 1;
                }
                "sunlit" => {
                    assert!(d > 0.0 || w[1].power.battery_soc_percent == 100.0);
                    rose += 1;
                }
                _ => {}
            }
            assert!((0.0..=100.0).contains(&w[1].power.battery_soc_percent));
        }
        // The ISS in March: about a third of each orbit in shadow.
        assert!(fell > 500 && rose > 1000, "{fell} {rose}");
        // The panels run cold in shadow and warm in sunlight.
        let cold = samples
            .iter()
            .filter(|s| s.power.illumination == "umbra")
            .map(|s| s.temperatures_c[2])
            .fold(f64::MAX, f64::min);
        assert!(cold < 0.0, "{cold}");
    }
}
