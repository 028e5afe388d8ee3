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
            let propagator = self.propagator()?;
            return Err(match propagator.state_teme(until) {
                Err(e) => orbit_error(&self.name, &e),
                Ok(_) => ApiError::Unprocessable(format!(
                    "system '{}' has no contact plan beyond {}",
                    self.name,
                    rfc3339(cached.covers)
                )),
            });
        }
        Ok(open_between(&cached.plan, now, until))
    }

    /// Every window of the plan still open at `now`: up to [`PLAN_HORIZON_S`] ahead, or as far
    /// as the elements are valid.
    pub(crate) async fn upcoming(self: &Arc<Self>, now: Epoch) -> Result<Vec<Window>, ApiError> {
        let cached = self.plan(now).await?;
        Ok(open_between(&cached.plan, now, cached.covers))
    }

    /// The stations, with their rates.
    pub(crate) fn stations(&self) -> &[orbit::StationLink] {
        &self.orbit.stations
    }

    /// The propagator, or the error that makes every prediction impossible.
    fn propagator(&self) -> Result<&Propagator, ApiError> {
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
        let limit_s = PropagatorConfig::STANDARD.max_epoch_distance_days * 86_400.0;
        let epoch = propagator.tle().epoch;
        let (first, last) = (epoch.plus_seconds(-limit_s), epoch.plus_seconds(limit_s));
        if now < first || now > last {
            // Propagating at `now` says why, in orbit's words.
            if let Err(e) = propagator.state_teme(now) {
                return Err(orbit_error(&self.name, &e));
            }
        }
        let start = later(now.plus_seconds(-PLAN_MARGIN_S), first);
        let end = earlier(now.plus_seconds(PLAN_HORIZON_S + PLAN_MARGIN_S), last);
        let covers = earlier(now.plus_seconds(PLAN_HORIZON_S), last);
        let this = self.clone();
        let plan = tokio::task::spawn_blocking(move || this.orbit.contact_plan(start, end))
            .await
            .map_err(|e| ApiError::internal(format!("contact plan task failed: {e}")))?
            .map_err(|e| orbit_error(&self.name, &e))?;
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
