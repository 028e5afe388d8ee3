//! The uplink queue of a system as one tenant sees it, with a predicted completion for every
//! transfer ([`view`], for the `queue` route and the dashboard), and an execution's
//! [`execution_eta`].
//!
//! The link endpoint knows its outgoing transfers by digest only, in sending order. Starting an
//! execution records what it sends up ([`record`]: its plan message and the objects of its
//! uplink tasks), so each queued digest maps to the running executions that need it, and so to
//! their tenants. A tenant sees its own transfers; everyone else's bytes count toward the ETAs
//! but are shown only as a total. An operator sees every tenant's.
//!
//! ETAs run the whole queue, in order, through the system's contact plan
//! ([`orbit::predict_transfers`]) with each window's uplink rate scaled by
//! [`UPLINK_PAYLOAD_EFFICIENCY`]; a system always in contact sends at its configured rate.

use orbit::Epoch;
use wire::{Digest, Message, Plan, TaskKind};

use crate::Ground;
use crate::db::{self, ExecutionRow};
use crate::error::ApiError;
use crate::passes::{self, Sky};

/// The share of a window's uplink rate that carries transfer bytes: the protocol's measured
/// payload efficiency (packet headers, acknowledgements and retransmissions take the rest).
pub(crate) const UPLINK_PAYLOAD_EFFICIENCY: f64 = 0.97;

/// A queued transfer's predicted completion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Eta {
    /// When its last byte arrives (`None`: not within the contact plan, or no rate to predict
    /// from).
    pub(crate) completion: Option<Epoch>,
    /// The pass it completes in (`None` for a system always in contact).
    pub(crate) pass: Option<PassRef>,
}

/// A pass, as an ETA names it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PassRef {
    pub(crate) station: String,
    pub(crate) aos: Epoch,
    pub(crate) los: Epoch,
}

/// One of the caller's queued transfers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MyTransfer {
    pub(crate) digest: Digest,
    /// A plan message (else an object).
    pub(crate) message: bool,
    /// The caller's earliest running execution that needs it.
    pub(crate) execution: String,
    /// Its tenant.
    pub(crate) tenant: String,
    pub(crate) bytes: u64,
    pub(crate) remaining: u64,
    /// Other tenants' bytes queued before it.
    pub(crate) other_bytes_ahead: u64,
    pub(crate) eta: Eta,
}

/// A system's uplink queue as one tenant sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueueView {
    pub(crate) now: Epoch,
    pub(crate) link_up: bool,
    pub(crate) always_in_contact: bool,
    /// Why there are no ETAs (the elements are too old for the horizon, say).
    pub(crate) eta_error: Option<String>,
    pub(crate) mine: Vec<MyTransfer>,
    /// Other tenants' (and unattributed) transfers: how many, their bytes, and how many of those
    /// are queued before the caller's last transfer (all of them if the caller has none).
    pub(crate) others: usize,
    pub(crate) other_bytes: u64,
    pub(crate) other_bytes_ahead: u64,
}

/// An execution's transfers still queued: their remaining bytes and when the last of them
/// completes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UplinkEta {
    pub(crate) remaining_bytes: u64,
    pub(crate) eta: Eta,
    /// Why there is no ETA (see [`QueueView::eta_error`]).
    pub(crate) error: Option<String>,
}

/// Records what an execution sends up: its plan message and every object of its uplink tasks.
pub(crate) async fn record(
    tx: &mut db::Tx,
    execution: &str,
    plan: &Plan,
) -> Result<(), sqlx::Error> {
    let encoded = wire::encode_message(&Message::Plan(plan.clone()));
    db::insert_execution_plan(tx, execution, &encoded).await?;
    let mut rows = vec![(Digest::of(&encoded), encoded.len() as u64, true)];
    for task in &plan.tasks {
        if let TaskKind::Uplink { files, .. } = &task.kind {
            rows.extend(files.iter().map(|f| (f.digest, f.size, false)));
        }
    }
    for (digest, size, message) in rows {
        db::insert_execution_object(tx, execution, &digest, size, message).await?;
    }
    Ok(())
}

