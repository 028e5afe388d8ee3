//! The agent's side of a [`Message::Elements`]: a newer element set sent on its own, checked as
//! a plan is (the ground's signature, then the system it names), then handed to the telemetry
//! service, which keeps the newest by epoch in the state dir (written, synced, renamed) and
//! propagates it. Triggers waiting on plans whose element set is older, of the same satellite,
//! search again with it (`agent_triggers`, `docs/triggers.md`).
//!
//! An order is never answered: one the ground did not sign, for another system, or whose
//! element set is not newer than the one held (a replay, or the same order again) is logged and
//! changes nothing. The ground sends the last order again at the agent's every start, so one
//! that could not be kept is not lost.

use wire::ElementsOrder;

use super::Agent;
use crate::telemetry::Offered;

impl Agent {
    /// Takes an element-set order (see the module's documentation).
    pub(super) fn take_elements(&self, order: ElementsOrder) {
        if let Some(Err(e)) = self
            .inner
            .verifier
            .as_ref()
            .map(|v| v.verify_elements(&order))
        {
            tracing::warn!(error = %e, "refused an element set that is not the ground's");
            return;
        }
        if order.system != self.inner.system {
            tracing::warn!(
                system = order.system,
                "refused an element set for another system"
            );
            return;
        }
        if order.by.len() > wire::MAX_ELEMENTS_BY {
            tracing::warn!(
                "refused an element set naming its sender in more than {} bytes",
                wire::MAX_ELEMENTS_BY
            );
            return;
        }
        match self.inner.exec.telemetry.offer_elements(&order.elements) {
            Offered::Taken => tracing::info!(
                by = order.by,
                line1 = order.elements.line1,
                "took a newer element set"
            ),
            Offered::NotSaved(e) => tracing::warn!(
                by = order.by,
                error = e,
                "took a newer element set but could not keep it; the ground sends it again at the next start"
            ),
            Offered::NotNewer { held_epoch_ms } => tracing::info!(
                by = order.by,
                line1 = order.elements.line1,
                held_epoch = wire::rfc3339(u64::try_from(held_epoch_ms).unwrap_or(0)),
                "ignored an element set no newer than the one held"
            ),
            Offered::Unusable(e) => tracing::warn!(
                by = order.by,
                error = e,
                "refused an element set that cannot be propagated"
            ),
        }
    }
}
