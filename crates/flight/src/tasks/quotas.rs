//! The tenants' quotas as the tasks meet them (see `crate::quota`): a breach fails the task
//! with `4 EXECUTION_ERROR` and a message naming the quota; the tenant's other work goes on.
//! Also the cleanup of the images a tenant's builds leave dangling.

use std::collections::BTreeSet;

use super::*;
use crate::fsutil::now_ms;
use crate::quota::{QuotaKind, exceeded};
use crate::runtime::StepImages;

/// How a running pod is charged for its compute time (see `crate::quota::Ledger`).
#[derive(Debug, Clone)]
pub(super) struct Meter {
    /// The pod's container name: its entry in the ledger.
    pub(super) name: String,
    /// The CPUs of its node class, in billionths.
    pub(super) nano_cpus: i64,
    /// Charged from this instant unless the ledger has it already (ms since the Unix epoch).
    pub(super) since_ms: u64,
    /// Whether ports of it were opened to its peers: their rules go when it ends.
    pub(super) ports: bool,
}

fn quota_failure(message: String) -> TaskResult {
    TaskResult::fail(ErrorCode::ExecutionError, message)
}

impl Executor {
    /// Fails unless `after` bytes in all of `tenant`'s volumes stay within its volume quota, or
    /// without one the disk limit `tenant_bytes`; `subject` names what would be over the limit,
    /// `detail` what was being done.
    #[allow(clippy::result_large_err)]
    pub(super) fn volumes_within(
        &self,
        tenant: &str,
        after: u64,
        subject: &str,
        detail: Option<&str>,
    ) -> Step<()> {
        match self.quotas.of(tenant).volume_bytes {
            Some(quota) if after > quota => Err(quota_failure(exceeded(
                QuotaKind::VolumeBytes,
                tenant,
                after,
                quota,
                detail,
            ))),
            Some(_) => Ok(()),
            None if after > self.disk.limits.tenant_bytes => Err(limits::over_limit(
                subject,
                after,
                self.disk.limits.tenant_bytes,
                "of a tenant's volumes",
            )),
            None => Ok(()),
        }
    }

    /// The bytes of the tenant's images: each image once, at the size the engine gives it.
    pub(super) async fn image_bytes(&self, tenant: &str) -> Step<u64> {
        let (_, listed) = self.tenant_images(tenant).await?;
        let mut seen = BTreeSet::new();
        Ok(listed
            .iter()
            .filter(|i| seen.insert(i.id.clone()))
            .map(|i| u64::try_from(i.size).unwrap_or(0))
            .fold(0u64, u64::saturating_add))
    }

    /// Refuses a build or a load while the tenant's images fill their quota already.
    pub(super) async fn images_within_quota(&self, tenant: &str) -> Step<()> {
        let Some(quota) = self.quotas.of(tenant).image_bytes else {
            return Ok(());
        };
        let used = self.image_bytes(tenant).await?;
        if used >= quota {
            return Err(quota_failure(exceeded(
                QuotaKind::ImageBytes,
                tenant,
                used,
                quota,
                Some("delete some with docker.image.delete first"),
            )));
        }
        Ok(())
    }

    /// After a build or a load named `image` (`tenants/<tenant>/…`) the image `new_id`: when the
    /// tenant's images are now over their quota, the new image goes and the name goes back to
    /// the image it named before (`replaced`), if any; the task's failure.
    pub(super) async fn image_quota_after(
        &self,
        tenant: &str,
        image: &ImageRef,
        replaced: Option<&str>,
        new_id: &str,
    ) -> Step<()> {
        let Some(quota) = self.quotas.of(tenant).image_bytes else {
            return Ok(());
        };
        let used = self.image_bytes(tenant).await?;
        if used <= quota {
            return Ok(());
        }
        let full = tenant_image(tenant, &image.name, &image.tag);
        let restored = match replaced.filter(|old| *old != new_id) {
            Some(old) => {
                let repo = names::tenant_repo(tenant, &image.name);
                self.runtime.tag_image(old, &repo, &image.tag).await.is_ok()
            }
            None => false,
        };
        let removed = if restored {
            self.runtime.remove_image(new_id).await
        } else {
            self.runtime.remove_image(&full).await
        };
        if let Err(e) = removed {
            tracing::warn!(image = full, error = %e.message, "cannot remove an image over the quota");
        }
        let undone = if restored {
            format!(
                "{}:{} names its previous image again",
                image.name, image.tag
            )
        } else {
            format!("{}:{} was removed", image.name, image.tag)
        };
        Err(quota_failure(exceeded(
            QuotaKind::ImageBytes,
            tenant,
            used,
            quota,
            Some(&format!("with the new image; {undone}")),
        )))
    }

