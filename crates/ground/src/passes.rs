//! Where each system flies: its contact plan (passes over its stations, with byte capacity),
//! cached for a few minutes, and its ground track (for the `passes` and `track` routes, the uplink
//! ETAs of `queue` and the dashboard).
//!
//! `orbit` never reads a clock: every prediction here starts at [`Ground::now`]. A system without
//! an orbit (the Engineering Model) is always in contact and has no passes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use orbit::{
    ContactPlan, Epoch, PropagationError, PropagationErrorKind, Propagator, PropagatorConfig,
    Window,
};

use crate::config::SystemLink;
use crate::error::ApiError;
use crate::{Ground, time};

/// How long a computed contact plan is reused before it is computed again, seconds.
const PLAN_TTL_S: f64 = 300.0;
/// How far before now and past its horizon a plan is computed, seconds: longer than any
/// low-orbit pass, so a pass in progress now, or one that starts before the horizon, is whole.
const PLAN_MARGIN_S: f64 = 3600.0;
/// The most `hours` ahead the passes route lists: the contact plan reaches that far.
pub(crate) const HOURS_MAX: u32 = 168;
/// How far ahead a contact plan reaches, seconds: the longest `hours` the passes route takes
/// for as long as the plan is reused. Uplink ETAs look as far.
const PLAN_HORIZON_S: f64 = HOURS_MAX as f64 * 3600.0 + PLAN_TTL_S;

/// Every configured system's sky: always in contact, or an orbit with its stations.
#[derive(Debug)]
pub(crate) struct Orbits {
    systems: BTreeMap<String, Sky>,
}

/// How a system is reached.
#[derive(Debug)]
pub(crate) enum Sky {
    /// No orbit (the Engineering Model): the link is there whenever it is up, at `rate_bits_per_sec`
    /// (unpaced if `None`).
    AlwaysInContact { rate_bits_per_sec: Option<u64> },
    /// A flying system: contact only during passes over its stations.
    Orbit(Arc<Flying>),
}

/// A flying system: its orbit and stations, their propagator and its cached contact plan.
#[derive(Debug)]
pub(crate) struct Flying {
    name: String,
    /// The elements may be unusable (decayed at epoch, invalid): every prediction then says why.
    propagator: Result<Propagator, PropagationError>,
    orbit: orbit::SystemOrbit,
    cache: Mutex<Option<Arc<Cached>>>,
}

/// A contact plan computed at `computed_at`, whole from then until `covers`.
#[derive(Debug)]
struct Cached {
    computed_at: Epoch,
    covers: Epoch,
    plan: ContactPlan,
}

impl Orbits {
    pub(crate) fn new(systems: &[SystemLink]) -> Orbits {
        let systems = systems
            .iter()
            .map(|s| {
                let sky = match &s.orbit {
                    None => Sky::AlwaysInContact {
                        rate_bits_per_sec: s.rate_bits_per_sec,
                    },
                    Some(o) => {
                        let propagator = Propagator::new(&o.tle);
                        if let Err(e) = &propagator {
                            tracing::warn!(system = %s.name, error = %e, "the system's elements cannot be propagated");
                        }
                        Sky::Orbit(Arc::new(Flying {
                            name: s.name.clone(),
                            propagator,
                            orbit: o.clone(),
                            cache: Mutex::new(None),
                        }))
                    }
                };
                (s.name.clone(), sky)
            })
            .collect();
        Orbits { systems }
    }

    /// The system's sky; `None` for a system the ground does not know.
    pub(crate) fn sky(&self, system: &str) -> Option<&Sky> {
        self.systems.get(system)
    }
}

impl Flying {
    /// The windows still open at `now` that open before `until`, in AOS order (a pass in
    /// progress at `now` with its real AOS). Fails if the elements are not valid until `until`.
    pub(crate) async fn windows(
        self: &Arc<Self>,
        now: Epoch,
        until: Epoch,
    ) -> Result<Vec<Window>, ApiError> {
        let cached = self.plan(now).await?;
        if until > cached.covers {
            return Err(beyond(&self.name, self.propagator()?, until, cached.covers));
        }
        Ok(open_between(&cached.plan, now, until))
    }

    /// Every window of the plan still open at `now`: up to [`PLAN_HORIZON_S`] ahead, or as far
    /// as the elements are valid.
    pub(crate) async fn upcoming(self: &Arc<Self>, now: Epoch) -> Result<Vec<Window>, ApiError> {
        let cached = self.plan(now).await?;
        Ok(open_between(&cached.plan, now, cached.covers))
    }

    /// The system's orbit: its elements and stations.
    pub(crate) fn orbit(&self) -> &orbit::SystemOrbit {
        &self.orbit
    }

    /// The stations, with their rates.
    pub(crate) fn stations(&self) -> &[orbit::StationLink] {
        &self.orbit.stations
    }

