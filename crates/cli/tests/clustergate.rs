//! Operations written as a Clustergate-2 user writes them, run end to end on the Engineering
//! Model: `dphi.space.cg2.` task types, `system: cg2.em`, files selected one by one from nested
//! folders of the namespace, for both paths of the seed guide ("Docker Best Practices in
//! Space"): build onboard from a preloaded base, and build on the ground, `docker save`, load
//! onboard. The uplink keeps the namespace's layout, so the pod finds `/data/in/input.txt`, and
//! the result comes down with Clustergate-2's outputs (`files` with `path`, `uri`, `contentType`,
//! `contentLength`).
//!
//! The operations, the payload and the namespace are those of `examples/clustergate-2`, as
//! written there (only the namespace, the volume and the ground-built image's name are made
//! unique to the test).

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{DockerCleanup, Stack, User, gcc_static, unique};

/// The example, as checked in.
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/clustergate-2");

fn example(rel: &str) -> String {
    std::fs::read_to_string(Path::new(EXAMPLE).join(rel)).unwrap()
}

/// The example's namespace folder in `dir`, with its program built (`my-app/bin/app`) and files
/// that no task selects.
fn namespace_folder(dir: &Path) -> PathBuf {
    let folder = dir.join(unique("ns-files"));
    copy_sources(&Path::new(EXAMPLE).join("namespace"), &folder);
    std::fs::create_dir_all(folder.join("my-app/bin")).unwrap();
    gcc_static(&example("my-app.c"), &folder.join("my-app/bin/app"));
    std::fs::create_dir_all(folder.join("notes")).unwrap();
    std::fs::write(folder.join("in/unused.txt"), "not selected\n").unwrap();
    std::fs::write(folder.join("notes/readme.md"), "not selected either\n").unwrap();
    folder
}

/// Copies the checked-in files of the example's namespace, leaving out what a reader of the
/// example may have built in place (`bin/`, `archives/`).
fn copy_sources(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "bin" || name == "archives" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_sources(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// The example's operation `file` for this test's namespace and volume, with `more` replaced.
fn operation(file: &str, ns: &str, tenant: &str, more: &[(&str, &str)]) -> String {
    let mut yaml = example(file);
    let mut replace = vec![
        (
            "namespace: cg2-demo".to_string(),
            format!("namespace: {ns}"),
        ),
        (
            "volume: demo-pvc".to_string(),
            format!("volume: {tenant}-pvc"),
        ),
    ];
    replace.extend(more.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    for (from, to) in replace {
        assert!(yaml.contains(&from), "{file} has no '{from}'");
        yaml = yaml.replace(&from, &to);
    }
    yaml
}

/// What the program writes: the greeting of its folder, `$GREETING` as the operation sets it,
/// the input's length, then the input reversed.
fn expected_result() -> Vec<u8> {
    let greeting = example("namespace/my-app/etc/greeting.txt");
    let input = example("namespace/in/input.txt");
    let mut out = format!(
        "{}|from the ground|len={}\n",
        greeting.trim_end(),
        input.len()
    )
    .into_bytes();
    out.extend(input.bytes().rev());
    out
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
    let folder = namespace_folder(dir);
    let ns = unique("cg2");
    push(&user, &folder, &ns).await;

    // The example's operation, and one more uplink of the input to another destination.
    let mut yaml = operation("build-onboard.yaml", &ns, &tenant, &[]);
    yaml.push_str(&format!(
        "  - id: copy\n    type: dphi.space.cg2.uplink\n    source: [\"/in/input.txt\"]\n    destination: /x\n    volume: {tenant}-pvc\n"
    ));
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
    assert_eq!(
        input["contentLength"],
        example("namespace/in/input.txt").len() as u64
    );
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

    // On the ground: build the image (here with this machine's engine: the EM's platform) from
    // the namespace folder and `docker save` it into its archives/ folder.
    let folder = namespace_folder(dir);
    docker(&[
        "build",
        "-q",
        "--network",
        "none",
        "--label",
        "org.orbitdock.test=1",
        "-t",
        &image,
        folder.to_str().unwrap(),
    ]);
    std::fs::create_dir_all(folder.join("archives")).unwrap();
    let tar: PathBuf = folder.join("archives/app.tar");
    docker(&["save", "-o", tar.to_str().unwrap(), &image]);
    let ns = unique("cg2");
    push(&user, &folder, &ns).await;

    let yaml = operation(
        "load-onboard.yaml",
        &ns,
        &tenant,
        &[("name: my-app", &format!("name: {name}"))],
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
