//! The flight agent against the real Docker Engine of this machine.
//!
//! Every test seeds the stand-in base images first (idempotent), works as fresh tenants (`t` +
//! random hex) and removes what those tenants left in the daemon when it ends, pass or fail.
//! Without a reachable Docker Engine these tests fail; they never skip. They need `gcc` with
//! static glibc (Debian's `gcc` and `libc6-dev`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, RemoveContainerOptions, RemoveImageOptions,
    TagImageOptions,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use wire::{Digest, ErrorCode, ImageRef, OnFailure, PlanTask, TaskKind, UplinkFile};

use flight::{Agent, AgentConfig, Outgoing, TaskResult};

const STATIC: &str = "gcr.io/distroless/static-debian12";

/// A C program that reads `/data/in/input.txt` and writes `/data/out/result.txt` upper-cased.
const APP_C: &str = r#"
#include <stdio.h>
#include <sys/stat.h>
int main(void) {
    char buf[4096];
    FILE *in = fopen("/data/in/input.txt", "r");
    if (!in) { perror("open /data/in/input.txt"); return 2; }
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    mkdir("/data/out", 0755);
    FILE *out = fopen("/data/out/result.txt", "w");
    if (!out) { perror("open /data/out/result.txt"); return 3; }
    fprintf(out, "processed %zu bytes: ", n);
    for (size_t i = 0; i < n; i++) fputc(buf[i] >= 'a' && buf[i] <= 'z' ? buf[i] - 32 : buf[i], out);
    fclose(out);
    printf("done\n");
    return 0;
}
"#;

/// One test's world: a fresh state and volumes folder, an agent on the real engine, and the
/// tenants it works as (cleaned up on drop).
struct World {
    _dir: tempfile::TempDir,
    volumes: PathBuf,
    agent: Agent,
    outbox: mpsc::Receiver<Outgoing>,
    execution: String,
    tenants: Vec<Tenant>,
    /// The index of the next task run (each task of the execution has its own).
    next_task: std::sync::atomic::AtomicUsize,
}

/// A tenant whose images and containers are removed from the daemon on drop.
struct Tenant {
    name: String,
    /// References outside `tenants/<name>/` that the test made.
    extra_refs: Vec<String>,
}

impl Drop for Tenant {
    fn drop(&mut self) {
        let (name, extra) = (self.name.clone(), self.extra_refs.clone());
        // Drop cannot await; clean up on a runtime of our own, on a thread of our own.
        let cleaned = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for cleanup")
                .block_on(cleanup(&name, &extra))
        })
        .join();
        if let Ok(Err(e)) = cleaned {
            eprintln!("cleanup of tenant {}: {e}", self.name);
        }
    }
}

async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .expect("the Docker Engine client")
        .negotiate_version()
        .await
        .expect("the Docker Engine must be reachable for these tests")
}

