//! Authenticated peers (docs/security.md): with `DOOZER_RWSECRET` set,
//! every peer datagram carries an HMAC-SHA256 tag bound to its sender, and
//! a CAL drops (and counts) anything else. Here a real 3-CAL cluster runs
//! with a secret, works, and then a stranger on 127.0.0.1 sends it
//! well-formed peer batches that would write to the store if they were
//! taken: Learned values, Accepts and Votes for the next seqns, each
//! carrying an encoded SET. They go out without a MAC, with a MAC under a
//! wrong key, with the right key but sealed as from a member's address or
//! for another member, and with the right key from an address that is no
//! member.
//!
//! With a secret the web viewer (and so `/$stats.json`) is off
//! (docs/reference.md#secrets-and-access, src/config.rs), so the count is
//! read where an operator sees it then: the node's rate-limited warning,
//! which carries the running total.

use std::net::{SocketAddr, UdpSocket};

use bytes::Bytes;
use doozer_proto::peer::{Accept, Learned, PeerMsg, Vote};
use doozer_tests::cluster::{get_at, Cluster, CLUSTER_DEADLINE};
use doozer_tests::poll_until;
use doozerd::store::Mutation;
use doozerd::transport::{pack, PeerKey};
use prost::Message;

const SECRET: &str = "peer-Secret.1";

/// A prost-encoded envelope holding one peer batch that, if a CAL took it,
/// would decide `SET /forged/<what>/<seqn>` for every seqn in `seqns`:
/// as learned values, as Accepts of round 0 and of a high round, and with
/// votes for them from every CAL index.
fn forged_envelope(what: &str, seqns: std::ops::Range<u64>) -> Vec<u8> {
    let mut m = PeerMsg::default();
    for seqn in seqns {
        let value = Mutation::Set {
            path: format!("/forged/{what}/{seqn}"),
            rev: -1,
            body: Bytes::from_static(b"forged"),
        }
        .encode();
        m.learned.push(Learned {
            seqn,
            value: value.clone(),
        });
        for round in [0, 1 << 40] {
            m.accepts.push(Accept {
                seqn,
                round,
                value: value.clone(),
            });
            for cal in 0..3 {
                m.votes.push(Vote { seqn, round, cal });
            }
        }
    }
    let mut out = pack([Bytes::from(m.encode_to_vec())]);
    assert_eq!(out.len(), 1, "one datagram");
    out.remove(0)
}

/// The highest running total the node's warnings about datagrams without
/// a valid MAC have reported so far (0 before the first).
fn reported_total(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter(|l| l.contains("without a valid MAC"))
        .filter_map(|l| {
            let rest = &l[l.find("(total ")? + "(total ".len()..];
            rest[..rest.find(')')?].parse().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Waits until node `i`'s warnings report a total of at least `want`, and
/// returns the total reported (the caller checks it is exactly `want`).
fn wait_reported(c: &Cluster, i: usize, want: u64) -> u64 {
    poll_until(
        CLUSTER_DEADLINE,
        &format!("node {i} to report {want} datagrams without a valid MAC"),
        || {
            let total = reported_total(&c.d(i).stderr());
            (total >= want).then_some(total)
        },
    )
}

#[test]
fn with_a_secret_only_members_holding_it_take_part_in_consensus() {
    let mut c = Cluster::start_with_secret(3, &[], Some(SECRET));
    // The cluster works: a write on one CAL is read on every node.
    let before = c.set(0, "/before", 0, b"x");
    for i in 0..3 {
        assert_eq!(get_at(c.d(i), "/before", before).0, b"x");
    }
    // Nodes that share the secret never see each other's datagrams as
    // unauthenticated.
    for i in 0..3 {
        assert_eq!(reported_total(&c.d(i).stderr()), 0, "node {i}");
    }

    let client = doozer::Client::connect(&c.uri(1)).expect("connect with sk=");
    let head = client.rev().expect("rev") as u64;
    // The next seqns: what consensus is about to decide.
    let seqns = head + 1..head + 21;
    let target = c.d(1).addr();
    let member = c.d(0).addr();
    let stranger = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let stranger_addr: SocketAddr = stranger.local_addr().expect("addr");
    let right = PeerKey::from_secret(SECRET.as_bytes()).expect("key");
    let wrong = PeerKey::from_secret(b"not the secret").expect("key");

    // A valid MAC, from an address that is no member's: authenticated, so
    // not counted as unauthenticated, but ignored as from an unknown peer.
    let env = forged_envelope("stranger", seqns.clone());
    stranger
        .send_to(&right.seal(stranger_addr, target, &env), target)
        .expect("send");

    // No MAC at all: the bare envelope, as a node without a secret sends.
    const EACH: u64 = 4;
    for k in 0..EACH {
        let env = forged_envelope(&format!("bare{k}"), seqns.clone());
        stranger.send_to(&env, target).expect("send");
    }
    // Datagrams from one socket to another on loopback arrive in order, so
    // once the node reports these it has handled the stranger's too; had
    // it counted that one, the total would be one more.
    assert_eq!(wait_reported(&c, 1, EACH), EACH);

    // A MAC under a wrong key; the right key sealed as from a member's
    // address (re-attributed: the source is the stranger's); the right key
    // sealed for another member (redirected).
    for k in 0..EACH {
        let env = forged_envelope(&format!("wrongkey{k}"), seqns.clone());
        stranger
            .send_to(&wrong.seal(stranger_addr, target, &env), target)
            .expect("send");
        let env = forged_envelope(&format!("reattributed{k}"), seqns.clone());
        stranger
            .send_to(&right.seal(member, target, &env), target)
            .expect("send");
        let env = forged_envelope(&format!("redirected{k}"), seqns.clone());
        stranger
            .send_to(&right.seal(stranger_addr, member, &env), target)
            .expect("send");
    }
    assert_eq!(wait_reported(&c, 1, 4 * EACH), 4 * EACH);

    // Consensus moves past every forged seqn (NOPs through the CAL that
    // was attacked), so anything forged would have been applied by now.
    let mut rev = head;
    while rev < seqns.end + 5 {
        let at = client.nop().expect("nop");
        assert!(at > 0, "NOP reported no rev");
        rev = at as u64;
    }
    let rev = rev as i64;
    let walk = |i: usize| -> Vec<(String, i64, Bytes)> {
        doozer::Client::connect(&c.uri(i))
            .expect("connect")
            .walk_all("/**", Some(rev))
            .expect("walk")
            .into_iter()
            .map(|e| (e.path, e.rev, e.body))
            .collect()
    };
    let base = walk(0);
    assert!(
        base.iter()
            .any(|(p, _, b)| p == "/before" && b.as_ref() == b"x"),
        "{base:?}"
    );
    let forged: Vec<_> = base
        .iter()
        .filter(|(p, ..)| p.starts_with("/forged"))
        .collect();
    assert!(forged.is_empty(), "forged writes applied: {forged:?}");
    for i in 1..3 {
        assert_eq!(walk(i), base, "node {i} differs from node 0 at rev {rev}");
    }
    // Every node is still up, and the attacked node still writes.
    let after = c.set(1, "/after", 0, b"y");
    for i in 0..3 {
        assert_eq!(get_at(c.d(i), "/after", after).0, b"y");
    }
    c.assert_consistent(&[]);
}
