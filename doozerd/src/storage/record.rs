//! What must be durable, as pure data: the replica produces these records
//! and the storage layer writes them.

use bytes::Bytes;

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An acceptor promised ballot (round, cal) for seqn.
    Promise {
        /// The instance.
        seqn: u64,
        /// The ballot's round.
        round: u64,
        /// The ballot's coordinator index.
        cal: u32,
    },
    /// An acceptor voted for value at ballot (round, cal) in seqn (implies
    /// the promise).
    Vote {
        /// The instance.
        seqn: u64,
        /// The ballot's round.
        round: u64,
        /// The ballot's coordinator index.
        cal: u32,
        /// The value voted for.
        value: Bytes,
    },
    /// This node applied seqn's decided value (an encoded consensus value).
    Applied {
        /// The instance.
        seqn: u64,
        /// The encoded value.
        value: Bytes,
    },
    /// This node applied seqn's changes as its follow stream carried
    /// them (a slave): the same changes, but not the bytes consensus
    /// decided, so never handed to consensus as that seqn's value.
    Replayed {
        /// The instance.
        seqn: u64,
        /// The changes, encoded as a consensus value.
        value: Bytes,
    },
    /// This node's own seqns below `seqn` may have been nominated (a
    /// proposer's floor).
    Floor {
        /// One past the highest own seqn this node may have used.
        seqn: u64,
    },
    /// The store was replaced by the snapshot at `seqn` (a copy from
    /// another node): Applied records before this record in the log are
    /// void.
    Checkpoint {
        /// The snapshot's seqn.
        seqn: u64,
    },
}

/// Who a data directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The node's id.
    pub id: String,
    /// The cluster's name.
    pub cluster: String,
}
