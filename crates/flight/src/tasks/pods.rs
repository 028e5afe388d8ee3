//! Pods: pod.run (a container of a catalogue or tenant image, on its tenant's internal network
//! only (`pod_network`), the volume at
//! `/data`, bounded in time, always removed), pod.stop, pod.logs, its log kept in the volume,
//! and image resolution.
//!
//! A pod.run task either waits for its pod to end or, `detached`, ends once the pod started: the
//! pod then runs on, supervised by a background task of the agent ([`RunningPods`]), until it
//! exits, overruns its `max_duration` or a pod.stop ends it. Either way a pod ends the same
//! way: SIGTERM, a grace, SIGKILL; its output kept in `<volume>/.logs/<pod>.log` (the run before
//! rotated to `<pod>.log.1`); its container removed.
//!
//! A restarted agent takes up the container its task left only when the container's labels
//! say it is that task's (tenant, execution, task index, pod name), and gives it what is left of
//! its `max_duration`, counted from when the engine says it started.

use dockerfile::onboard::Target;
use tokio::sync::watch;
use wire::names::TenantName;

use super::pod_network::network_name;
use super::pod_record::{PodRecord, read_pod_record, remaining, write_pod_record};
use super::pod_running::Running;
use super::quotas::Meter;
use super::*;
use crate::fsutil::now_ms;
use crate::runtime::{ContainerState, ContainerStatus, ImageInfo};

mod control;
mod labels;

use self::labels::*;

/// How long a pod.stop waits for the stopped pod's outcome beyond its grace.
const STOP_SETTLE: Duration = Duration::from_secs(120);

/// The container name of a pod.
fn container_name(tenant: &str, pod: &str, execution: &str) -> String {
    let short: String = execution.chars().take(8).collect();
    format!("orbitdock-{tenant}-{pod}-{short}")
}

