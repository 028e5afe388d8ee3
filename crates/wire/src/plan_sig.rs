//! Signed plans: the ground signs every plan with its ed25519 key; the flight agent runs only
//! plans that verify against the ground's public key. The link key authenticates frames between
//! the two ends; the plan signature says the ground itself — not anyone who holds a copy of a
//! satellite's link key — decided what runs onboard.
//!
//! The signature covers a domain tag and the plan's postcard encoding with its `signature` field
//! empty: every other field, including the binding to its target (system, sequence, issue time
//! and expiry). [`Plan::check_binding`] checks the system and the expiry; the sequence is the
//! agent's to check against what it has accepted before, since only it knows that.

use ed25519_dalek::{Signer, Verifier};

use crate::{CancelOrder, ElementsOrder, Plan};

/// Version 2: plans carry their system, sequence, issue time and expiry. A plan signed under
/// version 1 never verifies.
const DOMAIN: &[u8] = b"orbitdock plan v2\0";
/// Cancel orders are signed under a domain of their own: no signature over one can pass for a
/// plan's, nor the other way round.
const CANCEL_DOMAIN: &[u8] = b"orbitdock cancel v1\0";
/// Element-set orders, likewise under a domain of their own.
const ELEMENTS_DOMAIN: &[u8] = b"orbitdock elements v1\0";

/// The ground's plan-signing key.
#[derive(Clone)]
pub struct PlanSigner(ed25519_dalek::SigningKey);

/// The ground's public key, as the flight agent holds it.
#[derive(Clone)]
pub struct PlanVerifier(ed25519_dalek::VerifyingKey);

/// A plan that is unsigned or whose signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the plan's signature does not verify against the ground's key")]
pub struct PlanSignatureError;

/// A plan whose signature verified but that is not for this system, now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanBindingError {
    /// Signed for another system.
    #[error("the plan is for system '{plan}', not '{this}'")]
    OtherSystem {
        /// The system the plan names.
        plan: String,
        /// The system checking it.
        this: String,
    },
    /// Its validity ended.
    #[error("the plan expired at {expires_ms} ms since the epoch (now {now_ms})")]
    Expired {
        /// When it expired.
        expires_ms: u64,
        /// The checker's now.
        now_ms: u64,
    },
}

impl Plan {
    /// Whether the plan is for `system` and still valid at `now_ms` (milliseconds since the Unix
    /// epoch, the checker's clock). Meaningful only once the signature verified: it is what
    /// binds these fields.
    pub fn check_binding(&self, system: &str, now_ms: u64) -> Result<(), PlanBindingError> {
        if self.system != system {
            return Err(PlanBindingError::OtherSystem {
                plan: self.system.clone(),
                this: system.to_string(),
            });
        }
        if now_ms >= self.expires_ms {
            return Err(PlanBindingError::Expired {
                expires_ms: self.expires_ms,
                now_ms,
            });
        }
        Ok(())
    }
}

fn signed_bytes(plan: &Plan) -> Vec<u8> {
    let unsigned = Plan {
        signature: Vec::new(),
        ..plan.clone()
    };
    let mut out = DOMAIN.to_vec();
    out.extend(postcard::to_allocvec(&unsigned).unwrap_or_default());
    out
}

fn cancel_signed_bytes(order: &CancelOrder) -> Vec<u8> {
    let unsigned = CancelOrder {
        signature: Vec::new(),
        ..order.clone()
    };
    let mut out = CANCEL_DOMAIN.to_vec();
    out.extend(postcard::to_allocvec(&unsigned).unwrap_or_default());
    out
}

fn elements_signed_bytes(order: &ElementsOrder) -> Vec<u8> {
    let unsigned = ElementsOrder {
        signature: Vec::new(),
        ..order.clone()
    };
    let mut out = ELEMENTS_DOMAIN.to_vec();
    out.extend(postcard::to_allocvec(&unsigned).unwrap_or_default());
    out
}

