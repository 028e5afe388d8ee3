//! Issue 10's layer-aware images, on the Engineering Model with the real Docker Engine: a
//! `docker save` archive of an app on the catalogue's glibc base (its stand-in) goes up with
//! the base's layers left out (the flight reported them in `BaseLayers` and exports them from
//! its engine), exactly the patch the ground planned; the flight rebuilds the byte-exact archive
//! and loads it, and the image onboard has exactly the id the ground computed.

mod support;

use std::collections::HashSet;

use serde_json::Value;
use support::{
    DockerCleanup, Stack, build_and_save, docker, inspect_id, push_archive as push, unique,
};

const BASE: &str = "gcr.io/distroless/cc-debian12:latest";

/// The base's layers as the engine records them (DiffIDs).
fn base_layers() -> HashSet<[u8; 32]> {
    let out = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        BASE,
    ]);
    let ids: Vec<String> = serde_json::from_slice(&out).unwrap();
    ids.iter()
        .map(|s| s.parse::<wire::Digest>().unwrap().0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_on_a_catalogue_base_goes_up_without_the_base_layers() {
    let stack = Stack::start().await;
    let tenant = unique("l");
    let image = format!("{}:v1", unique("e2e-layers-"));
    let _cleanup = DockerCleanup {
        tenants: vec![tenant.clone()],
        images: vec![image.clone()],
    };
    let user = stack.user(&tenant).await;
    let dir = stack.dir.path();
    let ns = unique("ns");
    let archive = dir.join("app.tar");
    let id = build_and_save(
        dir,
        BASE,
        "#include <stdio.h>\nint main(void) { puts(\"hello from a layered image\"); return 0; }\n",
        &image,
        &archive,
    );
    let bytes = std::fs::read(&archive).unwrap();
    let size = bytes.len() as u64;
    push(&user, dir, &ns, &archive).await;

    // What the ground must make: the archive without the base's layers, which must be in it.
    let onboard = base_layers();
    let expected =
        delta::make_layers(None, &bytes, &onboard).expect("the base's layers are members");
    let named = delta::layers::named(&expected).unwrap();
    let base_bytes: u64 = named.iter().map(|(_, s)| s).sum();
    assert!(!named.is_empty() && base_bytes > 1 << 20, "{named:?}");

    // The flight reports its catalogue's layers after its Hello: until the ground has them,
    // the plan says whole-zstd (a bound on polls, not a timing).
    let source = format!("{ns}:/image.tar");
    let mut plan = Value::Null;
    for _ in 0..120 {
        plan = user.plan_json(&source, "em").await;
        if plan["files"][0]["encoding"] == "layers" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let planned = &plan["files"][0];
    assert_eq!(planned["encoding"], "layers", "{plan:#}");
    let planned_bytes = planned["bytes"].as_u64().unwrap();
    assert_eq!(
        planned_bytes,
        expected.len() as u64,
        "the ground made exactly the patch that leaves the base's layers out"
    );
    assert!(planned_bytes + base_bytes < size, "{plan:#}");

    let exec = user
        .run_operation(
            dir,
            &format!(
                "id: deploy\nnamespace: {ns}\ntasks:\n\
                 - id: up\n  type: uplink\n  source: /image.tar\n  destination: /\n\
                 - id: load\n  type: docker.load\n  tarfile: image.tar\n  image: {image}\n\
                 - id: run\n  type: pod.run\n  image: {image}\n  max_duration: 5\n"
            ),
        )
        .await;
    assert_eq!(exec["state"], "COMPLETED", "{exec:#}");
    assert!(
        exec["tasks"][2]["outputs"]["log_tail"]
            .to_string()
            .contains("hello from a layered image"),
        "{exec:#}"
    );
    assert_eq!(
        inspect_id(&format!("tenants/{tenant}/{image}")),
        Some(id),
        "loaded with exactly the id the ground computed"
    );
    let up = &exec["uplink"];
    let sent = up["sent"].as_array().unwrap();
    assert_eq!(sent.len(), 1, "{up:#}");
    assert_eq!(sent[0]["encoding"], "layers", "{up:#}");
    assert_eq!(
        sent[0]["bytes"].as_u64().unwrap(),
        planned_bytes,
        "as planned"
    );
    let wire_bytes = up["wire_bytes"].as_u64().unwrap();
    eprintln!(
        "docker save archive {size} bytes, base layers {base_bytes} bytes ({} layers): {planned_bytes} bytes of patch, {wire_bytes} bytes on the wire (plan {})",
        named.len(),
        up["plan_bytes"]
    );
}
