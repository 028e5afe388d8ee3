//! The ground's side of each system's link: one endpoint, one task sending (plans, and the objects
//! the system asks for), one task handling what comes back (messages, and objects come down).
//!
//! The two directions are separate tasks on purpose: queuing on the endpoint may wait, and the
//! handler must keep reading meanwhile, or the endpoint would stall behind it. Objects never
//! pass through here: the endpoint reads the ones it sends from the blob store and commits the
//! ones it receives, verified, into it; the handler only hears that they arrived.
//!
//! The link carries messages as bytes: this module encodes every `wire::Message` it sends and
//! decodes every one it receives (an undecodable one is logged with its sequence number and
//! dropped). It handles `Hello` and `Need` itself; what a system reports about executions (task
//! and execution events, volume listings) is applied to the database by `reports`.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use link::{EndpointConfig, LinkEvent, MessageReceiver, MessageSender};
use tokio::sync::{mpsc, oneshot};
use wire::{Digest, Direction, Message, Plan};

use crate::config::{SystemLink, limits};
use crate::error::Error;
use crate::{Core, db, downlink, reports, time};

/// The ground's handle on one system's link. Dropping it stops both tasks.
#[derive(Debug)]
pub(crate) struct SystemHandle {
    plans: mpsc::Sender<Plan>,
    /// For the endpoint's snapshot (the uplink queue).
    sender: MessageSender,
    /// Dropped with the handle; the handler task ends when it notices.
    _alive: oneshot::Sender<()>,
}

/// The plan could not be queued: the link has stopped.
#[derive(Debug)]
pub(crate) struct LinkStopped;

impl SystemHandle {
    /// Queues a plan for the system.
    pub(crate) async fn send_plan(&self, plan: Plan) -> Result<(), LinkStopped> {
        self.plans.send(plan).await.map_err(|_| LinkStopped)
    }

    /// The latest snapshot of the endpoint: whether the link is up, and the outgoing transfers
    /// in sending order.
    pub(crate) fn stats(&self) -> link::LinkStats {
        self.sender.stats()
    }
}

/// The priority of the objects an uplink needs (messages go first, at 0).
const UPLINK_PRIORITY: u8 = 2;

/// Binds the system's endpoint, with its session kept in `state_dir` and the blob store as its
/// object directory, and spawns its two tasks.
pub(crate) async fn spawn(
    core: Arc<Core>,
    config: &SystemLink,
    state_dir: PathBuf,
) -> io::Result<SystemHandle> {
    let (sender, receiver) = link::spawn_endpoint(EndpointConfig {
        bind: config.bind,
        peer: config.link,
        key: config.key.clone(),
        sends: Direction::Up,
        state_dir,
        objects: core.blobs.layout(),
        rate_bits_per_sec: config.rate_bits_per_sec,
        contact: config.contact.clone(),
    })
    .await?;
    let (plans_tx, plans_rx) = mpsc::channel(limits::PENDING_PLANS);
    let (needs_tx, needs_rx) = mpsc::channel(limits::PENDING_NEEDS);
    let (alive_tx, alive_rx) = oneshot::channel();
    tracing::info!(system = %config.name, bind = %config.bind, link = %config.link, "system link up");
    tokio::spawn(send_loop(
        core.clone(),
        config.name.clone(),
        sender.clone(),
        plans_rx,
        needs_rx,
    ));
    tokio::spawn(receive_loop(
        core,
        config.name.clone(),
        receiver,
        needs_tx,
        plans_tx.clone(),
        alive_rx,
    ));
    Ok(SystemHandle {
        plans: plans_tx,
        sender,
        _alive: alive_tx,
    })
}

/// Queues plans, then the objects the system asked for, until both queues close.
async fn send_loop(
    core: Arc<Core>,
    system: String,
    sender: MessageSender,
    mut plans: mpsc::Receiver<Plan>,
    mut needs: mpsc::Receiver<Vec<Digest>>,
) {
    let (mut plans_open, mut needs_open) = (true, true);
    while plans_open || needs_open {
        tokio::select! {
            biased;
            p = plans.recv(), if plans_open => match p {
                Some(plan) => {
                    let execution = plan.execution.clone();
                    if sender
                        .send(wire::encode_message(&Message::Plan(plan)))
                        .await
                        .is_err()
                    {
                        tracing::error!(%system, %execution, "link endpoint stopped; plan lost");
                        return;
                    }
                    tracing::info!(%system, %execution, "plan sent");
                }
                None => plans_open = false,
            },
            n = needs.recv(), if needs_open => match n {
                Some(digests) => {
                    for digest in digests {
                        let Some(size) = core.blobs.size(&digest).await else {
                            tracing::warn!(%system, %digest, "the system asked for an object the ground does not have");
                            continue;
                        };
                        if sender.send_object(digest, size, UPLINK_PRIORITY).await.is_err() {
                            tracing::error!(%system, "link endpoint stopped while queuing objects");
                            return;
                        }
                        tracing::debug!(%system, %digest, size, "object queued");
                    }
                }
                None => needs_open = false,
            },
        }
    }
}

