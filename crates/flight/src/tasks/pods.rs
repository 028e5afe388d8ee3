//! Pods: pod.run (a container of a catalogue or tenant image, no network, the volume at
//! `/data`, bounded in time, always removed), its log kept in the volume, and image resolution.

use dockerfile::onboard::Target;
use wire::names::TenantName;

use super::*;
use crate::runtime::ContainerStatus;

impl Executor {
    pub(super) async fn pod_run(
        &self,
        tenant: &str,
        execution: &str,
        pod: Pod<'_>,
    ) -> Step<TaskResult> {
        names::check_pod_name(pod.name).map_err(invalid)?;
        names::check_volume(pod.volume).map_err(invalid)?;
        let image = self.resolve_image(tenant, pod.image).await?;
        let mut env = Vec::with_capacity(pod.env.len());
        for (k, v) in pod.env {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return Err(invalid(format!("environment variable {k:?} is invalid")));
            }
            env.push(format!("{k}={v}"));
        }
        let (root, owner) = self
            .volumes
            .ensure_volume(tenant, pod.volume)
            .map_err(execution_error)?;
        let short: String = execution.chars().take(8).collect();
        let name = format!("orbitdock-{tenant}-{}-{short}", pod.name);
        // A pod runs once, whatever restarts the agent goes through. A run that ended before a
        // restart left its outcome in the state folder: that outcome stands.
        let record = self.pod_record(execution, pod.name);
        if let Some(result) = read_pod_record(record.as_deref()).await {
            tracing::info!(
                container = name,
                "a pod ended before the restart; its outcome stands"
            );
            if let Err(e) = self.runtime.remove_container(&name).await {
                tracing::warn!(container = name, error = %e.message, "cannot remove a pod's container");
            }
            return Ok(result);
        }
        // A container of this name was left by this task, cut short by a restart: it is taken
        // up again, never run a second time (created: started now; running: waited for; stopped:
        // its exit code is the outcome). If the engine cannot say, the task fails rather than
        // risk a second run.
        let left = self.runtime.container_status(&name).await.map_err(|e| {
            execution_error(format!(
                "cannot inspect the pod's container {name}: {}",
                e.message
            ))
        })?;
        let (id, outcome) = match left {
            Some(status) => {
                tracing::info!(
                    container = name,
                    ?status,
                    "taking up a pod left by a restart"
                );
                let outcome = match status {
                    ContainerStatus::Created => self.supervise(tenant, &name, pod.limit).await,
                    // Its time limit starts again: how long it ran before is not known here.
                    ContainerStatus::Running | ContainerStatus::Stopped => {
                        self.wait_within(tenant, &name, pod.limit).await
                    }
                };
                (name, outcome)
            }
            None => {
                // A new pod writes into the volumes: not while the disk is below the state
                // reserve or the tenant's volumes are over their limit.
                self.room_for_work().await?;
                self.tenant_within_limit(tenant).await?;
                let id = self
                    .create_pod(tenant, execution, &pod, name, &image, env, &root, owner)
                    .await?;
                let outcome = self.supervise(tenant, &id, pod.limit).await;
                (id, outcome)
            }
        };
        let log = LogBook::new(POD_LOG_KEEP);
        if let Err(e) = self.runtime.container_logs(&id, &log).await {
            log.push_line(&format!(
                "[orbitdock: the pod's output could not be read: {}]",
                e.message
            ));
        }
        self.write_pod_log(&root, owner, pod.name, &log).await;
        let tail = log.tail();
        let exec_format = |text: &str| text.to_ascii_lowercase().contains("exec format error");
        let result = match outcome {
            PodOutcome::StartFailed(m) if exec_format(&m) => TaskResult::fail(
                ErrorCode::DockerExecFormatError,
                format!(
                    "the image's binary is not for {}: {m}",
                    names::host_platform()
                ),
            ),
            PodOutcome::StartFailed(m) => execution_error(format!("the pod did not start: {m}")),
            PodOutcome::WaitFailed(m) => execution_error(format!("lost track of the pod: {m}")),
            PodOutcome::OverLimit(failed) => failed,
            PodOutcome::TimedOut => TaskResult::fail(
                ErrorCode::MaxDurationExceeded,
                format!("stopped after {}", duration(pod.limit)),
            ),
            PodOutcome::Exited(0) => TaskResult::ok(TaskOutputs {
                exit_code: Some(0),
                message: Some("exited with code 0".into()),
                ..TaskOutputs::default()
            }),
            PodOutcome::Exited(code) => {
                let mut r = if tail.iter().any(|l| exec_format(l)) {
                    TaskResult::fail(
                        ErrorCode::DockerExecFormatError,
                        format!(
                            "container exited with code {code}: exec format error (the binary is not for {})",
                            names::host_platform()
                        ),
                    )
                } else {
                    execution_error(format!("container exited with code {code}"))
                };
                r.outputs.exit_code = Some(code);
                r
            }
        };
        let result = result.tail(tail);
        // The outcome is saved before the container goes: a restart in between finds one or the
        // other, so the pod is not run again.
        write_pod_record(record.as_deref(), &result).await;
        if let Err(e) = self.runtime.remove_container(&id).await {
            tracing::warn!(container = id, error = %e.message, "cannot remove a pod's container");
        }
        Ok(result)
    }

    /// Creates the pod's container as `name`; returns its id.
    #[allow(clippy::too_many_arguments)]
    async fn create_pod(
        &self,
        tenant: &str,
        execution: &str,
        pod: &Pod<'_>,
        name: String,
        image: &str,
        env: Vec<String>,
        root: &Path,
        owner: Owner,
    ) -> Step<String> {
        let mut labels = labels(tenant, execution);
        labels.insert("org.orbitdock".into(), "1".into());
        labels.insert("org.orbitdock.pod".into(), pod.name.into());
        let non_empty = |v: Option<&[String]>| v.filter(|v| !v.is_empty()).map(<[String]>::to_vec);
        let spec = ContainerSpec {
            name,
            image: image.to_string(),
            user: format!("{}:{}", owner.uid, owner.gid),
            hostname: hostname(tenant, pod.name),
            entrypoint: non_empty(pod.command),
            cmd: non_empty(pod.args),
            env,
            data_dir: root.to_path_buf(),
            labels,
            tmp_bytes: self.disk.limits.pod_tmp_bytes,
            log_bytes: self.disk.limits.pod_log_bytes,
        };
        match self.runtime.create_container(&spec).await {
            Ok(id) => Ok(id),
            Err(e) if e.kind == RuntimeErrorKind::NotFound => Err(TaskResult::fail(
                ErrorCode::DockerImageNotFound,
                format!("image {image}: {}", e.message),
            )),
            Err(e) => Err(execution_error(format!(
                "cannot create the pod: {}",
                e.message
            ))),
        }
    }

    /// Where the outcome of `execution`'s pod `pod` is kept until its plan finishes:
    /// `<state>/pods/<execution>/<pod>.json` (the scratch folder is `<state>/tmp`). `None` for an
    /// execution id that is not a safe folder name (then nothing is kept).
    fn pod_record(&self, execution: &str, pod: &str) -> Option<PathBuf> {
        names::check_execution(execution).ok()?;
        Some(
            self.scratch
                .with_file_name("pods")
                .join(execution)
                .join(format!("{pod}.json")),
        )
    }

    /// Forgets the pod outcomes kept for `execution` (its plan has finished; they are never
    /// needed again).
    pub(crate) fn forget_pods(&self, execution: &str) {
        if names::check_execution(execution).is_ok() {
            let dir = self.scratch.with_file_name("pods").join(execution);
            if let Err(e) = fs::remove_dir_all(&dir)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(folder = %dir.display(), error = %e, "cannot remove kept pod outcomes");
            }
        }
    }

    /// Starts the container and waits for it as [`wait_within`](Self::wait_within) does.
    async fn supervise(&self, tenant: &str, id: &str, limit: Duration) -> PodOutcome {
        if let Err(e) = self.runtime.start_container(id).await {
            return PodOutcome::StartFailed(e.message);
        }
        self.wait_within(tenant, id, limit).await
    }

    /// Waits for the started container within `limit`, stopping it when it overruns, when free
    /// space under the volumes falls below the state reserve, or when the tenant's volumes go
    /// over their limit (looked at every [`POD_DISK_CHECK`]).
    async fn wait_within(&self, tenant: &str, id: &str, limit: Duration) -> PodOutcome {
        let deadline = tokio::time::sleep(limit);
        let wait = self.runtime.wait_container(id);
        tokio::pin!(deadline, wait);
        let mut checks =
            tokio::time::interval_at(tokio::time::Instant::now() + POD_DISK_CHECK, POD_DISK_CHECK);
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopped = loop {
            tokio::select! {
                waited = &mut wait => {
                    return match waited {
                        Ok(code) => PodOutcome::Exited(code),
                        Err(e) => PodOutcome::WaitFailed(e.message),
                    };
                }
                _ = &mut deadline => break PodOutcome::TimedOut,
                _ = checks.tick() => {
                    let over = match self.room_for_work().await {
                        Err(failed) => Some(failed),
                        Ok(()) => self.tenant_within_limit(tenant).await.err(),
                    };
                    if let Some(mut failed) = over {
                        if let Some(e) = &mut failed.error {
                            e.message = format!("the pod was stopped: {}", e.message);
                        }
                        break PodOutcome::OverLimit(failed);
                    }
                }
            }
        };
        if let Err(e) = self.runtime.stop_container(id, STOP_GRACE).await {
            tracing::warn!(container = id, error = %e.message, "cannot stop an overrunning pod");
        }
        stopped
    }

    /// Keeps the pod's output in `<volume>/.logs/<pod>.log`; a failure only warns.
    async fn write_pod_log(&self, root: &Path, owner: Owner, pod: &str, log: &LogBook) {
        let (volumes, root, bytes) = (self.volumes.clone(), root.to_path_buf(), log.kept());
        let rel = RelPath::parse(&format!(".logs/{pod}.log"));
        let written = blocking(move || -> Result<(), String> {
            let rel = rel?;
            let path = volumes::prepare_write(&volumes, &root, &rel, owner)
                .map_err(|e| e.message().to_string())?;
            fsutil::write_atomic(&path, &bytes).map_err(|e| e.to_string())?;
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o644));
            volumes.chown(&path, owner);
            Ok(())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(pod, error = %e, "cannot write the pod's log to its volume")
            }
            Err(_) => tracing::warn!(pod, "cannot write the pod's log to its volume"),
        }
    }

    /// The reference to run: a catalogue image by its canonical name, else the tenant's own,
    /// as the Dockerfile judge classifies an image (`dockerfile::onboard::classify`, the one
    /// classification, which preflight runs on the ground too).
    pub(super) async fn resolve_image(&self, tenant: &str, image: &ImageRef) -> Step<String> {
        let written = format!("{}:{}", image.name, image.tag);
        match dockerfile::onboard::classify(&written, &self.catalogue) {
            Some(Target::Catalogue(name)) => match self.inspect(&name).await? {
                Some(_) => Ok(name),
                None => Err(TaskResult::fail(
                    ErrorCode::DockerImageNotFound,
                    format!("the catalogue image {name} is not loaded onboard"),
                )),
            },
            Some(Target::Tenant(own)) => {
                let tenant = TenantName::new(tenant).map_err(|e| invalid(e.to_string()))?;
                let full = own.onboard(&tenant);
                match self.inspect(&full).await? {
                    Some(_) => Ok(full),
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

/// A pod's outcome as kept in the state folder (see `Executor::pod_record`).
#[derive(serde::Serialize, serde::Deserialize)]
struct PodRecord {
    error: Option<TaskError>,
    outputs: TaskOutputs,
}

/// The kept outcome of a pod, if there is one that reads.
async fn read_pod_record(path: Option<&Path>) -> Option<TaskResult> {
    let path = path?.to_path_buf();
    let bytes = match blocking(move || fs::read(&path)).await.ok()? {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a pod's kept outcome");
            return None;
        }
    };
    match serde_json::from_slice::<PodRecord>(&bytes) {
        Ok(r) => Some(TaskResult {
            error: r.error,
            outputs: r.outputs,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "a pod's kept outcome does not read; set aside");
            None
        }
    }
}

/// Keeps a pod's outcome, synced. A failure only warns: the container is removed all the same,
/// so a restart before the plan's progress is saved would run the pod again; that takes a state
/// folder that cannot be written as well as a crash.
async fn write_pod_record(path: Option<&Path>, result: &TaskResult) {
    let Some(path) = path.map(Path::to_path_buf) else {
        return;
    };
    let record = PodRecord {
        error: result.error.clone(),
        outputs: result.outputs.clone(),
    };
    let Ok(bytes) = serde_json::to_vec(&record) else {
        return;
    };
    let written = blocking(move || -> io::Result<()> {
        let Some(dir) = path.parent() else {
            return Ok(());
        };
        fs::create_dir_all(dir)?;
        // The new folders' entries are synced too, or the record could vanish with a crash.
        for d in [dir.parent(), Some(dir)].into_iter().flatten() {
            File::open(d)?.sync_all()?;
        }
        fsutil::write_atomic(&path, &bytes)
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot keep a pod's outcome"),
        Err(_) => tracing::warn!("cannot keep a pod's outcome"),
    }
}

/// The fields of a pod.run task.
pub(super) struct Pod<'a> {
    pub(super) name: &'a str,
    pub(super) image: &'a ImageRef,
    pub(super) command: Option<&'a [String]>,
    pub(super) args: Option<&'a [String]>,
    pub(super) env: &'a [(String, String)],
    pub(super) volume: &'a str,
    pub(super) limit: Duration,
}

enum PodOutcome {
    StartFailed(String),
    WaitFailed(String),
    TimedOut,
    /// Stopped for the disk: the failure to report.
    OverLimit(TaskResult),
    Exited(i64),
}

/// `<tenant>-<pod>` as a hostname: letters, digits and `-`, at most 63.
fn hostname(tenant: &str, pod: &str) -> String {
    let s: String = format!("{tenant}-{pod}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    s.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;

    fn pod(image: ImageRef, max: Option<u64>) -> TaskKind {
        TaskKind::PodRun {
            pod_name: "p1".into(),
            image,
            command: Some(vec!["/bin/sh".into(), "-c".into()]),
            args: Some(vec!["echo hi".into()]),
            env: vec![("A".into(), "b".into())],
            volume: "pvc".into(),
            max_duration_ms: max,
        }
    }

    #[tokio::test]
    async fn pods_run_isolated_and_are_always_removed() {
        let r = rig(|s| {
            s.exit_code = Some(3);
            s.logs = b"hello\nboom\n".to_vec();
        });
        let res = r.run(pod(image("busybox", "latest"), Some(60_000))).await;
        assert_eq!(code(&res), Some(4));
        assert_eq!(
            res.error.as_ref().unwrap().message,
            "container exited with code 3"
        );
        assert_eq!(res.outputs.exit_code, Some(3));
        assert_eq!(res.outputs.log_tail, ["hello", "boom"]);
        assert_eq!(
            fs::read(r.volume().join(".logs/p1.log")).unwrap(),
            b"hello\nboom\n"
        );
        let calls = r.fake.calls();
        let Some(Call::Create(spec)) = calls.iter().find(|c| matches!(c, Call::Create(_))) else {
            panic!("{calls:?}")
        };
        let owner = r.exec.volumes.owner("alice").unwrap();
        assert_eq!(spec.name, "orbitdock-alice-p1-exec0123");
        assert_eq!(spec.image, "busybox:latest");
        assert_eq!(spec.user, format!("{}:{}", owner.uid, owner.gid));
        assert_eq!(
            spec.entrypoint.as_deref(),
            Some(&["/bin/sh".to_string(), "-c".to_string()][..])
        );
        assert_eq!(spec.cmd.as_deref(), Some(&["echo hi".to_string()][..]));
        assert_eq!(spec.env, ["A=b"]);
        assert_eq!(spec.labels["org.orbitdock.tenant"], "alice");
        assert_eq!(spec.labels["org.orbitdock"], "1");
        assert_eq!(spec.data_dir, r.volume());
        assert_eq!(
            calls.last(),
            Some(&Call::Remove("id-orbitdock-alice-p1-exec0123".into()))
        );

        // Overrunning: stopped, then removed.
        let r = rig(|s| s.exit_code = None);
        let res = r.run(pod(image("busybox", "latest"), Some(50))).await;
        assert_eq!(code(&res), Some(20));
        assert!(res.error.unwrap().message.starts_with("stopped after"));
        let calls = r.fake.calls();
        let stop = calls
            .iter()
            .position(|c| matches!(c, Call::Stop(_)))
            .unwrap();
        assert!(matches!(calls.last(), Some(Call::Remove(_))) && stop < calls.len() - 1);

        // Wrong architecture.
        let r = rig(|s| {
            s.start_error = Some("OCI runtime create failed: exec format error: unknown".into())
        });
        assert_eq!(
            code(&r.run(pod(image("busybox", "latest"), None)).await),
            Some(14)
        );
        let r = rig(|s| {
            s.exit_code = Some(1);
            s.logs = b"exec /app: exec format error\n".to_vec();
        });
        assert_eq!(
            code(&r.run(pod(image("busybox", "latest"), None)).await),
            Some(14)
        );
    }

    #[tokio::test]
    async fn pods_only_run_catalogue_or_own_images() {
        let r = rig(|s| {
            s.exit_code = Some(0);
            s.images
                .insert("tenants/alice/app:1".into(), ImageInfo::default());
            s.images
                .insert("tenants/bob/secret:1".into(), ImageInfo::default());
        });
        assert!(r.run(pod(image("app", "1"), None)).await.succeeded());
        for (name, tag) in [
            ("tenants/bob/secret", "1"),
            ("secret", "1"),
            ("ubuntu", "latest"),
            ("app", "bad:tag"),
            ("registry:5000/a/b", "1.10"),
        ] {
            let res = r.run(pod(image(name, tag), None)).await;
            assert_eq!(code(&res), Some(15), "{name}:{tag}");
        }
        let created: Vec<String> = r
            .fake
            .calls()
            .into_iter()
            .filter_map(|c| {
                if let Call::Create(s) = c {
                    Some(s.image)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(created, ["tenants/alice/app:1"]);
        // A catalogue image by another spelling runs as its canonical name.
        let r = rig(|s| s.exit_code = Some(0));
        let res = r
            .run(pod(image("fpga.dphi.space:5000/busybox", "latest"), None))
            .await;
        assert!(res.succeeded(), "{res:?}");
        assert!(
            r.fake
                .calls()
                .iter()
                .any(|c| matches!(c, Call::Create(s) if s.image == "busybox:latest"))
        );
    }

    /// What the fake saw of containers: creations, starts and waits, by name.
    fn container_calls(r: &Rig) -> Vec<String> {
        r.fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Create(s) => Some(format!("create {}", s.name)),
                Call::Start(id) => Some(format!("start {id}")),
                Call::Wait(id) => Some(format!("wait {id}")),
                _ => None,
            })
            .collect()
    }

    /// Issue 11: an agent killed while its pod ran must not run the pod again when it resumes
    /// the task: the container it left is taken up, and an outcome kept before the container
    /// was removed stands.
    #[tokio::test]
    async fn a_pod_left_by_a_restart_is_taken_up_not_run_again() {
        const NAME: &str = "orbitdock-alice-p1-exec0123";
        for (left, want) in [
            (ContainerStatus::Running, vec![format!("wait {NAME}")]),
            (ContainerStatus::Stopped, vec![format!("wait {NAME}")]),
            (
                ContainerStatus::Created,
                vec![format!("start {NAME}"), format!("wait {NAME}")],
            ),
        ] {
            let r = rig(|s| {
                s.exit_code = Some(0);
                s.logs = b"done\n".to_vec();
                s.containers.insert(NAME.into(), left);
            });
            let res = r.run(pod(image("busybox", "latest"), None)).await;
            assert!(res.succeeded(), "{left:?}: {res:?}");
            assert_eq!(res.outputs.log_tail, ["done"]);
            assert_eq!(container_calls(&r), want, "{left:?}");
            assert_eq!(r.fake.calls().last(), Some(&Call::Remove(NAME.into())));
        }

        // The pod ended and its container was removed, but the plan's progress was not saved:
        // the task runs again and finds the kept outcome.
        let r = rig(|s| {
            s.exit_code = Some(3);
            s.logs = b"boom\n".to_vec();
        });
        let first = r.run(pod(image("busybox", "latest"), None)).await;
        assert_eq!(code(&first), Some(4));
        let calls = container_calls(&r).len();
        let again = r.run(pod(image("busybox", "latest"), None)).await;
        assert_eq!(again, first);
        assert_eq!(container_calls(&r).len(), calls, "nothing was run again");
        // Once the plan has finished, the kept outcome goes.
        r.exec.forget_pods("exec0123456789");
        let third = r.run(pod(image("busybox", "latest"), None)).await;
        assert_eq!(third, first);
        assert!(container_calls(&r).len() > calls);
    }

    #[test]
    fn hostnames_are_valid() {
        assert_eq!(hostname("alice", "p_1.x"), "alice-p-1-x");
        assert_eq!(hostname(&"a".repeat(61), "zz").len(), 63);
        assert_eq!(hostname(&"a".repeat(62), "zz").len(), 62);
    }
}
