//! The API's one route table, and the OpenAPI 3.1 document made from it.
//!
//! Every route under `/api/v1` is one [`ApiRoute`]: its method and path, the handler, and what
//! the document says of it (a summary, who may call it, its query parameters, its body and its
//! answer, each body named by its `api` type). The router is built from this table and the
//! document is made from the same table, so a route cannot be served without being documented,
//! nor documented without being served. The bodies' JSON Schemas are derived from the `api`
//! types themselves (`utoipa::ToSchema`, next to their serde attributes), so the document cannot
//! disagree with the JSON either.
//!
//! Why a table rather than an attribute on each handler: the handlers stay as they are, the
//! router and the document cannot drift apart, and one proc macro (the schema derive on the
//! `api` types) is all that is compiled.

use std::borrow::Cow;

use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};
use utoipa::ToSchema;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, ObjectBuilder, OpenApi,
    OpenApiBuilder, Paths, Ref, RefOr, Required, ResponseBuilder, Schema, Type,
};

use super::{executions, live, namespaces, operations, session, systems, users};
use crate::Ground;

/// Where the API's routes are nested.
pub(crate) const PREFIX: &str = "/api/v1";

/// Where the document is served, below [`PREFIX`].
pub(crate) const OPENAPI_PATH: &str = "/openapi.json";

/// An HTTP method of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Put => MethodFilter::PUT,
            Method::Delete => MethodFilter::DELETE,
        }
    }

    fn openapi(self) -> HttpMethod {
        match self {
            Method::Get => HttpMethod::Get,
            Method::Post => HttpMethod::Post,
            Method::Put => HttpMethod::Put,
            Method::Delete => HttpMethod::Delete,
        }
    }

    fn writes(self) -> bool {
        self != Method::Get
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone (signing in).
    Anyone,
    /// A signed-in user: a bearer token, or the session cookie (and, for a write, its CSRF token).
    User,
    /// An operator only.
    Operator,
}

/// A JSON body type: its schema's name and the schemas it needs (itself included).
struct TypeDoc {
    name: Cow<'static, str>,
    schemas: Vec<(String, RefOr<Schema>)>,
}

fn ty<T: ToSchema>() -> TypeDoc {
    let mut schemas = vec![(T::name().into_owned(), T::schema())];
    T::schemas(&mut schemas);
    TypeDoc {
        name: T::name(),
        schemas,
    }
}

/// A request body.
enum Body {
    None,
    Json(TypeDoc),
    /// An operation's YAML text.
    Yaml,
    /// A tar, or a multipart form of files.
    Upload,
}

/// A successful answer.
enum Answer {
    Json(u16, TypeDoc),
    /// `204`, no body.
    Empty,
    /// A file's raw bytes.
    Bytes,
    /// Server-sent events, each an `event:` name and the JSON of `TypeDoc`.
    Events(&'static str, TypeDoc),
}

/// A query parameter: name, whether it is an integer, what it means.
type QueryParam = (&'static str, bool, &'static str);

/// One route of the API.
pub(crate) struct ApiRoute {
    pub(crate) method: Method,
    /// As axum writes it, below [`PREFIX`] (`/namespaces/{ns}/files/{*path}`).
    pub(crate) path: &'static str,
    summary: &'static str,
    access: Access,
    query: &'static [QueryParam],
    body: Body,
    answer: Answer,
    handler: MethodRouter<Ground>,
}

fn route<H, T>(method: Method, path: &'static str, handler: H, summary: &'static str) -> ApiRoute
where
    H: Handler<T, Ground>,
    T: 'static,
{
    ApiRoute {
        method,
        path,
        summary,
        access: Access::User,
        query: &[],
        body: Body::None,
        answer: Answer::Empty,
        handler: on(method.filter(), handler),
    }
}

impl ApiRoute {
    fn anyone(mut self) -> Self {
        self.access = Access::Anyone;
        self
    }
    fn operator(mut self) -> Self {
        self.access = Access::Operator;
        self
    }
    fn query(mut self, query: &'static [QueryParam]) -> Self {
        self.query = query;
        self
    }
    fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
    fn json<T: ToSchema>(self) -> Self {
        self.body(Body::Json(ty::<T>()))
    }
    fn ok<T: ToSchema>(mut self) -> Self {
        self.answer = Answer::Json(200, ty::<T>());
        self
    }
    fn created<T: ToSchema>(mut self) -> Self {
        self.answer = Answer::Json(201, ty::<T>());
        self
    }
    fn bytes(mut self) -> Self {
        self.answer = Answer::Bytes;
        self
    }
    fn events<T: ToSchema>(mut self, event: &'static str) -> Self {
        self.answer = Answer::Events(event, ty::<T>());
        self
    }
    fn layer(mut self, f: impl FnOnce(MethodRouter<Ground>) -> MethodRouter<Ground>) -> Self {
        self.handler = f(self.handler);
        self
    }

