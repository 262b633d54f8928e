//! Tests of [`Store`]: applying, history, waits; a model-based proptest; a
//! large directory.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn set(path: &str, rev: Rev, body: &str) -> Mutation {
    Mutation::Set {
        path: path.into(),
        rev,
        body: b(body),
    }
}

fn del(path: &str, rev: Rev) -> Mutation {
    Mutation::Del {
        path: path.into(),
        rev,
    }
}

fn glob(g: &str) -> Glob {
    Glob::parse(g).expect("valid glob")
}

/// Applies `m` at the next rev.
fn step(s: &mut Store, m: &Mutation) -> Applied {
    let rev = s.rev() + 1;
    s.apply(rev, m)
}

fn head_get(s: &Store, path: &str) -> (Bytes, Rev) {
    s.snapshot(None).expect("head").get(path).expect("readable")
}

#[test]
fn new_store_is_empty_at_rev_0() {
    let s = Store::new(10);
    assert_eq!(s.rev(), 0);
    assert_eq!(s.oldest_rev(), 0);
    assert_eq!(s.history_revs(), 10);
    let snap = s.snapshot(Some(0)).expect("rev 0 readable");
    assert_eq!(snap.rev(), 0);
    assert_eq!(snap.stat("/"), Ok((0, wire_rev::DIR)));
    assert_eq!(s.snapshot(Some(1)).err(), Some(ReadAt::Future));
    assert_eq!(s.waits_pending(), 0);
    assert_eq!(Store::new(0).history_revs(), 1);
}

#[test]
fn set_and_del_events() {
    let mut s = Store::new(100);
    let a = step(&mut s, &set("/a/b", 0, "x"));
    assert_eq!(a.error, None);
    assert_eq!(
        a.event,
        Event {
            rev: 1,
            path: Arc::from("/a/b"),
            body: b("x"),
            flags: flags::SET
        }
    );
    assert!(a.woken.is_empty());
    assert_eq!(head_get(&s, "/a/b"), (b("x"), 1));
    let a = step(&mut s, &del("/a/b", 1));
    assert_eq!(a.error, None);
    assert_eq!(
        a.event,
        Event {
            rev: 2,
            path: Arc::from("/a/b"),
            body: Bytes::new(),
            flags: flags::DEL
        }
    );
    assert_eq!(head_get(&s, "/a/b"), (Bytes::new(), 0));
    let root = s.snapshot(None).expect("head");
    assert_eq!(root.stat("/a"), Ok((0, 0)), "emptied dir removed");
    assert_eq!(s.rev(), 2);
}

#[test]
fn conditional_writes() {
    let mut s = Store::new(100);
    step(&mut s, &set("/f", 0, "1")); // rev 1
    step(&mut s, &set("/g", 0, "1")); // rev 2
                                      // Create-only fails on an existing file.
    let a = step(&mut s, &set("/f", 0, "2")); // rev 3
    assert_eq!(a.error, Some(StoreError::RevMismatch));
    assert_eq!(head_get(&s, "/f"), (b("1"), 1));
    // rev >= file rev succeeds, even beyond it.
    assert_eq!(step(&mut s, &set("/f", 1, "2")).error, None); // rev 4
    assert_eq!(head_get(&s, "/f"), (b("2"), 4));
    assert_eq!(
        step(&mut s, &set("/f", 3, "3")).error,
        Some(StoreError::RevMismatch)
    ); // 5
    assert_eq!(step(&mut s, &set("/f", 99, "3")).error, None); // rev 6
                                                               // Clobber always succeeds.
    assert_eq!(step(&mut s, &set("/f", -1, "4")).error, None); // rev 7
    assert_eq!(head_get(&s, "/f"), (b("4"), 7));
    // Del is conditional the same way.
    assert_eq!(
        step(&mut s, &del("/f", 6)).error,
        Some(StoreError::RevMismatch)
    );
    assert_eq!(step(&mut s, &del("/f", 7)).error, None);
    assert_eq!(step(&mut s, &set("/g", -1, "x")).error, None);
    assert_eq!(step(&mut s, &del("/g", -1)).error, None);
    assert_eq!(
        s.snapshot(None).expect("head").stat("/"),
        Ok((1, wire_rev::DIR))
    );
}