/// Predicts when each transfer of the queue (remaining bytes, in sending order) completes.
async fn etas(sky: &Sky, now: Epoch, remaining: &[u64]) -> Result<Vec<Eta>, ApiError> {
    match sky {
        Sky::AlwaysInContact { rate_bits_per_sec } => {
            let bytes_per_s = rate_bits_per_sec
                .filter(|&r| r > 0)
                .map(|r| r as f64 * UPLINK_PAYLOAD_EFFICIENCY / 8.0);
            let mut ahead = 0u64;
            Ok(remaining
                .iter()
                .map(|&r| {
                    ahead += r;
                    Eta {
                        completion: bytes_per_s.map(|b| now.plus_seconds(ahead as f64 / b)),
                        pass: None,
                    }
                })
                .collect())
        }
        Sky::Orbit(f) => {
            let windows = f.upcoming(now).await?;
            let scaled: Vec<orbit::Window> = windows
                .iter()
                .map(|w| orbit::Window {
                    uplink_bps: w.uplink_bps * UPLINK_PAYLOAD_EFFICIENCY,
                    ..w.clone()
                })
                .collect();
            let predicted =
                orbit::predict_transfers(&scaled, orbit::Direction::Uplink, now, remaining);
            Ok(predicted
                .iter()
                .map(|p| Eta {
                    completion: p.completion,
                    pass: p.window.and_then(|i| windows.get(i)).map(|w| PassRef {
                        station: w.station.clone(),
                        aos: w.aos,
                        los: w.los,
                    }),
                })
                .collect())
        }
    }
}

/// The ETAs of the queue, or none and why.
async fn etas_or_error(sky: &Sky, now: Epoch, remaining: &[u64]) -> (Vec<Eta>, Option<String>) {
    if remaining.is_empty() {
        return (Vec::new(), None);
    }
    match etas(sky, now, remaining).await {
        Ok(e) => (e, None),
        Err(e) => {
            let none = Eta {
                completion: None,
                pass: None,
            };
            (vec![none; remaining.len()], Some(e.message()))
        }
    }
}

/// The queue of `system` as `tenant` sees it; with `None` (an operator) every tenant's
/// transfers are shown as its own.
pub(crate) async fn view(
    g: &Ground,
    system: &str,
    tenant: Option<&str>,
) -> Result<QueueView, ApiError> {
    let sky = passes::sky(g, system)?;
    let Some(link) = g.system(system) else {
        return Err(ApiError::not_found(format!("system '{system}' not found")));
    };
    let stats = link.stats();
    let now = g.now();
    let digests: Vec<Digest> = stats.transfers.iter().map(|t| t.digest).collect();
    let owners = db::uplink_owners(g.db(), system, &digests).await?;
    let remaining: Vec<u64> = stats.transfers.iter().map(|t| t.remaining).collect();
    let (etas, eta_error) = etas_or_error(sky, now, &remaining).await;

    let mut mine = Vec::new();
    let (mut others, mut other_bytes, mut other_bytes_ahead) = (0, 0, 0);
    for (t, eta) in stats.transfers.iter().zip(etas) {
        let execution = owners
            .get(&t.digest)
            .and_then(|o| {
                o.iter()
                    .find(|(_, owner)| tenant.is_none_or(|t| owner == t))
            })
            .cloned();
        match execution {
            Some((execution, owner)) => {
                mine.push(MyTransfer {
                    digest: t.digest,
                    message: t.message,
                    execution,
                    tenant: owner,
                    bytes: t.size,
                    remaining: t.remaining,
                    other_bytes_ahead: other_bytes,
                    eta,
                });
                other_bytes_ahead = other_bytes;
            }
            None => {
                others += 1;
                other_bytes += t.remaining;
            }
        }
    }
    if mine.is_empty() {
        other_bytes_ahead = other_bytes;
    }
    Ok(QueueView {
        now,
        link_up: stats.up,
        always_in_contact: matches!(sky, Sky::AlwaysInContact { .. }),
        eta_error,
        mine,
        others,
        other_bytes,
        other_bytes_ahead,
    })
}