impl Executor {
    pub(super) async fn pod_run(
        &self,
        tenant: &str,
        execution: &str,
        index: usize,
        pod: Pod<'_>,
    ) -> Step<TaskResult> {
        names::check_pod_name(pod.name).map_err(invalid)?;
        names::check_volume(pod.volume).map_err(invalid)?;
        let node = crate::runtime::node_class(pod.node).map_err(invalid)?;
        let (image, info) = self.resolve_image(tenant, pod.image).await?;
        if node.gpu && self.gpu == crate::runtime::Gpu::None {
            return Err(invalid(format!(
                "node {}: this system has no GPU to give a pod (no NVIDIA GPU with the NVIDIA \
                 container toolkit, no /dev/dri render node); run it on node default, MPU or FPGA",
                node.name
            )));
        }
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
        let name = container_name(tenant, pod.name, execution);
        let labels = pod_labels(tenant, execution, index, pod.name);
        // A pod runs once, whatever restarts the agent goes through. A run that ended before a
        // restart left its outcome in the state folder: that outcome stands.
        let record = self.pod_record(execution, index);
        let kept = read_pod_record(record.as_deref()).await;
        // The container of this name, if one is left, and whether it is this task's.
        let left = self.runtime.inspect_container(&name).await.map_err(|e| {
            execution_error(format!(
                "cannot inspect the pod's container {name}: {}",
                e.message
            ))
        })?;
        if let Some(state) = &left {
            check_labels(&name, state, &labels)?;
        }
        if let Some(PodRecord {
            outcome: Some(outcome),
            ..
        }) = &kept
        {
            let result = outcome.result();
            if pod.detached && left.is_some() {
                // Started detached before a restart: supervised again, for what is left.
                let started = left
                    .as_ref()
                    .and_then(|s| s.started_ms)
                    .or(kept.as_ref().and_then(|k| k.started_ms));
                let limit = remaining(pod.limit, started);
                let meter = Meter {
                    name: name.clone(),
                    nano_cpus: node.nano_cpus,
                    since_ms: started.unwrap_or_else(now_ms),
                    ports: pod.merged && !pod.ports.is_empty(),
                };
                let who = (tenant, execution, pod.name);
                self.detach(who, name, meter, root, owner, pod.limit, limit);
                return Ok(result);
            }
            tracing::info!(
                container = name,
                "a pod ended before the restart; its outcome stands"
            );
            if left.is_some()
                && let Err(e) = self.runtime.remove_container(&name).await
            {
                tracing::warn!(container = name, error = %e.message, "cannot remove a pod's container");
            }
            return Ok(result);
        }
        let mut meter = Meter {
            name: name.clone(),
            nano_cpus: node.nano_cpus,
            since_ms: now_ms(),
            ports: pod.merged && !pod.ports.is_empty(),
        };
        let mut running = false;
        let mut network_held = None;
        let (id, limit, start) = match left {
            // A container of this task, left by a restart: taken up, never run a second time
            // (created: started now; running: waited for, for what is left of its time;
            // stopped: its exit code is the outcome). If the engine cannot say, the task fails
            // rather than risk a second run.
            Some(state) => {
                tracing::info!(
                    container = name,
                    status = ?state.status,
                    "taking up a pod left by a restart"
                );
                let started = state
                    .started_ms
                    .or(kept.as_ref().and_then(|k| k.started_ms));
                meter.since_ms = started.unwrap_or(meter.since_ms);
                match state.status {
                    ContainerStatus::Created => (name, pod.limit, true),
                    ContainerStatus::Running | ContainerStatus::Stopped => {
                        running = state.status == ContainerStatus::Running;
                        (name, remaining(pod.limit, started), false)
                    }
                }
            }
            None => {
                if let Some(started) = kept.as_ref().and_then(|k| k.started_ms) {
                    return Err(execution_error(format!(
                        "the pod was started at {} (ms since the Unix epoch) and its container {name} is gone \
                         with no outcome kept: it is not run a second time",
                        started
                    )));
                }
                // A cancel ends the wait for a scheduled start; no pod of a cancelled execution
                // is created.
                tokio::select! {
                    () = self.wait_until(pod.scheduled_ms) => {}
                    () = self.cancels.cancelled(execution) => {}
                }
                if self.cancels.by(execution).is_some() {
                    return Err(TaskResult::cancelled(
                        "not started: the execution was cancelled",
                    ));
                }
                // One pod of a name at a time: a detached one of this name still runs.
                let busy = self
                    .pods
                    .lock()
                    .get(&(tenant.to_string(), pod.name.to_string()))
                    .is_some_and(|r| r.done.borrow().is_none());
                if busy {
                    return Err(execution_error(format!(
                        "a pod named '{}' of yours is still running (detached); end it with \
                         pod.stop, or name this one otherwise",
                        pod.name
                    )));
                }
                // A new pod writes into the volumes: not while the disk is below the state
                // reserve or the tenant's volumes are over their limit.
                self.room_for_work().await?;
                self.tenant_within_limit(tenant).await?;
                self.compute_within(tenant)?;
                self.rotate_pod_log(&root, pod.name).await;
                let mut labels = labels;
                labels.insert(VOLUME_LABEL.into(), pod.volume.into());
                labels.insert(MAX_LABEL.into(), pod.limit.as_millis().to_string());
                labels.insert(CPUS_LABEL.into(), node.nano_cpus.to_string());
                // Set whatever they say: the engine gives a container its image's labels
                // where it is given none, and the tenant writes the image's.
                let detached = if pod.detached { "1" } else { "0" };
                labels.insert(DETACHED_LABEL.into(), detached.into());
                let ports = if meter.ports {
                    ports_label(pod.ports)
                } else {
                    String::new()
                };
                labels.insert(PORTS_LABEL.into(), ports);
                // Every pod is on its tenant's network (the telemetry service is there);
                // only a merged one is reached by the others, on the ports it declares.
                network_held = Some(self.pods.network.lock().await);
                let network = self.tenant_network(tenant).await?;
                let created = self
                    .create_pod(
                        tenant, &pod, name, &image, &info, env, &root, owner, labels, node, network,
                    )
                    .await;
                let id = match created {
                    Ok(id) => id,
                    Err(failed) => {
                        drop(network_held.take());
                        self.release_network(tenant).await;
                        return Err(failed);
                    }
                };
                (id, pod.limit, true)
            }
        };
        let mut failed = None;
        if start {
            meter.since_ms = now_ms();
            write_pod_record(
                record.as_deref(),
                &PodRecord {
                    started_ms: Some(now_ms()),
                    outcome: None,
                },
            )
            .await;
            match self.runtime.start_container(&id).await {
                Ok(()) => running = true,
                Err(e) => failed = Some(e.message),
            }
        }
        // The ports a merged pod declares open to its peers once it runs (again when it is
        // taken up: rules in place stay as they are); a pod whose ports cannot be opened is
        // stopped rather than left unreachable.
        if running
            && meter.ports
            && let Err(e) = self
                .runtime
                .open_ports(&network_name(tenant), &meter.name, pod.ports)
                .await
        {
            if let Err(e) = self.runtime.stop_container(&id, Duration::ZERO).await {
                tracing::warn!(container = id, error = %e.message, "cannot stop a pod");
            }
            failed = Some(format!(
                "its ports could not be opened to your other pods: {}",
                e.message
            ));
        }
        drop(network_held);
        if let Some(message) = failed {
            let result = self
                .finish_pod(
                    &id,
                    PodOutcome::StartFailed(message),
                    pod.limit,
                    &root,
                    owner,
                    pod.name,
                )
                .await;
            write_pod_record(record.as_deref(), &PodRecord::ended(&result)).await;
            self.close_ports(&meter).await;
            self.remove(&id).await;
            self.release_network(tenant).await;
            return Ok(result);
        }
        if pod.detached {
            let result = TaskResult::ok(TaskOutputs {
                message: Some(format!(
                    "pod {} started; it runs on for at most {}",
                    pod.name,
                    duration(limit)
                )),
                ..TaskOutputs::default()
            });
            write_pod_record(record.as_deref(), &PodRecord::ended(&result)).await;
            self.detach(
                (tenant, execution, pod.name),
                id,
                meter,
                root,
                owner,
                pod.limit,
                limit,
            );
            return Ok(result);
        }
        // The execution's cancel stops the pod as its max_duration would: SIGTERM, the grace,
        // SIGKILL (an attached pod has no other way to be stopped).
        let cancel = Some(self.cancels.watch(execution));
        let outcome = self.wait_within(tenant, &meter, &id, limit, cancel).await;
        let cancelled = matches!(outcome, PodOutcome::Stopped(_));
        let result = self
            .finish_pod(&id, outcome, pod.limit, &root, owner, pod.name)
            .await;
        let result = match cancelled {
            true => {
                let mut stopped = TaskResult::cancelled(format!(
                    "the pod was stopped (SIGTERM, then SIGKILL after {}): the execution was cancelled",
                    duration(crate::cancels::CANCEL_GRACE)
                ))
                .tail(result.outputs.log_tail.clone());
                stopped.outputs.exit_code = result.outputs.exit_code;
                stopped
            }
            false => result,
        };
        // The outcome is saved before the container goes: a restart in between finds one or the
        // other, so the pod is not run again.
        write_pod_record(record.as_deref(), &PodRecord::ended(&result)).await;
        self.remove(&id).await;
        self.release_network(tenant).await;
        Ok(result)
    }