async fn cleanup(tenant: &str, extra: &[String]) -> Result<(), bollard::errors::Error> {
    let docker = docker().await;
    let label = format!("org.orbitdock.tenant={tenant}");
    let filters = HashMap::from([("label".to_string(), vec![label.clone()])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await?;
    for c in containers {
        if let Some(id) = c.id {
            let _ = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        link: false,
                    }),
                )
                .await;
        }
    }
    // Untag by reference: an id may be shared with a catalogue image, which must stay.
    let by_ref = HashMap::from([("reference".to_string(), vec![format!("tenants/{tenant}/*")])]);
    let mut refs: Vec<String> = extra.to_vec();
    for image in docker
        .list_images(Some(ListImagesOptions {
            filters: Some(by_ref),
            ..Default::default()
        }))
        .await?
    {
        refs.extend(
            image
                .repo_tags
                .into_iter()
                .filter(|t| t.starts_with(&format!("tenants/{tenant}/"))),
        );
    }
    for r in refs {
        let _ = docker
            .remove_image(
                &r,
                Some(RemoveImageOptions {
                    force: true,
                    ..Default::default()
                }),
                None,
            )
            .await;
    }
    // What is left with the tenant's label and no tag (dangling build results).
    for image in docker
        .list_images(Some(ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await?
    {
        if image.repo_tags.iter().all(|t| t == "<none>:<none>") {
            let _ = docker
                .remove_image(
                    &image.id,
                    Some(RemoveImageOptions {
                        force: true,
                        ..Default::default()
                    }),
                    None,
                )
                .await;
        }
    }
    Ok(())
}

impl World {
    async fn new(tenants: usize) -> World {
        World::with_limits(
            tenants,
            flight::DiskLimits::default(),
            tempfile::tempdir().unwrap(),
        )
        .await
    }

    /// A world whose state and volumes are in `dir`, with `limits`.
    async fn with_limits(
        tenants: usize,
        limits: flight::DiskLimits,
        dir: tempfile::TempDir,
    ) -> World {
        let mut lines = Vec::new();
        let catalogue = standins::seed_bases(&mut |l: &str| lines.push(l.to_string()))
            .await
            .expect("seed-bases needs the Docker Engine (and a static busybox or apt-get)");
        assert!(
            catalogue.iter().all(|b| b.digest.is_some()),
            "{catalogue:?} {lines:?}"
        );
        let volumes = dir.path().join("volumes");
        let (tx, outbox) = mpsc::channel(4096);
        let config = AgentConfig {
            system: "em".into(),
            state_dir: dir.path().join("state"),
            volumes_dir: volumes.clone(),
            plan_verifier: None,
            builder: wire::Builder::Classic,
            catalogue: None,
            limits,
            quotas: flight::Quotas::none(),
            clock: flight::ClockConfig::Host,
        };
        let agent = Agent::connect(config, tx)
            .await
            .expect("an agent on the Docker Engine");
        World {
            _dir: dir,
            volumes,
            agent,
            outbox,
            execution: format!("{:032x}", rand::random::<u128>()),
            tenants: (0..tenants)
                .map(|_| Tenant {
                    name: format!("t{:010x}", rand::random::<u64>() >> 24),
                    extra_refs: vec![],
                })
                .collect(),
            next_task: Default::default(),
        }
    }

    fn tenant(&self, i: usize) -> &str {
        &self.tenants[i].name
    }

    async fn run(&self, tenant: usize, kind: TaskKind) -> TaskResult {
        let task = PlanTask {
            id: "t".into(),
            on_failure: OnFailure::Stop,
            trigger: None,
            kind,
        };
        self.agent
            .run_task(
                self.tenant(tenant),
                &self.execution,
                self.next_task
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                &task,
            )
            .await
    }

    /// Uplinks files into the tenant's volume `pvc`, the way the ground does: objects first,
    /// committed to the object directory and announced as the link does it.
    async fn uplink(&self, tenant: usize, files: &[(&str, &[u8], u32)]) {
        let mut list = Vec::new();
        for (path, data, mode) in files {
            let digest = self.agent.object_layout().put(data).unwrap();
            self.agent
                .handle_event(link::LinkEvent::ObjectReceived(digest))
                .unwrap();
            list.push(UplinkFile {
                path: path.to_string(),
                digest,
                size: data.len() as u64,
                mode: *mode,
            });
        }
        let r = self
            .run(
                tenant,
                TaskKind::Uplink {
                    volume: "pvc".into(),
                    files: list,
                },
            )
            .await;
        assert!(r.succeeded(), "uplink: {r:?}");
    }

    fn volume(&self, tenant: usize) -> PathBuf {
        self.volumes.join(self.tenant(tenant)).join("pvc")
    }
}

fn image(name: &str, tag: &str) -> ImageRef {
    ImageRef {
        name: name.into(),
        tag: tag.into(),
    }
}

fn build(dockerfile: &str, name: &str, max_ms: Option<u64>) -> TaskKind {
    TaskKind::DockerBuild {
        volume: "pvc".into(),
        dockerfile: dockerfile.into(),
        context: "/".into(),
        image: image(name, "1"),
        max_duration_ms: max_ms,
    }
}

fn pod(name: &str, image: ImageRef, command: Option<&[&str]>, max_ms: Option<u64>) -> TaskKind {
    TaskKind::PodRun {
        pod_name: name.into(),
        image,
        command: command.map(|c| c.iter().map(|s| s.to_string()).collect()),
        args: None,
        env: vec![("GREETING".into(), "hello".into())],
        volume: "pvc".into(),
        max_duration_ms: max_ms,
        scheduled_ms: None,
        detached: false,
        node: None,
        merged: false,
        ports: vec![],
    }
}

fn code(r: &TaskResult) -> Option<ErrorCode> {
    r.error.as_ref().map(|e| e.code)
}

/// Compiles a C program with gcc (`-static` unless `dynamic`).
fn compile(source: &str, dynamic: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("app.c"), dir.path().join("app"));
    std::fs::write(&src, source).unwrap();
    let mut cmd = Command::new("gcc");
    if !dynamic {
        cmd.arg("-static");
    }
    let status = cmd
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc must be installed");
    assert!(status.success(), "gcc failed");
    std::fs::read(out).unwrap()
}

async fn image_id(docker: &Docker, reference: &str) -> Option<String> {
    docker
        .inspect_image(reference)
        .await
        .ok()
        .and_then(|i| i.id)
}

async fn export(docker: &Docker, reference: &str) -> Vec<u8> {
    let mut stream = std::pin::pin!(docker.export_image(reference));
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.expect("docker save"));
    }
    bytes
}

