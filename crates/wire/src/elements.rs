//! A newer element set sent on its own ([`Message::Elements`](crate::Message::Elements)): an
//! operator renews the orbit the flight agent propagates for its triggers and its telemetry
//! without sending a plan.

use serde::{Deserialize, Serialize};

use crate::Elements;

/// The longest name [`ElementsOrder::by`] may carry; a longer one is cut by the ground and
/// refused by the agent.
pub const MAX_ELEMENTS_BY: usize = 256;

/// A newer element set for a system, signed by the ground as a plan is (see
/// [`PlanSigner::sign_elements`](crate::PlanSigner::sign_elements)): holding the link key is
/// not enough to move the orbit the agent believes in.
///
/// It names no sequence number: the element set's own epoch orders it. The agent takes it only
/// when its epoch is later than that of the element set it holds for the same satellite, so a
/// replayed older order (or the same one twice) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElementsOrder {
    /// The system it is for; another system ignores the order.
    pub system: String,
    /// The element set (TLE text, the form a plan carries).
    pub elements: Elements,
    /// Who sent it, for the record (at most [`MAX_ELEMENTS_BY`] bytes).
    pub by: String,
    /// When the ground issued it, in milliseconds since the Unix epoch (for the record).
    pub issued_ms: u64,
    /// The ground's ed25519 signature over every other field; empty when unsigned.
    pub signature: Vec<u8>,
}
