//! Linearizability: hand-written histories.

use super::*;

#[test]
fn empty_and_sequential_histories_pass() {
    lin_ok(&[]);
    seq_ok(&[]);
    let h = vec![
        lget(0, 0, 5, "/a", 1, "", 0),
        set(0, 10, 20, "/a", 0, "x", 2),
        lget(1, 30, 40, "/a", 3, "x", 2),
        set(1, 50, 60, "/a", 2, "y", 5),
        set_mismatch(0, 70, 80, "/a", 2, "z"),
        del(0, 90, 100, "/a", 5),
        lget(1, 110, 120, "/a", 8, "", 0),
        set(1, 130, 140, "/a", 0, "w", 9),
        nop(2, 150, 160, 10),
    ];
    lin_ok(&h);
    seq_ok(&h);
    check_history(&h).unwrap();
}

#[test]
fn concurrent_writes_may_linearize_either_way() {
    // Two overlapping clobbering SETs; reads after both see the later
    // rev's value.
    let h = vec![
        set(0, 0, 100, "/a", -1, "x", 7),
        set(1, 10, 90, "/a", -1, "y", 5),
        lget(2, 20, 30, "/a", 6, "y", 5),
        lget(2, 120, 130, "/a", 9, "x", 7),
    ];
    lin_ok(&h);
    // A read concurrent with both may see either or neither.
    let h2 = vec![
        set(0, 0, 100, "/a", -1, "x", 7),
        set(1, 10, 90, "/a", -1, "y", 5),
        lget(2, 5, 95, "/a", 4, "", 0),
    ];
    lin_ok(&h2);
}

#[test]
fn stale_linearizable_read_after_completed_write_fails() {
    let h = vec![
        set(0, 0, 10, "/a", -1, "old", 3),
        set(0, 20, 30, "/a", -1, "new", 5),
        lget(1, 40, 50, "/a", 9, "old", 3),
    ];
    let v = lin_bad(&h);
    assert!(v.to_string().contains("/a"), "{v}");
    // The same read while the second write is in flight is fine.
    let h = vec![
        set(0, 0, 10, "/a", -1, "old", 3),
        set(0, 20, 60, "/a", -1, "new", 5),
        lget(1, 15, 50, "/a", 4, "old", 3),
    ];
    lin_ok(&h);
}

#[test]
fn stale_read_with_consistent_revs_fails_in_search() {
    // The revisions agree with real time (the second SET overlaps the
    // read), but a read at rev 6 must see the SET at rev 5.
    let h = vec![
        set(0, 0, 10, "/a", -1, "old", 3),
        set(0, 20, 60, "/a", -1, "new", 5),
        lget(1, 30, 50, "/a", 6, "old", 3),
    ];
    let v = lin_bad(&h);
    assert!(v.explanation.contains("not linearizable"), "{v}");
}

#[test]
fn two_create_only_sets_without_del_fail() {
    let h = vec![
        set(0, 0, 10, "/a", 0, "x", 1),
        set(1, 20, 30, "/a", 0, "y", 2),
    ];
    let v = lin_bad(&h);
    assert!(v.explanation.contains("rev=0"), "{v}");
    // Concurrent ones: still only one can win.
    let h = vec![
        set(0, 0, 50, "/a", 0, "x", 1),
        set(1, 0, 50, "/a", 0, "y", 2),
    ];
    lin_bad(&h);
    // With a DEL between them (even a concurrent one), fine.
    let h = vec![
        set(0, 0, 10, "/a", 0, "x", 1),
        del(2, 5, 40, "/a", -1),
        set(1, 20, 30, "/a", 0, "y", 2),
    ];
    lin_ok(&h);
    // With a timed-out DEL, fine too.
    let h = vec![
        set(0, 0, 10, "/a", 0, "x", 1),
        del_timeout(2, 5, "/a", -1),
        set(1, 20, 30, "/a", 0, "y", 4),
    ];
    lin_ok(&h);
    // But not if the DEL was invoked after the second create completed.
    let h = vec![
        set(0, 0, 10, "/a", 0, "x", 1),
        set(1, 20, 30, "/a", 0, "y", 4),
        del_timeout(2, 35, "/a", -1),
    ];
    lin_bad(&h);
}