/// Replaces `RepoTags` in a `docker save` archive (as a tenant with bad intentions would), and
/// adds a `repositories` file claiming the same.
fn retag_archive(archive: &[u8], tag: &str) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(archive);
    for entry in a.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if path == Path::new("repositories") {
            continue;
        }
        if path == Path::new("manifest.json") {
            let mut m: serde_json::Value = serde_json::from_slice(&data).unwrap();
            m[0]["RepoTags"] = serde_json::json!([tag]);
            data = serde_json::to_vec(&m).unwrap();
            header.set_size(data.len() as u64);
        }
        if header.entry_type().is_symlink() {
            let target = entry.link_name().unwrap().unwrap().into_owned();
            out.append_link(&mut header, &path, target).unwrap();
        } else {
            out.append_data(&mut header, &path, &data[..]).unwrap();
        }
    }
    let (name, tagname) = tag.rsplit_once(':').unwrap();
    let repositories = serde_json::to_vec(&serde_json::json!({ name: { tagname: "x" } })).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(repositories.len() as u64);
    h.set_mode(0o644);
    out.append_data(&mut h, "repositories", &repositories[..])
        .unwrap();
    out.into_inner().unwrap()
}

const APP_DOCKERFILE: &str = "FROM gcr.io/distroless/static-debian12\nCOPY app /app\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\n";

/// (1) Build from the static base a binary that reads /data/in and writes /data/out, run it,
/// and bring the result down.
#[tokio::test(flavor = "multi_thread")]
async fn builds_and_runs_a_static_binary_on_the_static_base() {
    let mut w = World::new(1).await;
    let app = compile(APP_C, false);
    w.uplink(
        0,
        &[
            ("Dockerfile", APP_DOCKERFILE.as_bytes(), 0o644),
            ("app", &app, 0o755),
            ("/in/input.txt", b"hello orbit\n", 0o644),
        ],
    )
    .await;

    let r = w.run(0, build("Dockerfile", "app", None)).await;
    assert!(r.succeeded(), "{r:?}");
    let reference = format!("tenants/{}/app:1", w.tenant(0));
    assert_eq!(r.outputs.image.as_deref(), Some(reference.as_str()));
    assert!(
        r.outputs
            .log_tail
            .iter()
            .any(|l| l.contains("COPY app /app")),
        "{:?}",
        r.outputs.log_tail
    );
    let docker = docker().await;
    let labels = docker
        .inspect_image(&reference)
        .await
        .unwrap()
        .config
        .unwrap()
        .labels
        .unwrap();
    assert_eq!(labels["org.orbitdock.tenant"], w.tenant(0));

    let r = w
        .run(0, pod("app", image("app", "1"), None, Some(60_000)))
        .await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.outputs.exit_code, Some(0));
    assert_eq!(r.outputs.log_tail, ["done"]);
    let result = std::fs::read_to_string(w.volume(0).join("out/result.txt")).unwrap();
    assert_eq!(result, "processed 12 bytes: HELLO ORBIT\n");
    assert_eq!(
        std::fs::read_to_string(w.volume(0).join(".logs/app.log")).unwrap(),
        "done\n"
    );

    while w.outbox.try_recv().is_ok() {}
    let r = w
        .run(
            0,
            TaskKind::Downlink {
                volume: "pvc".into(),
                sources: vec!["out/*.txt".into()],
            },
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.outputs.files.len(), 1);
    assert_eq!(r.outputs.files[0].path, "/out/result.txt");
    let Ok(Outgoing::Object { digest, size, .. }) = w.outbox.try_recv() else {
        panic!("no object sent")
    };
    let data = std::fs::read(w.agent.object_layout().path(&digest)).unwrap();
    assert_eq!(
        (digest, size, data.as_slice()),
        (
            Digest::of(result.as_bytes()),
            result.len() as u64,
            result.as_bytes()
        )
    );
    assert_eq!(r.outputs.files[0].digest, digest);
}

