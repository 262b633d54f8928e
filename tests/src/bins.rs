//! Where the workspace binaries the tests start are.

use std::path::PathBuf;

/// The directory holding the workspace binaries: `$DOOZER_BIN_DIR` if set
/// and not empty (e.g. `scripts/attack` measuring the binaries of another
/// commit), else
/// the parent of the `deps/` directory the test executable runs from.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOOZER_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("test executable has a parent")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn find_bin(name: &str) -> PathBuf {
    let path = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "binary `{name}` not found at {}: run `cargo build --workspace` first",
            path.display()
        );
    }
    path
}

/// Path of the `doozerd` binary.
pub fn doozerd_bin() -> PathBuf {
    find_bin("doozerd")
}

/// Path of the `doozer` binary.
pub fn doozer_bin() -> PathBuf {
    find_bin("doozer")
}
