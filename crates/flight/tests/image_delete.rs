//! Tenants' images against the real Docker Engine of this machine: a tenant deletes its
//! own images and nothing else; the last name of an image takes the image and its build's
//! parent images with it; two tenants building the same Dockerfile share no build step.
//!
//! Like `tests/docker.rs`, it seeds the stand-in base images first, works as fresh tenants and
//! removes what they left in the daemon when it ends, pass or fail. Without a reachable Docker
//! Engine it fails; it never skips.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{ListImagesOptions, TagImageOptions};
use tokio::sync::mpsc;
use wire::{ErrorCode, ImageRef, OnFailure, PlanTask, TaskKind, UplinkFile};

use flight::{Agent, AgentConfig, Outgoing, TaskResult};

mod common;
use common::{Cleanup as Tenant, docker};

struct World {
    _dir: tempfile::TempDir,
    agent: Agent,
    _outbox: mpsc::Receiver<Outgoing>,
    tenants: Vec<Tenant>,
    /// The index of the next task run (each task of the execution has its own).
    next_task: std::sync::atomic::AtomicUsize,
}

impl World {
    async fn new(tenants: usize) -> World {
        let catalogue = standins::seed_bases(&mut |_: &str| {})
            .await
            .expect("seed-bases needs the Docker Engine (and a static busybox)");
        assert!(
            catalogue.iter().all(|b| b.digest.is_some()),
            "{catalogue:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let (tx, outbox) = mpsc::channel(4096);
        let config = AgentConfig {
            system: "em".into(),
            state_dir: dir.path().join("state"),
            volumes_dir: dir.path().join("volumes"),
            plan_verifier: None,
            builder: wire::Builder::Classic,
            catalogue: None,
            limits: flight::DiskLimits::default(),
            quotas: flight::Quotas::none(),
            clock: flight::ClockConfig::Host,
        };
        let agent = Agent::connect(config, tx)
            .await
            .expect("an agent on the Docker Engine");
        World {
            _dir: dir,
            agent,
            _outbox: outbox,
            tenants: (0..tenants)
                .map(|_| Tenant(format!("t{:010x}", rand::random::<u64>() >> 24)))
                .collect(),
            next_task: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn tenant(&self, i: usize) -> &str {
        &self.tenants[i].0
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
                "e0123456789abcdef",
                self.next_task
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                &task,
            )
            .await
    }

    /// Places `Dockerfile` in the tenant's volume and builds it as `name:tag`.
    async fn build(&self, tenant: usize, dockerfile: &str, name: &str, tag: &str) {
        let digest = self
            .agent
            .object_layout()
            .put(dockerfile.as_bytes())
            .unwrap();
        self.agent
            .handle_event(link::LinkEvent::ObjectReceived(digest))
            .unwrap();
        let files = vec![UplinkFile {
            path: "Dockerfile".into(),
            digest,
            size: dockerfile.len() as u64,
            mode: 0o644,
        }];
        let up = self
            .run(
                tenant,
                TaskKind::Uplink {
                    volume: "pvc".into(),
                    files,
                },
            )
            .await;
        assert!(up.succeeded(), "uplink: {up:?}");
        let built = self
            .run(
                tenant,
                TaskKind::DockerBuild {
                    volume: "pvc".into(),
                    dockerfile: "Dockerfile".into(),
                    context: "/".into(),
                    image: image(name, tag),
                    max_duration_ms: Some(300_000),
                },
            )
            .await;
        assert!(built.succeeded(), "build: {built:?}");
    }
}

fn image(name: &str, tag: &str) -> ImageRef {
    ImageRef {
        name: name.into(),
        tag: tag.into(),
    }
}

fn delete(name: &str, tag: &str) -> TaskKind {
    TaskKind::ImageDelete {
        image: image(name, tag),
    }
}

fn failure(r: &TaskResult) -> (ErrorCode, &str) {
    let e = r.error.as_ref().expect("the task failed");
    (e.code, e.message.as_str())
}

async fn inspect(docker: &Docker, reference: &str) -> Option<bollard::models::ImageInspect> {
    docker.inspect_image(reference).await.ok()
}

/// The ids of every image, intermediate ones included (`docker images -a`), whose `owner` label
/// is `tenant`: under the classic builder, each step after the `LABEL` is one.
async fn owned(docker: &Docker, tenant: &str) -> Vec<String> {
    let mut ids: Vec<String> = docker
        .list_images(Some(ListImagesOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("owner={tenant}")],
            )])),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    ids.sort();
    ids
}