/// A rebuild under the same name leaves no dangling `<none>` image behind; an image another
/// name still holds stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_under_the_same_name_removes_the_image_it_replaced() {
    let w = World::new(1).await;
    let docker = docker().await;
    let mut app = compile(APP_C, false);
    let files = |app: &[u8]| {
        vec![
            ("Dockerfile".to_string(), APP_DOCKERFILE.as_bytes().to_vec()),
            ("app".to_string(), app.to_vec()),
        ]
    };
    let w = &w;
    let upload = |owned: Vec<(String, Vec<u8>)>| async move {
        let refs: Vec<(&str, &[u8], u32)> = owned
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice(), 0o755))
            .collect();
        w.uplink(0, &refs).await;
    };
    let reference = format!("tenants/{}/app:1", w.tenant(0));
    let kept = format!("tenants/{}/kept:1", w.tenant(0));

    upload(files(&app)).await;
    assert!(w.run(0, build("Dockerfile", "app", None)).await.succeeded());
    let first = image_id(&docker, &reference).await.expect("built");
    app.extend_from_slice(b"v2");
    upload(files(&app)).await;
    assert!(w.run(0, build("Dockerfile", "app", None)).await.succeeded());
    let second = image_id(&docker, &reference).await.expect("rebuilt");
    assert_ne!(first, second);
    assert_eq!(
        image_id(&docker, &first).await,
        None,
        "the replaced image is gone"
    );

    // An image that still has another name is not touched.
    let (repo, tag) = kept.rsplit_once(':').unwrap();
    docker
        .tag_image(
            &second,
            Some(TagImageOptions {
                repo: Some(repo.to_string()),
                tag: Some(tag.to_string()),
            }),
        )
        .await
        .unwrap();
    app.extend_from_slice(b"v3");
    upload(files(&app)).await;
    assert!(w.run(0, build("Dockerfile", "app", None)).await.succeeded());
    assert_eq!(image_id(&docker, &kept).await, Some(second));
}

/// A pod runs as the tenant's uid, with no capabilities, no new privileges and no network but
/// its tenant's internal one.
#[tokio::test(flavor = "multi_thread")]
async fn pods_are_isolated_for_real() {
    let w = World::new(1).await;
    let script = "id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; ls /sys/class/net; \
                  echo x > /data/mine && ls -ln /data/mine";
    let r = w
        .run(
            0,
            pod(
                "probe",
                image("busybox", "latest"),
                Some(&["/bin/sh", "-c", script]),
                Some(60_000),
            ),
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
    let uid = std::fs::metadata(w.volume(0))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap();
    let tail = r.outputs.log_tail;
    assert_eq!(tail[0], uid.to_string(), "{tail:?}");
    assert_eq!(tail[1], uid.to_string(), "{tail:?}");
    assert!(
        tail.contains(&"CapEff:\t0000000000000000".to_string()),
        "{tail:?}"
    );
    // Even the bounding set is empty: nothing to regain through a setuid binary.
    assert!(
        tail.contains(&"CapBnd:\t0000000000000000".to_string()),
        "{tail:?}"
    );
    assert!(tail.contains(&"NoNewPrivs:\t1".to_string()), "{tail:?}");
    let nets: Vec<&String> = tail
        .iter()
        .filter(|l| !l.contains(':') && !l.starts_with('-') && l.parse::<u32>().is_err())
        .collect();
    // One interface besides loopback: on its tenant's internal network (no route out).
    assert_eq!(nets, ["eth0", "lo"], "{tail:?}");
    assert!(uid >= 200_000);
}

/// The cc base carries the host's glibc: a dynamically linked binary runs on it.
#[tokio::test(flavor = "multi_thread")]
async fn cc_base_runs_a_dynamic_binary() {
    let w = World::new(1).await;
    let app = compile(
        "#include <stdio.h>\n#include <math.h>\nint main(void){printf(\"dyn %.1f\\n\", sqrt(16.0));return 0;}\n",
        true,
    );
    let dockerfile =
        "FROM gcr.io/distroless/cc-debian12:latest\nCOPY dyn /dyn\nENTRYPOINT [\"/dyn\"]\n";
    w.uplink(
        0,
        &[
            ("Dockerfile", dockerfile.as_bytes(), 0o644),
            ("dyn", &app, 0o755),
        ],
    )
    .await;
    let r = w.run(0, build("Dockerfile", "dyn", None)).await;
    assert!(r.succeeded(), "{r:?}");
    let r = w
        .run(0, pod("dyn", image("dyn", "1"), None, Some(60_000)))
        .await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.outputs.log_tail, ["dyn 4.0"]);
    // The same binary on the static base has no loader: it fails, and says why.
    let dockerfile = format!("FROM {STATIC}\nCOPY dyn /dyn\nENTRYPOINT [\"/dyn\"]\n");
    w.uplink(0, &[("Dockerfile.static", dockerfile.as_bytes(), 0o644)])
        .await;
    assert!(
        w.run(0, build("Dockerfile.static", "dyn-static", None))
            .await
            .succeeded()
    );
    let r = w
        .run(
            0,
            pod("dyn-static", image("dyn-static", "1"), None, Some(60_000)),
        )
        .await;
    assert!(!r.succeeded(), "{r:?}");
}