    /// Removes the rules that opened the pod's ports, if it had any.
    async fn close_ports(&self, meter: &Meter) {
        if meter.ports
            && let Err(e) = self.runtime.close_ports(&meter.name).await
        {
            tracing::warn!(container = meter.name, error = %e.message, "cannot close a pod's ports");
        }
    }

    async fn remove(&self, id: &str) {
        if let Err(e) = self.runtime.remove_container(id).await {
            tracing::warn!(container = id, error = %e.message, "cannot remove a pod's container");
        }
    }

    /// Waits until `at` (milliseconds since the Unix epoch) by the mission clock; at once when
    /// it is past or `None`.
    async fn wait_until(&self, at: Option<u64>) {
        if let Some(at) = at {
            self.clock.sleep_until(at).await;
        }
    }

    /// Supervises the started container `id` in the background for `left` of its `limit`:
    /// what pod.stop and pod.logs find by `tenant` and `pod`, and a cancel of `execution` stops.
    #[allow(clippy::too_many_arguments)]
    fn detach(
        &self,
        (tenant, execution, pod): (&str, &str, &str),
        id: String,
        meter: Meter,
        root: PathBuf,
        owner: Owner,
        limit: Duration,
        left: Duration,
    ) {
        let (stop_tx, stop_rx) = watch::channel(None);
        let (done_tx, done_rx) = watch::channel(None);
        let mut pods = self.pods.lock();
        let key = (tenant.to_string(), pod.to_string());
        if pods
            .get(&key)
            .is_some_and(|r| r.container == id && r.done.borrow().is_none())
        {
            return; // Supervised already.
        }
        pods.insert(
            (tenant.to_string(), pod.to_string()),
            Running {
                execution: execution.to_string(),
                container: id.clone(),
                stop: stop_tx,
                done: done_rx,
                root: root.clone(),
                owner,
            },
        );
        drop(pods);
        let (exec, tenant, pod) = (self.clone(), tenant.to_string(), pod.to_string());
        tokio::spawn(async move {
            let outcome = exec
                .wait_within(&tenant, &meter, &id, left, Some(stop_rx))
                .await;
            let result = exec
                .finish_pod(&id, outcome, limit, &root, owner, &pod)
                .await;
            exec.remove(&id).await;
            tracing::info!(
                tenant,
                pod,
                failed = !result.succeeded(),
                "a detached pod ended"
            );
            // Ended once its container is gone; the network (which another pod of the tenant
            // may hold) goes after.
            let _ = done_tx.send(Some(result));
            exec.release_network(&tenant).await;
        });
    }

