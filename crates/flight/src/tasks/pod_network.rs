//! A tenant's internal network: where all its pods reach the onboard telemetry service, and its
//! merged pods each other, on the ports each declares (see `pods`, and `runtime::pod_ports` for
//! the rules).

use super::*;

/// The name of the tenant's internal network.
pub(super) fn network_name(tenant: &str) -> String {
    format!("orbitdock-{tenant}")
}

impl Executor {
    /// The tenant's internal network, made if missing: where each of its pods reaches the
    /// onboard telemetry service (at the network's gateway, [`crate::telemetry::HOSTNAME`]) and
    /// its merged pods reach each other as `<tenant>-<pod_name>`, and nothing else (no route
    /// out, no other tenant's pod, nothing else of the host). Its name and the `/etc/hosts`
    /// lines that name the service.
    pub(super) async fn tenant_network(&self, tenant: &str) -> Step<(String, Vec<String>)> {
        use crate::telemetry::{ALIAS, HOSTNAME, PORT};
        let name = network_name(tenant);
        let mut labels = labels(tenant, "");
        labels.remove(super::EXECUTION_LABEL);
        labels.insert("org.orbitdock".into(), "1".into());
        let gateway = self
            .runtime
            .ensure_network(&name, &labels, PORT)
            .await
            .map_err(|e| {
                execution_error(format!("cannot make your pods' network: {}", e.message))
            })?;
        // The host is open to the network at this address alone: if another program holds it,
        // the pods would reach that program, so no pod runs on it. Any other failure (an
        // address this host does not have) leaves nothing to reach: the pod runs without the
        // service.
        match self.telemetry.listen_on(gateway).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::error!(network = name, %gateway, error = %e, "another program holds the telemetry address of a tenant network");
                return Err(execution_error(format!(
                    "cannot serve the onboard telemetry service on your pods' network at {gateway}:{PORT} ({e}); the operator must free that address"
                )));
            }
            Err(e) => {
                tracing::warn!(network = name, %gateway, error = %e, "cannot serve telemetry on a tenant network");
            }
            Ok(()) => {}
        }
        let hosts = [HOSTNAME, ALIAS].map(|h| format!("{h}:{gateway}")).to_vec();
        Ok((name, hosts))
    }

    /// Removes the tenant's internal network once no pod uses it; a failure only warns.
    pub(super) async fn release_network(&self, tenant: &str) {
        let _held = self.pods.network.lock().await;
        let name = network_name(tenant);
        if let Err(e) = self.runtime.remove_network(&name).await {
            tracing::warn!(network = name, error = %e.message, "cannot remove a tenant's network");
        }
    }

    /// Deletes the rules that opened ports of containers that are gone (removed while the
    /// agent was down, or by hand); a failure only warns.
    pub(super) async fn close_vanished_ports(&self) {
        let holders = match self.runtime.opened_ports().await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e.message, "cannot list the rules of the pods' ports");
                return;
            }
        };
        for name in holders {
            if let Ok(None) = self.runtime.inspect_container(&name).await
                && let Err(e) = self.runtime.close_ports(&name).await
            {
                tracing::warn!(container = name, error = %e.message, "cannot close a gone pod's ports");
            }
        }
    }
}
