//! The two engines get the same schema from the same migrations: every table has the same
//! columns, with the same nullability, on SQLite and on PostgreSQL.

mod common;

use std::collections::BTreeSet;

use common::TestDatabase;
use sqlx::Connection;

/// (table, column, nullable) of every column of the ground's tables.
type Columns = BTreeSet<(String, String, bool)>;

async fn sqlite_columns(dir: &std::path::Path) -> Columns {
    let url = format!("sqlite://{}", dir.join("ground.sqlite").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT m.name, p.name, p.\"notnull\", p.pk FROM sqlite_master m, pragma_table_info(m.name) p
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite%' AND m.name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    // A primary key's columns are NOT NULL on PostgreSQL whatever the declaration says.
    rows.into_iter()
        .map(|(table, column, not_null, pk)| (table, column, not_null == 0 && pk == 0))
        .collect()
}

async fn postgres_columns(url: &str) -> Columns {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, is_nullable::text
         FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(table, column, nullable)| (table, column, nullable == "YES"))
        .collect()
}

#[tokio::test]
async fn both_engines_have_the_same_tables_and_columns() {
    let Some(server) = common::postgres::server_url() else {
        eprintln!("ORBITDOCK_TEST_POSTGRES_URL is not set: nothing to compare SQLite with");
        return;
    };
    let sqlite = common::ground_on(TestDatabase::sqlite(), Vec::new()).await;
    let postgres = common::ground_on(TestDatabase::postgres(&server).await, Vec::new()).await;
    let on_sqlite = sqlite_columns(sqlite.dir.path()).await;
    let on_postgres = postgres_columns(postgres.database.url().unwrap()).await;
    assert!(on_sqlite.len() > 50, "{on_sqlite:?}");
    assert_eq!(on_sqlite, on_postgres);
}
