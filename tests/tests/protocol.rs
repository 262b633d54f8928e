//! The data model and the client protocol (docs/reference.md#data-model,
//! #client-protocol) on one node, over raw frames: every verb, every error
//! code reachable on one node, pipelining, reads at old and future
//! revisions, and the `/ctl` files of a new cluster (#files-under-ctl).

use std::time::Duration;

use doozer_tests::*;

fn node() -> (Doozerd, RawConn) {
    let d = Doozerd::start(&[]);
    let c = d.raw();
    (d, c)
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&value_of(r)).into_owned()
}

// ---------------------------------------------------------------------------
// GET / SET / DEL
// ---------------------------------------------------------------------------

#[test]
fn get_missing_file_is_rev_0_empty_value_no_error() {
    let (_d, mut c) = node();
    let r = c.get("/no/such/file", None);
    assert_ok(&r);
    assert_eq!(r.rev, Some(0), "{r:?}");
    assert_eq!(value_of(&r), b"");
}

#[test]
fn set_then_get_returns_body_and_rev() {
    let (_d, mut c) = node();
    let before = c.rev();
    let body = b"\x00binary\xffbody\n";
    let r1 = c.must_set("/a/b/c", 0, body);
    assert!(r1 > before, "SET rev {r1} should be after {before}");
    let r = c.get("/a/b/c", None);
    assert_ok(&r);
    assert_eq!(value_of(&r), body);
    assert_eq!(r.rev, Some(r1));
    assert!(c.rev() >= r1);
    // directories were created implicitly
    assert_eq!(c.getdir_all("/a", None), vec!["b".to_string()]);
    // an empty body is a body
    let r2 = c.must_set("/empty", 0, b"");
    let r = c.get("/empty", None);
    assert_eq!((value_of(&r), r.rev), (vec![], Some(r2)));
}

#[test]
fn set_is_conditional_on_the_file_rev() {
    let (_d, mut c) = node();
    let r1 = c.must_set("/cond", 0, b"one");
    // rev 0 = create only if absent
    let r = c.set("/cond", 0, b"two");
    assert_err(&r, ErrCode::RevMismatch);
    assert_eq!(r.rev, None, "error responses carry no result fields: {r:?}");
    // an older rev fails
    let r = c.set("/cond", r1 - 1, b"two");
    assert_err(&r, ErrCode::RevMismatch);
    // nothing changed in the file
    assert_eq!(c.must_get("/cond"), (b"one".to_vec(), r1));
    // the file's own rev succeeds
    let r2 = c.must_set("/cond", r1, b"two");
    assert!(r2 > r1);
    assert_eq!(c.must_get("/cond"), (b"two".to_vec(), r2));
    // a rev newer than the file's succeeds too (r >= file rev)
    let head = c.rev();
    let r3 = c.must_set("/cond", head + 1000, b"three");
    assert_eq!(c.must_get("/cond"), (b"three".to_vec(), r3));
    // -1 clobbers whatever is there
    let r4 = c.must_set("/cond", -1, b"four");
    assert_eq!(c.must_get("/cond"), (b"four".to_vec(), r4));
    // -1 also creates
    let r5 = c.must_set("/fresh", -1, b"x");
    assert_eq!(c.must_get("/fresh"), (b"x".to_vec(), r5));
    assert!(r1 < r2 && r2 < r3 && r3 < r4 && r4 < r5);
}

#[test]
fn get_at_an_old_rev_reads_history() {
    let (_d, mut c) = node();
    let r1 = c.must_set("/h", 0, b"v1");
    let r2 = c.must_set("/h", r1, b"v2");
    let r = c.get("/h", Some(r1));
    assert_ok(&r);
    assert_eq!((value_of(&r), r.rev), (b"v1".to_vec(), Some(r1)));
    let r = c.get("/h", Some(r2));
    assert_eq!((value_of(&r), r.rev), (b"v2".to_vec(), Some(r2)));
    // before it was created: missing
    let r = c.get("/h", Some(r1 - 1));
    assert_ok(&r);
    assert_eq!((value_of(&r), r.rev), (vec![], Some(0)));
    // deleted later: history still has it
    c.del("/h", -1);
    assert_eq!(c.must_get("/h"), (vec![], 0));
    let r = c.get("/h", Some(r2));
    assert_eq!((value_of(&r), r.rev), (b"v2".to_vec(), Some(r2)));
}

