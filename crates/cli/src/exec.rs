//! `orbitdock exec`: start, show, list, wait for, cancel and read the logs of executions.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use reqwest::Method;
use serde::Serialize;

use crate::args::{ExecArgs, ExecCommand, Output};
use crate::client::{ApiError, Client, encode_path};
use crate::progress;
use crate::verbs::{Cli, list_path, print_preflight, split_op};

/// One task's log as `exec logs -o json` prints it.
#[derive(Debug, Serialize)]
struct TaskLog<'a> {
    task: &'a str,
    task_type: &'a str,
    state: api::State,
    message: Option<&'a str>,
    exit_code: Option<i64>,
    log_tail: Vec<&'a str>,
}

pub(crate) async fn exec(cli: &Cli, a: ExecArgs) -> anyhow::Result<ExitCode> {
    let client = cli.client()?;
    match a.command {
        ExecCommand::Start {
            operation,
            system,
            wait,
            force,
        } => {
            let (ns, id) = split_op(&operation)?;
            let req = api::StartExecution {
                revision: None,
                namespace: ns.to_string(),
                operation: id.to_string(),
                system,
                force,
            };
            let started = match start(
                cli,
                &client,
                &req,
                "fix them, or --force to see the onboard failure",
            )
            .await?
            {
                Ok(started) => started,
                Err(refused) => return Ok(refused),
            };
            if !wait {
                cli.show(&started, |started| {
                    println!(
                        "execution {} of {ns}/{id} on {}",
                        started.id, started.system
                    )
                })?;
                return Ok(ExitCode::SUCCESS);
            }
            if !cli.document() {
                println!(
                    "execution {} of {ns}/{id} on {}",
                    started.id, started.system
                );
            }
            wait_for(cli, &client, &started.id).await
        }
        ExecCommand::Show { id, json } => {
            let e: api::Execution = client
                .get(&format!("/api/v1/executions/{}", encode_path(&id)))
                .await?;
            let cli = Cli {
                output: if json { Output::Json } else { cli.output },
                ..cli.clone()
            };
            cli.show(&e, print_execution)?;
            Ok(ExitCode::SUCCESS)
        }
        ExecCommand::List {
            namespace,
            state,
            tenant,
        } => {
            let mut path = list_path("/api/v1/executions", namespace.as_deref());
            for (key, value) in [("state", state), ("tenant", tenant)] {
                if let Some(v) = value {
                    let sep = if path.contains('?') { '&' } else { '?' };
                    path = format!("{path}{sep}{key}={}", encode_path(&v));
                }
            }
            let list: api::ExecutionList = client.get(&path).await?;
            cli.show(&list, |list| {
                println!(
                    "{:<36} {:<12} {:<32} {:<8} {:<17} CREATED",
                    "EXECUTION", "TENANT", "OPERATION", "SYSTEM", "STATE"
                );
                for e in &list.executions {
                    println!(
                        "{:<36} {:<12} {:<32} {:<8} {:<17} {}",
                        e.id,
                        e.tenant,
                        format!("{}/{}", e.namespace, e.operation),
                        e.system,
                        e.state.as_str(),
                        e.created_at
                    );
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ExecCommand::Cancel { id } => {
            let e: api::Execution = client
                .json(client.request(
                    Method::POST,
                    &format!("/api/v1/executions/{}/cancel", encode_path(&id)),
                ))
                .await?;
            cli.show(&e, |e| match e.state {
                api::State::Cancelling => println!(
                    "execution {} CANCELLING: {} was asked to stop it; `orbitdock exec wait {}` follows it to its end",
                    e.id, e.system, e.id
                ),
                state => println!("execution {} {}", e.id, state),
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ExecCommand::Wait { id } => wait_for(cli, &client, &id).await,
        ExecCommand::Logs { id, task, follow } => logs(cli, &client, &id, task, follow).await,
    }
}

/// Starts an execution. When preflight refuses it, prints the findings, `hint` (what to do)
/// and, as a document, the API's error body, and gives exit status 1 instead.
pub(crate) async fn start(
    cli: &Cli,
    client: &Client,
    req: &api::StartExecution,
    hint: &str,
) -> anyhow::Result<Result<api::Execution, ExitCode>> {
    let res = client
        .json(client.request(Method::POST, "/api/v1/executions").json(req))
        .await;
    match res {
        Ok(started) => Ok(Ok(started)),
        Err(e) => match e.downcast::<ApiError>() {
            Ok(err) if err.preflight().is_some() => {
                print_preflight(err.preflight().unwrap_or_default());
                eprintln!("preflight found errors: nothing was started ({hint})");
                err.print_body(cli.output)?;
                Ok(Err(ExitCode::from(1)))
            }
            Ok(err) => Err(err.into()),
            Err(e) => Err(e),
        },
    }
}

/// Follows an execution to its end and prints it; exit status 0 only if it succeeded.
async fn wait_for(cli: &Cli, client: &Client, id: &str) -> anyhow::Result<ExitCode> {
    let last = follow(client, id).await?;
    cli.show(&last, print_execution)?;
    Ok(outcome(&last))
}

/// An ended execution's exit status: 0 only if it succeeded.
pub(crate) fn outcome(e: &api::Execution) -> ExitCode {
    // COMPLETED is an execution's success; a ground older than that name said SUCCESS.
    if matches!(e.state, api::State::Completed | api::State::Success) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `exec logs`: each task's message, exit code and log tail (a pod's output, a build's log),
/// as they are when asked, or (`--follow`) as each task ends, until the execution does.
async fn logs(
    cli: &Cli,
    client: &Client,
    id: &str,
    task: Option<String>,
    follow: bool,
) -> anyhow::Result<ExitCode> {
    let url = format!("/api/v1/executions/{}", encode_path(id));
    let mut printed: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        let e: api::Execution = client.get(&url).await?;
        if let Some(t) = &task
            && !e.tasks.iter().any(|x| &x.id == t)
        {
            bail!("execution {id} has no task {t:?}");
        }
        let done = e.state.is_final();
        let logs: Vec<TaskLog> = e
            .tasks
            .iter()
            .filter(|t| task.as_ref().is_none_or(|n| &t.id == n))
            .filter(|t| !follow || (t.state.is_final() && !printed.contains(&t.id)))
            .map(task_log)
            .collect();
        if cli.document() {
            if !follow || done {
                let all: Vec<TaskLog> = if follow {
                    e.tasks
                        .iter()
                        .filter(|t| task.as_ref().is_none_or(|n| &t.id == n))
                        .map(task_log)
                        .collect()
                } else {
                    logs
                };
                cli.show(&all, |_| ())?;
                return Ok(ExitCode::SUCCESS);
            }
        } else {
            for l in &logs {
                print_task_log(l);
                printed.insert(l.task.to_string());
            }
            if !follow || done {
                return Ok(ExitCode::SUCCESS);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn task_log(t: &api::Task) -> TaskLog<'_> {
    let out = t.outputs.as_ref();
    let err = t.error.as_ref();
    let tail = out
        .map(|o| &o.log_tail)
        .filter(|l| !l.is_empty())
        .or(err.map(|e| &e.log_tail));
    TaskLog {
        task: &t.id,
        task_type: &t.task_type,
        state: t.state,
        message: out
            .and_then(|o| o.message.as_deref())
            .or(err.map(|e| e.message.as_str())),
        exit_code: out.and_then(|o| o.exit_code),
        log_tail: tail
            .map(|l| l.iter().map(String::as_str).collect())
            .unwrap_or_default(),
    }
}

fn print_task_log(l: &TaskLog) {
    let exit = l
        .exit_code
        .map(|c| format!(" exit {c}"))
        .unwrap_or_default();
    println!("== {} ({}) {}{exit}", l.task, l.task_type, l.state.as_str());
    if let Some(m) = l.message {
        println!("   {m}");
    }
    for line in &l.log_tail {
        println!("   | {line}");
    }
}

/// Polls until the execution ends, printing each task's state changes.
pub(crate) async fn follow(client: &Client, id: &str) -> anyhow::Result<api::Execution> {
    let mut seen: Vec<Option<api::State>> = Vec::new();
    let mut uplink = progress::Uplink::default();
    let mut said_awaiting = false;
    loop {
        let e: api::Execution = client
            .get(&format!("/api/v1/executions/{}", encode_path(id)))
            .await?;
        if e.state == api::State::AwaitingApproval && !said_awaiting {
            eprintln!(
                "  awaiting an operator's approval before it is sent to {}",
                e.system
            );
            said_awaiting = true;
        }
        uplink.show(e.uplink_eta.as_ref());
        seen.resize(e.tasks.len(), None);
        for (t, seen) in e.tasks.iter().zip(&mut seen) {
            if *seen != Some(t.state) {
                eprintln!("  {:<16} {:<14} {}", t.id, t.task_type, t.state);
                *seen = Some(t.state);
            }
        }
        if e.state.is_final() {
            uplink.finish();
            return Ok(e);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

pub(crate) fn print_execution(e: &api::Execution) {
    let time = |t: &Option<String>| t.clone().unwrap_or_else(|| "-".to_string());
    println!(
        "execution {} ({}/{} revision {}, tenant {}) on {}: {}",
        e.id, e.namespace, e.operation, e.revision, e.tenant, e.system, e.state
    );
    println!(
        "  created {}  started {}  finished {}",
        e.created_at,
        time(&e.started_at),
        time(&e.finished_at)
    );
    println!(
        "  {:<16} {:<14} {:<10} {:<26} FINISHED",
        "TASK", "TYPE", "STATE", "STARTED"
    );
    for t in &e.tasks {
        println!(
            "  {:<16} {:<14} {:<10} {:<26} {}",
            t.id,
            t.task_type,
            t.state.as_str(),
            time(&t.started_at),
            time(&t.finished_at)
        );
        if let Some(out) = &t.outputs {
            if let Some(m) = &out.message {
                println!("      {m}");
            }
            if let Some(t) = &out.trigger {
                println!(
                    "      trigger fired {} (held since {}): {}",
                    t.fired, t.since, t.reason
                );
            }
            for f in &out.files {
                println!("      {} ({} bytes)", f.path, f.size);
            }
        }
    }
    if let Some(u) = &e.uplink {
        print_uplink(u);
    }
    crate::verbs::print_triggers(&e.triggers);
    for h in e.history.iter().filter(|h| h.by.is_some()) {
        println!(
            "  {} by {} at {}{}",
            h.state,
            h.by.as_deref().unwrap_or("-"),
            h.at,
            h.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    for err in &e.errors {
        println!(
            "  error in task {}: {} {}: {}",
            err.task.as_deref().unwrap_or("-"),
            err.code,
            err.name,
            err.message
        );
        for line in &err.log_tail {
            println!("    | {line}");
        }
    }
}

/// What the execution sent up: the bytes on the wire, and how each object went.
fn print_uplink(u: &api::UplinkReport) {
    println!(
        "  uplink: {} bytes on the wire (plan {}, objects {}) for {} objects of {} bytes",
        u.wire_bytes,
        u.plan_bytes,
        u.wire_bytes.saturating_sub(u.plan_bytes),
        u.objects,
        u.object_bytes
    );
    for s in &u.sent {
        let base = s
            .base
            .as_deref()
            .map(|b| format!(" against {}", short(b)))
            .unwrap_or_default();
        println!(
            "      {} ({} bytes): {} bytes as {}{base}",
            short(&s.digest),
            s.size,
            s.bytes,
            s.encoding
        );
    }
}

/// `sha256:` and the first 12 hex digits.
fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}
