//! The dashboard's plots of a system's downlinked telemetry (`telemetry`): the battery's state of
//! charge and the on-board computer's temperature over the last 24 hours by the ground's clock,
//! each an inline SVG (no script, nothing fetched) with the min–max band of each five-minute slot,
//! its mean as a line, and labelled axes. Built with maud, which escapes every value inserted.

use maud::{Markup, html};

use crate::error::ApiError;
use crate::{Ground, db, telemetry, time};

/// What is plotted: the data type, its caption and its unit.
const PLOTTED: [(&str, &str, &str); 2] = [
    ("battery_soc_percent", "Battery state of charge", "%"),
    (
        "temperature_sensor0",
        "On-board computer temperature (sensor0)",
        "°C",
    ),
];
/// The window plotted, ms: the last 24 hours.
const WINDOW_MS: i64 = 86_400_000;
/// A point per five minutes: 288 at most.
const STEP_MS: i64 = 300_000;
/// Hours between two time labels.
const TICK_HOURS: i64 = 6;

/// The plot area and its margins, px.
const WIDTH: f64 = 520.0;
const HEIGHT: f64 = 140.0;
const LEFT: f64 = 52.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;
const RIGHT: f64 = 24.0;

/// The telemetry of `system` as the dashboard shows it: the plots, or a line saying there is
/// nothing to plot.
pub(crate) async fn section(g: &Ground, system: &str) -> Result<Markup, ApiError> {
    if !db::has_telemetry(g.db(), system).await? {
        return Ok(html! { p.telemetry { "Telemetry: no telemetry received yet." } });
    }
    let to = g.now().unix_millis();
    let from = to - WINDOW_MS;
    let types: Vec<String> = PLOTTED.iter().map(|(t, _, _)| t.to_string()).collect();
    let window = db::TelemetryWindow {
        from_ms: from,
        to_ms: to,
        step_ms: STEP_MS,
    };
    let series = telemetry::points(g.core(), system, &types, window).await?;
    Ok(html! {
        div.charts {
            @for ((data_type, points), (_, caption, unit)) in series.iter().zip(PLOTTED) {
                figure.chart {
                    @if points.is_empty() {
                        p { (caption) ": no telemetry in the last 24 hours." }
                    } @else {
                        (plot(system, data_type, points, caption, unit, from, to))
                    }
                    figcaption { (caption) " (" (unit) "), last 24 hours: min–max band and mean" }
                }
            }
        }
    })
}

