//! Quotas per tenant against the real Docker Engine of this machine: each quota breached fails
//! only the task that meets it, with a message naming the quota; the tenant's next task, another
//! tenant's work and (for the daily quotas) a restarted agent go on as they should.
//!
//! Like `tests/pods.rs`, every test seeds the stand-in base images first, works as fresh tenants
//! and removes what they left in the daemon when it ends, pass or fail. Without a reachable
//! Docker Engine these tests fail; they never skip.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use bollard::Docker;
use tokio::sync::mpsc;
use wire::{ErrorCode, ImageRef, OnFailure, PlanTask, TaskKind, UplinkFile};

use flight::{Agent, AgentConfig, Outgoing, Quota, Quotas, TaskResult};

mod common;
use common::{Cleanup, docker};

/// A fresh tenant name.
fn tenant() -> String {
    format!("q{:010x}", rand::random::<u64>() >> 24)
}

/// One test's world: a state and volumes folder, an agent on the real engine with `quotas`.
struct World {
    dir: tempfile::TempDir,
    agent: Agent,
    _outbox: mpsc::Receiver<Outgoing>,
    quotas: Quotas,
    execution: String,
    next_task: AtomicUsize,
}

impl World {
    async fn new(quotas: Quotas) -> World {
        common::seed_bases().await;
        let dir = tempfile::tempdir().unwrap();
        let (agent, outbox) = agent(dir.path(), &quotas).await;
        World {
            dir,
            agent,
            _outbox: outbox,
            quotas,
            execution: format!("{:032x}", rand::random::<u128>()),
            next_task: AtomicUsize::new(0),
        }
    }

    /// The agent stops and starts again on the same state and volumes.
    async fn restart(&mut self) {
        let (agent, outbox) = agent(self.dir.path(), &self.quotas).await;
        self.agent = agent;
        self._outbox = outbox;
    }

    /// Runs `kind` for `tenant` as the next task of the execution.
    async fn run(&self, tenant: &str, kind: TaskKind) -> TaskResult {
        let index = self.next_task.fetch_add(1, Ordering::Relaxed);
        let task = PlanTask {
            id: format!("t{index}"),
            on_failure: OnFailure::Stop,
            trigger: None,
            kind,
        };
        self.agent
            .run_task(tenant, &self.execution, index, &task)
            .await
    }

    fn volume(&self, tenant: &str) -> PathBuf {
        self.dir.path().join("volumes").join(tenant).join("pvc")
    }

    /// Uplinks files into the tenant's volume `pvc`, the way the ground does.
    async fn uplink(&self, tenant: &str, files: &[(&str, &[u8])]) -> TaskResult {
        let mut list = Vec::new();
        for (path, data) in files {
            let digest = self.agent.object_layout().put(data).unwrap();
            self.agent
                .handle_event(link::LinkEvent::ObjectReceived(digest))
                .unwrap();
            list.push(UplinkFile {
                path: path.to_string(),
                digest,
                size: data.len() as u64,
                mode: 0o644,
            });
        }
        self.run(
            tenant,
            TaskKind::Uplink {
                volume: "pvc".into(),
                files: list,
            },
        )
        .await
    }
}

async fn agent(dir: &Path, quotas: &Quotas) -> (Agent, mpsc::Receiver<Outgoing>) {
    let (tx, outbox) = mpsc::channel(4096);
    let config = AgentConfig {
        quotas: quotas.clone(),
        ..common::agent_config(dir, flight::ClockConfig::Host)
    };
    let agent = Agent::connect(config, tx)
        .await
        .expect("an agent on the Docker Engine");
    (agent, outbox)
}

fn quotas_for(tenant: &str, quota: Quota) -> Quotas {
    let mut q = Quotas::none();
    q.tenants.insert(tenant.into(), quota);
    q
}

/// A pod.run of busybox on node `MPU` (one CPU) running `script` with `/bin/sh -c`.
fn pod(name: &str, script: &str) -> TaskKind {
    TaskKind::PodRun {
        pod_name: name.into(),
        image: ImageRef {
            name: "busybox".into(),
            tag: "latest".into(),
        },
        command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
        args: None,
        env: vec![],
        volume: "pvc".into(),
        max_duration_ms: Some(120_000),
        scheduled_ms: None,
        detached: false,
        node: Some("MPU".into()),
        merged: false,
        ports: vec![],
    }
}

fn downlink(path: &str) -> TaskKind {
    TaskKind::Downlink {
        volume: "pvc".into(),
        sources: vec![path.into()],
    }
}

fn build(name: &str, tag: &str) -> TaskKind {
    TaskKind::DockerBuild {
        volume: "pvc".into(),
        dockerfile: "Dockerfile".into(),
        context: "/".into(),
        image: ImageRef {
            name: name.into(),
            tag: tag.into(),
        },
        max_duration_ms: Some(120_000),
    }
}