    /// Removes what a failed build left dangling: every image without a name that the engine
    /// made since the build started (`since`, seconds since the Unix epoch) and the build named
    /// as a step's result (`steps`), its unnamed parents with it. Builds, loads and image
    /// deletions hold the engine's storage one at a time (`Executor::engine_storage`, held by
    /// the caller), so no other work of this agent made one meanwhile; the build's own output
    /// is not trusted alone (a `RUN` step prints what it likes) but keeps the cleanup off what
    /// anything else building on the same engine at the same time made.
    pub(super) async fn drop_failed_build(&self, since: i64, steps: &StepImages) {
        let dangling = match self.runtime.dangling_images().await {
            Ok(images) => images,
            Err(e) => {
                tracing::info!("a failed build's steps stay: {}", e.message);
                return;
            }
        };
        for image in dangling
            .iter()
            .filter(|i| i.repo_tags.is_empty() && i.created >= since && steps.named(&i.id))
        {
            if let Err(e) = self.runtime.remove_image(&image.id).await {
                tracing::info!(
                    image = image.id,
                    "a failed build's step stays: {}",
                    e.message
                );
            }
        }
    }

    /// Refuses a new pod while the tenant's compute seconds of the day are used up.
    #[allow(clippy::result_large_err)]
    pub(super) fn compute_within(&self, tenant: &str) -> Step<()> {
        let Some(quota) = self.quotas.of(tenant).compute_seconds_per_day else {
            return Ok(());
        };
        let used = self.ledger.compute_seconds(tenant, now_ms());
        if used >= quota {
            return Err(quota_failure(exceeded(
                QuotaKind::ComputeSecondsPerDay,
                tenant,
                used,
                quota,
                None,
            )));
        }
        Ok(())
    }

    /// Charges a running pod up to now; the failure that stops it once its tenant's compute
    /// seconds of the day are used up.
    pub(super) fn charge_pod(&self, tenant: &str, meter: &Meter) -> Option<TaskResult> {
        let charged = self.ledger.charge_pod(&meter.name, now_ms());
        let quota = self.quotas.of(tenant).compute_seconds_per_day?;
        // Not saved: counting cannot be trusted to survive, so the pod stops (fail closed).
        let used = match charged {
            Ok(used) => used?,
            Err(m) => return Some(quota_failure(m)),
        };
        (used >= quota).then(|| {
            quota_failure(exceeded(
                QuotaKind::ComputeSecondsPerDay,
                tenant,
                used,
                quota,
                None,
            ))
        })
    }

    /// Checks that a downlink of `bytes` would fit in the tenant's downlink quota of the day
    /// (for a tenant with that quota only), charging nothing: see [`Self::charge_downlink`].
    /// `key` is `<execution>/<task index>`.
    #[allow(clippy::result_large_err)]
    pub(super) fn check_downlink(&self, tenant: &str, key: &str, bytes: u64) -> Step<()> {
        let Some(quota) = self.quotas.of(tenant).downlink_bytes_per_day else {
            return Ok(());
        };
        self.ledger
            .check_downlink(tenant, key, bytes, quota, now_ms())
            .map_err(quota_failure)
    }

