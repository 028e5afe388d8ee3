//! A newer element set sent to a system on its own (`PUT /api/v1/systems/{system}/elements`,
//! operators only; `docs/triggers.md`).
//!
//! The text is parsed with `orbit`'s TLE parser (the one the agent uses), must hold exactly one
//! element set, of the system's satellite (the systems file's catalog number, when it declares
//! an orbit), with an epoch later than that of the set in use: the newer of the declared one and
//! the one last sent. The ground signs it as it signs plans (a [`wire::ElementsOrder`] under a
//! domain of its own), records it (`system_elements`, the signed bytes with it) and queues it on
//! the link; it goes again, the same bytes, at each start of the system's agent (`system_link`),
//! which ignores one no newer than the set it holds, so a replay changes nothing.
//!
//! Plans then carry the set in use, and the ground predicts triggers from it: what the agent
//! propagates, since it too takes the newest set of the same satellite.

use wire::Message;

use crate::db::{self, SentElements};
use crate::error::ApiError;
use crate::passes::Sky;
use crate::{Ground, time};

/// How far ahead of now an element set's epoch may be (predicted sets are dated a few days
/// ahead at most).
const MAX_EPOCH_AHEAD_MS: i64 = 30 * 86_400_000;

/// Parses, checks, signs, records and queues `text` for `system` on behalf of `by`; the set
/// now in use.
pub(crate) async fn send(
    ground: &Ground,
    system: &str,
    by: &str,
    text: &str,
) -> Result<api::SystemElements, ApiError> {
    let Some(link) = ground.system(system) else {
        return Err(ApiError::not_found(format!("system '{system}' not found")));
    };
    let tle = parse_one(text)?;
    let ahead = tle.epoch.unix_millis() - time::now_ms();
    if ahead > MAX_EPOCH_AHEAD_MS {
        // A set dated far ahead would refuse every real set until then.
        return Err(ApiError::bad(format!(
            "the element set's epoch {} is {} days ahead of now: at most {} are taken",
            time::rfc3339(tle.epoch.unix_millis()),
            ahead / 86_400_000,
            MAX_EPOCH_AHEAD_MS / 86_400_000
        )));
    }
    let in_use = in_use(ground, system).await?;
    if let Some(current) = &in_use {
        if current.catalog_number != tle.catalog_number {
            return Err(ApiError::bad(format!(
                "the element set is of satellite {}, but system '{system}' is satellite {}",
                tle.catalog_number, current.catalog_number
            )));
        }
        if tle.epoch.unix_millis() <= current.epoch_ms {
            return Err(ApiError::Conflict(format!(
                "the element set's epoch {} is not later than that of the set system '{system}' uses ({}, {}): send a newer one",
                time::rfc3339(tle.epoch.unix_millis()),
                time::rfc3339(current.epoch_ms),
                current.source
            )));
        }
    }
    let elements = orbit::elements_of(&tle);
    let mut order = wire::ElementsOrder {
        system: system.to_string(),
        elements: elements.clone(),
        by: cut(by, wire::MAX_ELEMENTS_BY),
        issued_ms: u64::try_from(time::now_ms()).unwrap_or(0),
        signature: Vec::new(),
    };
    ground.sign_elements(&mut order);
    let message = wire::encode_message(&Message::Elements(order));
    let sent = SentElements {
        elements,
        epoch_ms: tle.epoch.unix_millis(),
        sent_ms: time::now_ms(),
        sent_by: by.to_string(),
        message: message.clone(),
    };
    if !db::set_sent_elements(ground.db(), system, &sent).await? {
        return Err(ApiError::Conflict(format!(
            "an element set as new as this one (epoch {}) was sent to system '{system}' meanwhile",
            time::rfc3339(sent.epoch_ms)
        )));
    }
    tracing::info!(%system, %by, epoch = %time::rfc3339(sent.epoch_ms), "element set sent");
    if link.send_message(message).await.is_err() {
        // Recorded: it goes at the agent's next start once the link runs again.
        tracing::error!(%system, "the system's link has stopped; the element set waits for it");
    }
    Ok(view(&InUse::sent(&sent, tle.catalog_number)))
}

