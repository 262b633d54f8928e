//! What the log and the meta file hold, as plain data, and their
//! encoding (docs/storage.md#log-records). No I/O here: the replica
//! produces [`Record`]s, the storage module writes them.
//!
//! Reference `.proto` text of the payloads (record type bytes in
//! `doozer_proto::record::kind`):
//!
//! ```text
//! message Meta          { uint32 version = 1; string id = 2; string cluster = 3; }   // META
//! message SegmentHeader { uint32 version = 1; uint64 index = 2; }                    // SEGMENT_HEADER
//! message Promise       { uint64 seqn = 1; uint64 round = 2; uint32 cal = 3; }       // PROMISE
//! message Vote          { uint64 seqn = 1; uint64 round = 2; uint32 cal = 3;
//!                         bytes value = 4; }                                         // VOTE
//! message Applied       { uint64 seqn = 1; bytes value = 2; }                        // APPLIED
//! message Replayed      { uint64 seqn = 1; bytes value = 2; }                        // REPLAYED
//! message Floor         { uint64 seqn = 1; }                                         // FLOOR
//! message Checkpoint    { uint64 seqn = 1; }                                         // CHECKPOINT
//! ```

use bytes::Bytes;
use doozer_proto::record::{encode_message, kind, RecordError};
use prost::Message;

/// The version of the data directory's format (meta file and log
/// segments; snapshots carry the image format's own version) that this
/// build writes. It changes when an older doozerd would misread the new
/// format. Version 2: a segment is preallocated, so zeros follow its last
/// record (version 1 read them as a torn tail, or as damage in any
/// segment but the last).
pub const STORAGE_FORMAT_VERSION: u32 = 2;

/// The oldest data directory format version this build reads: a version
/// 1 directory is taken up as it is, and its new segments are version 2.
pub const STORAGE_FORMAT_OLDEST: u32 = 1;

/// Whether this build reads data directory format `version`.
pub(super) fn storage_format_readable(version: u32) -> bool {
    (STORAGE_FORMAT_OLDEST..=STORAGE_FORMAT_VERSION).contains(&version)
}

/// One durable fact of the log.
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
        /// The decided value.
        value: Bytes,
    },
    /// This node applied seqn's changes as its follow stream carried
    /// them (a slave): the same changes, but not the bytes consensus
    /// decided, so never handed to consensus as that seqn's value. Its
    /// own type byte keeps the two apart on disk too.
    Replayed {
        /// The instance.
        seqn: u64,
        /// The changes, encoded as a consensus value.
        value: Bytes,
    },
    /// This node's own seqns below `seqn` may have been nominated (a
    /// proposer's floor).
    Floor {
        /// The floor.
        seqn: u64,
    },
    /// The store was replaced by the snapshot at `seqn` (a copy from
    /// another node): Applied and Replayed records before this record in
    /// the log are void.
    Checkpoint {
        /// The seqn of the snapshot that replaced the store.
        seqn: u64,
    },
}

impl Record {
    /// The seqn the record is about.
    pub fn seqn(&self) -> u64 {
        match self {
            Record::Promise { seqn, .. }
            | Record::Vote { seqn, .. }
            | Record::Applied { seqn, .. }
            | Record::Replayed { seqn, .. }
            | Record::Floor { seqn }
            | Record::Checkpoint { seqn } => *seqn,
        }
    }

