//! Operations written as a Clustergate-2 user writes them, run end to end on the Engineering
//! Model: `dphi.space.cg2.` task types, `system: cg2.em`, files selected one by one from nested
//! folders of the namespace, for both paths of the seed guide ("Docker Best Practices in
//! Space"): build onboard from a preloaded base, and build on the ground, `docker save`, load
//! onboard. The uplink keeps the namespace's layout, so the pod finds `/data/in/input.txt`, and
//! the result comes down with Clustergate-2's outputs (`files` with `path`, `uri`, `contentType`,
//! `contentLength`).

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{DockerCleanup, Stack, User, gcc_static, unique};

/// The payload: reads `/data/in/input.txt` and a file of its own folder baked into the image
/// (`/my-app/etc/greeting.txt`), and writes `/data/out/result.txt`: the greeting, `$GREETING`,
/// the input's length, then the input reversed.
const APP: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
int main(void) {
    static char buf[1 << 20];
    char greeting[256] = "";
    FILE *g = fopen("/my-app/etc/greeting.txt", "rb");
    if (!g) { perror("/my-app/etc/greeting.txt"); return 4; }
    size_t gn = fread(greeting, 1, sizeof greeting - 1, g);
    greeting[gn] = '\0';
    greeting[strcspn(greeting, "\n")] = '\0';
    fclose(g);
    FILE *in = fopen("/data/in/input.txt", "rb");
    if (!in) { perror("/data/in/input.txt"); return 2; }
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    mkdir("/data/out", 0755);
    FILE *out = fopen("/data/out/result.txt", "wb");
    if (!out) { perror("/data/out/result.txt"); return 3; }
    const char *env = getenv("GREETING");
    fprintf(out, "%s|%s|len=%zu\n", greeting, env ? env : "-", n);
    for (size_t i = 0; i < n; i++) fputc(buf[n - 1 - i], out);
    fclose(out);
    puts("result written");
    return 0;
}
"#;

const GREETING: &str = "hello from my-app/etc";

fn input_bytes() -> Vec<u8> {
    (0..4099u32).map(|i| (i * 13 % 251) as u8).collect()
}

fn expected_result() -> Vec<u8> {
    let input = input_bytes();
    let mut out = format!("{GREETING}|from the ground|len={}\n", input.len()).into_bytes();
    out.extend(input.iter().rev());
    out
}

/// The seed guide's Dockerfile, with the payload as a folder: `COPY my-app /my-app`.
const DOCKERFILE: &str = "# Use one of the preloaded base images\n\
FROM gcr.io/distroless/cc-debian12\n\
\n\
# Copy the program's folder into the image\n\
COPY my-app /my-app\n\
\n\
USER 65532:65532\n\
\n\
ENTRYPOINT [\"/my-app/bin/app\"]\n";

/// `my-app/` (the binary in `bin/`, a file of its own in `etc/`), written into `dir`.
fn my_app(dir: &Path) {
    std::fs::create_dir_all(dir.join("my-app/bin")).unwrap();
    std::fs::create_dir_all(dir.join("my-app/etc")).unwrap();
    gcc_static(APP, &dir.join("my-app/bin/app"));
    std::fs::write(dir.join("my-app/etc/greeting.txt"), format!("{GREETING}\n")).unwrap();
}

/// The namespace's input files, and some that no task selects.
fn inputs(dir: &Path) {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    std::fs::create_dir_all(dir.join("notes")).unwrap();
    std::fs::write(dir.join("in/input.txt"), input_bytes()).unwrap();
    std::fs::write(dir.join("in/unused.txt"), "not selected\n").unwrap();
    std::fs::write(dir.join("notes/readme.md"), "not selected either\n").unwrap();
}

async fn push(user: &User, folder: &Path, ns: &str) {
    let out = user
        .cli(&["files", "push", folder.to_str().unwrap(), "--namespace", ns])
        .await;
    assert!(out.status.success(), "files push failed");
}

/// Validates the operation through the API: valid, and preflight finds no error (in particular
/// no file missing from the volume: it sees the files where the uplink places them).
async fn validate(user: &User, yaml: &str) {
    let r = user
        .http(reqwest::Method::POST, "/api/v1/operations/validate")
        .header("content-type", "application/yaml")
        .body(yaml.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["valid"], true, "{v:#}");
    let errors: Vec<&Value> = v["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert!(errors.is_empty(), "{v:#}");
}

fn task<'a>(exec: &'a Value, id: &str) -> &'a Value {
    exec["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in {exec:#}"))
}

