//! `/em/pod/image/build|load|list`, `/em/pod/run`, `/em/pod/status`, `/em/nodes/status` (and
//! the v1 names `/em/image/*`, `/em/pod/execution`, `/em/pod/namespace/create`): images and
//! DPhi Pods, each call one task of our own: `docker.build`, `docker.load`,
//! `docker.image.list`, `pod.run`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use wire::TaskState;
use wire::names::PodName;

use super::params::{EmUser, Params, scalar_text};
use super::shapes::{ContainerState, EmError, Node, PodStatus, Reply, done, with_data};
use super::{BUILD, SHORT, TRANSFER, failed, pvc, run, succeeded, task_error};
use crate::em::{self, Call, Ended, Yaml};
use crate::{Ground, db, time};

/// A build's `max_duration` when the call sets none (CG2's EM API has no such parameter).
const BUILD_DURATION: &str = "55m";
/// The pod of a call that names none (CG2's "default pod").
const DEFAULT_POD: &str = "default";
/// The EM's nodes, as CG2's `/em/nodes/status` names them; ours are one Docker Engine.
const NODES: [&str; 3] = ["fpga", "gpu", "mpu1"];
/// How recent the EM agent's last hello must be for its nodes to count as schedulable (it
/// says hello every 30 seconds while its link is idle).
const HELLO_FRESH_MS: i64 = 120_000;

/// The wire code of a transfer that failed: the link's fault, not the build's or the load's.
const TRANSFER_FAILED: u16 = 21;

/// A build or load that failed: `400 <name>` with CG2's message and the log's last lines (or
/// the error's message when there is no log); a failed transfer is `500`.
fn image_failure(ended: &Ended, name: &'static str, message: &'static str) -> EmError {
    let Some(error) = task_error(ended) else {
        return failed(ended);
    };
    if error.code == TRANSFER_FAILED {
        return failed(ended);
    }
    let tail = if error.log_tail.is_empty() {
        vec![format!("{} {}: {}", error.code, error.name, error.message)]
    } else {
        error.log_tail.clone()
    };
    EmError::new(StatusCode::BAD_REQUEST, name, message)
        .log_tail(tail)
        .execution(&ended.execution)
        .cause(Some(error.clone()))
}

pub(super) async fn build(
    State(g): State<Ground>,
    EmUser(user): EmUser,
    p: Params,
) -> Result<Json<Reply<()>>, EmError> {
    let call = Call {
        operation: "em-image-build",
        description: "EM API: POST /em/pod/image/build".into(),
        tasks: vec![Yaml::map([
            ("id", Yaml::str("build")),
            ("type", Yaml::str("dphi.space.cg2.docker.build")),
            ("dockerfile", Yaml::str(p.required(&["dockerfile"])?)),
            ("context", Yaml::str(p.required(&["context"])?)),
            ("image", Yaml::str(p.required(&["image", "image_name"])?)),
            ("volume", Yaml::str(pvc(&user, &p)?)),
            (
                "max_duration",
                Yaml::str(
                    p.text("max_duration")?
                        .unwrap_or_else(|| BUILD_DURATION.into()),
                ),
            ),
        ])],
    };
    let ended = run(&g, &user, call, BUILD).await?;
    if ended.state != TaskState::Success {
        return Err(image_failure(&ended, "BUILD_FAILED", "Docker build failed"));
    }
    Ok(done(
        "Docker Image built successfully",
        Some(ended.execution),
    ))
}

pub(super) async fn load(
    State(g): State<Ground>,
    EmUser(user): EmUser,
    p: Params,
) -> Result<Json<Reply<()>>, EmError> {
    let call = Call {
        operation: "em-image-load",
        description: "EM API: POST /em/pod/image/load".into(),
        tasks: vec![Yaml::map([
            ("id", Yaml::str("load")),
            ("type", Yaml::str("dphi.space.cg2.docker.load")),
            ("tarfile", Yaml::str(p.required(&["tarfile"])?)),
            ("image", Yaml::str(p.required(&["image", "image_name"])?)),
            ("volume", Yaml::str(pvc(&user, &p)?)),
        ])],
    };
    let ended = run(&g, &user, call, TRANSFER).await?;
    if ended.state != TaskState::Success {
        return Err(image_failure(
            &ended,
            "IMAGE_LOAD_FAILED",
            "Docker Image tarfile failed to load",
        ));
    }
    Ok(done("Tar file loaded successfully", Some(ended.execution)))
}

