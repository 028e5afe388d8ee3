//! Triggers: when a task of a plan may start, as the flight agent judges it onboard from its own
//! propagation of the element set the plan carries (`docs/triggers.md`).
//!
//! Plain data, in fixed point so that a plan stays `Eq` and its encoding exact: angles in
//! millionths of a degree (about 0.11 m on the ground), elevations in thousandths of a degree,
//! distances in metres, instants in milliseconds since the Unix epoch. The ground's operation
//! parser builds these, and `orbit::trigger` is the one evaluator both the ground (predictions)
//! and the flight agent (firing) call.

use serde::{Deserialize, Serialize};

/// The most conditions a trigger holds, counting every leaf and combination.
pub const MAX_TRIGGER_CONDITIONS: usize = 64;
/// The most vertices of a polygon.
pub const MAX_POLYGON_VERTICES: usize = 1024;
/// How deep `all`/`any` may nest.
pub const MAX_TRIGGER_DEPTH: usize = 8;
/// The latest deadline after the task is ready, and the default one: a week, the plans'
/// validity window ([`crate::PLAN_VALIDITY_MS`]).
pub const MAX_TRIGGER_WAIT_MS: u64 = crate::PLAN_VALIDITY_MS;

/// When a task may start: the first instant, once the task is ready onboard, at which `when`
/// holds. A trigger that has not fired by its deadline fails its task with
/// [`crate::ErrorCode::TriggerDeadline`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Trigger {
    /// The condition.
    pub when: Condition,
    /// When to give up; `None`: [`MAX_TRIGGER_WAIT_MS`] after the task became ready.
    pub deadline: Option<Deadline>,
}

impl Trigger {
    /// When the trigger of a task that became ready at `armed_ms` gives up: its deadline, and
    /// never later than [`MAX_TRIGGER_WAIT_MS`] after `armed_ms`, whatever the deadline says.
    /// The one rule the ground predicts by and the flight agent waits by.
    pub fn deadline_ms(&self, armed_ms: u64) -> u64 {
        let longest = armed_ms.saturating_add(MAX_TRIGGER_WAIT_MS);
        match self.deadline {
            Some(Deadline::At(ms)) => ms.min(longest),
            Some(Deadline::After(ms)) => armed_ms.saturating_add(ms).min(longest),
            None => longest,
        }
    }
}

/// When a trigger gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Deadline {
    /// At this instant, milliseconds since the Unix epoch (the onboard clock).
    At(u64),
    /// This many milliseconds after the task became ready onboard.
    After(u64),
}

/// A condition over the satellite's position, pointing and illumination, its telemetry and the
/// time.
///
/// Decoding bounds its nesting ([`MAX_DECODE_DEPTH`]) before it recurses, so no message,
/// however it nests `all` in `all`, can exhaust the decoder's stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum Condition {
    /// Over a place on the ground.
    Location(Location),
    /// In the Earth's shadow: the Sun's centre hidden by the Earth (a spherical Earth of
    /// 6378.137 km, the conical model of `orbit::illumination`).
    Eclipse,
    /// Not in the Earth's shadow (the complement of [`Condition::Eclipse`]).
    Sunlit,
    /// Within a time window, milliseconds since the Unix epoch; either end may be open.
    Window {
        /// Not before this instant.
        not_before_ms: Option<u64>,
        /// Not after this instant.
        not_after_ms: Option<u64>,
    },
    /// Every condition holds (none: always).
    All(Vec<Condition>),
    /// At least one holds (none: never).
    Any(Vec<Condition>),
    /// The satellite points within an angle of a place on the ground.
    Nadir(Nadir),
    /// A reading of the onboard telemetry, judged onboard from the newest sample (never
    /// predicted: `orbit::firings` takes it as holding).
    Telemetry(TelemetryTest),
}

