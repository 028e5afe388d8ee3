//! The `orbitdock` binary: argument parsing and wiring, nothing else.
//!
//! Server roles (`ground`, `link`, `flight`, `demo`) call into their crates; client verbs
//! (`login`, `files`, `op`, `exec`, and the operators' `approve`, `user`, `quota`) talk to the ground's HTTP API through [`client`], reading its
//! answers as the types of the `api` crate. `main` only maps the outcome to an exit status
//! ([`args::EXIT_STATUS`]): 0 success, 1 the thing asked failed (an error, invalid input, a
//! failed execution), 2 a usage error (clap exits with it before anything runs), 3 not logged
//! in, 4 the server's TLS certificate did not verify.

mod admin;
mod admin_args;
mod args;
mod bench_cfdp;
mod bench_delta;
mod bench_flight;
mod bench_ground;
mod bench_home;
mod client;
mod delta;
mod demo;
mod exec;
mod files_args;
mod lint;
mod onboard_files;
mod output;
mod passes;
mod plan;
mod progress;
mod roles;
mod session;
mod systems;
mod verbs;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Args::parse();
    if let args::Command::Files(f) = &args.command
        && let Some((verb, message)) = f.command.usage_error()
    {
        use clap::CommandFactory;
        let mut cmd = args::Args::command();
        cmd.build();
        let files = cmd.find_subcommand_mut("files").expect("the files verb");
        let verb = files.find_subcommand_mut(verb).expect("a files verb");
        verb.error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
    init_tracing(&args);
    // Before any HTTP client is built: reqwest takes the process's rustls provider.
    client::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orbitdock: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let output = args.output;
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("orbitdock: error: {e:#}");
            let api = e.downcast_ref::<client::ApiError>();
            if let Some(err) = api {
                let _ = err.print_body(output);
            }
            // Not logged in, or the session refused: log in again.
            let relogin = e.downcast_ref::<session::NotLoggedIn>().is_some()
                || api.is_some_and(|a| a.status == reqwest::StatusCode::UNAUTHORIZED);
            if relogin {
                ExitCode::from(3)
            } else if e.is::<client::TlsRefused>() {
                ExitCode::from(4)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(args: args::Args) -> anyhow::Result<ExitCode> {
    use args::Command;
    let cli = verbs::Cli {
        output: args.output,
        cacert: args.cacert(),
        context: args.context,
    };
    match args.command {
        Command::Demo(a) => demo::run(a, cli.cacert.clone()).await,
        Command::Ground(a) => roles::ground(a).await,
        Command::Link(a) => roles::link(a).await,
        Command::Flight(a) => roles::flight(a).await,
        Command::Login(a) => verbs::login(&cli, a).await,
        Command::Context(a) => verbs::context(&cli, a),
        Command::Files(a) => verbs::files(&cli, a).await,
        Command::Op(a) => verbs::op(&cli, a).await,
        Command::Exec(a) => exec::exec(&cli, a).await,
        Command::Approve(a) => admin::approve(&cli, a).await,
        Command::User(a) => admin::user(&cli, a).await,
        Command::Quota(a) => admin::quota(&cli, a).await,
        Command::Elements(a) => admin::elements(&cli, a).await,
        Command::Keygen { path, plan } => roles::keygen(&path, plan),
        Command::Bench(a) => roles::bench(a).await,
        Command::Lint(mut a) => {
            a.json |= cli.output == args::Output::Json && !a.sarif;
            let yaml = cli.output == args::Output::Yaml && !a.json && !a.sarif;
            lint::run(a, yaml)
        }
        Command::Delta(a) => delta::run(&cli, a),
        Command::Passes(a) => passes::passes(&cli, a).await,
        Command::Plan(a) => plan::plan(&cli, a).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = args::Args::command();
            clap_complete::generate(shell, &mut cmd, "orbitdock", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
            clap_mangen::generate_to(args::Args::command(), &dir)
                .map_err(|e| anyhow::anyhow!("writing man pages into {}: {e}", dir.display()))?;
            println!("man pages written into {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_tracing(args: &args::Args) {
    // The platform verifier logs each certificate it refuses; the CLI says so itself.
    let loaded = matches!(
        &args.command,
        args::Command::Bench(args::BenchArgs {
            what: args::BenchWhat::Ground { .. }
        })
    );
    let default = if args.command.is_server() {
        "info,rustls_platform_verifier=off"
    } else if loaded {
        // The grounds under load warn of the slow statements and waits the load provokes; the
        // table says it (ORBITDOCK_LOG=warn shows them).
        "error,rustls_platform_verifier=off"
    } else {
        "warn,rustls_platform_verifier=off"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORBITDOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