impl PlanSigner {
    /// A signer from its 32 secret bytes.
    pub fn from_bytes(secret: [u8; 32]) -> PlanSigner {
        PlanSigner(ed25519_dalek::SigningKey::from_bytes(&secret))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<PlanSigner> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut b).ok()?;
        Some(PlanSigner::from_bytes(b))
    }

    /// The secret as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// The public key to give the flight agents.
    pub fn verifier(&self) -> PlanVerifier {
        PlanVerifier(self.0.verifying_key())
    }

    /// Signs `plan` in place.
    pub fn sign(&self, plan: &mut Plan) {
        plan.signature = self.0.sign(&signed_bytes(plan)).to_bytes().to_vec();
    }

    /// Signs a cancel order in place.
    pub fn sign_cancel(&self, order: &mut CancelOrder) {
        order.signature = self.0.sign(&cancel_signed_bytes(order)).to_bytes().to_vec();
    }

    /// Signs an element-set order in place.
    pub fn sign_elements(&self, order: &mut ElementsOrder) {
        order.signature = self
            .0
            .sign(&elements_signed_bytes(order))
            .to_bytes()
            .to_vec();
    }
}

impl std::fmt::Debug for PlanSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanSigner(…)")
    }
}

impl PlanVerifier {
    /// Parses 64 hex digits of a public key.
    pub fn from_hex(text: &str) -> Option<PlanVerifier> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut b).ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(&b)
            .ok()
            .map(PlanVerifier)
    }

    /// The public key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// Checks the plan's signature.
    pub fn verify(&self, plan: &Plan) -> Result<(), PlanSignatureError> {
        self.check(&signed_bytes(plan), &plan.signature)
    }

    /// Checks a cancel order's signature.
    pub fn verify_cancel(&self, order: &CancelOrder) -> Result<(), PlanSignatureError> {
        self.check(&cancel_signed_bytes(order), &order.signature)
    }

    /// Checks an element-set order's signature.
    pub fn verify_elements(&self, order: &ElementsOrder) -> Result<(), PlanSignatureError> {
        self.check(&elements_signed_bytes(order), &order.signature)
    }

    fn check(&self, signed: &[u8], signature: &[u8]) -> Result<(), PlanSignatureError> {
        let sig =
            ed25519_dalek::Signature::from_slice(signature).map_err(|_| PlanSignatureError)?;
        self.0.verify(signed, &sig).map_err(|_| PlanSignatureError)
    }
}