/// An execution's `uplink_eta`: while any of its transfers is queued, their remaining bytes and
/// the ETA of the last of them; `None` otherwise.
pub(crate) async fn execution_eta(
    g: &Ground,
    e: &ExecutionRow,
) -> Result<Option<UplinkEta>, ApiError> {
    let finished = wire::TaskState::parse(&e.state).is_some_and(wire::TaskState::is_final);
    let (Some(link), Some(sky)) = (g.system(&e.system), g.orbits().sky(&e.system)) else {
        return Ok(None);
    };
    if finished {
        return Ok(None);
    }
    let stats = link.stats();
    let own = db::execution_digests(g.db(), &e.id).await?;
    let Some(last) = stats
        .transfers
        .iter()
        .rposition(|t| own.contains(&t.digest))
    else {
        return Ok(None);
    };
    let remaining: Vec<u64> = stats.transfers[..=last]
        .iter()
        .map(|t| t.remaining)
        .collect();
    let mine: u64 = stats.transfers[..=last]
        .iter()
        .filter(|t| own.contains(&t.digest))
        .map(|t| t.remaining)
        .sum();
    let (mut etas, error) = etas_or_error(sky, g.now(), &remaining).await;
    let eta = etas.swap_remove(last);
    Ok(Some(UplinkEta {
        remaining_bytes: mine,
        eta,
        error,
    }))
}

/// When more bytes, queued behind everything a system's uplink holds now, would arrive.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MoreEta {
    pub(crate) always_in_contact: bool,
    /// The bytes queued now, sent first.
    pub(crate) ahead: u64,
    pub(crate) eta: Eta,
    /// Which pass from now the last byte arrives in (1: the current or next one); `None` for a
    /// system always in contact, or when unknown.
    pub(crate) passes: Option<u32>,
    /// Why there is no ETA (see [`QueueView::eta_error`]).
    pub(crate) error: Option<String>,
}

/// When `bytes` more, queued now on `system`'s uplink behind what it holds, would arrive: the
/// same prediction as the queue's ([`orbit::predict_transfers`] over the contact plan, rates
/// scaled by [`UPLINK_PAYLOAD_EFFICIENCY`]).
pub(crate) async fn eta_of_more(g: &Ground, system: &str, bytes: u64) -> Result<MoreEta, ApiError> {
    let sky = passes::sky(g, system)?;
    let Some(link) = g.system(system) else {
        return Err(ApiError::not_found(format!("system '{system}' not found")));
    };
    let now = g.now();
    let mut remaining: Vec<u64> = link.stats().transfers.iter().map(|t| t.remaining).collect();
    let ahead = remaining.iter().sum();
    remaining.push(bytes);
    let passes = match sky {
        Sky::AlwaysInContact { .. } => None,
        Sky::Orbit(f) => match f.upcoming(now).await {
            Ok(windows) => {
                let scaled: Vec<orbit::Window> = windows
                    .iter()
                    .map(|w| orbit::Window {
                        uplink_bps: w.uplink_bps * UPLINK_PAYLOAD_EFFICIENCY,
                        ..w.clone()
                    })
                    .collect();
                orbit::predict_transfers(&scaled, orbit::Direction::Uplink, now, &remaining)
                    .last()
                    .and_then(|p| p.window)
                    .map(|i| u32::try_from(i + 1).unwrap_or(u32::MAX))
            }
            Err(_) => None,
        },
    };
    let (mut etas, error) = etas_or_error(sky, now, &remaining).await;
    let eta = etas.pop().unwrap_or(Eta {
        completion: None,
        pass: None,
    });
    Ok(MoreEta {
        always_in_contact: matches!(sky, Sky::AlwaysInContact { .. }),
        ahead,
        eta,
        passes,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completions(etas: &[Eta]) -> Vec<Option<f64>> {
        etas.iter()
            .map(|e| e.completion.map(Epoch::unix_seconds))
            .collect()
    }

    #[tokio::test]
    async fn always_in_contact_etas_follow_the_rate() {
        let now = Epoch::from_unix_seconds(1000.0);
        // 8000 bit/s carry 970 payload bytes a second.
        let paced = Sky::AlwaysInContact {
            rate_bits_per_sec: Some(8000),
        };
        let etas = etas(&paced, now, &[970, 0, 1940]).await.unwrap();
        assert_eq!(
            completions(&etas),
            vec![Some(1001.0), Some(1001.0), Some(1003.0)]
        );
        assert!(etas.iter().all(|e| e.pass.is_none()));
        let unpaced = Sky::AlwaysInContact {
            rate_bits_per_sec: None,
        };
        let etas = etas_or_error(&unpaced, now, &[1, 2]).await;
        assert_eq!((completions(&etas.0), etas.1), (vec![None, None], None));
    }
}
