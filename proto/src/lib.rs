//! Wire types and framing for the doozer client protocol.
//!
//! Map of the crate:
//! - [`Request`] / [`Response`]: the proto2 messages of the client protocol (docs/reference.md#messages), derived with
//!   `prost` (no `protoc` at build time; `doozer.proto` is kept as reference).
//! - [`Verb`] and [`ErrCode`]: the enums carried in those messages.
//! - [`peer`]: the messages CALs exchange to run multi-Paxos.
//! - [`ctl`]: the paths of the `/ctl` tree, built and parsed in one place.
//! - [`frame`]: the 4-byte big-endian length framing, with a size limit that
//!   is checked before anything is allocated.
//! - [`record`]: the checksummed records every file doozer writes is made
//!   of (docs/storage.md).
//! - [`image`]: images, a copy of the whole tree at one rev: the snapshots
//!   of a data directory and backups.
//!
//! Special revision values shared by the server, the client and the store
//! live in [`rev`].

pub mod ctl;
pub mod frame;
pub mod image;
pub mod peer;
pub mod record;

pub use frame::{encode_frame, FrameDecoder, FrameError, MAX_FRAME_LEN};

/// The largest body a SET may carry, in bytes (48 KiB;
/// docs/reference.md#limits). Every change travels to the other CALs in one
/// peer datagram with its path, so a node refuses a larger SET with `OTHER`
/// `value too large: ...` before proposing it, and the `doozer` command
/// stops reading its standard input one byte past it.
pub const MAX_BODY_LEN: usize = 48 << 10;

/// Special revision values on the wire (docs/reference.md#special-rev-values).
pub mod rev {
    /// A missing file (no such file); also "create only if absent" in a write.
    pub const MISSING: i64 = 0;
    /// A write that ignores the file's current revision.
    pub const CLOBBER: i64 = -1;
    /// The revision reported for a directory.
    pub const DIR: i64 = -2;
}

/// Event flags carried in WAIT and WALK responses.
pub mod flags {
    /// The event set a file.
    pub const SET: i32 = 4;
    /// The event deleted a file.
    pub const DEL: i32 = 8;
    /// Any other event (a NOP).
    pub const OTHER: i32 = 0;
    /// FOLLOW stream: a copy of the store as of `rev` begins.
    pub const SNAPSHOT: i32 = 16;
    /// FOLLOW stream: one file of the copy (`path`, `value`, `rev`).
    pub const FILE: i32 = 32;
    /// FOLLOW stream: the follower is at `rev` (copy complete, or resuming
    /// there); every change after it follows as an event.
    pub const READY: i32 = 64;
}

/// A client request (docs/reference.md#messages).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// Client-chosen tag; echoed in the response.
    #[prost(int32, optional, tag = "1")]
    pub tag: Option<i32>,
    /// The operation, a [`Verb`] as `i32` (unknown values are kept so the
    /// server can answer `UNKNOWN_VERB`).
    #[prost(enumeration = "Verb", optional, tag = "2")]
    pub verb: Option<i32>,
    /// A path or a glob.
    #[prost(string, optional, tag = "4")]
    pub path: Option<String>,
    /// A file body or a secret.
    #[prost(bytes = "bytes", optional, tag = "5")]
    pub value: Option<bytes::Bytes>,
    /// Unused by this server; kept for wire compatibility.
    #[prost(int32, optional, tag = "6")]
    pub other_tag: Option<i32>,
    /// Index for WALK and GETDIR.
    #[prost(int32, optional, tag = "7")]
    pub offset: Option<i32>,
    /// A revision: the condition of a write, or the revision to read at.
    #[prost(int64, optional, tag = "9")]
    pub rev: Option<i64>,
}

