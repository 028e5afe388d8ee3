//! The test playing the flight agent: an agent's link endpoint on loopback, its objects in a
//! temporary directory. Each test adds what it says and hears (`impl Flight` in the test).

use std::net::SocketAddr;
use std::time::Duration;

use link::{
    Contact, EndpointConfig, LinkEvent, MessageReceiver, MessageSender, ObjectLayout,
    spawn_endpoint,
};
use wire::{Direction, LinkKey, Message};

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
}