/// Three steps, each its own image under the classic builder; the tenant's random name in a
/// label makes them the tenant's alone (no other build's cache shares them) and findable.
fn dockerfile(tenant: &str) -> String {
    format!("FROM busybox:latest\nLABEL owner={tenant}\nRUN echo one > /one\nRUN echo two > /two\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_deletes_its_own_images_and_their_layers_only() {
    let w = World::new(2).await;
    let docker = docker().await;
    let (t0, t1) = (w.tenant(0).to_string(), w.tenant(1).to_string());
    let busybox = inspect(&docker, "busybox:latest")
        .await
        .and_then(|i| i.id)
        .expect("the stand-in busybox");

    w.build(0, &dockerfile(&t0), "app", "1").await;
    w.build(1, &dockerfile(&t1), "app", "1").await;
    let mine = format!("tenants/{t0}/app:1");
    let theirs = format!("tenants/{t1}/app:1");
    let id = inspect(&docker, &mine).await.and_then(|i| i.id).unwrap();
    let layers = owned(&docker, &t0).await;
    assert!(
        layers.len() >= 3 && layers.contains(&id),
        "the classic builder keeps an image per step: {layers:?}"
    );
    let other_layers = owned(&docker, &t1).await;
    // A second name of the same image.
    docker
        .tag_image(
            &id,
            Some(TagImageOptions {
                repo: Some(format!("tenants/{t0}/app")),
                tag: Some("2".into()),
            }),
        )
        .await
        .unwrap();

    // Never the catalogue's, nor another tenant's.
    let r = w.run(0, delete("busybox", "latest")).await;
    assert_eq!(failure(&r).0, ErrorCode::ValidationError, "{r:?}");
    assert!(
        failure(&r)
            .1
            .contains("is the catalogue image busybox:latest"),
        "{r:?}"
    );
    let r = w.run(0, delete(&format!("tenants/{t1}/app"), "1")).await;
    assert_eq!(failure(&r).0, ErrorCode::ValidationError, "{r:?}");
    assert!(
        failure(&r).1.contains("another tenant's is never yours"),
        "{r:?}"
    );
    let r = w.run(0, delete("nope", "1")).await;
    assert_eq!(
        failure(&r),
        (
            ErrorCode::DockerImageNotFound,
            "nope:1 is not among your images onboard"
        )
    );

    // One name of two: the image stays under the other.
    let r = w.run(0, delete("app", "2")).await;
    assert!(r.succeeded(), "{r:?}");
    let message = r.outputs.message.clone().unwrap();
    assert!(
        message.starts_with("deleted the name app:2; its image"),
        "{message}"
    );
    assert!(
        inspect(&docker, &format!("tenants/{t0}/app:2"))
            .await
            .is_none()
    );
    assert_eq!(
        inspect(&docker, &mine).await.and_then(|i| i.id),
        Some(id.clone())
    );

    // The last name: the image goes, and so do its build's parent images.
    let r = w.run(0, delete("app", "1")).await;
    assert!(r.succeeded(), "{r:?}");
    let message = r.outputs.message.clone().unwrap();
    assert!(
        message.ends_with("and the layers only it held"),
        "{message}"
    );
    assert!(inspect(&docker, &id).await.is_none(), "the image is gone");
    assert_eq!(
        owned(&docker, &t0).await,
        Vec::<String>::new(),
        "the build's parent images are gone with it"
    );
    // Its own image gone, the tenant finds nothing of that name any more; the other tenant's
    // and the catalogue's stand.
    let r = w.run(0, delete("app", "1")).await;
    assert_eq!(failure(&r).0, ErrorCode::DockerImageNotFound, "{r:?}");
    assert!(
        inspect(&docker, &theirs).await.is_some(),
        "the other tenant's image stays"
    );
    assert_eq!(owned(&docker, &t1).await, other_layers);
    assert_eq!(
        inspect(&docker, "busybox:latest").await.and_then(|i| i.id),
        Some(busybox)
    );
}

/// The image ids of an image's build steps that its base does not have (`docker history`).
async fn own_steps(docker: &Docker, reference: &str, base: &str) -> Vec<String> {
    let history = |r: String| async move {
        docker
            .image_history(&r)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .filter(|id| id != "<missing>")
            .collect::<Vec<String>>()
    };
    let base_steps = history(base.to_string()).await;
    history(reference.to_string())
        .await
        .into_iter()
        .filter(|id| !base_steps.contains(id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_building_the_same_dockerfile_share_no_layer() {
    let w = World::new(2).await;
    let docker = docker().await;
    let dockerfile = "FROM busybox\nRUN echo same > /same\nRUN echo again > /again\n";
    let (a, a2, b) = (
        format!("tenants/{}/same:v1", w.tenant(0)),
        format!("tenants/{}/same:v2", w.tenant(0)),
        format!("tenants/{}/same:v1", w.tenant(1)),
    );
    // A tenant's rebuild takes its own cached steps.
    w.build(0, dockerfile, "same", "v1").await;
    let sa = own_steps(&docker, &a, "busybox:latest").await;
    w.build(0, dockerfile, "same", "v2").await;
    assert_eq!(
        own_steps(&docker, &a2, "busybox:latest").await,
        sa,
        "the same tenant's rebuild is all cache hits"
    );
    // Another tenant's identical build takes none of them.
    w.build(1, dockerfile, "same", "v1").await;
    let (ia, ib) = (
        inspect(&docker, &a).await.unwrap(),
        inspect(&docker, &b).await.unwrap(),
    );
    assert_ne!(ia.id, ib.id);
    let sb = own_steps(&docker, &b, "busybox:latest").await;
    assert!(sa.len() >= 2 && sb.len() >= 2, "{sa:?} {sb:?}");
    assert!(
        sa.iter().all(|s| !sb.contains(s)),
        "no build step of one tenant's image is another's: {sa:?} {sb:?}"
    );
    let layers = |i: &bollard::models::ImageInspect| {
        i.root_fs
            .as_ref()
            .and_then(|r| r.layers.clone())
            .unwrap_or_default()
    };
    let (la, lb) = (layers(&ia), layers(&ib));
    assert_eq!(la.len(), lb.len());
    assert_ne!(
        la.last(),
        lb.last(),
        "the second tenant's RUN made its own layer, not the first one's"
    );
}