#[test]
fn conditional_set_against_overwritten_rev_fails() {
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set(1, 20, 30, "/a", -1, "y", 7),
        set(0, 40, 50, "/a", 5, "z", 9),
    ];
    lin_bad(&h);
    // Concurrent with the overwrite: the conditional one could go first.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set(1, 20, 60, "/a", -1, "y", 9),
        set(0, 40, 50, "/a", 5, "z", 7),
        lget(2, 70, 80, "/a", 10, "y", 9),
    ];
    lin_ok(&h);
    // A conditional SET failing although its rev is current fails.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set_mismatch(0, 40, 50, "/a", 5, "z"),
    ];
    lin_bad(&h);
    // A clobbering SET can never mismatch.
    let h = vec![set_mismatch(0, 40, 50, "/a", -1, "z")];
    lin_bad(&h);
    // A create-only SET cannot mismatch on a missing file.
    let h = vec![set_mismatch(0, 40, 50, "/a", 0, "z")];
    lin_bad(&h);
    // But it can when the file exists.
    let h = vec![
        set(1, 0, 10, "/a", 0, "x", 1),
        set_mismatch(0, 40, 50, "/a", 0, "z"),
    ];
    lin_ok(&h);
}

#[test]
fn lost_write_fails() {
    // An acknowledged SET whose value no later read shows.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        lget(1, 20, 30, "/a", 6, "", 0),
    ];
    lin_bad(&h);
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set(0, 20, 30, "/a", -1, "y", 6),
        lget(1, 40, 50, "/a", 8, "x", 5),
    ];
    lin_bad(&h);
    // Acknowledged DEL lost.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        del(0, 20, 30, "/a", -1),
        lget(1, 40, 50, "/a", 8, "x", 5),
    ];
    lin_bad(&h);
}

#[test]
fn read_of_value_never_written_fails() {
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        lget(1, 20, 30, "/a", 6, "bogus", 5),
    ];
    let v = lin_bad(&h);
    assert!(v.to_string().contains("bogus"), "{v}");
    let h = vec![lget(1, 20, 30, "/a", 6, "bogus", 4)];
    lin_bad(&h);
    // Written, but to another file.
    let h = vec![
        set(0, 0, 10, "/b", -1, "x", 5),
        lget(1, 20, 30, "/a", 6, "x", 5),
    ];
    lin_bad(&h);
}

#[test]
fn timeouts_that_explain_a_history() {
    // A timed-out SET's value, read later at a rev nobody else claims.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set_timeout(1, 20, "/a", -1, "y"),
        lget(2, 40, 50, "/a", 9, "y", 7),
    ];
    lin_ok(&h);
    // A timed-out create-only SET that never applied.
    let h = vec![
        set_timeout(1, 0, "/a", 0, "y"),
        set(0, 20, 30, "/a", 0, "x", 5),
        lget(2, 40, 50, "/a", 9, "x", 5),
    ];
    lin_ok(&h);
    // A timed-out DEL explains a file read as missing.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        del_timeout(1, 20, "/a", 5),
        lget(2, 40, 50, "/a", 9, "", 0),
    ];
    lin_ok(&h);
    // A timed-out SET's unknown rev, pinned by a read, then a
    // conditional SET against it.
    let h = vec![
        set_timeout(1, 0, "/a", -1, "y"),
        lget(2, 40, 50, "/a", 9, "y", 7),
        set(0, 60, 70, "/a", 7, "z", 12),
        set_mismatch(0, 80, 90, "/a", 7, "w"),
    ];
    lin_ok(&h);
    // A conditional SET against a timed-out SET's unknown rev: rev=3
    // can succeed if that SET got rev <= 3.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 2),
        set_timeout(1, 20, "/a", -1, "y"),
        set(0, 60, 70, "/a", 3, "z", 12),
        set_mismatch(0, 80, 90, "/a", 3, "w"),
    ];
    lin_ok(&h);
    // A timed-out read says nothing.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 2),
        op(1, 20, None, Call::LinGet { path: "/a".into() }, None),
    ];
    lin_ok(&h);
}

#[test]
fn timeouts_that_do_not_explain_a_history() {
    // Invoked after the read completed: cannot explain it.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        lget(2, 40, 50, "/a", 9, "y", 7),
        set_timeout(1, 60, "/a", -1, "y"),
    ];
    lin_bad(&h);
    // Wrong body.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set_timeout(1, 20, "/a", -1, "z"),
        lget(2, 40, 50, "/a", 9, "y", 7),
    ];
    lin_bad(&h);
    // Its condition cannot hold: rev=1 against a file at rev 5.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set_timeout(1, 20, "/a", 1, "y"),
        lget(2, 40, 50, "/a", 9, "y", 7),
    ];
    lin_bad(&h);
    // A timed-out SET on another path does not help.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set_timeout(1, 20, "/b", -1, "y"),
        lget(2, 40, 50, "/a", 9, "y", 7),
    ];
    lin_bad(&h);
    // The read's rev must be above what was linearized before it.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set_timeout(1, 20, "/a", -1, "y"),
        lget(2, 40, 50, "/a", 9, "y", 4),
    ];
    lin_bad(&h);
    // A conditional SET's success pins the unknown rev to <= 3, so a
    // read revealing rev 7 for the timed-out SET contradicts it.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 2),
        set_timeout(1, 20, "/a", -1, "y"),
        set_mismatch(0, 60, 70, "/a", 6, "w"),
        lget(2, 80, 90, "/a", 9, "y", 5),
    ];
    lin_bad(&h);
}

