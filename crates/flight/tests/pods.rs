//! Pods against the real Docker Engine of this machine: what a restarted agent takes up (and
//! refuses to), the rest of a pod's time, image `VOLUME`s, detached pods running side by side,
//! pod.stop, pod.logs and log rotation.
//!
//! Every test seeds the stand-in base images first (idempotent), works as a fresh tenant (`t` +
//! random hex) and removes what that tenant left in the daemon when it ends, pass or fail:
//! containers and images by the `org.orbitdock.tenant` label or the `tenants/<name>/` prefix.
//! Without a reachable Docker Engine these tests fail; they never skip.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions,
};
use tokio::sync::mpsc;
use wire::{ErrorCode, ImageRef, OnFailure, PlanTask, TaskKind, UplinkFile};

use flight::{Agent, AgentConfig, Outgoing, TaskResult};

mod common;
use common::{Cleanup, docker, tenant_containers};

/// One test's world: a state and volumes folder, an agent on the real engine, one tenant.
struct World {
    dir: tempfile::TempDir,
    agent: Agent,
    _outbox: mpsc::Receiver<Outgoing>,
    execution: String,
    tenant: String,
    next_task: AtomicUsize,
    _cleanup: Cleanup,
}

impl World {
    async fn new(limits: flight::DiskLimits) -> World {
        common::seed_bases().await;
        let dir = tempfile::tempdir().unwrap();
        let (agent, outbox) = agent(dir.path(), limits).await;
        let tenant = format!("t{:010x}", rand::random::<u64>() >> 24);
        World {
            dir,
            agent,
            _outbox: outbox,
            execution: format!("{:032x}", rand::random::<u128>()),
            _cleanup: Cleanup(tenant.clone()),
            tenant,
            next_task: AtomicUsize::new(0),
        }
    }

    /// Runs `kind` as the next task of the execution.
    async fn run(&self, kind: TaskKind) -> TaskResult {
        let index = self.next_task.fetch_add(1, Ordering::Relaxed);
        self.run_at(&self.agent, index, kind).await
    }

    /// Runs `kind` as task `index` of the execution, on `agent`.
    async fn run_at(&self, agent: &Agent, index: usize, kind: TaskKind) -> TaskResult {
        let task = PlanTask {
            id: format!("t{index}"),
            on_failure: OnFailure::Stop,
            trigger: None,
            kind,
        };
        agent
            .run_task(&self.tenant, &self.execution, index, &task)
            .await
    }

    fn volume(&self) -> PathBuf {
        self.dir
            .path()
            .join("volumes")
            .join(&self.tenant)
            .join("pvc")
    }

    /// Uplinks files into the tenant's volume `pvc`, the way the ground does.
    async fn uplink(&self, files: &[(&str, &[u8])]) {
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
        let r = self
            .run(TaskKind::Uplink {
                volume: "pvc".into(),
                files: list,
            })
            .await;
        assert!(r.succeeded(), "uplink: {r:?}");
    }

    /// The name the agent gives the pod's container.
    fn container(&self, pod: &str) -> String {
        format!("orbitdock-{}-{pod}-{}", self.tenant, &self.execution[..8])
    }
}

async fn agent(dir: &Path, limits: flight::DiskLimits) -> (Agent, mpsc::Receiver<Outgoing>) {
    let (tx, outbox) = mpsc::channel(4096);
    let config = AgentConfig {
        limits,
        ..common::agent_config(dir, flight::ClockConfig::Host)
    };
    let agent = Agent::connect(config, tx)
        .await
        .expect("an agent on the Docker Engine");
    (agent, outbox)
}

fn busybox() -> ImageRef {
    ImageRef {
        name: "busybox".into(),
        tag: "latest".into(),
    }
}

/// A pod.run of `image` running `script` with `/bin/sh -c`.
fn pod(name: &str, image: ImageRef, script: &str, max_ms: u64, detached: bool) -> TaskKind {
    TaskKind::PodRun {
        pod_name: name.into(),
        image,
        command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
        args: None,
        env: vec![],
        volume: "pvc".into(),
        max_duration_ms: Some(max_ms),
        scheduled_ms: None,
        detached,
        node: None,
        merged: false,
        ports: vec![],
    }
}

fn code(r: &TaskResult) -> Option<ErrorCode> {
    r.error.as_ref().map(|e| e.code)
}

fn message(r: &TaskResult) -> String {
    match &r.error {
        Some(e) => e.message.clone(),
        None => r.outputs.message.clone().unwrap_or_default(),
    }
}