/// Pointing at a place: the place above its horizon seen from the satellite and within
/// `within_mdeg` of the satellite's boresight, its body +Z axis, which the attitude the onboard
/// telemetry reports keeps at nadir (toward the Earth's centre), so the angle is the place's
/// off-nadir angle (`orbit::off_nadir_angle_deg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Nadir {
    /// The place.
    pub target: GeoPoint,
    /// Its height above the WGS-84 ellipsoid, metres.
    pub altitude_m: i32,
    /// The largest off-nadir angle, thousandths of a degree, in (0, 90°].
    pub within_mdeg: u32,
}

/// A test of the onboard telemetry's newest sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TelemetryTest {
    /// A measured value within bounds (inclusive, either may be open), thousandths of its
    /// unit.
    Range {
        /// What is measured.
        value: Measured,
        /// At least this.
        min_milli: Option<i64>,
        /// At most this.
        max_milli: Option<i64>,
    },
    /// The illumination the power system measures.
    Illumination(Light),
}

/// A value the onboard telemetry measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Measured {
    /// The battery's state of charge, %.
    BatterySocPercent,
    /// Temperature sensor `sensor0` to `sensor7`, °C.
    Temperature(u8),
}

/// The illumination the power system measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Light {
    /// Full sunlight.
    Sunlit,
    /// Partly shadowed.
    Penumbra,
    /// In the full shadow.
    Umbra,
}

impl Light {
    /// `sunlit`, `penumbra` or `umbra`, as the telemetry names it.
    pub fn name(self) -> &'static str {
        match self {
            Light::Sunlit => "sunlit",
            Light::Penumbra => "penumbra",
            Light::Umbra => "umbra",
        }
    }

    /// The illumination [`Light::name`] names; `None` for any other text.
    pub fn from_name(name: &str) -> Option<Light> {
        [Light::Sunlit, Light::Penumbra, Light::Umbra]
            .into_iter()
            .find(|l| l.name() == name)
    }
}

impl Measured {
    /// Its name in a trigger and in the telemetry (`battery_soc_percent`, `sensor2`).
    pub fn name(self) -> String {
        match self {
            Measured::BatterySocPercent => "battery_soc_percent".into(),
            Measured::Temperature(i) => format!("sensor{i}"),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Measured::BatterySocPercent => " %",
            Measured::Temperature(_) => " °C",
        }
    }
}

impl TelemetryTest {
    /// Whether a reading passes: `value` gives what was measured (`None`: not measured, and
    /// the test fails), `light` the illumination.
    pub fn passes(&self, value: impl Fn(Measured) -> Option<f64>, light: Option<Light>) -> bool {
        match *self {
            TelemetryTest::Range {
                value: what,
                min_milli,
                max_milli,
            } => value(what).is_some_and(|v| {
                min_milli.is_none_or(|m| v >= m as f64 / 1000.0)
                    && max_milli.is_none_or(|m| v <= m as f64 / 1000.0)
            }),
            TelemetryTest::Illumination(l) => light == Some(l),
        }
    }

    /// The test for a person: `battery_soc_percent at least 60 %`.
    pub fn describe(&self) -> String {
        match *self {
            TelemetryTest::Range {
                value,
                min_milli,
                max_milli,
            } => {
                let (name, unit) = (value.name(), value.unit());
                let v = |m: i64| m as f64 / 1000.0;
                match (min_milli, max_milli) {
                    (Some(a), Some(b)) => format!("{name} from {}{unit} to {}{unit}", v(a), v(b)),
                    (Some(a), None) => format!("{name} at least {}{unit}", v(a)),
                    (None, Some(b)) => format!("{name} at most {}{unit}", v(b)),
                    (None, None) => format!("{name} measured"),
                }
            }
            TelemetryTest::Illumination(l) => format!("measured illumination {}", l.name()),
        }
    }
}

/// The deepest nesting of [`Condition`]s a decoder accepts: more than the ground ever writes
/// ([`MAX_TRIGGER_DEPTH`]), far less than a stack holds.
pub const MAX_DECODE_DEPTH: usize = 32;

