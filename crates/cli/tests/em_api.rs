//! Clustergate-2's EM API (`docs/em-api.md`) against a real ground, link and flight agent on the
//! real Docker Engine, driven by a CG2 EM client written from the reference's request and
//! response shapes (`em_api/cg2_em_client.py`, Python with `requests`, as CG2's own examples
//! are): every endpoint, its success and each documented error. Then, through our own API: each
//! call was an execution of a generated operation in the caller's EM namespace.
//!
//! Needs `python3` with `requests` (installed by `.ci/run`).

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::{DockerCleanup, Stack, gcc_static, unique};

/// Reads /data/in/input.txt and writes /data/out/result.txt: its length, then its bytes reversed.
const APP: &str = r#"
#include <stdio.h>
#include <sys/stat.h>
int main(void) {
    static char buf[1 << 20];
    FILE *in = fopen("/data/in/input.txt", "rb");
    if (!in) { perror("/data/in/input.txt"); return 2; }
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    mkdir("/data/out", 0755);
    FILE *out = fopen("/data/out/result.txt", "wb");
    if (!out) { perror("/data/out/result.txt"); return 3; }
    fprintf(out, "len=%zu\n", n);
    for (size_t i = 0; i < n; i++) fputc(buf[n - 1 - i], out);
    fclose(out);
    puts("result written");
    return 0;
}
"#;

/// The EM API's per-call uplink bound in this test (CG2's is 2 GB).
const UPLINK_LIMIT: u64 = 16 << 20;

/// The client's fixtures: the app and its Dockerfile (onboard build), a Dockerfile whose build
/// fails, the input and the expected result, a ground-built `docker save` archive and a tar
/// that is no image.
fn fixtures(dir: &Path, load_image: &str) {
    std::fs::create_dir_all(dir).unwrap();
    gcc_static(APP, &dir.join("app"));
    std::fs::write(
        dir.join("Dockerfile"),
        // A multipart upload carries no file mode: the binary is made executable in the build.
        "FROM fpga.dphi.space:5000/busybox\nCOPY app /app\nRUN chmod 755 /app\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Dockerfile.fail"),
        "FROM busybox\nRUN echo building-step && exit 3\n",
    )
    .unwrap();
    let input: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut expected = format!("len={}\n", input.len()).into_bytes();
    expected.extend(input.iter().rev());
    std::fs::write(dir.join("input.txt"), &input).unwrap();
    std::fs::write(dir.join("expected.txt"), expected).unwrap();
    let mut junk = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    junk.append_data(&mut header, "not-an-image.txt", &b"hello"[..])
        .unwrap();
    std::fs::write(dir.join("junk.tar"), junk.into_inner().unwrap()).unwrap();

    // The ground-side path: build here, `docker save`, uplink, load onboard.
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(dir.join("app"), ctx.join("app")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM gcr.io/distroless/static-debian12\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    let st = std::process::Command::new("docker")
        .args(["build", "-q", "--network", "none"])
        .args(["--label", "org.orbitdock.test=1", "-t", load_image])
        .arg(&ctx)
        .status()
        .unwrap();
    assert!(st.success(), "docker build");
    let st = std::process::Command::new("docker")
        .args(["save", "-o"])
        .arg(dir.join("image.tar"))
        .arg(load_image)
        .status()
        .unwrap();
    assert!(st.success(), "docker save");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cg2_em_client_runs_unchanged() {
    let stack = Stack::start_with(|g| g.with_em_uplink_limit(UPLINK_LIMIT)).await;
    let tenant = unique("em");
    let load_image = format!("{}:v1", unique("em-load-"));
    let _cleanup = DockerCleanup {
        tenants: vec![tenant.clone()],
        images: vec![load_image.clone()],
    };
    let user = stack.user(&tenant).await;
    let dir = stack.dir.path().join("fixtures");
    fixtures(&dir, &load_image);

    // The EM agent has said hello (so its nodes count as schedulable).
    let mut seen = false;
    for _ in 0..600 {
        let (_, systems) = user.get("/api/v1/systems").await;
        if systems["systems"][0]["last_seen"].is_string() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the EM agent never said hello");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/em_api/cg2_em_client.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .env("EM_BASE_URL", &stack.url)
        .env("EM_USERNAME", &tenant)
        .env("EM_PASSWORD", format!("pw-{tenant}"))
        .env("EM_FIXTURES", &dir)
        .env("EM_LOAD_IMAGE", &load_image)
        .env("EM_UPLINK_LIMIT", UPLINK_LIMIT.to_string())
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}); this test needs python3 with requests")
        });
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the CG2 EM client failed (see above)");

    // Every call was an execution of a generated operation in the tenant's EM namespace.
    let ns = format!("{tenant}-em");
    let (status, list) = user
        .get(&format!("/api/v1/executions?namespace={ns}"))
        .await;
    assert_eq!(status, 200, "{list}");
    let executions = list["executions"].as_array().unwrap();
    let operations: std::collections::BTreeSet<&str> = executions
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        operations.into_iter().collect::<Vec<_>>(),
        [
            "em-files-delete",
            "em-files-downlink",
            "em-files-list",
            "em-files-uplink",
            "em-image-build",
            "em-image-list",
            "em-image-load",
            "em-pod-run",
            "em-pvc-delete",
            "em-pvc-list",
        ]
    );
    assert!(executions.iter().all(|e| e["system"] == "em"));
    let failed_builds = executions
        .iter()
        .filter(|e| e["operation"] == "em-image-build" && e["state"] == "FAILED")
        .count();
    assert_eq!(failed_builds, 1, "the failing build is an execution too");
    let (status, op) = user
        .get(&format!("/api/v1/operations/{ns}/em-pod-run"))
        .await;
    assert_eq!(status, 200);
    let yaml = op["yaml"].as_str().unwrap();
    assert!(
        yaml.contains("type: \"dphi.space.cg2.pod.run\"") && yaml.contains("system: \"cg2.em\""),
        "{yaml}"
    );
    assert!(
        op["revision"].as_i64().unwrap() > 1,
        "one revision per new call: {op}"
    );
    let first: &Value = &executions[executions.len() - 1];
    assert_eq!(first["namespace"], Value::String(ns));
}
