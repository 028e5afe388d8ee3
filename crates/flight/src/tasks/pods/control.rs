//! pod.stop and pod.logs on a pod of the tenant's, and which image a pod.run runs.

use super::*;

impl Executor {
    /// pod.stop: stops the tenant's detached pod `pod` (SIGTERM, `grace`, SIGKILL); its outcome
    /// (exit code and log tail) is the task's.
    pub(in crate::tasks) async fn pod_stop(
        &self,
        tenant: &str,
        pod: &str,
        grace: Duration,
    ) -> Step<TaskResult> {
        names::check_pod_name(pod).map_err(invalid)?;
        let found = {
            let pods = self.pods.lock();
            pods.get(&(tenant.to_string(), pod.to_string()))
                .map(|r| (r.stop.clone(), r.done.clone()))
        };
        let Some((stop, mut done)) = found else {
            return Err(execution_error(format!(
                "no pod named '{pod}' of yours is running onboard (pod.stop ends a pod a \
                 detached pod.run started: a merged pod.run followed by another)"
            )));
        };
        let ended = done.borrow().clone();
        if let Some(mut r) = ended {
            let was = r
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .or(r.outputs.message.clone())
                .unwrap_or_default();
            r.error = None;
            r.outputs.message = Some(format!("pod {pod} had already ended: {was}"));
            return Ok(r);
        }
        let _ = stop.send(Some(grace));
        let settled = tokio::time::timeout(grace + STOP_SETTLE, async {
            loop {
                if let Some(r) = done.borrow_and_update().clone() {
                    return Some(r);
                }
                if done.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match settled {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(execution_error(format!(
                "lost track of pod {pod} while stopping it"
            ))),
            Err(_) => Err(execution_error(format!(
                "pod {pod} did not end within {} of pod.stop",
                duration(grace + STOP_SETTLE)
            ))),
        }
    }

    /// pod.logs: a running detached pod's output so far, else what its last run left in
    /// `<volume>/.logs/<pod>.log`; written there and returned as the log tail.
    pub(in crate::tasks) async fn pod_logs(
        &self,
        tenant: &str,
        pod: &str,
        volume: &str,
    ) -> Step<TaskResult> {
        names::check_pod_name(pod).map_err(invalid)?;
        names::check_volume(volume).map_err(invalid)?;
        let running = {
            let pods = self.pods.lock();
            pods.get(&(tenant.to_string(), pod.to_string()))
                .filter(|r| r.done.borrow().is_none())
                .map(|r| (r.container.clone(), r.root.clone(), r.owner))
        };
        if let Some((id, root, owner)) = running {
            let log = LogBook::new(POD_LOG_KEEP);
            self.runtime.container_logs(&id, &log).await.map_err(|e| {
                execution_error(format!("cannot read pod {pod}'s output: {}", e.message))
            })?;
            self.write_pod_log(&root, owner, pod, &log).await;
            return Ok(TaskResult::ok(TaskOutputs {
                message: Some(format!("pod {pod} is running; its output so far")),
                ..TaskOutputs::default()
            })
            .tail(log.tail()));
        }
        let root = existing_volume(&self.volumes, tenant, volume, || {
            execution_error(format!("volume {volume} not found"))
        })?;
        let rel = RelPath::parse(&format!(".logs/{pod}.log")).map_err(invalid)?;
        let what = format!("the log of pod {pod} in volume {volume}");
        // Opened beneath the volume root, following no symlink.
        let (mut f, _) = volume_file(&root, &rel, ErrorCode::ExecutionError, &what)?;
        let bytes = blocking(move || -> io::Result<Vec<u8>> {
            use std::io::{Read, Seek, SeekFrom};
            let len = f.metadata()?.len();
            let keep = POD_LOG_KEEP as u64;
            if len > keep {
                f.seek(SeekFrom::Start(len - keep))?;
            }
            let mut out = Vec::new();
            f.take(keep).read_to_end(&mut out)?;
            Ok(out)
        })
        .await?
        .map_err(|e| execution_error(format!("cannot read {what}: {e}")))?;
        let log = LogBook::new(0);
        log.push_bytes(&bytes);
        Ok(TaskResult::ok(TaskOutputs {
            message: Some(format!("the output of pod {pod}'s last run")),
            ..TaskOutputs::default()
        })
        .tail(log.tail()))
    }
}

impl Executor {
    /// The reference to run: a catalogue image by its canonical name, else the tenant's own,
    /// as the Dockerfile judge classifies an image (`dockerfile::onboard::classify`, the one
    /// classification, which preflight runs on the ground too).
    pub(in crate::tasks) async fn resolve_image(
        &self,
        tenant: &str,
        image: &ImageRef,
    ) -> Step<(String, ImageInfo)> {
        let written = format!("{}:{}", image.name, image.tag);
        match dockerfile::onboard::classify(&written, &self.catalogue) {
            Some(Target::Catalogue(name)) => match self.inspect(&name).await? {
                Some(info) => Ok((name, info)),
                None => Err(TaskResult::fail(
                    ErrorCode::DockerImageNotFound,
                    format!("the catalogue image {name} is not loaded onboard"),
                )),
            },
            Some(Target::Tenant(own)) => {
                let tenant = TenantName::new(tenant).map_err(|e| invalid(e.to_string()))?;
                let full = own.onboard(&tenant);
                match self.inspect(&full).await? {
                    Some(info) => Ok((full, info)),
                    None => Err(self.image_not_found(&written)),
                }
            }
            _ => Err(self.image_not_found(&written)),
        }
    }

    fn image_not_found(&self, written: &str) -> TaskResult {
        TaskResult::fail(
            ErrorCode::DockerImageNotFound,
            format!(
                "image {written} is neither in the onboard catalogue ({}) nor one of your images; nothing can be pulled onboard",
                self.catalogue.join(", ")
            ),
        )
    }
}
