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
    (0..w.nodes.len())
        .map(|i| {
            let n = &w.nodes[i];
            format!(
                "  slot {i} {} rev {} cal {} paused {} demotions {} promotions {} slots {:?}",
                n.id,
                w.rev(i),
                w.is_cal(i),
                n.paused,
                n.demotions,
                n.promotions,
                w.slots(i)
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