#[test]
fn get_of_a_directory_is_isdir() {
    let (_d, mut c) = node();
    c.must_set("/dir/f", 0, b"x");
    assert_err(&c.get("/dir", None), ErrCode::Isdir);
    assert_err(&c.get("/", None), ErrCode::Isdir);
}

#[test]
fn del_is_conditional_and_refuses_directories() {
    let (_d, mut c) = node();
    let r1 = c.must_set("/d/x/f", 0, b"x");
    c.must_set("/d/g", 0, b"g");
    // a directory
    assert_err(&c.del("/d/x", -1), ErrCode::Isdir);
    assert_eq!(c.must_get("/d/x/f"), (b"x".to_vec(), r1));
    // a stale rev
    assert_err(&c.del("/d/x/f", r1 - 1), ErrCode::RevMismatch);
    assert_err(&c.del("/d/x/f", 0), ErrCode::RevMismatch);
    assert_eq!(c.must_get("/d/x/f"), (b"x".to_vec(), r1));
    // the file's rev works
    assert_ok(&c.del("/d/x/f", r1));
    assert_eq!(c.must_get("/d/x/f"), (vec![], 0));
    // deleting the last file removed the directory
    let r = c.stat("/d/x", None);
    assert_ok(&r);
    assert_eq!((r.len, r.rev), (Some(0), Some(0)), "{r:?}");
    assert_err(&c.getdir("/d/x", 0, None), ErrCode::Noent);
    assert_eq!(c.getdir_all("/d", None), vec!["g".to_string()]);
    // clobber
    assert_ok(&c.del("/d/g", -1));
    assert_eq!(c.must_get("/d/g"), (vec![], 0));
    assert_err(&c.getdir("/d", 0, None), ErrCode::Noent);
}

// ---------------------------------------------------------------------------
// REV / NOP
// ---------------------------------------------------------------------------

#[test]
fn rev_is_the_head_and_nop_consumes_a_rev() {
    let (_d, mut c) = node();
    let r0 = c.rev();
    assert!(
        r0 >= 1,
        "a new cluster has seeded /ctl, so rev >= 1, got {r0}"
    );
    let set_rev = c.must_set("/x", 0, b"1");
    assert!(set_rev > r0);
    assert!(c.rev() >= set_rev);

    let n = c.nop();
    assert_ok(&n);
    let nrev = n.rev.expect("NOP answers with the rev it was applied at");
    assert!(nrev > set_rev, "NOP rev {nrev} after SET rev {set_rev}");
    assert!(c.rev() >= nrev);
    // The change at that rev is a NOP event: path "/", flags 0.
    let w = c.wait("/**", nrev);
    assert_ok(&w);
    assert_eq!(w.rev, Some(nrev));
    assert_eq!(w.path.as_deref(), Some("/"));
    assert_eq!(w.flags, Some(0));
    // and nothing else changed: /x keeps its rev
    assert_eq!(c.must_get("/x"), (b"1".to_vec(), set_rev));
    // the next write comes after it
    let after = c.must_set("/x", -1, b"2");
    assert!(after > nrev);
}

// ---------------------------------------------------------------------------
// WAIT
// ---------------------------------------------------------------------------

#[test]
fn wait_from_an_old_rev_returns_the_historical_event() {
    let (_d, mut c) = node();
    let r1 = c.must_set("/w/a", 0, b"v1");
    let r2 = c.must_set("/w/b", 0, b"v2");
    let r3 = c.must_set("/w/a", r1, b"v3");

    let w = c.wait("/w/**", r1);
    assert_ok(&w);
    assert_eq!(w.path.as_deref(), Some("/w/a"));
    assert_eq!(w.rev, Some(r1));
    assert_eq!(value_of(&w), b"v1");
    assert_eq!(w.flags, Some(4), "set events have flags 4: {w:?}");

    let w = c.wait("/w/b", r1);
    assert_eq!((w.path.as_deref(), w.rev), (Some("/w/b"), Some(r2)));
    assert_eq!(value_of(&w), b"v2");

    let w = c.wait("/w/a", r1 + 1);
    assert_eq!((w.path.as_deref(), w.rev), (Some("/w/a"), Some(r3)));
    assert_eq!(value_of(&w), b"v3");

    // delete events: flags 8, empty value
    c.del("/w/b", -1);
    let w = c.wait("/w/b", r2 + 1);
    assert_ok(&w);
    assert_eq!(w.path.as_deref(), Some("/w/b"));
    assert!(w.rev.unwrap() > r3);
    assert_eq!(w.flags, Some(8), "del events have flags 8: {w:?}");
    assert_eq!(value_of(&w), b"");
}

