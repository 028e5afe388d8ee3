//! A task's `trigger` (`docs/triggers.md`): conditions on where the satellite is and points,
//! its illumination, its telemetry and the time, read into a `wire::Trigger`, every problem
//! with its line and column.
//!
//! ```yaml
//! trigger:
//!   location: {latitude: 46.27, longitude: 6.96, radius_km: 500, min_sun_elevation: 10}
//!   not_before: 2026-12-03T00:00:00Z
//!   deadline: 12h
//! ```
//!
//! A mapping of conditions holds when all of them hold; `all` and `any` take lists of such
//! mappings. `deadline` (an RFC 3339 time, or a duration after the task is ready onboard) is
//! read at the top only.

use saphyr::Scalar;
use wire::{
    Area, Condition, Deadline, GeoPoint, Light, Location, Measured, Nadir, TelemetryTest, Trigger,
};

use super::*;

/// The conditions a mapping may hold.
const CONDITIONS: [&str; 9] = [
    "location",
    "eclipse",
    "sunlit",
    "not_before",
    "not_after",
    "all",
    "any",
    "nadir",
    "telemetry",
];

impl Cx<'_> {
    /// Reads `trigger`.
    pub(super) fn trigger(&mut self, who: &Who, node: &Node<'_>) -> Option<Trigger> {
        let mut f = self.fields(who, node, "field 'trigger'")?;
        let deadline = f.take("deadline").map(|n| self.deadline(who, n));
        let mut budget = wire::MAX_TRIGGER_CONDITIONS;
        let when = self.conditions(who, node, &mut f, "trigger", 0, &mut budget);
        let mut allowed: Vec<&str> = CONDITIONS.to_vec();
        allowed.push("deadline");
        self.finish(who, &f, &allowed);
        Some(Trigger {
            when: when?,
            deadline: optional(deadline)?,
        })
    }

    /// Says that the trigger holds more than [`wire::MAX_TRIGGER_CONDITIONS`] conditions or
    /// nests deeper than [`wire::MAX_TRIGGER_DEPTH`] (each condition costs a search, onboard
    /// and on the ground).
    fn too_large(&mut self, who: &Who, node: &Node<'_>, key: &str) {
        self.diag(
            who,
            pos(node),
            format!(
                "field '{key}': the trigger is too large (at most {} conditions, nested {} deep)",
                wire::MAX_TRIGGER_CONDITIONS,
                wire::MAX_TRIGGER_DEPTH
            ),
        );
    }

    /// The conditions of one mapping (all of them must hold).
    fn conditions<'y, 'a>(
        &mut self,
        who: &Who,
        node: &Node<'_>,
        f: &mut Fields<'y, 'a>,
        key: &str,
        depth: usize,
        budget: &mut usize,
    ) -> Option<Condition> {
        let mut out = Vec::new();
        let mut ok = true;
        let mut push = |c: Option<Condition>, out: &mut Vec<Condition>| match c {
            Some(c) => out.push(c),
            None => ok = false,
        };
        if let Some(n) = f.take("location") {
            let c = self.location(who, n).map(Condition::Location);
            push(c, &mut out);
        }
        for (name, c) in [
            ("eclipse", Condition::Eclipse),
            ("sunlit", Condition::Sunlit),
        ] {
            if let Some(n) = f.take(name) {
                match self.boolean(who, name, n) {
                    Some(true) => push(Some(c), &mut out),
                    Some(false) => {
                        let other = if name == "eclipse" {
                            "sunlit"
                        } else {
                            "eclipse"
                        };
                        self.diag(
                            who,
                            pos(n),
                            format!("field '{name}' must be true (for the opposite, write '{other}: true')"),
                        );
                        push(None, &mut out);
                    }
                    None => push(None, &mut out),
                }
            }
        }
        let not_before = f
            .take("not_before")
            .map(|n| (self.checked(who, "not_before", n, rfc3339_ms), pos(n)));
        let not_after = f
            .take("not_after")
            .map(|n| (self.checked(who, "not_after", n, rfc3339_ms), pos(n)));
        if not_before.is_some() || not_after.is_some() {
            let (nb, na) = (not_before.and_then(|x| x.0), not_after.and_then(|x| x.0));
            let bad = not_before.is_some_and(|x| x.0.is_none())
                || not_after.is_some_and(|x| x.0.is_none());
            match (nb, na) {
                _ if bad => push(None, &mut out),
                (Some(b), Some(a)) if a <= b => {
                    let at = not_after.map_or(pos(node), |x| x.1);
                    self.diag(
                        who,
                        at,
                        "field 'not_after' must be later than 'not_before': the window is empty"
                            .into(),
                    );
                    push(None, &mut out);
                }
                _ => push(
                    Some(Condition::Window {
                        not_before_ms: nb,
                        not_after_ms: na,
                    }),
                    &mut out,
                ),
            }
        }
        for name in ["all", "any"] {
            if let Some(n) = f.take(name) {
                let c = self.combination(who, name, n, depth + 1, budget);
                push(c, &mut out);
            }
        }
        if let Some(n) = f.take("nadir") {
            let c = self.nadir(who, n).map(Condition::Nadir);
            push(c, &mut out);
        }
        if let Some(n) = f.take("telemetry") {
            match self.telemetry(who, n) {
                Some(tests) => {
                    for t in tests {
                        push(Some(Condition::Telemetry(t)), &mut out);
                    }
                }
                None => push(None, &mut out),
            }
        }
        if !ok {
            return None;
        }
        if out.len() > *budget {
            // Each condition costs a search onboard and on the ground: a telemetry mapping
            // counts one per test.
            self.too_large(who, node, key);
            return None;
        }
        *budget -= out.len();
        match out.len() {
            0 => {
                self.diag(
                    who,
                    pos(node),
                    format!(
                        "field '{key}' holds no condition; expected one or more of {}",
                        CONDITIONS.join(", ")
                    ),
                );
                None
            }
            1 => out.pop(),
            _ => Some(Condition::All(out)),
        }
    }

    /// `all` or `any`: a list of condition mappings.
    fn combination(
        &mut self,
        who: &Who,
        key: &str,
        node: &Node<'_>,
        depth: usize,
        budget: &mut usize,
    ) -> Option<Condition> {
        let YamlData::Sequence(items) = &untag(node).data else {
            self.diag(
                who,
                pos(node),
                format!(
                    "field '{key}' must be a list of conditions, not {}",
                    kind(node)
                ),
            );
            return None;
        };
        if items.is_empty() {
            self.diag(
                who,
                pos(node),
                format!("field '{key}' must hold at least one condition"),
            );
            return None;
        }
        if depth > wire::MAX_TRIGGER_DEPTH || items.len() > *budget {
            self.too_large(who, node, key);
            return None;
        }
        *budget -= 1;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            let Some(mut f) = self.fields(who, item, &format!("an item of '{key}'")) else {
                ok = false;
                continue;
            };
            let c = self.conditions(who, item, &mut f, key, depth, budget);
            self.finish(who, &f, &CONDITIONS);
            match c {
                Some(c) => out.push(c),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        Some(if key == "all" {
            Condition::All(out)
        } else {
            Condition::Any(out)
        })
    }

    /// `location`: a point (`latitude`, `longitude`, optional `altitude`, `radius_km`,
    /// `min_elevation`) or a `polygon`, with an optional `min_sun_elevation`.
    fn location(&mut self, who: &Who, node: &Node<'_>) -> Option<Location> {
        let mut f = self.fields(who, node, "field 'location'")?;
        let sun = f
            .take("min_sun_elevation")
            .map(|n| self.degrees_m(who, "location.min_sun_elevation", n, 90.0));
        let location = if let Some(poly) = f.take("polygon") {
            for key in [
                "latitude",
                "longitude",
                "altitude",
                "radius_km",
                "min_elevation",
            ] {
                if let Some(n) = f.take_raw(key) {
                    self.diag(
                        who,
                        pos(n),
                        format!("field 'location.{key}' does not go with 'polygon': a polygon is judged by the point below the satellite"),
                    );
                    return None;
                }
            }
            let vertices = self.polygon(who, poly);
            if let Some(fault) = vertices.as_deref().and_then(wire::polygon_fault) {
                self.diag(who, pos(poly), format!("field 'location.polygon': {fault}"));
                return None;
            }
            self.finish(who, &f, &["polygon", "min_sun_elevation"]);
            Location {
                area: Area::Polygon(vertices?),
                min_elevation_mdeg: None,
                min_sun_elevation_mdeg: optional(sun)?,
            }
        } else {
            let lat = self.required(who, &mut f, node, "latitude", |cx, n| {
                cx.number(who, "location.latitude", n, (-90.0, 90.0))
            });
            let lon = self.required(who, &mut f, node, "longitude", |cx, n| {
                cx.number(who, "location.longitude", n, (-180.0, 180.0))
            });
            let altitude = f
                .take("altitude")
                .map(|n| self.number(who, "location.altitude", n, (-500.0, 10_000.0)));
            let radius = f
                .take("radius_km")
                .map(|n| self.number(who, "location.radius_km", n, (0.001, 20_000.0)));
            let elevation = f
                .take("min_elevation")
                .map(|n| self.degrees_m(who, "location.min_elevation", n, 90.0));
            self.finish(
                who,
                &f,
                &[
                    "latitude",
                    "longitude",
                    "altitude",
                    "radius_km",
                    "min_elevation",
                    "min_sun_elevation",
                    "polygon",
                ],
            );
            let (lat, lon) = (lat?, lon?);
            let (altitude, radius, elevation) =
                (optional(altitude)?, optional(radius)?, optional(elevation)?);
            if radius.is_none() && elevation.is_none() {
                self.diag(
                    who,
                    pos(node),
                    "field 'location' needs 'radius_km' (over the area around the point), 'min_elevation' (the satellite seen that high from the point), or both".into(),
                );
                return None;
            }
            Location {
                area: Area::Point {
                    at: GeoPoint::from_degrees(lat, lon)?,
                    altitude_m: altitude.unwrap_or(0.0).round() as i32,
                    radius_m: radius.map(|r| (r * 1000.0).round() as u32),
                },
                min_elevation_mdeg: elevation,
                min_sun_elevation_mdeg: optional(sun)?,
            }
        };
        Some(location)
    }

    /// `nadir`: `latitude`, `longitude`, optional `altitude` (metres), `within_deg` in (0, 90].
    fn nadir(&mut self, who: &Who, node: &Node<'_>) -> Option<Nadir> {
        let mut f = self.fields(who, node, "field 'nadir'")?;
        let lat = self.required(who, &mut f, node, "latitude", |cx, n| {
            cx.number(who, "nadir.latitude", n, (-90.0, 90.0))
        });
        let lon = self.required(who, &mut f, node, "longitude", |cx, n| {
            cx.number(who, "nadir.longitude", n, (-180.0, 180.0))
        });
        let altitude = f
            .take("altitude")
            .map(|n| self.number(who, "nadir.altitude", n, (-500.0, 10_000.0)));
        let within = self.required(who, &mut f, node, "within_deg", |cx, n| {
            // Thousandths of a degree, so "above 0" is at least one of them.
            match cx.number(who, "nadir.within_deg", n, (0.0, 90.0)) {
                Some(d) if (d * 1000.0).round() >= 1.0 => Some((d * 1000.0).round() as u32),
                Some(_) => {
                    cx.diag(
                        who,
                        pos(n),
                        "field 'nadir.within_deg' must be above 0 (at least 0.001) and at most 90"
                            .into(),
                    );
                    None
                }
                None => None,
            }
        });
        self.finish(
            who,
            &f,
            &["latitude", "longitude", "altitude", "within_deg"],
        );
        let (lat, lon, altitude, within) = (lat?, lon?, optional(altitude)?, within?);
        Some(Nadir {
            target: GeoPoint::from_degrees(lat, lon)?,
            altitude_m: altitude.unwrap_or(0.0).round() as i32,
            within_mdeg: within,
        })
    }

    /// `telemetry`: a mapping of tests, all of which must hold: `battery_soc_percent` and
    /// `sensor0`..`sensor7` take `{min, max}` (either or both), `illumination` one of `sunlit`,
    /// `penumbra`, `umbra`.
    fn telemetry(&mut self, who: &Who, node: &Node<'_>) -> Option<Vec<TelemetryTest>> {
        let mut f = self.fields(who, node, "field 'telemetry'")?;
        let mut measured = vec![(Measured::BatterySocPercent, (0.0, 100.0))];
        measured.extend((0..8).map(|i| (Measured::Temperature(i), (-150.0, 150.0))));
        let names: Vec<String> = measured
            .iter()
            .map(|(m, _)| m.name())
            .chain(["illumination".to_string()])
            .collect();
        let (mut out, mut ok) = (Vec::new(), true);
        for (what, range) in measured {
            if let Some(n) = f.take(&what.name()) {
                match self.bounds(who, what, n, range) {
                    Some(t) => out.push(t),
                    None => ok = false,
                }
            }
        }
        if let Some(n) = f.take("illumination") {
            let light = match &untag(n).data {
                YamlData::Value(Scalar::String(s)) => Light::from_name(s),
                _ => None,
            };
            match light {
                Some(l) => out.push(TelemetryTest::Illumination(l)),
                None => {
                    self.diag(
                        who,
                        pos(n),
                        "field 'telemetry.illumination' must be one of sunlit, penumbra, umbra"
                            .into(),
                    );
                    ok = false;
                }
            }
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.finish(who, &f, &names);
        if !ok {
            return None;
        }
        if out.is_empty() {
            // Unknown fields have been reported; an empty mapping is reported here.
            if matches!(&untag(node).data, YamlData::Mapping(m) if m.is_empty()) {
                self.diag(
                    who,
                    pos(node),
                    format!(
                        "field 'telemetry' holds no test; expected one or more of {}",
                        names.join(", ")
                    ),
                );
            }
            return None;
        }
        Some(out)
    }

    /// `{min, max}` of a measured value, either or both, within `range`.
    fn bounds(
        &mut self,
        who: &Who,
        what: Measured,
        node: &Node<'_>,
        range: (f64, f64),
    ) -> Option<TelemetryTest> {
        let key = format!("telemetry.{}", what.name());
        let mut f = self.fields(who, node, &format!("field '{key}'"))?;
        let mut read = |cx: &mut Self, bound: &str| {
            f.take(bound).map(|n| {
                let v = cx.number(who, &format!("{key}.{bound}"), n, range);
                (v.map(|v| (v * 1000.0).round() as i64), n)
            })
        };
        let min = read(self, "min");
        let max = read(self, "max");
        self.finish(who, &f, &["min", "max"]);
        let (min_milli, max_milli) = (
            optional(min.map(|(v, _)| v))?,
            optional(max.map(|(v, _)| v))?,
        );
        match (min_milli, max_milli) {
            (None, None) => {
                self.diag(
                    who,
                    pos(node),
                    format!("field '{key}' needs 'min', 'max' or both"),
                );
                None
            }
            (Some(a), Some(b)) if b < a => {
                let at = max.map_or(pos(node), |(_, n)| pos(n));
                self.diag(
                    who,
                    at,
                    format!("field '{key}.max' must not be less than its 'min': no value passes"),
                );
                None
            }
            _ => Some(TelemetryTest::Range {
                value: what,
                min_milli,
                max_milli,
            }),
        }
    }

    /// A polygon: a list of `[latitude, longitude]` pairs or `{latitude, longitude}` mappings.
    fn polygon(&mut self, who: &Who, node: &Node<'_>) -> Option<Vec<GeoPoint>> {
        let YamlData::Sequence(items) = &untag(node).data else {
            self.diag(
                who,
                pos(node),
                format!(
                    "field 'location.polygon' must be a list of [latitude, longitude] vertices, not {}",
                    kind(node)
                ),
            );
            return None;
        };
        if items.len() < 3 || items.len() > wire::MAX_POLYGON_VERTICES {
            self.diag(
                who,
                pos(node),
                format!(
                    "field 'location.polygon' must have from 3 to {} vertices, not {}",
                    wire::MAX_POLYGON_VERTICES,
                    items.len()
                ),
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let pair = match &untag(item).data {
                YamlData::Sequence(ll) if ll.len() == 2 => (
                    self.number(who, "location.polygon latitude", &ll[0], (-90.0, 90.0)),
                    self.number(who, "location.polygon longitude", &ll[1], (-180.0, 180.0)),
                ),
                YamlData::Mapping(_) => {
                    let mut f = self.fields(who, item, "a polygon vertex")?;
                    let lat = self.required(who, &mut f, item, "latitude", |cx, n| {
                        cx.number(who, "location.polygon latitude", n, (-90.0, 90.0))
                    });
                    let lon = self.required(who, &mut f, item, "longitude", |cx, n| {
                        cx.number(who, "location.polygon longitude", n, (-180.0, 180.0))
                    });
                    self.finish(who, &f, &["latitude", "longitude"]);
                    (lat, lon)
                }
                _ => {
                    self.diag(
                        who,
                        pos(item),
                        "a vertex of 'location.polygon' must be [latitude, longitude] or {latitude, longitude}".into(),
                    );
                    return None;
                }
            };
            out.push(GeoPoint::from_degrees(pair.0?, pair.1?)?);
        }
        Some(out)
    }

    /// A number (integer or decimal) within `range`.
    fn number(&mut self, who: &Who, key: &str, node: &Node<'_>, range: (f64, f64)) -> Option<f64> {
        let v = match &untag(node).data {
            YamlData::Value(Scalar::Integer(i)) => Some(*i as f64),
            YamlData::Value(Scalar::FloatingPoint(f)) => Some(f.into_inner()),
            _ => None,
        };
        match v {
            Some(v) if v.is_finite() && v >= range.0 && v <= range.1 => Some(v),
            _ => {
                self.diag(
                    who,
                    pos(node),
                    format!(
                        "field '{key}' must be a number from {} to {}",
                        range.0, range.1
                    ),
                );
                None
            }
        }
    }

    /// Degrees from `-max` to `max`, in thousandths.
    fn degrees_m(&mut self, who: &Who, key: &str, node: &Node<'_>, max: f64) -> Option<i32> {
        self.number(who, key, node, (-max, max))
            .map(|d| (d * 1000.0).round() as i32)
    }

    /// `deadline`: an RFC 3339 time, or a duration (`90m`, `12h`, `2d`; minutes when a bare
    /// number) after the task is ready onboard, at most a week.
    fn deadline(&mut self, who: &Who, node: &Node<'_>) -> Option<Deadline> {
        if let YamlData::Value(Scalar::String(s)) = &untag(node).data
            && s.contains('T')
        {
            return self
                .checked(who, "deadline", node, rfc3339_ms)
                .map(Deadline::At);
        }
        let ms = self.duration(who, "deadline", node)?;
        Some(Deadline::After(ms.min(wire::MAX_TRIGGER_WAIT_MS)))
    }
}
