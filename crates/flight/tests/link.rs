//! `flight::run` behind a real link endpoint on 127.0.0.1, with the test as the ground (its own
//! endpoint, state and object directory, the same key, no emulator between): the agent says
//! Hello, asks for the objects of a plan, receives them as object transfers, runs the plan against
//! the real Docker Engine, reports every event, and sends a downlink's file as an object.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
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
        kind,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_a_plan_sent_over_the_link() {
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
    };
    let (ground, mut from_flight) = link::spawn_endpoint(endpoint).await.unwrap();
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
    };
    let agent = tokio::spawn(flight::run(config));
    let tenant = format!("t{:010x}", rand::random::<u64>() >> 24);
    let _cleanup = Cleanup(tenant.clone());

    let recv = async |rx: &mut link::MessageReceiver| {
        let event = tokio::time::timeout(Duration::from_secs(120), rx.recv())
            .await
            .expect("flight went quiet")
            .expect("link up");
        match event {
            LinkEvent::Message { bytes, .. } => Heard::Message(
                wire::decode_message(&bytes).expect("the flight sends wire messages"),
            ),
            other => Heard::Object(other),
        }
    };
    let Heard::Message(Message::Hello {
        agent: name,
        catalogue,
        ..
    }) = recv(&mut from_flight).await
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
    let mut plan = Plan {
        execution: format!("{:032x}", rand::random::<u128>()),
        tenant: tenant.clone(),
        tasks: vec![
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
        signature: Vec::new(),
    };
    signer.sign(&mut plan);
    ground
        .send(wire::encode_message(&Message::Plan(plan.clone())))
        .await
        .unwrap();

    let mut events = Vec::new();
    let mut received: HashMap<Digest, Vec<u8>> = HashMap::new();
    let mut delivered = Vec::new();
    let mut downlinked = None;
    let mut finished = false;
    let mut listings = 0;
    // The downlink's object may arrive after the execution's last event.
    while !finished || downlinked.is_none_or(|d| !received.contains_key(&d)) {
        match recv(&mut from_flight).await {
            Heard::Message(Message::Need { digests }) => {
                assert_eq!(digests, [digest]);
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
            Heard::Object(LinkEvent::ObjectReceived(d)) => {
                let data = std::fs::read(ground_objects.path(&d)).unwrap();
                assert_eq!(Digest::of(&data), d);
                received.insert(d, data);
            }
            Heard::Object(LinkEvent::ObjectDelivered(d)) => delivered.push(d),
            Heard::Object(LinkEvent::ObjectFailed(d, e)) => panic!("object {d}: {e}"),
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
    assert!(!agent.is_finished(), "the agent keeps running");
    agent.abort();
}