#[test]
fn wait_globs_star_doublestar_and_question_mark() {
    let (_d, mut c) = node();
    let start = c.rev() + 1;
    let deep = c.must_set("/g/x/y/z", 0, b"deep");
    let one = c.must_set("/g/ab", 0, b"ab");
    let sub = c.must_set("/g/x/q", 0, b"q");
    let abc = c.must_set("/g/abc", 0, b"abc");

    // `*` stays within one name
    let w = c.wait("/g/*", start);
    assert_eq!(
        (w.path.as_deref(), w.rev),
        (Some("/g/ab"), Some(one)),
        "{w:?}"
    );
    let w = c.wait("/g/*/q", start);
    assert_eq!(
        (w.path.as_deref(), w.rev),
        (Some("/g/x/q"), Some(sub)),
        "{w:?}"
    );
    let w = c.wait("/g/a*c", start);
    assert_eq!(
        (w.path.as_deref(), w.rev),
        (Some("/g/abc"), Some(abc)),
        "{w:?}"
    );
    // `**` crosses names
    let w = c.wait("/g/**", start);
    assert_eq!(
        (w.path.as_deref(), w.rev),
        (Some("/g/x/y/z"), Some(deep)),
        "{w:?}"
    );
    let w = c.wait("/g/**/z", start);
    assert_eq!(
        (w.path.as_deref(), w.rev),
        (Some("/g/x/y/z"), Some(deep)),
        "{w:?}"
    );
    // `?` is exactly one character within a name
    let w = c.wait("/g/a?", start);
    assert_eq!(
        (w.path.as_deref(), w.rev),
        (Some("/g/ab"), Some(one)),
        "{w:?}"
    );
    let w = c.wait("/g/a??", start);
    assert_eq!(
        (w.path.as_deref(), w.rev),
        (Some("/g/abc"), Some(abc)),
        "{w:?}"
    );
}

#[test]
fn question_mark_and_star_do_not_cross_slashes() {
    let (d, mut c) = node();
    let start = c.rev() + 1;
    c.must_set("/s/x/q", 0, b"q");
    c.must_set("/s/a/b/c", 0, b"c");
    // None of these globs matches /s/x/q or /s/a/b/c; each iteration writes
    // a path only its own glob (and none of the later ones) matches.
    for glob in ["/s/*", "/s/x?q", "/s/*/c"] {
        let wait_tag = c.tag();
        c.send(&req(Verb::Wait).path(glob).rev(start).tag(wait_tag));
        // a later request on the same connection answers first
        let r = c.get("/s/x/q", None);
        assert_eq!(value_of(&r), b"q");
        assert!(
            !c.has_pending(wait_tag),
            "WAIT {glob} answered although nothing matches"
        );
        // now write something that matches the glob
        let path = match glob {
            "/s/x?q" => "/s/xyq",
            "/s/*" => "/s/top",
            _ => "/s/m/c",
        };
        let mut w2 = RawConn::connect(d.addr());
        let rev = w2.must_set(path, 0, b"m");
        let w = c.recv_tag(wait_tag);
        assert_ok(&w);
        assert_eq!(
            (w.path.as_deref(), w.rev),
            (Some(path), Some(rev)),
            "{glob}"
        );
    }
    let w = c.wait("/s/a/*/c", start);
    assert_eq!(w.path.as_deref(), Some("/s/a/b/c"));
}

#[test]
fn nop_events_match_only_globs_that_match_the_root() {
    let (_d, mut c) = node();
    let n = c.nop().rev.expect("nop rev");
    let w = c.wait("/**", n);
    assert_eq!(
        (w.path.as_deref(), w.rev, w.flags),
        (Some("/"), Some(n), Some(0)),
        "{w:?}"
    );
    assert_eq!(value_of(&w), b"");
    // a glob under a directory skips the NOP and gets the next matching set
    let tag = c.tag();
    c.send(&req(Verb::Wait).path("/after/*").rev(n).tag(tag));
    let r = c.set("/after/f", 0, b"z");
    assert_ok(&r);
    let w = c.recv_tag(tag);
    assert_eq!((w.path.as_deref(), w.rev), (Some("/after/f"), r.rev));
}

