//! Requests that race for the same rows, on SQLite and on PostgreSQL: concurrent uploads of one
//! path, applies of one operation, executions on one system and approvals of one execution each
//! get their own number or exactly one winner. The `_on_postgres` tests need the server that
//! `ORBITDOCK_TEST_POSTGRES_URL` names (see `common::postgres`); without one they say so and pass
//! over it, unless `ORBITDOCK_REQUIRE_POSTGRES=1`.

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use common::{Entry, TestDatabase, TestGround, tar, unreachable_system};
use futures_util::future::join_all;
use ground::Role;
use serde_json::{Value, json};

/// Requests sent at once in each race: fewer than either engine's pool holds connections, so
/// that the race is for the database's write lock, not for connections.
const RACERS: usize = 6;

const OPERATION: &str = "id: hello\nnamespace: demo\nsystem: em\ntasks:\n  - id: up\n    type: uplink\n    source: /app\n";

/// A ground on `database` with systems `em` and `fm` (whose executions wait for approval),
/// `alice` a tenant and `ops` an operator.
async fn ground_on(database: TestDatabase) -> TestGround {
    let g = common::ground_on(
        database,
        vec![unreachable_system("em"), unreachable_system("fm")],
    )
    .await
    .with(|ground| {
        ground.with_approvals(
            [
                ("em".to_string(), ground::Approval::NotRequired),
                ("fm".to_string(), ground::Approval::Required),
            ]
            .into(),
        )
    });
    g.ground.ensure_user("ops", "pw-ops").await.unwrap();
    g.ground.set_role("ops", Role::Operator).await.unwrap();
    g
}

/// A fresh PostgreSQL database, or `None` (said) when no server is given.
async fn postgres() -> Option<TestDatabase> {
    match common::postgres::server_url() {
        Some(server) => Some(TestDatabase::postgres(&server).await),
        None => {
            eprintln!("ORBITDOCK_TEST_POSTGRES_URL is not set: the PostgreSQL half is not run");
            None
        }
    }
}

async fn uploads_of_one_path_get_distinct_versions(g: TestGround) {
    let t = g.login("alice").await;
    let uploads = (0..RACERS).map(|i| {
        let body = format!("content {i}");
        let archive = tar(&[Entry::File("app/run.sh", body.as_bytes(), 0o755)]);
        let (g, t) = (&g, &t);
        async move { g.upload_tar("demo", "", t, archive).await }
    });
    let mut versions = BTreeSet::new();
    for r in join_all(uploads).await {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        versions.insert(r.json()["files"][0]["version"].as_i64().unwrap());
    }
    let expected: BTreeSet<i64> = (1..=RACERS as i64).collect();
    assert_eq!(versions, expected);
    let list = g.get("/api/v1/namespaces/demo/files", &t).await.json();
    assert_eq!(list["files"][0]["versions"], RACERS);
}

async fn applies_of_one_operation_get_distinct_revisions(g: TestGround) {
    let t = g.login("alice").await;
    let applies = (0..RACERS).map(|i| {
        let yaml = format!("{OPERATION}description: take {i}\n");
        let (g, t) = (&g, &t);
        async move { g.post_yaml("/api/v1/operations", t, &yaml).await }
    });
    let mut revisions = BTreeSet::new();
    for r in join_all(applies).await {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        revisions.insert(r.json()["revision"].as_i64().unwrap());
    }
    let expected: BTreeSet<i64> = (1..=RACERS as i64).collect();
    assert_eq!(revisions, expected);
    let op = g.get("/api/v1/operations/demo/hello", &t).await.json();
    assert_eq!(op["revision"], RACERS);
}

/// Uploads `/app/x` and applies the operation for `system`; returns alice's token.
async fn prepare(g: &TestGround, system: &str) -> String {
    let t = g.login("alice").await;
    let r = g
        .upload_tar("demo", "", &t, tar(&[Entry::File("app/x", b"x", 0o644)]))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let yaml = OPERATION.replace("system: em", &format!("system: {system}"));
    let r = g.post_yaml("/api/v1/operations", &t, &yaml).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    t
}

async fn start(g: &TestGround, t: &str) -> common::Reply {
    g.post_json(
        "/api/v1/executions",
        Some(t),
        json!({"namespace": "demo", "operation": "hello"}),
    )
    .await
}

async fn executions_on_one_system_are_all_scheduled(g: TestGround) {
    let t = prepare(&g, "em").await;
    let mut ids = BTreeSet::new();
    for r in join_all((0..RACERS).map(|_| start(&g, &t))).await {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let e = r.json();
        assert_eq!(e["state"], "SCHEDULED", "{e}");
        ids.insert(e["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), RACERS);
    let list = g.get("/api/v1/executions?namespace=demo", &t).await.json();
    let listed: BTreeSet<String> = list["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids);
}

async fn one_of_concurrent_approvals_wins(g: TestGround) {
    let t = prepare(&g, "fm").await;
    let r = start(&g, &t).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let e = r.json();
    assert_eq!(e["state"], "AWAITING_APPROVAL", "{e}");
    let id = e["id"].as_str().unwrap().to_string();
    let ops = g.login("ops").await;
    let approve = format!("/api/v1/executions/{id}/approve");
    let approvals =
        (0..RACERS).map(|_| g.call(Method::POST, &approve, Some(&ops), None, Vec::new()));
    let statuses: Vec<StatusCode> = join_all(approvals).await.iter().map(|r| r.status).collect();
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((won, refused), (1, RACERS - 1), "{statuses:?}");
    let e: Value = g.get(&format!("/api/v1/executions/{id}"), &t).await.json();
    assert_eq!(e["state"], "SCHEDULED", "{e}");
    let approved = e["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["state"] == "SCHEDULED")
        .count();
    assert_eq!(approved, 1, "{e}");
}

/// Two tests of `check`: `<check>_on_sqlite` and `<check>_on_postgres`.
macro_rules! on_both_engines {
    ($($check:ident => $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test]
        async fn $sqlite() {
            $check(ground_on(TestDatabase::sqlite()).await).await;
        }

        #[tokio::test]
        async fn $postgres() {
            if let Some(db) = postgres().await {
                $check(ground_on(db).await).await;
            }
        }
    )*};
}

on_both_engines! {
    uploads_of_one_path_get_distinct_versions =>
        uploads_of_one_path_get_distinct_versions_on_sqlite,
        uploads_of_one_path_get_distinct_versions_on_postgres;
    applies_of_one_operation_get_distinct_revisions =>
        applies_of_one_operation_get_distinct_revisions_on_sqlite,
        applies_of_one_operation_get_distinct_revisions_on_postgres;
    executions_on_one_system_are_all_scheduled =>
        executions_on_one_system_are_all_scheduled_on_sqlite,
        executions_on_one_system_are_all_scheduled_on_postgres;
    one_of_concurrent_approvals_wins =>
        one_of_concurrent_approvals_wins_on_sqlite,
        one_of_concurrent_approvals_wins_on_postgres;
}
