//! The OpenAPI document (`GET /api/v1/openapi.json`) against the router that serves the API and
//! against docs/api.md: every documented route is served (it answers, and asks for a token
//! exactly when the document says it does), every route docs/api.md lists is documented and
//! every documented route is listed there, and every method a documented path does not name is
//! refused by the router.

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::Value;

const METHODS: [&str; 4] = ["get", "post", "put", "delete"];

/// `(METHOD, /api/v1/path/{param})` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// A request path for a documented one: each `{param}` replaced with a value it accepts.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s == "{revision}" {
                "1"
            } else if s.starts_with('{') {
                "x"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_schemas_from_the_api_types() {
    let g = common::ground().await;
    // The document needs no token.
    let reply = g
        .call(Method::GET, "/api/v1/openapi.json", None, None, Vec::new())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.1.0");
    // A schema derived from an `api` type, with its serde names: `Execution.state` refers to the
    // `State` enum, whose values are written as the JSON writes them.
    let schemas = &doc["components"]["schemas"];
    let states = schemas["State"]["enum"]
        .as_array()
        .expect("State is an enum");
    assert!(
        states.contains(&Value::from("AWAITING_APPROVAL")),
        "{states:?}"
    );
    assert!(schemas["Execution"]["properties"]["tasks"].is_object());
    // The upload takes a tar or a multipart form; the login a JSON `LoginRequest`.
    let upload = &doc["paths"]["/api/v1/namespaces/{ns}/files"]["post"];
    assert!(upload["requestBody"]["content"]["application/x-tar"].is_object());
    let login = &doc["paths"]["/api/v1/login"]["post"];
    assert_eq!(
        login["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/LoginRequest"
    );
    assert!(login.get("security").is_none(), "signing in needs no token");
}

#[tokio::test]
async fn every_documented_route_is_served_and_no_other_method() {
    let g = common::ground().await;
    let doc = g
        .call(Method::GET, "/api/v1/openapi.json", None, None, Vec::new())
        .await
        .json();
    let routes = documented(&doc);
    assert!(routes.len() > 30, "{routes:?}");
    for (method, path) in &routes {
        let op = &doc["paths"][path][method.to_lowercase()];
        let uri = concrete(path);
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let reply = g.call(m, &uri, None, None, Vec::new()).await;
        let says = reply.text();
        assert!(
            !(reply.status == StatusCode::NOT_FOUND && says.contains("no such route")),
            "{method} {uri} is documented but not served"
        );
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        // A route the document says needs a token answers 401 without one; one that says
        // nothing does not.
        let secured = op.get("security").is_some();
        assert_eq!(
            reply.status == StatusCode::UNAUTHORIZED,
            secured,
            "{method} {uri}: answered {} ({says}) but documented with security {secured}",
            reply.status
        );
    }
    // Every other method on a documented path is refused by the router itself.
    let paths: BTreeSet<&String> = routes.iter().map(|(_, p)| p).collect();
    for path in paths {
        for m in METHODS {
            let method = m.to_uppercase();
            if routes.contains(&(method.clone(), path.clone())) {
                continue;
            }
            let reply = g
                .call(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &concrete(path),
                    None,
                    None,
                    Vec::new(),
                )
                .await;
            assert_eq!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is served but not documented"
            );
        }
    }
    // And a path the document does not have is the router's "no such route".
    g.call(Method::GET, "/api/v1/nothing", None, None, Vec::new())
        .await
        .assert_answer(StatusCode::NOT_FOUND, "no such route");
}

#[tokio::test]
async fn docs_api_md_lists_exactly_the_documented_routes() {
    let g = common::ground().await;
    let doc = g
        .call(Method::GET, "/api/v1/openapi.json", None, None, Vec::new())
        .await
        .json();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"))
        .expect("docs/api.md");
    let mut listed = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let Some((method, rest)) = rest.split_once(' ') else {
            continue;
        };
        if !METHODS.contains(&method.to_lowercase().as_str()) || !rest.starts_with("/api/v1/") {
            continue;
        }
        let path: String = rest
            .chars()
            .take_while(|c| *c != '`' && *c != '?' && *c != ' ')
            .collect();
        listed.insert((method.to_string(), path));
    }
    let documented = documented(&doc);
    let missing: Vec<_> = documented.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "in the OpenAPI document but not in docs/api.md: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in docs/api.md but not in the OpenAPI document: {extra:?}"
    );
}