#[test]
fn wait_for_a_future_change_answers_when_it_happens() {
    let (d, mut c) = node();
    let from = c.rev() + 1;
    let tag = c.tag();
    c.send(&req(Verb::Wait).path("/later").rev(from).tag(tag));
    // the WAIT cannot be answered yet: a GET sent after it answers first
    let g = c.get("/later", None);
    assert_eq!(g.rev, Some(0));
    assert!(!c.has_pending(tag));
    // a write to another path does not wake it
    let mut other = RawConn::connect(d.addr());
    other.must_set("/unrelated", 0, b"u");
    let g = c.get("/unrelated", None);
    assert_eq!(value_of(&g), b"u");
    assert!(!c.has_pending(tag), "WAIT /later woken by /unrelated");
    // a matching write from another connection wakes it
    let rev = other.must_set("/later", 0, b"now");
    let w = c.recv_tag(tag);
    assert_ok(&w);
    assert_eq!((w.path.as_deref(), w.rev), (Some("/later"), Some(rev)));
    assert_eq!(value_of(&w), b"now");
    assert_eq!(w.flags, Some(4));
}

#[test]
fn wait_from_a_future_rev_ignores_earlier_changes() {
    let (d, mut c) = node();
    let mut w = RawConn::connect(d.addr());
    let head = c.rev();
    let from = head + 3;
    c.send(&req(Verb::Wait).path("/fw").rev(from).tag(5));
    // Changes to /fw before `from` must not answer it.
    let mut last = 0;
    loop {
        last = w.must_set("/fw", -1, format!("early{last}").as_bytes());
        if last + 1 >= from {
            break;
        }
    }
    let g = c.get("/fw", None);
    assert_ok(&g);
    assert!(
        !c.has_pending(5),
        "WAIT from {from} answered by an earlier change"
    );
    let rev = w.must_set("/fw", -1, b"late");
    assert!(rev >= from);
    let r = c.recv_tag(5);
    assert_ok(&r);
    assert_eq!((r.rev, value_of(&r)), (Some(rev), b"late".to_vec()));
}

// ---------------------------------------------------------------------------
// WALK / GETDIR / STAT
// ---------------------------------------------------------------------------

#[test]
fn walk_is_sorted_depth_first() {
    let (_d, mut c) = node();
    // Written out of order on purpose. Depth-first sorted by name gives
    // a/b, a-, a0 ("a" < "a-" < "a0"), which differs from sorting whole
    // paths as strings ("/t/a-" < "/t/a/b" < "/t/a0").
    let mut revs = std::collections::HashMap::new();
    for p in ["/t/a0", "/t/b/c0", "/t/a-", "/t/b/c/d", "/t/a/b", "/t/B"] {
        revs.insert(p, c.must_set(p, 0, p.as_bytes()));
    }
    let all = c.walk_all("/t/**", None);
    let paths: Vec<&str> = all.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        vec!["/t/B", "/t/a/b", "/t/a-", "/t/a0", "/t/b/c/d", "/t/b/c0"]
    );
    for (p, rev, value) in &all {
        assert_eq!(*rev, revs[p.as_str()], "{p}");
        assert_eq!(value, p.as_bytes());
    }
    // flags are 4 on WALK
    let r = c.walk("/t/**", 0, None);
    assert_eq!(r.flags, Some(4));
    // past the end
    assert_err(&c.walk("/t/**", 6, None), ErrCode::Range);
    assert_err(&c.walk("/t/**", 1000, None), ErrCode::Range);
    // a glob matching nothing
    assert_err(&c.walk("/nothing/**", 0, None), ErrCode::Range);
    // `*` only one level
    let top: Vec<String> = c.walk_all("/t/*", None).into_iter().map(|e| e.0).collect();
    assert_eq!(top, vec!["/t/B", "/t/a-", "/t/a0"]);
}

