//! With `-d DIR`: what a node keeps on disk (docs/storage.md).

mod record;

pub use record::{Meta, Record};