/// (2) A `docker save` archive loads as the tenant's image, without its own tag reaching the
/// daemon, and runs.
#[tokio::test(flavor = "multi_thread")]
async fn loads_a_docker_save_archive_and_runs_it() {
    let mut w = World::new(1).await;
    let docker = docker().await;
    let t = w.tenant(0).to_string();
    let saved = format!("{t}-hello:1");
    w.tenants[0].extra_refs.push(saved.clone());
    let app = compile(APP_C, false);
    w.uplink(
        0,
        &[
            ("Dockerfile", APP_DOCKERFILE.as_bytes(), 0o644),
            ("app", &app, 0o755),
            ("in/input.txt", b"from a tar\n", 0o644),
        ],
    )
    .await;
    assert!(w.run(0, build("Dockerfile", "src", None)).await.succeeded());

    // On the ground: `docker save` of an image named plainly, which then leaves the daemon.
    let built = format!("tenants/{t}/src:1");
    let id = image_id(&docker, &built).await.unwrap();
    docker
        .tag_image(
            &built,
            Some(TagImageOptions {
                repo: Some(format!("{t}-hello")),
                tag: Some("1".into()),
            }),
        )
        .await
        .unwrap();
    let archive = export(&docker, &saved).await;
    for r in [&saved, &built] {
        docker
            .remove_image(r, None::<RemoveImageOptions>, None)
            .await
            .unwrap();
    }
    assert_eq!(
        image_id(&docker, &id).await,
        None,
        "the image must be gone before the load"
    );

    w.uplink(0, &[("images/hello.tar", &archive, 0o644)]).await;
    let r = w
        .run(
            0,
            TaskKind::DockerLoad {
                volume: "pvc".into(),
                tarfile: "/images/hello.tar".into(),
                image: image(&format!("{t}-hello"), "1"),
            },
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
    let loaded = format!("tenants/{t}/{t}-hello:1");
    assert_eq!(r.outputs.image.as_deref(), Some(loaded.as_str()));
    assert_eq!(image_id(&docker, &loaded).await, Some(id));
    assert_eq!(
        image_id(&docker, &saved).await,
        None,
        "the archive's own tag must not reach the daemon"
    );

    let r = w
        .run(
            0,
            pod(
                "loaded",
                image(&format!("{t}-hello"), "1"),
                None,
                Some(60_000),
            ),
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(w.volume(0).join("out/result.txt")).unwrap(),
        "processed 11 bytes: FROM A TAR\n"
    );

    let r = w
        .run(
            0,
            TaskKind::DockerLoad {
                volume: "pvc".into(),
                tarfile: "images/hello.tar".into(),
                image: image("other", "2"),
            },
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::DockerImageLoadFailed));
    assert_eq!(
        r.error.unwrap().message,
        format!("archive holds [{saved}], not other:2")
    );
    let r = w
        .run(
            0,
            TaskKind::DockerLoad {
                volume: "pvc".into(),
                tarfile: "images/none.tar".into(),
                image: image("other", "2"),
            },
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::DockerTarfileNotFound));
}

/// (3) A base that is not onboard fails before the daemon is asked, naming the catalogue.
#[tokio::test(flavor = "multi_thread")]
async fn from_outside_the_catalogue_is_refused() {
    let w = World::new(1).await;
    w.uplink(
        0,
        &[("Dockerfile", b"FROM ubuntu:22.04\nRUN true\n", 0o644)],
    )
    .await;
    let r = w.run(0, build("Dockerfile", "nope", None)).await;
    assert_eq!(code(&r), Some(ErrorCode::DockerImageNotFound), "{r:?}");
    let message = r.error.unwrap().message;
    assert!(
        message
            .starts_with("FROM ubuntu:22.04 (Dockerfile line 1): not in the onboard catalogue ("),
        "{message}"
    );
    for name in [
        "gcr.io/distroless/static-debian12:latest",
        "gcr.io/distroless/cc-debian12:latest",
        "busybox:latest",
    ] {
        assert!(message.contains(name), "{message}");
    }
    let r = w.run(0, build("missing/Dockerfile", "nope", None)).await;
    assert_eq!(code(&r), Some(ErrorCode::DockerDockerfileNotFound));
}

/// (4) RUN steps have no network: a download fails the build, with the log to show why.
#[tokio::test(flavor = "multi_thread")]
async fn builds_have_no_network() {
    let w = World::new(1).await;
    w.uplink(
        0,
        &[(
            "Dockerfile",
            b"FROM busybox\nRUN wget -q -O /x http://deb.debian.org/\n",
            0o644,
        )],
    )
    .await;
    let r = w.run(0, build("Dockerfile", "net", Some(120_000))).await;
    assert_eq!(code(&r), Some(ErrorCode::DockerBuildFailed), "{r:?}");
    let e = r.error.unwrap();
    assert!(
        e.message.contains("returned a non-zero code"),
        "{}",
        e.message
    );
    assert!(!e.log_tail.is_empty());
    assert!(
        e.log_tail.iter().any(|l| l.contains("wget")),
        "{:?}",
        e.log_tail
    );
}