thread_local! {
    /// How deep the decoding of [`Condition`]s on this thread is.
    static DECODE_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// [`Condition`]'s shape as decoders see it: the same variants in the same order, so the
/// encoding is the derived one.
#[derive(Deserialize)]
#[serde(rename = "Condition")]
enum ConditionRepr {
    Location(Location),
    Eclipse,
    Sunlit,
    Window {
        not_before_ms: Option<u64>,
        not_after_ms: Option<u64>,
    },
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Nadir(Nadir),
    Telemetry(TelemetryTest),
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Condition, D::Error> {
        let depth = DECODE_DEPTH.with(|c| c.get());
        if depth >= MAX_DECODE_DEPTH {
            return Err(serde::de::Error::custom(format!(
                "trigger conditions nested deeper than {MAX_DECODE_DEPTH}"
            )));
        }
        DECODE_DEPTH.with(|c| c.set(depth + 1));
        let read = ConditionRepr::deserialize(d);
        DECODE_DEPTH.with(|c| c.set(depth));
        Ok(match read? {
            ConditionRepr::Location(l) => Condition::Location(l),
            ConditionRepr::Eclipse => Condition::Eclipse,
            ConditionRepr::Sunlit => Condition::Sunlit,
            ConditionRepr::Window {
                not_before_ms,
                not_after_ms,
            } => Condition::Window {
                not_before_ms,
                not_after_ms,
            },
            ConditionRepr::All(c) => Condition::All(c),
            ConditionRepr::Any(c) => Condition::Any(c),
            ConditionRepr::Nadir(n) => Condition::Nadir(n),
            ConditionRepr::Telemetry(t) => Condition::Telemetry(t),
        })
    }
}

/// A point on the ground, in millionths of a degree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GeoPoint {
    /// Geodetic latitude, millionths of a degree north, in [-90°, 90°].
    pub lat_udeg: i32,
    /// Longitude, millionths of a degree east, in [-180°, 180°].
    pub lon_udeg: i32,
}

/// Why `vertices` cannot bound a polygon, if they cannot. Each edge takes the short way round in
/// longitude, so an edge exactly half-way round (180°) has no way to take, and edges that wind
/// round the Earth more than once (their longitude steps summing past one turn) bound no area
/// a reader could tell; one turn circles a pole, none bounds an ordinary area.
pub fn polygon_fault(vertices: &[GeoPoint]) -> Option<String> {
    const HALF: i64 = 180_000_000;
    let mut winding: i64 = 0;
    for (i, a) in vertices.iter().enumerate() {
        let b = vertices[(i + 1) % vertices.len()];
        let step =
            (i64::from(b.lon_udeg) - i64::from(a.lon_udeg) + HALF).rem_euclid(2 * HALF) - HALF;
        if step == -HALF {
            return Some(format!(
                "its edge from vertex {} to vertex {} spans exactly 180° of longitude, so it has no short way round; add a vertex between them",
                i + 1,
                (i + 1) % vertices.len() + 1
            ));
        }
        winding += step;
    }
    (winding.abs() > 2 * HALF).then(|| {
        "its edges wind round the Earth more than once; a polygon may circle a pole once at most"
            .to_string()
    })
}

impl GeoPoint {
    /// Latitude in degrees.
    pub fn latitude_deg(self) -> f64 {
        f64::from(self.lat_udeg) / 1e6
    }

    /// Longitude in degrees.
    pub fn longitude_deg(self) -> f64 {
        f64::from(self.lon_udeg) / 1e6
    }

    /// From degrees, rounded to a millionth; `None` when out of range or not finite.
    pub fn from_degrees(latitude: f64, longitude: f64) -> Option<GeoPoint> {
        let ok = latitude.is_finite()
            && longitude.is_finite()
            && latitude.abs() <= 90.0
            && longitude.abs() <= 180.0;
        ok.then(|| GeoPoint {
            lat_udeg: (latitude * 1e6).round() as i32,
            lon_udeg: (longitude * 1e6).round() as i32,
        })
    }
}