    /// The handler, for the router.
    pub(crate) fn into_handler(self) -> MethodRouter<Ground> {
        self.handler
    }
}

const PAGE: &[QueryParam] = &[
    (
        "limit",
        true,
        "At most this many (default 1000, at most 10,000).",
    ),
    ("offset", true, "Skip this many."),
];
const BY_NAMESPACE: &[QueryParam] = &[
    (
        "namespace",
        false,
        "One namespace only (default: all the caller's).",
    ),
    (
        "limit",
        true,
        "At most this many (default 1000, at most 10,000).",
    ),
    ("offset", true, "Skip this many."),
];

/// The API, route by route.
pub(crate) fn api_routes() -> Vec<ApiRoute> {
    use Method::{Delete, Get, Post, Put};
    let upload_limit = |h: MethodRouter<Ground>| {
        h.layer(axum::extract::DefaultBodyLimit::max(
            crate::config::limits::UPLOAD_BODY,
        ))
    };
    vec![
        route(
            Post,
            "/login",
            session::login,
            "Sign in: a bearer token for 24 hours.",
        )
        .anyone()
        .json::<api::LoginRequest>()
        .ok::<api::LoginResponse>(),
        route(
            Post,
            "/logout",
            session::logout,
            "Sign out: the token stops working.",
        ),
        route(
            Get,
            "/namespaces",
            namespaces::list,
            "The caller's namespaces.",
        )
        .ok::<api::NamespaceList>(),
        route(
            Post,
            "/namespaces",
            namespaces::create,
            "Create a namespace.",
        )
        .json::<api::CreateNamespace>()
        .created::<api::Namespace>(),
        route(
            Get,
            "/namespaces/{ns}/files",
            namespaces::list_files,
            "The latest version of each file under a folder.",
        )
        .query(&[
            ("folder", false, "The folder listed (default `/`)."),
            (
                "limit",
                true,
                "At most this many (default 1000, at most 10,000).",
            ),
            ("offset", true, "Skip this many."),
        ])
        .ok::<api::FileList>(),
        route(
            Post,
            "/namespaces/{ns}/files",
            namespaces::upload_files,
            "Upload files: a tar, or a multipart form whose parts' filenames are paths.",
        )
        .query(&[("to", false, "The folder the files go under (default `/`).")])
        .body(Body::Upload)
        .created::<api::Uploaded>()
        .layer(upload_limit),
        route(
            Get,
            "/namespaces/{ns}/files/{*path}",
            namespaces::read_file,
            "A file's bytes.",
        )
        .query(&[("version", true, "This version (default the latest).")])
        .bytes(),
        route(
            Delete,
            "/namespaces/{ns}/files/{*path}",
            namespaces::delete_file,
            "Delete a file or a folder, every version.",
        )
        .ok::<api::Removed>(),
        route(
            Post,
            "/namespaces/{ns}/move",
            namespaces::move_files,
            "Move a file or a folder, every version.",
        )
        .json::<api::MoveFiles>()
        .ok::<api::Moved>(),
        route(
            Get,
            "/operations",
            operations::list,
            "The caller's operations.",
        )
        .query(BY_NAMESPACE)
        .ok::<api::OperationList>(),
        route(
            Post,
            "/operations",
            operations::apply,
            "Apply (create or revise) an operation from its YAML.",
        )
        .body(Body::Yaml)
        .created::<api::AppliedOperation>(),
        route(
            Post,
            "/operations/validate",
            operations::validate,
            "Validate an operation's YAML and preflight it; nothing is saved.",
        )
        .body(Body::Yaml)
        .ok::<api::Validation>(),
        route(
            Get,
            "/operations/{ns}/{id}",
            operations::get,
            "An operation: its latest YAML and newest executions.",
        )
        .ok::<api::OperationDetail>(),
        route(
            Get,
            "/operations/{ns}/{id}/revisions/{revision}",
            operations::revision,
            "One revision of an operation, as it was saved.",
        )
        .ok::<api::OperationRevision>(),
        route(
            Get,
            "/executions",
            executions::list,
            "Executions: the caller's, or an operator's every tenant's.",
        )
        .query(&[
            ("namespace", false, "One namespace only."),
            (
                "state",
                false,
                "One state only (`AWAITING_APPROVAL`, `COMPLETED`, ...).",
            ),
            ("tenant", false, "Operators only: one tenant's."),
            (
                "limit",
                true,
                "At most this many (default 1000, at most 10,000).",
            ),
            ("offset", true, "Skip this many."),
        ])
        .ok::<api::ExecutionList>(),
        route(
            Post,
            "/executions",
            executions::start,
            "Start an execution of an operation on a system.",
        )
        .json::<api::StartExecution>()
        .created::<api::Execution>(),
        route(
            Get,
            "/executions/{id}",
            executions::get,
            "An execution: its tasks, history, errors and outputs.",
        )
        .ok::<api::Execution>(),
        route(
            Get,
            "/executions/{id}/events",
            live::events,
            "An execution followed live: server-sent events, one `execution` event with the \
             execution as it is, then one each time an event changes it, until a final state.",
        )
        .events::<api::Execution>("execution"),
        route(
            Post,
            "/plan",
            executions::plan,
            "What an execution would uplink, in bytes and passes; nothing is started.",
        )
        .json::<api::PlanRequest>()
        .ok::<api::UplinkPlan>(),
        route(
            Post,
            "/executions/{id}/approve",
            executions::approve,
            "Approve an execution waiting for approval: it is signed and sent.",
        )
        .operator()
        .ok::<api::Execution>(),
        route(
            Post,
            "/executions/{id}/reject",
            executions::reject,
            "Reject an execution waiting for approval: it is never sent.",
        )
        .operator()
        .json::<api::Reject>()
        .ok::<api::Execution>(),
        route(
            Post,
            "/executions/{id}/cancel",
            executions::cancel,
            "Cancel an execution not yet sent.",
        )
        .ok::<api::Execution>(),
        route(Get, "/users", users::list, "Every user.")
            .operator()
            .ok::<api::UserList>(),
        route(Post, "/users", users::create, "Create a user.")
            .operator()
            .json::<api::CreateUser>()
            .created::<api::User>(),
        route(
            Post,
            "/users/{name}/disable",
            users::disable,
            "Disable a user: its sessions end.",
        )
        .operator()
        .ok::<api::User>(),
        route(
            Post,
            "/users/{name}/enable",
            users::enable,
            "Enable a user again.",
        )
        .operator()
        .ok::<api::User>(),
        route(
            Get,
            "/quotas",
            users::quotas,
            "Every tenant's quota and use.",
        )
        .operator()
        .ok::<api::QuotaList>(),
        route(
            Get,
            "/quotas/{tenant}",
            users::get_quota,
            "A tenant's quota and use (a tenant may read its own).",
        )
        .ok::<api::Quota>(),
        route(
            Put,
            "/quotas/{tenant}",
            users::set_quota,
            "Set a tenant's quota.",
        )
        .operator()
        .json::<api::Limits>()
        .ok::<api::Quota>(),
        route(
            Get,
            "/systems",
            systems::list,
            "The systems: declaration, reported engine, drift, next pass.",
        )
        .ok::<api::SystemList>(),
        route(Get, "/systems/{system}", systems::one, "One system.").ok::<api::System>(),
        route(
            Put,
            "/systems/{system}/elements",
            systems::send_elements,
            "Send a system a newer element set on its own: its triggers and telemetry \
             propagate it.",
        )
        .operator()
        .json::<api::SendElements>()
        .ok::<api::SystemElements>(),
        route(
            Get,
            "/systems/{system}/passes",
            systems::passes,
            "A system's passes over the ground station.",
        )
        .query(&[("hours", false, "How far ahead (default 24).")])
        .ok::<api::Passes>(),
        route(
            Get,
            "/systems/{system}/track",
            systems::track,
            "A system's ground track.",
        )
        .query(&[
            ("minutes", true, "How far ahead (default 90)."),
            ("step_s", true, "Seconds between points (default 30)."),
        ])
        .ok::<api::Track>(),
        route(
            Get,
            "/systems/{system}/telemetry",
            systems::telemetry,
            "A system's onboard telemetry, from the digests it downlinked.",
        )
        .query(&[
            (
                "data_type",
                false,
                "Data types, comma-separated (default: every one the system sent).",
            ),
            (
                "from",
                false,
                "RFC 3339 start, inclusive (default: to less 24 h).",
            ),
            ("to", false, "RFC 3339 end, exclusive (default: now)."),
        ])
        .ok::<api::Telemetry>(),
        route(
            Get,
            "/systems/{system}/queue",
            systems::queue,
            "A system's uplink queue, with ETAs.",
        )
        .ok::<api::Queue>(),
        route(
            Get,
            "/systems/{system}/volumes",
            systems::volumes,
            "The caller's volumes onboard a system.",
        )
        .ok::<api::VolumeList>(),
        route(
            Get,
            "/systems/{system}/volumes/{volume}/files",
            systems::volume_files,
            "The files of a volume onboard.",
        )
        .query(PAGE)
        .ok::<api::VolumeFileList>(),
    ]
}

/// The OpenAPI path of a route: `{*path}` becomes `{path}`, under [`PREFIX`].
pub(crate) fn openapi_path(axum_path: &str) -> String {
    format!("{PREFIX}{}", axum_path.replace("{*", "{"))
}

/// The path parameters of a route, in order.
fn path_params(axum_path: &str) -> Vec<String> {
    axum_path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|s| s.trim_start_matches('*').to_string())
        .collect()
}

