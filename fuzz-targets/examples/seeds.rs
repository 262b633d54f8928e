//! Writes the seed inputs of every target into `DIR/<target>/seed-<n>`
//! (the first corpus of a new target; docs/fuzzing.md):
//! `cargo run -p doozer-fuzz --example seeds -- fuzz/corpus`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: seeds DIR");
        std::process::exit(2);
    };
    for (name, seeds) in doozer_fuzz::SEEDS {
        let target = dir.join(name);
        std::fs::create_dir_all(&target)?;
        for (n, seed) in seeds().into_iter().enumerate() {
            std::fs::write(target.join(format!("seed-{n}")), seed)?;
        }
    }
    Ok(())
}