pub(super) async fn images(
    State(g): State<Ground>,
    EmUser(user): EmUser,
) -> Result<Json<Reply<Vec<api::TenantImage>>>, EmError> {
    let call = Call {
        operation: "em-image-list",
        description: "EM API: /em/pod/image/list".into(),
        tasks: vec![Yaml::map([
            ("id", Yaml::str("images")),
            ("type", Yaml::str("dphi.space.cg2.docker.image.list")),
        ])],
    };
    let ended = run(&g, &user, call, SHORT).await?;
    let images = succeeded(&ended)?
        .outputs
        .as_ref()
        .map(|o| o.images.clone())
        .unwrap_or_default();
    Ok(with_data(
        "Successfully loaded list of docker images",
        images,
        Some(ended.execution),
    ))
}

/// Nov-2025's `/em/pod/namespace/create`: nothing to do, the namespace is made on first use.
pub(super) async fn namespace_create(EmUser(_): EmUser) -> Json<Reply<()>> {
    done("Namespace created successfully", None)
}

/// The pod a request names: `pod_name`, else the default pod.
fn pod_name(p: &Params) -> Result<String, EmError> {
    let name = p
        .text("pod_name")?
        .unwrap_or_else(|| DEFAULT_POD.to_string());
    PodName::new(&name).map_err(|e| EmError::invalid(e.to_string()))?;
    Ok(name)
}

/// A list parameter as strings.
fn strings(p: &Params, name: &str) -> Result<Option<Vec<String>>, EmError> {
    p.list(name)?
        .map(|items| {
            items
                .iter()
                .map(|v| {
                    scalar_text(v)
                        .ok_or_else(|| EmError::invalid(format!("'{name}' must hold strings")))
                })
                .collect()
        })
        .transpose()
}

