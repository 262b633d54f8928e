//! Replays every committed fuzz input through its target on stable, in the
//! normal test run: `fuzz/corpus/<target>/` (what the fuzzer kept, after
//! minimising) and `fuzz/regressions/<target>/` (inputs that once crashed
//! a target, kept after their fix), plus each target's seeds.
//! A failure names the file; `cargo test -p doozer-fuzz --test replay`
//! runs just this (docs/fuzzing.md).

use std::path::{Path, PathBuf};

/// The repository's `fuzz/` directory.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted (none if it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Runs `target` over every file of `dir`; returns how many ran.
fn replay_dir(name: &str, target: doozer_fuzz::Target, dir: &Path) -> usize {
    let inputs = files(dir);
    for path in &inputs {
        let data = match std::fs::read(path) {
            Ok(data) => data,
            // A fuzzer running on the corpus replaces inputs as it goes.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        let run = std::panic::catch_unwind(|| target(&data));
        assert!(run.is_ok(), "{name}: {} fails", path.display());
    }
    inputs.len()
}

#[test]
fn every_corpus_and_regression_input_passes() {
    let fuzz = fuzz_dir();
    let mut total = 0;
    for (name, target) in doozer_fuzz::TARGETS {
        let start = std::time::Instant::now();
        let corpus = replay_dir(name, *target, &fuzz.join("corpus").join(name));
        let regressions = replay_dir(name, *target, &fuzz.join("regressions").join(name));
        let took = start.elapsed();
        eprintln!("{name}: {corpus} corpus inputs, {regressions} regressions in {took:.1?}");
        total += corpus + regressions;
    }
    assert!(total > 0, "no inputs under {}", fuzz.display());
}

#[test]
fn seeds_pass() {
    for (name, seeds) in doozer_fuzz::SEEDS {
        let target = doozer_fuzz::TARGETS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| panic!("seeds for {name}, which is no target"));
        for (n, seed) in seeds().iter().enumerate() {
            let run = std::panic::catch_unwind(|| target(seed));
            assert!(run.is_ok(), "{name}: seed {n} fails");
        }
    }
}

#[test]
fn every_target_has_a_fuzz_binary() {
    for (name, _) in doozer_fuzz::TARGETS {
        let bin = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text =
            std::fs::read_to_string(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        assert!(
            text.contains(&format!("doozer_fuzz::{name}::run(data)")),
            "{} does not call doozer_fuzz::{name}::run",
            bin.display()
        );
    }
}
