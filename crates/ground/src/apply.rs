//! Applying and validating an operation's YAML: parsed and validated (`operation`), stored as a
//! new revision when applied, and run through preflight (`preflight_check`) on the operation's
//! system, as an execution started now would see it.

use crate::db::{self, OperationRow};
use crate::error::ApiError;
use crate::operation::{self, Diagnostic};
use crate::preflight_check::{self, PreflightFinding};
use crate::{Ground, auth, time};

/// What validating an operation found.
#[derive(Debug)]
pub(crate) struct Validation {
    /// Problems in the YAML itself; preflight runs only when there are none.
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) findings: Vec<PreflightFinding>,
    /// When each task's trigger would fire on the operation's system.
    pub(crate) triggers: Vec<api::TriggerPrediction>,
}

impl Validation {
    /// No diagnostic and no preflight error (warnings and infos pass).
    pub(crate) fn valid(&self) -> bool {
        self.diagnostics.is_empty()
            && !self
                .findings
                .iter()
                .any(|f| f.severity == preflight::Severity::Error)
    }
}

/// Stores `yaml` as the next revision of its operation (creating the namespace for `user` if it
/// does not exist), then runs preflight over it. An invalid operation is refused
/// (`ApiError::Invalid`, with every diagnostic); preflight findings, errors included, do not
/// stop it: they are returned, and an execution's start is where they gate.
pub(crate) async fn apply(
    g: &Ground,
    user: &str,
    yaml: &str,
) -> Result<
    (
        OperationRow,
        Vec<PreflightFinding>,
        Vec<api::TriggerPrediction>,
    ),
    ApiError,
> {
    let op = operation::parse_off_workers(yaml.to_string())
        .await?
        .map_err(invalid)?;
    let now = time::now_ms();
    let mut tx = db::write_tx(g.db()).await?;
    auth::claim_namespace(&mut tx, user, &op.namespace, now).await?;
    let row = db::save_operation(&mut tx, &op.namespace, &op.id, yaml, now).await?;
    tx.commit().await?;
    let system = preflight_check::operation_system(&op);
    let found = preflight_check::check_operation(g, user, &op, &system).await?;
    let triggers = crate::triggers::predict(g, &op, &system).await;
    Ok((row, found, triggers))
}

/// Validates `yaml` and, when it is valid, runs preflight over it; stores nothing.
pub(crate) async fn validate(g: &Ground, user: &str, yaml: &str) -> Result<Validation, ApiError> {
    Ok(
        match operation::parse_off_workers(yaml.to_string()).await? {
            Ok(op) => {
                let system = preflight_check::operation_system(&op);
                Validation {
                    diagnostics: Vec::new(),
                    findings: preflight_check::check_operation(g, user, &op, &system).await?,
                    triggers: crate::triggers::predict(g, &op, &system).await,
                }
            }
            Err(diagnostics) => Validation {
                diagnostics,
                findings: Vec::new(),
                triggers: Vec::new(),
            },
        },
    )
}

/// The error of an operation that does not validate: a summary naming the first problem.
fn invalid(diagnostics: Vec<Diagnostic>) -> ApiError {
    let n = diagnostics.len();
    let first = diagnostics
        .first()
        .map(|d| d.message.clone())
        .unwrap_or_default();
    ApiError::Invalid {
        message: format!(
            "the operation is invalid ({n} problem{}): {first}",
            if n == 1 { "" } else { "s" }
        ),
        diagnostics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnostic(message: &str) -> Diagnostic {
        Diagnostic {
            severity: operation::Severity::Error,
            line: 1,
            column: 1,
            task: None,
            message: message.into(),
        }
    }

    #[test]
    fn an_invalid_operation_is_summed_up_by_its_first_problem() {
        let one = invalid(vec![diagnostic("no id")]);
        assert_eq!(one.message(), "the operation is invalid (1 problem): no id");
        let two = invalid(vec![diagnostic("no id"), diagnostic("no tasks")]);
        assert_eq!(
            two.message(),
            "the operation is invalid (2 problems): no id"
        );
        assert!(matches!(two, ApiError::Invalid { diagnostics, .. } if diagnostics.len() == 2));
    }

    #[test]
    fn only_diagnostics_and_preflight_errors_make_an_operation_invalid() {
        let finding = |severity| PreflightFinding {
            task: "build".into(),
            file: "Dockerfile".into(),
            line: 1,
            column: 1,
            code: "OD201",
            severity,
            message: "m".into(),
            help: None,
        };
        let v = |diagnostics, findings| Validation {
            diagnostics,
            findings,
            triggers: Vec::new(),
        };
        assert!(v(vec![], vec![finding(preflight::Severity::Warning)]).valid());
        assert!(!v(vec![], vec![finding(preflight::Severity::Error)]).valid());
        assert!(!v(vec![diagnostic("no id")], vec![]).valid());
    }
}
