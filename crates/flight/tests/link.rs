//! `flight::run` behind a real link endpoint on 127.0.0.1, with the test as the ground (its own
//! endpoint, state and object directory, the same key, no emulator between): the agent says
//! Hello, asks for the objects of a plan, receives them as object transfers, runs the plan against
//! the real Docker Engine, reports every event, and sends a downlink's file as an object; a plan
//! replayed long after it ran is refused and creates no container.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::{EventsOptions, ListContainersOptions, RemoveContainerOptions};
use futures_util::StreamExt;
use link::LinkEvent;
use wire::{Digest, ImageRef, Message, OnFailure, Plan, PlanTask, TaskKind, TaskState, UplinkFile};

/// Removes the tenant's containers on drop, pass or fail.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let tenant = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let Ok(docker) = Docker::connect_with_local_defaults() else {
                    return;
                };
                let Ok(docker) = docker.negotiate_version().await else {
                    return;
                };
                let filters = HashMap::from([(
                    "label".to_string(),
                    vec![format!("org.orbitdock.tenant={tenant}")],
                )]);
                let options = ListContainersOptions {
                    all: true,
                    filters: Some(filters),
                    ..Default::default()
                };
                for c in docker
                    .list_containers(Some(options))
                    .await
                    .unwrap_or_default()
                {
                    let remove = RemoveContainerOptions {
                        force: true,
                        v: true,
                        link: false,
                    };
                    let _ = docker
                        .remove_container(&c.id.unwrap_or_default(), Some(remove))
                        .await;
                }
            })
        })
        .join();
    }
}

/// What the test, as the ground, hears from the agent: a decoded message, or news of an object.
enum Heard {
    Message(Message),
    Object(LinkEvent),
}