/// Waits (up to 30 s) for a file the pod writes into its volume.
async fn appears(path: &Path) {
    let until = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < until, "{} never appeared", path.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A container that merely has the pod's name is not taken up: the task fails clearly and the
/// container is left as it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_container_with_the_pods_name_but_not_its_labels_is_left_alone() {
    let w = World::new(flight::DiskLimits::default()).await;
    let docker = docker().await;
    let name = w.container("p1");
    // Another execution whose id starts with the same 8 characters made it (labelled as the
    // tenant's, so the cleanup finds it).
    let labels = HashMap::from([
        ("org.orbitdock.tenant".to_string(), w.tenant.clone()),
        (
            "org.orbitdock.execution".to_string(),
            format!("{}ffff", &w.execution[..8]),
        ),
    ]);
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some("busybox:latest".into()),
                cmd: Some(vec!["sleep".into(), "60".into()]),
                labels: Some(labels),
                network_disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let r = w.run(pod("p1", busybox(), "echo ran", 30_000, false)).await;
    assert_eq!(code(&r), Some(ErrorCode::ExecutionError), "{r:?}");
    let m = message(&r);
    assert!(
        m.starts_with(&format!(
            "a container named {name} exists but is not this task's pod ("
        )) && m.contains("org.orbitdock.execution=")
            && m.contains("org.orbitdock.task missing"),
        "{m}"
    );
    let left = docker
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .expect("the container is still there");
    let state = left.state.unwrap();
    assert_eq!(
        state.started_at.as_deref(),
        Some("0001-01-01T00:00:00Z"),
        "never started"
    );
    assert!(!w.volume().join(".logs/p1.log").exists(), "nothing ran");
}

