//! A tenant's internal network: where its merged pods reach each other (see `pods`).

use super::*;

impl Executor {
    /// The tenant's internal network, made if missing: where its merged pods reach each other
    /// as `<tenant>-<pod_name>`, and nothing else (no route out, no other tenant's pod).
    pub(super) async fn tenant_network(&self, tenant: &str) -> Step<String> {
        let name = format!("orbitdock-{tenant}");
        let mut labels = labels(tenant, "");
        labels.remove("org.orbitdock.execution");
        labels.insert("org.orbitdock".into(), "1".into());
        self.runtime
            .ensure_network(&name, &labels)
            .await
            .map_err(|e| {
                execution_error(format!("cannot make your pods' network: {}", e.message))
            })?;
        Ok(name)
    }

    /// Removes the tenant's internal network once no pod uses it; a failure only warns.
    pub(super) async fn release_network(&self, tenant: &str) {
        let name = format!("orbitdock-{tenant}");
        if let Err(e) = self.runtime.remove_network(&name).await {
            tracing::warn!(network = name, error = %e.message, "cannot remove a tenant's network");
        }
    }
}
