//! Client verbs `login`, `context`, `files` and `op` (`exec` and `passes` have modules of their
//! own): each turns its arguments into API calls and prints the answer, for a person or
//! (`-o json`) as one JSON document: the API's own response type, so a script reads what the
//! API would have answered (docs/cli.md lists the few verbs with a shape of their own).
//!
//! Every answer is read into its type of the `api` crate, never picked out of a JSON value by
//! field name: a field the ground renames is a compile error here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;

use serde::Serialize;

use crate::args::{
    ContextArgs, ContextCommand, FilesArgs, FilesCommand, LoginArgs, OpArgs, OpCommand, Output,
};
use crate::client::{ApiError, Client, encode_path};
use crate::onboard_files::{self, Change};
use crate::progress;
use crate::session::{self, Session};

/// What every client verb is told besides its own arguments: how to print, which context.
#[derive(Debug, Clone)]
pub(crate) struct Cli {
    pub(crate) output: Output,
    pub(crate) context: Option<String>,
    /// `--cacert` or `ORBITDOCK_CACERT`: the CA certificates to check the server's against,
    /// over the context's.
    pub(crate) cacert: Option<PathBuf>,
}

impl Cli {
    /// Whether the verb prints a document (`-o json` or `-o yaml`) rather than text.
    pub(crate) fn document(&self) -> bool {
        self.output != Output::Text
    }

    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Client::from_session(
            &session::load(self.context.as_deref())?,
            self.cacert.as_deref(),
        )
    }

    /// Prints `value` as JSON or YAML, or calls `text` to print it for a person.
    pub(crate) fn show<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce(&T),
    ) -> anyhow::Result<()> {
        if self.document() {
            crate::output::print_document(self.output, value)?;
        } else {
            text(value);
        }
        Ok(())
    }
}

/// `login -o json`.
#[derive(Debug, Serialize)]
struct LoggedIn<'a> {
    context: &'a str,
    server: &'a str,
    user: &'a str,
    session_file: String,
}

/// One file `files pull` wrote (`-o json` prints `{"files": [...]}`).
#[derive(Debug, Serialize)]
struct Pulled {
    remote: String,
    local: String,
    bytes: u64,
}

#[derive(Debug, Serialize)]
struct PulledList {
    files: Vec<Pulled>,
}

/// `op diff -o json`: both revisions and the unified diff between them.
#[derive(Debug, Serialize)]
struct OperationDiff {
    from: api::OperationRevision,
    to: api::OperationRevision,
    diff: String,
}

/// `context list -o json` (an array of them), and `context use -o json` (the one made current).
#[derive(Debug, Serialize)]
struct ContextEntry<'a> {
    name: &'a str,
    current: bool,
    server: &'a str,
    user: &'a str,
    /// The CA certificate file the server's certificate is checked against, if not the
    /// system's roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    cacert: Option<&'a Path>,
}

impl<'a> ContextEntry<'a> {
    /// The context `name`, saved as `s`, when `current` is the current one's name.
    fn of(name: &'a str, s: &'a Session, current: Option<&str>) -> ContextEntry<'a> {
        ContextEntry {
            name,
            current: current == Some(name),
            server: &s.server,
            user: &s.user,
            cacert: s.cacert.as_deref(),
        }
    }
}

/// `context rm -o json`: the context removed, and the current one after it (`null` when the
/// removed one was current).
#[derive(Debug, Serialize)]
struct RemovedContext<'a> {
    removed: &'a str,
    current: Option<&'a str>,
}