#[test]
fn deleting_a_missing_file_is_a_del_event() {
    let mut s = Store::new(100);
    for cond in [0, -1, 5] {
        let a = step(&mut s, &del("/nope/x", cond));
        assert_eq!(a.error, None);
        assert_eq!(a.event.flags, flags::DEL);
        assert_eq!(&*a.event.path, "/nope/x");
    }
    assert_eq!(
        s.snapshot(None).expect("head").stat("/"),
        Ok((0, wire_rev::DIR))
    );
    let a = step(&mut s, &del("/nope", -2));
    assert_eq!(a.error, Some(StoreError::RevMismatch));
}

#[test]
fn failures_write_ctl_err() {
    let mut s = Store::new(100);
    step(&mut s, &set("/d/f", -1, "x")); // rev 1
    let cases = [
        (set("/d", -1, "y"), StoreError::IsDir),
        (set("/d/f/g", -1, "y"), StoreError::NotDir),
        (del("/d", -1), StoreError::IsDir),
        (del("/d/f/g", -1), StoreError::NotDir),
        (set("/d/f", 0, "y"), StoreError::RevMismatch),
        (set("d", -1, "y"), StoreError::BadPath),
        (del("/a b", -1), StoreError::BadPath),
        (set("/", -1, "y"), StoreError::IsDir),
    ];
    for (m, err) in cases {
        let a = step(&mut s, &m);
        let rev = s.rev();
        assert_eq!(a.error, Some(err.clone()), "{m:?}");
        assert_eq!(
            a.event,
            Event {
                rev,
                path: Arc::from("/ctl/err"),
                body: b(&err.to_string()),
                flags: flags::SET
            }
        );
        assert_eq!(head_get(&s, "/ctl/err"), (b(&err.to_string()), rev));
        assert_eq!(head_get(&s, "/d/f"), (b("x"), 1), "target untouched");
    }
    assert_eq!(head_get(&s, "/ctl/err").0, b("is a directory"));
}

#[test]
fn error_when_ctl_err_cannot_be_written() {
    let mut s = Store::new(100);
    step(&mut s, &set("/ctl/err/x", -1, "in the way")); // rev 1
    let before = s.snapshot(None).expect("head");
    let a = step(&mut s, &set("/ctl/err/x", 0, "y"));
    assert_eq!(a.error, Some(StoreError::RevMismatch));
    assert_eq!(a.event.flags, flags::OTHER);
    assert_eq!(&*a.event.path, "/");
    assert_eq!(s.rev(), 2, "the rev is consumed");
    let after = s.snapshot(None).expect("head");
    assert_eq!(after.get("/ctl/err/x"), before.get("/ctl/err/x"));
}

#[test]
fn nop() {
    let mut s = Store::new(100);
    step(&mut s, &set("/a", -1, "x"));
    let a = step(&mut s, &Mutation::Nop);
    assert_eq!(
        a.event,
        Event {
            rev: 2,
            path: Arc::from("/"),
            body: Bytes::new(),
            flags: flags::OTHER
        }
    );
    assert_eq!(a.error, None);
    assert_eq!(s.rev(), 2);
    let snap = s.snapshot(Some(2)).expect("head");
    assert_eq!(snap.rev(), 2);
    assert_eq!(snap.get("/a"), Ok((b("x"), 1)));
}

#[test]
#[should_panic(expected = "out of order")]
fn apply_out_of_order_panics() {
    let mut s = Store::new(10);
    s.apply(2, &Mutation::Nop);
}