    /// Supervises again the detached pods a previous run of the agent left running (found by
    /// their label), each for what is left of its `max_duration`, so that they still end in
    /// time and pod.stop and pod.logs still reach them. A container whose labels do not read is
    /// left alone, with a warning.
    pub(crate) async fn take_up_detached(&self) {
        self.forget_vanished_pods().await;
        self.close_vanished_ports().await;
        let names = match self.runtime.list_containers(DETACHED_LABEL, "1").await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e.message, "cannot list the detached pods left running");
                return;
            }
        };
        for name in names {
            let Ok(Some(state)) = self.runtime.inspect_container(&name).await else {
                continue;
            };
            let label = |k: &str| state.labels.get(k).map(String::as_str).unwrap_or_default();
            let (tenant, pod, volume) = (
                label("org.orbitdock.tenant"),
                label(POD_LABEL),
                label(VOLUME_LABEL),
            );
            let max = label(MAX_LABEL).parse::<u64>().ok();
            let checked = names::check_tenant(tenant)
                .and(names::check_pod_name(pod))
                .and(names::check_volume(volume));
            let (Ok(()), Some(max)) = (checked, max) else {
                tracing::warn!(
                    container = name,
                    "a detached pod's labels do not read; left alone"
                );
                continue;
            };
            let Ok(owner) = self.volumes.owner(tenant) else {
                tracing::warn!(
                    container = name,
                    tenant,
                    "a detached pod's tenant has no uid; left alone"
                );
                continue;
            };
            let root = self.volumes.volume_dir(tenant, volume);
            let limit = remaining(Duration::from_millis(max), state.started_ms);
            tracing::info!(container = name, tenant, pod, left = ?limit, "supervising a detached pod again");
            let meter = Meter {
                name: name.clone(),
                // Charged as its node class was when it started (the default class's CPUs for
                // a pod started before the label was set).
                nano_cpus: label(CPUS_LABEL)
                    .parse()
                    .unwrap_or(crate::runtime::NODE_CLASSES[0].nano_cpus),
                since_ms: state.started_ms.unwrap_or_else(now_ms),
                ports: false,
            };
            let ports = read_ports_label(label(PORTS_LABEL));
            let meter = Meter {
                ports: !ports.is_empty(),
                ..meter
            };
            if meter.ports
                && state.status == ContainerStatus::Running
                && let Err(e) = self
                    .runtime
                    .open_ports(&network_name(tenant), &name, &ports)
                    .await
            {
                tracing::warn!(container = name, error = %e.message, "cannot open a pod's ports again");
            }
            // The telemetry service is served on the pod's network again.
            if state.status == ContainerStatus::Running
                && let Err(e) = self.tenant_network(tenant).await
            {
                tracing::warn!(container = name, error = ?e.error.map(|x| x.message), "cannot serve telemetry to a pod again");
            }
            let execution = label(EXECUTION_LABEL);
            self.detach(
                (tenant, execution, pod),
                name,
                meter,
                root,
                owner,
                Duration::from_millis(max),
                limit,
            );
        }
    }

    /// The result of an ended pod: its output read, kept in the volume, and its outcome mapped.
    async fn finish_pod(
        &self,
        id: &str,
        outcome: PodOutcome,
        limit: Duration,
        root: &Path,
        owner: Owner,
        pod: &str,
    ) -> TaskResult {
        let log = LogBook::new(POD_LOG_KEEP);
        if let Err(e) = self.runtime.container_logs(id, &log).await {
            log.push_line(&format!(
                "[orbitdock: the pod's output could not be read: {}]",
                e.message
            ));
        }
        self.write_pod_log(root, owner, pod, &log).await;
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
                format!("stopped after {}", duration(limit)),
            ),
            PodOutcome::Stopped(code) => TaskResult::ok(TaskOutputs {
                exit_code: code,
                message: Some(match code {
                    Some(c) => format!("stopped by pod.stop; exited with code {c}"),
                    None => "stopped by pod.stop".into(),
                }),
                ..TaskOutputs::default()
            }),
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
        result.tail(tail)
    }

    /// Creates the pod's container as `name`; returns its id.
    #[allow(clippy::too_many_arguments)]
    async fn create_pod(
        &self,
        tenant: &str,
        pod: &Pod<'_>,
        name: String,
        image: &str,
        info: &ImageInfo,
        env: Vec<String>,
        root: &Path,
        owner: Owner,
        labels: BTreeMap<String, String>,
        node: crate::runtime::NodeClass,
        (network, extra_hosts): (String, Vec<String>),
    ) -> Step<String> {
        let non_empty = |v: Option<&[String]>| v.filter(|v| !v.is_empty()).map(<[String]>::to_vec);
        let labels = over_image_labels(labels, &info.labels);
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
            image_volumes: info.volumes.clone(),
            node,
            network: Some(network),
            extra_hosts,
            gpu: match node.gpu {
                true => self.gpu.clone(),
                false => crate::runtime::Gpu::None,
            },
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

    /// Where the record of `execution`'s pod of task `index` is kept until its plan finishes:
    /// `<state>/pods/<execution>/task-<index>.json` (the scratch folder is `<state>/tmp`).
    /// `None` for an execution id that is not a safe folder name (then nothing is kept).
    fn pod_record(&self, execution: &str, index: usize) -> Option<PathBuf> {
        names::check_execution(execution).ok()?;
        Some(
            self.scratch
                .with_file_name("pods")
                .join(execution)
                .join(format!("task-{index}.json")),
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

    /// Waits for the started container within `limit`, stopping it (SIGTERM, a grace,
    /// SIGKILL) when it overruns, when `stop` asks for it (with the grace it carries), when
    /// free space under the volumes falls below the state reserve, when the tenant's volumes
    /// go over their limit or when its compute seconds of the day are used up (looked at every
    /// [`POD_DISK_CHECK`]). Its compute time is charged by `meter` meanwhile, and once more when
    /// it ended.
    async fn wait_within(
        &self,
        tenant: &str,
        meter: &Meter,
        id: &str,
        limit: Duration,
        stop: Option<watch::Receiver<Option<Duration>>>,
    ) -> PodOutcome {
        // Counted only for a tenant with a compute quota: no write to the disk otherwise.
        if self.quotas.of(tenant).compute_seconds_per_day.is_some() {
            self.ledger
                .pod_started(&meter.name, tenant, meter.nano_cpus, meter.since_ms);
        }
        let outcome = self.supervise(tenant, meter, id, limit, stop).await;
        self.ledger.pod_ended(&meter.name, now_ms());
        // It stopped: its address may go to another pod once its container is removed.
        self.close_ports(meter).await;
        outcome
    }

    async fn supervise(
        &self,
        tenant: &str,
        meter: &Meter,
        id: &str,
        limit: Duration,
        mut stop: Option<watch::Receiver<Option<Duration>>>,
    ) -> PodOutcome {
        let deadline = tokio::time::sleep(limit);
        let wait = self.runtime.wait_container(id);
        tokio::pin!(deadline, wait);
        let mut checks =
            tokio::time::interval_at(tokio::time::Instant::now() + POD_DISK_CHECK, POD_DISK_CHECK);
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (stopped, grace) = loop {
            tokio::select! {
                waited = &mut wait => {
                    return match waited {
                        Ok(code) => PodOutcome::Exited(code),
                        Err(e) => PodOutcome::WaitFailed(e.message),
                    };
                }
                _ = &mut deadline => break (PodOutcome::TimedOut, STOP_GRACE),
                grace = stop_requested(&mut stop) => break (PodOutcome::Stopped(None), grace),
                _ = checks.tick() => {
                    let over = match self.room_for_work().await {
                        Err(failed) => Some(failed),
                        Ok(()) => match self.tenant_within_limit(tenant).await {
                            Err(failed) => Some(failed),
                            Ok(()) => self.charge_pod(tenant, meter),
                        },
                    };
                    if let Some(mut failed) = over {
                        if let Some(e) = &mut failed.error {
                            e.message = format!("the pod was stopped: {}", e.message);
                        }
                        break (PodOutcome::OverLimit(failed), STOP_GRACE);
                    }
                }
            }
        };
        if let Err(e) = self.runtime.stop_container(id, grace).await {
            tracing::warn!(container = id, error = %e.message, "cannot stop a pod");
        }
        match stopped {
            // Stopped on request: its exit code says whether it ended gracefully.
            PodOutcome::Stopped(_) => {
                match tokio::time::timeout(crate::runtime::CALL_TIMEOUT, wait).await {
                    Ok(Ok(code)) => PodOutcome::Stopped(Some(code)),
                    _ => PodOutcome::Stopped(None),
                }
            }
            other => other,
        }
    }
}

/// The grace a pod.stop asked for; never, without a stop channel.
async fn stop_requested(stop: &mut Option<watch::Receiver<Option<Duration>>>) -> Duration {
    let Some(rx) = stop else {
        return std::future::pending().await;
    };
    loop {
        if let Some(grace) = *rx.borrow_and_update() {
            return grace;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
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
    pub(super) scheduled_ms: Option<u64>,
    pub(super) detached: bool,
    pub(super) node: Option<&'a str>,
    pub(super) merged: bool,
    pub(super) ports: &'a [wire::PodPort],
}

enum PodOutcome {
    StartFailed(String),
    WaitFailed(String),
    TimedOut,
    /// Stopped by a pod.stop; its exit code when it could be read.
    Stopped(Option<i64>),
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
            scheduled_ms: None,
            detached: false,
            node: None,
            merged: false,
            ports: vec![],
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
        // On its tenant's network, told where the telemetry service is there (the fake's
        // gateway).
        assert_eq!(spec.network.as_deref(), Some("orbitdock-alice"));
        assert_eq!(
            spec.extra_hosts,
            [
                "satellite-telemetry.dphi-tm:192.0.2.1",
                "telemetry:192.0.2.1"
            ]
        );
        // The container goes, then the network, unless another pod of the tenant holds it.
        assert_eq!(
            calls[calls.len() - 2..],
            [
                Call::Remove("id-orbitdock-alice-p1-exec0123".into()),
                Call::RemoveNetwork("orbitdock-alice".into())
            ]
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
        let removed = calls
            .iter()
            .rposition(|c| matches!(c, Call::Remove(_)))
            .unwrap();
        assert!(stop < removed && removed == calls.len() - 2, "{calls:?}");

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

    /// The state of a container the task itself left: its labels, started `ago_ms` ago.
    fn left_by_task(status: ContainerStatus, ago_ms: Option<u64>) -> ContainerState {
        ContainerState {
            status,
            labels: pod_labels("alice", "exec0123456789", 0, "p1"),
            started_ms: ago_ms.map(|a| now_ms() - a),
        }
    }

    /// An image's own `org.orbitdock` labels never steer the agent: each is set on the pod's
    /// container (not detached, no ports, any other empty), so a restarted agent supervises no
    /// pod its image calls detached and opens no port its image names.
    #[tokio::test]
    async fn an_images_own_labels_are_set_over_on_its_pods() {
        let from_image: BTreeMap<String, String> = [
            ("org.orbitdock.detached", "1"),
            ("org.orbitdock.ports", "22/tcp"),
            ("org.orbitdock.tenant", "bob"),
            ("org.orbitdock.max-duration-ms", "999999999"),
            ("org.orbitdock.unknown", "x"),
            ("maintainer", "alice"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let labelled = from_image.clone();
        let r = rig(|s| {
            s.exit_code = Some(0);
            s.images.insert(
                "tenants/alice/app:1".into(),
                ImageInfo {
                    labels: labelled,
                    ..Default::default()
                },
            );
        });
        let res = r.run(pod(image("app", "1"), None)).await;
        assert!(res.succeeded(), "{res:?}");
        let calls = r.fake.calls();
        let Some(Call::Create(spec)) = calls.iter().find(|c| matches!(c, Call::Create(_))) else {
            panic!("{calls:?}")
        };
        let label = |k: &str| spec.labels.get(k).map(String::as_str);
        assert_eq!(label("org.orbitdock.detached"), Some("0"));
        assert_eq!(label("org.orbitdock.ports"), Some(""));
        assert_eq!(label("org.orbitdock.tenant"), Some("alice"));
        let max = DEFAULT_POD_DURATION.as_millis().to_string();
        assert_eq!(label("org.orbitdock.max-duration-ms"), Some(max.as_str()));
        assert_eq!(label("org.orbitdock.unknown"), Some(""));
        assert_eq!(label("maintainer"), None, "not the agent's to set");

        // The container as the engine makes it (the image's labels where it sets none), found
        // running by a restarted agent: not taken up as a detached pod.
        let mut engine = from_image;
        engine.extend(spec.labels.clone());
        let name = spec.name.clone();
        let r = rig(|s| {
            s.exit_code = None;
            s.containers.insert(
                name,
                ContainerState {
                    status: ContainerStatus::Running,
                    labels: engine,
                    started_ms: Some(now_ms()),
                },
            );
        });
        r.exec.take_up_detached().await;
        assert!(r.exec.pods.lock().is_empty(), "taken up as detached");
        assert!(
            !r.fake
                .calls()
                .iter()
                .any(|c| matches!(c, Call::Wait(_) | Call::OpenPorts { .. })),
            "{:?}",
            r.fake.calls()
        );
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
                s.containers
                    .insert(NAME.into(), left_by_task(left, Some(1000)));
            });
            let res = r.run(pod(image("busybox", "latest"), None)).await;
            assert!(res.succeeded(), "{left:?}: {res:?}");
            assert_eq!(res.outputs.log_tail, ["done"]);
            assert_eq!(container_calls(&r), want, "{left:?}");
            let calls = r.fake.calls();
            assert_eq!(
                calls[calls.len() - 2..],
                [
                    Call::Remove(NAME.into()),
                    Call::RemoveNetwork("orbitdock-alice".into())
                ]
            );
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
        // The record is the task's (by index), not the pod name's: another task of the same
        // execution is its own.
        let other = PlanTask {
            id: "t2".into(),
            on_failure: OnFailure::Stop,
            trigger: None,
            kind: pod(image("busybox", "latest"), None),
        };
        let res = r.exec.run("alice", "exec0123456789", 1, &other).await;
        assert_eq!(code(&res), Some(4));
        assert!(container_calls(&r).len() > calls, "task 1 ran its own pod");
        // Once the plan has finished, the kept outcome goes.
        let calls = container_calls(&r).len();
        r.exec.forget_pods("exec0123456789");
        let third = r.run(pod(image("busybox", "latest"), None)).await;
        assert_eq!(third, first);
        assert!(container_calls(&r).len() > calls);
    }

    /// A container that merely has the pod's name (another execution with the same 8 first
    /// characters, another task, anyone) is not taken up: the task fails, and the container is
    /// neither waited for, stopped nor removed.
    #[tokio::test]
    async fn a_container_with_the_name_but_not_the_labels_is_refused() {
        const NAME: &str = "orbitdock-alice-p1-exec0123";
        for (what, labels) in [
            ("no labels", BTreeMap::new()),
            (
                "another execution",
                pod_labels("alice", "exec0123-other", 0, "p1"),
            ),
            (
                "another task",
                pod_labels("alice", "exec0123456789", 4, "p1"),
            ),
            (
                "another tenant",
                pod_labels("bob", "exec0123456789", 0, "p1"),
            ),
        ] {
            let r = rig(|s| {
                s.exit_code = Some(0);
                s.containers.insert(
                    NAME.into(),
                    ContainerState {
                        status: ContainerStatus::Running,
                        labels,
                        started_ms: Some(now_ms()),
                    },
                );
            });
            let res = r.run(pod(image("busybox", "latest"), None)).await;
            assert_eq!(code(&res), Some(4), "{what}");
            let m = res.error.unwrap().message;
            assert!(
                m.starts_with(&format!(
                    "a container named {NAME} exists but is not this task's pod ("
                )),
                "{what}: {m}"
            );
            let touched: Vec<Call> = r
                .fake
                .calls()
                .into_iter()
                .filter(|c| !matches!(c, Call::Inspect(_) | Call::Status(_)))
                .collect();
            assert!(touched.is_empty(), "{what}: {touched:?}");
        }
    }

    /// A running pod taken up after a restart gets only what is left of its max_duration.
    #[tokio::test]
    async fn a_pod_taken_up_gets_only_the_rest_of_its_time() {
        const NAME: &str = "orbitdock-alice-p1-exec0123";
        let r = rig(|s| {
            s.exit_code = None;
            s.containers.insert(
                NAME.into(),
                left_by_task(ContainerStatus::Running, Some(59_900)),
            );
        });
        let started = std::time::Instant::now();
        let res = r.run(pod(image("busybox", "latest"), Some(60_000))).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(code(&res), Some(20), "{res:?}");
        // Overrun long ago: stopped at once.
        let r = rig(|s| {
            s.exit_code = None;
            s.containers.insert(
                NAME.into(),
                left_by_task(ContainerStatus::Running, Some(3_600_000)),
            );
        });
        let res = r.run(pod(image("busybox", "latest"), Some(60_000))).await;
        assert_eq!(code(&res), Some(20), "{res:?}");
        assert!(r.fake.calls().contains(&Call::Stop(NAME.into())));
    }

    /// A pod whose start was recorded, but whose container is gone with no outcome kept, is
    /// not run a second time.
    #[tokio::test]
    async fn a_started_pod_whose_container_vanished_is_not_run_again() {
        let r = rig(|s| s.exit_code = Some(0));
        let path = r.exec.pod_record("exec0123456789", 0).unwrap();
        write_pod_record(
            Some(&path),
            &PodRecord {
                started_ms: Some(now_ms()),
                outcome: None,
            },
        )
        .await;
        let res = r.run(pod(image("busybox", "latest"), None)).await;
        assert_eq!(code(&res), Some(4));
        assert!(
            res.error
                .unwrap()
                .message
                .contains("is not run a second time")
        );
        assert!(container_calls(&r).is_empty());
    }

    /// A scheduled pod starts no earlier than its time by the onboard clock; a time past
    /// starts it at once.
    #[tokio::test]
    async fn a_scheduled_pod_waits_for_its_time() {
        let r = rig(|s| s.exit_code = Some(0));
        let with_time = |at: u64| match pod(image("busybox", "latest"), None) {
            TaskKind::PodRun {
                pod_name,
                image,
                command,
                args,
                env,
                volume,
                max_duration_ms,
                ..
            } => TaskKind::PodRun {
                pod_name,
                image,
                command,
                args,
                env,
                volume,
                max_duration_ms,
                scheduled_ms: Some(at),
                detached: false,
                node: None,
                merged: false,
                ports: vec![],
            },
            _ => unreachable!(),
        };
        let started = std::time::Instant::now();
        let res = r.run(with_time(now_ms() + 1500)).await;
        assert!(res.succeeded(), "{res:?}");
        assert!(started.elapsed() >= Duration::from_millis(1400));
        r.exec.forget_pods("exec0123456789");
        let started = std::time::Instant::now();
        let res = r.run(with_time(now_ms() - 3_600_000)).await;
        assert!(res.succeeded(), "{res:?}");
        assert!(started.elapsed() < Duration::from_millis(1000));
    }

    #[tokio::test]
    async fn stopping_or_reading_an_unknown_pod_is_a_clear_error() {
        let r = rig(|_| {});
        let res = r
            .run(TaskKind::PodStop {
                pod_name: "ghost".into(),
                grace_ms: None,
            })
            .await;
        assert_eq!(code(&res), Some(4));
        assert!(
            res.error
                .unwrap()
                .message
                .starts_with("no pod named 'ghost' of yours is running onboard")
        );
        r.put(&[("x", b"")]);
        let res = r
            .run(TaskKind::PodLogs {
                pod_name: "ghost".into(),
                volume: "pvc".into(),
            })
            .await;
        assert_eq!(code(&res), Some(4));
        assert_eq!(
            res.error.unwrap().message,
            "the log of pod ghost in volume pvc not found: /.logs/ghost.log"
        );
    }

    /// A GPU pod gets the machine's GPU; without one it is refused before anything is made.
    #[tokio::test]
    async fn gpu_pods_get_the_gpu_or_are_refused() {
        let gpu = |mut kind: TaskKind| {
            if let TaskKind::PodRun { node, .. } = &mut kind {
                *node = Some("GPU".into());
            }
            kind
        };
        let r = rig(|s| s.exit_code = Some(0));
        let res = r.run(gpu(pod(image("busybox", "latest"), None))).await;
        assert_eq!(code(&res), Some(2));
        assert!(
            res.error
                .unwrap()
                .message
                .starts_with("node GPU: this system has no GPU to give a pod")
        );
        assert!(container_calls(&r).is_empty());
        let mut r = rig(|s| s.exit_code = Some(0));
        r.exec.gpu = crate::runtime::Gpu::Nvidia;
        assert!(
            r.run(gpu(pod(image("busybox", "latest"), None)))
                .await
                .succeeded()
        );
        r.exec.forget_pods("exec0123456789");
        assert!(
            r.run(pod(image("busybox", "latest"), None))
                .await
                .succeeded()
        );
        let gpus: Vec<crate::runtime::Gpu> = r
            .fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Create(s) => Some(s.gpu),
                _ => None,
            })
            .collect();
        assert_eq!(
            gpus,
            [crate::runtime::Gpu::Nvidia, crate::runtime::Gpu::None]
        );
    }

    #[test]
    fn hostnames_are_valid() {
        assert_eq!(hostname("alice", "p_1.x"), "alice-p-1-x");
        assert_eq!(hostname(&"a".repeat(61), "zz").len(), 63);
        assert_eq!(hostname(&"a".repeat(62), "zz").len(), 62);
    }
}