/// An agent killed while its pod ran: the next agent takes the container up (not a second run)
/// and gives it only what is left of its max_duration.
#[tokio::test(flavor = "multi_thread")]
async fn a_pod_taken_up_after_a_restart_gets_only_the_rest_of_its_time() {
    let w = World::new(flight::DiskLimits::default()).await;
    let script = "echo started >> /data/runs; sleep 60";
    let first = {
        let (agent, _outbox) = agent(w.dir.path(), flight::DiskLimits::default()).await;
        let kind = pod("slow", busybox(), script, 8_000, false);
        let run = w.run_at(&agent, 7, kind);
        let runs = w.volume().join("runs");
        // The agent is "killed" once the pod runs: its future is dropped mid-task.
        tokio::select! {
            r = run => panic!("the pod ended early: {r:?}"),
            () = appears(&runs) => {}
        }
        Instant::now()
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (agent, _outbox) = agent(w.dir.path(), flight::DiskLimits::default()).await;
    let r = w
        .run_at(&agent, 7, pod("slow", busybox(), script, 8_000, false))
        .await;
    let total = first.elapsed();
    assert_eq!(code(&r), Some(ErrorCode::MaxDurationExceeded), "{r:?}");
    assert!(
        total < Duration::from_secs(8 + 5 + 3),
        "stopped {total:?} after the restart: its time started again"
    );
    assert_eq!(
        std::fs::read_to_string(w.volume().join("runs")).unwrap(),
        "started\n",
        "the pod ran once"
    );
    assert!(
        tenant_containers(&docker().await, &w.tenant)
            .await
            .is_empty()
    );
}

/// An image that declares `VOLUME`s: the pod gets a bounded tmpfs at each path, the engine
/// makes no anonymous volume (which no disk limit would see), and nothing is left behind.
#[tokio::test(flavor = "multi_thread")]
async fn image_volumes_are_bounded_tmpfs_not_anonymous_volumes() {
    let limits = flight::DiskLimits {
        pod_tmp_bytes: 1 << 20,
        ..flight::DiskLimits::default()
    };
    let w = World::new(limits).await;
    w.uplink(&[(
        "Dockerfile",
        b"FROM busybox:latest\nVOLUME /state\nVOLUME [\"/var/lib/db\"]\n",
    )])
    .await;
    let built = w
        .run(TaskKind::DockerBuild {
            volume: "pvc".into(),
            dockerfile: "Dockerfile".into(),
            context: "/".into(),
            image: ImageRef {
                name: "vol".into(),
                tag: "1".into(),
            },
            max_duration_ms: Some(120_000),
        })
        .await;
    assert!(built.succeeded(), "{built:?}");
    let script = "grep -E ' /(state|var/lib/db) ' /proc/mounts > /data/mounts; \
                  dd if=/dev/zero of=/state/fill bs=1024 count=4096 2> /data/dd.err; \
                  echo written > /data/ready; sleep 60";
    let vol = ImageRef {
        name: "vol".into(),
        tag: "1".into(),
    };
    let r = w.run(pod("v", vol, script, 60_000, true)).await;
    assert!(r.succeeded(), "{r:?}");
    appears(&w.volume().join("ready")).await;
    let docker = docker().await;
    let inspected = docker
        .inspect_container(&w.container("v"), None::<InspectContainerOptions>)
        .await
        .unwrap();
    let mounts = inspected.mounts.unwrap_or_default();
    assert!(
        mounts.iter().all(|m| m.typ.as_deref() != Some("volume")),
        "{mounts:?}"
    );
    let tmpfs = inspected.host_config.unwrap().tmpfs.unwrap();
    for path in ["/tmp", "/state", "/var/lib/db"] {
        assert!(tmpfs[path].ends_with("size=1048576"), "{tmpfs:?}");
    }
    let seen = std::fs::read_to_string(w.volume().join("mounts")).unwrap();
    assert_eq!(seen.lines().count(), 2, "{seen}");
    assert!(seen.lines().all(|l| l.starts_with("tmpfs ")), "{seen}");
    let dd = std::fs::read_to_string(w.volume().join("dd.err")).unwrap();
    assert!(dd.contains("No space left on device"), "{dd}");
    let stop = w
        .run(TaskKind::PodStop {
            pod_name: "v".into(),
            grace_ms: Some(1000),
        })
        .await;
    assert!(stop.succeeded(), "{stop:?}");
    assert!(tenant_containers(&docker, &w.tenant).await.is_empty());
}

/// Two pods of one tenant run at the same time: a detached one (as a merged pod.run followed
/// by another compiles) and the next. pod.logs reads the running one; pod.stop ends it with
/// SIGTERM, which it handles; a detached pod past its max_duration is stopped the same way.
#[tokio::test(flavor = "multi_thread")]
async fn detached_pods_run_side_by_side_and_pod_stop_ends_them() {
    let w = World::new(flight::DiskLimits::default()).await;
    let a = "trap 'echo bye; exit 7' TERM; echo up; touch /data/a-alive; \
             while true; do sleep 0.1; done";
    let r = w.run(pod("a", busybox(), a, 600_000, true)).await;
    assert!(r.succeeded(), "{r:?}");
    assert!(message(&r).starts_with("pod a started"), "{r:?}");
    // The next pod sees the first one's file appear while it runs, then ends.
    let b = "i=0; while [ ! -e /data/a-alive ]; do i=$((i+1)); [ $i -gt 300 ] && exit 3; \
             sleep 0.1; done; echo saw a; touch /data/b-saw-a";
    let r = w.run(pod("b", busybox(), b, 60_000, false)).await;
    assert!(r.succeeded(), "{r:?}");
    assert!(w.volume().join("b-saw-a").exists());

    let logs = TaskKind::PodLogs {
        pod_name: "a".into(),
        volume: "pvc".into(),
    };
    let r = w.run(logs.clone()).await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(message(&r), "pod a is running; its output so far");
    assert_eq!(r.outputs.log_tail, ["up"]);
    assert_eq!(
        std::fs::read_to_string(w.volume().join(".logs/a.log")).unwrap(),
        "up\n"
    );

    // One pod of a name at a time: another execution's pod.run of the same name is refused
    // (in the same execution, the running container's labels already refuse it).
    let again = PlanTask {
        id: "again".into(),
        on_failure: OnFailure::Stop,
        trigger: None,
        kind: pod("a", busybox(), "true", 60_000, false),
    };
    let r = w
        .agent
        .run_task(&w.tenant, &format!("{:032x}", 1u128), 0, &again)
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ExecutionError));
    assert!(
        message(&r).starts_with("a pod named 'a' of yours is still running (detached)"),
        "{r:?}"
    );
    let started = Instant::now();
    let r = w
        .run(TaskKind::PodStop {
            pod_name: "a".into(),
            grace_ms: Some(10_000),
        })
        .await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.outputs.exit_code, Some(7), "ended by its SIGTERM handler");
    assert_eq!(message(&r), "stopped by pod.stop; exited with code 7");
    assert_eq!(r.outputs.log_tail, ["up", "bye"]);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "no SIGKILL was needed"
    );
    // Its log stays in the volume, where pod.logs finds it.
    let r = w.run(logs).await;
    assert_eq!(r.outputs.log_tail, ["up", "bye"], "{r:?}");
    assert_eq!(message(&r), "the output of pod a's last run");
    // Stopping it again says it had ended; an unknown pod is an error.
    let again = TaskKind::PodStop {
        pod_name: "a".into(),
        grace_ms: None,
    };
    let r = w.run(again).await;
    assert!(r.succeeded(), "{r:?}");
    assert!(message(&r).starts_with("pod a had already ended"), "{r:?}");
    let r = w
        .run(TaskKind::PodStop {
            pod_name: "nobody".into(),
            grace_ms: None,
        })
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ExecutionError));
    assert!(message(&r).starts_with("no pod named 'nobody' of yours is running onboard"));

    // A detached pod that ignores SIGTERM, past its max_duration: SIGTERM, grace, SIGKILL.
    let c = "trap '' TERM; echo stubborn; while true; do sleep 0.1; done";
    let r = w.run(pod("c", busybox(), c, 1_500, true)).await;
    assert!(r.succeeded(), "{r:?}");
    tokio::time::sleep(Duration::from_secs(1_500 / 1000 + 5 + 4)).await;
    let r = w
        .run(TaskKind::PodStop {
            pod_name: "c".into(),
            grace_ms: None,
        })
        .await;
    assert_eq!(
        message(&r),
        "pod c had already ended: stopped after 1s",
        "{r:?}"
    );
    assert!(
        tenant_containers(&docker().await, &w.tenant)
            .await
            .is_empty()
    );
}

