//! Systems and what they hold: `/systems`, and per system its `passes`, ground `track`, uplink
//! `queue`, `volumes` and the files of a volume (the ground's mirror of them).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::convert::{
    self, catalogue_image, queue as queue_view, track_point, volume, volume_file,
};
use super::{J, P, Page, Q};
use crate::auth::{self, AuthUser, Operator, Role};
use crate::error::ApiError;
use crate::passes::{self, HOURS_MAX, Sky, rfc3339};
use crate::{Ground, db, declared, elements, queue as uplink_queue, telemetry, time};

/// `hours` of the passes route when not given (at most [`HOURS_MAX`]).
const HOURS_DEFAULT: u32 = 24;
/// `minutes` and `step_s` of the track route when not given, and their bounds.
const TRACK_MINUTES_DEFAULT: u32 = 90;
const TRACK_MINUTES_MAX: u32 = 1440;
const TRACK_STEP_DEFAULT: u32 = 30;
const TRACK_STEP_MAX: u32 = 3600;
/// Points in one ground track, at most.
const TRACK_POINTS_MAX: u32 = 5000;

/// One configured system: its declaration, what its agent reported in its last hello (the
/// catalogue with ids, the engine report) and the drift between the two; before any hello, the
/// declared catalogue and no drift.
async fn system_view(
    g: &Ground,
    name: &str,
    viewer: Option<&str>,
) -> Result<api::System, ApiError> {
    let declared = declared::declaration(g, name);
    let link = link_owner(g, name, viewer).await?;
    let elements = elements::in_use(g, name)
        .await?
        .as_ref()
        .map(elements::view);
    Ok(match db::system(g.db(), name).await? {
        Some(s) => {
            let catalogue: Vec<wire::BaseImage> = db::json_or_default(&s.catalogue);
            let engine = s.engine_report();
            api::System {
                name: name.to_string(),
                platform: Some(s.platform),
                last_seen: Some(time::rfc3339(s.last_seen)),
                catalogue: catalogue.iter().map(catalogue_image).collect(),
                declared: convert::declaration(&declared),
                drift: engine
                    .as_ref()
                    .map(|e| {
                        declared::drift(&declared, e)
                            .iter()
                            .map(convert::drift)
                            .collect()
                    })
                    .unwrap_or_default(),
                engine: engine.as_ref().map(convert::engine_report),
                inventory: inventory(g, name, viewer).await?,
                approval: g.approval(name).as_str().to_string(),
                link,
                elements,
            }
        }
        None => api::System {
            name: name.to_string(),
            platform: None,
            last_seen: None,
            catalogue: wire::of_description(&declared)
                .iter()
                .map(catalogue_image)
                .collect(),
            declared: convert::declaration(&declared),
            engine: None,
            drift: Vec::new(),
            inventory: None,
            approval: g.approval(name).as_str().to_string(),
            link,
            elements,
        },
    })
}

/// Who holds `name`'s link lease, as operators see it (`None` for a tenant: replicas are the
/// operator's business).
async fn link_owner(
    g: &Ground,
    name: &str,
    viewer: Option<&str>,
) -> Result<Option<api::LinkOwner>, ApiError> {
    if viewer.is_some() {
        return Ok(None);
    }
    let owners = crate::lease::owners(g.core()).await?;
    Ok(owners.get(name).map(|o| api::LinkOwner {
        replica: o.replica.clone(),
        generation: u64::try_from(o.generation).unwrap_or(0),
        expires_at: time::rfc3339(o.expires_ms),
        live: o.live,
    }))
}

/// How the mirror compared with the system's last summary; `None` before any.
/// Whose view `user` gets: its own as a tenant, everyone's (`None`) as an operator.
async fn tenant_view(g: &Ground, user: &str) -> Result<Option<String>, ApiError> {
    Ok((auth::role(g, user).await? != Role::Operator).then(|| user.to_string()))
}

/// The mirror's state as `viewer` may see it (`None`: an operator).
async fn inventory(
    g: &Ground,
    name: &str,
    viewer: Option<&str>,
) -> Result<Option<api::Inventory>, ApiError> {
    let s = crate::mirror::state_seen_by(&g.core, name, viewer).await?;
    Ok(s.compared_at.map(|at| api::Inventory {
        compared_at: time::rfc3339(at),
        objects: s.objects,
        mirrored_objects: s.mirrored,
        in_sync: s.drift.is_empty(),
        drift: s.drift.clone(),
        drift_since: time::rfc3339_opt(s.drift_since),
        repaired: s.repaired.clone(),
        repaired_at: time::rfc3339_opt(s.repaired_at),
    }))
}

