//! `doozerd`: flags → config, start-up, exit codes.
//!
//! Exit status: 0 for `-v`/`-h`, 2 for a bad command line, 1 when the node
//! cannot start (address in use, ...). Every failure is one line on stderr.

use std::process::ExitCode;

use doozerd::cluster::NodeInfo;
use doozerd::config::{self, Command};
use doozerd::node::{self, Node};

fn main() -> ExitCode {
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(a) => args.push(a),
            Err(a) => {
                // Shown lossily, and without any secret it may hold.
                let shown = doozer::uri::redact(&a.to_string_lossy());
                eprintln!("doozerd: argument {shown:?} is not valid UTF-8");
                return ExitCode::from(2);
            }
        }
    }
    let config = match config::parse(&args, &|k| std::env::var_os(k)) {
        Ok(Command::Run(c)) => *c,
        Ok(Command::Version) => {
            println!("doozerd {}", doozerd::VERSION);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("doozerd: {e}");
            return ExitCode::from(2);
        }
    };
    // Quiet by default: start, addresses and errors. RUST_LOG=debug for
    // connection-level detail.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let id = match node::new_node_id() {
        Ok(id) => id,
        Err(e) => {
            eprintln!("doozerd: cannot make a node id: {e}");
            return ExitCode::from(1);
        }
    };
    let info = NodeInfo {
        id,
        addr: config.listen.to_string(),
        hostname: node::hostname(),
        version: doozerd::VERSION.to_string(),
    };
    let mut node = match Node::start(&config, info) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("doozerd: {e}");
            return ExitCode::from(1);
        }
    };
    log::info!(
        "doozerd {} node {} of cluster {:?}; clients and peers on {}",
        doozerd::VERSION,
        node.id(),
        config.cluster_name,
        config.listen
    );
    match config.web {
        Some(w) => log::info!("web viewer on http://{w}/"),
        None if config.web_off_for_secret => {
            log::info!("web viewer off: a secret is set and the viewer has no authentication")
        }
        None => {}
    }
    match node.run() {
        Ok(node::Exit::Clean) => ExitCode::SUCCESS,
        // As a shell reports a process ended by that signal.
        Ok(node::Exit::Signal(sig)) => ExitCode::from((128 + sig).clamp(0, 255) as u8),
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}
