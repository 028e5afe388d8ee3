//! The telemetry API (`reference/clustergate-2.md` §7, `docs/telemetry.md`): its routes,
//! request parameters and answers. Every answer but the pictures' is JSON in the reference's
//! wrapper `{success, data, count, error}`, errors too (400 for a bad parameter, naming it; 404
//! for nothing to show); the pictures' errors are plain text, as the reference's are.

use std::sync::Weak;

use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Json, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::Sample;
use super::{Inner, MAX_IMAGES, lock, pictures};

/// The most records one query returns.
pub(crate) const MAX_LIMIT: i64 = 1000;
/// The records a query returns when it names no `limit`.
pub(crate) const DEFAULT_LIMIT: i64 = 100;

/// The data types, in the order `/api/telemetry/types` lists them.
const TYPES: [&str; 6] = [
    "attitude",
    "complete",
    "position",
    "power",
    "temperature",
    "velocity",
];

type Service = Weak<Inner>;

/// The router of the API, on the service `inner` (answers 503 once it is gone).
pub(super) fn app(inner: Service) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/telemetry", get(telemetry))
        .route("/api/telemetry/latest", get(latest))
        .route("/api/telemetry/types", get(types))
        .route("/api/telemetry/stats", get(stats))
        .route("/api/telemetry/tle", get(tle))
        .route("/api/images/list", get(image_list))
        .route("/api/images", post(images))
        .with_state(inner)
}

/// The reference's wrapper.
#[derive(Debug, Serialize)]
struct ApiResponse<T> {
    success: bool,
    data: Option<T>,
    count: Option<usize>,
    error: Option<String>,
}

/// One record (`TelemetryRecord`).
#[derive(Debug, Serialize)]
struct Record {
    id: String,
    timestamp: String,
    original_timestamp: i64,
    data_type: &'static str,
    data: Value,
    created_at: String,
}

fn ok<T: Serialize>(data: T, count: Option<usize>) -> Response {
    Json(ApiResponse {
        success: true,
        data: Some(data),
        count,
        error: None,
    })
    .into_response()
}

fn fail(status: StatusCode, error: impl Into<String>) -> Response {
    let body = ApiResponse::<()> {
        success: false,
        data: None,
        count: None,
        error: Some(error.into()),
    };
    (status, Json(body)).into_response()
}

fn gone() -> Response {
    fail(
        StatusCode::SERVICE_UNAVAILABLE,
        "the telemetry service is stopping",
    )
}

async fn health(State(s): State<Service>) -> Response {
    let Some(s) = s.upgrade() else { return gone() };
    Json(json!({
        "service": "satellite-telemetry-api",
        "status": "healthy",
        "timestamp": wire::rfc3339(s.clock.now_ms()),
    }))
    .into_response()
}

/// A query's parameters, checked.
struct Filter {
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    data_type: Option<&'static str>,
    limit: usize,
}

impl Filter {
    /// Reads `start_time`, `end_time`, `data_type` and (if `limited`) `limit`; the reference's
    /// older spellings `starttime`, `endtime` and `datatype` are read too. Anything else, a
    /// parameter given twice, or a bad value is an error naming it.
    fn parse(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        limited: bool,
    ) -> Result<Filter, String> {
        let Query(pairs) = query.map_err(|e| format!("bad query string: {e}"))?;
        let mut f = Filter {
            start_ms: None,
            end_ms: None,
            data_type: None,
            limit: DEFAULT_LIMIT as usize,
        };
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in &pairs {
            let name = match key.as_str() {
                "start_time" | "starttime" => "start_time",
                "end_time" | "endtime" => "end_time",
                "data_type" | "datatype" => "data_type",
                "limit" if limited => "limit",
                other => {
                    let known = if limited {
                        "start_time, end_time, data_type, limit"
                    } else {
                        "start_time, end_time, data_type"
                    };
                    return Err(format!("unknown parameter '{other}'; expected {known}"));
                }
            };
            if seen.contains(&name) {
                return Err(format!("parameter '{name}' given twice"));
            }
            seen.push(name);
            match name {
                "start_time" => f.start_ms = Some(instant(name, value)?),
                "end_time" => f.end_ms = Some(instant(name, value)?),
                "data_type" => {
                    f.data_type =
                        Some(TYPES.iter().copied().find(|t| *t == value).ok_or_else(|| {
                            format!(
                                "data_type '{value}' is not a data type; expected one of {}",
                                TYPES.join(", ")
                            )
                        })?)
                }
                _ => {
                    let n: i64 = value.parse().map_err(|_| {
                        format!("limit '{value}' is not an integer (1 to {MAX_LIMIT})")
                    })?;
                    if !(1..=MAX_LIMIT).contains(&n) {
                        return Err(format!("limit {n} is out of range: 1 to {MAX_LIMIT}"));
                    }
                    f.limit = n as usize;
                }
            }
        }
        if let (Some(s), Some(e)) = (f.start_ms, f.end_ms)
            && e < s
        {
            return Err("end_time is before start_time".into());
        }
        Ok(f)
    }