/// A server response (docs/reference.md#messages).
// prost derives a `len()` getter for the `len` field; it is not a size.
#[allow(clippy::len_without_is_empty)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// The tag of the request this answers.
    #[prost(int32, optional, tag = "1")]
    pub tag: Option<i32>,
    /// Event flags (see [`flags`]).
    #[prost(int32, optional, tag = "2")]
    pub flags: Option<i32>,
    /// A revision.
    #[prost(int64, optional, tag = "3")]
    pub rev: Option<i64>,
    /// A path (WAIT, WALK, GETDIR).
    #[prost(string, optional, tag = "5")]
    pub path: Option<String>,
    /// A file body or a node id.
    #[prost(bytes = "bytes", optional, tag = "6")]
    pub value: Option<bytes::Bytes>,
    /// A length (STAT).
    #[prost(int32, optional, tag = "8")]
    pub len: Option<i32>,
    /// Set on errors, an [`ErrCode`] as `i32`.
    #[prost(enumeration = "ErrCode", optional, tag = "100")]
    pub err_code: Option<i32>,
    /// Human-readable detail of an error.
    #[prost(string, optional, tag = "101")]
    pub err_detail: Option<String>,
    /// Follow streams only (between nodes): the consensus seqn whose value
    /// made this change; on SNAPSHOT, the seqn the copy is as of. A seqn
    /// may make several changes, at consecutive revs. Clients never see it.
    #[prost(uint64, optional, tag = "20")]
    pub seqn: Option<u64>,
    /// Follow streams only: more changes of the same seqn follow.
    #[prost(bool, optional, tag = "21")]
    pub more: Option<bool>,
}

/// The operations of the client protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Verb {
    /// Read a file.
    Get = 1,
    /// Write a file, conditionally on its revision.
    Set = 2,
    /// Delete a file, conditionally on its revision.
    Del = 3,
    /// The node's current revision.
    Rev = 5,
    /// The first change at or after a revision to a file matching a glob.
    Wait = 6,
    /// One consensus round that changes nothing.
    Nop = 7,
    /// The n-th file matching a glob.
    Walk = 9,
    /// The n-th entry of a directory.
    Getdir = 14,
    /// Length and revision of a file or directory.
    Stat = 16,
    /// This node's id.
    Self_ = 20,
    /// Present a secret.
    Access = 99,
    /// Internal, between doozerd nodes: a slave follows this node. `rev` is
    /// the slave's resume point (≤ 0: copy the store first). The answer is
    /// a stream of responses with the request's tag: a copy (flags
    /// SNAPSHOT, FILE..., READY) or just READY, then every change as a
    /// WAIT-style event, until the connection closes.
    Follow = 200,
    /// A consistent copy of the whole tree at one rev, from any node (a
    /// read): SNAPSHOT (its rev), FILE... in depth-first order, then READY
    /// (its rev again), all with the request's tag; the tag is free again
    /// after READY. What `doozer backup` writes to an image
    /// (docs/storage.md).
    Backup = 201,
}

/// Error codes of the client protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ErrCode {
    /// Any other error (detail says what).
    Other = 127,
    /// A request reused the tag of one still outstanding.
    TagInUse = 1,
    /// The verb is not known.
    UnknownVerb = 2,
    /// The node does not accept writes.
    Readonly = 3,
    /// The revision asked for is older than the history kept.
    TooLate = 4,
    /// A conditional write found a newer revision.
    RevMismatch = 5,
    /// A path or glob is malformed.
    BadPath = 6,
    /// A required field is missing.
    MissingArg = 7,
    /// An offset is past the end.
    Range = 8,
    /// A path component is a file, not a directory.
    Notdir = 20,
    /// The path is a directory.
    Isdir = 21,
    /// No such file or directory.
    Noent = 22,
}

impl Verb {
    /// The verb's name, as in the `.proto` (`GET`, `SET`, ...; `FOLLOW` for
    /// the internal verb).
    pub fn wire_name(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Set => "SET",
            Verb::Del => "DEL",
            Verb::Rev => "REV",
            Verb::Wait => "WAIT",
            Verb::Nop => "NOP",
            Verb::Walk => "WALK",
            Verb::Getdir => "GETDIR",
            Verb::Stat => "STAT",
            Verb::Self_ => "SELF",
            Verb::Access => "ACCESS",
            Verb::Follow => "FOLLOW",
            Verb::Backup => "BACKUP",
        }
    }
}

