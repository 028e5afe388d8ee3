//! Client verbs: each turns its arguments into API calls and prints the answer for a person.
//!
//! Every answer is read into its type of the `api` crate, never picked out of a JSON value by
//! field name: a field the ground renames is a compile error here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;

use crate::args::{ExecArgs, ExecCommand, FilesArgs, FilesCommand, LoginArgs, OpArgs, OpCommand};
use crate::client::{ApiError, Client, encode_path};
use crate::progress;
use crate::session::{self, Session};

pub(crate) async fn login(a: LoginArgs) -> anyhow::Result<ExitCode> {
    let password = match (a.password_stdin, &a.password) {
        (true, _) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
        (false, Some(p)) => p.clone(),
        (false, None) => {
            eprintln!(
                "orbitdock login: no password: set ORBITDOCK_PASSWORD, pipe it with --password-stdin, or give --password"
            );
            return Ok(ExitCode::from(2));
        }
    };
    let client = Client::anonymous(&a.server);
    let answer: api::LoginResponse = client
        .json(
            client
                .request(Method::POST, "/api/v1/login")
                .json(&api::LoginRequest {
                    user: a.user.clone(),
                    password,
                }),
        )
        .await
        .with_context(|| format!("cannot log in to {} as {}", a.server, a.user))?;
    let path = session::save(&Session {
        server: a.server.trim_end_matches('/').to_string(),
        user: a.user.clone(),
        token: answer.token,
    })?;
    println!(
        "logged in to {} as {} (session saved in {})",
        a.server,
        a.user,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn client() -> anyhow::Result<Client> {
    Ok(Client::from_session(&session::load()?))
}

pub(crate) async fn files(a: FilesArgs) -> anyhow::Result<ExitCode> {
    let client = client()?;
    match a.command {
        FilesCommand::Push {
            local_dir,
            namespace,
            to,
        } => push(&client, &local_dir, &namespace, &to).await,
        FilesCommand::Pull { remote, local } => pull(&client, &remote, &local).await,
        FilesCommand::Ls { namespace } => {
            let list: api::FileList = client
                .get(&format!(
                    "/api/v1/namespaces/{}/files",
                    encode_path(&namespace)
                ))
                .await?;
            for f in &list.files {
                println!(
                    "{:>10}  v{:<3} {}  {}",
                    f.size, f.version, f.created_at, f.path
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Packs `dir` into a tar (refusing symlinks, which the ground would refuse too) and uploads it.
async fn push(client: &Client, dir: &Path, namespace: &str, to: &str) -> anyhow::Result<ExitCode> {
    let meta = std::fs::metadata(dir).with_context(|| format!("{}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let tar_path = std::env::temp_dir().join(format!("orbitdock-push-{}.tar", std::process::id()));
    let (count, bytes) = {
        let dir = dir.to_path_buf();
        let tar_path = tar_path.clone();
        tokio::task::spawn_blocking(move || pack(&dir, &tar_path)).await??
    };
    eprintln!(
        "uploading {count} files ({bytes} bytes) from {} to {namespace}:{to}",
        dir.display()
    );
    let file = tokio::fs::File::open(&tar_path).await?;
    let total = file.metadata().await?.len();
    let bar = progress::bytes(total, "uploading");
    let body = progress::read_body(file, bar.clone());
    let result: anyhow::Result<api::Uploaded> = client
        .json(
            client
                .request(
                    Method::POST,
                    &format!("/api/v1/namespaces/{}/files", encode_path(namespace)),
                )
                .query(&[("to", to)])
                .header("content-type", "application/x-tar")
                .header("content-length", total)
                .body(body),
        )
        .await;
    bar.finish_and_clear();
    let _ = std::fs::remove_file(&tar_path);
    for f in result?.files {
        println!("{}  v{}  {} bytes", f.path, f.version, f.size);
    }
    Ok(ExitCode::SUCCESS)
}

fn pack(dir: &Path, tar_path: &Path) -> anyhow::Result<(u64, u64)> {
    let file = std::fs::File::create(tar_path)
        .with_context(|| format!("writing {}", tar_path.display()))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    builder.follow_symlinks(false);
    let mut stack = vec![PathBuf::new()];
    let (mut count, mut bytes) = (0u64, 0u64);
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&abs)
            .with_context(|| format!("reading {}", abs.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel_child = rel.join(e.file_name());
            let ft = e.file_type()?;
            if ft.is_symlink() {
                bail!(
                    "{} is a symlink: orbitdock uploads regular files and folders only (copy the target instead)",
                    dir.join(&rel_child).display()
                );
            } else if ft.is_dir() {
                builder.append_dir(&rel_child, e.path())?;
                stack.push(rel_child);
            } else if ft.is_file() {
                let mut f = std::fs::File::open(e.path())?;
                builder.append_file(&rel_child, &mut f)?;
                count += 1;
                bytes += e.metadata()?.len();
            } else {
                bail!(
                    "{} is not a regular file or folder",
                    dir.join(&rel_child).display()
                );
            }
        }
    }
    builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok((count, bytes))
}

/// `NS:/path` → a file, or every file under a folder.
async fn pull(client: &Client, remote: &str, local: &Path) -> anyhow::Result<ExitCode> {
    let (ns, path) = remote
        .split_once(':')
        .context("expected NS:/path, e.g. demo:/out/result.txt")?;
    let path = format!("/{}", path.trim_matches('/'));
    let list: api::FileList = client
        .get(&format!("/api/v1/namespaces/{}/files", encode_path(ns)))
        .await?;
    let sizes: std::collections::HashMap<String, u64> =
        list.files.into_iter().map(|f| (f.path, f.size)).collect();
    let mut files: Vec<String> = sizes.keys().cloned().collect();
    files.sort();
    let url = |p: &str| {
        format!(
            "/api/v1/namespaces/{}/files{}",
            encode_path(ns),
            encode_path(p)
        )
    };
    if files.contains(&path) {
        let dest = if local.is_dir() {
            local.join(path.rsplit('/').next().unwrap_or("file"))
        } else {
            local.to_path_buf()
        };
        let bar = progress::bytes(sizes[&path], "downloading");
        let n = client.download(&url(&path), &dest, &bar).await?;
        bar.finish_and_clear();
        println!("{ns}:{path} → {} ({n} bytes)", dest.display());
        return Ok(ExitCode::SUCCESS);
    }
    let prefix = if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    };
    let under: Vec<&String> = files.iter().filter(|f| f.starts_with(&prefix)).collect();
    if under.is_empty() {
        bail!("{ns}:{path}: no such file or folder");
    }
    let bar = progress::bytes(under.iter().map(|f| sizes[*f]).sum(), "downloading");
    for f in under {
        let rel = &f[prefix.len()..];
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            bail!("the server listed an unsafe path {f:?}");
        }
        let dest = local.join(rel);
        let n = client.download(&url(f), &dest, &bar).await?;
        bar.suspend(|| println!("{ns}:{f} → {} ({n} bytes)", dest.display()));
    }
    bar.finish_and_clear();
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn op(a: OpArgs) -> anyhow::Result<ExitCode> {
    let client = client()?;
    match a.command {
        OpCommand::Apply { file } => {
            let yaml = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let rb = client
                .request(Method::POST, "/api/v1/operations")
                .header("content-type", "application/yaml")
                .body(yaml);
            match client.json::<api::AppliedOperation>(rb).await {
                Ok(applied) => {
                    println!(
                        "{}/{} revision {}",
                        applied.namespace, applied.id, applied.revision
                    );
                    // Saved; what preflight finds would block a start, so say it now.
                    print_preflight(&applied.preflight);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => match e.downcast::<ApiError>() {
                    Ok(err) if err.status.as_u16() == 400 => {
                        print_diagnostics(&file, err.diagnostics());
                        eprintln!("{}: {}", file.display(), err);
                        Ok(ExitCode::from(1))
                    }
                    Ok(err) => Err(err.into()),
                    Err(e) => Err(e),
                },
            }
        }
        OpCommand::Validate { file } => {
            let yaml = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let rb = client
                .request(Method::POST, "/api/v1/operations/validate")
                .header("content-type", "application/yaml")
                .body(yaml);
            let v: api::Validation = client.json(rb).await?;
            print_diagnostics(&file, &v.diagnostics);
            print_preflight(&v.preflight);
            if v.valid {
                println!("{}: valid", file.display());
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::from(1))
            }
        }
        OpCommand::Show { operation } => {
            let (ns, id) = split_op(&operation)?;
            let op: api::OperationDetail = client
                .get(&format!(
                    "/api/v1/operations/{}/{}",
                    encode_path(ns),
                    encode_path(id)
                ))
                .await?;
            println!(
                "{ns}/{id} revision {} (updated {})",
                op.revision, op.updated_at
            );
            println!("{}", op.yaml);
            for e in &op.executions {
                println!("  {}  {}  {}", e.id, e.state, e.created_at);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Preflight findings like a compiler's: `file:line:col: severity[code] [task t]: message`.
fn print_preflight(findings: &[api::PreflightFinding]) {
    for f in findings {
        eprintln!(
            "{}:{}:{}: {}[{}] [task {}]: {}",
            f.file,
            f.line,
            f.column,
            f.severity.as_str(),
            f.code,
            f.task,
            f.message
        );
        if let Some(help) = &f.help {
            eprintln!("  = help: {help}");
        }
    }
}

fn print_diagnostics(file: &Path, diagnostics: &[api::Diagnostic]) {
    for d in diagnostics {
        let task = d
            .task
            .as_ref()
            .map(|t| format!(" [task {t}]"))
            .unwrap_or_default();
        eprintln!(
            "{}:{}:{}: {}{}: {}",
            file.display(),
            d.line,
            d.column,
            d.severity.as_str(),
            task,
            d.message
        );
    }
}

fn split_op(s: &str) -> anyhow::Result<(&str, &str)> {
    s.split_once('/')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .with_context(|| format!("{s:?}: expected NAMESPACE/OPERATION"))
}

pub(crate) async fn exec(a: ExecArgs) -> anyhow::Result<ExitCode> {
    let client = client()?;
    match a.command {
        ExecCommand::Start {
            operation,
            system,
            wait,
            force,
        } => {
            let (ns, id) = split_op(&operation)?;
            let req = api::StartExecution {
                namespace: ns.to_string(),
                operation: id.to_string(),
                system,
                force,
            };
            let started: api::Execution = match client
                .json(
                    client
                        .request(Method::POST, "/api/v1/executions")
                        .json(&req),
                )
                .await
            {
                Ok(started) => started,
                Err(e) => match e.downcast::<ApiError>() {
                    Ok(err) if err.preflight().is_some() => {
                        print_preflight(err.preflight().unwrap_or_default());
                        eprintln!(
                            "preflight found errors: nothing was started (fix them, or --force to see the onboard failure)"
                        );
                        return Ok(ExitCode::from(1));
                    }
                    Ok(err) => return Err(err.into()),
                    Err(e) => return Err(e),
                },
            };
            println!(
                "execution {} of {ns}/{id} on {}",
                started.id, started.system
            );
            if !wait {
                return Ok(ExitCode::SUCCESS);
            }
            let last = follow(&client, &started.id).await?;
            print_execution(&last);
            // COMPLETED is an execution's success; a ground older than that name said SUCCESS.
            Ok(
                if matches!(last.state, api::State::Completed | api::State::Success) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                },
            )
        }
        ExecCommand::Show { id, json } => {
            let e: api::Execution = client
                .get(&format!("/api/v1/executions/{}", encode_path(&id)))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                print_execution(&e);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Polls until the execution ends, printing each task's state changes.
async fn follow(client: &Client, id: &str) -> anyhow::Result<api::Execution> {
    let mut seen: Vec<Option<api::State>> = Vec::new();
    let mut uplink = progress::Uplink::default();
    loop {
        let e: api::Execution = client
            .get(&format!("/api/v1/executions/{}", encode_path(id)))
            .await?;
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

fn print_execution(e: &api::Execution) {
    let time = |t: &Option<String>| t.clone().unwrap_or_else(|| "-".to_string());
    println!(
        "execution {} ({}/{} revision {}) on {}: {}",
        e.id, e.namespace, e.operation, e.revision, e.system, e.state
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
            for f in &out.files {
                println!("      {} ({} bytes)", f.path, f.size);
            }
        }
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

/// `orbitdock passes`: upcoming passes with their capacity, from the ground's contact plans.
pub(crate) async fn passes(system: Option<String>, hours: u32) -> anyhow::Result<ExitCode> {
    let client = client()?;
    let systems: Vec<String> = match system {
        Some(s) => vec![s],
        None => {
            let list: api::SystemList = client.get("/api/v1/systems").await?;
            list.systems.into_iter().map(|s| s.name).collect()
        }
    };
    for s in systems {
        let passes: api::Passes = client
            .get(&format!(
                "/api/v1/systems/{}/passes?hours={hours}",
                encode_path(&s)
            ))
            .await?;
        if passes.always_in_contact {
            println!("{s}: always in contact (no passes: the Engineering Model is on the ground)");
            continue;
        }
        println!("{s}: {} passes in the next {hours} h", passes.passes.len());
        println!(
            "  {:<12} {:<26} {:<26} {:>6} {:>6} {:>10} {:>10}",
            "STATION", "AOS", "LOS", "MIN", "MAX°", "UP MB", "DOWN MB"
        );
        for p in &passes.passes {
            println!(
                "  {:<12} {:<26} {:<26} {:>6.1} {:>6.1} {:>10.2} {:>10.2}",
                p.station,
                p.aos,
                p.los,
                p.duration_s / 60.0,
                p.max_elevation_deg,
                p.up_bytes as f64 / 1e6,
                p.down_bytes as f64 / 1e6,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