#[test]
fn walk_at_an_old_rev() {
    let (_d, mut c) = node();
    let r1 = c.must_set("/o/a", 0, b"1");
    c.must_set("/o/b", 0, b"2");
    c.must_set("/o/a", r1, b"3");
    let old = c.walk_all("/o/**", Some(r1));
    assert_eq!(old, vec![("/o/a".to_string(), r1, b"1".to_vec())]);
    let now = c.walk_all("/o/**", None);
    assert_eq!(now.len(), 2);
    assert_eq!(now[0].2, b"3");
}

#[test]
fn getdir_lists_sorted_entries() {
    let (_d, mut c) = node();
    for p in ["/gd/c", "/gd/a/x", "/gd/b", "/gd/B", "/gd/a-"] {
        c.must_set(p, 0, b"x");
    }
    assert_eq!(c.getdir_all("/gd", None), vec!["B", "a", "a-", "b", "c"]);
    // missing, file, past the end
    assert_err(&c.getdir("/nope", 0, None), ErrCode::Noent);
    assert_err(&c.getdir("/gd/c", 0, None), ErrCode::Notdir);
    assert_err(&c.getdir("/gd", 5, None), ErrCode::Range);
    // the root lists /ctl and our directory
    let root = c.getdir_all("/", None);
    assert_eq!(root, vec!["ctl", "gd"]);
    // at an old rev
    let r = c.must_set("/gd/d", 0, b"x");
    assert_eq!(c.getdir_all("/gd", Some(r - 1)).len(), 5);
    assert_eq!(c.getdir_all("/gd", Some(r)).len(), 6);
}

#[test]
fn stat_of_file_directory_and_missing() {
    let (_d, mut c) = node();
    let r = c.must_set("/st/f", 0, b"hello");
    c.must_set("/st/g/h", 0, b"");
    let s = c.stat("/st/f", None);
    assert_ok(&s);
    assert_eq!((s.len, s.rev), (Some(5), Some(r)));
    let s = c.stat("/st", None);
    assert_eq!((s.len, s.rev), (Some(2), Some(-2)), "{s:?}");
    let s = c.stat("/st/nope", None);
    assert_ok(&s);
    assert_eq!((s.len, s.rev), (Some(0), Some(0)), "{s:?}");
    // at an old rev the directory had one entry
    let s = c.stat("/st", Some(r));
    assert_eq!((s.len, s.rev), (Some(1), Some(-2)), "{s:?}");
}

// ---------------------------------------------------------------------------
// SELF, ACCESS and the seeded /ctl files
// ---------------------------------------------------------------------------

#[test]
fn self_is_an_80_bit_base32_id() {
    let (_d, mut c) = node();
    let r = c.self_id();
    assert_ok(&r);
    let id = text(&r);
    assert_eq!(id.len(), 16, "80 bits in base32 is 16 characters: {id:?}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
        "not base32: {id:?}"
    );
    // stable, and different on another node
    assert_eq!(text(&c.self_id()), id);
    let d2 = Doozerd::start(&[]);
    let id2 = text(&d2.raw().self_id());
    assert_ne!(id, id2);
}

#[test]
fn new_cluster_seeds_its_ctl_files() {
    let (d, mut c) = node();
    let id = text(&c.self_id());
    assert_eq!(c.must_get("/ctl/name").0, b"local");
    assert_eq!(
        c.must_get(&format!("/ctl/node/{id}/addr")).0,
        d.addr().to_string().as_bytes()
    );
    assert_eq!(c.must_get("/ctl/cal/0").0, id.as_bytes());
    assert_eq!(
        c.must_get(&format!("/ctl/ns/local/{id}")).0,
        d.addr().to_string().as_bytes()
    );
    assert_eq!(c.must_get(&format!("/ctl/node/{id}/writable")).0, b"true");
    let version = c.must_get(&format!("/ctl/node/{id}/version")).0;
    assert!(!version.is_empty());
    // no other CAL slots
    assert_eq!(c.getdir_all("/ctl/cal", None), vec!["0"]);
}

#[test]
fn cluster_name_flag_names_the_cluster() {
    let d = Doozerd::start(&["-c", "prod-1.a"]);
    let mut c = d.raw();
    let id = text(&c.self_id());
    assert_eq!(c.must_get("/ctl/name").0, b"prod-1.a");
    assert_eq!(
        c.must_get(&format!("/ctl/ns/prod-1.a/{id}")).0,
        d.addr().to_string().as_bytes()
    );
    assert_eq!(c.getdir_all("/ctl/ns", None), vec!["prod-1.a"]);
}