/// A free UDP port on 127.0.0.1.
fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn task(id: &str, kind: TaskKind) -> PlanTask {
    PlanTask {
        id: id.into(),
        on_failure: OnFailure::Stop,
        trigger: None,
        kind,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A plan for `em` numbered `sequence`, valid for an hour, signed by `signer`.
fn signed(signer: &wire::PlanSigner, tenant: &str, sequence: u64, tasks: Vec<PlanTask>) -> Plan {
    let mut plan = Plan {
        execution: format!("{:032x}", rand::random::<u128>()),
        tenant: tenant.into(),
        tasks,
        system: "em".into(),
        sequence,
        elements: None,
        issued_ms: now_ms(),
        expires_ms: now_ms() + 3_600_000,
        signature: Vec::new(),
    };
    signer.sign(&mut plan);
    plan
}

/// A pod that does nothing, in the tenant's volume `pvc`.
fn idle_pod(name: &str) -> PlanTask {
    task(
        name,
        TaskKind::PodRun {
            pod_name: name.into(),
            image: ImageRef {
                name: "busybox".into(),
                tag: "latest".into(),
            },
            command: Some(vec!["/bin/true".into()]),
            args: None,
            env: vec![],
            volume: "pvc".into(),
            max_duration_ms: Some(60_000),
            scheduled_ms: None,
            detached: false,
            node: None,
            merged: false,
            ports: vec![],
        },
    )
}

/// The agent running behind a real endpoint, and the test's side of the link as the ground.
struct Setup {
    dir: tempfile::TempDir,
    ground: link::MessageSender,
    from_flight: link::MessageReceiver,
    ground_objects: link::ObjectLayout,
    agent: tokio::task::JoinHandle<Result<(), flight::Error>>,
    signer: wire::PlanSigner,
    tenant: String,
    _cleanup: Cleanup,
}

impl Setup {
    async fn start() -> Setup {
        standins::seed_bases(&mut |_| {})
            .await
            .expect("seed-bases needs the Docker Engine");
        let dir = tempfile::tempdir().unwrap();
        let (flight_addr, ground_addr) = (free_addr(), free_addr());
        let key = wire::LinkKey::from_bytes(rand::random());
        let ground_objects = link::ObjectLayout::new(dir.path().join("ground/objects"));
        let endpoint = link::EndpointConfig {
            bind: ground_addr,
            peer: flight_addr,
            key: key.clone(),
            sends: wire::Direction::Up,
            state_dir: dir.path().join("ground/link"),
            objects: ground_objects.clone(),
            rate_bits_per_sec: None,
            contact: link::Contact::Always,
            settings: link::LinkSettings::STANDARD,
            admit: None,
        };
        let (ground, from_flight) = link::spawn_endpoint(endpoint).await.unwrap();
        let signer = wire::PlanSigner::from_bytes(rand::random());
        let config = flight::FlightConfig {
            system: "em".into(),
            state_dir: dir.path().join("state"),
            volumes_dir: dir.path().join("volumes"),
            bind: flight_addr,
            link: ground_addr,
            key,
            rate_bits_per_sec: None,
            contact: link::Contact::Always,
            plan_verifier: signer.verifier(),
            builder: wire::Builder::Classic,
            catalogue: None,
            limits: flight::DiskLimits::default(),
            quotas: flight::Quotas::none(),
            link_settings: link::LinkSettings::STANDARD,
            clock: flight::ClockConfig::Host,
            telemetry: flight::telemetry::TelemetryConfig {
                listen: None,
                elements: None,
            },
        };
        let agent = tokio::spawn(flight::run(config));
        let tenant = format!("t{:010x}", rand::random::<u64>() >> 24);
        Setup {
            dir,
            ground,
            from_flight,
            ground_objects,
            agent,
            signer,
            _cleanup: Cleanup(tenant.clone()),
            tenant,
        }
    }

    async fn recv(&mut self) -> Heard {
        let event = tokio::time::timeout(Duration::from_secs(120), self.from_flight.recv())
            .await
            .expect("flight went quiet")
            .expect("link up");
        match event {
            LinkEvent::Message { bytes, .. } => Heard::Message(
                wire::decode_message(&bytes).expect("the flight sends wire messages"),
            ),
            other => Heard::Object(other),
        }
    }

    async fn send_plan(&self, plan: &Plan) {
        self.ground
            .send(wire::encode_message(&Message::Plan(plan.clone())))
            .await
            .unwrap();
    }
}

/// Each execution's final state and its tasks' error messages, as heard from the agent.
#[derive(Default)]
struct Outcomes {
    finished: HashMap<String, TaskState>,
    errors: HashMap<String, Vec<String>>,
}

impl Outcomes {
    /// Listens until every one of `executions` has finished.
    async fn wait_for(&mut self, setup: &mut Setup, executions: &HashSet<String>) {
        while !executions.iter().all(|e| self.finished.contains_key(e)) {
            match setup.recv().await {
                Heard::Message(Message::ExecutionEvent {
                    execution, state, ..
                }) if state.is_final() => {
                    self.finished.insert(execution, state);
                }
                Heard::Message(Message::TaskEvent {
                    execution,
                    error: Some(e),
                    ..
                }) => self.errors.entry(execution).or_default().push(e.message),
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_a_plan_sent_over_the_link() {
    let mut setup = Setup::start().await;
    let (ground, ground_objects, tenant) = (
        setup.ground.clone(),
        setup.ground_objects.clone(),
        setup.tenant.clone(),
    );
    let Heard::Message(Message::Hello {
        agent: name,
        catalogue,
        ..
    }) = setup.recv().await
    else {
        panic!("the first event must be a Hello");
    };
    assert_eq!(name, "em");
    assert!(
        catalogue.iter().all(|b| b.digest.is_some()),
        "{catalogue:?}"
    );

    let input = b"over the link\n".to_vec();
    let digest = Digest::of(&input);
    let plan = signed(
        &setup.signer,
        &tenant,
        1,
        vec![
            task(
                "up",
                TaskKind::Uplink {
                    volume: "pvc".into(),
                    files: vec![UplinkFile {
                        path: "/in/input.txt".into(),
                        digest,
                        size: input.len() as u64,
                        mode: 0o644,
                    }],
                },
            ),
            task(
                "shout",
                TaskKind::PodRun {
                    pod_name: "shout".into(),
                    image: ImageRef {
                        name: "busybox".into(),
                        tag: "latest".into(),
                    },
                    command: Some(vec!["/bin/sh".into(), "-c".into()]),
                    args: Some(vec![
                        "tr a-z A-Z < /data/in/input.txt > /data/out.txt".into(),
                    ]),
                    env: vec![],
                    volume: "pvc".into(),
                    max_duration_ms: Some(60_000),
                    scheduled_ms: None,
                    detached: false,
                    node: None,
                    merged: false,
                    ports: vec![],
                },
            ),
            task(
                "down",
                TaskKind::Downlink {
                    volume: "pvc".into(),
                    sources: vec!["out.txt".into()],
                },
            ),
        ],
    );
    setup.send_plan(&plan).await;

    let mut events = Vec::new();
    let mut received: HashMap<Digest, Vec<u8>> = HashMap::new();
    let mut delivered = Vec::new();
    let mut downlinked = None;
    let mut finished = false;
    let mut listings = 0;
    // The downlink's object may arrive after the execution's last event.
    while !finished || downlinked.is_none_or(|d| !received.contains_key(&d)) {
        match setup.recv().await {
            Heard::Message(Message::Want { objects }) => {
                let digests: Vec<Digest> = objects.iter().map(|o| o.digest).collect();
                assert_eq!(digests, [digest]);
                assert!(objects[0].bases.is_empty(), "nothing was at its path");
                events.push("need".to_string());
                let path = ground_objects.path(&digest);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &input).unwrap();
                ground
                    .send_object(digest, input.len() as u64, 1)
                    .await
                    .unwrap();
            }
            Heard::Message(Message::TaskEvent {
                task,
                state,
                error,
                outputs,
                ..
            }) => {
                assert!(error.is_none(), "task {task}: {error:?}");
                if task == 2 && state == TaskState::Success {
                    let files = outputs.unwrap().files;
                    assert_eq!(files[0].path, "/out.txt");
                    downlinked = Some(files[0].digest);
                }
                events.push(format!("{task} {}", state.as_str()));
            }
            Heard::Message(Message::VolumeListing {
                tenant: t,
                volume,
                files,
            }) => {
                assert_eq!((t.as_str(), volume.as_str()), (tenant.as_str(), "pvc"));
                assert!(files.iter().any(|f| f.path == "/in/input.txt"), "{files:?}");
                listings += 1;
            }
            Heard::Message(Message::ExecutionEvent { state, .. }) => {
                finished = state.is_final();
                events.push(format!("execution {}", state.as_str()));
            }
            Heard::Message(Message::Hello { .. }) => {}
            Heard::Message(Message::Plan(_)) => panic!("flight sent a plan"),
            Heard::Message(
                Message::VolumeDigests { .. }
                | Message::InventorySummary(_)
                | Message::BaseLayers { .. },
            ) => {}
            Heard::Message(m) => panic!("unexpected message {m:?}"),
            Heard::Object(LinkEvent::ObjectReceived(d)) => {
                let data = std::fs::read(ground_objects.path(&d)).unwrap();
                assert_eq!(Digest::of(&data), d);
                received.insert(d, data);
            }
            Heard::Object(LinkEvent::ObjectDelivered(d)) => delivered.push(d),
            Heard::Object(
                LinkEvent::ObjectFailed(d, e)
                | LinkEvent::ObjectRefused(d, e)
                | LinkEvent::ObjectDeclined(d, e),
            ) => panic!("object {d}: {e}"),
            Heard::Object(LinkEvent::Message { .. }) => unreachable!("messages are decoded"),
        }
    }
    assert_eq!(
        events,
        [
            "need",
            "execution RUNNING",
            "0 RUNNING",
            "0 SUCCESS",
            "1 RUNNING",
            "1 SUCCESS",
            "2 RUNNING",
            "2 SUCCESS",
            "execution SUCCESS"
        ]
    );
    assert_eq!(received[&downlinked.unwrap()], b"OVER THE LINK\n");
    assert_eq!(received.len(), 1, "only the downlinked file came down");
    assert_eq!(listings, 2, "after the uplink and after the pod");
    // The ground's object was committed on board before the uplink could succeed.
    assert_eq!(delivered, [digest]);
    assert!(!setup.agent.is_finished(), "the agent keeps running");
    setup.agent.abort();
}

/// A plan the agent ran, sent again (as anyone holding the link key could) after 1,001 others
/// made it forget the plan's record: refused as a replay by its sequence number, and no container
/// is created for it. Plans run in the order they came, so once a plan sent after the replay has
/// finished, a container the replay could have made would exist: the Docker Engine's own events
/// are the witness.
#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_plan_after_1001_others_creates_no_container() {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut setup = Setup::start().await;
    let tenant = setup.tenant.clone();
    let mut heard = Outcomes::default();

    let pod = signed(&setup.signer, &tenant, 1, vec![idle_pod("once")]);
    setup.send_plan(&pod).await;
    heard
        .wait_for(&mut setup, &HashSet::from([pod.execution.clone()]))
        .await;
    assert_eq!(heard.finished[&pod.execution], TaskState::Success);

    // 1,001 other plans (no tasks), in batches the onboard queue holds.
    for batch in 0..11u64 {
        let mut executions = HashSet::new();
        for i in 0..91u64 {
            let other = signed(&setup.signer, &tenant, 2 + batch * 91 + i, vec![]);
            setup.send_plan(&other).await;
            executions.insert(other.execution);
        }
        heard.wait_for(&mut setup, &executions).await;
        assert!(
            executions
                .iter()
                .all(|e| heard.finished[e] == TaskState::Success)
        );
    }

    // The replay, then a fresh plan behind it.
    setup.send_plan(&pod).await;
    let after = signed(&setup.signer, &tenant, 2000, vec![idle_pod("after")]);
    setup.send_plan(&after).await;
    heard.finished.remove(&pod.execution);
    let executions = HashSet::from([pod.execution.clone(), after.execution.clone()]);
    heard.wait_for(&mut setup, &executions).await;
    assert_eq!(
        heard.finished[&pod.execution],
        TaskState::Failed,
        "the replay is refused"
    );
    let errors = &heard.errors[&pod.execution];
    assert!(errors.iter().any(|m| m.contains("a replay")), "{errors:?}");
    assert_eq!(heard.finished[&after.execution], TaskState::Success);

    // Containers created for each execution since the test began, by the engine's account.
    let docker = Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let creates = async |execution: &str| {
        let options = EventsOptions {
            since: Some((started - 1).to_string()),
            until: Some(until.to_string()),
            filters: Some(HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                ("event".to_string(), vec!["create".to_string()]),
                (
                    "label".to_string(),
                    vec![format!("org.orbitdock.execution={execution}")],
                ),
            ])),
        };
        docker.events(Some(options)).count().await
    };
    assert_eq!(
        creates(&pod.execution).await,
        1,
        "the pod ran once, never again"
    );
    assert_eq!(creates(&after.execution).await, 1, "the witness ran");
    assert!(!setup.agent.is_finished(), "the agent keeps running");
    setup.agent.abort();
    drop(setup.dir);
}