/// The failure's code and message.
fn failure(r: &TaskResult) -> (ErrorCode, String) {
    let e = r
        .error
        .as_ref()
        .unwrap_or_else(|| panic!("succeeded: {r:?}"));
    (e.code, e.message.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_downlink_over_the_daily_quota_fails_alone_and_the_count_survives_a_restart() {
    let (acme, other) = (tenant(), tenant());
    let _cleanup = (Cleanup(acme.clone()), Cleanup(other.clone()));
    let mut w = World::new(quotas_for(
        &acme,
        Quota {
            downlink_bytes_per_day: Some(1000),
            ..Quota::default()
        },
    ))
    .await;
    let (a, b, c) = (vec![b'a'; 600], vec![b'b'; 600], vec![b'c'; 300]);
    for t in [&acme, &other] {
        let r = w
            .uplink(t, &[("a.txt", &a), ("b.txt", &b), ("c.txt", &c)])
            .await;
        assert!(r.succeeded(), "{r:?}");
    }
    assert!(w.run(&acme, downlink("a.txt")).await.succeeded());
    let r = w.run(&acme, downlink("b.txt")).await;
    assert_eq!(
        failure(&r),
        (
            ErrorCode::ExecutionError,
            format!(
                "quota exceeded: downlink bytes per day for tenant {acme}: 600 used of 1000 (this downlink sends 600 more)"
            )
        )
    );
    // The next task of the tenant runs, and so does what still fits; another tenant has no
    // quota here.
    let r = w
        .run(
            &acme,
            TaskKind::FilesList {
                volume: Some("pvc".into()),
                folder: "/".into(),
                depth: 1,
            },
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
    assert!(w.run(&acme, downlink("c.txt")).await.succeeded());
    for f in ["a.txt", "b.txt", "c.txt"] {
        assert!(w.run(&other, downlink(f)).await.succeeded());
    }
    // Counted across a restart: 900 used, 600 more is refused.
    w.restart().await;
    let r = w.run(&acme, downlink("b.txt")).await;
    assert_eq!(
        failure(&r).1,
        format!(
            "quota exceeded: downlink bytes per day for tenant {acme}: 900 used of 1000 (this downlink sends 600 more)"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_that_uses_up_the_compute_quota_is_stopped_and_no_other_starts() {
    let (acme, other) = (tenant(), tenant());
    let _cleanup = (Cleanup(acme.clone()), Cleanup(other.clone()));
    let mut w = World::new(quotas_for(
        &acme,
        Quota {
            compute_seconds_per_day: Some(3),
            ..Quota::default()
        },
    ))
    .await;
    // One CPU: 3 compute seconds are 3 s of wall time; the agent looks every 5 s.
    let r = w.run(&acme, pod("spin", "echo up; sleep 60")).await;
    let (code, message) = failure(&r);
    assert_eq!(code, ErrorCode::ExecutionError);
    assert!(
        message.starts_with(&format!(
            "the pod was stopped: quota exceeded: compute seconds per day for tenant {acme}: "
        )) && message.ends_with(" used of 3"),
        "{message}"
    );
    assert_eq!(r.outputs.log_tail, ["up"], "its output is kept");
    // The next pod does not start; the tenant's other tasks run; another tenant's pod runs.
    let r = w.run(&acme, pod("next", "echo never")).await;
    let (_, message) = failure(&r);
    assert!(
        message.starts_with(&format!(
            "quota exceeded: compute seconds per day for tenant {acme}: "
        )),
        "{message}"
    );
    assert!(!w.volume(&acme).join(".logs/next.log").exists());
    let r = w.uplink(&acme, &[("x.txt", b"x")]).await;
    assert!(r.succeeded(), "{r:?}");
    let r = w.run(&other, pod("free", "echo free")).await;
    assert!(r.succeeded(), "{r:?}");
    // A restarted agent remembers what was used today.
    w.restart().await;
    let r = w.run(&acme, pod("after", "echo never")).await;
    assert!(
        failure(&r)
            .1
            .starts_with("quota exceeded: compute seconds per day"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn volume_quota_refuses_an_uplink_and_stops_a_pod_that_fills_it() {
    let (acme, other) = (tenant(), tenant());
    let _cleanup = (Cleanup(acme.clone()), Cleanup(other.clone()));
    let w = World::new(quotas_for(
        &acme,
        Quota {
            volume_bytes: Some(4096),
            ..Quota::default()
        },
    ))
    .await;
    assert!(w.uplink(&acme, &[("a.bin", &[1; 3000])]).await.succeeded());
    let r = w.uplink(&acme, &[("b.bin", &[2; 3000])]).await;
    assert_eq!(
        failure(&r),
        (
            ErrorCode::ExecutionError,
            format!(
                "quota exceeded: volume bytes for tenant {acme}: 6000 used of 4096 (with this uplink into volume pvc)"
            )
        )
    );
    assert!(!w.volume(&acme).join("b.bin").exists());
    assert!(w.uplink(&other, &[("b.bin", &[2; 3000])]).await.succeeded());
    // A sparse file counts at its size: the pod that makes one is stopped.
    let r = w
        .run(&acme, pod("fill", "truncate -s 1M /data/sparse; sleep 60"))
        .await;
    let (_, message) = failure(&r);
    assert!(
        message.starts_with(&format!(
            "the pod was stopped: quota exceeded: volume bytes for tenant {acme}: "
        )),
        "{message}"
    );
    // Once the tenant deletes it, the next pod runs.
    let r = w
        .run(
            &acme,
            TaskKind::FilesDelete {
                volume: "pvc".into(),
                paths: vec!["sparse".into()],
            },
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
    assert!(w.run(&acme, pod("ok", "echo ok")).await.succeeded());
}

/// The image id of a reference, if the engine has it.
async fn image_id(docker: &Docker, reference: &str) -> Option<String> {
    docker
        .inspect_image(reference)
        .await
        .ok()
        .and_then(|i| i.id)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_over_the_quota_is_undone_and_failed_builds_leave_nothing_dangling() {
    let acme = tenant();
    let _cleanup = Cleanup(acme.clone());
    let docker = docker().await;
    let mut w = World::new(Quotas::none()).await;
    let dockerfile =
        |text: &str| format!("FROM busybox:latest\nCOPY payload /payload\nRUN {text}\n");
    let r = w
        .uplink(
            &acme,
            &[
                ("Dockerfile", dockerfile("true").as_bytes()),
                ("payload", &[1; 4096]),
            ],
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
    let r = w.run(&acme, build("app", "1")).await;
    assert!(r.succeeded(), "{r:?}");
    let first = image_id(&docker, &format!("tenants/{acme}/app:1"))
        .await
        .unwrap();
    let size = docker.inspect_image(&first).await.unwrap().size.unwrap() as u64;

    // The quota holds app:1 and no second image of its size.
    w.quotas = quotas_for(
        &acme,
        Quota {
            image_bytes: Some(size + size / 2),
            ..Quota::default()
        },
    );
    w.restart().await;
    let r = w
        .uplink(
            &acme,
            &[
                ("Dockerfile", dockerfile("echo two > /two").as_bytes()),
                ("payload", &[2; 4096]),
            ],
        )
        .await;
    assert!(r.succeeded(), "{r:?}");
    // A new name: it goes.
    let r = w.run(&acme, build("app", "2")).await;
    let (code, message) = failure(&r);
    assert_eq!(code, ErrorCode::ExecutionError);
    assert!(
        message.starts_with(&format!("quota exceeded: image bytes for tenant {acme}: "))
            && message.ends_with("(with the new image; app:2 was removed)"),
        "{message}"
    );
    assert_eq!(
        image_id(&docker, &format!("tenants/{acme}/app:2")).await,
        None
    );
    // The same name, for an image alone over the quota: the name goes back to its previous
    // image, and the new one goes.
    let big = vec![3u8; size as usize];
    let r = w.uplink(&acme, &[("payload", &big)]).await;
    assert!(r.succeeded(), "{r:?}");
    let r = w.run(&acme, build("app", "1")).await;
    let (_, message) = failure(&r);
    assert!(
        message.ends_with("(with the new image; app:1 names its previous image again)"),
        "{message}"
    );
    assert_eq!(
        image_id(&docker, &format!("tenants/{acme}/app:1")).await,
        Some(first.clone())
    );
    // A pod of the tenant's image still runs.
    let mut run = pod("app", "cat /payload | wc -c");
    if let TaskKind::PodRun { image, .. } = &mut run {
        *image = ImageRef {
            name: "app".into(),
            tag: "1".into(),
        };
    }
    let r = w.run(&acme, run).await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.outputs.log_tail, ["4096"]);

    // A build that fails leaves no dangling image of its steps behind.
    let r = w
        .uplink(&acme, &[("Dockerfile", dockerfile("false").as_bytes())])
        .await;
    assert!(r.succeeded(), "{r:?}");
    let r = w.run(&acme, build("broken", "1")).await;
    assert_eq!(failure(&r).0, ErrorCode::DockerBuildFailed);
    let steps: Vec<&str> = r
        .outputs
        .log_tail
        .iter()
        .filter_map(|l| l.trim().strip_prefix("---> "))
        .filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    assert!(!steps.is_empty(), "{:?}", r.outputs.log_tail);
    let last = steps.last().unwrap();
    assert_eq!(image_id(&docker, last).await, None, "{last} dangles");
    // At the quota already: the next build is refused before it starts.
    w.quotas = quotas_for(
        &acme,
        Quota {
            image_bytes: Some(size),
            ..Quota::default()
        },
    );
    w.restart().await;
    let r = w.run(&acme, build("app", "3")).await;
    let (_, message) = failure(&r);
    assert_eq!(
        message,
        format!(
            "quota exceeded: image bytes for tenant {acme}: {size} used of {size} (delete some with docker.image.delete first)"
        )
    );
}