/// The element set `system` propagates: the newer of the declared and the last sent one.
pub(crate) async fn in_use(ground: &Ground, system: &str) -> Result<Option<InUse>, ApiError> {
    let declared = match ground.orbits().sky(system) {
        Some(Sky::Orbit(flying)) => Some(InUse {
            source: "declared",
            elements: orbit::elements_of(&flying.orbit().tle),
            catalog_number: flying.orbit().tle.catalog_number,
            epoch_ms: flying.orbit().tle.epoch.unix_millis(),
            sent: None,
        }),
        _ => None,
    };
    let sent = db::sent_elements(ground.db(), system).await?.and_then(|s| {
        let tle = orbit::parse_elements(&s.elements).ok()?;
        Some(InUse::sent(&s, tle.catalog_number))
    });
    Ok(match (declared, sent) {
        (Some(d), Some(s)) if s.catalog_number == d.catalog_number && s.epoch_ms > d.epoch_ms => {
            Some(s)
        }
        (Some(d), _) => Some(d),
        (None, s) => s,
    })
}

/// The element set to propagate instead of `elements` (a plan's, or the declared one): the one
/// in use, when it is of the same satellite and newer; else `elements`.
pub(crate) async fn newest(
    ground: &Ground,
    system: &str,
    elements: wire::Elements,
) -> Result<wire::Elements, ApiError> {
    let Ok(tle) = orbit::parse_elements(&elements) else {
        return Ok(elements);
    };
    Ok(match in_use(ground, system).await? {
        Some(u)
            if u.catalog_number == tle.catalog_number && u.epoch_ms > tle.epoch.unix_millis() =>
        {
            u.elements
        }
        _ => elements,
    })
}

/// The element set in use by a system, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InUse {
    /// `declared` or `sent`.
    pub(crate) source: &'static str,
    pub(crate) elements: wire::Elements,
    pub(crate) catalog_number: u32,
    pub(crate) epoch_ms: i64,
    /// When and by whom, when sent.
    pub(crate) sent: Option<(i64, String)>,
}

impl InUse {
    fn sent(s: &SentElements, catalog_number: u32) -> InUse {
        InUse {
            source: "sent",
            elements: s.elements.clone(),
            catalog_number,
            epoch_ms: s.epoch_ms,
            sent: Some((s.sent_ms, s.sent_by.clone())),
        }
    }
}

/// The API's view of an element set in use.
pub(crate) fn view(u: &InUse) -> api::SystemElements {
    api::SystemElements {
        source: u.source.to_string(),
        name: u.elements.name.clone(),
        line1: u.elements.line1.clone(),
        line2: u.elements.line2.clone(),
        catalog_number: u.catalog_number,
        epoch: time::rfc3339(u.epoch_ms),
        sent_at: u.sent.as_ref().map(|(at, _)| time::rfc3339(*at)),
        sent_by: u.sent.as_ref().map(|(_, by)| by.clone()),
    }
}

/// The one element set of `text`, or why not.
fn parse_one(text: &str) -> Result<orbit::Tle, ApiError> {
    let mut sets = orbit::parse_tle_text(text)
        .map_err(|e| ApiError::bad(format!("'tle' is not a valid element set: {e}")))?;
    match sets.len() {
        1 => Ok(sets.remove(0)),
        0 => Err(ApiError::bad(
            "'tle' holds no element set: give its two lines (a name line first is optional)",
        )),
        n => Err(ApiError::bad(format!(
            "'tle' holds {n} element sets: send one at a time"
        ))),
    }
}

fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> String {
        match parse_one(text) {
            Err(e) => format!("{e:?}"),
            Ok(t) => panic!("parsed {t:?}"),
        }
    }

    #[test]
    fn the_body_must_hold_exactly_one_valid_set() {
        let iss = "ISS (ZARYA)\n1 25544U 98067A   24075.50000000  .00016717  00000+0  30275-3 0  9994\n2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579445214\n";
        assert_eq!(parse_one(iss).unwrap().catalog_number, 25544);
        assert!(refusal(&format!("{iss}{iss}")).contains("2 element sets"));
        assert!(refusal("").contains("no element set"));
        let e = refusal(&iss.replace("9994", "9995"));
        assert!(e.contains("'tle' is not a valid element set"), "{e}");
        assert_eq!(cut("ééé", 3), "é");
    }
}
