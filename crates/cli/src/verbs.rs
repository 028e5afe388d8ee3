//! Client verbs: each turns its arguments into API calls and prints the answer for a person.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::args::{ExecArgs, ExecCommand, FilesArgs, FilesCommand, LoginArgs, OpArgs, OpCommand};
use crate::client::{ApiError, Client, encode_path};
use crate::session::{self, Session};

pub(crate) async fn login(a: LoginArgs) -> anyhow::Result<ExitCode> {
    let client = Client::anonymous(&a.server);
    let body = client
        .json(
            client
                .request(Method::POST, "/api/v1/login")
                .json(&json!({"user": a.user, "password": a.password})),
        )
        .await?;
    let token = body["token"]
        .as_str()
        .context("the server answered without a token")?;
    let path = session::save(&Session {
        server: a.server.trim_end_matches('/').to_string(),
        user: a.user.clone(),
        token: token.to_string(),
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
            let body = client
                .get(&format!(
                    "/api/v1/namespaces/{}/files",
                    encode_path(&namespace)
                ))
                .await?;
            for f in body["files"].as_array().into_iter().flatten() {
                println!(
                    "{:>10}  v{:<3} {}  {}",
                    f["size"],
                    f["version"],
                    f["created_at"].as_str().unwrap_or(""),
                    f["path"].as_str().unwrap_or("")
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
    let result = client
        .json(
            client
                .request(
                    Method::POST,
                    &format!("/api/v1/namespaces/{}/files", encode_path(namespace)),
                )
                .query(&[("to", to)])
                .header("content-type", "application/x-tar")
                .body(reqwest::Body::from(file)),
        )
        .await;
    let _ = std::fs::remove_file(&tar_path);
    let body = result?;
    for f in body["files"].as_array().into_iter().flatten() {
        println!(
            "{}  v{}  {} bytes",
            f["path"].as_str().unwrap_or(""),
            f["version"],
            f["size"]
        );
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
    let body = client
        .get(&format!("/api/v1/namespaces/{}/files", encode_path(ns)))
        .await?;
    let files: Vec<String> = body["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["path"].as_str().map(str::to_string))
        .collect();
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
        let n = client.download(&url(&path), &dest).await?;
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
    for f in under {
        let rel = &f[prefix.len()..];
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            bail!("the server listed an unsafe path {f:?}");
        }
        let dest = local.join(rel);
        let n = client.download(&url(f), &dest).await?;
        println!("{ns}:{f} → {} ({n} bytes)", dest.display());
    }
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
            match client.json(rb).await {
                Ok(body) => {
                    println!(
                        "{}/{} revision {}",
                        body["namespace"].as_str().unwrap_or(""),
                        body["id"].as_str().unwrap_or(""),
                        body["revision"]
                    );
                    // Saved; what preflight finds would block a start, so say it now.
                    print_preflight(&body["preflight"]);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => match e.downcast::<ApiError>() {
                    Ok(api) if api.status.as_u16() == 400 => {
                        print_diagnostics(&file, &api.body["error"]["diagnostics"]);
                        eprintln!("{}: {}", file.display(), api);
                        Ok(ExitCode::from(1))
                    }
                    Ok(api) => Err(api.into()),
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
            let body = client.json(rb).await?;
            print_diagnostics(&file, &body["diagnostics"]);
            print_preflight(&body["preflight"]);
            if body["valid"].as_bool() == Some(true) {
                println!("{}: valid", file.display());
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::from(1))
            }
        }
        OpCommand::Show { operation } => {
            let (ns, id) = split_op(&operation)?;
            let body = client
                .get(&format!(
                    "/api/v1/operations/{}/{}",
                    encode_path(ns),
                    encode_path(id)
                ))
                .await?;
            println!(
                "{ns}/{id} revision {} (updated {})",
                body["revision"],
                body["updated_at"].as_str().unwrap_or("")
            );
            println!("{}", body["yaml"].as_str().unwrap_or(""));
            for e in body["executions"].as_array().into_iter().flatten() {
                println!(
                    "  {}  {}  {}",
                    e["id"].as_str().unwrap_or(""),
                    e["state"].as_str().unwrap_or(""),
                    e["created_at"].as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Preflight findings like a compiler's: `file:line:col: severity[code] [task t]: message`.
fn print_preflight(findings: &Value) {
    for f in findings.as_array().into_iter().flatten() {
        eprintln!(
            "{}:{}:{}: {}[{}] [task {}]: {}",
            f["file"].as_str().unwrap_or("?"),
            f["line"].as_u64().unwrap_or(0),
            f["column"].as_u64().unwrap_or(0),
            f["severity"].as_str().unwrap_or("error"),
            f["code"].as_str().unwrap_or(""),
            f["task"].as_str().unwrap_or(""),
            f["message"].as_str().unwrap_or("")
        );
        if let Some(help) = f["help"].as_str() {
            eprintln!("  = help: {help}");
        }
    }
}

fn print_diagnostics(file: &Path, diagnostics: &Value) {
    for d in diagnostics.as_array().into_iter().flatten() {
        let task = d["task"]
            .as_str()
            .map(|t| format!(" [task {t}]"))
            .unwrap_or_default();
        eprintln!(
            "{}:{}:{}: {}{}: {}",
            file.display(),
            d["line"].as_u64().unwrap_or(0),
            d["column"].as_u64().unwrap_or(0),
            d["severity"].as_str().unwrap_or("error"),
            task,
            d["message"].as_str().unwrap_or("")
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
            let mut req = json!({"namespace": ns, "operation": id});
            if let Some(s) = system {
                req["system"] = json!(s);
            }
            if force {
                req["force"] = json!(true);
            }
            let body = match client
                .json(
                    client
                        .request(Method::POST, "/api/v1/executions")
                        .json(&req),
                )
                .await
            {
                Ok(body) => body,
                Err(e) => match e.downcast::<ApiError>() {
                    Ok(api) if !api.body["error"]["preflight"].is_null() => {
                        print_preflight(&api.body["error"]["preflight"]);
                        eprintln!(
                            "preflight found errors: nothing was started (fix them, or --force to see the onboard failure)"
                        );
                        return Ok(ExitCode::from(1));
                    }
                    Ok(api) => return Err(api.into()),
                    Err(e) => return Err(e),
                },
            };
            let exec_id = body["id"]
                .as_str()
                .context("the server answered without an execution id")?
                .to_string();
            println!(
                "execution {exec_id} of {ns}/{id} on {}",
                body["system"].as_str().unwrap_or("?")
            );
            if !wait {
                return Ok(ExitCode::SUCCESS);
            }
            let last = follow(&client, &exec_id).await?;
            print_execution(&last);
            Ok(if last["state"] == "SUCCESS" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        ExecCommand::Show { id, json } => {
            let body = client
                .get(&format!("/api/v1/executions/{}", encode_path(&id)))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                print_execution(&body);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Polls until the execution ends, printing each task's state changes.
async fn follow(client: &Client, id: &str) -> anyhow::Result<Value> {
    let mut seen: Vec<String> = Vec::new();
    loop {
        let body = client
            .get(&format!("/api/v1/executions/{}", encode_path(id)))
            .await?;
        let tasks = body["tasks"].as_array().cloned().unwrap_or_default();
        seen.resize(tasks.len(), String::new());
        for (i, t) in tasks.iter().enumerate() {
            let state = t["state"].as_str().unwrap_or("").to_string();
            if seen[i] != state {
                eprintln!(
                    "  {:<16} {:<14} {}",
                    t["id"].as_str().unwrap_or(""),
                    t["type"].as_str().unwrap_or(""),
                    state
                );
                seen[i] = state;
            }
        }
        if matches!(body["state"].as_str(), Some("SUCCESS" | "FAILED")) {
            return Ok(body);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

fn print_execution(e: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    println!(
        "execution {} ({}/{} revision {}) on {}: {}",
        s(&e["id"]),
        s(&e["namespace"]),
        s(&e["operation"]),
        e["revision"],
        s(&e["system"]),
        s(&e["state"])
    );
    println!(
        "  created {}  started {}  finished {}",
        s(&e["created_at"]),
        s(&e["started_at"]),
        s(&e["finished_at"])
    );
    println!(
        "  {:<16} {:<14} {:<10} {:<26} FINISHED",
        "TASK", "TYPE", "STATE", "STARTED"
    );
    for t in e["tasks"].as_array().into_iter().flatten() {
        println!(
            "  {:<16} {:<14} {:<10} {:<26} {}",
            s(&t["id"]),
            s(&t["type"]),
            s(&t["state"]),
            s(&t["started_at"]),
            s(&t["finished_at"])
        );
        let out = &t["outputs"];
        if let Some(m) = out["message"].as_str() {
            println!("      {m}");
        }
        for f in out["files"].as_array().into_iter().flatten() {
            println!("      {} ({} bytes)", s(&f["path"]), f["size"]);
        }
    }
    for err in e["errors"].as_array().into_iter().flatten() {
        println!(
            "  error in task {}: {} {}: {}",
            s(&err["task"]),
            err["code"],
            s(&err["name"]),
            s(&err["message"])
        );
        for line in err["log_tail"].as_array().into_iter().flatten() {
            println!("    | {}", line.as_str().unwrap_or(""));
        }
    }
}

/// `orbitdock passes`: upcoming passes with their capacity, from the ground's contact plans.
pub(crate) async fn passes(system: Option<String>, hours: u32) -> anyhow::Result<ExitCode> {
    let client = client()?;
    let systems: Vec<String> = match system {
        Some(s) => vec![s],
        None => {
            let body = client.get("/api/v1/systems").await?;
            body["systems"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect()
        }
    };
    for s in systems {
        let body = client
            .get(&format!(
                "/api/v1/systems/{}/passes?hours={hours}",
                encode_path(&s)
            ))
            .await?;
        if body["always_in_contact"] == true {
            println!("{s}: always in contact (no passes: the Engineering Model is on the ground)");
            continue;
        }
        let list = body["passes"].as_array().cloned().unwrap_or_default();
        println!("{s}: {} passes in the next {hours} h", list.len());
        println!(
            "  {:<12} {:<26} {:<26} {:>6} {:>6} {:>10} {:>10}",
            "STATION", "AOS", "LOS", "MIN", "MAX°", "UP MB", "DOWN MB"
        );
        for p in list {
            println!(
                "  {:<12} {:<26} {:<26} {:>6.1} {:>6.1} {:>10.2} {:>10.2}",
                p["station"].as_str().unwrap_or(""),
                p["aos"].as_str().unwrap_or(""),
                p["los"].as_str().unwrap_or(""),
                p["duration_s"].as_f64().unwrap_or(0.0) / 60.0,
                p["max_elevation_deg"].as_f64().unwrap_or(0.0),
                p["up_bytes"].as_f64().unwrap_or(0.0) / 1e6,
                p["down_bytes"].as_f64().unwrap_or(0.0) / 1e6,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