    /// The propagator, or the error that makes every prediction impossible.
    pub(crate) fn propagator(&self) -> Result<&Propagator, ApiError> {
        self.propagator
            .as_ref()
            .map_err(|e| orbit_error(&self.name, e))
    }

    /// The plan for `now`: the cached one while it is fresh, else a new one (computed off the
    /// async threads) from [`PLAN_MARGIN_S`] before `now` to [`PLAN_HORIZON_S`] after, both
    /// clipped to where the elements are valid. One plan per system, so every answer (passes,
    /// ETAs, the dashboard) names the same windows; [`orbit::SystemOrbit::contact_plan`]
    /// computes it, as it computes the windows of the link endpoints and the emulator.
    async fn plan(self: &Arc<Self>, now: Epoch) -> Result<Arc<Cached>, ApiError> {
        if let Some(c) = self.cache.lock().ok().and_then(|c| fresh(c.as_ref(), now)) {
            return Ok(c);
        }
        let propagator = self.propagator()?;
        let span = plan_span(propagator, now).map_err(|e| orbit_error(&self.name, &e))?;
        let this = self.clone();
        let plan =
            tokio::task::spawn_blocking(move || this.orbit.contact_plan(span.start, span.end))
                .await
                .map_err(|e| ApiError::internal(format!("contact plan task failed: {e}")))?
                .map_err(|e| orbit_error(&self.name, &e))?;
        let covers = span.covers;
        let cached = Arc::new(Cached {
            computed_at: now,
            covers,
            plan,
        });
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some(cached.clone());
        }
        Ok(cached)
    }
}

/// What a contact plan made at `now` spans: from [`PLAN_MARGIN_S`] before `now` to
/// [`PLAN_HORIZON_S`] after it, clipped to where the elements are valid.
struct PlanSpan {
    start: Epoch,
    end: Epoch,
    /// Until when the plan holds every window that opens: its horizon, or the elements' limit.
    covers: Epoch,
}

/// The span of a plan made at `now`; an error (in orbit's words) if the elements are not valid
/// at `now`.
fn plan_span(propagator: &Propagator, now: Epoch) -> Result<PlanSpan, PropagationError> {
    let limit_s = PropagatorConfig::STANDARD.max_epoch_distance_days * 86_400.0;
    let epoch = propagator.tle().epoch;
    let (first, last) = (epoch.plus_seconds(-limit_s), epoch.plus_seconds(limit_s));
    if now < first || now > last {
        propagator.state_teme(now)?;
    }
    Ok(PlanSpan {
        start: later(now.plus_seconds(-PLAN_MARGIN_S), first),
        end: earlier(now.plus_seconds(PLAN_HORIZON_S + PLAN_MARGIN_S), last),
        covers: earlier(now.plus_seconds(PLAN_HORIZON_S), last),
    })
}

/// The passes and eclipses of a system from `now` for `hours`, as the API's passes route
/// answers them: the same plan span, windows and rounding, so that a prediction made without a
/// server (`orbitdock passes --systems-file`) agrees with the ground's. `orbit: None` is a
/// system always in contact. Blocking: it propagates the orbit. The error says why the elements
/// cannot give the passes asked for, naming the system.
pub fn predict_passes(
    system: &str,
    orbit: Option<&orbit::SystemOrbit>,
    now: Epoch,
    hours: u32,
) -> Result<api::Passes, String> {
    predict(system, orbit, now, hours).map_err(|e| match e {
        ApiError::Unprocessable(m) => m,
        other => format!("{other:?}"),
    })
}

fn predict(
    system: &str,
    orbit: Option<&orbit::SystemOrbit>,
    now: Epoch,
    hours: u32,
) -> Result<api::Passes, ApiError> {
    let (always_in_contact, passes, eclipses) = match orbit {
        None => (true, Vec::new(), Vec::new()),
        Some(o) => {
            let propagator = Propagator::new(&o.tle).map_err(|e| orbit_error(system, &e))?;
            let span = plan_span(&propagator, now).map_err(|e| orbit_error(system, &e))?;
            let until = now.plus_seconds(f64::from(hours) * 3600.0);
            if until > span.covers {
                return Err(beyond(system, &propagator, until, span.covers));
            }
            let plan = o
                .contact_plan(span.start, span.end)
                .map_err(|e| orbit_error(system, &e))?;
            let passes = open_between(&plan, now, until)
                .iter()
                .map(api_pass)
                .collect();
            (
                false,
                passes,
                eclipses_between(system, &propagator, now, until)?,
            )
        }
    };
    Ok(api::Passes {
        system: system.to_string(),
        generated_at: rfc3339(now),
        hours,
        always_in_contact,
        passes,
        eclipses,
    })
}