/// The execution ended as Clustergate-2 names it, every task succeeded, and the types are shown
/// without the prefix.
fn assert_completed(exec: &Value) {
    assert_eq!(exec["state"], "COMPLETED", "{exec:#}");
    let states: Vec<&str> = exec["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["CREATED", "SCHEDULED", "RUNNING", "COMPLETED"]);
    for t in exec["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "SUCCESS", "{t:#}");
        assert!(!t["type"].as_str().unwrap().starts_with("dphi."), "{t:#}");
    }
}

/// The downlinked result: in `files` with Clustergate-2's fields, served by its `uri`, and what
/// the pod computed from `/data/in/input.txt`.
async fn assert_result(user: &User, exec: &Value, ns: &str) {
    let down = &task(exec, "results")["outputs"];
    let files = down["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{down:#}");
    let f = &files[0];
    let want = expected_result();
    assert_eq!(f["path"], "/results/out/result.txt", "{f:#}");
    assert_eq!(f["version"], 1);
    assert_eq!(f["contentLength"], want.len() as u64);
    assert_eq!(f["size"], want.len() as u64);
    assert_eq!(f["contentType"], "application/octet-stream");
    assert_eq!(down["contentLength"], want.len() as u64);
    let uri = f["uri"].as_str().unwrap();
    assert_eq!(
        uri,
        format!("/api/v1/namespaces/{ns}/files/results/out/result.txt?version=1")
    );
    let r = user.http(reqwest::Method::GET, uri).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"],
        f["contentType"].as_str().unwrap()
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), want.as_slice());
}

/// What the ground's mirror of the volume lists.
async fn volume_paths(user: &User, tenant: &str) -> Vec<String> {
    let (status, listing) = user
        .get(&format!("/api/v1/systems/em/volumes/{tenant}-pvc/files"))
        .await;
    assert_eq!(status, 200);
    listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str().map(str::to_string))
        .collect()
}

