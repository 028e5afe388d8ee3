//! The dashboard's view of each system: its declaration and any drift of its engine from it,
//! how the mirror of what it holds onboard compares with its last report, plots of its downlinked
//! telemetry (`telemetry_plot`), the next passes, the ground track as a small SVG map, and the
//! caller's uplink queue with ETAs. Server-rendered with maud (every inserted value escaped); nothing fetched.

use std::fmt::Write as _;

use maud::{Markup, PreEscaped, html};

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

/// The "Systems" detail: one block per system, with the uplink queue as `tenant` sees it
/// (`None`: an operator, who sees every tenant's transfers).
pub(crate) async fn section(g: &Ground, tenant: Option<&str>) -> Result<Markup, ApiError> {
    let now = g.now();
    let names: Vec<String> = g.system_names().map(str::to_string).collect();
    let mut blocks = Vec::new();
    for name in names {
        let declared = declared_html(g, &name).await?;
        let sky = match passes::sky(g, &name)? {
            Sky::AlwaysInContact { .. } => html! { p { "Always in contact: no passes." } },
            Sky::Orbit(f) => {
                let windows = f.windows(now, now.plus_seconds(PASSES_AHEAD_S)).await;
                let track = track_svg(f, now).ok();
                html! {
                    @match &windows {
                        Ok(w) if w.is_empty() => p { "No pass in the next 24 hours." },
                        Ok(w) => table {
                            tr { th { "Station" } th { "AOS" } th { "LOS" } th { "Max elevation" } th { "Uplink MB" } }
                            @for w in w.iter().take(PASSES_SHOWN) {
                                tr {
                                    td { (w.station) }
                                    td { (rfc3339(w.aos)) }
                                    td { (rfc3339(w.los)) }
                                    td { (format!("{:.1}°", w.max_elevation_deg)) }
                                    td { (format!("{:.2}", w.up_bytes as f64 / 1e6)) }
                                }
                            }
                        },
                        Err(e) => p.error { (e.message()) },
                    }
                    @if let Ok(w) = &windows { @if !w.is_empty() { (timeline(&name, w, now)) } }
                    @if let Some(svg) = track { (svg) }
                }
            }
        };
        let queue = queue_html(&queue::view(g, &name, tenant).await?);
        let inventory =
            inventory_html(&crate::mirror::state_seen_by(&g.core, &name, tenant).await?);
        // Telemetry is the system's word: a failure to read or plot it is a line on the page,
        // not a page that fails.
        let telemetry = match crate::telemetry_plot::section(g, &name).await {
            Ok(section) => section,
            Err(e) => html! { p.error { "Telemetry: " (e.message()) } },
        };
        blocks.push(html! {
            h3 id=(name) { (name) }
            p { "Approval: " (g.approval(&name).as_str()) "." }
            (declared)
            (inventory)
            (telemetry)
            (sky)
            (queue)
        });
    }
    Ok(html! { @for b in blocks { (b) } })
}

/// The next 24 hours as a timeline (SVG, no script): one lane per station, each pass a bar from
/// its AOS to its LOS (its times and uplink bytes in the bar's title), an hour mark every 3 hours.
fn timeline(system: &str, windows: &[orbit::Window], now: orbit::Epoch) -> Markup {
    const LABEL: f64 = 90.0;
    const WIDTH: f64 = 720.0;
    const LANE: f64 = 22.0;
    let mut stations: Vec<&str> = windows.iter().map(|w| w.station.as_str()).collect();
    stations.sort_unstable();
    stations.dedup();
    let x =
        |at: orbit::Epoch| LABEL + (at.seconds_since(now) / PASSES_AHEAD_S).clamp(0.0, 1.0) * WIDTH;
    let height = stations.len() as f64 * LANE + 24.0;
    let label = format!(
        "Passes of {system} over the next 24 hours: {} passes over {} stations",
        windows.len(),
        stations.len()
    );
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" width=(LABEL + WIDTH + 24.0) height=(height)
            role="img" aria-label=(label) font-size="11" {
            title { (label) }
            @for h in (0..=24).step_by(3) {
                @let hx = LABEL + f64::from(h) / 24.0 * WIDTH;
                line x1=(hx) y1="0" x2=(hx) y2=(height - 14.0) stroke="#ddd" {}
                text x=(hx) y=(height - 2.0) text-anchor="middle" { "+" (h) "h" }
            }
            @for (i, station) in stations.iter().enumerate() {
                @let y = i as f64 * LANE;
                text x="0" y=(y + 15.0) { (station) }
                @for w in windows.iter().filter(|w| w.station == *station) {
                    @let (x0, x1) = (x(w.aos), x(w.los));
                    rect x=(x0) y=(y + 4.0) width=((x1 - x0).max(2.0)) height=(LANE - 8.0) fill="#05a" {
                        title {
                            (station) ": " (rfc3339(w.aos)) " to " (rfc3339(w.los)) ", "
                            (format!("{:.1}° max, {:.2} MB up", w.max_elevation_deg, w.up_bytes as f64 / 1e6))
                        }
                    }
                }
            }
        }
    }
}