/// The eclipses under way at `now` or beginning before `until`, as the API writes them (an
/// eclipse in progress at `now` with its real entry, one running past `until` with its real
/// exit: the search reaches a period to either side).
pub(crate) fn eclipses_between(
    system: &str,
    propagator: &Propagator,
    now: Epoch,
    until: Epoch,
) -> Result<Vec<api::EclipseInterval>, ApiError> {
    // A period to either side, within where the elements are valid.
    let pad = propagator.period_s();
    let limit_s = PropagatorConfig::STANDARD.max_epoch_distance_days * 86_400.0;
    let epoch = propagator.tle().epoch;
    let start = later(now.plus_seconds(-pad), epoch.plus_seconds(-limit_s));
    let end = earlier(until.plus_seconds(pad), epoch.plus_seconds(limit_s));
    let found = orbit::eclipses(propagator, start, end).map_err(|e| orbit_error(system, &e))?;
    Ok(found
        .iter()
        .filter(|e| e.penumbra_exit > now && e.penumbra_entry < until)
        .map(|e| api::EclipseInterval {
            penumbra_entry: rfc3339(e.penumbra_entry),
            umbra_entry: e.umbra_entry.map(rfc3339),
            umbra_exit: e.umbra_exit.map(rfc3339),
            penumbra_exit: rfc3339(e.penumbra_exit),
            duration_s: (e.penumbra_exit.seconds_since(e.penumbra_entry) * 1000.0).round() / 1000.0,
        })
        .collect())
}

/// A window as the API writes it: times to the millisecond, elevation to the hundredth.
pub(crate) fn api_pass(w: &Window) -> api::Pass {
    api::Pass {
        station: w.station.clone(),
        aos: rfc3339(w.aos),
        los: rfc3339(w.los),
        duration_s: (w.los.seconds_since(w.aos) * 1000.0).round() / 1000.0,
        max_elevation_deg: (w.max_elevation_deg * 100.0).round() / 100.0,
        uplink_bps: w.uplink_bps,
        downlink_bps: w.downlink_bps,
        up_bytes: w.up_bytes,
        down_bytes: w.down_bytes,
    }
}

/// Why no plan reaches `until`: the elements end before it, or the plan's horizon does.
fn beyond(system: &str, propagator: &Propagator, until: Epoch, covers: Epoch) -> ApiError {
    match propagator.state_teme(until) {
        Err(e) => orbit_error(system, &e),
        Ok(_) => ApiError::Unprocessable(format!(
            "system '{system}' has no contact plan beyond {}",
            rfc3339(covers)
        )),
    }
}

/// The windows of `plan` still open at `now` that open before `until`.
fn open_between(plan: &ContactPlan, now: Epoch, until: Epoch) -> Vec<Window> {
    plan.windows()
        .iter()
        .filter(|w| w.los > now && w.aos < until)
        .cloned()
        .collect()
}

fn earlier(a: Epoch, b: Epoch) -> Epoch {
    if a < b { a } else { b }
}

fn later(a: Epoch, b: Epoch) -> Epoch {
    if a > b { a } else { b }
}

/// The cached plan if it was computed less than [`PLAN_TTL_S`] before `now`.
fn fresh(c: Option<&Arc<Cached>>, now: Epoch) -> Option<Arc<Cached>> {
    let c = c?;
    let age = now.seconds_since(c.computed_at);
    (0.0..PLAN_TTL_S).contains(&age).then(|| c.clone())
}

/// A propagation failure as the API says it: 422, naming the system and what to do.
pub(crate) fn orbit_error(system: &str, e: &PropagationError) -> ApiError {
    ApiError::Unprocessable(match e.kind() {
        PropagationErrorKind::EpochTooFar => format!(
            "the elements of system '{system}' are too old (or too new) for the time asked about: {e}; give the system a fresh TLE"
        ),
        PropagationErrorKind::Decayed => {
            format!("the orbit of system '{system}' has decayed according to its elements: {e}")
        }
        _ => format!("the elements of system '{system}' cannot be propagated: {e}"),
    })
}

/// An instant as the API writes it.
pub(crate) fn rfc3339(t: Epoch) -> String {
    time::rfc3339(t.unix_millis())
}

/// The system's sky, or 404 for a system the ground does not know.
pub(crate) fn sky<'g>(g: &'g Ground, system: &str) -> Result<&'g Sky, ApiError> {
    match (g.system(system), g.orbits().sky(system)) {
        (Some(_), Some(sky)) => Ok(sky),
        _ => Err(ApiError::not_found(format!("system '{system}' not found"))),
    }
}

/// The sub-satellite points from `now` for `minutes`, every `step_s` seconds.
pub(crate) fn track(
    f: &Flying,
    now: Epoch,
    minutes: u32,
    step_s: u32,
) -> Result<Vec<orbit::TrackPoint>, ApiError> {
    let propagator = f.propagator()?;
    let end = now.plus_seconds(f64::from(minutes) * 60.0);
    orbit::ground_track(propagator, now, end, f64::from(step_s))
        .map_err(|e| orbit_error(&f.name, &e))
}
