//! Peer messages: what CALs send each other to run multi-Paxos (docs/reference.md#peer-transport).
//!
//! One [`PeerMsg`] is a batch: everything one node has for one peer after
//! one loop iteration, so the transport can send it as one datagram. Each
//! part is a list, and any part may be empty.
//!
//! Ballots are `(round, cal)`: `cal` is the coordinator's index in the
//! instance's sorted CAL set. Where a message comes from the coordinator
//! itself ([`Prepare`], [`Accept`]) only the round travels: the receiver
//! derives `cal` from the sender, which also checks the sender is a CAL of
//! that instance. Round 0 is reserved to the instance's owner.
//!
//! Everything here is untrusted input: receivers validate seqns, indexes
//! and rounds before acting on them.
//!
//! Reference `.proto` text:
//!
//! ```text
//! message PeerMsg {
//!   optional uint64 learned_upto = 1;   // every seqn below this is learned by the sender
//!   repeated Prepare prepares = 2;
//!   repeated Promise promises = 3;
//!   repeated Accept accepts = 4;
//!   repeated Vote votes = 5;
//!   repeated Reject rejects = 6;
//!   repeated Learned learned = 7;
//!   repeated uint64 skips = 8 [packed = true];
//!   optional uint64 fetch_from = 9;
//!   optional string sender = 10;        // the sender's node id
//!   optional uint64 oldest_kept = 11;   // the oldest seqn whose value the sender still holds
//!   repeated string silent = 12;        // CALs the sender has not heard from for its -timeout
//!   optional int64 digest_rev = 13;     // the sender's store digest at this rev ...
//!   optional uint64 digest = 14;        // ... (divergence detection)
//! }
//! message Prepare { optional uint64 round = 1; repeated uint64 seqns = 2 [packed = true]; }
//! message Promise { optional uint64 seqn = 1; optional uint64 round = 2;
//!                   optional uint64 vote_round = 3; optional uint32 vote_cal = 4;
//!                   optional bytes vote_value = 5; }
//! message Accept  { optional uint64 seqn = 1; optional uint64 round = 2; optional bytes value = 3; }
//! message Vote    { optional uint64 seqn = 1; optional uint64 round = 2; optional uint32 cal = 3; }
//! message Reject  { optional uint64 seqn = 1; optional uint64 round = 2; optional uint32 cal = 3; }
//! message Learned { optional uint64 seqn = 1; optional bytes value = 2; }
//! ```

use bytes::Bytes;

/// A batch of peer messages for one peer (one datagram).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PeerMsg {
    /// Every seqn below this is learned by the sender; a receiver that is
    /// further behind asks for the values with `fetch_from`.
    #[prost(uint64, tag = "1")]
    pub learned_upto: u64,
    /// Phase 1a, possibly for many seqns at once (bulk revoke).
    #[prost(message, repeated, tag = "2")]
    pub prepares: Vec<Prepare>,
    /// Phase 1b answers.
    #[prost(message, repeated, tag = "3")]
    pub promises: Vec<Promise>,
    /// Phase 2a: the coordinator asks acceptors to vote for a value (an
    /// owner's round-0 Accept is the one-round-trip "nominate").
    #[prost(message, repeated, tag = "4")]
    pub accepts: Vec<Accept>,
    /// Phase 2b: an acceptor voted; sent to every CAL of the instance, so
    /// each learns on its own.
    #[prost(message, repeated, tag = "5")]
    pub votes: Vec<Vote>,
    /// Refusals: the acceptor promised a higher ballot.
    #[prost(message, repeated, tag = "6")]
    pub rejects: Vec<Reject>,
    /// Values already decided (answers to stragglers and to `fetch_from`).
    #[prost(message, repeated, tag = "7")]
    pub learned: Vec<Learned>,
    /// Seqns owned by the sender that it will never propose a value for:
    /// they are decided NOP (Mencius skip).
    #[prost(uint64, repeated, packed = "true", tag = "8")]
    pub skips: Vec<u64>,
    /// Asks for the learned values from this seqn on.
    #[prost(uint64, optional, tag = "9")]
    pub fetch_from: Option<u64>,
    /// The sender's node id: the receiver checks it against the address
    /// the datagram came from, so two ids that share an address (a node
    /// restarted under a new id) are never mistaken for each other.
    #[prost(string, tag = "10")]
    pub sender: String,
    /// The oldest seqn whose learned value the sender still holds: a
    /// receiver behind it cannot catch up from the sender and must copy.
    #[prost(uint64, tag = "11")]
    pub oldest_kept: u64,
    /// The CALs the sender has not heard from for its `-timeout`: a CAL is
    /// kicked only when a majority reports it silent.
    #[prost(string, repeated, tag = "12")]
    pub silent: Vec<String>,
    /// The rev of the sender's store digest below.
    #[prost(int64, tag = "13")]
    pub digest_rev: i64,
    /// A digest of the sender's store at `digest_rev`: CALs compare them
    /// to find a node whose store diverged.
    #[prost(uint64, tag = "14")]
    pub digest: u64,
}

/// Phase 1a: the sender coordinates `round` for each seqn listed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Prepare {
    /// The round; the ballot is `(round, sender's index in that seqn's CALs)`.
    #[prost(uint64, tag = "1")]
    pub round: u64,
    /// The seqns, all revoked in one round trip.
    #[prost(uint64, repeated, packed = "true", tag = "2")]
    pub seqns: Vec<u64>,
}

