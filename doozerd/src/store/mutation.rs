//! Mutations: what consensus agrees on. CONTRACT.

use bytes::Bytes;

use super::Rev;

/// A change to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Write `body` to `path` if `rev` ≥ the file's rev (or `rev` = -1).
    Set {
        /// Target path.
        path: String,
        /// Condition.
        rev: Rev,
        /// New body.
        body: Bytes,
    },
    /// Delete `path` if `rev` ≥ the file's rev (or `rev` = -1).
    Del {
        /// Target path.
        path: String,
        /// Condition.
        rev: Rev,
    },
    /// Change nothing.
    Nop,
}

/// A byte string that is not an encoded mutation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed mutation: {0}")]
pub struct MutationError(pub String);

impl Mutation {
    /// Encodes as the Go original did: `REV:PATH=BODY`, `REV:PATH`, `nop:`.
    pub fn encode(&self) -> Bytes {
        todo!()
    }

    /// Decodes [`Mutation::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Mutation, MutationError> {
        let _ = bytes;
        todo!()
    }
}