/// One series as an SVG: the band, the mean line, the value axis (its lowest, middle and
/// highest value) and the time axis (a label every [`TICK_HOURS`], UTC).
fn plot(
    system: &str,
    data_type: &str,
    points: &[db::TelemetryPoint],
    caption: &str,
    unit: &str,
    from: i64,
    to: i64,
) -> Markup {
    let lo = points
        .iter()
        .map(|p| p.min)
        .min()
        .map_or(0.0, telemetry::value);
    let hi = points
        .iter()
        .map(|p| p.max)
        .max()
        .map_or(0.0, telemetry::value);
    // A flat series gets a range around it.
    let (lo, hi) = if hi - lo < 1e-9 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    };
    let x = |ms: i64| LEFT + ((ms - from) as f64 / (to - from) as f64).clamp(0.0, 1.0) * WIDTH;
    let y = |v: f64| TOP + (1.0 - (v - lo) / (hi - lo)).clamp(0.0, 1.0) * HEIGHT;
    let runs = runs(points);
    let label = format!(
        "{caption} of {system} over the last 24 hours: {} points from {lo:.1} to {hi:.1} {unit}",
        points.len()
    );
    let first_tick = (from + TICK_HOURS * 3_600_000 - 1) / (TICK_HOURS * 3_600_000);
    let ticks: Vec<i64> = (first_tick..)
        .map(|k| k * TICK_HOURS * 3_600_000)
        .take_while(|t| *t <= to)
        .collect();
    let bottom = TOP + HEIGHT;
    html! {
        svg.telemetry xmlns="http://www.w3.org/2000/svg" width=(LEFT + WIDTH + RIGHT)
            height=(bottom + BOTTOM) role="img" aria-label=(label) data-type=(data_type)
            font-size="10" fill="#556" {
            title { (label) }
            rect x=(LEFT) y=(TOP) width=(WIDTH) height=(HEIGHT) fill="#f7f9fb" stroke="#ccd" {}
            @for v in [lo, (lo + hi) / 2.0, hi] {
                line x1=(LEFT) y1=(y(v)) x2=(LEFT + WIDTH) y2=(y(v)) stroke="#e3e6ea" {}
                text x=(LEFT - 4.0) y=(y(v)) text-anchor="end" dominant-baseline="middle" {
                    (format!("{v:.1}")) " " (unit)
                }
            }
            @for t in &ticks {
                line x1=(x(*t)) y1=(TOP) x2=(x(*t)) y2=(bottom + 3.0) stroke="#e3e6ea" {}
                text x=(x(*t)) y=(bottom + 14.0) text-anchor="middle" {
                    (time::rfc3339(*t).get(11..16).unwrap_or("")) "Z"
                }
            }
            @for run in &runs {
                @let centre = |p: &db::TelemetryPoint| x(slot_start(p) + STEP_MS / 2);
                @let at = |p: &db::TelemetryPoint, v: i64| format!("{:.1},{:.1}", centre(p), y(telemetry::value(v)));
                @let band: Vec<String> = run.iter().map(|p| at(p, p.max))
                    .chain(run.iter().rev().map(|p| at(p, p.min)))
                    .collect();
                @let mean: Vec<String> = run.iter().map(|p| at(p, p.mean)).collect();
                polygon.band points=(band.join(" ")) fill="#b9d3ec" stroke="#b9d3ec" stroke-width="1" {}
                polyline.mean points=(mean.join(" ")) fill="none" stroke="#05a" stroke-width="1.5" {}
            }
        }
    }
}

/// `points` in runs without a gap (a missing slot breaks the band and the line).
fn runs(points: &[db::TelemetryPoint]) -> Vec<&[db::TelemetryPoint]> {
    points
        .chunk_by(|a, b| slot_start(b) - slot_start(a) <= STEP_MS)
        .collect()
}

/// The start of the slot a point stands for (the database gives its first bucket's start).
fn slot_start(p: &db::TelemetryPoint) -> i64 {
    p.start_ms - p.start_ms.rem_euclid(STEP_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A point of five minutes from `minute` on (its first bucket a minute later), mean `mean`.
    fn point(minute: i64, mean: i64) -> db::TelemetryPoint {
        db::TelemetryPoint {
            start_ms: (minute + 1) * 60_000,
            count: 30,
            min: (mean - 1) * 1000,
            mean: mean * 1000,
            max: (mean + 1) * 1000,
        }
    }

    #[test]
    fn a_series_is_a_band_and_a_mean_line_on_labelled_axes_broken_at_gaps() {
        let points = [
            point(0, 80),
            point(5, 79),
            point(10, 78),
            // Half an hour without telemetry.
            point(45, 70),
            point(50, 71),
        ];
        let svg = plot(
            "fm",
            "battery_soc_percent",
            &points,
            "Battery <charge>",
            "%",
            0,
            WINDOW_MS,
        )
        .into_string();
        assert_eq!(svg.matches("<polygon").count(), 2, "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        // The value axis from the lowest minimum to the highest maximum, the time axis by hours.
        assert!(svg.contains(">69.0 %<"), "{svg}");
        assert!(svg.contains(">81.0 %<"), "{svg}");
        assert!(svg.contains(">06:00Z<"), "{svg}");
        assert!(svg.contains(">18:00Z<"), "{svg}");
        // A point stands at its slot's middle (2.5 minutes into the day: x = 52 + 0.9), not
        // its first bucket's.
        assert!(svg.contains("\"52.9,"), "{svg}");
        // Values are escaped.
        assert!(svg.contains("Battery &lt;charge&gt;"), "{svg}");
        assert!(!svg.contains("<charge>"), "{svg}");
    }
}
