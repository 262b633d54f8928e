//! The `doozer` command: a shell interface to a doozer cluster (SPEC §5),
//! plus `doozer bench`, a load generator.
//!
//! Exit status: 0 success, 1 rev mismatch, 2 any other error (one line on
//! stderr), 127 usage error. A closed stdout (`doozer watch | head -1`)
//! ends the command quietly with status 0.

mod bench;
mod commands;
mod flags;
mod help;
mod hist;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(commands::run(&args))
}
