//! Two ground processes on one database and one S3 bucket, each with its own data directory
//! (docs/scale-out.md, "What is shared"): each serves the files the other stored.
//!
//! Needs the S3 server of `.ci/s3.sh` (`ORBITDOCK_TEST_S3_URL`); passed over without one, failed
//! without one under `ORBITDOCK_REQUIRE_S3=1`. The database is the test's (SQLite, or PostgreSQL
//! with `ORBITDOCK_TEST_DATABASE=postgres`).

mod common;

use axum::http::StatusCode;
use common::{Entry, TestDatabase, TestGround, tar, unreachable_system};
use ground::{Ground, GroundConfig, S3Settings};

/// A ground on `database` (its own URL, or `sqlite_of`'s `ground.sqlite`) with its blobs in `s3`.
async fn open(database: &TestDatabase, sqlite_of: &TestGround, s3: &S3Settings) -> TestGround {
    let dir = tempfile::tempdir().unwrap();
    let url = match database.url() {
        Some(url) => url.to_string(),
        None => format!(
            "sqlite://{}?mode=rw",
            sqlite_of.dir.path().join("ground.sqlite").display()
        ),
    };
    let ground = Ground::open(GroundConfig {
        data_dir: dir.path().to_path_buf(),
        database_url: Some(url),
        s3: Some(s3.clone()),
        systems: vec![unreachable_system("em")],
        plan_signer: common::signer(),
    })
    .await
    .unwrap();
    TestGround {
        ground,
        dir,
        // The first ground's database, which this one only uses.
        database: TestDatabase::sqlite(),
    }
}

#[tokio::test]
async fn replicas_serve_each_others_uploads() {
    let Some(s3) = common::s3::settings(&common::s3::fresh_prefix()) else {
        eprintln!("ORBITDOCK_TEST_S3_URL is not set: not run");
        return;
    };
    let database = TestDatabase::for_test().await;
    let a_dir = tempfile::tempdir().unwrap();
    let a = Ground::open(GroundConfig {
        s3: Some(s3.clone()),
        ..common::config(&a_dir, &database, vec![unreachable_system("em")])
    })
    .await
    .unwrap();
    a.ensure_user("alice", "pw-alice").await.unwrap();
    let a = TestGround {
        ground: a,
        dir: a_dir,
        database,
    };
    let b = open(&a.database, &a, &s3).await;

    let t = a.login("alice").await;
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let r = a
        .upload_tar(
            "demo",
            "",
            &t,
            tar(&[Entry::File("data/one.bin", &content, 0o644)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(a.blob_count(), 1);
    assert_eq!(b.blob_count(), 0, "B has not seen the blob yet");

    // B: the session and the file's row come from the database, the bytes from the bucket.
    let r = b
        .get("/api/v1/namespaces/demo/files/data/one.bin", &t)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.body, content);
    assert_eq!(b.blob_count(), 1, "fetched into B's cache");

    // The other way round, and A's cache emptied: A fetches its own upload back from the bucket.
    let r = b
        .upload_tar(
            "demo",
            "",
            &t,
            tar(&[Entry::File("data/two.txt", b"from B", 0o644)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    std::fs::remove_dir_all(a.dir.path().join("blobs").join("sha256")).unwrap();
    std::fs::create_dir(a.dir.path().join("blobs").join("sha256")).unwrap();
    for (path, want) in [
        ("data/two.txt", b"from B".as_slice()),
        ("data/one.bin", &content),
    ] {
        let r = a
            .get(&format!("/api/v1/namespaces/demo/files/{path}"), &t)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        assert_eq!(r.body, want, "{path}");
    }
    assert_eq!(a.blob_count(), 2);
}
