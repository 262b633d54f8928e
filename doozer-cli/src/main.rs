//! The `doozer` command: a shell interface to a doozer cluster (docs/reference.md#the-doozer-command),
//! plus `doozer bench`, a load generator.
//!
//! Exit status: 0 success, 1 rev mismatch, 2 any other error (one line on
//! stderr), 127 usage error. A closed stdout (`doozer watch | head -1`)
//! ends the command quietly with status 0.

mod backup;
mod bench;
mod commands;
mod failure;
mod flags;
mod globals;
mod help;
mod hist;
mod status;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Paths, revs and URIs are all text: an argument that is not UTF-8 is
    // a usage error, not a panic.
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(a) => args.push(a),
            Err(a) => {
                // Shown lossily, and without any secret it may hold.
                let shown = doozer::uri::redact(&a.to_string_lossy());
                eprintln!("doozer: argument {shown:?} is not valid UTF-8");
                eprintln!("Run 'doozer -h' for usage.");
                return ExitCode::from(127);
            }
        }
    }
    ExitCode::from(commands::run(&args))
}