pub(crate) async fn login(cli: &Cli, a: LoginArgs) -> anyhow::Result<ExitCode> {
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
    // Saved as an absolute path, so the context works from any folder.
    let cacert = match &cli.cacert {
        Some(p) => {
            Some(std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))?)
        }
        None => None,
    };
    let client = Client::anonymous(&a.server, cacert.as_deref())?;
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
        // A refused login is the failure of what was asked (1), not a session to renew (3); a
        // certificate that did not verify keeps its own status (4).
        .map_err(|e| {
            let what = format!("cannot log in to {} as {}", a.server, a.user);
            if e.is::<crate::client::TlsRefused>() {
                e.context(what)
            } else {
                anyhow::anyhow!("{what}: {e:#}")
            }
        })?;
    let server = a.server.trim_end_matches('/').to_string();
    let name = a.name.unwrap_or_else(|| session::default_name(&server));
    let path = session::save(
        &name,
        &Session {
            server: server.clone(),
            user: a.user.clone(),
            token: answer.token.clone(),
            cacert,
        },
    )?;
    if a.print_token {
        println!("{}", answer.token);
        return Ok(ExitCode::SUCCESS);
    }
    let shown = LoggedIn {
        context: &name,
        server: &server,
        user: &a.user,
        session_file: path.display().to_string(),
    };
    cli.show(&shown, |l| {
        println!(
            "logged in to {} as {} (context {}, saved in {})",
            l.server, l.user, l.context, l.session_file
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `orbitdock context list|use|rm`.
pub(crate) fn context(cli: &Cli, a: ContextArgs) -> anyhow::Result<ExitCode> {
    let mut saved = session::contexts()?;
    match a.command {
        ContextCommand::List => {
            let entries: Vec<ContextEntry> = saved
                .contexts
                .iter()
                .map(|(name, s)| ContextEntry::of(name, s, saved.current.as_deref()))
                .collect();
            cli.show(&entries, |entries| {
                for e in entries {
                    let mark = if e.current { "*" } else { " " };
                    let ca = e
                        .cacert
                        .map(|c| format!(" (CA {})", c.display()))
                        .unwrap_or_default();
                    println!("{mark} {:<24} {:<32} {}{ca}", e.name, e.server, e.user);
                }
            })?;
        }
        ContextCommand::Use { name } => {
            if !saved.contexts.contains_key(&name) {
                eprintln!(
                    "orbitdock context use: no context {name:?}; `orbitdock context list` shows them"
                );
                return Ok(ExitCode::from(1));
            }
            saved.current = Some(name.clone());
            session::save_contexts(&saved)?;
            let entry = ContextEntry::of(&name, &saved.contexts[&name], Some(&name));
            cli.show(&entry, |e| println!("current context: {}", e.name))?;
        }
        ContextCommand::Rm { name } => {
            if saved.contexts.remove(&name).is_none() {
                eprintln!("orbitdock context rm: no context {name:?}");
                return Ok(ExitCode::from(1));
            }
            if saved.current.as_deref() == Some(name.as_str()) {
                saved.current = None;
            }
            session::save_contexts(&saved)?;
            let removed = RemovedContext {
                removed: &name,
                current: saved.current.as_deref(),
            };
            cli.show(&removed, |r| println!("removed context {}", r.removed))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn files(cli: &Cli, a: FilesArgs) -> anyhow::Result<ExitCode> {
    let client = cli.client()?;
    match a.command {
        FilesCommand::Push {
            local_dir,
            namespace,
            to,
        } => push(cli, &client, &local_dir, &namespace, &to).await,
        FilesCommand::Pull { remote, local } => pull(cli, &client, &remote, &local).await,
        FilesCommand::Ls {
            namespace,
            onboard: true,
            system: Some(system),
            volume: Some(volume),
        } if namespace.is_none() => {
            let list: api::VolumeFileList = client
                .get(&format!(
                    "/api/v1/systems/{}/volumes/{}/files",
                    encode_path(&system),
                    encode_path(&volume)
                ))
                .await?;
            cli.show(&list, |list| {
                for f in &list.files {
                    let kind = if f.is_dir { "/" } else { "" };
                    println!("{:>10}  {}  {}{kind}", f.size, f.modified, f.path);
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        FilesCommand::Ls { namespace, .. } => {
            let namespace =
                namespace.context("give a namespace, or --onboard --system S --volume V")?;
            let list: api::FileList = client
                .get(&format!(
                    "/api/v1/namespaces/{}/files",
                    encode_path(&namespace)
                ))
                .await?;
            cli.show(&list, |list| {
                for f in &list.files {
                    println!(
                        "{:>10}  v{:<3} {}  {}",
                        f.size, f.version, f.created_at, f.path
                    );
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        FilesCommand::Rm {
            remote,
            mut more,
            onboard,
        } if onboard.onboard => {
            more.insert(0, remote);
            onboard_files::run(cli, &client, onboard, Change::Delete(more)).await
        }
        FilesCommand::Mv {
            remote,
            to,
            onboard,
        } if onboard.onboard => {
            let change = Change::Move { from: remote, to };
            onboard_files::run(cli, &client, onboard, change).await
        }
        FilesCommand::Rm { remote, .. } => {
            let (ns, path) = split_remote(&remote)?;
            let removed: api::Removed = client
                .json(client.request(
                    Method::DELETE,
                    &format!(
                        "/api/v1/namespaces/{}/files{}",
                        encode_path(ns),
                        encode_path(&path)
                    ),
                ))
                .await?;
            cli.show(&removed, |r| {
                for p in &r.paths {
                    println!("removed {ns}:{p}");
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        FilesCommand::Mv { remote, to, .. } => {
            let (ns, from) = split_remote(&remote)?;
            let moved: api::Moved = client
                .json(
                    client
                        .request(
                            Method::POST,
                            &format!("/api/v1/namespaces/{}/move", encode_path(ns)),
                        )
                        .json(&api::MoveFiles { from, to }),
                )
                .await?;
            cli.show(&moved, |m| {
                for p in &m.moved {
                    println!("{ns}:{} → {ns}:{}", p.from, p.to);
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `NS:/path` → the namespace and the absolute path.
fn split_remote(remote: &str) -> anyhow::Result<(&str, String)> {
    let (ns, path) = remote
        .split_once(':')
        .filter(|(ns, _)| !ns.is_empty())
        .with_context(|| format!("{remote:?}: expected NS:/path, e.g. demo:/out/result.txt"))?;
    Ok((ns, format!("/{}", path.trim_matches('/'))))
}

/// Packs `dir` into a tar (refusing symlinks, which the ground would refuse too) and uploads it.
async fn push(
    cli: &Cli,
    client: &Client,
    dir: &Path,
    namespace: &str,
    to: &str,
) -> anyhow::Result<ExitCode> {
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
    cli.show(&result?, |up| {
        for f in &up.files {
            println!("{}  v{}  {} bytes", f.path, f.version, f.size);
        }
    })?;
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
async fn pull(cli: &Cli, client: &Client, remote: &str, local: &Path) -> anyhow::Result<ExitCode> {
    let (ns, path) = split_remote(remote)?;
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
        let pulled = PulledList {
            files: vec![Pulled {
                remote: format!("{ns}:{path}"),
                local: dest.display().to_string(),
                bytes: n,
            }],
        };
        cli.show(&pulled, print_pulled)?;
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
    let mut pulled = PulledList { files: Vec::new() };
    for f in under {
        let rel = &f[prefix.len()..];
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            bail!("the server listed an unsafe path {f:?}");
        }
        let dest = local.join(rel);
        let n = client.download(&url(f), &dest, &bar).await?;
        let one = Pulled {
            remote: format!("{ns}:{f}"),
            local: dest.display().to_string(),
            bytes: n,
        };
        if !cli.document() {
            bar.suspend(|| print_pulled(&PulledList { files: vec![one] }));
        } else {
            pulled.files.push(one);
        }
    }
    bar.finish_and_clear();
    if cli.document() {
        cli.show(&pulled, print_pulled)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_pulled(p: &PulledList) {
    for f in &p.files {
        println!("{} → {} ({} bytes)", f.remote, f.local, f.bytes);
    }
}

pub(crate) async fn op(cli: &Cli, a: OpArgs) -> anyhow::Result<ExitCode> {
    let client = cli.client()?;
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
                    cli.show(&applied, |applied| {
                        println!(
                            "{}/{} revision {}",
                            applied.namespace, applied.id, applied.revision
                        );
                        // Saved; what preflight finds would block a start, so say it now.
                        print_preflight(&applied.preflight);
                        print_triggers(&applied.triggers);
                    })?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => match e.downcast::<ApiError>() {
                    Ok(err) if err.status.as_u16() == 400 => {
                        print_diagnostics(&file, err.diagnostics());
                        eprintln!("{}: {}", file.display(), err);
                        err.print_body(cli.output)?;
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
            cli.show(&v, |v| {
                print_diagnostics(&file, &v.diagnostics);
                print_preflight(&v.preflight);
                print_triggers(&v.triggers);
                if v.valid {
                    println!("{}: valid", file.display());
                }
            })?;
            Ok(if v.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
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
            cli.show(&op, |op| {
                println!(
                    "{ns}/{id} revision {} (updated {})",
                    op.revision, op.updated_at
                );
                println!("{}", op.yaml);
                for e in &op.executions {
                    println!("  {}  {}  {}", e.id, e.state, e.created_at);
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        OpCommand::Diff {
            operation,
            from,
            to,
        } => {
            let (ns, id) = split_op(&operation)?;
            let revision = |r: u64| {
                format!(
                    "/api/v1/operations/{}/{}/revisions/{r}",
                    encode_path(ns),
                    encode_path(id)
                )
            };
            let to = match to {
                Some(t) => t,
                None => {
                    client
                        .get::<api::OperationDetail>(&format!(
                            "/api/v1/operations/{}/{}",
                            encode_path(ns),
                            encode_path(id)
                        ))
                        .await?
                        .revision
                }
            };
            let old: api::OperationRevision = client.get(&revision(from)).await?;
            let new: api::OperationRevision = client.get(&revision(to)).await?;
            let diff = similar::TextDiff::from_lines(&old.yaml, &new.yaml);
            let text = diff
                .unified_diff()
                .context_radius(3)
                .header(
                    &format!("{ns}/{id} revision {from}"),
                    &format!("{ns}/{id} revision {to}"),
                )
                .to_string();
            let shown = OperationDiff {
                from: old,
                to: new,
                diff: text,
            };
            cli.show(&shown, |d| print!("{}", d.diff))?;
            Ok(ExitCode::SUCCESS)
        }
        OpCommand::List { namespace } => {
            let list: api::OperationList = client
                .get(&list_path("/api/v1/operations", namespace.as_deref()))
                .await?;
            cli.show(&list, |list| {
                println!(
                    "{:<32} {:>8}  {:<26} UPDATED",
                    "OPERATION", "REVISION", "CREATED"
                );
                for o in &list.operations {
                    println!(
                        "{:<32} {:>8}  {:<26} {}",
                        format!("{}/{}", o.namespace, o.id),
                        o.revision,
                        o.created_at,
                        o.updated_at
                    );
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A list route, of one namespace when asked.
pub(crate) fn list_path(route: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{route}?namespace={}", encode_path(ns)),
        None => route.to_string(),
    }
}

/// Preflight findings like a compiler's: `file:line:col: severity[code] [task t]: message`.
pub(crate) fn print_preflight(findings: &[api::PreflightFinding]) {
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

/// When each trigger would fire, as the ground predicts it: one line per task, then its
/// first firing windows.
pub(crate) fn print_triggers(predictions: &[api::TriggerPrediction]) {
    for p in predictions {
        println!(
            "trigger [task {}] on {}: {} (from {} until {})",
            p.task, p.system, p.condition, p.from, p.until
        );
        if !p.decided_onboard.is_empty() {
            println!(
                "  decided onboard, not predicted: {} (the times below are when the rest holds; it fires at the first instant in them at which these pass too)",
                p.decided_onboard.join(", ")
            );
        }
        if let Some(e) = &p.error {
            println!("  cannot predict: {e}");
        } else if p.firings.is_empty() {
            println!("  never holds before the deadline: the task would fail");
        }
        for (i, f) in p.firings.iter().enumerate() {
            let what = if i == 0 { "fires" } else { "then" };
            println!("  {what:>5} {}  (holds until {})", f.start, f.end);
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

pub(crate) fn split_op(s: &str) -> anyhow::Result<(&str, &str)> {
    s.split_once('/')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .with_context(|| format!("{s:?}: expected NAMESPACE/OPERATION"))
}