pub(super) async fn list(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
) -> Result<Json<api::SystemList>, ApiError> {
    let viewer = tenant_view(&g, &user).await?;
    let mut systems = Vec::new();
    for name in g.system_names() {
        systems.push(system_view(&g, name, viewer.as_deref()).await?);
    }
    Ok(Json(api::SystemList { systems }))
}

/// `GET /api/v1/systems/{system}`.
pub(super) async fn one(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(system): P<String>,
) -> Result<Json<api::System>, ApiError> {
    known_system(&g, &system)?;
    let viewer = tenant_view(&g, &user).await?;
    Ok(Json(system_view(&g, &system, viewer.as_deref()).await?))
}

/// `PUT /api/v1/systems/{system}/elements`: a newer element set for the system, sent on its
/// own (operators only).
pub(super) async fn send_elements(
    State(g): State<Ground>,
    Operator(by): Operator,
    P(system): P<String>,
    J(body): J<api::SendElements>,
) -> Result<Json<api::SystemElements>, ApiError> {
    Ok(Json(elements::send(&g, &system, &by, &body.tle).await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct PassesQuery {
    hours: Option<u32>,
}

/// `GET /api/v1/systems/{system}/passes?hours=24`.
pub(super) async fn passes(
    State(g): State<Ground>,
    _user: AuthUser,
    P(system): P<String>,
    Q(q): Q<PassesQuery>,
) -> Result<Json<api::Passes>, ApiError> {
    let hours = q.hours.unwrap_or(HOURS_DEFAULT);
    if !(1..=HOURS_MAX).contains(&hours) {
        return Err(ApiError::bad(format!("hours must be 1 to {HOURS_MAX}")));
    }
    let now = g.now();
    let (always_in_contact, passes, eclipses) = match passes::sky(&g, &system)? {
        Sky::AlwaysInContact { .. } => (true, Vec::new(), Vec::new()),
        Sky::Orbit(f) => {
            let until = now.plus_seconds(f64::from(hours) * 3600.0);
            let windows = f.windows(now, until).await?;
            let f = f.clone();
            let name = system.clone();
            let eclipses = tokio::task::spawn_blocking(move || {
                passes::eclipses_between(&name, f.propagator()?, now, until)
            })
            .await
            .map_err(|e| ApiError::internal(format!("eclipse task failed: {e}")))??;
            (
                false,
                windows.iter().map(passes::api_pass).collect(),
                eclipses,
            )
        }
    };
    Ok(Json(api::Passes {
        system,
        generated_at: rfc3339(now),
        hours,
        always_in_contact,
        passes,
        eclipses,
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct TrackQuery {
    minutes: Option<u32>,
    step_s: Option<u32>,
}

/// `GET /api/v1/systems/{system}/track?minutes=90&step_s=30`.
pub(super) async fn track(
    State(g): State<Ground>,
    _user: AuthUser,
    P(system): P<String>,
    Q(q): Q<TrackQuery>,
) -> Result<Json<api::Track>, ApiError> {
    let minutes = q.minutes.unwrap_or(TRACK_MINUTES_DEFAULT);
    let step_s = q.step_s.unwrap_or(TRACK_STEP_DEFAULT);
    if !(1..=TRACK_MINUTES_MAX).contains(&minutes) || !(1..=TRACK_STEP_MAX).contains(&step_s) {
        return Err(ApiError::bad(format!(
            "minutes must be 1 to {TRACK_MINUTES_MAX} and step_s 1 to {TRACK_STEP_MAX}"
        )));
    }
    if minutes * 60 / step_s >= TRACK_POINTS_MAX {
        return Err(ApiError::bad(format!(
            "at most {TRACK_POINTS_MAX} points: ask for fewer minutes or a longer step"
        )));
    }
    let now = g.now();
    let (always_in_contact, points) = match passes::sky(&g, &system)? {
        Sky::AlwaysInContact { .. } => (true, Vec::new()),
        Sky::Orbit(f) => {
            let points = passes::track(f, now, minutes, step_s)?
                .iter()
                .map(track_point)
                .collect();
            (false, points)
        }
    };
    Ok(Json(api::Track {
        system,
        generated_at: rfc3339(now),
        always_in_contact,
        points,
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct TelemetryQuery {
    data_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The most data types one telemetry request names.
const TELEMETRY_TYPES_MAX: usize = 32;
/// The window of the telemetry route when `from` is not given, ms: a day.
const TELEMETRY_WINDOW_DEFAULT_MS: i64 = 86_400_000;

/// `GET /api/v1/systems/{system}/telemetry?data_type=a,b&from=…&to=…`: the system's
/// downlinked telemetry digests (any signed-in user: satellite telemetry, not a tenant's).
pub(super) async fn telemetry(
    State(g): State<Ground>,
    _user: AuthUser,
    P(system): P<String>,
    Q(q): Q<TelemetryQuery>,
) -> Result<Json<api::Telemetry>, ApiError> {
    known_system(&g, &system)?;
    let mut types: Vec<String> = Vec::new();
    for name in q.data_type.as_deref().unwrap_or("").split(',') {
        let name = name.trim();
        if name.is_empty() || types.iter().any(|t| t == name) {
            continue;
        }
        wire::check_data_type(name).map_err(|e| ApiError::bad(format!("data_type: {e}")))?;
        if types.len() == TELEMETRY_TYPES_MAX {
            return Err(ApiError::bad(format!(
                "data_type names more than {TELEMETRY_TYPES_MAX} data types"
            )));
        }
        types.push(name.to_string());
    }
    let to_ms = match q.to.as_deref() {
        Some(t) => instant("to", t)?,
        None => g.now().unix_millis(),
    };
    let from_ms = match q.from.as_deref() {
        Some(t) => instant("from", t)?,
        None => to_ms.saturating_sub(TELEMETRY_WINDOW_DEFAULT_MS),
    };
    if from_ms >= to_ms {
        return Err(ApiError::bad(format!(
            "from {} is not before to {}",
            time::rfc3339(from_ms),
            time::rfc3339(to_ms)
        )));
    }
    if to_ms - from_ms > telemetry::MAX_WINDOW_MS {
        return Err(ApiError::bad(format!(
            "from {} to {} spans more than {} days: ask for a shorter window",
            time::rfc3339(from_ms),
            time::rfc3339(to_ms),
            telemetry::MAX_WINDOW_MS / 86_400_000
        )));
    }
    let step_ms = telemetry::step_for(to_ms - from_ms);
    let window = db::TelemetryWindow {
        from_ms,
        to_ms,
        step_ms,
    };
    let series = telemetry::series(g.core(), &system, &types, window).await?;
    Ok(Json(api::Telemetry {
        system,
        from: time::rfc3339(from_ms),
        to: time::rfc3339(to_ms),
        step_s: u64::try_from(step_ms / 1000).unwrap_or(0),
        series,
    }))
}

/// A query parameter's RFC 3339 time (with its offset), ms since the Unix epoch; a 400 naming
/// the parameter and what is wrong with it (the reading `scheduled_time` gets).
fn instant(name: &str, value: &str) -> Result<i64, ApiError> {
    crate::operation::rfc3339_ms(value)
        .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX))
        .map_err(|e| ApiError::bad(format!("{name}: {e}")))
}

/// `GET /api/v1/systems/{system}/queue`.
pub(super) async fn queue(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(system): P<String>,
) -> Result<Json<api::Queue>, ApiError> {
    // An operator sees every tenant's transfers.
    let operator = auth::role(&g, &user).await? == Role::Operator;
    let v = uplink_queue::view(&g, &system, (!operator).then_some(user.as_str())).await?;
    Ok(Json(queue_view(system, &v)))
}

fn known_system(g: &Ground, system: &str) -> Result<(), ApiError> {
    if g.system(system).is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("system '{system}' not found")))
    }
}

pub(super) async fn volumes(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(system): P<String>,
) -> Result<Json<api::VolumeList>, ApiError> {
    known_system(&g, &system)?;
    let volumes = db::volumes(g.db(), &system, &user)
        .await?
        .into_iter()
        .map(|(name, files, bytes)| volume(name, files, bytes))
        .collect();
    Ok(Json(api::VolumeList { volumes }))
}

pub(super) async fn volume_files(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P((system, volume)): P<(String, String)>,
    Q(page): Q<Page>,
) -> Result<Json<api::VolumeFileList>, ApiError> {
    known_system(&g, &system)?;
    let (limit, offset) = page.bounds()?;
    let files = db::volume_files(g.db(), &system, &user, &volume, limit, offset)
        .await?
        .into_iter()
        .map(volume_file)
        .collect();
    Ok(Json(api::VolumeFileList { files }))
}