    /// Appends the record, framed, to `out`.
    pub(super) fn encode(&self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        match self {
            Record::Promise { seqn, round, cal } => encode_message(
                out,
                kind::PROMISE,
                &PromiseMsg {
                    seqn: *seqn,
                    round: *round,
                    cal: *cal,
                },
            ),
            Record::Vote {
                seqn,
                round,
                cal,
                value,
            } => encode_message(
                out,
                kind::VOTE,
                &VoteMsg {
                    seqn: *seqn,
                    round: *round,
                    cal: *cal,
                    value: value.clone(),
                },
            ),
            Record::Applied { seqn, value } => encode_message(
                out,
                kind::APPLIED,
                &AppliedMsg {
                    seqn: *seqn,
                    value: value.clone(),
                },
            ),
            Record::Replayed { seqn, value } => encode_message(
                out,
                kind::REPLAYED,
                &AppliedMsg {
                    seqn: *seqn,
                    value: value.clone(),
                },
            ),
            Record::Floor { seqn } => encode_message(out, kind::FLOOR, &SeqnMsg { seqn: *seqn }),
            Record::Checkpoint { seqn } => {
                encode_message(out, kind::CHECKPOINT, &SeqnMsg { seqn: *seqn })
            }
        }
    }

    /// The record a log record of type `kind` holds; `Ok(None)` if `kind`
    /// is not a log record's type. Values are slices of `payload`.
    pub(super) fn decode(kind: u8, payload: Bytes) -> Result<Option<Record>, prost::DecodeError> {
        Ok(Some(match kind {
            kind::PROMISE => {
                let m = PromiseMsg::decode(payload)?;
                Record::Promise {
                    seqn: m.seqn,
                    round: m.round,
                    cal: m.cal,
                }
            }
            kind::VOTE => {
                let m = VoteMsg::decode(payload)?;
                Record::Vote {
                    seqn: m.seqn,
                    round: m.round,
                    cal: m.cal,
                    value: m.value,
                }
            }
            kind::APPLIED => {
                let m = AppliedMsg::decode(payload)?;
                Record::Applied {
                    seqn: m.seqn,
                    value: m.value,
                }
            }
            kind::REPLAYED => {
                let m = AppliedMsg::decode(payload)?;
                Record::Replayed {
                    seqn: m.seqn,
                    value: m.value,
                }
            }
            kind::FLOOR => Record::Floor {
                seqn: SeqnMsg::decode(payload)?.seqn,
            },
            kind::CHECKPOINT => Record::Checkpoint {
                seqn: SeqnMsg::decode(payload)?.seqn,
            },
            _ => return Ok(None),
        }))
    }
}

/// Who this node is: written once when the directory is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The node's id.
    pub id: String,
    /// The name of the cluster the directory belongs to.
    pub cluster: String,
}

impl Meta {
    /// The meta file's bytes: one record.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let msg = MetaMsg {
            version: STORAGE_FORMAT_VERSION,
            id: self.id.clone(),
            cluster: self.cluster.clone(),
        };
        // Ids and names are short: far below the record limit.
        let _ = encode_message(&mut out, kind::META, &msg);
        out
    }

    /// The meta file's record payload, and the format version it names.
    pub(super) fn decode(payload: Bytes) -> Result<(Meta, u32), prost::DecodeError> {
        let m = MetaMsg::decode(payload)?;
        Ok((
            Meta {
                id: m.id,
                cluster: m.cluster,
            },
            m.version,
        ))
    }
}

/// A log segment's first record: the format version and the segment's
/// number (so a segment copied or renamed into the wrong place is found).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SegmentHeader {
    /// The format version the segment is written in.
    pub version: u32,
    /// The segment's number (its file name).
    pub index: u64,
}

impl SegmentHeader {
    /// Appends the header record of segment `index` to `out`.
    pub(super) fn encode(index: u64, out: &mut Vec<u8>) {
        let msg = SegmentHeaderMsg {
            version: STORAGE_FORMAT_VERSION,
            index,
        };
        // A few bytes: far below the record limit.
        let _ = encode_message(out, kind::SEGMENT_HEADER, &msg);
    }