/// (5) A pod past its max_duration is stopped and its container removed.
#[tokio::test(flavor = "multi_thread")]
async fn overrunning_pods_are_stopped_and_removed() {
    let w = World::new(1).await;
    let started = std::time::Instant::now();
    let r = w
        .run(
            0,
            pod(
                "sleepy",
                image("busybox", "latest"),
                Some(&["sleep", "30"]),
                Some(2_000),
            ),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::MaxDurationExceeded), "{r:?}");
    assert_eq!(r.error.unwrap().message, "stopped after 2s");
    assert!(started.elapsed() < std::time::Duration::from_secs(25));
    let docker = docker().await;
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("org.orbitdock.tenant={}", w.tenant(0))],
    )]);
    let left = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// (6) Tenants cannot reach each other's images or volumes, and a tenant's archive cannot
/// overwrite a catalogue tag.
#[tokio::test(flavor = "multi_thread")]
async fn tenants_are_isolated() {
    let w = World::new(2).await;
    let docker = docker().await;
    let (a, b) = (w.tenant(0).to_string(), w.tenant(1).to_string());
    w.uplink(
        0,
        &[
            (
                "Dockerfile",
                b"FROM busybox\nRUN echo secret > /secret\n",
                0o644,
            ),
            ("a-only.txt", b"a", 0o600),
        ],
    )
    .await;
    let r = w.run(0, build("Dockerfile", "secret", None)).await;
    assert!(r.succeeded(), "{r:?}");
    let secret = format!("tenants/{a}/secret:1");

    // B cannot run A's image, by its name or by its full reference.
    let full_name = format!("tenants/{a}/secret");
    for (name, tag) in [("secret", "1"), (full_name.as_str(), "1")] {
        let r = w
            .run(1, pod("steal", image(name, tag), None, Some(10_000)))
            .await;
        assert_eq!(
            code(&r),
            Some(ErrorCode::DockerImageNotFound),
            "{name}: {r:?}"
        );
    }
    // Nor build from it, nor copy from it.
    let froms = [
        "FROM secret:1\n".to_string(),
        format!("FROM {secret}\n"),
        format!("FROM busybox\nCOPY --from={secret} /secret /secret\n"),
    ];
    for (i, dockerfile) in froms.iter().enumerate() {
        let path = format!("Dockerfile.{i}");
        w.uplink(1, &[(&path, dockerfile.as_bytes(), 0o644)]).await;
        let r = w.run(1, build(&path, "copy", None)).await;
        assert_eq!(
            code(&r),
            Some(ErrorCode::DockerImageNotFound),
            "{dockerfile}: {r:?}"
        );
    }
    // B's volume is its own folder, owned by another uid, and its pods see only it.
    assert_ne!(w.volume(0), w.volume(1));
    let uid = |p: &Path| std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(p).unwrap());
    assert_ne!(uid(&w.volume(0)), uid(&w.volume(1)));
    let r = w
        .run(
            1,
            pod(
                "look",
                image("busybox", "latest"),
                Some(&["ls", "-a", "/data"]),
                Some(30_000),
            ),
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
    assert!(
        !r.outputs.log_tail.iter().any(|l| l.contains("a-only")),
        "{:?}",
        r.outputs.log_tail
    );
    assert!(
        r.outputs.log_tail.iter().any(|l| l == "Dockerfile.0"),
        "{:?}",
        r.outputs.log_tail
    );

    // An archive claiming to be busybox:latest loads as B's own busybox, not the catalogue's.
    let catalogue_busybox = image_id(&docker, "busybox:latest").await.unwrap();
    let archive = retag_archive(&export(&docker, &secret).await, "busybox:latest");
    w.uplink(1, &[("evil.tar", &archive, 0o644)]).await;
    let r = w
        .run(
            1,
            TaskKind::DockerLoad {
                volume: "pvc".into(),
                tarfile: "evil.tar".into(),
                image: image("busybox", "latest"),
            },
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(
        image_id(&docker, "busybox:latest").await.unwrap(),
        catalogue_busybox
    );
    assert_eq!(
        image_id(&docker, &format!("tenants/{b}/busybox:latest")).await,
        image_id(&docker, &secret).await
    );
    // And `busybox` still means the catalogue's image in a pod.
    let r = w
        .run(
            1,
            pod(
                "which",
                image("busybox", "latest"),
                Some(&["ls", "/secret"]),
                Some(30_000),
            ),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ExecutionError), "{r:?}");
}