#[test]
fn history_window_and_too_late() {
    let mut s = Store::new(3);
    step(&mut s, &set("/a", -1, "1")); // 1
    assert_eq!(s.oldest_rev(), 0);
    step(&mut s, &set("/a", -1, "2")); // 2
    assert_eq!(s.oldest_rev(), 0, "rev 0 counts while in the window");
    step(&mut s, &set("/a", -1, "3")); // 3
    assert_eq!(s.oldest_rev(), 1);
    assert_eq!(s.snapshot(Some(0)).err(), Some(ReadAt::TooLate));
    assert_eq!(s.snapshot(Some(-5)).err(), Some(ReadAt::TooLate));
    for r in 1..=3 {
        let snap = s.snapshot(Some(r)).expect("in window");
        assert_eq!(snap.rev(), r);
        assert_eq!(snap.get("/a"), Ok((b(&r.to_string()), r)));
    }
    assert_eq!(s.snapshot(Some(4)).err(), Some(ReadAt::Future));
    for _ in 0..5 {
        step(&mut s, &Mutation::Nop);
    }
    assert_eq!(s.rev(), 8);
    assert_eq!(s.oldest_rev(), 6);
    assert_eq!(s.snapshot(Some(5)).err(), Some(ReadAt::TooLate));
    assert_eq!(s.snapshot(Some(6)).map(|x| x.rev()), Ok(6));
    assert_eq!(s.snapshot(None).map(|x| x.rev()), Ok(8));
    assert_eq!(s.event(5), None);
    assert_eq!(s.event(6).map(|e| e.rev), Some(6));
    assert_eq!(s.event(9), None);

    // Waits from before the window are too late; within it they are not.
    assert_eq!(s.wait(1, glob("/**"), 5), Err(StoreError::TooLate));
    assert_eq!(s.wait(1, glob("/**"), 0), Err(StoreError::TooLate));
    assert_eq!(
        s.wait(1, glob("/**"), 6).map(|e| e.map(|e| e.rev)),
        Ok(Some(6))
    );
}

#[test]
fn history_of_one_keeps_only_head() {
    let mut s = Store::new(1);
    assert_eq!(s.snapshot(Some(0)).map(|x| x.rev()), Ok(0));
    step(&mut s, &set("/a", -1, "1"));
    assert_eq!(s.oldest_rev(), 1);
    assert_eq!(s.snapshot(Some(0)).err(), Some(ReadAt::TooLate));
    assert_eq!(
        s.wait(1, glob("/a"), 1).map(|e| e.map(|e| e.rev)),
        Ok(Some(1))
    );
    step(&mut s, &set("/a", -1, "2"));
    assert_eq!(s.wait(1, glob("/a"), 1), Err(StoreError::TooLate));
    assert_eq!(
        s.wait(1, glob("/a"), 2).map(|e| e.map(|e| e.rev)),
        Ok(Some(2))
    );
}

#[test]
fn wait_finds_events_in_history() {
    let mut s = Store::new(100);
    step(&mut s, &set("/a", -1, "1")); // 1
    step(&mut s, &set("/b/c", -1, "2")); // 2
    step(&mut s, &Mutation::Nop); // 3
    step(&mut s, &del("/a", -1)); // 4
    let first = |s: &mut Store, g: &str, from: Rev| {
        s.wait(7, glob(g), from)
            .expect("not too late")
            .map(|e| (e.rev, e.path.to_string(), e.flags))
    };
    assert_eq!(first(&mut s, "/a", 0), Some((1, "/a".into(), flags::SET)));
    assert_eq!(first(&mut s, "/a", -3), Some((1, "/a".into(), flags::SET)));
    assert_eq!(first(&mut s, "/a", 2), Some((4, "/a".into(), flags::DEL)));
    assert_eq!(
        first(&mut s, "/b/*", 1),
        Some((2, "/b/c".into(), flags::SET))
    );
    assert_eq!(first(&mut s, "/**", 3), Some((3, "/".into(), flags::OTHER)));
    // `*` may match nothing, so `/*` matches the NOP path `/`, as in Go.
    assert_eq!(first(&mut s, "/*", 3), Some((3, "/".into(), flags::OTHER)));
    assert_eq!(first(&mut s, "/?", 3), Some((4, "/a".into(), flags::DEL)));
    assert_eq!(s.waits_pending(), 0, "answered waits are not registered");
    assert_eq!(first(&mut s, "/b/*", 3), None);
    assert_eq!(s.waits_pending(), 1);
}

