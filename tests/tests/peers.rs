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
//!
//! Without a secret, a client may register a node of its own and send
//! from its address: that node is no CAL, so what it says about any seqn
//! (here, Learned values) is ignored, on the CAL it targets and so
//! everywhere.

use std::net::{SocketAddr, UdpSocket};

use bytes::Bytes;
use doozer_proto::peer::{Accept, Learned, PeerMsg, Vote};
use doozer_tests::browser::http_get;
use doozer_tests::cluster::{get_at, Cluster, CLUSTER_DEADLINE};
use doozer_tests::{poll_until, prometheus};
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

/// What node `web`'s `/$metrics` counts of `kind` (`learned`, ...) in the
/// peer batches it received.
fn received(web: SocketAddr, kind: &str) -> f64 {
    let text = http_get(web, "/$metrics").text();
    let m = prometheus::parse(&text).unwrap_or_else(|e| panic!("/$metrics: {e}\n{text}"));
    m.value("doozer_peer_messages_received_total", &[("kind", kind)])
        .unwrap_or(0.0)
}

/// Node `web`'s consensus counters from `/$stats.json`.
fn consensus_stats(web: SocketAddr) -> serde_json::Value {
    http_get(web, "/$stats.json").json()["consensus"].clone()
}

#[test]
fn without_a_secret_a_node_that_is_no_cal_cannot_teach_values() {
    // docs/security.md: every consensus message, Learned values included,
    // counts only from a CAL of its seqn. Without a secret any client may
    // write, so it can register a node of its own: EVIL, at the address
    // of a UDP socket it holds. Its batches then pass the address check
    // (they come from EVIL's address) but EVIL is in no CAL set.
    let mut c = Cluster::start_with_web(3, &[]);
    let before = c.set(0, "/before", 0, b"x");
    let evil = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let evil_addr = evil.local_addr().expect("addr");
    let reg = c.set(
        0,
        "/ctl/node/EVIL/addr",
        0,
        evil_addr.to_string().as_bytes(),
    );
    let target = 1;
    let web = c.d(target).web().expect("the web viewer is on");
    // The attacked CAL knows EVIL's address before anything is sent.
    assert_eq!(
        get_at(c.d(target), "/ctl/node/EVIL/addr", reg).0,
        evil_addr.to_string().as_bytes()
    );
    let ignored_before = consensus_stats(web)["messages_ignored"].clone();
    let learned_before = received(web, "learned");

    // Learned values for every seqn around the head, the next undecided
    // ones included (a seqn takes at least one rev, so seqns <= revs).
    let head = c.writer(target).rev().max(1) as u64;
    let seqns = head.saturating_sub(300).max(1)..head + 100;
    let mut m = PeerMsg {
        sender: "EVIL".into(),
        ..Default::default()
    };
    for seqn in seqns.clone() {
        let value = Mutation::Set {
            path: format!("/forged/learned/{seqn}"),
            rev: -1,
            body: Bytes::from_static(b"forged"),
        }
        .encode();
        m.learned.push(Learned { seqn, value });
    }
    let forged = m.learned.len() as f64;
    let datagrams = pack([Bytes::from(m.encode_to_vec())]);
    assert_eq!(datagrams.len(), 1, "one datagram");
    evil.send_to(&datagrams[0], c.d(target).addr())
        .expect("send");
    // The batch reached consensus as EVIL's: its Learned parts are counted
    // as received, and the message was not dropped as from an unknown
    // sender.
    poll_until(CLUSTER_DEADLINE, "the forged batch to be received", || {
        (received(web, "learned") >= learned_before + forged).then_some(())
    });
    assert_eq!(consensus_stats(web)["messages_ignored"], ignored_before);

    // Consensus moves past every forged seqn, so anything taken would be
    // applied by now.
    let client = doozer::Client::connect(&c.uri(target)).expect("connect");
    let mut rev = head;
    while rev < seqns.end + 5 {
        rev = client.nop().expect("nop") as u64;
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
    let base = walk(target);
    assert!(
        base.iter()
            .any(|(p, r, b)| p == "/before" && *r == before && b.as_ref() == b"x"),
        "{base:?}"
    );
    let applied: Vec<_> = base
        .iter()
        .filter(|(p, ..)| p.starts_with("/forged"))
        .collect();
    assert!(applied.is_empty(), "forged values applied: {applied:?}");
    for i in [0, 2] {
        assert_eq!(
            walk(i),
            base,
            "node {i} differs from node {target} at rev {rev}"
        );
    }
    // No node's store diverged meanwhile (a forged value applied on one
    // CAL alone would have made it differ from the others, and copy the
    // store again).
    for i in 0..3 {
        let s = consensus_stats(c.d(i).web().expect("web"));
        assert_eq!(s["divergences"], 0, "node {i}: {s}");
        assert_eq!(s["learned_gaps"], 0, "node {i}: {s}");
    }
    c.assert_consistent(&[]);
}
