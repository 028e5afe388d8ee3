//! The dashboard's view of each system: its declaration and any drift of its engine from it,
//! the next passes, the ground track as a small SVG map, and the caller's uplink queue with ETAs. Server-rendered; no JavaScript, nothing fetched.

use std::fmt::Write as _;

use crate::dashboard::escape;
use crate::error::ApiError;
use crate::passes::{self, Flying, Sky, rfc3339};
use crate::queue;
use crate::{Ground, time};

/// How far ahead the dashboard lists passes, seconds, and how many at most.
const PASSES_AHEAD_S: f64 = 24.0 * 3600.0;
const PASSES_SHOWN: usize = 10;
/// The ground track drawn: minutes from now and the step between points, seconds.
const TRACK_MINUTES: u32 = 90;
const TRACK_STEP_S: u32 = 60;

/// The "Systems" detail: one block per system.
pub(crate) async fn section(g: &Ground, user: &str) -> Result<String, ApiError> {
    let mut out = String::new();
    let now = g.now();
    let names: Vec<String> = g.system_names().map(str::to_string).collect();
    for name in names {
        let _ = write!(out, "<h3>{}</h3>", escape(&name));
        declared_html(&mut out, g, &name).await?;
        match passes::sky(g, &name)? {
            Sky::AlwaysInContact { .. } => {
                out.push_str("<p>Always in contact: no passes.</p>");
            }
            Sky::Orbit(f) => {
                match f.windows(now, now.plus_seconds(PASSES_AHEAD_S)).await {
                    Ok(windows) if windows.is_empty() => {
                        out.push_str("<p>No pass in the next 24 hours.</p>");
                    }
                    Ok(windows) => {
                        out.push_str(
                            "<table><tr><th>Station</th><th>AOS</th><th>LOS</th>\
                             <th>Max elevation</th><th>Uplink MB</th></tr>",
                        );
                        for w in windows.iter().take(PASSES_SHOWN) {
                            let _ = write!(
                                out,
                                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}°</td><td>{:.2}</td></tr>",
                                escape(&w.station),
                                rfc3339(w.aos),
                                rfc3339(w.los),
                                w.max_elevation_deg,
                                w.up_bytes as f64 / 1e6
                            );
                        }
                        out.push_str("</table>");
                    }
                    Err(e) => {
                        let _ = write!(out, "<p class=\"error\">{}</p>", escape(&e.message()));
                    }
                }
                if let Ok(svg) = track_svg(f, now) {
                    out.push_str(&svg);
                }
            }
        }
        queue_html(&mut out, &queue::view(g, &name, user).await?);
    }
    Ok(out)
}

/// The declared platform, builder and catalogue, and each difference from what the agent last
/// reported of its engine.
async fn declared_html(out: &mut String, g: &Ground, name: &str) -> Result<(), ApiError> {
    let d = crate::declared::declaration(g, name);
    let names = d.image_names().join(", ");
    let _ = write!(
        out,
        "<p>Declared: {}, {} builder; catalogue: {}.</p>",
        escape(&d.platform),
        d.builder,
        escape(&names)
    );
    let engine = crate::db::system(g.db(), name)
        .await?
        .and_then(|r| r.engine_report());
    match engine {
        None => out.push_str("<p>No engine report yet.</p>"),
        Some(e) => {
            let drift = crate::declared::drift(&d, &e);
            if drift.is_empty() {
                out.push_str("<p>Engine: as declared.</p>");
            } else {
                out.push_str(
                    "<p class=\"error\">Engine drift from the declaration:</p><ul class=\"drift\">",
                );
                for x in &drift {
                    let _ = write!(out, "<li>{}</li>", escape(&x.message()));
                }
                out.push_str("</ul>");
            }
        }
    }
    Ok(())
}

/// The caller's part of the queue, with ETAs, and a line for everyone else's.
fn queue_html(out: &mut String, v: &queue::QueueView) {
    if v.mine.is_empty() && v.others == 0 {
        out.push_str("<p>Uplink queue: empty.</p>");
        return;
    }
    if let Some(e) = &v.eta_error {
        let _ = write!(out, "<p class=\"error\">No ETAs: {}</p>", escape(e));
    }
    if !v.mine.is_empty() {
        out.push_str(
            "<table><tr><th>Execution</th><th>Transfer</th><th>Bytes</th><th>Remaining</th>\
             <th>Pass</th><th>ETA</th></tr>",
        );
        for t in &v.mine {
            let what = if t.message {
                "plan".to_string()
            } else {
                let d = t.digest.to_string();
                d.get(..19).unwrap_or(&d).to_string()
            };
            let pass = match (&t.eta.pass, v.always_in_contact) {
                (Some(p), _) => format!("{} {}", escape(&p.station), rfc3339(p.aos)),
                (None, true) => "always in contact".to_string(),
                (None, false) => "—".to_string(),
            };
            let eta = t
                .eta
                .completion
                .map_or_else(|| "unknown".to_string(), rfc3339);
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&t.execution),
                escape(&what),
                t.bytes,
                t.remaining,
                pass,
                eta
            );
        }
        out.push_str("</table>");
    }
    if v.others > 0 {
        let _ = write!(
            out,
            "<p>other tenants: {} bytes ahead</p>",
            v.other_bytes_ahead
        );
    }
}