#[test]
fn registered_waits_wake_on_matching_apply() {
    let mut s = Store::new(100);
    step(&mut s, &set("/x", -1, "0")); // 1
    assert_eq!(s.wait(1, glob("/a/**"), 2), Ok(None));
    assert_eq!(s.wait(2, glob("/a/b"), 0), Ok(None));
    assert_eq!(s.wait(3, glob("/**"), 5), Ok(None), "future from rev");
    assert_eq!(s.wait(4, glob("/ctl/err"), 1), Ok(None));
    assert_eq!(s.waits_pending(), 4);

    let a = step(&mut s, &set("/z", -1, "1")); // 2: matches nothing
    assert!(a.woken.is_empty());
    let a = step(&mut s, &set("/a/b", -1, "v")); // 3
    assert_eq!(
        a.woken,
        vec![
            Woken::Wait {
                id: 1,
                event: a.event.clone()
            },
            Woken::Wait {
                id: 2,
                event: a.event.clone()
            },
        ]
    );
    assert_eq!(s.waits_pending(), 2);
    let a = step(&mut s, &Mutation::Nop); // 4: /** waits from 5
    assert!(a.woken.is_empty());
    let a = step(&mut s, &del("/a/b", 0)); // 5: fails, writes /ctl/err
    assert_eq!(a.error, Some(StoreError::RevMismatch));
    let ids: Vec<WaitId> = a
        .woken
        .iter()
        .map(|w| match w {
            Woken::Wait { id, event } => {
                assert_eq!(&*event.path, "/ctl/err");
                *id
            }
            Woken::Rev { id } => *id,
            Woken::Lost { id } => panic!("wait {id} lost without a reset"),
        })
        .collect();
    assert_eq!(ids, [3, 4]);
    assert_eq!(s.waits_pending(), 0);
}

#[test]
fn wait_rev_and_cancel() {
    let mut s = Store::new(100);
    s.wait_rev(10, 2);
    s.wait_rev(11, 2);
    s.wait_rev(12, 3);
    s.wait_rev(13, 3);
    assert_eq!(s.wait(14, glob("/**"), 1), Ok(None));
    assert_eq!(s.wait(15, glob("/**"), 1), Ok(None));
    assert_eq!(s.waits_pending(), 6);
    s.cancel(11);
    s.cancel(13);
    s.cancel(15);
    s.cancel(999); // unknown: no effect
    assert_eq!(s.waits_pending(), 3);

    let a = step(&mut s, &Mutation::Nop); // 1
    assert_eq!(
        a.woken,
        vec![Woken::Wait {
            id: 14,
            event: a.event.clone()
        }]
    );
    let a = step(&mut s, &Mutation::Nop); // 2
    assert_eq!(a.woken, vec![Woken::Rev { id: 10 }]);
    let a = step(&mut s, &set("/q", -1, "")); // 3
    assert_eq!(a.woken, vec![Woken::Rev { id: 12 }]);
    assert_eq!(s.waits_pending(), 0);
    assert_eq!(s.snapshot(Some(3)).map(|x| x.rev()), Ok(3));
}

#[test]
fn re_registering_a_rev_wait_moves_it() {
    let mut s = Store::new(10);
    s.wait_rev(1, 5);
    s.wait_rev(1, 2);
    assert_eq!(s.waits_pending(), 1);
    step(&mut s, &Mutation::Nop);
    let a = step(&mut s, &Mutation::Nop);
    assert_eq!(a.woken, vec![Woken::Rev { id: 1 }]);
    for _ in 0..4 {
        assert!(step(&mut s, &Mutation::Nop).woken.is_empty());
    }
}

#[test]
fn a_thousand_watchers() {
    let mut s = Store::new(100);
    for id in 0..1000u64 {
        let g = format!("/w/{}", id % 10);
        assert_eq!(s.wait(id, glob(&g), 1), Ok(None));
    }
    let a = step(&mut s, &set("/w/3", -1, "x"));
    assert_eq!(a.woken.len(), 100);
    assert_eq!(s.waits_pending(), 900);
    for id in 0..1000u64 {
        s.cancel(id);
    }
    assert_eq!(s.waits_pending(), 0);
}

#[test]
fn snapshots_are_independent_of_later_changes() {
    let mut s = Store::new(100);
    step(&mut s, &set("/a/b", -1, "1"));
    let old = s.snapshot(None).expect("head");
    step(&mut s, &set("/a/b", -1, "2"));
    step(&mut s, &del("/a/b", -1));
    assert_eq!(old.get("/a/b"), Ok((b("1"), 1)));
    assert_eq!(old.rev(), 1);
    let g = glob("/**");
    assert_eq!(old.walk_all(&g).len(), 1);
    assert_eq!(s.snapshot(None).expect("head").walk_all(&g).len(), 0);
}