    /// Counts a downlink of `bytes` against the tenant's downlink quota of the day, once its
    /// objects exist and before any is queued, and only once for its task (`key`,
    /// `<execution>/<task index>`: a task run again after a restart is not charged again);
    /// fails when it does not fit or cannot be saved (for a tenant with that quota only:
    /// nothing is written otherwise).
    #[allow(clippy::result_large_err)]
    pub(super) fn charge_downlink(&self, tenant: &str, key: &str, bytes: u64) -> Step<()> {
        let Some(quota) = self.quotas.of(tenant).downlink_bytes_per_day else {
            return Ok(());
        };
        self.ledger
            .charge_downlink(tenant, key, bytes, quota, now_ms())
            .map_err(quota_failure)
    }

    /// Stops charging the pods whose containers are gone (removed while the agent was down).
    pub(super) async fn forget_vanished_pods(&self) {
        for name in self.ledger.pods() {
            if let Ok(None) = self.runtime.inspect_container(&name).await {
                self.ledger.forget_pod(&name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;

    fn with_quota(r: &mut Rig, quota: crate::Quota) {
        let mut q = crate::Quotas::none();
        q.tenants.insert("alice".into(), quota);
        r.exec.quotas = Arc::new(q);
    }

    #[tokio::test]
    async fn a_downlink_over_the_daily_quota_fails_alone() {
        let mut r = rig(|_| {});
        with_quota(
            &mut r,
            crate::Quota {
                downlink_bytes_per_day: Some(10),
                ..Default::default()
            },
        );
        r.put(&[("a.txt", b"123456"), ("b.txt", b"12345")]);
        let down = |p: &str| TaskKind::Downlink {
            volume: "pvc".into(),
            sources: vec![p.into()],
        };
        assert!(r.run_at("alice", 0, down("a.txt")).await.succeeded());
        let res = r.run_at("alice", 1, down("b.txt")).await;
        assert_eq!(code(&res), Some(4));
        assert_eq!(
            res.error.unwrap().message,
            "quota exceeded: downlink bytes per day for tenant alice: 6 used of 10 (this downlink sends 5 more)"
        );
        // What fits still goes; another tenant is not counted against alice.
        r.put(&[("c.txt", b"1234")]);
        assert!(r.run_at("alice", 2, down("c.txt")).await.succeeded());
    }

    /// A downlink task run again (the agent restarted before its plan went on) is charged once:
    /// it goes again, and the quota counts its bytes once.
    #[tokio::test]
    async fn a_downlink_run_again_is_charged_once() {
        let mut r = rig(|_| {});
        with_quota(
            &mut r,
            crate::Quota {
                downlink_bytes_per_day: Some(10),
                ..Default::default()
            },
        );
        r.put(&[("a.txt", b"123456"), ("b.txt", b"1234")]);
        let down = |p: &str| TaskKind::Downlink {
            volume: "pvc".into(),
            sources: vec![p.into()],
        };
        assert!(r.run_at("alice", 3, down("a.txt")).await.succeeded());
        let again = r.run_at("alice", 3, down("a.txt")).await;
        assert!(again.succeeded(), "{again:?}");
        // 6 counted, not 12: 4 more fit.
        let res = r.run_at("alice", 4, down("b.txt")).await;
        assert!(res.succeeded(), "{res:?}");
        let res = r.run_at("alice", 5, down("b.txt")).await;
        assert_eq!(
            res.error.unwrap().message,
            "quota exceeded: downlink bytes per day for tenant alice: 10 used of 10 (this downlink sends 4 more)"
        );
    }

    #[tokio::test]
    async fn a_volume_quota_replaces_the_tenant_limit() {
        let mut r = rig(|_| {});
        with_quota(
            &mut r,
            crate::Quota {
                volume_bytes: Some(100),
                ..Default::default()
            },
        );
        r.put(&[("big.bin", &[7u8; 90])]);
        let res = r
            .run(TaskKind::CameraCapture {
                volume: "pvc".into(),
                path: "shot.png".into(),
                size: 64,
            })
            .await;
        assert_eq!(code(&res), Some(4));
        let m = res.error.unwrap().message;
        assert!(
            m.starts_with("quota exceeded: volume bytes for tenant alice: ")
                && m.ends_with(" used of 100 (with this picture into volume pvc)"),
            "{m}"
        );
    }
}
