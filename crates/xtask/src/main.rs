//! Project automation, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! `cargo xtask tidy` runs the tidy checks of `tidy.rs` and prints what breaks each rule; the
//! same checks run as tests under `cargo test`, so CI enforces them. This crate is never part of
//! the `orbitdock` binary.

mod tidy;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("tidy") => run_tidy(),
        _ => {
            eprintln!("usage: cargo xtask tidy");
            ExitCode::from(2)
        }
    }
}

fn run_tidy() -> ExitCode {
    let root = tidy::workspace_root();
    let mut failed = false;
    for (name, check) in tidy::CHECKS {
        let found = check(&root);
        if found.is_empty() {
            println!("ok    {name}");
        } else {
            failed = true;
            println!("FAIL  {name}");
            for f in found {
                println!("      {f}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