async fn run_pod(g: &Ground, user: &str, p: &Params) -> Result<String, EmError> {
    let image = p.required(&["image", "docker_image"])?;
    let max_duration = p.required(&["max_duration"])?;
    let node = p.text("node")?.unwrap_or_else(|| "FPGA".into());
    if !["fpga", "gpu", "mpu", "mpu1", "default"].contains(&node.to_ascii_lowercase().as_str()) {
        return Err(EmError::invalid(format!(
            "'node' must be FPGA, GPU or MPU, not '{node}'"
        )));
    }
    let scheduled = p.text("scheduled_time")?;
    if let Some(at) = &scheduled {
        crate::operation::rfc3339_ms(at)
            .map_err(|e| EmError::invalid(format!("'scheduled_time' {e}")))?;
    }
    let pod = pod_name(p)?;
    let mut task = vec![
        ("id", Yaml::str(&pod)),
        ("type", Yaml::str("dphi.space.cg2.pod.run")),
        ("pod_name", Yaml::str(&pod)),
        ("image", Yaml::str(image)),
    ];
    let command = match p.list("command")? {
        Some(items) if items.len() == 1 && items[0].is_string() => {
            split_command(items[0].as_str().unwrap_or_default()).map_err(EmError::invalid)?
        }
        Some(_) => strings(p, "command")?.unwrap_or_default(),
        None => Vec::new(),
    };
    if !command.is_empty() {
        task.push(("command", Yaml::strs(command)));
    }
    if let Some(args) = strings(p, "args")? {
        task.push(("args", Yaml::strs(args)));
    }
    let env = match p.mapping("envs")? {
        Some(env) => Some(env),
        None => p.mapping("env")?,
    };
    if let Some(env) = env {
        task.push((
            "env",
            Yaml::Map(env.into_iter().map(|(k, v)| (k, Yaml::Str(v))).collect()),
        ));
    }
    if let Some(ports) = p.list("ports")? {
        let ports = ports
            .iter()
            .map(|v| match v {
                Value::Number(n) => n.as_i64().map(Yaml::Int),
                Value::String(s) => s.trim().parse().ok().map(Yaml::Int),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| EmError::invalid("'ports' must be a list of port numbers"))?;
        task.push(("ports", Yaml::List(ports)));
    }
    task.push(("node", Yaml::str(node)));
    task.push(("max_duration", Yaml::str(max_duration)));
    task.push(("volume", Yaml::str(pvc(user, p)?)));
    if let Some(at) = scheduled {
        task.push(("scheduled_time", Yaml::str(at)));
    }
    let call = Call {
        operation: em::POD_RUN,
        description: "EM API: POST /em/pod/run".into(),
        tasks: vec![Yaml::map(task)],
    };
    let _held = em::hold(g, user).await?;
    Ok(em::start(g, user, &call).await?)
}

/// `POST /em/pod/run`: starts the pod and answers at once; `/em/pod/status` follows it.
pub(super) async fn pod_run(
    State(g): State<Ground>,
    EmUser(user): EmUser,
    p: Params,
) -> Result<Json<Reply<()>>, EmError> {
    let id = run_pod(&g, &user, &p).await?;
    Ok(done("Docker run scheduled successfully", Some(id)))
}

pub(super) async fn status(
    State(g): State<Ground>,
    EmUser(user): EmUser,
    p: Params,
) -> Result<Json<Reply<PodStatus>>, EmError> {
    let pod = pod_name(&p)?;
    let Some(ended) = em::latest_pod(&g, &user, &pod).await? else {
        return Err(EmError::new(
            StatusCode::NOT_FOUND,
            "POD_NOT_FOUND",
            format!("No DPhi Pod named '{pod}' has been run"),
        ));
    };
    let Some(task) = ended.first() else {
        return Err(failed(&ended));
    };
    let log_tail = task
        .outputs
        .as_ref()
        .map(|o| o.log_tail.clone())
        .unwrap_or_default();
    let status = PodStatus {
        state: container_state(task),
        log_tail,
    };
    Ok(with_data(
        "Successfully fetched DPhi Pod status",
        status,
        Some(ended.execution),
    ))
}

/// A pod.run task's state as Kubernetes shows a container's: waiting until it runs (and, like
/// Kubernetes, for an image that cannot be had), running, or terminated with its exit code.
fn container_state(task: &em::TaskEnd) -> ContainerState {
    let at = |ms: Option<i64>| ms.map(seconds);
    let exit_code = task.outputs.as_ref().and_then(|o| o.exit_code);
    match task.state {
        TaskState::Created | TaskState::Scheduled => ContainerState::Waiting {
            reason: "ContainerCreating",
            message: None,
        },
        TaskState::AwaitingApproval => ContainerState::Waiting {
            reason: "AwaitingApproval",
            message: Some("waiting for an operator's approval".into()),
        },
        // Rejected or cancelled: never started, or stopped by the cancel.
        TaskState::Rejected | TaskState::Cancelled => ContainerState::Terminated {
            exit_code: exit_code.unwrap_or(128),
            reason: "Cancelled",
            message: task
                .error
                .as_ref()
                .map(|e| format!("{} {}: {}", e.code, e.name, e.message)),
            started_at: at(task.started_at),
            finished_at: at(task.finished_at),
        },
        // A task is never CANCELLING (only its execution is), but reads as running if it were.
        TaskState::Running | TaskState::Cancelling => ContainerState::Running {
            started_at: at(task.started_at).unwrap_or_default(),
        },
        TaskState::Success => ContainerState::Terminated {
            exit_code: exit_code.unwrap_or(0),
            reason: "Completed",
            message: None,
            started_at: at(task.started_at),
            finished_at: at(task.finished_at),
        },
        TaskState::Failed => {
            let error = task.error.as_ref();
            let message = error.map(|e| format!("{} {}: {}", e.code, e.name, e.message));
            let (code, reason) = match error.map(|e| e.code) {
                // DOCKER_IMAGE_NOT_FOUND, DOCKER_ERROR_PULLING_IMAGE
                Some(15 | 17) => {
                    return ContainerState::Waiting {
                        reason: "ImagePullBackOff",
                        message,
                    };
                }
                // MAX_DURATION_EXCEEDED: stopped with SIGTERM.
                Some(20) => (exit_code.unwrap_or(143), "DeadlineExceeded"),
                _ => match exit_code {
                    Some(c) => (c, "Error"),
                    None => (128, "StartError"),
                },
            };
            ContainerState::Terminated {
                exit_code: code,
                reason,
                message,
                started_at: at(task.started_at),
                finished_at: at(task.finished_at),
            }
        }
    }
}

/// A time as Kubernetes writes it: RFC 3339 UTC to the second.
fn seconds(ms: i64) -> String {
    let t = time::rfc3339(ms);
    match t.split_once('.') {
        Some((s, _)) => format!("{s}Z"),
        None => t,
    }
}

pub(super) async fn nodes(
    State(g): State<Ground>,
    EmUser(_): EmUser,
) -> Result<Json<Reply<Vec<Node>>>, EmError> {
    let alive = db::system(g.db(), em::SYSTEM)
        .await?
        .is_some_and(|s| time::now_ms() - s.last_seen <= HELLO_FRESH_MS);
    let status = if alive { "True" } else { "False" };
    let nodes = NODES.iter().map(|name| Node { name, status }).collect();
    Ok(with_data("Nodes retrieved successfully.", nodes, None))
}

/// Splits a command written as one string into words as a shell would (quotes and
/// backslashes), without expanding anything: CG2 runs `command` "exactly as typed".
fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("'command' has an unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("'command' ends inside a \" quote".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("'command' has an unterminated \" quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("'command' ends with a lone \\".into()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_as_a_shell_splits_them() {
        let s = |c: &str| split_command(c).unwrap();
        assert_eq!(s("/app --x  1"), ["/app", "--x", "1"]);
        assert_eq!(
            s(r#"/bin/sh -c "echo \"hi\" > /data/out.txt && cat '/data/a b'""#),
            [
                "/bin/sh",
                "-c",
                r#"echo "hi" > /data/out.txt && cat '/data/a b'"#
            ]
        );
        assert_eq!(s(r"a\ b ''"), ["a b", ""]);
        assert!(s("").is_empty());
        assert!(split_command("'open").is_err());
        assert!(split_command("\"open").is_err());
    }

    fn task(state: TaskState, code: Option<u16>, exit: Option<i64>) -> em::TaskEnd {
        em::TaskEnd {
            id: "p".into(),
            state,
            started_at: Some(1_800_000_000_123),
            finished_at: Some(1_800_000_060_000),
            error: code.map(|code| api::TaskError {
                task: None,
                code,
                name: "X".into(),
                message: "m".into(),
                log_tail: Vec::new(),
            }),
            outputs: Some(api::TaskOutputs {
                trigger: None,
                files: Vec::new(),
                listing: Vec::new(),
                image: None,
                message: None,
                exit_code: exit,
                log_tail: Vec::new(),
                images: Vec::new(),
                uri: None,
                content_type: None,
                content_length: None,
            }),
        }
    }

    #[test]
    fn pod_states_read_as_kubernetes_container_states() {
        let json = |t: em::TaskEnd| serde_json::to_value(container_state(&t)).unwrap();
        assert_eq!(
            json(task(TaskState::Scheduled, None, None)),
            serde_json::json!({"waiting": {"reason": "ContainerCreating"}})
        );
        assert_eq!(
            json(task(TaskState::Running, None, None)),
            serde_json::json!({"running": {"startedAt": "2027-01-15T08:00:00Z"}})
        );
        assert_eq!(
            json(task(TaskState::Success, None, Some(0)))["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(
            json(task(TaskState::Failed, Some(15), None))["waiting"]["reason"],
            "ImagePullBackOff"
        );
        let failed = json(task(TaskState::Failed, Some(4), Some(3)));
        assert_eq!(
            (
                &failed["terminated"]["exitCode"],
                &failed["terminated"]["reason"]
            ),
            (&serde_json::json!(3), &serde_json::json!("Error"))
        );
        assert_eq!(
            json(task(TaskState::Failed, Some(20), None))["terminated"]["reason"],
            "DeadlineExceeded"
        );
    }
}
