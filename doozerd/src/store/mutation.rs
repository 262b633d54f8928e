//! What consensus agrees on: a [`Value`] per seqn, holding the
//! [`Mutation`]s applied to the store at consecutive revs (the format is
//! in docs/reference.md#consensus-values).
//!
//! A value is a protobuf message, so every node decodes the same bytes
//! the same way, and garbage (only a buggy or hostile peer can send it)
//! fails to decode and is applied as a NOP everywhere alike:
//!
//! ```text
//! message Value {
//!   repeated Change changes = 1;      // applied in order, one rev each
//!   optional Guard guard = 2;         // all or nothing: only if this holds
//!   optional uint64 expires_after = 3; // refused if decided at a later seqn
//!   optional bytes tag = 4;           // makes a node's own NOP unique
//! }
//! message Change { optional string path = 1; optional int64 rev = 2;
//!                  optional bytes body = 3; optional bool del = 4; }
//! message Guard  { optional string path = 1; optional int64 rev = 2; }
//! ```
//!
//! A value without changes is a NOP: it takes one rev and changes nothing
//! (the fill NOP is the empty value, zero bytes).

use bytes::{BufMut, Bytes};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;

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

/// Bytes that do not decode as a [`Value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed value: {0}")]
pub struct MutationError(pub String);

/// A condition on the whole of a [`Value`]: the file at `path` is at
/// `rev` (a kick applies only while the slot still names the same node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The file checked.
    pub path: String,
    /// The rev it must have.
    pub rev: Rev,
}

/// What one seqn decides: its changes are applied together, at
/// consecutive revs, or (when the guard fails or the value expired) not
/// at all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Value {
    /// The changes, in order; none makes a NOP.
    pub changes: Vec<Mutation>,
    /// Applies only if this holds when the value is applied.
    pub guard: Option<Guard>,
    /// Refused if decided at a seqn after this one (a kick queued while
    /// its proposer was cut off is stale by the time it is decided).
    pub expires_after: Option<u64>,
    /// Unique bytes for a node's own NOP, so consensus never mistakes it
    /// for a fill (it tells its own proposals from other values by bytes).
    pub tag: Bytes,
}

impl Mutation {
    /// The value that decides this one change.
    pub fn encode(&self) -> Bytes {
        encode_value(std::slice::from_ref(self), None, None, &[])
    }

    /// A NOP whose encoding no other proposal shares: `tag` makes it
    /// unique. Consensus fills seqns it gives up on with the plain NOP; a
    /// client's NOP encoded plainly would be taken for an old fill, and
    /// answered with a rev decided before it was sent.
    pub fn tagged_nop(tag: &str) -> Bytes {
        Value {
            tag: Bytes::copy_from_slice(tag.as_bytes()),
            ..Value::default()
        }
        .encode()
    }

    /// The mutation that, applied at `event.rev`, reproduces `event` on a
    /// copy of the store it came from (a slave following a CAL): a set or
    /// delete clobbers, anything else is a NOP. A failed mutation's event
    /// is the set of `/ctl/err`, so replaying it writes the same text.
    pub fn replay(event: &super::Event) -> Mutation {
        use doozer_proto::flags;
        match event.flags {
            flags::SET => Mutation::Set {
                path: event.path.to_string(),
                rev: doozer_proto::rev::CLOBBER,
                body: event.body.clone(),
            },
            flags::DEL => Mutation::Del {
                path: event.path.to_string(),
                rev: doozer_proto::rev::CLOBBER,
            },
            _ => Mutation::Nop,
        }
    }
}

impl Value {
    /// A value of these changes, without guard or expiry.
    pub fn of(changes: Vec<Mutation>) -> Value {
        Value {
            changes,
            ..Value::default()
        }
    }

    /// The bytes consensus agrees on: the message above, written
    /// straight from the value (no intermediate message, no copy of a path
    /// or body but into the output), as prost would write it (field order,
    /// absent fields left out); `bytes_are_pinned` and
    /// `encodes_as_prost_does` hold it to that.
    pub fn encode(&self) -> Bytes {
        encode_value(
            &self.changes,
            self.guard.as_ref(),
            self.expires_after,
            &self.tag,
        )
    }