    fn holds(&self, s: &Sample) -> bool {
        self.start_ms.is_none_or(|t| s.t_ms >= t) && self.end_ms.is_none_or(|t| s.t_ms <= t)
    }

    fn types(&self) -> impl Iterator<Item = &'static str> + '_ {
        TYPES
            .into_iter()
            .filter(|t| self.data_type.is_none_or(|d| d == *t))
    }
}

/// An RFC 3339 time with its offset, as ms since the Unix epoch.
fn instant(name: &str, value: &str) -> Result<u64, String> {
    chrono::DateTime::parse_from_rfc3339(value)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .ok_or_else(|| {
            format!(
                "{name} '{value}' is not an RFC 3339 time after 1970 (e.g. 2026-12-03T10:00:00Z)"
            )
        })
}

/// `GET /api/telemetry`: the records in the time range, newest first, at most `limit`.
async fn telemetry(
    State(s): State<Service>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let f = match Filter::parse(query, true) {
        Ok(f) => f,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    let Some(s) = s.upgrade() else { return gone() };
    let store = lock(&s.store);
    let records: Vec<Record> = store
        .samples()
        .iter()
        .rev()
        .filter(|x| f.holds(x))
        .flat_map(|x| f.types().map(move |t| record(x, t)))
        .take(f.limit)
        .collect();
    let n = records.len();
    ok(records, Some(n))
}

/// `GET /api/telemetry/latest`: the newest record of each type (or of `data_type`) in the
/// time range, if any.
async fn latest(
    State(s): State<Service>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let f = match Filter::parse(query, false) {
        Ok(f) => f,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    let Some(s) = s.upgrade() else { return gone() };
    let store = lock(&s.store);
    let records: Vec<Record> = match store.samples().iter().rev().find(|x| f.holds(x)) {
        Some(x) => f.types().map(|t| record(x, t)).collect(),
        None => Vec::new(),
    };
    let n = records.len();
    ok(records, Some(n))
}

/// `GET /api/telemetry/types`.
async fn types(State(s): State<Service>) -> Response {
    let Some(s) = s.upgrade() else { return gone() };
    let empty = lock(&s.store).samples().is_empty();
    let list: Vec<&str> = if empty { Vec::new() } else { TYPES.to_vec() };
    let n = list.len();
    ok(list, Some(n))
}

/// `GET /api/telemetry/stats`.
async fn stats(State(s): State<Service>) -> Response {
    let Some(s) = s.upgrade() else { return gone() };
    let store = lock(&s.store);
    let samples = store.samples();
    let each = samples.len();
    let types = if each == 0 { 0 } else { TYPES.len() };
    let breakdown: serde_json::Map<String, Value> = TYPES
        .iter()
        .filter(|_| each > 0)
        .map(|t| (t.to_string(), json!(each)))
        .collect();
    ok(
        json!({
            "total_records": each * types,
            "data_types_count": types,
            "earliest_timestamp": samples.front().map(|x| wire::rfc3339(x.t_ms)),
            "latest_timestamp": samples.back().map(|x| wire::rfc3339(x.t_ms)),
            "data_type_breakdown": breakdown,
        }),
        None,
    )
}

/// `GET /api/telemetry/tle`: the element set sampled from, as text.
async fn tle(State(s): State<Service>) -> Response {
    let Some(s) = s.upgrade() else { return gone() };
    match lock(&s.elements).as_ref() {
        Some(c) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            super::three_lines(&c.elements) + "\n",
        )
            .into_response(),
        None => fail(StatusCode::NOT_FOUND, "no element set onboard yet"),
    }
}

/// `GET /api/images/list`: the pictures' names, oldest first.
async fn image_list(State(s): State<Service>) -> Response {
    let Some(s) = s.upgrade() else { return gone() };
    let names = pictures(&s.dir.join("images"));
    let n = names.len();
    ok(names, Some(n))
}

/// The body of `POST /api/images`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageRequest {
    images: Option<Vec<String>>,
    limit: Option<i64>,
}

