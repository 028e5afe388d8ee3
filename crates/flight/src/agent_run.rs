//! The agent behind the link: the endpoint, the loops that feed the agent its events and the
//! link its messages, until the task running it is aborted.

use super::*;

/// How often, in mission time, the agent looks for closed telemetry buckets to downlink.
const DIGEST_EVERY_MS: u64 = 300_000;
/// The least host time between two looks: on a fast simulated clock, five mission minutes
/// pass in a fraction of a second, and each look would send a digest of a few buckets.
const DIGEST_MIN_WAIT: Duration = Duration::from_secs(2);
/// The most digests one look sends (a day of backlog at an hour a digest); the rest goes at
/// the next look.
const DIGESTS_PER_LOOK: usize = 24;

/// Downlinks the telemetry history's digests (`telemetry::digest`) while the agent runs: every
/// [`DIGEST_EVERY_MS`] of mission time (and at least [`DIGEST_MIN_WAIT`] apart), what is ready
/// since the mark goes to the link's outbox, a digest at a time, and the mark moves past it once
/// the endpoint has queued it (the session keeps its outbox on disk, so a digest queued survives a
/// restart; one queued but not yet marked goes again, harmlessly; one the session could not
/// queue leaves the mark where it was). The link need not be up: the
/// outbox holds the digests until it is, and grows only as fast as mission time passes (an hour
/// of buckets, about 12 kB, per hour).
async fn downlink_digests(
    telemetry: crate::telemetry::Telemetry,
    sender: link::MessageSender,
) -> Result<(), Error> {
    let stopped = |_| Error::new(ErrorKind::Link, "the link endpoint stopped");
    loop {
        for _ in 0..DIGESTS_PER_LOOK {
            let Some((digest, end)) = telemetry.next_digest() else {
                break;
            };
            let buckets = digest.bucket_count();
            let bytes = wire::encode_message(&Message::TelemetryDigest(digest));
            let before = sender.stats_now().await.map_err(stopped)?.not_queued;
            sender.send(bytes).await.map_err(stopped)?;
            // Returns once the endpoint took the message: in the session's outbox, on disk,
            // unless the session could not queue it (its store failed): then the mark stays,
            // and the same buckets go at the next look.
            if sender.stats_now().await.map_err(stopped)?.not_queued != before {
                tracing::warn!(
                    buckets,
                    "the link could not queue a telemetry digest; it goes at the next look"
                );
                break;
            }
            tracing::debug!(buckets, until_ms = end, "telemetry digest queued");
            let marker = telemetry.clone();
            let saved = tokio::task::spawn_blocking(move || marker.digest_sent(end))
                .await
                .map_err(std::io::Error::other)
                .and_then(|saved| saved);
            if let Err(e) = saved {
                tracing::warn!(error = %e, "cannot save the telemetry digest's mark; a restart sends its buckets again");
            }
        }
        let clock = telemetry.clock();
        let next = clock.now_ms().saturating_add(DIGEST_EVERY_MS);
        tokio::join!(clock.sleep_until(next), tokio::time::sleep(DIGEST_MIN_WAIT));
    }
}