#[test]
fn refused_operations_never_happened() {
    let h = vec![
        op(
            0,
            0,
            Some(10),
            set_call("/a", -1, "x"),
            Some(Outcome::Refused("READONLY".into())),
        ),
        lget(1, 20, 30, "/a", 3, "", 0),
    ];
    lin_ok(&h);
    let h = vec![
        op(
            0,
            0,
            Some(10),
            set_call("/a", -1, "x"),
            Some(Outcome::Refused("READONLY".into())),
        ),
        lget(1, 20, 30, "/a", 3, "x", 2),
    ];
    lin_bad(&h);
}

#[test]
fn revision_order_must_agree_with_real_time() {
    // SET B invoked after SET A completed but got a smaller rev.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 10),
        set(1, 20, 30, "/b", -1, "y", 8),
    ];
    let v = lin_bad(&h);
    assert!(v.explanation.contains("contradict real time"), "{v}");
    // Through a NOP.
    let h = vec![nop(0, 0, 10, 20), set(1, 20, 30, "/b", -1, "y", 15)];
    lin_bad(&h);
    // A linearizable read at a rev below a completed SET's.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 10),
        lget(1, 20, 30, "/b", 8, "", 0),
    ];
    lin_bad(&h);
    // Duplicate revisions.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 10),
        set(1, 0, 10, "/b", -1, "y", 10),
    ];
    let v = lin_bad(&h);
    assert!(v.explanation.contains("same revision"), "{v}");
    // Narrowed intervals: the DEL completed before a NOP at 6 was
    // invoked, so it precedes the SET at 7 although they overlap in
    // real time; the read then must see "x".
    let h = vec![
        del(0, 0, 10, "/a", -1),
        nop(2, 20, 25, 6),
        set(1, 5, 40, "/a", -1, "x", 7),
        lget(1, 50, 60, "/a", 8, "", 0),
    ];
    lin_bad(&h);
    let h = vec![
        del(0, 0, 10, "/a", -1),
        nop(2, 20, 25, 6),
        set(1, 5, 40, "/a", -1, "x", 7),
        lget(1, 50, 60, "/a", 8, "x", 7),
    ];
    lin_ok(&h);
}

#[test]
fn paths_are_independent() {
    let h = vec![
        set(0, 0, 10, "/a", 0, "x", 1),
        set(1, 0, 10, "/b", 0, "y", 2),
        lget(0, 20, 30, "/b", 3, "y", 2),
        lget(1, 20, 30, "/a", 4, "x", 1),
    ];
    lin_ok(&h);
}

#[test]
fn malformed_histories_are_reported() {
    let h = vec![op(0, 10, Some(5), Call::Nop, Some(Outcome::Rev(1)))];
    assert!(check_linearizable(&h)
        .unwrap_err()
        .explanation
        .contains("malformed"));
    let h = vec![op(0, 0, Some(5), Call::Nop, Some(Outcome::Deleted))];
    assert!(check_sequential_reads(&h)
        .unwrap_err()
        .explanation
        .contains("malformed"));
    let h = vec![op(0, 0, Some(5), Call::Nop, None)];
    assert!(check_linearizable(&h).is_err());
}

#[test]
fn violation_display_shows_the_operations() {
    let h = vec![
        set(3, 100, 110, "/a", -1, "old", 3),
        set(3, 120, 130, "/a", -1, "new", 5),
        lget(4, 140, 150, "/a", 9, "old", 3),
    ];
    let v = check_linearizable(&h).unwrap_err();
    let text = v.to_string();
    for needle in [
        "/a",
        "client 3",
        "client 4",
        "SET /a rev=-1 \"new\"",
        "LINGET /a",
        "\"old\" rev 3 (read at rev 9)",
        "#2",
        "150",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // Debug is the same readable text (for unwrap()).
    assert_eq!(format!("{v:?}"), text);
    let t = format_history(&[set_timeout(1, 5, "/a", 0, "q")]);
    assert!(t.contains("TIMEOUT"), "{t}");
}