    /// Decodes [`Value::encode`]'s output.
    ///
    /// Paths are not validated here: a bad path is a change that fails
    /// when applied (`BadPath` recorded at `/ctl/err`), as in the Go
    /// original, so every node reaches the same verdict. Bodies are
    /// copied out of `bytes`, so the store never pins a larger buffer.
    pub fn decode(bytes: &[u8]) -> Result<Value, MutationError> {
        let msg = ValueMsg::decode(bytes).map_err(|e| MutationError(e.to_string()))?;
        let changes = msg
            .changes
            .into_iter()
            .map(|c| match (c.path, c.rev, c.del.unwrap_or(false)) {
                (None, _, _) => Ok(Mutation::Nop),
                (Some(_), None, _) => Err(MutationError("a change without a rev".into())),
                (Some(path), Some(rev), true) => Ok(Mutation::Del { path, rev }),
                // Decoded from a slice, the body is already a buffer of
                // its own.
                (Some(path), Some(rev), false) => Ok(Mutation::Set {
                    path,
                    rev,
                    body: c.body.unwrap_or_default(),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let guard = match msg.guard {
            None => None,
            Some(GuardMsg {
                path: Some(path),
                rev: Some(rev),
            }) => Some(Guard { path, rev }),
            Some(_) => return Err(MutationError("a guard without a path or rev".into())),
        };
        Ok(Value {
            changes,
            guard,
            expires_after: msg.expires_after,
            tag: msg.tag.unwrap_or_default(),
        })
    }
}

/// [`Value::encode`] from a value's parts.
fn encode_value(
    changes: &[Mutation],
    guard: Option<&Guard>,
    expires_after: Option<u64>,
    tag: &[u8],
) -> Bytes {
    let changes_len: usize = changes
        .iter()
        .map(|m| message_len(TAG_CHANGES, change_len(m)))
        .sum();
    let guard_len_total = guard.map_or(0, |g| message_len(TAG_GUARD, guard_len(g)));
    let expires_len = expires_after.map_or(0, |e| key_len(TAG_EXPIRES) + encoded_len_varint(e));
    let tag_len = if tag.is_empty() {
        0
    } else {
        field_len(TAG_TAG, tag.len())
    };
    // A Vec, not a BytesMut: prost writes a varint a byte at a time, and a
    // Vec takes a byte for a fraction of what a BytesMut does.
    let mut buf = Vec::with_capacity(changes_len + guard_len_total + expires_len + tag_len);
    for m in changes {
        put_change(m, &mut buf);
    }
    if let Some(g) = guard {
        encode_key(TAG_GUARD, WireType::LengthDelimited, &mut buf);
        encode_varint(guard_len(g) as u64, &mut buf);
        put_field(1, g.path.as_bytes(), &mut buf);
        put_int64(2, g.rev, &mut buf);
    }
    if let Some(e) = expires_after {
        encode_key(TAG_EXPIRES, WireType::Varint, &mut buf);
        encode_varint(e, &mut buf);
    }
    if !tag.is_empty() {
        put_field(TAG_TAG, tag, &mut buf);
    }
    Bytes::from(buf)
}

/// Appends `m` as one `changes` field of a `Value`.
fn put_change(m: &Mutation, buf: &mut Vec<u8>) {
    encode_key(TAG_CHANGES, WireType::LengthDelimited, buf);
    encode_varint(change_len(m) as u64, buf);
    match m {
        Mutation::Set { path, rev, body } => {
            put_field(1, path.as_bytes(), buf);
            put_int64(2, *rev, buf);
            put_field(3, body, buf);
        }
        Mutation::Del { path, rev } => {
            put_field(1, path.as_bytes(), buf);
            put_int64(2, *rev, buf);
            encode_key(4, WireType::Varint, buf);
            encode_varint(1, buf);
        }
        Mutation::Nop => {}
    }
}

/// A value of changes only (no guard, expiry or tag), built one change
/// at a time: a batch of client writes. Its bytes are those of
/// [`Value::of`] with the same changes (repeated fields concatenate).
#[derive(Debug, Default)]
pub struct ValueBuilder {
    buf: Vec<u8>,
    changes: usize,
}

impl ValueBuilder {
    /// Bytes the value has so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether it has no change yet.
    pub fn is_empty(&self) -> bool {
        self.changes == 0
    }

    /// Changes it holds.
    pub fn changes(&self) -> usize {
        self.changes
    }

    /// Bytes `m` would add.
    pub fn added_len(m: &Mutation) -> usize {
        message_len(TAG_CHANGES, change_len(m))
    }

    /// Appends `m`, applied after the changes before it.
    pub fn push(&mut self, m: &Mutation) {
        put_change(m, &mut self.buf);
        self.changes += 1;
    }

    /// The value's bytes; the builder is empty again.
    pub fn take(&mut self) -> Bytes {
        self.changes = 0;
        Bytes::from(std::mem::take(&mut self.buf))
    }
}

// The field numbers of `Value`.
const TAG_CHANGES: u32 = 1;
const TAG_GUARD: u32 = 2;
const TAG_EXPIRES: u32 = 3;
const TAG_TAG: u32 = 4;

/// A length-delimited field's encoded length.
fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// An embedded message field's encoded length, of a message of `len` bytes.
fn message_len(tag: u32, len: usize) -> usize {
    field_len(tag, len)
}

/// An int64 field's encoded length (negative numbers take ten bytes).
fn int64_len(tag: u32, v: i64) -> usize {
    key_len(tag) + encoded_len_varint(v as u64)
}

/// The length of one `Change` message.
fn change_len(m: &Mutation) -> usize {
    match m {
        Mutation::Set { path, rev, body } => {
            field_len(1, path.len()) + int64_len(2, *rev) + field_len(3, body.len())
        }
        Mutation::Del { path, rev } => {
            field_len(1, path.len()) + int64_len(2, *rev) + key_len(4) + 1
        }
        Mutation::Nop => 0,
    }
}

/// The length of a `Guard` message.
fn guard_len(g: &Guard) -> usize {
    field_len(1, g.path.len()) + int64_len(2, g.rev)
}

fn put_field(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.put_slice(bytes);
}

fn put_int64(tag: u32, v: i64, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::Varint, buf);
    encode_varint(v as u64, buf);
}

#[derive(Clone, PartialEq, prost::Message)]
struct ValueMsg {
    #[prost(message, repeated, tag = "1")]
    changes: Vec<ChangeMsg>,
    #[prost(message, optional, tag = "2")]
    guard: Option<GuardMsg>,
    #[prost(uint64, optional, tag = "3")]
    expires_after: Option<u64>,
    #[prost(bytes = "bytes", optional, tag = "4")]
    tag: Option<Bytes>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ChangeMsg {
    #[prost(string, optional, tag = "1")]
    path: Option<String>,
    #[prost(int64, optional, tag = "2")]
    rev: Option<i64>,
    #[prost(bytes = "bytes", optional, tag = "3")]
    body: Option<Bytes>,
    #[prost(bool, optional, tag = "4")]
    del: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GuardMsg {
    #[prost(string, optional, tag = "1")]
    path: Option<String>,
    #[prost(int64, optional, tag = "2")]
    rev: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_fill_nop_is_empty_and_a_tagged_nop_is_unique() {
        assert!(Value::default().encode().is_empty());
        assert_eq!(Value::decode(b""), Ok(Value::default()));
        let t = Mutation::tagged_nop("N1.7");
        assert_ne!(t, Mutation::tagged_nop("N1.8"));
        let v = Value::decode(&t).unwrap();
        assert!(v.changes.is_empty());
        assert_eq!(&v.tag[..], b"N1.7");
    }

    #[test]
    fn bytes_are_pinned() {
        // The encoding is what every node agrees on: it must not drift.
        let set = Mutation::Set {
            path: "/a".into(),
            rev: 12,
            body: Bytes::from_static(b"x"),
        };
        assert_eq!(
            &set.encode()[..],
            b"\x0a\x09\x0a\x02/a\x10\x0c\x1a\x01x",
            "{:x?}",
            set.encode()
        );
    }

    #[test]
    fn rejects_garbage() {
        for b in [&b"\xff"[..], b"\x0a\x02\x10", b"\x0a\x03\x0a\x01/"] {
            assert!(Value::decode(b).is_err(), "{b:?}");
        }
    }

    fn arb_mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            Just(Mutation::Nop),
            (
                any::<i64>(),
                "(/[a-zA-Z0-9.-]{1,4}){0,3}|/",
                any::<Vec<u8>>()
            )
                .prop_map(|(rev, path, body)| Mutation::Set {
                    path,
                    rev,
                    body: Bytes::from(body)
                }),
            (any::<i64>(), "(/[a-zA-Z0-9.-]{1,4}){0,3}|/")
                .prop_map(|(rev, path)| Mutation::Del { path, rev }),
        ]
    }

    /// `v` encoded through prost's own messages.
    fn prost_encoding(v: &Value) -> Vec<u8> {
        ValueMsg {
            changes: v
                .changes
                .iter()
                .map(|m| match m {
                    Mutation::Set { path, rev, body } => ChangeMsg {
                        path: Some(path.clone()),
                        rev: Some(*rev),
                        body: Some(body.clone()),
                        del: None,
                    },
                    Mutation::Del { path, rev } => ChangeMsg {
                        path: Some(path.clone()),
                        rev: Some(*rev),
                        body: None,
                        del: Some(true),
                    },
                    Mutation::Nop => ChangeMsg::default(),
                })
                .collect(),
            guard: v.guard.as_ref().map(|g| GuardMsg {
                path: Some(g.path.clone()),
                rev: Some(g.rev),
            }),
            expires_after: v.expires_after,
            tag: (!v.tag.is_empty()).then(|| v.tag.clone()),
        }
        .encode_to_vec()
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        (
            proptest::collection::vec(arb_mutation(), 0..4),
            proptest::option::of(("/[a-z]{1,4}", any::<i64>())),
            proptest::option::of(any::<u64>()),
            any::<Vec<u8>>(),
        )
            .prop_map(|(changes, guard, expires_after, tag)| Value {
                changes,
                guard: guard.map(|(path, rev)| Guard { path, rev }),
                expires_after,
                tag: Bytes::from(tag),
            })
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in any::<Vec<u8>>()) {
            let _ = Value::decode(&bytes);
        }

        #[test]
        fn round_trips(v in arb_value()) {
            prop_assert_eq!(Value::decode(&v.encode()), Ok(v));
        }

        /// The hand-written encoder writes exactly what prost writes for
        /// the message: the bytes consensus agrees on (and that data
        /// directories and older nodes hold) must not drift.
        #[test]
        fn encodes_as_prost_does(v in arb_value()) {
            prop_assert_eq!(&v.encode()[..], &prost_encoding(&v)[..]);
        }

        /// A batch built a change at a time is the value of its changes,
        /// and its length is known before each push.
        #[test]
        fn a_built_value_is_the_value_of_its_changes(
            changes in proptest::collection::vec(arb_mutation(), 0..8),
        ) {
            let mut b = ValueBuilder::default();
            for m in &changes {
                let before = b.len();
                b.push(m);
                prop_assert_eq!(b.len(), before + ValueBuilder::added_len(m));
            }
            prop_assert_eq!(b.changes(), changes.len());
            let bytes = b.take();
            prop_assert!(b.is_empty());
            prop_assert_eq!(&bytes[..], &Value::of(changes.clone()).encode()[..]);
            prop_assert_eq!(Value::decode(&bytes), Ok(Value::of(changes)));
        }
    }
}