/// A pod's log goes to `.logs/<pod>.log`; the run before is kept as `<pod>.log.1`.
#[tokio::test(flavor = "multi_thread")]
async fn pod_logs_rotate() {
    let w = World::new(flight::DiskLimits::default()).await;
    for run in ["one", "two", "three"] {
        let r = w
            .run(pod("r", busybox(), &format!("echo {run}"), 30_000, false))
            .await;
        assert!(r.succeeded(), "{r:?}");
    }
    let read = |f: &str| std::fs::read_to_string(w.volume().join(".logs").join(f)).unwrap();
    assert_eq!(read("r.log"), "three\n");
    assert_eq!(read("r.log.1"), "two\n");
    assert!(!w.volume().join(".logs/r.log.2").exists());
}

/// An agent killed while a detached pod runs: the next agent supervises it again (pod.logs and
/// pod.stop reach it) for what is left of its max_duration, not its whole time again.
#[tokio::test(flavor = "multi_thread")]
async fn a_detached_pod_is_supervised_again_after_a_restart() {
    let w = World::new(flight::DiskLimits::default()).await;
    // The first agent runs on a runtime of its own: shutting that runtime down is the kill (the
    // pod's supervisor goes with it, the container stays).
    let dir = w.dir.path().to_path_buf();
    let (tenant, execution) = (w.tenant.clone(), w.execution.clone());
    let started = Instant::now();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (agent, _outbox) = agent(&dir, flight::DiskLimits::default()).await;
            let task = PlanTask {
                id: "d".into(),
                on_failure: OnFailure::Stop,
                trigger: None,
                kind: pod(
                    "d",
                    busybox(),
                    "echo alive; trap '' TERM; while true; do sleep 0.1; done",
                    6_000,
                    true,
                ),
            };
            let r = agent.run_task(&tenant, &execution, 0, &task).await;
            assert!(r.succeeded(), "{r:?}");
        });
        rt.shutdown_background();
    })
    .join()
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (agent, _outbox) = agent(w.dir.path(), flight::DiskLimits::default()).await;
    agent.take_up_detached_pods().await;
    let logs = PlanTask {
        id: "l".into(),
        on_failure: OnFailure::Stop,
        trigger: None,
        kind: TaskKind::PodLogs {
            pod_name: "d".into(),
            volume: "pvc".into(),
        },
    };
    let r = agent.run_task(&w.tenant, "e2", 0, &logs).await;
    assert_eq!(r.outputs.log_tail, ["alive"], "{r:?}");
    assert_eq!(message(&r), "pod d is running; its output so far");
    // Its 6 s end at about 6 s from its start, then 5 s of grace: not 6 s after the restart.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let stop = PlanTask {
            id: "s".into(),
            on_failure: OnFailure::Stop,
            trigger: None,
            kind: TaskKind::PodStop {
                pod_name: "d".into(),
                grace_ms: Some(60_000),
            },
        };
        // Asked only once it ended by itself (a pod.stop now would end it early).
        if tenant_containers(&docker().await, &w.tenant)
            .await
            .is_empty()
        {
            let r = agent.run_task(&w.tenant, "e3", 0, &stop).await;
            assert_eq!(
                message(&r),
                "pod d had already ended: stopped after 6s",
                "{r:?}"
            );
            break;
        }
        assert!(Instant::now() < until, "the pod was never stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total = started.elapsed();
    assert!(
        total < Duration::from_secs(6 + 5 + 2),
        "ended {total:?} after it started"
    );
}

