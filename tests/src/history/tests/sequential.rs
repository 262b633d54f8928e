//! Plain reads: hand-written histories.

use super::*;

#[test]
fn monotonic_reads_pass() {
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set(0, 20, 30, "/a", -1, "y", 7),
        // Another client may lag.
        get(1, 40, 50, "/a", "", 0),
        get(1, 60, 70, "/a", "x", 5),
        get(1, 80, 90, "/a", "x", 5),
        get(1, 100, 110, "/a", "y", 7),
        // The writer reads its own write.
        get(0, 40, 50, "/a", "y", 7),
    ];
    seq_ok(&h);
}

#[test]
fn rev_going_backwards_fails() {
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set(0, 20, 30, "/a", -1, "y", 7),
        get(1, 60, 70, "/a", "y", 7),
        get(1, 80, 90, "/a", "x", 5),
    ];
    let v = seq_bad(&h);
    assert!(v.explanation.contains("back in time"), "{v}");
    // Overlapping reads of one client may complete in either order.
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set(0, 20, 30, "/a", -1, "y", 7),
        get(1, 60, 90, "/a", "y", 7),
        get(1, 80, 95, "/a", "x", 5),
    ];
    seq_ok(&h);
}

#[test]
fn read_your_writes_fails() {
    let h = vec![
        set(1, 0, 10, "/a", -1, "x", 5),
        set(0, 20, 30, "/a", -1, "y", 7),
        get(0, 40, 50, "/a", "x", 5),
    ];
    seq_bad(&h);
    // Own write, then missing, with no DEL at all.
    let h = vec![
        set(0, 20, 30, "/a", -1, "y", 7),
        get(0, 40, 50, "/a", "", 0),
    ];
    seq_bad(&h);
    // A DEL that completed before the write was invoked does not help.
    let h = vec![
        del(1, 0, 10, "/a", -1),
        set(0, 20, 30, "/a", -1, "y", 7),
        get(0, 40, 50, "/a", "", 0),
    ];
    seq_bad(&h);
    // A concurrent or later DEL does.
    let h = vec![
        set(0, 20, 30, "/a", -1, "y", 7),
        del_timeout(1, 25, "/a", -1),
        get(0, 40, 50, "/a", "", 0),
    ];
    seq_ok(&h);
    // A mismatch shows the file exists above the given rev.
    let h = vec![
        set(1, 0, 10, "/a", -1, "x", 5),
        set(1, 11, 12, "/a", -1, "y", 8),
        set_mismatch(0, 20, 30, "/a", 6, "z"),
        get(0, 40, 50, "/a", "x", 5),
    ];
    seq_bad(&h);
    // Own DEL, then reading a value written before the DEL.
    let h = vec![
        set(1, 0, 10, "/a", -1, "x", 5),
        del(0, 20, 30, "/a", -1),
        get(0, 40, 50, "/a", "x", 5),
    ];
    seq_bad(&h);
    let h = vec![
        set(1, 0, 25, "/a", -1, "x", 5),
        del(0, 20, 30, "/a", -1),
        get(0, 40, 50, "/a", "x", 5),
    ];
    seq_ok(&h);
}

#[test]
fn plain_reads_of_values_never_written_fail() {
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        get(1, 20, 30, "/a", "bogus", 5),
    ];
    seq_bad(&h);
    let h = vec![get(1, 20, 30, "/a", "bogus", 3)];
    seq_bad(&h);
    let h = vec![get(1, 20, 30, "/a", "bogus", 0)];
    seq_bad(&h);
    // Read before it was written.
    let h = vec![
        get(1, 0, 10, "/a", "x", 5),
        set(0, 20, 30, "/a", -1, "x", 5),
    ];
    seq_bad(&h);
    // Rev of another file / of a NOP.
    let h = vec![
        set(0, 0, 10, "/b", -1, "x", 5),
        get(1, 20, 30, "/a", "x", 5),
    ];
    seq_bad(&h);
    let h = vec![nop(0, 0, 10, 5), get(1, 20, 30, "/a", "", 5)];
    seq_bad(&h);
    // A timed-out SET's value is fine.
    let h = vec![
        set_timeout(0, 0, "/a", -1, "x"),
        get(1, 20, 30, "/a", "x", 5),
    ];
    seq_ok(&h);
    // Unless invoked after the read.
    let h = vec![
        get(1, 20, 30, "/a", "x", 5),
        set_timeout(0, 40, "/a", -1, "x"),
    ];
    seq_bad(&h);
}

#[test]
fn linearizable_reads_count_as_observations() {
    let h = vec![
        set(0, 0, 10, "/a", -1, "x", 5),
        set(0, 20, 30, "/a", -1, "y", 7),
        lget(1, 40, 50, "/a", 8, "y", 7),
        get(1, 60, 70, "/a", "x", 5),
    ];
    seq_bad(&h);
}