#[test]
fn access_without_secrets_succeeds_with_empty_secret() {
    let (_d, mut c) = node();
    assert_ok(&c.access(b""));
    c.must_set("/after-access", 0, b"x");
    // a non-empty secret matches nothing here
    let r = c.access(b"guess");
    assert_err(&r, ErrCode::Other);
    assert_eq!(r.err_detail.as_deref(), Some("permission denied"));
}

// ---------------------------------------------------------------------------
// Error codes
// ---------------------------------------------------------------------------

#[test]
fn unknown_verb_gets_unknown_verb_with_its_tag() {
    let (_d, mut c) = node();
    c.send(&Request {
        tag: Some(4242),
        verb: Some(42),
        ..Default::default()
    });
    let r = c.recv();
    assert_eq!(r.tag, Some(4242));
    assert_err(&r, ErrCode::UnknownVerb);
    // the connection still works
    assert!(c.rev() >= 1);
}

#[test]
fn missing_arguments_get_missing_arg() {
    let (_d, mut c) = node();
    // no verb at all
    assert_err(&c.call(Request::default()), ErrCode::MissingArg);
    // SET and DEL without path, without rev, without both: the detail
    // names what is missing (docs/reference.md#verbs)
    for verb in [Verb::Set, Verb::Del] {
        for (r, missing) in [
            (req(verb).rev(0).value(b"x"), "path"),
            (req(verb).path("/m").value(b"x"), "rev"),
            (req(verb).value(b"x"), "path and rev"),
        ] {
            let resp = c.call(r);
            assert_err(&resp, ErrCode::MissingArg);
            assert_eq!(resp.err_detail.as_deref(), Some(missing), "{verb:?}");
        }
    }
    // reads without path
    for verb in [Verb::Get, Verb::Stat, Verb::Getdir, Verb::Walk] {
        assert_err(&c.call(req(verb)), ErrCode::MissingArg);
    }
    // WAIT without path, without rev
    assert_err(&c.call(req(Verb::Wait).rev(1)), ErrCode::MissingArg);
    assert_err(&c.call(req(Verb::Wait).path("/**")), ErrCode::MissingArg);
    // ACCESS without value
    assert_err(&c.call(req(Verb::Access)), ErrCode::MissingArg);
    // none of these wrote anything
    assert_eq!(c.must_get("/m"), (vec![], 0));
}

#[test]
fn bad_paths_and_globs_get_bad_path() {
    let (_d, mut c) = node();
    let before = c.user_visible_state();
    for p in [
        "", "a", "/a b", "/a/", "//", "/a//b", "/a_b", "/é", "/a*", "/a\0b",
    ] {
        assert_err(&c.get(p, None), ErrCode::BadPath);
        assert_err(&c.set(p, -1, b"x"), ErrCode::BadPath);
        assert_err(&c.del(p, -1), ErrCode::BadPath);
        assert_err(&c.stat(p, None), ErrCode::BadPath);
        assert_err(&c.getdir(p, 0, None), ErrCode::BadPath);
    }
    for g in ["", "g", "/a b", "/a[b]", "/a_*", "/{a,b}", "/a\\*", "/é*"] {
        assert_err(&c.wait(g, 1), ErrCode::BadPath);
        assert_err(&c.walk(g, 0, None), ErrCode::BadPath);
    }
    // rejected before anything was proposed: nothing changed, not even /ctl/err
    assert_eq!(c.user_visible_state(), before);
}

#[test]
fn too_late_beyond_the_history_window() {
    let d = Doozerd::start(&["-hist", "5"]);
    let mut c = d.raw();
    let first = c.must_set("/tl", 0, b"0");
    let mut last = first;
    for i in 1..20 {
        last = c.must_set("/tl", last, format!("{i}").as_bytes());
    }
    assert_err(&c.get("/tl", Some(1)), ErrCode::TooLate);
    assert_err(&c.get("/tl", Some(first)), ErrCode::TooLate);
    assert_err(&c.wait("/tl", 1), ErrCode::TooLate);
    assert_err(&c.wait("/**", first), ErrCode::TooLate);
    assert_err(&c.walk("/**", 0, Some(1)), ErrCode::TooLate);
    assert_err(&c.stat("/tl", Some(1)), ErrCode::TooLate);
    assert_err(&c.getdir("/", 0, Some(1)), ErrCode::TooLate);
    // the last few revs are still readable
    let head = c.rev();
    let r = c.get("/tl", Some(head - 2));
    assert_ok(&r);
    let w = c.wait("/tl", last);
    assert_eq!((w.rev, value_of(&w)), (Some(last), b"19".to_vec()));
}