/// A pod's node class sets its CPU and memory limits; an unknown node is refused, and so is a GPU
/// pod on this machine, which has no GPU.
#[tokio::test(flavor = "multi_thread")]
async fn node_classes_set_cpu_and_memory() {
    let w = World::new(flight::DiskLimits::default()).await;
    let with_node = |name: &str, node: &str| match pod(name, busybox(), "sleep 60", 60_000, true) {
        TaskKind::PodRun {
            pod_name,
            image,
            command,
            args,
            env,
            volume,
            max_duration_ms,
            scheduled_ms,
            detached,
            ..
        } => TaskKind::PodRun {
            pod_name,
            image,
            command,
            args,
            env,
            volume,
            max_duration_ms,
            scheduled_ms,
            detached,
            node: Some(node.into()),
            merged: false,
            ports: vec![],
        },
        _ => unreachable!(),
    };
    let docker = docker().await;
    for (pod, node, cpus, memory) in [
        ("m", "mpu1", 1_000_000_000, 512 << 20),
        ("f", "Fpga", 2_000_000_000, 1 << 30),
    ] {
        let r = w.run(with_node(pod, node)).await;
        assert!(r.succeeded(), "{r:?}");
        let host = docker
            .inspect_container(&w.container(pod), None::<InspectContainerOptions>)
            .await
            .unwrap()
            .host_config
            .unwrap();
        let host_cpus = std::thread::available_parallelism().unwrap().get() as i64;
        assert_eq!(
            (host.nano_cpus, host.memory, host.memory_swap),
            (
                Some(cpus.min(host_cpus * 1_000_000_000)),
                Some(memory),
                Some(memory)
            ),
            "{node}"
        );
        let r = w
            .run(TaskKind::PodStop {
                pod_name: pod.into(),
                grace_ms: Some(0),
            })
            .await;
        assert!(r.succeeded(), "{r:?}");
    }
    let r = w.run(with_node("t", "TPU")).await;
    assert_eq!(code(&r), Some(ErrorCode::ValidationError));
    assert_eq!(
        message(&r),
        "unknown node 'TPU': expected one of default, MPU, FPGA, GPU"
    );
    // This machine has no GPU (no NVIDIA device with its toolkit, no /dev/dri render node): a
    // GPU pod is refused before anything is made.
    assert!(!Path::new("/dev/nvidiactl").exists() && !Path::new("/dev/dri").exists());
    let r = w.run(with_node("g", "gpu")).await;
    assert_eq!(code(&r), Some(ErrorCode::ValidationError), "{r:?}");
    assert_eq!(
        message(&r),
        "node GPU: this system has no GPU to give a pod (no NVIDIA GPU with the NVIDIA container \
         toolkit, no /dev/dri render node); run it on node default, MPU or FPGA"
    );
    assert!(tenant_containers(&docker, &w.tenant).await.is_empty());
}

/// The rules of the `DOCKER-USER` chain that open ports of `container`.
fn port_rules(container: &str) -> Vec<String> {
    let out = std::process::Command::new("iptables")
        .args(["-w", "-S", "DOCKER-USER"])
        .output()
        .expect("iptables");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .any(|a| a.trim_matches('"') == format!("orbitdock-pod:{container}"))
        })
        .map(String::from)
        .collect()
}

