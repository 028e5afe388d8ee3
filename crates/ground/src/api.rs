//! The HTTP API (`docs/api.md`): the router and its handlers.
//!
//! Handlers check the caller (the [`AuthUser`] extractor), call into the database, executor and
//! upload modules, and answer with the body types of the `api` crate (shared with the CLI), so
//! the JSON has one definition. Every failure is an [`ApiError`].

use std::io;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Multipart, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use crate::auth::{self, AuthUser};
use crate::config::limits;
use crate::db::{self, ExecutionRow, FileRow, HistoryEntry, OperationRow, TaskRow};
use crate::error::ApiError;
use crate::executor;
use crate::operation::{self, Diagnostic};
use crate::preflight_check::PreflightFinding;
use crate::{Ground, dashboard, preflight_check, time, upload};
use crate::{passes, queue};
use wire::names::{NamespaceName, NamespacePath};

/// The whole HTTP surface.
pub(crate) fn router(ground: Ground) -> Router {
    let api = Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/namespaces", get(list_namespaces).post(create_namespace))
        .route(
            "/namespaces/{ns}/files",
            get(list_files)
                .post(upload_files)
                .layer(DefaultBodyLimit::max(limits::UPLOAD_BODY)),
        )
        .route("/namespaces/{ns}/files/{*path}", get(read_file))
        .route("/operations", get(list_operations).post(apply_operation))
        .route("/operations/validate", post(validate_operation))
        .route("/operations/{ns}/{id}", get(get_operation))
        .route("/executions", get(list_executions).post(start_execution))
        .route("/executions/{id}", get(get_execution))
        .route("/systems", get(list_systems))
        .route("/systems/{system}/passes", get(passes::passes))
        .route("/systems/{system}/track", get(passes::track_route))
        .route("/systems/{system}/queue", get(queue::queue))
        .route("/systems/{system}/volumes", get(list_volumes))
        .route(
            "/systems/{system}/volumes/{volume}/files",
            get(list_volume_files),
        );
    Router::new()
        .route(
            "/healthz",
            get(|| async {
                Json(api::Health {
                    status: "ok".into(),
                })
            }),
        )
        .nest("/api/v1", api)
        .merge(dashboard::router())
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(limits::SMALL_BODY))
        .with_state(ground)
}

// ---- extractors whose rejections are ApiErrors ----

/// `axum::extract::Path` with [`ApiError`] rejections.
pub(crate) struct P<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for P<T>
where
    axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(P(v))
    }
}

/// `axum::extract::Query` with [`ApiError`] rejections.
pub(crate) struct Q<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for Q<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Q(v))
    }
}

/// `axum::Json` with [`ApiError`] rejections.
pub(crate) struct J<T>(pub(crate) T);

impl<T, S> FromRequest<S> for J<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(J(v))
    }
}

/// A page of a listing.
#[derive(Debug, Deserialize)]
struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

impl Page {
    fn bounds(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(limits::PAGE_DEFAULT);
        let offset = self.offset.unwrap_or(0);
        if !(1..=limits::PAGE_MAX).contains(&limit) || offset < 0 {
            return Err(ApiError::bad(format!(
                "limit must be 1 to {} and offset at least 0",
                limits::PAGE_MAX
            )));
        }
        Ok((limit, offset))
    }
}

fn created<T: IntoResponse>(body: T) -> Response {
    (StatusCode::CREATED, body).into_response()
}

/// A count or size the database keeps as `i64`, never negative.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A state as the database records it.
fn state(s: &str) -> Result<api::State, ApiError> {
    s.parse()
        .map_err(|e| ApiError::internal(format!("recorded state: {e}")))
}

// ---- the API's twins of the ground's own types ----

impl Diagnostic {
    /// The diagnostic as the API shows it.
    pub(crate) fn to_api(&self) -> api::Diagnostic {
        api::Diagnostic {
            severity: match self.severity {
                operation::Severity::Error => api::Severity::Error,
                operation::Severity::Warning => api::Severity::Warning,
            },
            line: u32::try_from(self.line).unwrap_or(u32::MAX),
            column: u32::try_from(self.column).unwrap_or(u32::MAX),
            task: self.task.clone(),
            message: self.message.clone(),
        }
    }
}

impl PreflightFinding {
    /// The finding as the API shows it.
    pub(crate) fn to_api(&self) -> api::PreflightFinding {
        api::PreflightFinding {
            task: self.task.clone(),
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            code: self.code.to_string(),
            severity: match self.severity {
                preflight::Severity::Error => api::Severity::Error,
                preflight::Severity::Warning => api::Severity::Warning,
                preflight::Severity::Info => api::Severity::Info,
            },
            message: self.message.clone(),
            help: self.help.clone(),
        }
    }
}

