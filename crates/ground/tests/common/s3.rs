//! The test grounds' blobs: the data directory alone (the default), or an S3-compatible store.
//!
//! - `ORBITDOCK_TEST_S3_URL`: the endpoint of an S3-compatible server (`http://127.0.0.1:PORT`)
//!   holding the bucket `ORBITDOCK_TEST_S3_BUCKET` (default `orbitdock-test`); `.ci/s3.sh`
//!   starts one (moto) and sets both.
//! - `ORBITDOCK_TEST_BLOBS=s3`: every test ground keeps its blobs there too, under a prefix of
//!   its own (its data directory's name, so that a reopened ground finds its blobs again).
//! - `ORBITDOCK_REQUIRE_S3=1`: a test that needs the server fails when it is not given, instead
//!   of passing over its S3 part.

use std::path::Path;

use ground::S3Settings;

/// The bucket the tests use when `ORBITDOCK_TEST_S3_BUCKET` names none.
const DEFAULT_BUCKET: &str = "orbitdock-test";

/// The S3 settings of a test ground on `dir`, as the environment asks (see the module's
/// documentation).
pub fn for_dir(dir: &Path) -> Option<S3Settings> {
    match std::env::var("ORBITDOCK_TEST_BLOBS").as_deref() {
        Ok("s3") => {
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("ground");
            let prefix = format!("t/{}", name.trim_start_matches('.'));
            Some(settings(&prefix).expect(
                "ORBITDOCK_TEST_BLOBS=s3 needs ORBITDOCK_TEST_S3_URL (see .ci/run and .ci/s3.sh)",
            ))
        }
        Ok("local") | Err(_) => None,
        Ok(other) => panic!("ORBITDOCK_TEST_BLOBS is '{other}': expected local or s3"),
    }
}

/// Settings for the blobs under `prefix` of the test bucket; `None` when no server is given,
/// which fails the test when `ORBITDOCK_REQUIRE_S3=1`.
pub fn settings(prefix: &str) -> Option<S3Settings> {
    let endpoint = endpoint()?;
    let bucket =
        std::env::var("ORBITDOCK_TEST_S3_BUCKET").unwrap_or_else(|_| DEFAULT_BUCKET.to_string());
    Some(S3Settings {
        url: format!("s3://{bucket}/{prefix}"),
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        access_key_id: Some("orbitdock-test".into()),
        secret_access_key: Some("orbitdock-test-secret".into()),
        session_token: None,
    })
}

/// The test server's endpoint, if one is given.
pub fn endpoint() -> Option<String> {
    match std::env::var("ORBITDOCK_TEST_S3_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("ORBITDOCK_REQUIRE_S3").as_deref() != Ok("1"),
                "ORBITDOCK_REQUIRE_S3=1 but ORBITDOCK_TEST_S3_URL is not set: start the S3 \
                 server as .ci/run does (.ci/s3.sh) and set it"
            );
            None
        }
    }
}

/// A prefix no other test uses.
pub fn fresh_prefix() -> String {
    format!("t/{}", uuid::Uuid::new_v4().simple())
}