/// A minimal ELF executable (header and one `PT_LOAD`) for the other one of x86_64 and arm64:
/// enough for the kernel to refuse it.
fn foreign_elf() -> Vec<u8> {
    let machine = if std::env::consts::ARCH == "x86_64" {
        183
    } else {
        62
    };
    let mut b = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    for (v, n) in [
        (2u64, 2),
        (machine, 2),
        (1, 4),
        (0x400078, 8),
        (64, 8),
        (0, 8),
        (0, 4),
        (64, 2),
        (56, 2),
        (1, 2),
        (0, 2),
        (0, 2),
        (0, 2),
    ] {
        b.extend_from_slice(&v.to_le_bytes()[..n]);
    }
    for (v, n) in [
        (1u64, 4),
        (5, 4),
        (0, 8),
        (0x400000, 8),
        (0x400000, 8),
        (0x80, 8),
        (0x80, 8),
        (0x1000, 8),
    ] {
        b.extend_from_slice(&v.to_le_bytes()[..n]);
    }
    b.extend_from_slice(&[0; 8]);
    b
}

/// A binary for another architecture fails with DOCKER_EXEC_FORMAT_ERROR, not a bare exit code.
#[tokio::test(flavor = "multi_thread")]
async fn a_binary_for_another_architecture_is_named_as_such() {
    let w = World::new(1).await;
    let dockerfile = "FROM busybox\nCOPY arm /arm\nENTRYPOINT [\"/arm\"]\n";
    w.uplink(
        0,
        &[
            ("Dockerfile", dockerfile.as_bytes(), 0o644),
            ("arm", &foreign_elf(), 0o755),
        ],
    )
    .await;
    assert!(w.run(0, build("Dockerfile", "arm", None)).await.succeeded());
    let r = w
        .run(0, pod("arm", image("arm", "1"), None, Some(30_000)))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::DockerExecFormatError), "{r:?}");
}

/// The sum of the logical sizes of the files under `dir`.
fn logical_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => logical_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// A pod's root filesystem is read-only and its `/tmp` a bounded tmpfs; it writes `/data`.
#[tokio::test(flavor = "multi_thread")]
async fn pods_write_only_tmp_and_data() {
    let w = World::new(1).await;
    let script = "echo x > /x || echo root-refused; mkdir /home/x || echo mkdir-refused; \
                  echo y > /tmp/y && cat /tmp/y; \
                  dd if=/dev/zero of=/tmp/fill bs=1048576 count=80 || echo tmp-full; \
                  echo z > /data/z && echo data-ok";
    let r = w
        .run(
            0,
            pod(
                "writes",
                image("busybox", "latest"),
                Some(&["/bin/sh", "-c", script]),
                Some(60_000),
            ),
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
    let tail = r.outputs.log_tail.join("\n");
    println!("{tail}");
    assert!(tail.contains("/x: Read-only file system"), "{tail}");
    assert!(
        tail.contains("root-refused") && tail.contains("mkdir-refused"),
        "{tail}"
    );
    assert!(tail.contains("\ny\n"), "{tail}");
    assert!(
        tail.contains("No space left on device") && tail.contains("tmp-full"),
        "{tail}"
    );
    assert!(tail.contains("data-ok"), "{tail}");
    assert_eq!(std::fs::read(w.volume(0).join("z")).unwrap(), b"z\n");
}

/// A pod makes a sparse 8 GiB file in its volume: the downlink refuses it with a limit error and
/// the object folder grows less than the limit (not at all); a sparse file over the tenant's
/// limit then refuses uplinks and pods until it is deleted.
#[tokio::test(flavor = "multi_thread")]
async fn sparse_files_are_refused_by_size_not_by_blocks() {
    let w = World::new(1).await;
    let limits = flight::DiskLimits::default();
    let script =
        "dd if=/dev/zero of=/data/big.bin bs=1048576 count=0 seek=8192 && ls -ls /data/big.bin";
    let r = w
        .run(
            0,
            pod(
                "sparse",
                image("busybox", "latest"),
                Some(&["/bin/sh", "-c", script]),
                Some(60_000),
            ),
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(
        std::fs::metadata(w.volume(0).join("big.bin"))
            .unwrap()
            .len(),
        8 << 30
    );
    let objects = w._dir.path().join("state/objects");
    let before = logical_size(&objects);
    let r = w
        .run(
            0,
            TaskKind::Downlink {
                volume: "pvc".into(),
                sources: vec!["/big.bin".into()],
            },
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ExecutionError), "{r:?}");
    let message = r.error.unwrap().message;
    println!("{message}");
    assert_eq!(
        message,
        format!(
            "/big.bin is 8589934592 bytes (8.0 GiB), over the limit of {} bytes (2.0 GiB) of a downlinked file",
            limits.downlink_file_bytes
        )
    );
    let grew = logical_size(&objects) - before;
    println!(
        "object folder grew by {grew} bytes (limit {})",
        limits.downlink_file_bytes
    );
    assert!(grew < limits.downlink_file_bytes);
    assert_eq!(grew, 0);

    // Over the tenant's limit (in logical size): uplinks and pods are refused.
    let huge = limits.tenant_bytes + 1;
    std::fs::File::create(w.volume(0).join("huge.bin"))
        .unwrap()
        .set_len(huge)
        .unwrap();
    let digest = w.agent.object_layout().put(b"input\n").unwrap();
    w.agent
        .handle_event(link::LinkEvent::ObjectReceived(digest))
        .unwrap();
    let uplink = TaskKind::Uplink {
        volume: "pvc".into(),
        files: vec![UplinkFile {
            path: "in.txt".into(),
            digest,
            size: 6,
            mode: 0o644,
        }],
    };
    let r = w.run(0, uplink.clone()).await;
    assert_eq!(code(&r), Some(ErrorCode::ExecutionError), "{r:?}");
    let message = r.error.unwrap().message;
    assert!(message.contains("of a tenant's volumes"), "{message}");
    assert!(!w.volume(0).join("in.txt").exists());
    let r = w
        .run(
            0,
            pod(
                "after",
                image("busybox", "latest"),
                Some(&["true"]),
                Some(60_000),
            ),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ExecutionError), "{r:?}");
    assert!(
        r.error
            .unwrap()
            .message
            .starts_with("the content of your volumes is "),
    );
    std::fs::remove_file(w.volume(0).join("huge.bin")).unwrap();
    let r = w.run(0, uplink).await;
    assert!(r.succeeded(), "{r:?}");

    // A running pod that takes its tenant over the limit is stopped.
    let script = format!(
        "dd if=/dev/zero of=/data/huge.bin bs=1048576 count=0 seek={} && echo made; sleep 300",
        (limits.tenant_bytes >> 20) + 1
    );
    let r = w
        .run(
            0,
            pod(
                "grower",
                image("busybox", "latest"),
                Some(&["/bin/sh", "-c", &script]),
                Some(600_000),
            ),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ExecutionError), "{r:?}");
    let message = r.error.as_ref().unwrap().message.clone();
    println!("{message}");
    assert!(
        message.starts_with("the pod was stopped: the content of your volumes is "),
        "{message}"
    );
    assert!(r.outputs.log_tail.iter().any(|l| l == "made"), "{r:?}");
}

