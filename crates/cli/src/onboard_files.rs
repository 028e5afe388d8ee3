//! `files rm --onboard` and `files mv --onboard`: a volume onboard changes only by a task run
//! there, so each writes the operation `onboard-files` (one `files.delete` or `files.move` task),
//! applies it in one of the caller's namespaces, starts it on the system and waits for it as
//! `exec start --wait` does. `-o json` prints the final `Execution`; the exit status is 0 only
//! if it succeeded.

use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;

use crate::args::Onboard;
use crate::client::Client;
use crate::exec;
use crate::verbs::Cli;

/// The operation each run applies (a new revision when it asks something new).
const OPERATION: &str = "onboard-files";

/// What to do in the volume.
pub(crate) enum Change {
    Delete(Vec<String>),
    Move { from: String, to: String },
}

pub(crate) async fn run(
    cli: &Cli,
    client: &Client,
    onboard: Onboard,
    change: Change,
) -> anyhow::Result<ExitCode> {
    let (Some(system), Some(volume)) = (onboard.system, onboard.volume) else {
        bail!("--onboard needs --system S and --volume V");
    };
    let namespace = match onboard.namespace {
        Some(ns) => ns,
        None => only_namespace(client).await?,
    };
    let yaml = operation(&namespace, &system, &volume, &change);
    let applied: api::AppliedOperation = client
        .json(
            client
                .request(Method::POST, "/api/v1/operations")
                .header("content-type", "application/yaml")
                .body(yaml),
        )
        .await
        .with_context(|| format!("applying {namespace}/{OPERATION}"))?;
    let req = api::StartExecution {
        namespace: namespace.clone(),
        operation: OPERATION.to_string(),
        system: Some(system.clone()),
        force: false,
        // The revision applied here, whatever another run applies meanwhile.
        revision: Some(applied.revision),
    };
    let started = match exec::start(cli, client, &req, "nothing was changed onboard").await? {
        Ok(started) => started,
        Err(refused) => return Ok(refused),
    };
    if !cli.document() {
        println!(
            "execution {} of {namespace}/{OPERATION} on {}",
            started.id, started.system
        );
    }
    let last = exec::follow(client, &started.id).await?;
    cli.show(&last, |e| print_outcome(e, &change, &volume))?;
    Ok(exec::outcome(&last))
}

/// The caller's namespace when there is exactly one.
async fn only_namespace(client: &Client) -> anyhow::Result<String> {
    let list: api::NamespaceList = client.get("/api/v1/namespaces").await?;
    match list.namespaces.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => bail!(
            "you have no namespace to keep the operation {OPERATION} in: push files to one first (files push DIR -n NS)"
        ),
        many => bail!(
            "you have {} namespaces: say which keeps the operation {OPERATION} with -n NS ({})",
            many.len(),
            many.iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The operation's YAML: every value a JSON string, which YAML reads as the same string.
fn operation(namespace: &str, system: &str, volume: &str, change: &Change) -> String {
    // A string's JSON encoding cannot fail.
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let task = match change {
        Change::Delete(paths) => format!(
            "  - id: delete\n    type: files.delete\n    source: [{}]\n",
            paths.iter().map(|p| q(p)).collect::<Vec<_>>().join(", ")
        ),
        Change::Move { from, to } => format!(
            "  - id: move\n    type: files.move\n    source: {}\n    destination: {}\n",
            q(from),
            q(to)
        ),
    };
    format!(
        "id: {OPERATION}\nnamespace: {}\nsystem: {}\ndescription: written by orbitdock files rm|mv --onboard\ntasks:\n{task}    volume: {}\n",
        q(namespace),
        q(system),
        q(volume)
    )
}

/// The text answer: what changed, or the task's error.
fn print_outcome(e: &api::Execution, change: &Change, volume: &str) {
    if matches!(e.state, api::State::Completed | api::State::Success) {
        match change {
            Change::Delete(paths) => {
                for p in paths {
                    println!("deleted {p} in {} volume {volume}", e.system);
                }
            }
            Change::Move { from, to } => {
                println!("moved {from} → {to} in {} volume {volume}", e.system)
            }
        }
    } else {
        for err in &e.errors {
            eprintln!("{} {} {}", err.code, err.name, err.message);
        }
    }
    println!("execution {} {}", e.id, e.state);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_quotes_every_path() {
        let yaml = operation(
            "demo",
            "em",
            "data",
            &Change::Delete(vec!["/a b: c".into(), "/\"q\"".into()]),
        );
        assert!(
            yaml.contains("source: [\"/a b: c\", \"/\\\"q\\\"\"]\n    volume: \"data\"\n"),
            "{yaml}"
        );
        let yaml = operation(
            "demo",
            "em",
            "data",
            &Change::Move {
                from: "/a".into(),
                to: "/b".into(),
            },
        );
        assert!(yaml.contains("type: files.move\n    source: \"/a\"\n    destination: \"/b\"\n"));
    }
}
