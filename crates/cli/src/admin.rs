//! The operators' verbs: `approve` (or reject) an execution awaiting approval, `user`, `quota`
//! and `elements`. Each prints the API's own answer with `-o json`, like every client verb.

use std::process::ExitCode;

use anyhow::Context;
use reqwest::Method;

use crate::args::{
    ApproveArgs, ElementsArgs, ElementsCommand, Limit, QuotaArgs, QuotaCommand, UserArgs,
    UserCommand,
};
use crate::client::encode_path;
use crate::exec::print_execution;
use crate::verbs::Cli;

/// `orbitdock approve ID [--reject --reason R]`.
pub(crate) async fn approve(cli: &Cli, a: ApproveArgs) -> anyhow::Result<ExitCode> {
    let client = cli.client()?;
    let base = format!("/api/v1/executions/{}", encode_path(&a.id));
    let e: api::Execution = match (a.reject, a.reason) {
        (true, Some(reason)) => {
            client
                .json(
                    client
                        .request(Method::POST, &format!("{base}/reject"))
                        .json(&api::Reject { reason }),
                )
                .await?
        }
        _ => {
            client
                .json(client.request(Method::POST, &format!("{base}/approve")))
                .await?
        }
    };
    cli.show(&e, print_execution)?;
    Ok(ExitCode::SUCCESS)
}

