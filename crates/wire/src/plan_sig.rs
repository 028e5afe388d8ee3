//! Signed plans: the ground signs every plan with its ed25519 key; the flight agent runs only
//! plans that verify against the ground's public key. The link key authenticates frames between
//! the two ends; the plan signature says the ground itself — not anyone who holds a copy of a
//! satellite's link key — decided what runs onboard.
//!
//! The signature covers a domain tag and the plan's postcard encoding with its `signature` field
//! empty.

use ed25519_dalek::{Signer, Verifier};

use crate::Plan;

const DOMAIN: &[u8] = b"orbitdock plan v1\0";

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

fn signed_bytes(plan: &Plan) -> Vec<u8> {
    let unsigned = Plan {
        signature: Vec::new(),
        ..plan.clone()
    };
    let mut out = DOMAIN.to_vec();
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
        let sig = ed25519_dalek::Signature::from_slice(&plan.signature)
            .map_err(|_| PlanSignatureError)?;
        self.0
            .verify(&signed_bytes(plan), &sig)
            .map_err(|_| PlanSignatureError)
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
                kind: TaskKind::FilesList {
                    volume: None,
                    folder: String::new(),
                    depth: 2,
                },
            }],
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
        let mut tampered = p.clone();
        tampered.tenant = "mallory".into();
        assert_eq!(verifier.verify(&tampered), Err(PlanSignatureError));
        let mut other = plan();
        PlanSigner::from_bytes([5; 32]).sign(&mut other);
        assert_eq!(
            verifier.verify(&other),
            Err(PlanSignatureError),
            "another key"
        );
        assert!(PlanSigner::from_hex(&signer.to_hex()).is_some());
    }
}
