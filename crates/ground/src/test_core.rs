//! Fixtures of the ground's unit tests: a core on a temporary directory and a system whose
//! link is never up, so whatever is queued for it stays queued.

use std::path::Path;
use std::sync::Arc;

use crate::blobs::BlobStore;
use crate::config::SystemLink;
use crate::{Core, db};

/// A core on `dir` with each `(namespace, owner)` of `namespaces` (the owners made users) and an
/// operation `op` (revision 1) in the first namespace.
pub(crate) async fn core(dir: &Path, namespaces: &[(&str, &str)]) -> Arc<Core> {
    let db = db::open(&db::sqlite_url(&dir.join("ground.sqlite")))
        .await
        .unwrap();
    for (namespace, owner) in namespaces {
        sqlx::query(
            "INSERT INTO users (name, password_hash, created_at) VALUES ($1, 'x', 0)
             ON CONFLICT DO NOTHING",
        )
        .bind(owner)
        .execute(&db)
        .await
        .unwrap();
        sqlx::query("INSERT INTO namespaces (name, owner, created_at) VALUES ($1, $2, 0)")
            .bind(namespace)
            .bind(owner)
            .execute(&db)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO operations (namespace, id, revision, created_at, updated_at) \
         VALUES ($1, 'op', 1, 0, 0)",
    )
    .bind(namespaces[0].0)
    .execute(&db)
    .await
    .unwrap();
    let blobs = BlobStore::open(dir).await.unwrap();
    Arc::new(Core {
        db,
        blobs,
        views: Default::default(),
    })
}

/// A system `name` whose link points at a port nobody listens on and is never in contact.
pub(crate) fn idle_system(name: &str) -> SystemLink {
    SystemLink {
        name: name.into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        link: "127.0.0.1:9".parse().unwrap(),
        key: wire::LinkKey::from_bytes([9; 32]),
        rate_bits_per_sec: None,
        contact: link::Contact::Windows(Vec::new()),
        orbit: None,
        link_settings: link::LinkSettings::STANDARD,
    }
}
