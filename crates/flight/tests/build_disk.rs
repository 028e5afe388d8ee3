//! A build watched while it runs, against the real Docker Engine of this machine: a `RUN` step
//! that writes a big file is stopped once the build took more of the engine's storage than the
//! limit allows, with a clear disk-limit error.
//!
//! The test seeds the stand-in base images first (idempotent), works as a fresh tenant (`t` +
//! random hex) and removes what that tenant left in the daemon when it ends, pass or fail:
//! containers and images by the `org.orbitdock.tenant` label or the `tenants/<name>/` prefix.
//! Without a reachable Docker Engine it fails; it never skips.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use wire::{ErrorCode, ImageRef, OnFailure, PlanTask, TaskKind, UplinkFile};

use flight::{Agent, AgentConfig};

mod common;
use common::{Cleanup, docker, step_containers};

/// A `RUN` step writes 4 MiB every tenth of a second (400 MiB if let go) under a limit of
/// 64 MiB a build: the agent, looking at the free space of the engine's data root every second,
/// stops the build (its request dropped) with a disk-limit error naming the data root, the size
/// and the limit, and the step's container does not stay behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_build_that_writes_too_much_is_stopped() {
    let mut lines = Vec::new();
    let catalogue = standins::seed_bases(&mut |l: &str| lines.push(l.to_string()))
        .await
        .expect("seed-bases needs the Docker Engine (and a static busybox or apt-get)");
    assert!(
        catalogue.iter().all(|b| b.digest.is_some()),
        "{catalogue:?} {lines:?}"
    );
    let tenant = format!("t{:010x}", rand::random::<u64>() >> 24);
    let _cleanup = Cleanup(tenant.clone());
    let dir = tempfile::tempdir().unwrap();
    let limits = flight::DiskLimits {
        build_bytes: 64 << 20,
        reserve_bytes: 8 << 20,
        ..flight::DiskLimits::default()
    };
    let (tx, _outbox) = mpsc::channel(1024);
    let config = AgentConfig {
        system: "em".into(),
        state_dir: dir.path().join("state"),
        volumes_dir: dir.path().join("volumes"),
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
    let execution = format!("{:032x}", rand::random::<u128>());
    let run = |index: usize, kind: TaskKind| {
        let (agent, tenant, execution) = (&agent, &tenant, &execution);
        async move {
            let task = PlanTask {
                id: format!("t{index}"),
                on_failure: OnFailure::Stop,
                trigger: None,
                kind,
            };
            agent.run_task(tenant, execution, index, &task).await
        }
    };
    // The tenant's name in the step's command finds its container.
    let dockerfile = format!(
        "FROM busybox\n\
         RUN echo writing {tenant}; i=0; while [ $i -lt 100 ]; do \
         dd if=/dev/zero of=/fill.$i bs=1048576 count=4 2>/dev/null; i=$((i+1)); sleep 0.1; done\n"
    );
    let dockerfile = dockerfile.as_bytes();
    let digest = agent.object_layout().put(dockerfile).unwrap();
    agent
        .handle_event(link::LinkEvent::ObjectReceived(digest))
        .unwrap();
    let up = run(
        0,
        TaskKind::Uplink {
            volume: "pvc".into(),
            files: vec![UplinkFile {
                path: "app/Dockerfile".into(),
                digest,
                size: dockerfile.len() as u64,
                mode: 0o644,
            }],
        },
    )
    .await;
    assert!(up.succeeded(), "{up:?}");

    let docker = docker().await;
    let started = Instant::now();
    // Sees the step's container while the build runs (so that its absence later means it went).
    let seen = async {
        while started.elapsed() < Duration::from_secs(60) {
            if !step_containers(&docker, &tenant).await.is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    let build = run(
        1,
        TaskKind::DockerBuild {
            volume: "pvc".into(),
            dockerfile: "app/Dockerfile".into(),
            context: "app".into(),
            image: ImageRef {
                name: "filler".into(),
                tag: "v1".into(),
            },
            max_duration_ms: Some(300_000),
        },
    );
    let (r, seen) = tokio::join!(build, seen);
    let took = started.elapsed();
    let error = r.error.as_ref().expect("the build was stopped");
    println!("after {took:?}: {}", error.message);
    assert_eq!(error.code, ErrorCode::ExecutionError, "{r:?}");
    let root = docker.info().await.unwrap().docker_root_dir.unwrap();
    let prefix =
        format!("the build was stopped: what it wrote to the Docker Engine's storage ({root}) is ");
    assert!(
        error.message.starts_with(&prefix)
            && error
                .message
                .ends_with("over the limit of 67108864 bytes (64.0 MiB) of a build"),
        "{}",
        error.message
    );
    assert!(
        r.outputs.log_tail.iter().any(|l| l.contains("writing")),
        "the RUN step ran: {r:?}"
    );
    // Stopped by the watch (the message above), not ended: no image was made (below).

    // The step's container goes with the cancelled build (`forcerm`), and no image is made.
    assert!(seen, "the step's container was seen while the build ran");
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let left = step_containers(&docker, &tenant).await;
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < until, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let image = docker
        .inspect_image(&format!("tenants/{tenant}/filler:v1"))
        .await;
    assert!(image.is_err(), "no image: {image:?}");
}