/// `orbitdock elements send SYSTEM FILE|-` and `orbitdock elements show SYSTEM`.
pub(crate) async fn elements(cli: &Cli, a: ElementsArgs) -> anyhow::Result<ExitCode> {
    let client = cli.client()?;
    match a.command {
        ElementsCommand::Send { system, file } => {
            let tle = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .context("cannot read the element set from standard input")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read the element set {}", file.display()))?
            };
            let path = format!("/api/v1/systems/{}/elements", encode_path(&system));
            let sent: api::SystemElements = client
                .json(
                    client
                        .request(Method::PUT, &path)
                        .json(&api::SendElements { tle }),
                )
                .await?;
            cli.show(&sent, print_elements)?;
        }
        ElementsCommand::Show { system } => {
            let s: api::System = client
                .get(&format!("/api/v1/systems/{}", encode_path(&system)))
                .await?;
            // With -o json: the system's `elements`, `null` when it has none.
            cli.show(&s.elements, |e| match e {
                Some(e) => print_elements(e),
                None => {
                    println!("system '{system}' has no element set (no orbit declared, none sent)")
                }
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_elements(e: &api::SystemElements) {
    if let Some(name) = &e.name {
        println!("{name}");
    }
    println!("{}\n{}", e.line1, e.line2);
    println!("satellite {}, epoch {}", e.catalog_number, e.epoch);
    match (&e.sent_at, &e.sent_by) {
        (Some(at), Some(by)) => println!("sent on its own by {by} at {at}"),
        _ => println!("from the systems file"),
    }
}

/// `orbitdock user list|add|disable|enable`.
pub(crate) async fn user(cli: &Cli, a: UserArgs) -> anyhow::Result<ExitCode> {
    let client = cli.client()?;
    match a.command {
        UserCommand::List => {
            let list: api::UserList = client.get("/api/v1/users").await?;
            cli.show(&list, |list| {
                println!("{:<24} {:<9} {:<25} DISABLED", "USER", "ROLE", "CREATED");
                for u in &list.users {
                    println!(
                        "{:<24} {:<9} {:<25} {}",
                        u.name,
                        u.role,
                        u.created_at,
                        u.disabled_at.as_deref().unwrap_or("-")
                    );
                }
            })?;
        }
        UserCommand::Add {
            name,
            operator,
            password,
            password_stdin,
        } => {
            let password = match (password_stdin, password) {
                (true, _) => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("cannot read the password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
                (false, Some(p)) => p,
                (false, None) => {
                    eprintln!(
                        "orbitdock user add: no password: set ORBITDOCK_NEW_PASSWORD, pipe it with --password-stdin, or give --password"
                    );
                    return Ok(ExitCode::from(2));
                }
            };
            let req = api::CreateUser {
                name,
                password,
                role: if operator {
                    api::Role::Operator
                } else {
                    api::Role::Tenant
                },
            };
            let u: api::User = client
                .json(client.request(Method::POST, "/api/v1/users").json(&req))
                .await?;
            cli.show(&u, |u| println!("user {} created ({})", u.name, u.role))?;
        }
        UserCommand::Disable { name } => {
            let u = set_enabled(&client, &name, "disable").await?;
            cli.show(&u, |u| {
                println!("user {} disabled: its sessions have ended", u.name)
            })?;
        }
        UserCommand::Enable { name } => {
            let u = set_enabled(&client, &name, "enable").await?;
            cli.show(&u, |u| println!("user {} enabled", u.name))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_enabled(
    client: &crate::client::Client,
    name: &str,
    what: &str,
) -> anyhow::Result<api::User> {
    client
        .json(client.request(
            Method::POST,
            &format!("/api/v1/users/{}/{what}", encode_path(name)),
        ))
        .await
}

/// `orbitdock quota show [TENANT]` and `quota set TENANT --volume-bytes …`.
pub(crate) async fn quota(cli: &Cli, a: QuotaArgs) -> anyhow::Result<ExitCode> {
    let client = cli.client()?;
    match a.command {
        QuotaCommand::Show { tenant: None } => {
            let list: api::QuotaList = client.get("/api/v1/quotas").await?;
            cli.show(&list, |list| {
                print_header();
                for q in &list.quotas {
                    print_quota(q);
                }
            })?;
        }
        QuotaCommand::Show { tenant: Some(t) } => {
            let q: api::Quota = client
                .get(&format!("/api/v1/quotas/{}", encode_path(&t)))
                .await?;
            cli.show(&q, |q| {
                print_header();
                print_quota(q);
            })?;
        }
        QuotaCommand::Set {
            tenant,
            volume_bytes,
            image_bytes,
            compute_seconds_per_day,
            downlink_bytes_per_day,
        } => {
            let path = format!("/api/v1/quotas/{}", encode_path(&tenant));
            // The API takes the whole quota: the limits not given stay as they are.
            let now: api::Quota = client.get(&path).await?;
            let pick = |given: Option<Limit>, was: Option<u64>| given.map_or(was, |l| l.0);
            let limits = api::Limits {
                volume_bytes: pick(volume_bytes, now.limits.volume_bytes),
                image_bytes: pick(image_bytes, now.limits.image_bytes),
                compute_seconds_per_day: pick(
                    compute_seconds_per_day,
                    now.limits.compute_seconds_per_day,
                ),
                downlink_bytes_per_day: pick(
                    downlink_bytes_per_day,
                    now.limits.downlink_bytes_per_day,
                ),
            };
            let q: api::Quota = client
                .json(client.request(Method::PUT, &path).json(&limits))
                .await?;
            cli.show(&q, |q| {
                print_header();
                print_quota(q);
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_header() {
    println!(
        "{:<24} {:>16} {:>16} {:>16} {:>16}  SET",
        "TENANT", "VOLUME BYTES", "IMAGE BYTES", "COMPUTE S/DAY", "DOWNLINK B/DAY"
    );
}

fn print_quota(q: &api::Quota) {
    let l = |v: Option<u64>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
    println!(
        "{:<24} {:>16} {:>16} {:>16} {:>16}  {}",
        q.tenant,
        l(q.limits.volume_bytes),
        l(q.limits.image_bytes),
        l(q.limits.compute_seconds_per_day),
        l(q.limits.downlink_bytes_per_day),
        match (&q.updated_by, &q.updated_at) {
            (Some(by), Some(at)) => format!("by {by} at {at}"),
            _ => "never".to_string(),
        }
    );
}