fn findings(list: &[PreflightFinding]) -> Vec<api::PreflightFinding> {
    list.iter().map(PreflightFinding::to_api).collect()
}

// ---- session ----

async fn login(
    State(g): State<Ground>,
    J(req): J<api::LoginRequest>,
) -> Result<Json<api::LoginResponse>, ApiError> {
    match auth::login(&g, &req.user, &req.password).await? {
        Some(token) => Ok(Json(api::LoginResponse {
            token,
            user: req.user,
        })),
        None => Err(ApiError::WrongCredentials),
    }
}

async fn logout(
    State(g): State<Ground>,
    _user: AuthUser,
    req: Request,
) -> Result<StatusCode, ApiError> {
    if let Some(token) = auth::request_token(req.headers()) {
        auth::logout(&g, &token).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---- namespaces and files ----

fn namespace(name: &str, owner: &str, created_at: i64) -> api::Namespace {
    api::Namespace {
        name: name.to_string(),
        owner: owner.to_string(),
        created_at: time::rfc3339(created_at),
    }
}

async fn list_namespaces(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
) -> Result<Json<api::NamespaceList>, ApiError> {
    let namespaces = db::namespaces_of(g.db(), &user)
        .await?
        .iter()
        .map(|(n, c)| namespace(n, &user, *c))
        .collect();
    Ok(Json(api::NamespaceList { namespaces }))
}

async fn create_namespace(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    J(req): J<api::CreateNamespace>,
) -> Result<Response, ApiError> {
    NamespaceName::new(&req.name).map_err(|e| ApiError::bad(e.to_string()))?;
    let now = time::now_ms();
    if !db::insert_namespace(g.db(), &req.name, &user, now).await? {
        return Err(ApiError::Conflict(format!(
            "namespace '{}' already exists",
            req.name
        )));
    }
    Ok(created(Json(namespace(&req.name, &user, now))))
}

fn namespace_file(f: &FileRow) -> api::NamespaceFile {
    api::NamespaceFile {
        path: f.path.clone(),
        version: count(f.version),
        versions: count(f.versions),
        size: count(f.size),
        digest: f.digest.clone(),
        mode: format!("{:o}", f.mode),
        created_at: time::rfc3339(f.created_at),
    }
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    to: Option<String>,
}

async fn upload_files(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(ns): P<String>,
    Q(q): Q<UploadQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    NamespaceName::new(&ns).map_err(|e| ApiError::bad(e.to_string()))?;
    // Refuse another tenant's namespace before reading a byte of the body.
    if let Some(owner) = db::namespace_owner(g.db(), &ns).await?
        && owner != user
    {
        return Err(ApiError::forbidden(format!(
            "namespace '{ns}' belongs to another tenant"
        )));
    }

    let prefix = NamespacePath::parse(q.to.as_deref().unwrap_or("/"))
        .map_err(|e| ApiError::bad(format!("'to' is not a valid folder: {}", e.reason())))?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let staged = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(req, &g).await?;
        upload::stage_multipart(g.blobs(), &prefix, multipart).await?
    } else if [
        "application/x-tar",
        "application/tar",
        "application/octet-stream",
    ]
    .iter()
    .any(|t| content_type.starts_with(t))
    {
        upload::stage_tar(g.blobs(), &prefix, req.into_body()).await?
    } else {
        return Err(ApiError::bad(
            "send a tar (Content-Type: application/x-tar) or multipart/form-data with 'file' parts",
        ));
    };
    // The blobs must be durable before the rows naming them are: sync every folder the renames
    // touched (once each, however many files share it) before the transaction commits.
    let mut dirs = crate::blobs::DirSync::default();
    for f in &staged.files {
        g.blobs()
            .commit_deferred(&f.tmp, &f.digest, &mut dirs)
            .await?;
    }
    crate::blobs::sync_dirs(dirs).await?;
    let now = time::now_ms();
    let mut tx = db::write_tx(g.db()).await?;
    auth::claim_namespace(&mut tx, &user, &ns, now).await?;
    let mut out = Vec::with_capacity(staged.files.len());
    for f in &staged.files {
        let digest = f.digest.to_string();
        let size = i64::try_from(f.size).unwrap_or(i64::MAX);
        let version =
            db::add_file_version(&mut tx, &ns, &f.path, &digest, size, i64::from(f.mode), now)
                .await?;
        out.push(api::UploadedFile {
            path: f.path.clone(),
            version: count(version),
            size: f.size,
            digest,
            mode: format!("{:o}", f.mode),
            created_at: time::rfc3339(now),
        });
    }
    tx.commit().await?;
    tracing::info!(namespace = %ns, files = out.len(), "upload stored");
    Ok(created(Json(api::Uploaded { files: out })))
}

#[derive(Debug, Deserialize)]
struct ListFilesQuery {
    folder: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list_files(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(ns): P<String>,
    Q(q): Q<ListFilesQuery>,
) -> Result<Json<api::FileList>, ApiError> {
    auth::check_namespace(&g, &user, &ns).await?;
    let (limit, offset) = Page {
        limit: q.limit,
        offset: q.offset,
    }
    .bounds()?;
    let folder = NamespacePath::parse(q.folder.as_deref().unwrap_or("/"))
        .map_err(|e| ApiError::bad(format!("'folder' is not a valid folder: {}", e.reason())))?;
    let files = db::latest_files(g.db(), &ns, &folder, limit, offset).await?;
    Ok(Json(api::FileList {
        files: files.iter().map(namespace_file).collect(),
    }))
}

#[derive(Debug, Deserialize)]
struct ReadFileQuery {
    version: Option<i64>,
}

async fn read_file(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P((ns, path)): P<(String, String)>,
    Q(q): Q<ReadFileQuery>,
) -> Result<Response, ApiError> {
    auth::check_namespace(&g, &user, &ns).await?;
    let path = NamespacePath::parse(&path)
        .map_err(|e| ApiError::bad(format!("bad path: {}", e.reason())))?;
    let Some(file) = db::file_version(g.db(), &ns, &path, q.version).await? else {
        return Err(ApiError::not_found(match q.version {
            Some(v) => format!("file '{path}' version {v} not found in namespace '{ns}'"),
            None => format!("file '{path}' not found in namespace '{ns}'"),
        }));
    };
    let digest: wire::Digest = file
        .digest
        .parse()
        .map_err(|_| ApiError::internal(format!("bad digest recorded for {path}")))?;
    let blob = tokio::fs::File::open(g.blobs().path(&digest))
        .await
        .map_err(|e| ApiError::internal(format!("blob {digest} of {path}: {e}")))?;
    let mut response = Body::from_stream(file_stream(blob)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(file.size.max(0) as u64),
    );
    if let Ok(v) = HeaderValue::from_str(&file.digest) {
        headers.insert("x-orbitdock-digest", v);
    }
    headers.insert("x-orbitdock-version", HeaderValue::from(file.version));
    Ok(response)
}

/// A file's content as a stream of chunks.
fn file_stream(file: tokio::fs::File) -> impl futures_util::Stream<Item = io::Result<Bytes>> {
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

// ---- operations ----

fn operation_summary(o: &OperationRow) -> api::OperationSummary {
    api::OperationSummary {
        namespace: o.namespace.clone(),
        id: o.id.clone(),
        revision: count(o.revision),
        created_at: time::rfc3339(o.created_at),
        updated_at: time::rfc3339(o.updated_at),
    }
}

/// The body of a YAML request.
fn yaml_text(body: Bytes) -> Result<String, ApiError> {
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::bad("the operation is not UTF-8 text"))
}

async fn apply_operation(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::from_rejection(r.status(), r.body_text()))?;
    let yaml = yaml_text(body)?;
    let op = operation::parse(&yaml).map_err(|diagnostics| {
        let n = diagnostics.len();
        let first = diagnostics
            .first()
            .map(|d| d.message.clone())
            .unwrap_or_default();
        ApiError::Invalid {
            message: format!(
                "the operation is invalid ({n} problem{}): {first}",
                if n == 1 { "" } else { "s" }
            ),
            diagnostics,
        }
    })?;
    let now = time::now_ms();
    let mut tx = db::write_tx(g.db()).await?;
    auth::claim_namespace(&mut tx, &user, &op.namespace, now).await?;
    let row = db::save_operation(&mut tx, &op.namespace, &op.id, &yaml, now).await?;
    tx.commit().await?;
    let system = preflight_check::operation_system(&op);
    let found = preflight_check::check_operation(&g, &user, &op, &system).await?;
    Ok(created(Json(api::AppliedOperation {
        namespace: row.namespace,
        id: row.id,
        revision: count(row.revision),
        created_at: time::rfc3339(row.created_at),
        updated_at: time::rfc3339(row.updated_at),
        preflight: findings(&found),
    })))
}

async fn validate_operation(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<api::Validation>, ApiError> {
    let body = body.map_err(|r| ApiError::from_rejection(r.status(), r.body_text()))?;
    let (diagnostics, found) = match operation::parse(&yaml_text(body)?) {
        Ok(op) => {
            let system = preflight_check::operation_system(&op);
            let findings = preflight_check::check_operation(&g, &user, &op, &system).await?;
            (Vec::new(), findings)
        }
        Err(diagnostics) => (diagnostics, Vec::new()),
    };
    let valid = diagnostics.is_empty()
        && !found
            .iter()
            .any(|f| f.severity == preflight::Severity::Error);
    Ok(Json(api::Validation {
        valid,
        diagnostics: diagnostics.iter().map(Diagnostic::to_api).collect(),
        preflight: findings(&found),
    }))
}

#[derive(Debug, Deserialize)]
struct NamespaceQuery {
    namespace: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list_operations(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    Q(q): Q<NamespaceQuery>,
) -> Result<Json<api::OperationList>, ApiError> {
    if let Some(ns) = &q.namespace {
        auth::check_namespace(&g, &user, ns).await?;
    }
    let (limit, offset) = Page {
        limit: q.limit,
        offset: q.offset,
    }
    .bounds()?;
    let ops = db::operations_of(g.db(), &user, q.namespace.as_deref(), limit, offset).await?;
    Ok(Json(api::OperationList {
        operations: ops.iter().map(operation_summary).collect(),
    }))
}

async fn get_operation(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P((ns, id)): P<(String, String)>,
) -> Result<Json<api::OperationDetail>, ApiError> {
    auth::check_namespace(&g, &user, &ns).await?;
    let Some((row, yaml)) = db::operation(g.db(), &ns, &id).await? else {
        return Err(ApiError::not_found(format!(
            "operation '{ns}/{id}' not found"
        )));
    };
    let execs = db::executions_of(g.db(), &user, Some(&ns), Some(&id), 100, 0).await?;
    let executions = execs
        .iter()
        .map(|e| {
            Ok(api::OperationExecution {
                id: e.id.clone(),
                state: state(&e.state)?,
                system: e.system.clone(),
                created_at: time::rfc3339(e.created_at),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(api::OperationDetail {
        namespace: row.namespace,
        id: row.id,
        revision: count(row.revision),
        yaml,
        created_at: time::rfc3339(row.created_at),
        updated_at: time::rfc3339(row.updated_at),
        executions,
    }))
}

// ---- executions ----

fn history(text: &str) -> Result<Vec<api::HistoryEntry>, ApiError> {
    let h: Vec<HistoryEntry> = db::json_or_default(text);
    h.iter()
        .map(|e| {
            Ok(api::HistoryEntry {
                state: state(&e.state)?,
                at: time::rfc3339(e.at),
            })
        })
        .collect()
}

/// A JSON column the ground wrote from an `api` type; `None` when empty (or unreadable, which
/// is logged).
fn stored<T: serde::de::DeserializeOwned>(text: Option<&str>) -> Option<T> {
    let text = text?;
    serde_json::from_str(text)
        .inspect_err(|e| tracing::warn!(error = %e, "unreadable JSON column"))
        .ok()
}

fn task(t: &TaskRow) -> Result<api::Task, ApiError> {
    Ok(api::Task {
        index: u32::try_from(t.idx).unwrap_or(0),
        id: t.id.clone(),
        task_type: t.ty.clone(),
        state: state(&t.state)?,
        started_at: time::rfc3339_opt(t.started_at),
        finished_at: time::rfc3339_opt(t.finished_at),
        history: history(&t.history)?,
        error: stored(t.error.as_deref()),
        outputs: stored(t.outputs.as_deref()),
    })
}

/// The execution with its tasks; `uplink_eta` is the caller's to fill.
fn execution(e: &ExecutionRow, tasks: &[TaskRow]) -> Result<api::Execution, ApiError> {
    Ok(api::Execution {
        id: e.id.clone(),
        namespace: e.namespace.clone(),
        operation: e.operation.clone(),
        revision: count(e.revision),
        system: e.system.clone(),
        state: state(&e.state)?,
        created_at: time::rfc3339(e.created_at),
        scheduled_at: time::rfc3339_opt(e.scheduled_at),
        started_at: time::rfc3339_opt(e.started_at),
        finished_at: time::rfc3339_opt(e.finished_at),
        history: history(&e.history)?,
        errors: stored(Some(&e.errors)).unwrap_or_default(),
        tasks: tasks.iter().map(task).collect::<Result<_, _>>()?,
        uplink_eta: None,
    })
}

fn execution_summary(e: &ExecutionRow) -> Result<api::ExecutionSummary, ApiError> {
    Ok(api::ExecutionSummary {
        id: e.id.clone(),
        namespace: e.namespace.clone(),
        operation: e.operation.clone(),
        system: e.system.clone(),
        state: state(&e.state)?,
        created_at: time::rfc3339(e.created_at),
    })
}

/// The execution, if the caller's.
async fn load_execution(g: &Ground, user: &str, id: &str) -> Result<api::Execution, ApiError> {
    match db::execution(g.db(), id).await? {
        Some(e) if e.tenant == user => {
            let tasks = db::tasks(g.db(), id).await?;
            let mut v = execution(&e, &tasks)?;
            v.uplink_eta = queue::execution_eta(g, &e).await?;
            Ok(v)
        }
        // Another tenant's execution is as good as absent.
        _ => Err(ApiError::not_found(format!("execution '{id}' not found"))),
    }
}

async fn start_execution(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    J(req): J<api::StartExecution>,
) -> Result<Response, ApiError> {
    let id = executor::start(&g, &user, req).await?;
    Ok(created(Json(load_execution(&g, &user, &id).await?)))
}

async fn list_executions(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    Q(q): Q<NamespaceQuery>,
) -> Result<Json<api::ExecutionList>, ApiError> {
    if let Some(ns) = &q.namespace {
        auth::check_namespace(&g, &user, ns).await?;
    }
    let (limit, offset) = Page {
        limit: q.limit,
        offset: q.offset,
    }
    .bounds()?;
    let list =
        db::executions_of(g.db(), &user, q.namespace.as_deref(), None, limit, offset).await?;
    Ok(Json(api::ExecutionList {
        executions: list
            .iter()
            .map(execution_summary)
            .collect::<Result<_, _>>()?,
    }))
}

async fn get_execution(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(id): P<String>,
) -> Result<Json<api::Execution>, ApiError> {
    Ok(Json(load_execution(&g, &user, &id).await?))
}

// ---- systems and onboard files ----

fn catalogue_image(b: &wire::BaseImage) -> api::CatalogueImage {
    api::CatalogueImage {
        name: b.name.clone(),
        platform: b.platform.clone(),
        digest: b.digest.map(|d| d.to_string()),
        description: b.description.clone(),
    }
}

async fn systems(g: &Ground) -> Result<Vec<api::System>, ApiError> {
    let mut out = Vec::new();
    for name in g.system_names() {
        let v = match db::system(g.db(), name).await? {
            Some(s) => {
                let catalogue: Vec<wire::BaseImage> = db::json_or_default(&s.catalogue);
                api::System {
                    name: name.to_string(),
                    platform: Some(s.platform),
                    last_seen: Some(time::rfc3339(s.last_seen)),
                    catalogue: catalogue.iter().map(catalogue_image).collect(),
                }
            }
            None => api::System {
                name: name.to_string(),
                platform: None,
                last_seen: None,
                catalogue: wire::catalogue("linux/arm64")
                    .iter()
                    .map(catalogue_image)
                    .collect(),
            },
        };
        out.push(v);
    }
    Ok(out)
}

async fn list_systems(
    State(g): State<Ground>,
    _user: AuthUser,
) -> Result<Json<api::SystemList>, ApiError> {
    Ok(Json(api::SystemList {
        systems: systems(&g).await?,
    }))
}

fn known_system(g: &Ground, system: &str) -> Result<(), ApiError> {
    if g.system(system).is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("system '{system}' not found")))
    }
}

async fn list_volumes(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(system): P<String>,
) -> Result<Json<api::VolumeList>, ApiError> {
    known_system(&g, &system)?;
    let volumes = db::volumes(g.db(), &system, &user)
        .await?
        .into_iter()
        .map(|(name, files, bytes)| api::Volume {
            name,
            files: count(files),
            bytes: count(bytes),
        })
        .collect();
    Ok(Json(api::VolumeList { volumes }))
}

async fn list_volume_files(
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
        .map(|f| api::VolumeFile {
            path: f.path,
            size: count(f.size),
            is_dir: f.is_dir,
            modified: time::rfc3339(f.modified_ms),
        })
        .collect();
    Ok(Json(api::VolumeFileList { files }))
}
