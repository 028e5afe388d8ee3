//! The test grounds' database: `ground.sqlite` in the ground's directory (the default), or a
//! fresh PostgreSQL database per test.
//!
//! - `ORBITDOCK_TEST_POSTGRES_URL`: a PostgreSQL server the tests may create databases on, as the
//!   URL of a database to connect to first (`postgres://postgres@127.0.0.1:PORT/postgres`);
//!   `.ci/run` starts a throwaway one and sets it.
//! - `ORBITDOCK_TEST_DATABASE=postgres`: every test ground uses a database of its own on that
//!   server (`t_<random>`, made with the `C` collation the ground needs, dropped with the test).
//! - `ORBITDOCK_REQUIRE_POSTGRES=1`: a test that needs PostgreSQL fails when the server is not
//!   given, instead of passing over its PostgreSQL part.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// A test's database; a PostgreSQL one is dropped when this is.
#[derive(Debug)]
pub struct TestDatabase {
    /// `None`: the ground's default, `ground.sqlite` in its data directory.
    url: Option<String>,
    /// The server's URL and the database's name, to drop it.
    made: Option<(String, String)>,
}

impl TestDatabase {
    /// The database the environment asks for (see the module's documentation).
    pub async fn for_test() -> TestDatabase {
        match std::env::var("ORBITDOCK_TEST_DATABASE").as_deref() {
            Ok("postgres") => {
                let server = server_url().expect(
                    "ORBITDOCK_TEST_DATABASE=postgres needs ORBITDOCK_TEST_POSTGRES_URL (see .ci/run)",
                );
                TestDatabase::postgres(&server).await
            }
            Ok("sqlite") | Err(_) => TestDatabase::sqlite(),
            Ok(other) => {
                panic!("ORBITDOCK_TEST_DATABASE is '{other}': expected sqlite or postgres")
            }
        }
    }

    /// `ground.sqlite` in the ground's data directory.
    pub fn sqlite() -> TestDatabase {
        TestDatabase {
            url: None,
            made: None,
        }
    }

    /// A new, empty database on the PostgreSQL server at `server`.
    pub async fn postgres(server: &str) -> TestDatabase {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(server)
            .await
            .unwrap_or_else(|e| panic!("connecting to ORBITDOCK_TEST_POSTGRES_URL: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        )))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
        conn.close().await.ok();
        TestDatabase {
            url: Some(with_database(server, &name)),
            made: Some((server.to_string(), name)),
        }
    }

    /// The URL to give the ground, `None` for its default.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.made.is_some()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((server, name)) = self.made.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on: another thread with
        // its own runtime drops the database (and ends the connections the ground left open).
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&server).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("dropping a test database failed: {dropped:?}");
        }
    }
}

/// The PostgreSQL server tests may use; `None` when none is given, which fails the test when
/// `ORBITDOCK_REQUIRE_POSTGRES=1`.
pub fn server_url() -> Option<String> {
    match std::env::var("ORBITDOCK_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("ORBITDOCK_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "ORBITDOCK_REQUIRE_POSTGRES=1 but ORBITDOCK_TEST_POSTGRES_URL is not set: start \
                 PostgreSQL as .ci/run does and set it"
            );
            None
        }
    }
}

/// `server` (`postgres://…/DB?PARAMS`) with its database replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, params) = match server.split_once('?') {
        Some((base, params)) => (base, Some(params)),
        None => (server, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match params {
        Some(params) => format!("{root}/{name}?{params}"),
        None => format!("{root}/{name}"),
    }
}