fn describe_param(name: &str) -> (&'static str, bool) {
    match name {
        "ns" => ("A namespace.", false),
        "path" => ("A path inside the namespace; its slashes are kept.", false),
        "id" => ("An operation's or an execution's id.", false),
        "revision" => ("A revision number, from 1.", true),
        "system" => ("A system's name (`em`, ...).", false),
        "volume" => ("A volume's name.", false),
        "name" => ("A user's name.", false),
        "tenant" => ("A tenant's name.", false),
        _ => ("", false),
    }
}

fn scalar(integer: bool) -> Schema {
    ObjectBuilder::new()
        .schema_type(if integer { Type::Integer } else { Type::String })
        .into()
}

fn binary(description: &str) -> ContentBuilder {
    ContentBuilder::new().schema(Some(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/octet-stream")
            .description(Some(description)),
    ))
}

/// The document for `routes`.
pub(crate) fn openapi(routes: &[ApiRoute]) -> OpenApi {
    let mut paths = Paths::new();
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        )
        .security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-CSRF-Token"))),
        );
    let error = ty::<api::ErrorBody>();
    let mut schemas = error.schemas;
    let error_ref = Ref::from_schema_name(error.name.clone());

    for r in routes {
        let mut op = OperationBuilder::new()
            .summary(Some(r.summary))
            .operation_id(Some(operation_id(r)))
            .tag(r.path.split('/').nth(1).unwrap_or("api"));
        if r.access == Access::Operator {
            op = op.description(Some("Operators only; a tenant gets `403`."));
        }
        if r.access != Access::Anyone {
            let cookie = if r.method.writes() {
                SecurityRequirement::new("session", Vec::<String>::new())
                    .add("csrf", Vec::<String>::new())
            } else {
                SecurityRequirement::new("session", Vec::<String>::new())
            };
            op = op
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .security(cookie);
        }
        for name in path_params(r.path) {
            let (doc, integer) = describe_param(&name);
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some(doc))
                    .schema(Some(scalar(integer))),
            );
        }
        for &(name, integer, doc) in r.query {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(doc))
                    .schema(Some(scalar(integer))),
            );
        }
        let body = match &r.body {
            Body::None => None,
            Body::Json(t) => {
                schemas.extend(t.schemas.iter().cloned());
                Some(
                    RequestBodyBuilder::new().content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(t.name.clone())))
                            .build(),
                    ),
                )
            }
            Body::Yaml => Some(
                RequestBodyBuilder::new().content(
                    "application/yaml",
                    ContentBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .description(Some("An operation's YAML (docs/operations.md).")),
                        ))
                        .build(),
                ),
            ),
            Body::Upload => Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/x-tar",
                        binary("A tar of files and folders.").build(),
                    )
                    .content(
                        "multipart/form-data",
                        binary("`file` parts whose filename is the path under `to`.").build(),
                    ),
            ),
        };
        if let Some(body) = body {
            op = op.request_body(Some(body.required(Some(Required::True)).build()));
        }
        let (status, answer) = match &r.answer {
            Answer::Json(status, t) => {
                schemas.extend(t.schemas.iter().cloned());
                (
                    status.to_string(),
                    ResponseBuilder::new().description("Done.").content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(t.name.clone())))
                            .build(),
                    ),
                )
            }
            Answer::Empty => (
                "204".to_string(),
                ResponseBuilder::new().description("Done; no body."),
            ),
            Answer::Events(event, t) => {
                schemas.extend(t.schemas.iter().cloned());
                (
                    "200".to_string(),
                    ResponseBuilder::new()
                        .description(format!(
                            "A stream of server-sent events named `{event}`, each one's data the \
                             JSON of a `{}`; it ends after one that shows a final state.",
                            t.name
                        ))
                        .content(
                            "text/event-stream",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(t.name.clone())))
                                .build(),
                        ),
                )
            }
            Answer::Bytes => (
                "200".to_string(),
                ResponseBuilder::new()
                    .description(
                        "The file's bytes, with `x-orbitdock-digest` and `x-orbitdock-version`.",
                    )
                    .content("application/octet-stream", binary("The file.").build()),
            ),
        };
        op = op.response(status, answer.build()).response(
            "default",
            ResponseBuilder::new()
                .description("An error: its code and a message saying what and where.")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(error_ref.clone()))
                        .build(),
                )
                .build(),
        );
        paths.add_path_operation(openapi_path(r.path), vec![r.method.openapi()], op.build());
    }
    // The document itself.
    paths.add_path_operation(
        format!("{PREFIX}{OPENAPI_PATH}"),
        vec![HttpMethod::Get],
        OperationBuilder::new()
            .summary(Some("This document (OpenAPI 3.1)."))
            .operation_id(Some("openapi"))
            .tag("api")
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The document.")
                    .content("application/json", ContentBuilder::new().build())
                    .build(),
            )
            .build(),
    );

    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("orbitdock ground API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The ground's HTTP API (docs/api.md). Errors are `ErrorBody`s; times are \
                     RFC 3339 UTC strings with milliseconds.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// Ids like `get_namespaces_by_ns_files`: the method and the path's words.
fn operation_id(r: &ApiRoute) -> String {
    let method = match r.method {
        Method::Get => "get",
        Method::Post => "post",
        Method::Put => "put",
        Method::Delete => "delete",
    };
    let words: Vec<String> = r
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix('{') {
            Some(p) => format!("by_{}", p.trim_start_matches('*').trim_end_matches('}')),
            None => s.to_string(),
        })
        .collect();
    format!("{method}_{}", words.join("_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_unique() {
        let routes = api_routes();
        let mut ids: Vec<String> = routes.iter().map(operation_id).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{ids:?}");
    }

    #[test]
    fn path_parameters_are_read_from_the_template() {
        assert_eq!(
            path_params("/namespaces/{ns}/files/{*path}"),
            vec!["ns".to_string(), "path".to_string()]
        );
        assert_eq!(
            openapi_path("/namespaces/{ns}/files/{*path}"),
            "/api/v1/namespaces/{ns}/files/{path}"
        );
    }

    #[test]
    fn every_path_parameter_is_described() {
        for r in api_routes() {
            for p in path_params(r.path) {
                assert!(!describe_param(&p).0.is_empty(), "{} in {}", p, r.path);
            }
        }
    }

    #[test]
    fn every_referenced_schema_is_in_the_components() {
        let doc = serde_json::to_value(openapi(&api_routes())).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = doc.to_string();
        let mut rest = text.as_str();
        let mut seen = 0;
        while let Some(at) = rest.find("#/components/schemas/") {
            rest = &rest[at + "#/components/schemas/".len()..];
            let name: String = rest.chars().take_while(|c| *c != '"').collect();
            assert!(
                schemas.contains_key(&name),
                "{name} is referenced but absent"
            );
            seen += 1;
        }
        assert!(seen > 30, "only {seen} references");
    }
}
