//! The `orbitdock` binary: argument parsing and wiring, nothing else.
//!
//! Server roles (`ground`, `link`, `flight`, `demo`) call into their crates; client verbs
//! (`login`, `files`, `op`, `exec`) talk to the ground's HTTP API through [`client`], reading its
//! answers as the types of the `api` crate. `main` only maps the outcome to an exit status
//! ([`args::EXIT_STATUS`]): 0 success, 1 the thing asked failed (an error, invalid input, a
//! failed execution), 2 a usage error (clap exits with it before anything runs).

mod args;
mod bench_delta;
mod client;
mod delta;
mod demo;
mod lint;
mod progress;
mod roles;
mod session;
mod systems;
mod verbs;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Args::parse();
    init_tracing(&args);
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
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("orbitdock: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: args::Args) -> anyhow::Result<ExitCode> {
    use args::Command;
    match args.command {
        Command::Demo(a) => demo::run(a).await,
        Command::Ground(a) => roles::ground(a).await,
        Command::Link(a) => roles::link(a).await,
        Command::Flight(a) => roles::flight(a).await,
        Command::Login(a) => verbs::login(a).await,
        Command::Files(a) => verbs::files(a).await,
        Command::Op(a) => verbs::op(a).await,
        Command::Exec(a) => verbs::exec(a).await,
        Command::Keygen { path, plan } => roles::keygen(&path, plan),
        Command::Bench(a) => roles::bench(a),
        Command::Lint(a) => lint::run(a),
        Command::Delta(a) => delta::run(a),
        Command::Passes { system, hours } => verbs::passes(system, hours).await,
    }
}

fn init_tracing(args: &args::Args) {
    let default = if args.command.is_server() {
        "info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORBITDOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
