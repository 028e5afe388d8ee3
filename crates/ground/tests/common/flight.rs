//! The test playing the flight agent: an agent's link endpoint on loopback, its objects in a
//! temporary directory, and what every such test says and hears (task and execution events,
//! the ground's messages). Each test adds the rest (`impl Flight` in the test).

use std::net::SocketAddr;
use std::time::Duration;

use ground::SystemLink;
use link::{
    Contact, EndpointConfig, LinkEvent, MessageReceiver, MessageSender, ObjectLayout,
    spawn_endpoint,
};
use wire::{Direction, LinkKey, Message, TaskError, TaskOutputs, TaskState};

/// The ground's link `em` at `bind` to an agent at `link`, always in contact.
pub fn em(bind: SocketAddr, link: SocketAddr, key: LinkKey) -> SystemLink {
    SystemLink {
        name: "em".into(),
        bind,
        link,
        key,
        rate_bits_per_sec: None,
        contact: Contact::Always,
        orbit: None,
        link_settings: link::LinkSettings::STANDARD,
    }
}

pub struct Flight {
    pub tx: MessageSender,
    pub rx: MessageReceiver,
    pub objects: ObjectLayout,
    /// The agent's session state and object directory.
    pub _dir: tempfile::TempDir,
}

impl Flight {
    /// An agent endpoint at `bind` talking to the ground at `peer`.
    pub async fn spawn(bind: SocketAddr, peer: SocketAddr, key: LinkKey) -> Flight {
        let dir = tempfile::tempdir().unwrap();
        let objects = ObjectLayout::new(dir.path().join("objects"));
        let (tx, rx) = spawn_endpoint(EndpointConfig {
            bind,
            peer,
            key,
            sends: Direction::Down,
            state_dir: dir.path().join("state"),
            objects: objects.clone(),
            rate_bits_per_sec: None,
            contact: Contact::Always,
            settings: link::LinkSettings::STANDARD,
            admit: None,
        })
        .await
        .unwrap();
        Flight {
            tx,
            rx,
            objects,
            _dir: dir,
        }
    }

    /// The next event of the endpoint, failing the test after 60 s of silence.
    pub async fn event(&mut self) -> LinkEvent {
        tokio::time::timeout(Duration::from_secs(60), self.rx.recv())
            .await
            .expect("the ground said nothing for 60 s")
            .expect("the flight endpoint stopped")
    }

    pub async fn send(&self, m: Message) {
        self.tx.send(wire::encode_message(&m)).await.unwrap();
    }

    /// The ground's next message.
    pub async fn recv(&mut self) -> Message {
        match self.event().await {
            LinkEvent::Message { bytes, .. } => {
                wire::decode_message(&bytes).expect("the ground sends wire messages")
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Reports task `task` of `execution` in `state` (at a time that orders the reports).
    pub async fn task(
        &self,
        execution: &str,
        task: u32,
        state: TaskState,
        error: Option<TaskError>,
        outputs: Option<TaskOutputs>,
    ) {
        let at_ms = 1_800_000_000_000 + u64::from(task) * 1000 + state as u64;
        self.send(Message::TaskEvent {
            execution: execution.into(),
            task,
            state,
            at_ms,
            error,
            outputs,
        })
        .await;
    }

    /// Reports `execution` in `state`.
    pub async fn execution(&self, execution: &str, state: TaskState, at_ms: u64) {
        self.send(Message::ExecutionEvent {
            execution: execution.into(),
            state,
            at_ms,
        })
        .await;
    }
}