/// Merged pods of a tenant reach each other as `<tenant>-<pod_name>` on the tenant's internal
/// network (labelled, removed once its last pod ended), on the ports each declares and no
/// other; another tenant's merged pod reaches none; a pod of the tenant that is not merged
/// reaches them as the merged ones do.
#[tokio::test(flavor = "multi_thread")]
async fn merged_pods_reach_each_other_and_no_one_else() {
    let w = World::new(flight::DiskLimits::default()).await;
    let other = World::new(flight::DiskLimits::default()).await;
    let tcp = |container| wire::PodPort {
        container,
        protocol: wire::PortProtocol::Tcp,
    };
    let merged =
        |w: &World, name: &str, script: &str, detached: bool, ports: Vec<wire::PodPort>| match pod(
            name,
            busybox(),
            script,
            60_000,
            detached,
        ) {
            TaskKind::PodRun {
                pod_name,
                image,
                command,
                args,
                env,
                volume,
                max_duration_ms,
                scheduled_ms,
                detached,
                node,
                ..
            } => {
                let _ = w;
                TaskKind::PodRun {
                    pod_name,
                    image,
                    command,
                    args,
                    env,
                    volume,
                    max_duration_ms,
                    scheduled_ms,
                    detached,
                    node,
                    merged: true,
                    ports,
                }
            }
            _ => unreachable!(),
        };
    // A server on port 8080, which it declares, and on 9090, which it does not (busybox's nc:
    // its static httpd and wget crash on glibc's NSS).
    let serve = "(while true; do echo secret | nc -l -p 9090; done) & \
                 while true; do echo hello from a | nc -l -p 8080; done";
    let r = w.run(merged(&w, "a", serve, true, vec![tcp(8080)])).await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(port_rules(&w.container("a")).len(), 2, "in and its replies");
    let network = format!("orbitdock-{}", w.tenant);
    let docker = docker().await;
    let inspected = docker
        .inspect_network(
            &network,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .unwrap();
    assert_eq!(inspected.internal, Some(true));
    assert_eq!(
        inspected
            .labels
            .unwrap_or_default()
            .get("org.orbitdock.tenant"),
        Some(&w.tenant)
    );
    let host = format!("{}-a", w.tenant);
    // The name is looked up with busybox's own resolver (glibc's NSS does not work in a static
    // binary), then reached by address.
    let fetch = format!(
        "for i in $(seq 50); do \
           ip=$(nslookup {host} 127.0.0.11 | awk '/^Address: /{{print $2}}' | tail -n 1); \
           [ -n \"$ip\" ] && nc -w 2 $ip 8080 < /dev/null && break; sleep 0.2; \
         done; \
         nc -w 2 $ip 9090 < /dev/null && exit 7; exit 0"
    );
    // 8080 answers; 9090, undeclared, never does (its packets are dropped).
    let reached_8080_only = |r: &TaskResult| {
        assert!(r.succeeded(), "{r:?}");
        assert!(
            r.outputs
                .log_tail
                .ends_with(&["hello from a".to_string(), "nc: timed out".to_string()]),
            "{r:?}"
        );
        assert!(!r.outputs.log_tail.contains(&"secret".to_string()), "{r:?}");
    };
    reached_8080_only(&w.run(merged(&w, "b", &fetch, false, vec![])).await);
    // Another tenant's merged pod: the name does not resolve on its network, and the address
    // is not reachable from it.
    let address = docker
        .inspect_container(&w.container("a"), None::<InspectContainerOptions>)
        .await
        .unwrap()
        .network_settings
        .unwrap()
        .networks
        .unwrap()[&network]
        .ip_address
        .clone()
        .unwrap();
    let probe = format!(
        "nslookup {host} 127.0.0.11 | grep -q '^Address: ' && exit 8; \
         nc -w 3 {address} 8080 < /dev/null && exit 7; \
         nc -w 3 {address} 9090 < /dev/null && exit 6; exit 9"
    );
    let r = other.run(merged(&other, "c", &probe, false, vec![])).await;
    assert_eq!(r.outputs.exit_code, Some(9), "{r:?}");
    // A pod of the tenant that is not merged is on its network too (where the telemetry
    // service is): it reaches the merged pod's declared port as the others do, and no other.
    reached_8080_only(&w.run(pod("d", busybox(), &fetch, 60_000, false)).await);
    // The last pod ends: the network goes.
    let r = w
        .run(TaskKind::PodStop {
            pod_name: "a".into(),
            grace_ms: Some(1000),
        })
        .await;
    assert!(r.succeeded(), "{r:?}");
    assert!(
        port_rules(&w.container("a")).is_empty(),
        "its rules went with it"
    );
    let gone = docker
        .inspect_network(
            &network,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await;
    assert!(gone.is_err(), "{gone:?}");
    assert!(
        docker
            .inspect_network(
                &format!("orbitdock-{}", other.tenant),
                None::<bollard::query_parameters::InspectNetworkOptions>
            )
            .await
            .is_err()
    );
}

/// What the engine says of a running pod and of a build step's container: every hardening
/// setting in place (read-only root, tmpfs `/tmp`, no capabilities, no new privileges, the
/// tenant's uid, pid, memory and CPU limits, bounded logs, its tenant's internal network only, `/data` the only
/// persistent writable path; a build step without network, with a memory and a CPU limit).
#[tokio::test(flavor = "multi_thread")]
async fn pods_and_build_steps_run_hardened() {
    let w = World::new(flight::DiskLimits::default()).await;
    let docker = docker().await;
    let r = w
        .run(pod(
            "hard",
            busybox(),
            "touch /probe 2> /data/root.err; echo up > /data/up; sleep 60",
            120_000,
            true,
        ))
        .await;
    assert!(r.succeeded(), "{r:?}");
    appears(&w.volume().join("up")).await;
    let c = docker
        .inspect_container(&w.container("hard"), None::<InspectContainerOptions>)
        .await
        .unwrap();
    let h = c.host_config.clone().unwrap();
    assert_eq!(h.readonly_rootfs, Some(true), "read-only root");
    assert_eq!(h.cap_drop, Some(vec!["ALL".to_string()]), "no capabilities");
    assert!(
        h.cap_add.as_ref().is_none_or(|a| a.is_empty()),
        "{:?}",
        h.cap_add
    );
    assert_eq!(h.privileged, Some(false));
    assert!(
        h.security_opt
            .as_ref()
            .is_some_and(|o| o.iter().any(|s| s.starts_with("no-new-privileges"))),
        "{:?}",
        h.security_opt
    );
    // Its tenant's internal network only (no route out; the host reached at the telemetry
    // service alone, which its hosts file names).
    assert_eq!(
        h.network_mode.as_deref(),
        Some(format!("orbitdock-{}", w.tenant).as_str()),
        "its tenant's network"
    );
    let network = docker
        .inspect_network(
            &format!("orbitdock-{}", w.tenant),
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .unwrap();
    assert_eq!(network.internal, Some(true), "no route out");
    assert!(
        h.extra_hosts.as_ref().is_some_and(|x| x
            .iter()
            .any(|l| l.starts_with("satellite-telemetry.dphi-tm:"))),
        "{:?}",
        h.extra_hosts
    );
    assert!(h.pids_limit.is_some_and(|p| p > 0), "{:?}", h.pids_limit);
    assert!(h.memory.is_some_and(|m| m > 0), "{:?}", h.memory);
    assert_eq!(h.memory_swap, h.memory, "no swap beyond the memory limit");
    assert!(h.nano_cpus.is_some_and(|n| n > 0), "{:?}", h.nano_cpus);
    let tmpfs = h.tmpfs.clone().unwrap_or_default();
    assert!(
        tmpfs.get("/tmp").is_some_and(|o| o.contains("size=")),
        "a bounded /tmp: {tmpfs:?}"
    );
    let log = h.log_config.clone().unwrap();
    assert_eq!(log.typ.as_deref(), Some("json-file"));
    assert!(
        log.config
            .as_ref()
            .is_some_and(|c| c.contains_key("max-size")),
        "bounded logs: {log:?}"
    );
    let user = c
        .config
        .as_ref()
        .and_then(|c| c.user.clone())
        .unwrap_or_default();
    let uid = user.split(':').next().unwrap_or("");
    assert!(
        !uid.is_empty() && uid != "0" && uid != "root",
        "the tenant's uid, never root: {user:?}"
    );
    let mounts = c.mounts.clone().unwrap_or_default();
    let persistent: Vec<_> = mounts
        .iter()
        .filter(|m| m.typ.as_deref() != Some("tmpfs"))
        .collect();
    assert_eq!(persistent.len(), 1, "only /data persists: {mounts:?}");
    assert_eq!(persistent[0].destination.as_deref(), Some("/data"));
    assert_eq!(persistent[0].rw, Some(true));
    let err = std::fs::read_to_string(w.volume().join("root.err")).unwrap();
    assert!(err.contains("Read-only file system"), "{err}");
    let stopped = w
        .run(TaskKind::PodStop {
            pod_name: "hard".into(),
            grace_ms: Some(1000),
        })
        .await;
    assert!(stopped.succeeded(), "{stopped:?}");

    // A build step's container, caught while its RUN sleeps.
    w.uplink(&[(
        "Dockerfile",
        b"FROM busybox:latest\nRUN sleep 6 && echo hardening-probe\n",
    )])
    .await;
    let build = {
        let kind = TaskKind::DockerBuild {
            volume: "pvc".into(),
            dockerfile: "Dockerfile".into(),
            context: "/".into(),
            image: ImageRef {
                name: "hard".into(),
                tag: "1".into(),
            },
            max_duration_ms: Some(120_000),
        };
        w.run(kind)
    };
    let probe = async {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < until, "no build step container seen");
            let all = docker
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    ..Default::default()
                }))
                .await
                .unwrap();
            for c in all {
                if c.command
                    .as_deref()
                    .is_some_and(|x| x.contains("hardening-probe"))
                {
                    let id = c.id.unwrap_or_default();
                    if let Ok(i) = docker
                        .inspect_container(&id, None::<InspectContainerOptions>)
                        .await
                    {
                        return i;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (built, step) = tokio::join!(build, probe);
    assert!(built.succeeded(), "{built:?}");
    let h = step.host_config.unwrap();
    assert_eq!(
        h.network_mode.as_deref(),
        Some("none"),
        "a build has no network"
    );
    assert_eq!(h.memory, Some(1 << 30));
    assert_eq!(h.memory_swap, Some(1 << 30));
    assert_eq!(h.cpu_quota, Some(100_000));
    assert_eq!(h.cpu_period, Some(100_000));
}

/// A task that changes a volume's files runs beside a running pod that mounts the volume, and
/// the pod cannot send it outside: the pod swaps a folder of its volume for a symlink to a host
/// folder holding canaries, over and over, while uplinks, moves, deletes and downlinks go
/// through that folder. Nothing outside is read, written, moved or deleted; each task works
/// inside the volume or fails naming the symlink (or what was not there).
#[tokio::test(flavor = "multi_thread")]
async fn a_running_pod_cannot_send_volume_tasks_outside() {
    let w = World::new(flight::DiskLimits::default()).await;
    w.uplink(&[("seed.txt", b"s")]).await;
    let outside = w.dir.path().join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    const CANARY: &[u8] = b"canary: outside the volume\n";
    for f in ["canary", "sub/canary"] {
        std::fs::write(outside.join(f), CANARY).unwrap();
    }
    let script = format!(
        "cd /data; while true; do rm -rf sw; mkdir -p sw/sub; echo inside > sw/canary; \
         echo inside > sw/sub/canary; echo up > up; rm -rf sw; ln -s {} sw; done",
        outside.display()
    );
    let r = w
        .run(pod("swapper", busybox(), &script, 300_000, true))
        .await;
    assert!(r.succeeded(), "{r:?}");
    appears(&w.volume().join("up")).await;
    let digest = w.agent.object_layout().put(b"uplinked\n").unwrap();
    w.agent
        .handle_event(link::LinkEvent::ObjectReceived(digest))
        .unwrap();
    let mut outcomes: HashMap<&str, usize> = HashMap::new();
    let mut downlinked = Vec::new();
    let until = Instant::now() + Duration::from_secs(8);
    let mut i = 0;
    while Instant::now() < until {
        i += 1;
        let tasks = [
            TaskKind::Uplink {
                volume: "pvc".into(),
                files: vec![UplinkFile {
                    path: "sw/up.txt".into(),
                    digest,
                    size: 9,
                    mode: 0o644,
                }],
            },
            TaskKind::FilesMove {
                volume: "pvc".into(),
                source: "sw/canary".into(),
                destination: format!("moved/c{i}"),
            },
            TaskKind::FilesDelete {
                volume: "pvc".into(),
                paths: vec!["sw/sub/canary".into()],
            },
            TaskKind::Downlink {
                volume: "pvc".into(),
                sources: vec!["sw/*".into(), "sw/canary".into()],
            },
        ];
        for task in tasks {
            let r = w.run(task).await;
            downlinked.extend(r.outputs.files.iter().map(|f| f.digest));
            let outcome = match &r.error {
                None => "ok",
                Some(e)
                    if e.message
                        .contains("the agent follows no symlink in a volume") =>
                {
                    "refused: a symlink"
                }
                Some(e)
                    if [
                        "no such file or folder",
                        "File not found: ",
                        "removed meanwhile",
                    ]
                    .iter()
                    .any(|m| e.message.contains(m)) =>
                {
                    "failed: not there"
                }
                Some(e) => panic!("unclear: {}", e.message),
            };
            *outcomes.entry(outcome).or_default() += 1;
        }
    }
    let stopped = w
        .run(TaskKind::PodStop {
            pod_name: "swapper".into(),
            grace_ms: Some(500),
        })
        .await;
    assert!(stopped.succeeded(), "{stopped:?}");
    println!("{i} rounds: {outcomes:?}");
    let mut left: Vec<String> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["canary", "sub"], "nothing written or moved outside");
    for f in ["canary", "sub/canary"] {
        assert_eq!(std::fs::read(outside.join(f)).unwrap(), CANARY, "{f}");
    }
    assert!(
        !downlinked.contains(&wire::Digest::of(CANARY)),
        "nothing read outside"
    );
    assert!(outcomes.get("ok").is_some_and(|n| *n > 0), "{outcomes:?}");
}

/// An unmerged pod.run that runs long holds up no other tenant's execution: the agent runs the
/// two plans side by side, and the short one ends while the long pod still runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_pod_holds_up_no_other_tenants_plan() {
    let mut w = World::new(flight::DiskLimits::default()).await;
    let bob = format!("t{:010x}", rand::random::<u64>() >> 24);
    let _bob = Cleanup(bob.clone());
    let plan = |tenant: &str, kind: TaskKind| wire::Plan {
        execution: format!("{:032x}", rand::random::<u128>()),
        tenant: tenant.into(),
        tasks: vec![PlanTask {
            id: "run".into(),
            on_failure: OnFailure::Stop,
            trigger: None,
            kind,
        }],
        system: "em".into(),
        sequence: rand::random::<u32>().into(),
        elements: None,
        issued_ms: 0,
        expires_ms: u64::MAX,
        signature: Vec::new(),
    };
    let long = plan(
        &w.tenant,
        pod("long", busybox(), "sleep 8; echo long done", 60_000, false),
    );
    let short = plan(
        &bob,
        pod("short", busybox(), "echo short done", 60_000, false),
    );
    let long_container = format!("orbitdock-{}-long-{}", w.tenant, &long.execution[..8]);
    for p in [long.clone(), short.clone()] {
        w.agent.handle_message(wire::Message::Plan(p)).unwrap();
    }
    let agent = w.agent.clone();
    let plans = tokio::spawn(async move { agent.run_plans().await });
    let docker = docker().await;
    let mut ended = Vec::new();
    let until = Instant::now() + Duration::from_secs(120);
    while ended.len() < 2 {
        let left = until.saturating_duration_since(Instant::now());
        let Ok(Some(out)) = tokio::time::timeout(left, w._outbox.recv()).await else {
            panic!("the plans did not end: {ended:?}");
        };
        if let Outgoing::Message(wire::Message::ExecutionEvent {
            execution, state, ..
        }) = out
            && state != wire::TaskState::Running
        {
            if execution == short.execution {
                // The long pod still runs when the short plan ends.
                let running = docker
                    .inspect_container(&long_container, None::<InspectContainerOptions>)
                    .await
                    .ok()
                    .and_then(|c| c.state)
                    .and_then(|s| s.running);
                assert_eq!(running, Some(true), "{long_container}");
            }
            ended.push((execution, state));
        }
    }
    plans.abort();
    assert_eq!(
        ended,
        [
            (short.execution, wire::TaskState::Success),
            (long.execution, wire::TaskState::Success)
        ]
    );
}