    /// The header a header record's payload holds.
    pub(super) fn decode(payload: Bytes) -> Result<SegmentHeader, prost::DecodeError> {
        let m = SegmentHeaderMsg::decode(payload)?;
        Ok(SegmentHeader {
            version: m.version,
            index: m.index,
        })
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct MetaMsg {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(string, tag = "2")]
    id: String,
    #[prost(string, tag = "3")]
    cluster: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SegmentHeaderMsg {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(uint64, tag = "2")]
    index: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PromiseMsg {
    #[prost(uint64, tag = "1")]
    seqn: u64,
    #[prost(uint64, tag = "2")]
    round: u64,
    #[prost(uint32, tag = "3")]
    cal: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct VoteMsg {
    #[prost(uint64, tag = "1")]
    seqn: u64,
    #[prost(uint64, tag = "2")]
    round: u64,
    #[prost(uint32, tag = "3")]
    cal: u32,
    #[prost(bytes = "bytes", tag = "4")]
    value: Bytes,
}

/// The payload of APPLIED and REPLAYED (one shape, told apart by the
/// record's type byte).
#[derive(Clone, PartialEq, prost::Message)]
struct AppliedMsg {
    #[prost(uint64, tag = "1")]
    seqn: u64,
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
}

/// The payload of FLOOR and CHECKPOINT.
#[derive(Clone, PartialEq, prost::Message)]
struct SeqnMsg {
    #[prost(uint64, tag = "1")]
    seqn: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use doozer_proto::record::Records;

    fn all() -> Vec<Record> {
        vec![
            Record::Promise {
                seqn: 7,
                round: 2,
                cal: 1,
            },
            Record::Vote {
                seqn: 7,
                round: 2,
                cal: 1,
                value: Bytes::from_static(b"v"),
            },
            Record::Applied {
                seqn: 7,
                value: Bytes::from_static(b"v"),
            },
            Record::Floor { seqn: 9 },
            Record::Checkpoint { seqn: 300 },
            Record::Replayed {
                seqn: 8,
                value: Bytes::from_static(b"w"),
            },
        ]
    }

    #[test]
    fn every_record_round_trips() {
        let mut out = Vec::new();
        for r in all() {
            r.encode(&mut out).unwrap();
        }
        let data = Bytes::from(out);
        let got: Vec<Record> = Records::new(&data)
            .map(|r| {
                let r = r.unwrap();
                let payload = data.slice_ref(r.payload);
                Record::decode(r.kind, payload).unwrap().unwrap()
            })
            .collect();
        assert_eq!(got, all());
    }

    #[test]
    fn records_match_known_bytes() {
        // Payloads by hand (the framing is tested in doozer-proto).
        let mut out = Vec::new();
        all()[1].encode(&mut out).unwrap();
        assert_eq!(out[8], kind::VOTE);
        assert_eq!(&out[9..], &[0x08, 7, 0x10, 2, 0x18, 1, 0x22, 1, b'v']);
        out.clear();
        all()[4].encode(&mut out).unwrap();
        assert_eq!(out[8], kind::CHECKPOINT);
        assert_eq!(&out[9..], &[0x08, 0xac, 0x02]);
        out.clear();
        all()[5].encode(&mut out).unwrap();
        assert_eq!(out[8], kind::REPLAYED);
        assert_eq!(&out[9..], &[0x08, 8, 0x12, 1, b'w']);
        // Applied of the same seqn and value: the same payload, another
        // type byte.
        let mut applied = Vec::new();
        Record::Applied {
            seqn: 8,
            value: Bytes::from_static(b"w"),
        }
        .encode(&mut applied)
        .unwrap();
        assert_eq!(applied[8], kind::APPLIED);
        assert_eq!(applied[9..], out[9..]);
        let meta = Meta {
            id: "n".into(),
            cluster: "c".into(),
        }
        .encode();
        assert_eq!(meta[8], kind::META);
        assert_eq!(&meta[9..], &[0x08, 2, 0x12, 1, b'n', 0x1a, 1, b'c']);
    }

    #[test]
    fn other_types_are_not_log_records() {
        assert_eq!(
            Record::decode(kind::IMAGE_FILE, Bytes::new()).unwrap(),
            None
        );
        assert!(Record::decode(kind::VOTE, Bytes::from_static(&[0xff])).is_err());
    }
}