#[test]
fn large_directory() {
    const N: usize = 100_000;
    let mut s = Store::new(2000);
    let body = Bytes::from(vec![b'v'; 100]);
    for i in 0..N {
        let m = Mutation::Set {
            path: format!("/big/f{i:06}"),
            rev: 0,
            body: body.clone(),
        };
        assert_eq!(step(&mut s, &m).error, None);
    }
    let at_n = s.snapshot(None).expect("head");
    assert_eq!(at_n.stat("/big"), Ok((N, wire_rev::DIR)));
    for i in (0..N).step_by(997) {
        let m = set(&format!("/big/f{i:06}"), i as Rev + 1, "new");
        assert_eq!(step(&mut s, &m).error, None);
    }
    let m = set("/big/f000005", 0, "x");
    assert_eq!(step(&mut s, &m).error, Some(StoreError::RevMismatch));
    assert_eq!(step(&mut s, &del("/big/f000001", -1)).error, None);

    let head = s.snapshot(None).expect("head");
    assert_eq!(head.stat("/big"), Ok((N - 1, wire_rev::DIR)));
    assert_eq!(head.get("/big/f000997").map(|g| g.0), Ok(b("new")));
    assert_eq!(head.get("/big/f000998"), Ok((body.clone(), 999)));
    assert_eq!(head.get("/big/f000001"), Ok((Bytes::new(), 0)));
    assert_eq!(head.getdir("/big", 0), Ok("f000000".into()));
    assert_eq!(head.getdir("/big", 1), Ok("f000002".into()));
    assert_eq!(
        at_n.get("/big/f000997"),
        Ok((body.clone(), 998)),
        "old rev intact"
    );
    assert_eq!(at_n.get("/big/f000001"), Ok((body, 2)));
    let g = glob("/big/f09999?");
    let names: Vec<String> = head.walk_all(&g).into_iter().map(|e| e.path).collect();
    assert_eq!(names.len(), 10);
    assert_eq!(names[0], "/big/f099990");
    assert_eq!(head.walk_all(&glob("/big/**")).len(), N - 1);
    assert_eq!(s.oldest_rev(), s.rev() - 1999);
}

/// The model: the whole tree as a sorted map of files, cloned per rev.
type Model = BTreeMap<String, (Bytes, Rev)>;

/// Applies `m` to the model the slow, obvious way, returning the error the
/// store should report.
fn model_apply(model: &mut Model, rev: Rev, m: &Mutation) -> Option<StoreError> {
    let is_dir = |model: &Model, p: &str| {
        // The root is a directory even when empty.
        p == "/" || model.keys().any(|k| k.starts_with(&format!("{p}/")))
    };
    // A proper ancestor that is a file.
    let through_file = |model: &Model, p: &str| {
        p.match_indices('/')
            .skip(1)
            .any(|(i, _)| model.contains_key(&p[..i]))
    };
    let ok = |cond: Rev, cur: Rev| cond == -1 || cond >= cur;
    let res = match m {
        Mutation::Nop => Ok(()),
        Mutation::Set {
            path,
            rev: cond,
            body,
        } => {
            if validate_path(path).is_err() {
                Err(StoreError::BadPath)
            } else if through_file(model, path) {
                Err(StoreError::NotDir)
            } else if is_dir(model, path) {
                Err(StoreError::IsDir)
            } else if !ok(*cond, model.get(path).map_or(0, |f| f.1)) {
                Err(StoreError::RevMismatch)
            } else {
                model.insert(path.clone(), (body.clone(), rev));
                Ok(())
            }
        }
        Mutation::Del { path, rev: cond } => {
            if validate_path(path).is_err() {
                Err(StoreError::BadPath)
            } else if through_file(model, path) {
                Err(StoreError::NotDir)
            } else if is_dir(model, path) {
                Err(StoreError::IsDir)
            } else if !ok(*cond, model.get(path).map_or(0, |f| f.1)) {
                Err(StoreError::RevMismatch)
            } else {
                model.remove(path);
                Ok(())
            }
        }
    };
    match res {
        Ok(()) => None,
        Err(e) => {
            let ctl_blocked = model.contains_key("/ctl") || is_dir(model, ERR_PATH);
            if !ctl_blocked {
                model.insert(ERR_PATH.into(), (b(&e.to_string()), rev));
            }
            Some(e)
        }
    }
}