/// `POST /api/images`: one picture named, as `image/png`; several, as a stored ZIP; none named,
/// the newest `limit` (at most [`MAX_IMAGES`]) as a ZIP. Errors in plain text.
async fn images(
    State(s): State<Service>,
    body: Result<Json<ImageRequest>, JsonRejection>,
) -> Response {
    let text = |status: StatusCode, m: String| (status, m).into_response();
    let Json(request) = match body {
        Ok(b) => b,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
    };
    let limit = match request.limit {
        None => MAX_IMAGES,
        Some(n) if (1..=MAX_IMAGES as i64).contains(&n) => n as usize,
        Some(n) => {
            let m = format!("limit {n} is out of range: 1 to {MAX_IMAGES}");
            return text(StatusCode::BAD_REQUEST, m);
        }
    };
    let Some(s) = s.upgrade() else { return gone() };
    let dir = s.dir.join("images");
    let held = pictures(&dir);
    let named_one = request.images.as_ref().is_some_and(|n| n.len() == 1);
    let wanted: Vec<String> = match request.images {
        Some(names) if !names.is_empty() => {
            if names.len() > MAX_IMAGES {
                let m = format!("at most {MAX_IMAGES} images a request, not {}", names.len());
                return text(StatusCode::BAD_REQUEST, m);
            }
            if let Some(missing) = names.iter().find(|n| !held.contains(n)) {
                return text(StatusCode::NOT_FOUND, format!("image not found: {missing}"));
            }
            names
        }
        _ => held.iter().rev().take(limit).rev().cloned().collect(),
    };
    let mut members = Vec::new();
    for name in wanted {
        match std::fs::read(dir.join(&name)) {
            Ok(bytes) => members.push((name, bytes)),
            Err(e) => {
                let m = format!("image {name} cannot be read: {e}");
                return text(StatusCode::NOT_FOUND, m);
            }
        }
    }
    if let ([(_, png)], true) = (members.as_slice(), named_one) {
        return ([(header::CONTENT_TYPE, "image/png")], png.clone()).into_response();
    }
    match super::zip::stored(&members) {
        Ok(zip) => ([(header::CONTENT_TYPE, "application/zip")], zip).into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The record of `data_type` of sample `s`.
fn record(s: &Sample, data_type: &'static str) -> Record {
    let xyz = |v: [f64; 3]| json!({"x": v[0], "y": v[1], "z": v[2]});
    let attitude = || {
        let [w, x, y, z] = s.quaternion;
        json!({
            "quaternion": {"w": w, "x": x, "y": y, "z": z},
            "angular_velocity": xyz(s.angular_velocity),
        })
    };
    let temperature = || {
        let sensors: serde_json::Map<String, Value> = s
            .temperatures_c
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("sensor{i}"), json!(t)))
            .collect();
        Value::Object(sensors)
    };
    let power = || serde_json::to_value(&s.power).unwrap_or(Value::Null);
    let data = match data_type {
        "position" => xyz(s.position_km),
        "velocity" => xyz(s.velocity_km_s),
        "attitude" => attitude(),
        "temperature" => temperature(),
        "power" => power(),
        _ => json!({
            "timestamp": wire::rfc3339(s.t_ms),
            "position": xyz(s.position_km),
            "velocity": xyz(s.velocity_km_s),
            "attitude": attitude(),
            "power": power(),
            "temperature": temperature(),
            "tle": s.tle,
        }),
    };
    let index = TYPES.iter().position(|t| *t == data_type).unwrap_or(0) as u128;
    Record {
        id: uuid_of((u128::from(s.t_ms) << 8) | index),
        timestamp: wire::rfc3339(s.t_ms),
        original_timestamp: (s.t_ms / 1000) as i64,
        data_type,
        data,
        created_at: wire::rfc3339(s.t_ms),
    }
}

/// A version-8 (custom) UUID holding `n`: a record's stable id.
fn uuid_of(n: u128) -> String {
    let v = (n & !(0xf << 76) & !(0x3 << 62)) | (0x8 << 76) | (0x2 << 62);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}