impl std::fmt::Debug for PlanVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlanVerifier({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OnFailure, PlanTask, TaskKind};

    fn plan() -> Plan {
        Plan {
            execution: "e1".into(),
            tenant: "alice".into(),
            tasks: vec![PlanTask {
                id: "ls".into(),
                on_failure: OnFailure::Stop,
                trigger: None,
                kind: TaskKind::FilesList {
                    volume: None,
                    folder: String::new(),
                    depth: 2,
                },
            }],
            system: "em".into(),
            sequence: 7,
            elements: None,
            issued_ms: 1_000,
            expires_ms: 2_000,
            signature: Vec::new(),
        }
    }

    #[test]
    fn a_signed_plan_verifies_and_any_change_breaks_it() {
        let signer = PlanSigner::from_bytes([4; 32]);
        let verifier = PlanVerifier::from_hex(&signer.verifier().to_hex()).unwrap();
        let mut p = plan();
        assert_eq!(verifier.verify(&p), Err(PlanSignatureError), "unsigned");
        signer.sign(&mut p);
        assert_eq!(verifier.verify(&p), Ok(()));
        let tampered: [fn(&mut Plan); 5] = [
            |p| p.tenant = "mallory".into(),
            |p| p.system = "fm".into(),
            |p| p.sequence += 1,
            |p| p.issued_ms += 1,
            |p| p.expires_ms += 1,
        ];
        for change in tampered {
            let mut t = p.clone();
            change(&mut t);
            assert_eq!(verifier.verify(&t), Err(PlanSignatureError), "{t:?}");
        }
        let mut other = plan();
        PlanSigner::from_bytes([5; 32]).sign(&mut other);
        assert_eq!(
            verifier.verify(&other),
            Err(PlanSignatureError),
            "another key"
        );
        assert!(PlanSigner::from_hex(&signer.to_hex()).is_some());
    }

    #[test]
    fn a_signed_cancel_verifies_and_is_no_plan_signature() {
        let signer = PlanSigner::from_bytes([4; 32]);
        let verifier = signer.verifier();
        let mut order = CancelOrder {
            execution: "e1".into(),
            system: "em".into(),
            by: "alice".into(),
            issued_ms: 1_000,
            signature: Vec::new(),
        };
        assert_eq!(verifier.verify_cancel(&order), Err(PlanSignatureError));
        signer.sign_cancel(&mut order);
        assert_eq!(verifier.verify_cancel(&order), Ok(()));
        let tampered: [fn(&mut CancelOrder); 4] = [
            |o| o.execution = "e2".into(),
            |o| o.system = "fm".into(),
            |o| o.by = "mallory".into(),
            |o| o.issued_ms += 1,
        ];
        for change in tampered {
            let mut t = order.clone();
            change(&mut t);
            assert_eq!(verifier.verify_cancel(&t), Err(PlanSignatureError), "{t:?}");
        }
        // A plan's signature does not verify as a cancel's.
        let mut p = plan();
        signer.sign(&mut p);
        let forged = CancelOrder {
            signature: p.signature.clone(),
            ..order.clone()
        };
        assert_eq!(verifier.verify_cancel(&forged), Err(PlanSignatureError));
    }

    #[test]
    fn a_signed_element_set_verifies_and_is_no_cancel_signature() {
        let signer = PlanSigner::from_bytes([4; 32]);
        let verifier = signer.verifier();
        let mut order = ElementsOrder {
            system: "em".into(),
            elements: crate::Elements {
                name: Some("SAT".into()),
                line1: "1".into(),
                line2: "2".into(),
            },
            by: "ops".into(),
            issued_ms: 1_000,
            signature: Vec::new(),
        };
        assert_eq!(verifier.verify_elements(&order), Err(PlanSignatureError));
        signer.sign_elements(&mut order);
        assert_eq!(verifier.verify_elements(&order), Ok(()));
        let tampered: [fn(&mut ElementsOrder); 5] = [
            |o| o.system = "fm".into(),
            |o| o.elements.line1 = "1 ".into(),
            |o| o.elements.name = None,
            |o| o.by = "mallory".into(),
            |o| o.issued_ms += 1,
        ];
        for change in tampered {
            let mut t = order.clone();
            change(&mut t);
            assert_eq!(
                verifier.verify_elements(&t),
                Err(PlanSignatureError),
                "{t:?}"
            );
        }
        let mut cancel = CancelOrder {
            execution: "e1".into(),
            system: "em".into(),
            by: "ops".into(),
            issued_ms: 1_000,
            signature: Vec::new(),
        };
        signer.sign_cancel(&mut cancel);
        let forged = ElementsOrder {
            signature: cancel.signature,
            ..order
        };
        assert_eq!(verifier.verify_elements(&forged), Err(PlanSignatureError));
    }

    #[test]
    fn a_plan_is_bound_to_its_system_and_its_validity() {
        let p = plan();
        assert_eq!(p.check_binding("em", 1_999), Ok(()));
        assert_eq!(
            p.check_binding("fm", 1_500),
            Err(PlanBindingError::OtherSystem {
                plan: "em".into(),
                this: "fm".into()
            })
        );
        assert_eq!(
            p.check_binding("em", 2_000),
            Err(PlanBindingError::Expired {
                expires_ms: 2_000,
                now_ms: 2_000
            })
        );
        assert_eq!(
            p.check_binding("em", 2_000).unwrap_err().to_string(),
            "the plan expired at 2000 ms since the epoch (now 2000)"
        );
    }
}