#[test]
fn history_window_is_exactly_hist_revisions() {
    // With -hist 5 the last five revisions (head-4 ..= head) are readable
    // and head-5 is TOO_LATE, for reads and waits alike.
    let d = Doozerd::start(&["-hist", "5"]);
    let mut c = d.raw();
    for i in 0..12 {
        c.must_set("/win", -1, format!("{i}").as_bytes());
    }
    // Measure while the head stands still (a node may write by itself).
    poll_until(DEADLINE, "a stable head to measure the window at", || {
        let head = c.rev();
        let oldest = c.get("/win", Some(head - 4));
        let wait_oldest = c.wait("/**", head - 4);
        let too_old = c.get("/win", Some(head - 5));
        let wait_too_old = c.wait("/**", head - 5);
        if c.rev() != head {
            return None;
        }
        assert_ok(&oldest);
        assert_eq!(wait_oldest.rev, Some(head - 4), "{wait_oldest:?}");
        assert_err(&too_old, ErrCode::TooLate);
        assert_err(&wait_too_old, ErrCode::TooLate);
        Some(())
    });
}

#[test]
fn writing_under_a_file_is_notdir_and_over_a_directory_is_isdir() {
    let (_d, mut c) = node();
    let f = c.must_set("/file", 0, b"f");
    let r = c.set("/file/sub", -1, b"x");
    assert_err(&r, ErrCode::Notdir);
    assert_eq!(c.must_get("/file"), (b"f".to_vec(), f));
    let dd = c.must_set("/dir/f", 0, b"x");
    assert_err(&c.set("/dir", -1, b"y"), ErrCode::Isdir);
    assert_eq!(c.must_get("/dir/f"), (b"x".to_vec(), dd));
    let s = c.stat("/dir", None);
    assert_eq!((s.len, s.rev), (Some(1), Some(-2)));
}

#[test]
fn failed_write_consumes_a_rev_and_records_ctl_err() {
    let (_d, mut c) = node();
    let r1 = c.must_set("/c", 0, b"one");
    assert_err(&c.set("/c", 0, b"two"), ErrCode::RevMismatch);
    // the failed mutation was applied as a SET of /ctl/err
    let w = c.wait("/ctl/err", r1 + 1);
    assert_ok(&w);
    let err_rev = w.rev.unwrap();
    assert!(err_rev > r1);
    assert_eq!(w.flags, Some(4));
    assert_eq!(text(&w), "rev mismatch");
    let (body, rev) = c.must_get("/ctl/err");
    assert_eq!(String::from_utf8_lossy(&body), "rev mismatch");
    assert_eq!(rev, err_rev);
    // the file did not change, and the next write comes after
    assert_eq!(c.must_get("/c"), (b"one".to_vec(), r1));
    let r2 = c.must_set("/c", r1, b"three");
    assert!(r2 > err_rev);
    // a NOTDIR failure also writes /ctl/err (clobbering it)
    assert_err(&c.set("/c/under", -1, b"x"), ErrCode::Notdir);
    let w = c.wait("/ctl/err", r2 + 1);
    assert!(w.rev.unwrap() > r2);
    assert_ne!(text(&w), "", "error text recorded: {w:?}");
    assert_eq!(c.must_get("/ctl/err").1, w.rev.unwrap());
}

#[test]
fn negative_offset_is_range() {
    let (_d, mut c) = node();
    c.must_set("/neg/a", 0, b"x");
    assert_err(&c.walk("/neg/*", -1, None), ErrCode::Range);
    assert_err(&c.getdir("/neg", -1, None), ErrCode::Range);
}