/// Checks every read of `snap` against `model`.
fn check_snapshot(snap: &Snapshot, model: &Model) -> Result<(), TestCaseError> {
    let files: Vec<(String, Bytes, Rev)> = model
        .iter()
        .map(|(p, (body, rev))| (p.clone(), body.clone(), *rev))
        .collect();
    // Walking everything gives the model's files in depth-first order.
    let mut expected = files.clone();
    expected.sort_by(|a, b| {
        let ka: Vec<&str> = a.0.split('/').collect();
        let kb: Vec<&str> = b.0.split('/').collect();
        ka.cmp(&kb)
    });
    let walked: Vec<(String, Bytes, Rev)> = snap
        .walk_all(&glob("/**"))
        .into_iter()
        .map(|e| (e.path, e.body, e.rev))
        .collect();
    prop_assert_eq!(&walked, &expected);
    // Pruned walks agree with filtering the full walk by the glob.
    for g in [
        "/a/*", "/*", "/a/**", "/?/b", "/ctl/**", "/a/b", "/b*", "/**/b",
    ] {
        let g = glob(g);
        let want: Vec<&(String, Bytes, Rev)> =
            expected.iter().filter(|f| g.matches(&f.0)).collect();
        let got: Vec<(String, Bytes, Rev)> = snap
            .walk_all(&g)
            .into_iter()
            .map(|e| (e.path, e.body, e.rev))
            .collect();
        prop_assert_eq!(got.iter().collect::<Vec<_>>(), want, "{}", g.as_str());
    }
    for (p, body, rev) in &files {
        prop_assert_eq!(snap.get(p), Ok((body.clone(), *rev)));
        prop_assert_eq!(snap.stat(p), Ok((body.len(), *rev)));
    }
    // Directories: every proper prefix of a file; children from the model.
    let mut dirs: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    dirs.insert("/".into(), Default::default());
    for p in model.keys() {
        let mut parent = "/".to_owned();
        for name in p[1..].split('/') {
            dirs.entry(parent.clone())
                .or_default()
                .insert(name.to_owned());
            parent = if parent == "/" {
                format!("/{name}")
            } else {
                format!("{parent}/{name}")
            };
        }
    }
    for (d, children) in &dirs {
        if d != "/" {
            prop_assert_eq!(snap.get(d), Err(StoreError::IsDir));
        }
        prop_assert_eq!(snap.stat(d), Ok((children.len(), wire_rev::DIR)));
        let listed: Vec<String> = (0..children.len())
            .map(|i| snap.getdir(d, i).unwrap_or_default())
            .collect();
        let want: Vec<String> = children.iter().cloned().collect();
        prop_assert_eq!(listed, want);
        prop_assert_eq!(snap.getdir(d, children.len()), Err(StoreError::Range));
    }
    // A few paths that exist nowhere.
    for p in ["/zz", "/a/zz", "/a/a/a/a"] {
        if !model.contains_key(p) && !dirs.contains_key(p) {
            prop_assert_eq!(snap.stat(p), Ok((0, 0)));
        }
    }
    Ok(())
}

/// Every rev of `store`'s window (`hist` revs up to the head) reads as
/// `models` (one per rev from 0) says.
fn check_window(store: &Store, hist: u64, models: &[Model]) -> Result<(), TestCaseError> {
    let rev = store.rev();
    let oldest = store.oldest_rev();
    prop_assert_eq!(oldest, (rev + 1 - hist as Rev).max(0));
    for r in oldest..=rev {
        let snap = store.snapshot(Some(r)).expect("in window");
        prop_assert_eq!(snap.rev(), r);
        check_snapshot(&snap, &models[r as usize])?;
    }
    Ok(())
}