/// The declared platform, builder and catalogue, and each difference from what the agent last
/// reported of its engine.
async fn declared_html(g: &Ground, name: &str) -> Result<Markup, ApiError> {
    let d = crate::declared::declaration(g, name);
    let engine = crate::db::system(g.db(), name)
        .await?
        .and_then(|r| r.engine_report());
    let drift = engine.as_ref().map(|e| crate::declared::drift(&d, e));
    Ok(html! {
        p { "Declared: " (d.platform) ", " (d.builder.to_string()) " builder; catalogue: " (d.image_names().join(", ")) "." }
        @match &drift {
            None => p { "No engine report yet." },
            Some(x) if x.is_empty() => p { "Engine: as declared." },
            Some(x) => {
                p.error { "Engine drift from the declaration:" }
                ul.drift { @for d in x { li { (d.message()) } } }
            }
        }
    })
}

/// How the ground's mirror of what the system holds compares with its last summary.
fn inventory_html(s: &crate::mirror::InventoryState) -> Markup {
    let Some(at) = s.compared_at else {
        return html! { p { "Onboard inventory: not reported yet." } };
    };
    html! {
        @if s.drift.is_empty() {
            p.inventory { "Onboard inventory: in sync (" (s.objects) " objects), checked " (time::rfc3339(at)) "." }
        } @else {
            p.error { "Onboard inventory: drift detected since " (time::rfc3339(s.drift_since.unwrap_or(at))) ", repairing:" }
            ul.drift { @for d in &s.drift { li { (d) } } }
        }
        @if let Some(r) = s.repaired_at {
            p { "Last repaired " (time::rfc3339(r)) ": " (s.repaired.join("; ")) "." }
        }
    }
}

/// The caller's part of the queue, with ETAs, and a line for everyone else's.
fn queue_html(v: &queue::QueueView) -> Markup {
    if v.mine.is_empty() && v.others == 0 {
        return html! { p { "Uplink queue: empty." } };
    }
    html! {
        @if let Some(e) = &v.eta_error { p.error { "No ETAs: " (e) } }
        @if !v.mine.is_empty() {
            table {
                tr { th { "Execution" } th { "Tenant" } th { "Transfer" } th { "Bytes" } th { "Remaining" } th { "Pass" } th { "ETA" } }
                @for t in &v.mine {
                    @let what = if t.message {
                        "plan".to_string()
                    } else {
                        let d = t.digest.to_string();
                        d.get(..19).unwrap_or(&d).to_string()
                    };
                    tr {
                        td { code { (t.execution) } }
                        td { (t.tenant) }
                        td { code { (what) } }
                        td { (t.bytes) }
                        td { (t.remaining) }
                        td {
                            @match (&t.eta.pass, v.always_in_contact) {
                                (Some(p), _) => { (p.station) " " (rfc3339(p.aos)) },
                                (None, true) => "always in contact",
                                (None, false) => "—",
                            }
                        }
                        td { (t.eta.completion.map_or_else(|| "unknown".to_string(), rfc3339)) }
                    }
                }
            }
        }
        @if v.others > 0 { p { "other tenants: " (v.other_bytes_ahead) " bytes ahead" } }
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
fn track_svg(f: &Flying, now: orbit::Epoch) -> Result<Markup, ApiError> {
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
            html! { (s.station.name) }.into_string()
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
    // Built from numbers and the escaped station names above.
    Ok(PreEscaped(svg))
}