/// A tmpfs of `bytes` mounted on a fresh folder (these tests run as root), unmounted on drop
/// (after the world in it: declare it first).
struct SmallFs(PathBuf);

impl SmallFs {
    fn new(bytes: u64) -> (SmallFs, tempfile::TempDir) {
        let mount = tempfile::tempdir().unwrap().keep();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&mount)
            .status()
            .expect("mount");
        assert!(
            status.success(),
            "this test mounts a small tmpfs, which needs root"
        );
        let inside = tempfile::tempdir_in(&mount).unwrap();
        (SmallFs(mount), inside)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A pod that fills the disk its volume is on is stopped, and no work that writes the volumes
/// starts while the disk is below the agent's reserve; the ballast holds the reserve meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_pod_that_fills_the_disk_is_stopped() {
    let (_small, dir) = SmallFs::new(96 << 20);
    let limits = flight::DiskLimits {
        reserve_bytes: 16 << 20,
        ..flight::DiskLimits::default()
    };
    let ballast = dir.path().join("state/reserve.ballast");
    let w = World::with_limits(1, limits, dir).await;
    assert_eq!(std::fs::metadata(&ballast).unwrap().len(), 16 << 20);
    let script = "dd if=/dev/zero of=/data/fill bs=1048576; echo filled; sleep 120";
    let r = w
        .run(
            0,
            pod(
                "filler",
                image("busybox", "latest"),
                Some(&["/bin/sh", "-c", script]),
                Some(600_000),
            ),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ExecutionError), "{r:?}");
    let message = r.error.as_ref().unwrap().message.clone();
    println!("{message}");
    assert!(
        message.starts_with("the pod was stopped: the disk is full: "),
        "{message}"
    );
    assert!(r.outputs.log_tail.iter().any(|l| l == "filled"), "{r:?}");
    // The reserve is still held for the agent's state.
    assert_eq!(std::fs::metadata(&ballast).unwrap().len(), 16 << 20);
    let r = w
        .run(
            0,
            pod(
                "next",
                image("busybox", "latest"),
                Some(&["true"]),
                Some(60_000),
            ),
        )
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ExecutionError), "{r:?}");
    assert!(r.error.unwrap().message.starts_with("the disk is full: "),);
    std::fs::remove_file(w.volume(0).join("fill")).unwrap();
    let r = w
        .run(
            0,
            pod(
                "after",
                image("busybox", "latest"),
                Some(&["true"]),
                Some(60_000),
            ),
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
}