fn arb_path() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "(/[ab]){1,3}",
        1 => Just("/ctl/err".to_owned()),
        1 => Just("/ctl".to_owned()),
        1 => Just("/".to_owned()),
        1 => Just("/a//b".to_owned()),
    ]
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (arb_path(), -2i64..8, "[xy]{0,2}").prop_map(|(path, rev, body)| Mutation::Set {
            path,
            rev,
            body: Bytes::from(body)
        }),
        3 => (arb_path(), -2i64..8).prop_map(|(path, rev)| Mutation::Del { path, rev }),
        1 => Just(Mutation::Nop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_agrees_with_model(
        ms in proptest::collection::vec(arb_mutation(), 1..40),
        hist in 1u64..8,
    ) {
        let mut store = Store::new(hist);
        let mut models: Vec<Model> = vec![Model::new()];
        for (i, m) in ms.iter().enumerate() {
            let rev = i as Rev + 1;
            let mut model = models.last().cloned().unwrap_or_default();
            let want_err = model_apply(&mut model, rev, m);
            let applied = store.apply(rev, m);
            prop_assert_eq!(applied.error, want_err, "{:?}", m);
            prop_assert_eq!(applied.event.rev, rev);
            models.push(model);
            check_window(&store, hist, &models)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Values of several changes: each change has its own rev, and every
    /// rev in the window reads as the model says, though only every
    /// `SNAPSHOT_EVERY`-th rev keeps a snapshot of its own (the others
    /// are rebuilt from events, the changes between made in place), also
    /// once the window's start falls between two kept revs.
    #[test]
    fn every_rev_reads_as_if_each_had_its_own_snapshot(
        values in proptest::collection::vec(
            proptest::collection::vec(arb_mutation(), 0..5), 1..20),
        hist in 1u64..12,
    ) {
        let mut store = Store::new(hist);
        let mut models: Vec<Model> = vec![Model::new()];
        for (seqn, changes) in values.iter().enumerate() {
            let value = Value {
                changes: changes.clone(),
                guard: None,
                expires_after: None,
                tag: Bytes::new(),
            };
            let applied = store.apply_value(seqn as u64 + 1, &value);
            let nop = [Mutation::Nop];
            let changes = if changes.is_empty() { &nop[..] } else { &changes[..] };
            prop_assert_eq!(applied.len(), changes.len());
            for (m, a) in changes.iter().zip(&applied) {
                let rev = models.len() as Rev;
                let mut model = models.last().cloned().unwrap_or_default();
                let want_err = model_apply(&mut model, rev, m);
                prop_assert_eq!(&a.error, &want_err, "{:?}", m);
                prop_assert_eq!(a.event.rev, rev);
                models.push(model);
            }
            let rev = store.rev();
            prop_assert_eq!(rev, models.len() as Rev - 1);
            check_window(&store, hist, &models)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A replay without history (SETs in place) ends in the same tree,
    /// counts and digest as one with, and the history rebuilt after it is
    /// right; a version held meanwhile (a reader's) is never changed.
    #[test]
    fn in_place_replay_agrees_with_the_usual_one(
        ms in proptest::collection::vec(arb_mutation(), 1..40),
        prefix in 0usize..40,
        hist in 1u64..8,
    ) {
        let mut usual = Store::new(hist);
        let mut replay = Store::new(hist);
        let mut models: Vec<Model> = vec![Model::new()];
        let mut held = None;
        replay.set_keep_history(false);
        for (i, m) in ms.iter().enumerate() {
            let rev = i as Rev + 1;
            if i == prefix {
                replay.set_keep_history(true);
            }
            if i == prefix / 2 {
                held = Some((rev - 1, replay.head().clone()));
            }
            let mut model = models.last().cloned().unwrap_or_default();
            let want_err = model_apply(&mut model, rev, m);
            models.push(model);
            let a = usual.apply(rev, m);
            let b = replay.apply(rev, m);
            prop_assert_eq!(&b.error, &want_err, "{:?}", m);
            prop_assert_eq!(a.event, b.event);
            let (h, u) = (replay.head(), usual.head());
            prop_assert_eq!((h.rev(), h.files(), h.bytes(), h.digest()), (u.rev(), u.files(), u.bytes(), u.digest()));
            check_snapshot(h, &models[rev as usize])?;
            let from = if i < prefix { rev } else { replay.oldest_rev() };
            for r in from..=rev {
                let snap = replay.snapshot(Some(r)).expect("in window");
                check_snapshot(&snap, &models[r as usize])?;
            }
        }
        if let Some((r, snap)) = held {
            check_snapshot(&snap, &models[r as usize])?;
        }
    }
}

#[test]
fn snapshots_count_files_and_bytes() {
    let mut s = Store::new(10);
    let set = |p: &str, b: &'static str| Mutation::Set {
        path: p.into(),
        rev: -1,
        body: Bytes::from_static(b.as_bytes()),
    };
    s.apply(1, &set("/a", "abc"));
    s.apply(2, &set("/d/b", "12345"));
    s.apply(3, &set("/a", "x"));
    let head = s.snapshot(None).expect("head");
    assert_eq!((head.files(), head.bytes()), (2, 6));
    s.apply(
        4,
        &Mutation::Del {
            path: "/d/b".into(),
            rev: -1,
        },
    );
    s.apply(
        5,
        &Mutation::Del {
            path: "/missing".into(),
            rev: -1,
        },
    );
    let head = s.snapshot(None).expect("head");
    assert_eq!((head.files(), head.bytes()), (1, 1));
    // a failed write records /ctl/err, which is a file too
    s.apply(
        6,
        &Mutation::Set {
            path: "/a".into(),
            rev: 1,
            body: Bytes::new(),
        },
    );
    let head = s.snapshot(None).expect("head");
    assert_eq!(
        (head.files(), head.bytes()),
        (2, 1 + "rev mismatch".len() as u64)
    );
    let old = s.snapshot(Some(2)).expect("in window");
    assert_eq!((old.files(), old.bytes()), (2, 8));
}

#[test]
fn a_copy_replays_to_the_same_store() {
    // The CAL's store, with every kind of event including a failed write.
    let mut cal = Store::new(50);
    let muts = [
        set("/a", 0, "1"),
        set("/d/b", -1, "2"),
        Mutation::Nop,
        set("/a", 0, "again"), // fails: /ctl/err
        del("/d/b", -1),
        set("/e", -1, "3"),
    ];
    for m in &muts[..3] {
        step(&mut cal, m);
    }
    // A slave copies the tree at rev 3 ...
    let snap = cal.snapshot(None).expect("head");
    let files: Vec<FileCopy> = snap
        .walk_all(&glob("/**"))
        .into_iter()
        .map(|e| FileCopy {
            path: e.path,
            body: e.body,
            rev: e.rev,
        })
        .collect();
    let mut slave = Store::new(50);
    slave.wait(7, glob("/x"), 1).expect("registered");
    slave.wait_rev(8, 2);
    let woken = slave.reset_to(3, files).expect("valid copy");
    assert_eq!(woken, vec![Woken::Lost { id: 7 }, Woken::Rev { id: 8 }]);
    // ... then follows every later event.
    for m in &muts[3..] {
        let ev = step(&mut cal, m).event;
        let applied = slave.apply(ev.rev, &Mutation::replay(&ev));
        assert_eq!(applied.event, ev);
    }
    let (c, s) = (
        cal.snapshot(None).expect("head"),
        slave.snapshot(None).expect("head"),
    );
    assert_eq!(c.walk_all(&glob("/**")), s.walk_all(&glob("/**")));
    assert_eq!(
        (s.rev(), s.files(), s.bytes()),
        (c.rev(), c.files(), c.bytes())
    );
    assert_eq!(slave.oldest_rev(), 3);
    assert_eq!(slave.snapshot(Some(2)).err(), Some(ReadAt::TooLate));
}

#[test]
fn a_bad_copy_is_refused_and_changes_nothing() {
    let mut s = Store::new(5);
    step(&mut s, &set("/keep", -1, "x"));
    let bad = |path: &str, rev| FileCopy {
        path: path.into(),
        body: Bytes::new(),
        rev,
    };
    assert_eq!(s.reset_to(5, [bad("/a b", 1)]), Err(StoreError::BadPath));
    assert_eq!(s.reset_to(5, [bad("/a", 6)]), Err(StoreError::Range));
    assert_eq!(s.reset_to(5, [bad("/a", 0)]), Err(StoreError::Range));
    assert_eq!(s.reset_to(-1, []), Err(StoreError::Range));
    assert_eq!(head_get(&s, "/keep"), (Bytes::from_static(b"x"), 1));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A walk resumed after any match yields exactly the matches after it.
    #[test]
    fn walk_after_resumes_where_a_walk_stopped(
        paths in proptest::collection::vec("(/[abc]{1,2}){1,3}", 1..30),
        glob in prop_oneof![
            Just("/**"), Just("/a/**"), Just("/*"), Just("/a*/*"), Just("/**b"),
            Just("/b/c*"), Just("/*/a/**"), Just("/ab"),
        ],
    ) {
        let mut store = Store::new(1);
        for (i, p) in paths.iter().enumerate() {
            let rev = i as Rev + 1;
            store.apply(rev, &Mutation::Set { path: p.clone(), rev: -1, body: Bytes::from("x") });
        }
        let glob = Glob::parse(glob).unwrap();
        let snap = store.head();
        let all: Vec<String> = snap.walk_iter(&glob).map(|e| e.path).collect();
        for (i, p) in all.iter().enumerate() {
            let rest: Vec<String> = snap.walk_after(&glob, p).map(|e| e.path).collect();
            prop_assert_eq!(&rest[..], &all[i + 1..], "after {}", p);
        }
    }
}