/// Where a location trigger looks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Area {
    /// A point: the sub-satellite point within `radius_m` of it (great-circle distance on the
    /// mean Earth sphere), when a radius is given.
    Point {
        /// The point.
        at: GeoPoint,
        /// Its height above the WGS-84 ellipsoid, metres (for the satellite's elevation).
        altitude_m: i32,
        /// The radius, metres; `None`: only the elevations judge.
        radius_m: Option<u32>,
    },
    /// A polygon of at least three vertices whose edges are straight in latitude and longitude
    /// and take the short way round in longitude, so it may straddle the antimeridian
    /// (`orbit::Geofence::Polygon`): the sub-satellite point inside it.
    Polygon(Vec<GeoPoint>),
}

/// A location condition: over an area, with optional minimum elevations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    /// The area.
    pub area: Area,
    /// The satellite's elevation seen from the point at least this, thousandths of a degree
    /// (an [`Area::Point`] only).
    pub min_elevation_mdeg: Option<i32>,
    /// The Sun's elevation at least this, thousandths of a degree: seen from the point, or for
    /// a polygon from the sub-satellite point.
    pub min_sun_elevation_mdeg: Option<i32>,
}

/// A trigger that fired: when and why, as the agent records it in the task's outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerFired {
    /// When the condition started to hold (the onboard propagation's root), milliseconds since
    /// the Unix epoch by the onboard clock; the task was ready then or it held already.
    pub since_ms: u64,
    /// When the agent fired it and started the task (the onboard clock).
    pub fired_ms: u64,
    /// What held, for a person (`eclipse`, `within 500 km of 46.27,6.96`, ...).
    pub reason: String,
}

impl Condition {
    /// How many conditions this is, counting itself and everything under it.
    pub fn size(&self) -> usize {
        match self {
            Condition::All(c) | Condition::Any(c) => {
                1 + c.iter().map(Condition::size).sum::<usize>()
            }
            _ => 1,
        }
    }