fn has(paths: &[String], p: &str) -> bool {
    paths.iter().any(|x| x == p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cg2_build_onboard_from_a_preloaded_base() {
    let stack = Stack::start().await;
    let tenant = unique("cgb");
    let _cleanup = DockerCleanup {
        tenants: vec![tenant.clone()],
        images: vec![],
    };
    let user = stack.user(&tenant).await;
    let dir = stack.dir.path();

    // The namespace, as uploaded through the dashboard: the Dockerfile at the root, the
    // program's folder, the input in a folder of its own, and files nobody selects.
    let folder = dir.join(unique("ns-files"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("Dockerfile"), DOCKERFILE).unwrap();
    my_app(&folder);
    inputs(&folder);
    let ns = unique("cg2");
    push(&user, &folder, &ns).await;

    let pvc = format!("{tenant}-pvc");
    let yaml = format!(
        r#"id: my-app-onboard
namespace: {ns}
system: cg2.em
description: Build onboard from a preloaded base image, run, bring the result down.
labels:
  guide: docker-best-practices-in-space
tasks:
  - id: upload
    type: dphi.space.cg2.uplink
    source: ["/Dockerfile", "/my-app", "/in/input.txt"]
    destination: /
    volume: {pvc}
    on_failure: stop
  - id: copy
    type: dphi.space.cg2.uplink
    source: ["/in/input.txt"]
    destination: /x
    volume: {pvc}
  - id: build
    type: dphi.space.cg2.docker.build
    dockerfile: Dockerfile
    context: .
    image:
      name: my-app
      tag: v1
    volume: {pvc}
    max_duration: 10
    on_failure: stop
  - id: run
    type: dphi.space.cg2.pod.run
    pod_name: my-app
    image:
      name: my-app
      tag: v1
    env:
      - name: GREETING
        value: from the ground
    node: FPGA
    volume: {pvc}
    max_duration: 5
    scheduled_time: null
    merge: false
    on_failure: stop
  - id: ls
    type: dphi.space.cg2.files.list
    folder: /
    depth: 3
    volume: {pvc}
  - id: results
    type: dphi.space.cg2.downlink
    source: ["out/*.txt"]
    destination: /results
    volume: {pvc}
"#
    );
    validate(&user, &yaml).await;
    let exec = user.run_operation(dir, &yaml).await;
    assert_completed(&exec);
    assert_result(&user, &exec, &ns).await;

    // Every selected file kept its namespace path; nothing unselected went up.
    let paths = volume_paths(&user, &tenant).await;
    for want in [
        "/Dockerfile",
        "/my-app/bin/app",
        "/my-app/etc/greeting.txt",
        "/in/input.txt",
        "/x/in/input.txt",
        "/out/result.txt",
    ] {
        assert!(has(&paths, want), "{want} not in {paths:?}");
    }
    for absent in [
        "/input.txt",
        "/x/input.txt",
        "/in/unused.txt",
        "/notes/readme.md",
    ] {
        assert!(!has(&paths, absent), "{absent} in {paths:?}");
    }

    // files.list: Clustergate-2's `files`, each with its length, beside the listing.
    let ls = &task(&exec, "ls")["outputs"];
    let input = ls["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/in/input.txt")
        .unwrap_or_else(|| panic!("{ls:#}"));
    assert_eq!(input["contentLength"], input_bytes().len() as u64);
    assert!(
        input["uri"].is_null() && input["digest"].is_null(),
        "{input:#}"
    );
    let listed: u64 = ls["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["contentLength"].as_u64().unwrap())
        .sum();
    assert_eq!(ls["contentLength"], listed);
    assert!(
        ls["listing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/my-app" && e["is_dir"] == true),
        "{ls:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cg2_build_on_the_ground_save_and_load_onboard() {
    let stack = Stack::start().await;
    let tenant = unique("cgl");
    let name = unique("e2e-cg2-");
    let image = format!("{name}:v1");
    let _cleanup = DockerCleanup {
        tenants: vec![tenant.clone()],
        images: vec![image.clone()],
    };
    let user = stack.user(&tenant).await;
    let dir = stack.dir.path();

    // On the ground: build the image (here with this machine's engine: the EM's platform) and
    // `docker save` it into the namespace's archives/ folder.
    let ctx = dir.join(unique("ctx"));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    my_app(&ctx);
    docker(&[
        "build",
        "-q",
        "--network",
        "none",
        "--label",
        "org.orbitdock.test=1",
        "-t",
        &image,
        ctx.to_str().unwrap(),
    ]);
    let folder = dir.join(unique("ns-files"));
    std::fs::create_dir_all(folder.join("archives")).unwrap();
    let tar: PathBuf = folder.join("archives/app.tar");
    docker(&["save", "-o", tar.to_str().unwrap(), &image]);
    inputs(&folder);
    let ns = unique("cg2");
    push(&user, &folder, &ns).await;

    let pvc = format!("{tenant}-pvc");
    let yaml = format!(
        r#"id: my-app-loaded
namespace: {ns}
system: cg2.em
tasks:
  - id: upload
    type: dphi.space.cg2.uplink
    source: ["/archives/app.tar", "/in/input.txt"]
    destination: /
    volume: {pvc}
  - id: load
    type: dphi.space.cg2.docker.load
    tarfile: /archives/app.tar
    image:
      name: {name}
      tag: v1
    volume: {pvc}
  - id: run
    type: dphi.space.cg2.pod.run
    pod_name: my-app
    image:
      name: {name}
      tag: v1
    env:
      - name: GREETING
        value: from the ground
    node: default
    volume: {pvc}
    max_duration: 5
  - id: results
    type: dphi.space.cg2.downlink
    source: ["out/result.txt"]
    destination: /results
    volume: {pvc}
"#
    );
    // Preflight finds the archive where the uplink puts it: archives/app.tar.
    validate(&user, &yaml).await;
    let exec = user.run_operation(dir, &yaml).await;
    assert_completed(&exec);
    assert_result(&user, &exec, &ns).await;

    let paths = volume_paths(&user, &tenant).await;
    for want in ["/archives/app.tar", "/in/input.txt", "/out/result.txt"] {
        assert!(has(&paths, want), "{want} not in {paths:?}");
    }
    for absent in ["/app.tar", "/input.txt", "/in/unused.txt"] {
        assert!(!has(&paths, absent), "{absent} in {paths:?}");
    }
}

fn docker(args: &[&str]) {
    let status = std::process::Command::new("docker")
        .args(args)
        .status()
        .expect("docker runs");
    assert!(status.success(), "docker {args:?} failed");
}