#[test]
fn tag_in_use_while_a_request_is_outstanding() {
    let (d, mut c) = node();
    let from = c.rev() + 1;
    c.send(&req(Verb::Wait).path("/tagged").rev(from).tag(77));
    c.send(&req(Verb::Get).path("/x").tag(77));
    let r = c.recv();
    assert_eq!(r.tag, Some(77));
    assert_err(&r, ErrCode::TagInUse);
    // the WAIT is still pending and answers normally
    let rev = RawConn::connect(d.addr()).must_set("/tagged", 0, b"t");
    let w = c.recv();
    assert_eq!((w.tag, w.rev), (Some(77), Some(rev)));
    assert_ok(&w);
    // now the tag is free again
    c.send(&req(Verb::Get).path("/tagged").tag(77));
    let r = c.recv();
    assert_eq!((r.tag, value_of(&r)), (Some(77), b"t".to_vec()));
}

// ---------------------------------------------------------------------------
// Pipelining and reads at future revisions
// ---------------------------------------------------------------------------

#[test]
fn pipelined_requests_answer_around_a_pending_wait() {
    let (d, mut c) = node();
    let from = c.rev() + 1;
    // Send everything at once, without reading.
    c.send(&req(Verb::Wait).path("/pipe/trigger").rev(from).tag(1));
    for i in 0..10 {
        c.send(
            &req(Verb::Set)
                .path(&format!("/pipe/f{i}"))
                .rev(0)
                .value(format!("v{i}").as_bytes())
                .tag(100 + i),
        );
        c.send(&req(Verb::Get).path("/pipe/f0").tag(200 + i));
    }
    c.send(&req(Verb::Rev).tag(3));
    // All 21 non-WAIT responses arrive; the WAIT is not among them.
    let mut set_revs = vec![0i64; 10];
    let mut seen = std::collections::HashSet::new();
    for _ in 0..21 {
        let r = c.recv();
        let tag = r.tag.unwrap();
        assert_ne!(tag, 1, "the WAIT answered before any matching write: {r:?}");
        assert!(seen.insert(tag), "duplicate response for tag {tag}");
        assert_ok(&r);
        match tag {
            100..=109 => set_revs[(tag - 100) as usize] = r.rev.unwrap(),
            200..=209 => assert_eq!(value_of(&r), b"v0"),
            3 => assert!(r.rev.unwrap() >= from),
            _ => panic!("unexpected tag {tag}"),
        }
    }
    // writes were applied in the order sent
    assert!(set_revs.windows(2).all(|w| w[0] < w[1]), "{set_revs:?}");
    // now wake the WAIT from another connection
    let rev = RawConn::connect(d.addr()).must_set("/pipe/trigger", 0, b"go");
    let w = c.recv();
    assert_eq!(w.tag, Some(1));
    assert_eq!(
        (w.path.as_deref(), w.rev),
        (Some("/pipe/trigger"), Some(rev))
    );
    // nothing else is left over
    assert_eq!(c.recv_any(Duration::from_millis(50)), Recv::Timeout);
}

#[test]
fn read_at_a_future_rev_waits_until_it_is_reached() {
    let (d, mut c) = node();
    let head = c.rev();
    let target = head + 2;
    c.send(&req(Verb::Get).path("/fut").rev(target).tag(9));
    c.send(&req(Verb::Stat).path("/fut").rev(target).tag(10));
    // a later read at the head answers first
    let r = c.get("/fut", None);
    assert_eq!(r.rev, Some(0));
    assert!(!c.has_pending(9) && !c.has_pending(10));
    let mut w = RawConn::connect(d.addr());
    let r1 = w.must_set("/fut", 0, b"first");
    let r2 = w.must_set("/fut", r1, b"second");
    let r3 = w.must_set("/fut", r2, b"third");
    assert!(r2 >= target, "two writes reach rev {target}");
    assert!(r3 > target);
    let g = c.recv_tag(9);
    assert_ok(&g);
    // the read saw the store as of `target`, not later writes
    let (want_body, want_rev): (&[u8], i64) = if r2 <= target {
        (b"second", r2)
    } else if r1 <= target {
        (b"first", r1)
    } else {
        (b"", 0)
    };
    assert_eq!((value_of(&g), g.rev), (want_body.to_vec(), Some(want_rev)));
    let s = c.recv_tag(10);
    assert_eq!(
        (s.len, s.rev),
        (Some(want_body.len() as i32), Some(want_rev))
    );
}