async fn receive_loop(
    core: Arc<Core>,
    system: String,
    mut receiver: MessageReceiver,
    needs: mpsc::Sender<Vec<Digest>>,
    plans: mpsc::Sender<Plan>,
    mut alive: oneshot::Receiver<()>,
) {
    // The agent's boot id as last heard; none since this ground started, so the first Hello
    // also repairs what a crash of the ground itself may have lost.
    let mut last_boot: Option<u64> = None;
    loop {
        let event = tokio::select! {
            e = receiver.recv() => e,
            _ = &mut alive => return,
        };
        let Some(event) = event else {
            tracing::warn!(%system, "link endpoint stopped");
            return;
        };
        let handled = match event {
            LinkEvent::Message { seq, bytes } => {
                let message = match wire::decode_message(&bytes) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(%system, seq, error = %e, "dropped an undecodable message");
                        continue;
                    }
                };
                if let Message::Hello { boot, .. } = &message
                    && last_boot != Some(*boot)
                {
                    last_boot = Some(*boot);
                    tokio::spawn(resend_unfinished(
                        core.clone(),
                        system.clone(),
                        plans.clone(),
                    ));
                }
                handle_message(&core, &system, message, &needs).await
            }
            LinkEvent::ObjectReceived(digest) => {
                tracing::debug!(%system, %digest, "object received");
                downlink::object_arrived(&core, &digest).await
            }
            LinkEvent::ObjectDelivered(digest) => {
                tracing::debug!(%system, %digest, "object delivered");
                Ok(())
            }
            LinkEvent::ObjectFailed(digest, error) => {
                tracing::warn!(%system, %digest, %error, "an object could not be sent");
                downlink::object_failed(&core, &digest, &error).await
            }
        };
        if let Err(e) = handled {
            tracing::error!(%system, error = %e, "could not handle a link event");
        }
    }
}

/// Sends the plans of the system's unfinished executions again (the agent restarted, or this
/// ground did): the agent ignores a plan it holds and replays the events of one it finished.
async fn resend_unfinished(core: Arc<Core>, system: String, plans: mpsc::Sender<Plan>) {
    let encoded = match db::unfinished_plans(&core.db, &system).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(%system, error = %e, "could not read unfinished plans");
            return;
        }
    };
    if !encoded.is_empty() {
        tracing::info!(%system, plans = encoded.len(), "the agent (re)started: sending unfinished plans again");
    }
    for bytes in encoded {
        match wire::decode_message(&bytes) {
            Ok(Message::Plan(plan)) => {
                if plans.send(plan).await.is_err() {
                    return;
                }
            }
            _ => tracing::error!(%system, "a stored plan does not decode; skipped"),
        }
    }
}

/// Handles one message from a system. Never waits on the link itself: requests for objects go
/// to the send task.
async fn handle_message(
    core: &Core,
    system: &str,
    message: Message,
    needs: &mpsc::Sender<Vec<Digest>>,
) -> Result<(), Error> {
    match message {
        Message::Hello {
            agent,
            platform,
            catalogue,
            ..
        } => {
            if agent != system {
                tracing::warn!(%system, %agent, "the agent calls itself by another name");
            }
            tracing::info!(%system, %platform, images = catalogue.len(), "hello");
            db::upsert_system(
                &core.db,
                system,
                &agent,
                &platform,
                &db::to_json(&catalogue),
                time::now_ms(),
            )
            .await?;
        }
        Message::Plan(plan) => {
            tracing::warn!(%system, execution = %plan.execution, "a system sent a plan; ignored");
        }
        Message::Need { digests } => {
            tracing::debug!(%system, count = digests.len(), "need");
            if needs.try_send(digests).is_err() {
                tracing::warn!(%system, "too many object requests queued; one dropped");
            }
        }
        Message::TaskEvent {
            execution,
            task,
            state,
            at_ms,
            error,
            outputs,
        } => {
            reports::task_event(core, system, &execution, task, state, at_ms, error, outputs)
                .await?;
        }
        Message::ExecutionEvent {
            execution,
            state,
            at_ms,
        } => {
            reports::execution_event(core, system, &execution, state, at_ms).await?;
        }
        Message::VolumeListing {
            tenant,
            volume,
            files,
        } => {
            reports::volume_listing(core, system, &tenant, &volume, files).await?;
        }
    }
    Ok(())
}