/// Handles one event of the link, trying again after an error (or a panic) up to
/// [`link::MESSAGE_ATTEMPTS`] times; then gives up on it with an error logged and counted.
async fn handle_with_retries(agent: &Agent, event: LinkEvent) {
    let mut wait = link::MESSAGE_RETRY_AFTER;
    for attempt in 1..=link::MESSAGE_ATTEMPTS {
        let error = match std::panic::catch_unwind(AssertUnwindSafe(|| {
            agent.handle_event(event.clone())
        })) {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the handler panicked".to_string(),
        };
        if attempt == link::MESSAGE_ATTEMPTS {
            if matches!(event, LinkEvent::Message { .. }) {
                agent.inner.dropped.fetch_add(1, Ordering::Relaxed);
            }
            tracing::error!(attempts = attempt, %error, "gave up on a link event");
            return;
        }
        tracing::warn!(attempt, %error, "could not handle a link event; trying again");
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

/// Runs the agent behind the link until the task running it is aborted or something fatal
/// happens (the link endpoint or Docker connection fails). The link endpoint keeps its session in
/// `state_dir/link/` and uses the agent's object store as its object directory.
pub async fn run(config: FlightConfig) -> Result<(), Error> {
    let (outbox, mut out_rx) = mpsc::channel::<Outgoing>(OUTBOX);
    let agent = Agent::connect(
        AgentConfig {
            system: config.system.clone(),
            state_dir: config.state_dir.clone(),
            volumes_dir: config.volumes_dir.clone(),
            plan_verifier: Some(config.plan_verifier.clone()),
            builder: config.builder,
            catalogue: config.catalogue,
            limits: config.limits,
            quotas: config.quotas.clone(),
            clock: config.clock,
        },
        outbox.clone(),
    )
    .await?;
    if let Some(elements) = &config.telemetry.elements {
        agent.telemetry().offer_elements(elements);
    }
    if let Some(addr) = config.telemetry.listen {
        agent.telemetry().serve_on(addr).await.map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot serve telemetry on {addr}: {e}"),
            )
        })?;
    }
    let endpoint = link::EndpointConfig {
        bind: config.bind,
        peer: config.link,
        key: config.key.clone(),
        sends: wire::Direction::Down,
        state_dir: config.state_dir.join("link"),
        objects: agent.object_layout(),
        rate_bits_per_sec: config.rate_bits_per_sec,
        contact: config.contact.clone(),
        settings: config.link_settings,
        admit: Some(agent.admission()),
    };
    let (sender, mut receiver) = link::spawn_endpoint(endpoint).await.map_err(|e| {
        Error::new(
            ErrorKind::Link,
            format!("cannot open the link endpoint on {}: {e}", config.bind),
        )
    })?;
    // Dropping the set (when this future is dropped or returns) aborts every task in it.
    let mut tasks: JoinSet<Result<(), Error>> = JoinSet::new();
    let acks = sender.clone();
    {
        let sender = sender.clone();
        tasks.spawn(async move {
            while let Some(out) = out_rx.recv().await {
                let sent = match out {
                    Outgoing::Message(m) => sender.send(wire::encode_message(&m)).await,
                    Outgoing::Object {
                        digest,
                        size,
                        priority,
                    } => sender.send_object(digest, size, priority).await,
                };
                sent.map_err(|e| Error::new(ErrorKind::Link, e.to_string()))?;
            }
            Ok(())
        });
    }
    tracing::info!(system = config.system, bind = %config.bind, link = %config.link, "flight agent running");
    tasks.spawn(downlink_digests(agent.telemetry().clone(), sender.clone()));
    {
        let (agent, outbox) = (agent.clone(), outbox.clone());
        tasks.spawn(async move {
            let mut every = tokio::time::interval(HELLO_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut first = true;
            loop {
                every.tick().await;
                // The session keeps every message until the ground has it: a Hello while the
                // link is down or still busy with earlier ones would only pile up.
                let link = sender.stats();
                if !first && (!link.up || link.outgoing > 0) {
                    continue;
                }
                first = false;
                let hello = agent.hello().await;
                let summary = Message::InventorySummary(agent.inventory_summary().await);
                let layers = agent.base_layers().await;
                for m in [hello, summary, layers] {
                    outbox
                        .send(Outgoing::Message(m))
                        .await
                        .map_err(|_| Error::new(ErrorKind::Link, "the outbox closed"))?;
                }
            }
        });
    }
    {
        let agent = agent.clone();
        tasks.spawn(async move {
            agent.run_plans().await;
            Ok(())
        });
    }
    tasks.spawn(crate::disk::keep_reserve(agent.inner.exec.disk.clone()));
    loop {
        tokio::select! {
            event = receiver.recv() => match event {
                Some(event) => {
                    let seq = match &event {
                        LinkEvent::Message { seq, .. } => Some(*seq),
                        _ => None,
                    };
                    handle_with_retries(&agent, event).await;
                    if let Some(seq) = seq {
                        acks.done(seq)
                            .await
                            .map_err(|e| Error::new(ErrorKind::Link, e.to_string()))?;
                    }
                }
                None => return Err(Error::new(ErrorKind::Link, "the link endpoint stopped")),
            },
            Some(done) = tasks.join_next() => {
                return Err(match done {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => Error::new(ErrorKind::Link, "an agent task stopped unexpectedly"),
                    Err(e) => Error::new(ErrorKind::Link, format!("an agent task failed: {e}")),
                });
            }
        }
    }
}