    /// How deep `all`/`any` nest under it (a leaf is 0).
    pub fn depth(&self) -> usize {
        match self {
            Condition::All(c) | Condition::Any(c) => {
                1 + c.iter().map(Condition::depth).max().unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// The condition for a person, as the task's record and the ground's prediction say it.
    pub fn describe(&self) -> String {
        match self {
            Condition::Location(l) => l.describe(),
            Condition::Eclipse => "in eclipse".into(),
            Condition::Sunlit => "sunlit".into(),
            Condition::Window {
                not_before_ms,
                not_after_ms,
            } => match (not_before_ms, not_after_ms) {
                (Some(a), Some(b)) => format!("between {} and {}", rfc3339(*a), rfc3339(*b)),
                (Some(a), None) => format!("not before {}", rfc3339(*a)),
                (None, Some(b)) => format!("not after {}", rfc3339(*b)),
                (None, None) => "at any time".into(),
            },
            Condition::All(c) => join(c, " and "),
            Condition::Any(c) => join(c, " or "),
            Condition::Nadir(n) => format!(
                "pointing within {}° of {:.4},{:.4}",
                f64::from(n.within_mdeg) / 1000.0,
                n.target.latitude_deg(),
                n.target.longitude_deg()
            ),
            Condition::Telemetry(t) => t.describe(),
        }
    }

    /// The telemetry tests under it, in order: what only the agent can judge, from its
    /// telemetry, and the ground does not predict.
    pub fn telemetry_tests(&self) -> Vec<TelemetryTest> {
        let mut out = Vec::new();
        self.visit_telemetry(&mut |t| out.push(*t));
        out
    }

    fn visit_telemetry(&self, f: &mut dyn FnMut(&TelemetryTest)) {
        match self {
            Condition::Telemetry(t) => f(t),
            Condition::All(c) | Condition::Any(c) => {
                for c in c {
                    c.visit_telemetry(f);
                }
            }
            _ => {}
        }
    }

    /// The condition with each telemetry test replaced by its verdict (`judge`): holding
    /// becomes `all` of nothing (always), failing `any` of nothing (never), so what is left
    /// is judged by the orbit and the time alone.
    pub fn judged(&self, judge: &dyn Fn(&TelemetryTest) -> bool) -> Condition {
        match self {
            Condition::Telemetry(t) if judge(t) => Condition::All(Vec::new()),
            Condition::Telemetry(_) => Condition::Any(Vec::new()),
            Condition::All(c) => Condition::All(c.iter().map(|c| c.judged(judge)).collect()),
            Condition::Any(c) => Condition::Any(c.iter().map(|c| c.judged(judge)).collect()),
            other => other.clone(),
        }
    }
}

fn join(conditions: &[Condition], with: &str) -> String {
    if conditions.is_empty() {
        return if with == " and " { "always" } else { "never" }.into();
    }
    let parts: Vec<String> = conditions
        .iter()
        .map(|c| match c {
            Condition::All(_) | Condition::Any(_) if c.size() > 1 => format!("({})", c.describe()),
            _ => c.describe(),
        })
        .collect();
    parts.join(with)
}

impl Location {
    fn describe(&self) -> String {
        let mut out = match &self.area {
            Area::Point { at, radius_m, .. } => match radius_m {
                Some(r) => format!(
                    "within {} km of {:.4},{:.4}",
                    f64::from(*r) / 1000.0,
                    at.latitude_deg(),
                    at.longitude_deg()
                ),
                None => format!("over {:.4},{:.4}", at.latitude_deg(), at.longitude_deg()),
            },
            Area::Polygon(v) => format!("over a polygon of {} vertices", v.len()),
        };
        if let Some(e) = self.min_elevation_mdeg {
            out.push_str(&format!(
                ", satellite at least {}° high there",
                f64::from(e) / 1000.0
            ));
        }
        if let Some(e) = self.min_sun_elevation_mdeg {
            out.push_str(&format!(", Sun at least {}° high", f64::from(e) / 1000.0));
        }
        out
    }
}

/// An instant as RFC 3339 UTC to the second (civil-from-days, Howard Hinnant's algorithm).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_polygon_is_refused_for_a_half_turn_edge_or_more_than_one_turn() {
        let p = |lat: f64, lon: f64| GeoPoint::from_degrees(lat, lon).unwrap();
        let fiji = [
            p(-15.0, 175.0),
            p(-15.0, -175.0),
            p(-22.0, -175.0),
            p(-22.0, 175.0),
        ];
        assert_eq!(polygon_fault(&fiji), None);
        let pole = [p(80.0, 0.0), p(80.0, 120.0), p(80.0, -120.0)];
        assert_eq!(polygon_fault(&pole), None);
        let half = [p(0.0, -90.0), p(0.0, 90.0), p(10.0, 90.0)];
        assert!(polygon_fault(&half).unwrap().contains("180°"));
        let twice = [
            p(80.0, 0.0),
            p(80.0, 120.0),
            p(80.0, -120.0),
            p(81.0, 0.0),
            p(81.0, 120.0),
            p(81.0, -120.0),
        ];
        assert!(polygon_fault(&twice).unwrap().contains("more than once"));
    }

    use super::*;

    #[test]
    fn descriptions_and_sizes() {
        let c = Condition::All(vec![
            Condition::Location(Location {
                area: Area::Point {
                    at: GeoPoint::from_degrees(46.27, 6.96).unwrap(),
                    altitude_m: 372,
                    radius_m: Some(500_000),
                },
                min_elevation_mdeg: None,
                min_sun_elevation_mdeg: Some(10_000),
            }),
            Condition::Any(vec![Condition::Eclipse, Condition::Sunlit]),
            Condition::Window {
                not_before_ms: Some(1_796_256_000_000),
                not_after_ms: None,
            },
        ]);
        assert_eq!(c.size(), 6);
        assert_eq!(c.depth(), 2);
        assert_eq!(
            c.describe(),
            "within 500 km of 46.2700,6.9600, Sun at least 10° high and (in eclipse or sunlit) \
             and not before 2026-12-03T00:00:00Z"
        );
        assert_eq!(GeoPoint::from_degrees(91.0, 0.0), None);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_825_600_000), "2000-02-29T12:00:00Z");
        // Encodings round-trip, in postcard and JSON.
        let bytes = postcard::to_allocvec(&c).unwrap();
        assert_eq!(postcard::from_bytes::<Condition>(&bytes).unwrap(), c);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Condition>(&json).unwrap(), c);
    }

    #[test]
    fn telemetry_tests_are_found_judged_and_described() {
        let battery = TelemetryTest::Range {
            value: Measured::BatterySocPercent,
            min_milli: Some(60_000),
            max_milli: None,
        };
        let panel = TelemetryTest::Range {
            value: Measured::Temperature(2),
            min_milli: Some(-10_500),
            max_milli: Some(40_000),
        };
        let nadir = Condition::Nadir(Nadir {
            target: GeoPoint::from_degrees(46.27, 6.96).unwrap(),
            altitude_m: 0,
            within_mdeg: 10_000,
        });
        let c = Condition::All(vec![
            nadir.clone(),
            Condition::Any(vec![
                Condition::Telemetry(battery),
                Condition::Telemetry(panel),
                Condition::Telemetry(TelemetryTest::Illumination(Light::Umbra)),
            ]),
        ]);
        assert_eq!(
            c.describe(),
            "pointing within 10° of 46.2700,6.9600 and (battery_soc_percent at least 60 % or \
             sensor2 from -10.5 °C to 40 °C or measured illumination umbra)"
        );
        assert_eq!(c.telemetry_tests().len(), 3);
        let judged = c.judged(&|t| *t == battery);
        assert_eq!(
            judged,
            Condition::All(vec![
                nadir,
                Condition::Any(vec![
                    Condition::All(vec![]),
                    Condition::Any(vec![]),
                    Condition::Any(vec![])
                ])
            ])
        );
        assert!(judged.telemetry_tests().is_empty());
        // A reading passes by its value, inclusive; an unmeasured value fails.
        let soc = |v: f64| move |m: Measured| (m == Measured::BatterySocPercent).then_some(v);
        assert!(battery.passes(soc(60.0), None));
        assert!(!battery.passes(soc(59.999), None));
        assert!(!panel.passes(soc(20.0), None));
        assert!(TelemetryTest::Illumination(Light::Sunlit).passes(soc(1.0), Some(Light::Sunlit)));
        let bytes = postcard::to_allocvec(&c).unwrap();
        assert_eq!(postcard::from_bytes::<Condition>(&bytes).unwrap(), c);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Condition>(&json).unwrap(), c);
    }

    #[test]
    fn nesting_is_bounded_before_the_decoder_recurses() {
        let nested = |levels: usize| {
            let mut c = Condition::Eclipse;
            for _ in 0..levels {
                c = Condition::All(vec![c]);
            }
            c
        };
        let ok = nested(MAX_DECODE_DEPTH - 1);
        let bytes = postcard::to_allocvec(&ok).unwrap();
        assert_eq!(postcard::from_bytes::<Condition>(&bytes).unwrap(), ok);
        // A million levels, written by hand (All = variant 4, one item): refused, no overflow.
        let mut hostile = [4u8, 1].repeat(1_000_000);
        hostile.push(1);
        let e = postcard::from_bytes::<Condition>(&hostile).unwrap_err();
        assert!(
            e.to_string().contains("nested deeper") || matches!(e, postcard::Error::SerdeDeCustom),
            "{e}"
        );
        // The depth is counted afresh for the next decode.
        assert_eq!(postcard::from_bytes::<Condition>(&bytes).unwrap(), ok);
    }
}
