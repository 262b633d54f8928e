//! Scenarios and randomized runs of the node simulation.
//!
//! `DOOZER_SIM_SEEDS=N` runs N random seeds (default below);
//! `DOOZER_SIM_SEED=S` replays one; `DOOZER_SIM_TRACE=1` prints what
//! every node does.

use doozer_proto::{Request, Verb};

use super::{Timing, World};

/// Client ids used by helpers (any number works).
const OPERATOR: usize = 1_000;

/// A world of `cals` CALs and `spares` slaves, formed the operator's way:
/// slot 0 seeds, the others attach, empty slots are created for them.
pub(super) fn form(seed: u64, cals: usize, spares: usize, timing: Timing) -> World {
    let mut w = World::new(seed, cals + spares, timing);
    for s in 1..cals {
        let req = Request {
            verb: Some(Verb::Set as i32),
            path: Some(format!("/ctl/cal/{s}")),
            rev: Some(0),
            ..Default::default()
        };
        w.request(OPERATOR, 0, req);
    }
    let formed = w.run_until_true(60_000, |w| {
        (0..w.nodes.len()).filter(|&i| w.is_cal(i)).count() == cals
    });
    assert!(formed, "{} CALs did not form: {}", cals, describe(&w));
    w
}

/// One line per node, for failure messages.
pub(super) fn describe(w: &World) -> String {
    let (changes, applied) = w.oracle.set_changes();
    let sets =
        format!("  the log's CAL sets (from seqn): {changes:?}; applied up to seqn {applied}\n");
    sets + &(0..w.nodes.len())
        .map(|i| {
            let n = &w.nodes[i];
            let window = n
                .replica
                .as_ref()
                .map(|r| r.window_sets())
                .and_then(|sets| sets.first().map(|(s, c)| (*s, c.iter().cloned().collect::<Vec<_>>())));
            let stats = n.replica.as_ref().map(|r| {
                let s = r.stats();
                let c = r.consensus_stats().map(|(c, n)| (c.fills, c.round_retries, c.invalid, c.too_far_ahead, c.received.batches, c.sent.batches, n));
                (s.peer_messages_ignored, c)
            });
            format!(
                "  slot {i} {} rev {} cal {} paused {} demotions {} promotions {} slots {:?} next seqn's set {:?}\n      ignored, (fills, retries, invalid, too far, recv, sent, in flight) {:?}",
                n.id,
                w.rev(i),
                w.is_cal(i),
                n.paused,
                n.demotions,
                n.promotions,
                w.slots(i),
                window,
                stats
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails with the oracle's first violation, if any.
pub(super) fn assert_safe(w: &World) {
    if let Some(v) = w.oracle.violations.first() {
        panic!("safety violation at {} ms: {v}\n{}", w.now, describe(w));
    }
}

/// Whether the cluster healed: every running node agrees on the slots and
/// the head, every node named in a slot is a CAL and every other one
/// follows, and a write through every CAL is answered.
pub(super) fn healed(w: &World) -> bool {
    let live = w.live();
    let Some(&first) = live.first() else {
        return false;
    };
    let slots = w.slots(first);
    let rev = w.rev(first);
    live.iter().all(|&i| {
        let id = &w.nodes[i].id;
        w.slots(i) == slots && w.rev(i) == rev && w.is_cal(i) == slots.contains(id)
    })
}

#[test]
fn a_cluster_forms_writes_and_agrees() {
    let mut w = form(1, 3, 1, Timing::default());
    for k in 0..20 {
        let node = k % 3;
        let cal = (0..4).filter(|&i| w.is_cal(i)).nth(node).unwrap();
        w.set(k, cal, &format!("/k{k}"), &format!("v{k}"));
    }
    assert!(w.run_until_true(10_000, healed), "{}", describe(&w));
    assert_safe(&w);
    assert_eq!(w.answers.len(), 20 + 2, "every write answered");
    assert!(w.answers.values().all(|r| r.err_code.is_none()));
}

// ---- the findings of the membership review (issue 11), one each ----

/// Writes `n` files through node `via`, in batches, letting time pass.
fn write_many(w: &mut World, via: usize, n: usize, tag: &str) {
    for k in 0..n {
        w.set(
            k % 40,
            via,
            &format!("/w/{tag}/{}", k % 200),
            &format!("{tag}{k}"),
        );
        if k % 40 == 39 {
            w.run(20);
        }
    }
    w.run(200);
}

/// The CAL slots `i`'s store names, as ids.
fn cal_ids(w: &World, i: usize) -> Vec<String> {
    w.slots(i).into_iter().filter(|s| !s.is_empty()).collect()
}

/// Finding 1: a CAL that gives up catching up (it was paused while the
/// others wrote more than they keep for stragglers) used to rejoin under
/// the same id with empty acceptor state. It must keep the promises and
/// votes it made (the simulator flags a consensus state made afresh that
/// starts at or before the id's last vote).
#[test]
fn finding_1_a_cal_that_gave_up_rejoins_with_its_votes() {
    let timing = Timing {
        timeout_ms: 3_600_000, // nobody is kicked: the give-up path alone
        ..Timing::default()
    };
    let mut w = form(101, 3, 0, timing);
    let victim = 2;
    w.pause(victim);
    write_many(&mut w, 0, 5_000, "a");
    w.resume(victim);
    w.run(30_000);
    assert_safe(&w);
    assert!(w.run_until_true(60_000, healed), "{}", describe(&w));
    assert_safe(&w);
}

/// Lazy votes (docs/storage.md#lazy-votes): the third CAL's vote on a
/// round-0 Accept leaves only once it is synced, though its sync may wait.
/// Here the eager acceptor (node 1) misses the Accept of node 0's write,
/// so the lazy one (node 2) holds the only other vote, and it dies before
/// its sync. Had its vote left unsynced, node 0 would answer the write;
/// then nodes 1 and 2, cut from node 0, fill the seqn with NOP and the
/// answered write is lost.
#[test]
fn a_lazy_vote_leaves_only_once_synced() {
    let timing = Timing {
        timeout_ms: 3_600_000,
        durable: true,
        ..Timing::default()
    };
    let mut w = form(7, 3, 0, timing);
    // Node 0 proposes in seqns where node 1 votes at once and node 2
    // lazily (CAL order N0, N1, N2), once node 2 sees node 1 voting.
    for k in 0..10 {
        w.set(k, 0, &format!("/warm/{k}"), "x");
        w.run(2);
    }
    w.cut_one_way(0, 1);
    let tag = w.set(10, 0, "/lost", "acked?").expect("sent");
    w.run(10);
    // Node 2 voted lazily: its vote waits for a sync nothing asked for
    // yet. (Voting as usual, it answers within 6 ms here.)
    assert!(
        !w.answers.contains_key(&(10, tag)),
        "answered before the lazy vote was synced: {:?}",
        w.answers.get(&(10, tag))
    );
    w.crash(2);
    w.partition(&[&[0], &[1, 2]]);
    w.restart(2);
    w.run(2_000);
    w.heal();
    assert!(w.run_until_true(60_000, healed), "{}", describe(&w));
    assert_safe(&w);
}

/// Finding 2: a crashed CAL's last report of how far it had learned made
/// the two others, cut from each other, believe they were behind; both
/// stepped down and nothing could ever be applied again. They must stay
/// CALs and go on once they reach each other.
#[test]
fn finding_2_a_crash_and_a_partition_do_not_end_the_cluster() {
    let timing = Timing {
        timeout_ms: 3_600_000,
        ..Timing::default()
    };
    let mut w = form(102, 3, 0, timing);
    let (a, b, c) = (0, 1, 2);
    w.cut(a, b);
    // Writes through a and b, relayed by c; crash c while it has learned
    // more than both (they are still fetching from it).
    let mut k = 0;
    let crashed = loop {
        k += 1;
        w.set(
            k % 10,
            if k % 2 == 0 { a } else { b },
            "/x",
            &format!("{k}"),
        );
        w.run(1);
        if w.rev(c) > w.rev(a) && w.rev(c) > w.rev(b) {
            w.crash(c);
            break true;
        }
        if k > 20_000 {
            break false;
        }
    };
    assert!(crashed, "c was never ahead of both");
    w.run(8_000);
    w.heal();
    let ok = w.run_until_true(30_000, |w| {
        healed(w) && w.is_cal(a) && w.is_cal(b) && w.rev(a) == w.rev(b)
    });
    assert!(ok, "{}", describe(&w));
    // And they decide again.
    let before = w.rev(a);
    w.set(99, a, "/after", "v");
    assert!(w.run_until_true(10_000, |w| w.rev(a) > before && w.rev(b) > before));
    assert_safe(&w);
}

/// Finding 3: a slave whose stream broke between winning a slot and
/// joining re-attached with a copy and took the copy's set for every seqn
/// of its window, so it used the wrong owners and quorums. Every node must
/// use the log's set for every seqn (the simulator checks every CAL's
/// window against the oracle's).
#[test]
fn finding_3_a_copy_carries_the_cal_sets_of_its_window() {
    let timing = Timing {
        timeout_ms: 3_600_000,
        history_revs: 10, // a short history: re-attaching means a copy
        alpha: 200,       // a long window: the copy falls inside it
        ..Timing::default()
    };
    let mut w = form(103, 3, 1, timing);
    let spare = 3;
    let req = Request {
        verb: Some(Verb::Set as i32),
        path: Some("/ctl/cal/3".into()),
        rev: Some(0),
        ..Default::default()
    };
    w.request(OPERATOR, 0, req);
    let spare_id = w.nodes[spare].id.clone();
    // The claim is decided, and the spare has not heard yet: cut it off
    // from everyone until its leaders no longer keep its history, then let
    // it back: it copies, learns from the copy that it holds a slot, and
    // must join at the seqn the log says, with the log's sets.
    let mut claimed = false;
    for _ in 0..10_000 {
        if cal_ids(&w, 0).contains(&spare_id) {
            claimed = true;
            break;
        }
        w.run(1);
    }
    assert!(claimed, "{}", describe(&w));
    assert!(!cal_ids(&w, spare).contains(&spare_id));
    for i in 0..3 {
        w.cut(spare, i);
    }
    write_many(&mut w, 0, 15, "b");
    w.run(6_000);
    w.heal();
    assert!(w.run_until_true(60_000, healed), "{}", describe(&w));
    assert!(w.is_cal(spare));
    assert_safe(&w);
}

/// Finding 4: with only the link between two CALs down, each kicked the
/// other (through the third). A single broken link kicks nobody.
#[test]
fn finding_4_one_broken_link_kicks_nobody() {
    let mut w = form(104, 3, 0, Timing::default());
    let ids: Vec<String> = cal_ids(&w, 0);
    w.cut(0, 1);
    w.run(4 * w.timing.timeout_ms);
    for i in 0..3 {
        assert_eq!(cal_ids(&w, i), ids, "node {i}\n{}", describe(&w));
    }
    w.heal();
    assert!(w.run_until_true(30_000, healed), "{}", describe(&w));
    assert!((0..3).all(|i| w.is_cal(i)));
    assert_safe(&w);
}

/// Finding 5: a CAL cut off alone proposed kicks of the two others; they
/// waited in its queue and were decided after the heal. A minority's
/// suspicions never kick anyone, before or after a heal.
#[test]
fn finding_5_a_minoritys_kicks_are_never_decided() {
    let mut w = form(105, 3, 0, Timing::default());
    let (b, c) = (w.nodes[1].id.clone(), w.nodes[2].id.clone());
    w.partition(&[&[0], &[1, 2]]);
    w.run(3 * w.timing.timeout_ms);
    w.heal();
    for _ in 0..300 {
        w.run(100);
        for i in 1..3 {
            let ids = cal_ids(&w, i);
            assert!(
                ids.contains(&b) && ids.contains(&c),
                "a healthy CAL was kicked: {ids:?}\n{}",
                describe(&w)
            );
        }
    }
    assert!(w.run_until_true(30_000, healed), "{}", describe(&w));
    assert_safe(&w);
}

/// Finding 7: a CAL restarted on the same address under a new id, while
/// the old id's files are still there (and its slot): every node must
/// take the new process's datagrams as the new id's (they used to pick one
/// of the two ids by hash-map order), and the new node must be able to
/// become a CAL.
#[test]
fn finding_7_nodes_agree_who_sends_from_an_address() {
    let timing = Timing {
        timeout_ms: 3_600_000, // the old id stays in its slot
        ..Timing::default()
    };
    let mut w = form(107, 5, 0, timing);
    for round in 0..3 {
        let slot = 4 - round;
        let addr = w.nodes[slot].addr;
        w.restart(slot);
        let id = w.nodes[slot].id.clone();
        let registered = w.run_until_true(20_000, |w| {
            (0..5).filter(|&i| i != slot).all(|i| {
                w.nodes[i].replica.as_ref().is_some_and(|r| {
                    let path = format!("/ctl/node/{id}/addr");
                    r.store().head().get(&path).is_ok_and(|(_, rev)| rev > 0)
                })
            })
        });
        assert!(registered, "{}", describe(&w));
        for i in (0..5).filter(|&i| i != slot) {
            let r = w.nodes[i].replica.as_ref().expect("running");
            assert!(
                r.accepts_from(&id, addr),
                "round {round}: node {i} does not take {id}'s datagrams from {addr} as {id}'s"
            );
        }
        // A new slot: the restarted node takes it and works as a CAL.
        let req = Request {
            verb: Some(Verb::Set as i32),
            path: Some(format!("/ctl/cal/{}", 5 + round)),
            rev: Some(0),
            ..Default::default()
        };
        w.request(OPERATOR, 0, req);
        assert!(
            w.run_until_true(20_000, |w| w.is_cal(slot)),
            "{}",
            describe(&w)
        );
        let before = w.rev(slot);
        w.set(7, slot, "/through/new", &id);
        assert!(w.run_until_true(10_000, |w| w.rev(0) > before && w.rev(slot) > before));
    }
    assert_safe(&w);
}

/// The zombie of the review: a CAL paused past `-timeout` is kicked (a
/// spare takes its slot). When it runs again it must not rejoin consensus
/// from its stale view of the slots: it replays the stream past its own
/// kick first, and is then a slave following the head.
#[test]
fn a_cal_paused_past_timeout_comes_back_as_a_slave() {
    let timing = Timing {
        history_revs: 10_000, // the stream can resume from its old rev
        ..Timing::default()
    };
    let mut w = form(112, 3, 1, timing);
    let victim = 2;
    let id = w.nodes[victim].id.clone();
    w.pause(victim);
    w.run(4 * w.timing.timeout_ms);
    // Large values, more bytes than the others keep for stragglers: it
    // cannot learn its own kick from them; it gives up and replays the
    // stream from its old rev instead.
    let big = "v".repeat(40_000);
    for k in 0..1_200 {
        w.set(k % 20, 0, &format!("/big/{}", k % 50), &big);
        if k % 20 == 19 {
            w.run(20);
        }
    }
    w.run(500);
    assert!(!cal_ids(&w, 0).contains(&id), "kicked: {}", describe(&w));
    assert!(
        w.run_until_true(20_000, |w| w.is_cal(3)),
        "the spare took the slot"
    );
    let promotions = w.nodes[victim].promotions;
    w.resume(victim);
    assert!(w.run_until_true(30_000, healed), "{}", describe(&w));
    assert!(!w.is_cal(victim));
    assert_eq!(
        w.nodes[victim].promotions, promotions,
        "never joined from a stale view"
    );
    assert_safe(&w);
}

/// A CAL cut off alone for less than `-timeout`: nobody is kicked, and
/// it is back at the head once the partition heals.
#[test]
fn a_short_minority_partition_kicks_nobody() {
    let mut w = form(108, 3, 1, Timing::default());
    let ids = cal_ids(&w, 0);
    w.partition(&[&[0, 3], &[1, 2]]);
    w.run(w.timing.timeout_ms / 2);
    w.heal();
    assert!(w.run_until_true(30_000, healed), "{}", describe(&w));
    assert_eq!(cal_ids(&w, 0), ids);
    assert!(
        (0..3).all(|i| w.nodes[i].demotions == 0),
        "{}",
        describe(&w)
    );
    assert_safe(&w);
}

/// A majority partition that lasts well past `-timeout`: only the
/// minority CAL is kicked; after the heal it follows as a slave and takes
/// a free slot again.
#[test]
fn a_long_majority_partition_kicks_only_the_minority() {
    let mut w = form(109, 3, 0, Timing::default());
    let (a, b, c) = (
        w.nodes[0].id.clone(),
        w.nodes[1].id.clone(),
        w.nodes[2].id.clone(),
    );
    w.partition(&[&[0], &[1, 2]]);
    w.run(20 * w.timing.timeout_ms);
    let ids = cal_ids(&w, 1);
    assert!(!ids.contains(&a), "the minority CAL is kicked: {ids:?}");
    assert!(ids.contains(&b) && ids.contains(&c), "{ids:?}");
    w.heal();
    assert!(w.run_until_true(30_000, healed), "{}", describe(&w));
    assert!(!w.is_cal(0) || cal_ids(&w, 1).contains(&a));
    assert_safe(&w);
}

/// One-way losses: a CAL that can send but not receive is heard by
/// everyone and kicked by nobody; one that can receive but whose
/// datagrams are lost is not heard by a majority, and is kicked.
#[test]
fn one_way_losses_kick_only_a_cal_nobody_hears() {
    let mut w = form(110, 3, 0, Timing::default());
    let ids = cal_ids(&w, 0);
    w.cut_one_way(1, 0);
    w.cut_one_way(2, 0);
    w.run(4 * w.timing.timeout_ms);
    assert_eq!(cal_ids(&w, 1), ids, "nobody kicked\n{}", describe(&w));
    w.heal();
    assert!(w.run_until_true(30_000, healed), "{}", describe(&w));
    let silent = w.nodes[2].id.clone();
    w.cut_one_way(2, 0);
    w.cut_one_way(2, 1);
    w.run(4 * w.timing.timeout_ms);
    assert!(!cal_ids(&w, 0).contains(&silent), "{}", describe(&w));
    w.heal();
    assert!(w.run_until_true(30_000, healed), "{}", describe(&w));
    assert_safe(&w);
}

/// Finding 8: a CAL whose store diverged (here: changed behind
/// consensus's back) finds out by comparing digests with the others,
/// stops serving, and copies the store again.
#[test]
fn finding_8_a_diverged_store_is_found_and_copied_again() {
    let mut w = form(111, 3, 0, Timing::default());
    let victim = 2;
    if let Some(r) = w.nodes[victim].replica.as_mut() {
        r.corrupt_for_test("/diverged", "only here");
    }
    w.set(1, 0, "/after", "v");
    let found = w.run_until_true(10_000, |w| {
        w.nodes[victim]
            .replica
            .as_ref()
            .is_some_and(|r| r.stats().divergences == 1)
    });
    assert!(found, "{}", describe(&w));
    assert!(w.run_until_true(30_000, healed), "{}", describe(&w));
    let r = w.nodes[victim].replica.as_ref().unwrap();
    assert!(
        r.store().head().get("/diverged").unwrap().1 == 0,
        "the copy replaced it"
    );
    assert_safe(&w);
}

// ---- randomized runs ----

/// Random runs in the normal test run (`DOOZER_SIM_SEEDS` sets another).
const SEEDS_DEFAULT: u64 = 5_000;
/// Simulated time faults are injected for, after the cluster formed.
const FAULT_MS: u64 = 15_000;
/// Simulated time the cluster has to heal once faults stop.
const RECOVER_MS: u64 = 90_000;

/// The CAL ids of the latest slots the most advanced running node knows,
/// and how many of them cannot vote now (their process is dead, or they
/// have not joined consensus yet).
fn dead_cals(w: &World) -> (usize, usize) {
    let Some(i) = w.live().into_iter().max_by_key(|&i| w.rev(i)) else {
        return (0, 0);
    };
    let ids = cal_ids(w, i);
    let unavailable = ids
        .iter()
        .filter(|id| !(0..w.nodes.len()).any(|k| &w.nodes[k].id == *id && w.is_cal(k)))
        .count();
    (ids.len(), unavailable)
}

/// Whether the process in slot `i` may crash and the cluster still keep a
/// live majority of every set that may decide seqns, whatever partitions
/// and kicks come later. Memory only: a majority lost is a cluster lost,
/// so the run allows one dead CAL at a time, in sets of three or more: no
/// other dead id may be in any set still in use (the latest slots, or the
/// window of a live CAL), a CAL that just left must not be needed, and
/// the network must be whole at the time, the victim has no slot claim in
/// flight (seed 131689) and no operator's change of the slots is
/// unanswered (seed 199339).
fn may_crash(w: &World, i: usize) -> bool {
    // Only on a healthy network with every process running: a report a
    // node sent just before it died still counts towards a kick, and may
    // remove a node that was only cut off.
    let healthy = w.links.iter().all(|row| row.iter().all(|l| *l))
        && w.nodes.iter().all(|n| !n.paused)
        && w.drop == 0.0;
    if !healthy {
        return false;
    }
    // An operator's change of the slots still undecided may shrink a set
    // around the dead id after the crash: emptying a live CAL's slot of
    // three leaves two, one of them dead (seed 199339).
    if w.pending.keys().any(|(k, _)| *k == OPERATOR) {
        return false;
    }
    match w.nodes[i].replica.as_ref() {
        None => return false,
        // A claim in flight may be decided after the crash: the dead id
        // would then join a set (of two, say) that cannot lose it.
        Some(r) if r.needed_by_others() || r.claiming() => return false,
        Some(_) => {}
    }
    let running = |id: &str| w.nodes.iter().any(|n| n.replica.is_some() && n.id == id);
    let mut sets: Vec<Vec<String>> = Vec::new();
    for k in (0..w.nodes.len()).filter(|&k| w.nodes[k].replica.is_some()) {
        sets.push(cal_ids(w, k));
        if let Some(r) = w.nodes[k].replica.as_ref() {
            for (_, c) in r.window_sets() {
                sets.push(c.iter().cloned().collect());
            }
        }
    }
    let victim = &w.nodes[i].id;
    sets.iter().all(|set| {
        let dead = set.iter().filter(|id| !running(id)).count();
        dead == 0 && (!set.contains(victim) || set.len() >= 3)
    })
}

/// An operator adds a slot (at most five).
fn add_slot(w: &mut World, rng: &mut crate::consensus::SplitMix64) -> Option<String> {
    let via = *w.live().first()?;
    if w.slots(via).len() >= 5 {
        return None;
    }
    let req = Request {
        verb: Some(Verb::Set as i32),
        path: Some(format!("/ctl/cal/{}", 10 + rng.below(1_000))),
        rev: Some(0),
        ..Default::default()
    };
    w.request(OPERATOR, via, req);
    Some("add a slot".to_string())
}

/// An operator empties a slot (keeping at least one CAL, and never while
/// a CAL is dead: the smaller set must keep a live majority).
fn empty_slot(w: &mut World, rng: &mut crate::consensus::SplitMix64) -> Option<String> {
    let via = *w.live().first()?;
    let ids = cal_ids(w, via);
    if ids.len() <= 1 || dead_cals(w).1 > 0 {
        return None;
    }
    let victim = &ids[rng.below(ids.len() as u64) as usize];
    let r = w.nodes[via].replica.as_ref()?;
    let slot = crate::cluster::slots(r.store().head())
        .into_iter()
        .find(|s| &s.id == victim)?;
    let req = Request {
        verb: Some(Verb::Set as i32),
        path: Some(slot.path.clone()),
        rev: Some(slot.rev),
        ..Default::default()
    };
    w.request(OPERATOR, via, req);
    Some(format!("empty {}", slot.path))
}

/// One fault, chosen at random.
fn inject(w: &mut World, rng: &mut crate::consensus::SplitMix64, log: &mut Vec<String>) {
    let n = w.nodes.len();
    let pick = |rng: &mut crate::consensus::SplitMix64| rng.below(n as u64) as usize;
    let durable = w.timing.durable;
    let what = rng.below(if durable { 14 } else { 12 });
    let i = pick(rng);
    let j = pick(rng);
    let line = match what {
        0 => {
            let a = rng.below(3) + 1;
            let groups: Vec<Vec<usize>> = (0..a)
                .map(|g| {
                    (0..n)
                        .filter(|k| (k + g as usize).is_multiple_of(a as usize))
                        .collect()
                })
                .collect();
            let refs: Vec<&[usize]> = groups.iter().map(|g| g.as_slice()).collect();
            w.partition(&refs);
            format!("partition {groups:?}")
        }
        1 | 2 => {
            w.heal();
            "heal".to_string()
        }
        3 => {
            w.cut(i, j);
            format!("cut {i}-{j}")
        }
        4 => {
            w.cut_one_way(i, j);
            format!("cut {i}->{j}")
        }
        5 | 6 => {
            if w.nodes[i].paused {
                w.resume(i);
                format!("resume {i}")
            } else {
                w.pause(i);
                format!("pause {i}")
            }
        }
        7 => {
            // With data directories any process may crash: it comes back
            // with its id and what it had synced.
            if (durable && w.nodes[i].replica.is_some()) || may_crash(w, i) {
                w.crash(i);
                format!("crash {i}")
            } else {
                return;
            }
        }
        8 => {
            if w.nodes[i].replica.is_none() {
                w.restart(i);
                format!("restart {i} as {}", w.nodes[i].id)
            } else {
                return;
            }
        }
        12 => {
            // A data directory lost: the node comes back as a new id, so
            // its old id's state is gone, as in a crash without one.
            if may_crash(w, i) {
                w.restart_lost_disk(i);
                format!("restart {i} with its disk lost, as {}", w.nodes[i].id)
            } else {
                return;
            }
        }
        13 => {
            // Power cut: every process at once.
            for k in 0..n {
                if w.nodes[k].replica.is_some() {
                    w.crash(k);
                }
            }
            "crash every node".to_string()
        }
        9 => match add_slot(w, rng) {
            Some(line) => line,
            None => return,
        },
        10 => match empty_slot(w, rng) {
            Some(line) => line,
            None => return,
        },
        _ => {
            w.drop = [0.0, 0.01, 0.05, 0.2][rng.below(4) as usize];
            format!("drop {}", w.drop)
        }
    };
    log.push(format!("{:7} {line}", w.now));
}

/// The flags of a randomized run; half the runs have data directories.
fn random_timing(rng: &mut crate::consensus::SplitMix64) -> Timing {
    let timing = Timing {
        timeout_ms: [2_000, 3_000, 5_000][rng.below(3) as usize],
        pulse_ms: [500, 1_000][rng.below(2) as usize],
        fill_ms: 30 + rng.below(120),
        alpha: [50, 50, 20, 7][rng.below(4) as usize],
        history_revs: [2_000, 50][rng.below(2) as usize],
        durable: false,
    };
    // Drawn last, so memory-only runs are the ones their seed always gave.
    Timing {
        durable: rng.chance(0.5),
        ..timing
    }
}

/// Chance per output with early messages or answers (durable runs) that
/// its node crashes between sending them and its sync, and per output
/// whose records were left waiting that it crashes right after it
/// (docs/storage.md#early-answers). In 3,000 seeds (half of them
/// durable), 481 crashes came right after early answers alone.
const TORN_CRASH: f64 = 0.01;

/// One randomized run; `Err` describes what went wrong, with the faults.
fn run_seed(seed: u64) -> Result<(), String> {
    let mut rng = crate::consensus::SplitMix64::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 11);
    let cals = 1 + rng.below(5) as usize;
    let spares = rng.below(3) as usize;
    let timing = random_timing(&mut rng);
    let mut w = form(seed, cals, spares, timing);
    w.dup = [0.0, 0.02][rng.below(2) as usize];
    w.delay_max_ms = 1 + rng.below(20);
    let mut log = Vec::new();
    let start = w.now;
    let mut k = 0u64;
    // With data directories, now and then a node dies between what it
    // sends before its sync and that sync, or with records waiting.
    w.torn_crash = TORN_CRASH;
    while w.now < start + FAULT_MS {
        if rng.chance(0.1) {
            inject(&mut w, &mut rng, &mut log);
        }
        for _ in 0..rng.below(4) {
            let live = w.live();
            if let Some(&i) = live.get(rng.below(live.len().max(1) as u64) as usize) {
                k += 1;
                w.set(
                    k as usize % 7,
                    i,
                    &format!("/r/{}", k % 13),
                    &format!("v{k}"),
                );
            }
        }
        w.run(50 + rng.below(200));
        log.append(&mut w.torn_log);
        if let Some(v) = w.oracle.violations.first() {
            return Err(format!(
                "{v}\n{}\nfaults:\n{}",
                describe(&w),
                log.join("\n")
            ));
        }
    }
    // Faults stop: everything heals, every process runs, no loss.
    w.torn_crash = 0.0;
    w.heal();
    w.drop = 0.0;
    w.dup = 0.0;
    for i in 0..w.nodes.len() {
        w.resume(i);
        if w.timing.durable && w.nodes[i].replica.is_none() {
            w.restart(i);
        }
    }
    log.push(format!("{:7} all healed", w.now));
    // Healed, and every dead id kicked: a slot of a process that is gone
    // (crashed without a data directory, or restarted with its disk lost
    // under a new id) must be emptied, or the cluster runs with less
    // fault tolerance than its slots say. Only then does the quiet window
    // below open: the kick of a dead CAL may come `-timeout` after the
    // promotion of a CAL that joined after the heal (it counts every CAL
    // as heard from when it joins), and that kick is not a loop.
    if !w.run_until_true(RECOVER_MS, |w| healed(w) && no_dead_cal(w)) {
        return Err(format!(
            "did not heal within {RECOVER_MS} ms after the faults stopped\n{}\nfaults:\n{}",
            describe(&w),
            log.join("\n")
        ));
    }
    // Nobody tries to kick anyone in a loop once everything is healed.
    let kicks = |w: &World| -> u64 {
        w.nodes
            .iter()
            .filter_map(|n| n.replica.as_ref())
            .map(|r| r.stats().kicks_proposed)
            .sum()
    };
    // Dead CALs may still be kicked now (once each), and an operator's
    // request from the fault phase may still empty a slot; but once that
    // settled, nobody tries to kick anyone in a loop. (The scenarios above
    // check that no healthy CAL is kicked.)
    w.run(w.timing.timeout_ms + 1_000);
    let before = kicks(&w);
    w.run(2 * w.timing.timeout_ms);
    if kicks(&w) > before {
        return Err(format!(
            "kicks proposed in a quiet window after the cluster healed: {}\n{}\nfaults:\n{}",
            kicks(&w) - before,
            describe(&w),
            log.join("\n")
        ));
    }
    // And writes go through every CAL.
    let cals: Vec<usize> = w.live().into_iter().filter(|&i| w.is_cal(i)).collect();
    for i in cals {
        let before = w.rev(i);
        w.set(99, i, "/after/heal", &format!("through {i}"));
        let ok = w.run_until_true(10_000, |w| w.live().iter().all(|&j| w.rev(j) > before));
        if !ok {
            return Err(format!(
                "a write through {i} was not applied everywhere\n{}",
                describe(&w)
            ));
        }
    }
    if let Some(v) = w.oracle.violations.first() {
        return Err(format!(
            "{v}\n{}\nfaults:\n{}",
            describe(&w),
            log.join("\n")
        ));
    }
    Ok(())
}

/// Every id in the slots (as the first live node knows them) is a running
/// node's.
fn no_dead_cal(w: &World) -> bool {
    let Some(&first) = w.live().first() else {
        return false;
    };
    cal_ids(w, first)
        .iter()
        .all(|id| w.live().iter().any(|&i| &w.nodes[i].id == id))
}

fn seeds_for(part: u64, parts: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("DOOZER_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return if part == 0 { vec![seed] } else { Vec::new() };
    }
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse().ok());
    let n = env("DOOZER_SIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    // A long run that stopped at a failure goes on from where it was.
    let first = env("DOOZER_SIM_FIRST_SEED").unwrap_or(0);
    (first..n).filter(|s| s % parts == part).collect()
}

fn check_seeds(part: u64, parts: u64) {
    // A long run may go on past failures and list them all at the end.
    let keep_going = std::env::var_os("DOOZER_SIM_KEEP_GOING").is_some();
    let mut failed = Vec::new();
    for seed in seeds_for(part, parts) {
        // A long run says how far it got (seen with --nocapture).
        if seed % 10_000 < parts && seed > 0 {
            eprintln!("membership simulation: seed {seed} reached");
        }
        if let Err(e) = run_seed(seed) {
            let msg = format!(
                "membership simulation seed {seed} failed: {e}\n\
                 replay: DOOZER_SIM_SEED={seed} DOOZER_SIM_TRACE=1 cargo test -p doozerd --lib sim::tests::random"
            );
            if !keep_going {
                panic!("{msg}");
            }
            eprintln!("{msg}");
            failed.push(seed);
        }
    }
    assert!(failed.is_empty(), "seeds that failed: {failed:?}");
}

/// Seeds beyond the default range that once failed (found by long runs,
/// docs/cluster.md "Long runs"), kept after their fix: 10404 (attach tried a
/// member that had just refused), 35347 (a kick of a dead CAL queued
/// behind writes expired undecided: kicks go first), 39082 (a kicked CAL
/// the others still waited for could not attach: writing its node files
/// needed its own votes; it now follows without them when a write is not
/// decided in time), 95666 (a slave followed a node that had left
/// consensus and asked it again and again for a slot, each READONLY
/// answer keeping the otherwise silent stream looking alive), 72483 (the
/// quiet window opened before a dead CAL was kicked: a CAL promoted after
/// the heal counts it as heard from for `-timeout`; the window now opens
/// once every dead id is out of the slots), 38282 (the only CAL left,
/// behind and out of consensus, could not attach: every member refused to
/// write its node files; it now follows without them), 131689 (a slave
/// crashed with its slot claim in flight, decided after: a set of two
/// with a dead CAL, which no cluster survives; the simulator no longer
/// injects that crash), 199339 (a crash while an operator's emptying of a
/// live CAL's slot was undecided: decided after, it left a set of two
/// with the dead CAL; not injected either), 318177 (two CALs restarted
/// at the same seqn, far behind, each gave up catching up in turn,
/// copied the other's store as of that seqn, rejoined there and gave up
/// again, for good: a node that gave up now takes no copy or resume from
/// a member no further than where it gave up).
const SEEDS_THAT_FAILED: &[u64] = &[
    10404, 35347, 38282, 39082, 72483, 95666, 131689, 199339, 318177,
];

#[test]
fn seeds_that_once_failed_pass() {
    if std::env::var("DOOZER_SIM_SEED").is_ok() {
        return; // one seed is replayed by part 0
    }
    for &seed in SEEDS_THAT_FAILED {
        if let Err(e) = run_seed(seed) {
            panic!("membership simulation seed {seed} failed: {e}");
        }
    }
}

// Two halves so the default test runner uses both cores.
#[test]
fn random_membership_runs_are_safe_and_heal_part_0() {
    check_seeds(0, 2);
}

#[test]
fn random_membership_runs_are_safe_and_heal_part_1() {
    check_seeds(1, 2);
}