/// Phase 1b: the acceptor promised the ballot `(round, receiver)` for `seqn`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Promise {
    /// The instance.
    #[prost(uint64, tag = "1")]
    pub seqn: u64,
    /// The round promised.
    #[prost(uint64, tag = "2")]
    pub round: u64,
    /// Round of the acceptor's last vote, if it voted.
    #[prost(uint64, optional, tag = "3")]
    pub vote_round: Option<u64>,
    /// Coordinator index of the acceptor's last vote.
    #[prost(uint32, optional, tag = "4")]
    pub vote_cal: Option<u32>,
    /// The value of the acceptor's last vote.
    #[prost(bytes = "bytes", optional, tag = "5")]
    pub vote_value: Option<Bytes>,
}

/// Phase 2a: vote for `value` at `(round, sender)` in `seqn`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Accept {
    /// The instance.
    #[prost(uint64, tag = "1")]
    pub seqn: u64,
    /// The round; the ballot is `(round, sender's index)`.
    #[prost(uint64, tag = "2")]
    pub round: u64,
    /// The value proposed.
    #[prost(bytes = "bytes", tag = "3")]
    pub value: Bytes,
}

/// Phase 2b: the sender voted in `seqn` at ballot `(round, cal)`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Vote {
    /// The instance.
    #[prost(uint64, tag = "1")]
    pub seqn: u64,
    /// Ballot round.
    #[prost(uint64, tag = "2")]
    pub round: u64,
    /// Ballot coordinator index.
    #[prost(uint32, tag = "3")]
    pub cal: u32,
}

/// The acceptor refused: it promised the higher ballot `(round, cal)`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reject {
    /// The instance.
    #[prost(uint64, tag = "1")]
    pub seqn: u64,
    /// Round of the ballot promised.
    #[prost(uint64, tag = "2")]
    pub round: u64,
    /// Coordinator index of the ballot promised.
    #[prost(uint32, tag = "3")]
    pub cal: u32,
}

/// `seqn` is decided: its value is `value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Learned {
    /// The instance.
    #[prost(uint64, tag = "1")]
    pub seqn: u64,
    /// The value chosen.
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

impl PeerMsg {
    /// True if the batch carries nothing but the header.
    pub fn is_empty(&self) -> bool {
        self.prepares.is_empty()
            && self.promises.is_empty()
            && self.accepts.is_empty()
            && self.votes.is_empty()
            && self.rejects.is_empty()
            && self.learned.is_empty()
            && self.skips.is_empty()
            && self.fetch_from.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn peer_msg_encoding_matches_hand_computed_bytes() {
        let msg = PeerMsg {
            learned_upto: 300,
            prepares: vec![Prepare {
                round: 2,
                seqns: vec![4, 7],
            }],
            accepts: vec![Accept {
                seqn: 5,
                round: 0,
                value: Bytes::from_static(b"nop:"),
            }],
            votes: vec![Vote {
                seqn: 5,
                round: 0,
                cal: 1,
            }],
            skips: vec![6, 9],
            fetch_from: Some(1),
            ..Default::default()
        };
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0x08, 0xac, 0x02,                   // learned_upto = 300
            0x12, 0x06,                         // prepares[0], 6 bytes
            0x08, 0x02,                         //   round = 2
            0x12, 0x02, 0x04, 0x07,             //   seqns = [4, 7] packed
            0x22, 0x08,                         // accepts[0], 8 bytes
            0x08, 0x05,                         //   seqn = 5 (round 0 omitted)
            0x1a, 0x04, b'n', b'o', b'p', b':', //   value
            0x2a, 0x04,                         // votes[0], 4 bytes
            0x08, 0x05,                         //   seqn = 5
            0x18, 0x01,                         //   cal = 1
            0x42, 0x02, 0x06, 0x09,             // skips = [6, 9] packed
            0x48, 0x01,                         // fetch_from = 1
        ];
        assert_eq!(msg.encode_to_vec(), want);
        assert_eq!(PeerMsg::decode(&want[..]).unwrap(), msg);
    }

    #[test]
    fn promise_with_vote_round_trips() {
        let p = Promise {
            seqn: 1,
            round: 3,
            vote_round: Some(0),
            vote_cal: Some(2),
            vote_value: Some(Bytes::from_static(b"x")),
        };
        // vote_round = 0 is present (optional), unlike a plain uint64 zero.
        assert_eq!(
            p.encode_to_vec(),
            vec![0x08, 0x01, 0x10, 0x03, 0x18, 0x00, 0x20, 0x02, 0x2a, 0x01, b'x']
        );
        assert_eq!(Promise::decode(&p.encode_to_vec()[..]).unwrap(), p);
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        assert!(PeerMsg::decode(&[0x12, 0x7f, 0x00][..]).is_err());
        assert!(PeerMsg::decode(&[0xff][..]).is_err());
    }

    #[test]
    fn empty_batch_is_empty() {
        assert!(PeerMsg::default().is_empty());
        assert!(!PeerMsg {
            skips: vec![1],
            ..Default::default()
        }
        .is_empty());
    }
}
