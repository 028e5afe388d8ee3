//! Issue 10's must-show, on the Engineering Model with the real Docker Engine: image v1 (a
//! static binary on a catalogue base, a `docker save` archive made on the ground) uplinked and
//! loaded; v2, the same program with one line changed, planned and then deployed as a delta
//! against v1's archive onboard; each image onboard has exactly the id the ground computed (the
//! archive's config digest); the execution reports the bytes on the wire, far below the
//! archive's size, exactly as `orbitdock plan` predicted.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{
    DockerCleanup, Stack, User, build_and_save, inspect_id, push_archive as push, unique,
};

/// The stand-in of the catalogue's static base.
const BASE: &str = "gcr.io/distroless/static-debian12";

/// Prints which version it is; v2 changes one line.
fn app(version: &str) -> String {
    format!(
        r#"
#include <stdio.h>
int main(void) {{
    puts("hello from {version}");
    return 0;
}}
"#
    )
}

/// Uplinks `/image.tar`, loads it as `image` and runs it; returns the execution.
async fn deploy(user: &User, dir: &Path, ns: &str, image: &str) -> Value {
    user.run_operation(
        dir,
        &format!(
            "id: deploy\nnamespace: {ns}\ntasks:\n\
             - id: up\n  type: uplink\n  source: /image.tar\n  destination: /\n\
             - id: load\n  type: docker.load\n  tarfile: image.tar\n  image: {image}\n\
             - id: run\n  type: pod.run\n  image: {image}\n  max_duration: 5\n"
        ),
    )
    .await
}

fn log_tail(exec: &Value) -> String {
    exec["tasks"][2]["outputs"]["log_tail"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v2_of_an_image_goes_up_as_a_delta_and_loads_with_the_id_the_ground_computed() {
    let stack = Stack::start().await;
    let tenant = unique("d");
    let name = unique("e2e-delta-");
    let (v1, v2) = (format!("{name}:v1"), format!("{name}:v2"));
    let _cleanup = DockerCleanup {
        tenants: vec![tenant.clone()],
        images: vec![v1.clone(), v2.clone()],
    };
    let user = stack.user(&tenant).await;
    let dir = stack.dir.path();
    let ns = unique("ns");
    let archive = |v: &str| -> PathBuf { dir.join(format!("{v}.tar")) };

    // v1: nothing of it onboard, but its base: the archive goes compressed (its base layer
    // left out once the ground knows it is onboard).
    let id1 = build_and_save(dir, BASE, &app("v1"), &v1, &archive("v1"));
    push(&user, dir, &ns, &archive("v1")).await;
    let size1 = std::fs::metadata(archive("v1")).unwrap().len();
    let exec = deploy(&user, dir, &ns, &v1).await;
    assert_eq!(exec["state"], "COMPLETED", "{exec:#}");
    assert!(log_tail(&exec).contains("hello from v1"), "{exec:#}");
    let onboard1 = format!("tenants/{tenant}/{v1}");
    assert_eq!(inspect_id(&onboard1), Some(id1.clone()));
    let sent = &exec["uplink"]["sent"];
    assert_eq!(sent.as_array().unwrap().len(), 1, "{exec:#}");
    // Compressed; or, once the flight reported its catalogue's layers, without the base's
    // layer (the layers kind).
    assert!(
        ["whole-zstd", "layers"].contains(&sent[0]["encoding"].as_str().unwrap()),
        "{exec:#}"
    );
    assert!(sent[0]["bytes"].as_u64().unwrap() < size1, "{exec:#}");
    let archive1 = sent[0]["digest"].as_str().unwrap().to_string();

    // v2: one line of the program changed. The plan says a delta against v1's archive onboard.
    let id2 = build_and_save(dir, BASE, &app("v2"), &v2, &archive("v2"));
    assert_ne!(id1, id2);
    push(&user, dir, &ns, &archive("v2")).await;
    let size2 = std::fs::metadata(archive("v2")).unwrap().len();
    let plan = user.plan_json(&format!("{ns}:/image.tar"), "em").await;
    let planned = &plan["files"][0];
    assert_eq!(planned["path"], "/image.tar", "{plan:#}");
    assert_eq!(planned["base"], archive1.as_str(), "{plan:#}");
    let kind = planned["encoding"].as_str().unwrap().to_string();
    assert!(
        ["zstd-ref", "bsdiff", "layers"].contains(&kind.as_str()),
        "{plan:#}"
    );
    let planned_bytes = planned["bytes"].as_u64().unwrap();
    // The text form, for a person.
    assert!(
        user.cli(&["plan", &format!("{ns}:/image.tar"), "--system", "em"])
            .await
            .status
            .success()
    );

    let exec = deploy(&user, dir, &ns, &v2).await;
    assert_eq!(exec["state"], "COMPLETED", "{exec:#}");
    assert!(log_tail(&exec).contains("hello from v2"), "{exec:#}");
    let onboard2 = format!("tenants/{tenant}/{v2}");
    assert_eq!(inspect_id(&onboard2), Some(id2));

    // The bytes on the wire, as the execution reports them (`exec show`, text and JSON).
    let id = exec["id"].as_str().unwrap();
    let (status, shown) = user.cli_json(&["exec", "show", id]).await;
    assert_eq!(status, 0, "orbitdock exec show {id}: {shown}");
    let up = &shown["uplink"];
    let sent = up["sent"].as_array().unwrap();
    assert_eq!(sent.len(), 1, "{up:#}");
    assert_eq!(sent[0]["encoding"], kind.as_str(), "{up:#}");
    assert_eq!(sent[0]["base"], archive1.as_str(), "{up:#}");
    assert_eq!(
        sent[0]["bytes"].as_u64().unwrap(),
        planned_bytes,
        "as planned"
    );
    let wire_bytes = up["wire_bytes"].as_u64().unwrap();
    assert_eq!(up["object_bytes"].as_u64().unwrap(), size2);
    assert!(
        wire_bytes * 50 < size2,
        "{wire_bytes} bytes on the wire for a {size2}-byte archive"
    );
    let text = user.cli(&["exec", "show", id]).await;
    assert!(String::from_utf8_lossy(&text.stdout).contains("bytes on the wire"));
    eprintln!(
        "v1 archive {size1} bytes: {} bytes on the wire; v2 archive {size2} bytes: {wire_bytes} bytes on the wire ({kind} against v1, plan {} bytes)",
        exec_wire(&user, &exec).await,
        up["plan_bytes"]
    );

    // The mirror knows v2's archive is at /image.tar: planning it again sends nothing.
    let again = user.plan_json(&format!("{ns}:/image.tar"), "em").await;
    assert_eq!(again["files"][0]["encoding"], "nothing", "{again:#}");
    assert_eq!(again["total"]["bytes"], 0);
}

/// The v1 execution's bytes on the wire, for the summary line.
async fn exec_wire(user: &User, exec: &Value) -> u64 {
    let (_, list) = user.get("/api/v1/executions").await;
    let first = list["executions"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["id"] != exec["id"])
        .map(|e| e["id"].as_str().unwrap().to_string())
        .unwrap();
    let (_, e) = user.get(&format!("/api/v1/executions/{first}")).await;
    e["uplink"]["wire_bytes"].as_u64().unwrap()
}
