//! Paths and globs. CONTRACT: signatures below are what the server uses.

use super::StoreError;

/// Checks a path: `/` or `/name/name...`, names of `A-Z a-z 0-9 . -`.
pub fn validate_path(path: &str) -> Result<(), StoreError> {
    let _ = path;
    todo!()
}

/// A compiled glob: `?` one char within a name, `*` a run within a name,
/// `**` a run across names, anything else (path characters) itself.
#[derive(Debug, Clone)]
pub struct Glob {
    _todo: (),
}

impl Glob {
    /// Compiles a glob; other characters or a missing leading `/` are
    /// `BadPath`.
    pub fn parse(glob: &str) -> Result<Glob, StoreError> {
        let _ = glob;
        todo!()
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let _ = path;
        todo!()
    }

    /// The glob text.
    pub fn as_str(&self) -> &str {
        todo!()
    }
}