impl ErrCode {
    /// The wire name of the code, as in the `.proto` (`REV_MISMATCH`, ...).
    pub fn wire_name(self) -> &'static str {
        match self {
            ErrCode::Other => "OTHER",
            ErrCode::TagInUse => "TAG_IN_USE",
            ErrCode::UnknownVerb => "UNKNOWN_VERB",
            ErrCode::Readonly => "READONLY",
            ErrCode::TooLate => "TOO_LATE",
            ErrCode::RevMismatch => "REV_MISMATCH",
            ErrCode::BadPath => "BAD_PATH",
            ErrCode::MissingArg => "MISSING_ARG",
            ErrCode::Range => "RANGE",
            ErrCode::Notdir => "NOTDIR",
            ErrCode::Isdir => "ISDIR",
            ErrCode::Noent => "NOENT",
        }
    }
}

impl Response {
    /// An error response for `tag`.
    pub fn error(tag: Option<i32>, code: ErrCode, detail: impl Into<Option<String>>) -> Response {
        Response {
            tag,
            err_code: Some(code as i32),
            err_detail: detail.into(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn request_encoding_matches_hand_computed_bytes() {
        let req = Request {
            tag: Some(1),
            verb: Some(Verb::Set as i32),
            path: Some("/a".into()),
            value: Some(bytes::Bytes::from_static(b"hi")),
            rev: Some(-1),
            ..Default::default()
        };
        let got = req.encode_to_vec();
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0x08, 0x01,             // tag = 1
            0x10, 0x02,             // verb = SET
            0x22, 0x02, b'/', b'a', // path = "/a"
            0x2a, 0x02, b'h', b'i', // value = "hi"
            // rev = -1: varint of the 64-bit two's complement, 10 bytes
            0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(got, want);
        assert_eq!(Request::decode(&want[..]).unwrap(), req);
    }

    #[test]
    fn response_error_encoding_matches_hand_computed_bytes() {
        let resp = Response::error(Some(7), ErrCode::RevMismatch, None);
        // tag=7; err_code field 100 -> key (100<<3)|0 = 800 = 0xa0 0x06; value 5
        assert_eq!(resp.encode_to_vec(), vec![0x08, 0x07, 0xa0, 0x06, 0x05]);
        let resp = Response {
            tag: Some(0),
            rev: Some(300),
            len: Some(2),
            flags: Some(flags::SET),
            ..Default::default()
        };
        // tag=0 -> 08 00; flags=4 -> 10 04; rev=300 -> 18 ac 02; len=2 -> 40 02
        assert_eq!(
            resp.encode_to_vec(),
            vec![0x08, 0x00, 0x10, 0x04, 0x18, 0xac, 0x02, 0x40, 0x02]
        );
    }

    #[test]
    fn unknown_verb_is_kept_as_raw_number() {
        // verb = 42 is not a Verb, but decoding keeps it so the server can
        // answer UNKNOWN_VERB with the right tag.
        let bytes = [0x08, 0x03, 0x10, 42];
        let req = Request::decode(&bytes[..]).unwrap();
        assert_eq!(req.tag, Some(3));
        assert_eq!(req.verb, Some(42));
        assert!(Verb::try_from(42).is_err());
    }

    #[test]
    fn verbs_have_their_proto_names() {
        let all = [
            (Verb::Get, "GET"),
            (Verb::Set, "SET"),
            (Verb::Del, "DEL"),
            (Verb::Rev, "REV"),
            (Verb::Wait, "WAIT"),
            (Verb::Nop, "NOP"),
            (Verb::Walk, "WALK"),
            (Verb::Getdir, "GETDIR"),
            (Verb::Stat, "STAT"),
            (Verb::Self_, "SELF"),
            (Verb::Access, "ACCESS"),
            (Verb::Follow, "FOLLOW"),
            (Verb::Backup, "BACKUP"),
        ];
        for (verb, name) in all {
            assert_eq!(verb.wire_name(), name);
        }
    }

    #[test]
    fn wrong_wire_type_is_a_decode_error() {
        // field 4 (path) sent as varint instead of length-delimited
        let bytes = [0x20, 0x01];
        assert!(Request::decode(&bytes[..]).is_err());
    }
}