/// The land of Natural Earth's 1:110m countries (public domain, naturalearthdata.com), in whole
/// degrees: an SVG path on the map's frame (x = longitude, y = −latitude), rings under 1.5
/// square degrees left out. About 30 KB, drawn under the track.
const LAND: &str = include_str!("land-110m.svgpath");

/// Lines every 30 degrees, labelled on the left and bottom edges.
fn graticule(svg: &mut String) {
    let mut d = String::new();
    for lon in (-150..=150).step_by(30) {
        let _ = write!(d, "M{lon} -90V90");
    }
    for lat in (-60..=60).step_by(30) {
        let _ = write!(d, "M-180 {lat}H180");
    }
    let _ = write!(
        svg,
        "<path d=\"{d}\" stroke=\"#889\" stroke-width=\"0.25\" stroke-dasharray=\"1 2\" fill=\"none\"/>"
    );
    for lon in (-180..=180).step_by(60) {
        let label = match lon {
            0 => "0°".to_string(),
            l if l < 0 => format!("{}°W", -l),
            l => format!("{l}°E"),
        };
        let _ = write!(
            svg,
            "<text x=\"{lon}\" y=\"98\" text-anchor=\"middle\">{label}</text>"
        );
    }
    for lat in (-60..=60).step_by(30) {
        let label = match lat {
            0 => "0°".to_string(),
            l if l < 0 => format!("{}°S", -l),
            l => format!("{l}°N"),
        };
        let _ = write!(
            svg,
            "<text x=\"-182\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"middle\">{label}</text>",
            -lat
        );
    }
}

/// The ground track of the next [`TRACK_MINUTES`] on a longitude/latitude frame over the land
/// and a labelled graticule, the stations as dots.
fn track_svg(f: &Flying, now: orbit::Epoch) -> Result<String, ApiError> {
    let points = passes::track(f, now, TRACK_MINUTES, TRACK_STEP_S)?;
    let mut svg = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"-200 -92 392 200\" width=\"588\" \
         height=\"300\" role=\"img\" font-size=\"7\" fill=\"#556\"><title>ground track</title>\
         <rect x=\"-180\" y=\"-90\" width=\"360\" height=\"180\" fill=\"#eef3f8\"/>",
    );
    let _ = write!(
        svg,
        "<path d=\"{LAND}\" fill=\"#d5dccb\" stroke=\"#9a9\" stroke-width=\"0.3\"/>"
    );
    graticule(&mut svg);
    // One polyline per stretch that does not cross the antimeridian.
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut last_lon: Option<f64> = None;
    for p in &points {
        let (lon, lat) = (p.position.longitude_deg, p.position.latitude_deg);
        if last_lon.is_none_or(|l| (lon - l).abs() > 180.0) {
            runs.push(Vec::new());
        }
        if let Some(run) = runs.last_mut() {
            run.push((lon, -lat));
        }
        last_lon = Some(lon);
    }
    for run in runs {
        let pts: Vec<String> = run.iter().map(|(x, y)| format!("{x:.2},{y:.2}")).collect();
        let _ = write!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#05a\" stroke-width=\"1\"/>",
            pts.join(" ")
        );
    }
    for s in f.stations() {
        let _ = write!(
            svg,
            "<circle cx=\"{:.2}\" cy=\"{:.2}\" r=\"2\" fill=\"#b00\"><title>{}</title></circle>",
            s.station.longitude_deg,
            -s.station.latitude_deg,
            escape(&s.station.name)
        );
    }
    if let Some(p) = points.first() {
        let _ = write!(
            svg,
            "<circle cx=\"{:.2}\" cy=\"{:.2}\" r=\"3\" fill=\"#05a\"><title>now ({})</title></circle>",
            p.position.longitude_deg,
            -p.position.latitude_deg,
            time::rfc3339(now.unix_millis())
        );
    }
    svg.push_str("</svg>");
    Ok(svg)
}
