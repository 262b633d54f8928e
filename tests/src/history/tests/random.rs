//! Randomized histories: generated from a sequential model of the store,
//! then checked as they are and after mutations that make them wrong.

use std::time::Instant;

use super::generate::{cfg, generate, GenCfg};
use super::*;

#[test]
fn random_correct_histories_pass() {
    for seed in 0..400u64 {
        let c = cfg(
            20 + (seed as usize % 60),
            [0.0, 0.05, 0.2][seed as usize % 3],
        );
        let h = generate(seed, &c);
        if let Err(v) = check_history(&h) {
            panic!(
                "seed {seed}: correct history rejected:\n{v}\nfull history:\n{}",
                format_history(&h)
            );
        }
    }
}

fn completed_set(op: &Op) -> Option<(&str, &[u8], i64)> {
    match (&op.call, &op.result) {
        (Call::Set { path, body, .. }, Some(Outcome::Rev(r))) => {
            Some((path.as_str(), body.as_slice(), *r))
        }
        _ => None,
    }
}

#[test]
fn random_stale_linearizable_reads_fail() {
    let mut mutated = 0;
    for seed in 0..400u64 {
        let mut h = generate(seed, &cfg(60, [0.0, 0.1][seed as usize % 2]));
        // A read L, a SET S of the same path that completed before L
        // was invoked, and an older SET S' of that path: make L read S'.
        let mut found = None;
        'outer: for (l, lop) in h.iter().enumerate() {
            let (Call::LinGet { path }, Some(Outcome::ReadAt { .. })) = (&lop.call, &lop.result)
            else {
                continue;
            };
            for s in &h {
                let Some((sp, _, sr)) = completed_set(s) else {
                    continue;
                };
                if sp != path || s.complete_or_max() >= lop.invoke_time {
                    continue;
                }
                for s2 in &h {
                    if let Some((p2, b2, r2)) = completed_set(s2) {
                        if p2 == path && r2 < sr {
                            found = Some((l, b2.to_vec(), r2));
                            break 'outer;
                        }
                    }
                }
            }
        }
        let Some((l, body, rev)) = found else {
            continue;
        };
        if let Some(Outcome::ReadAt {
            body: b, rev: r, ..
        }) = &mut h[l].result
        {
            *b = body;
            *r = rev;
        }
        mutated += 1;
        if check_linearizable(&h).is_ok() {
            panic!(
                "seed {seed}: stale read of #{l} accepted:\n{}",
                format_history(&h)
            );
        }
    }
    assert!(mutated > 100, "only {mutated} histories mutated");
}

#[test]
fn random_backwards_plain_reads_fail() {
    let mut mutated = 0;
    for seed in 0..400u64 {
        let mut h = generate(seed, &cfg(60, [0.0, 0.1][seed as usize % 2]));
        // A plain GET R by client c after c's own SET S of the path; an
        // older SET S' of that path: make R read S'.
        let mut found = None;
        'outer: for (r, rop) in h.iter().enumerate() {
            let (Call::Get { path }, Some(Outcome::Read { .. })) = (&rop.call, &rop.result) else {
                continue;
            };
            for s in &h {
                let Some((sp, _, sr)) = completed_set(s) else {
                    continue;
                };
                if sp != path || s.client != rop.client || s.complete_or_max() >= rop.invoke_time {
                    continue;
                }
                for s2 in &h {
                    if let Some((p2, b2, r2)) = completed_set(s2) {
                        if p2 == path && r2 < sr {
                            found = Some((r, b2.to_vec(), r2));
                            break 'outer;
                        }
                    }
                }
            }
        }
        let Some((r, body, rev)) = found else {
            continue;
        };
        h[r].result = Some(Outcome::Read { body, rev });
        mutated += 1;
        if check_sequential_reads(&h).is_ok() {
            panic!(
                "seed {seed}: backwards read #{r} accepted:\n{}",
                format_history(&h)
            );
        }
    }
    assert!(mutated > 100, "only {mutated} histories mutated");
}

#[test]
fn random_swapped_revisions_fail() {
    let mut mutated = 0;
    for seed in 0..200u64 {
        let mut h = generate(seed, &cfg(40, 0.05));
        let sets: Vec<usize> = (0..h.len())
            .filter(|&i| completed_set(&h[i]).is_some())
            .collect();
        let mut pair = None;
        'outer: for &a in &sets {
            for &b in &sets {
                if h[a].complete_or_max() < h[b].invoke_time {
                    pair = Some((a, b));
                    break 'outer;
                }
            }
        }
        let Some((a, b)) = pair else { continue };
        let (ra, rb) = (h[a].result.clone(), h[b].result.clone());
        h[a].result = rb;
        h[b].result = ra;
        mutated += 1;
        assert!(check_linearizable(&h).is_err(), "seed {seed}");
    }
    assert!(mutated > 100, "only {mutated} histories mutated");
}

#[test]
fn random_lost_writes_fail() {
    // Without DELs or timeouts: a linearizable read that returned the
    // value of a SET which completed before the read was invoked now
    // reads the file as missing, as if the write had been lost.
    let mut mutated = 0;
    for seed in 0..300u64 {
        let mut c = cfg(50, 0.0);
        c.dels = false;
        let mut h = generate(seed, &c);
        let mut target = None;
        for (l, lop) in h.iter().enumerate() {
            let (Call::LinGet { path }, Some(Outcome::ReadAt { rev, .. })) =
                (&lop.call, &lop.result)
            else {
                continue;
            };
            if *rev == 0 {
                continue;
            }
            let s = h
                .iter()
                .position(|o| completed_set(o).is_some_and(|(p, _, r)| p == path && r == *rev));
            if let Some(s) = s {
                if h[s].complete_or_max() < lop.invoke_time {
                    target = Some(l);
                    break;
                }
            }
        }
        let Some(l) = target else { continue };
        if let Some(Outcome::ReadAt { body, rev, .. }) = &mut h[l].result {
            // As if the write were lost and the file still missing.
            *body = Vec::new();
            *rev = 0;
        }
        mutated += 1;
        if check_linearizable(&h).is_ok() {
            panic!(
                "seed {seed}: lost write (#{l}) accepted:\n{}",
                format_history(&h)
            );
        }
    }
    assert!(mutated > 50, "only {mutated} histories mutated");
}

#[test]
fn large_history_on_one_path_checks_quickly() {
    let c = GenCfg {
        clients: 6,
        ops: 300,
        paths: 1,
        p_timeout: 0.03,
        max_gap: 10,
        max_dur: 60,
        dels: true,
    };
    for seed in 0..5 {
        let h = generate(1000 + seed, &c);
        let t = Instant::now();
        check_history(&h).unwrap();
        let ok_time = t.elapsed();
        // And a stale read planted at the end.
        let mut bad = h.clone();
        let first = bad
            .iter()
            .filter_map(completed_set)
            .min_by_key(|s| s.2)
            .unwrap();
        let (fb, fr) = (first.1.to_vec(), first.2);
        let end = bad
            .iter()
            .map(|o| o.complete_or_max())
            .filter(|&t| t != Micros::MAX)
            .max()
            .unwrap();
        bad.push(lget(
            99,
            end + 10,
            end + 20,
            "/f0",
            i64::from(u32::MAX),
            std::str::from_utf8(&fb).unwrap(),
            fr,
        ));
        let t = Instant::now();
        assert!(check_linearizable(&bad).is_err());
        eprintln!(
            "seed {seed}: ok in {ok_time:?}, violation found in {:?}",
            t.elapsed()
        );
    }
}
