//! Agreed values, decoded and applied to a store as a CAL applies what
//! consensus learned: [`Mutation::decode`], and a value that does not
//! decode is applied as a NOP. Glob waits registered on the store (globs
//! come from clients, untrusted too) are checked against a plain
//! reference matcher, and so are walks.
//!
//! Note: the format of agreed values is being reworked on main (a
//! `store::Value` wrapping the mutation); until it lands, this target
//! decodes the mutation itself, the whole of what is agreed on today.
//!
//! Input: one byte of set-up (the history kept), then operations:
//!
//! | op % 4 | what                                                          |
//! |--------|---------------------------------------------------------------|
//! | 0, 1   | a value of `n: u8` bytes, decoded and applied                 |
//! | 2      | a value of `n: u16` bytes, decoded and applied                |
//! | 3      | a glob wait on `n: u8` bytes of glob, from the next rev       |
//!
//! Invariants: each value takes one rev; a change that succeeded is
//! readable at once, a failed one changed nothing but `/ctl/err`; the
//! file and byte counts are those of the tree; a wait wakes exactly when
//! the reference matcher says its glob matches; a walk finds exactly the
//! files the reference matcher accepts.

use std::collections::BTreeMap;

use bytes::Bytes;

use doozerd::store::{Event, Glob, Mutation, Snapshot, Store, WaitId, Woken};

use crate::input::Input;

/// The `consensus_value` target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut store = Store::new(1 + u64::from(input.byte() % 8));
    let mut globs: BTreeMap<WaitId, (String, i64)> = BTreeMap::new();
    let mut next_id: WaitId = 0;
    while let Some(op) = input.next_byte() {
        match op % 4 {
            0 | 1 => apply(&mut store, &mut globs, input.short_bytes()),
            2 => apply(&mut store, &mut globs, input.long_bytes()),
            _ => {
                let text = String::from_utf8_lossy(input.short_bytes()).into_owned();
                let Ok(glob) = Glob::parse(&text) else {
                    continue;
                };
                next_id += 1;
                let from = store.rev() + 1;
                let found = store.wait(next_id, glob, from);
                assert!(
                    matches!(found, Ok(None)),
                    "an event from the future: {found:?}"
                );
                if globs.len() < 8 {
                    globs.insert(next_id, (text, from));
                } else {
                    store.cancel(next_id);
                }
            }
        }
    }
}

/// Decodes and applies one value, and checks the store after it.
fn apply(store: &mut Store, globs: &mut BTreeMap<WaitId, (String, i64)>, value: &[u8]) {
    let m = Mutation::decode(value).unwrap_or(Mutation::Nop);
    let before = store.head().clone();
    let rev = store.rev() + 1;
    let applied = store.apply(rev, &m);
    assert_eq!(store.rev(), rev);
    assert_eq!(store.event(rev), Some(&applied.event));
    let head = store.head().clone();
    match (&m, &applied.error) {
        (Mutation::Set { path, body, .. }, None) => {
            assert_eq!(
                head.get(path),
                Ok((body.clone(), rev)),
                "{path} after a SET"
            );
        }
        (Mutation::Del { path, .. }, None) => {
            // A missing file reads as empty at rev 0.
            assert_eq!(head.get(path), Ok((Bytes::new(), 0)), "{path} after a DEL");
        }
        (Mutation::Set { path, .. } | Mutation::Del { path, .. }, Some(_)) => {
            if !path.starts_with("/ctl") {
                assert_eq!(
                    head.get(path),
                    before.get(path),
                    "{path} after a failed change"
                );
            }
        }
        (Mutation::Nop, e) => assert!(e.is_none(), "a NOP failed: {e:?}"),
    }
    check_counts(&head);
    check_woken(&applied.event, &applied.woken, globs);
    for (text, _) in globs.values() {
        check_walk(&head, text);
    }
}

/// The counts the tree keeps are those of its files.
fn check_counts(head: &Snapshot) {
    let all = head.walk_all(&Glob::parse("/**").expect("a constant, valid glob"));
    assert_eq!(head.files(), all.len() as u64, "file count");
    let bytes: u64 = all.iter().map(|f| f.body.len() as u64).sum();
    assert_eq!(head.bytes(), bytes, "byte count");
}

/// The waits woken by `event` are exactly those whose glob matches it.
fn check_woken(event: &Event, woken: &[Woken], globs: &mut BTreeMap<WaitId, (String, i64)>) {
    let mut woken_ids = Vec::new();
    for w in woken {
        match w {
            Woken::Wait { id, event: e } => {
                assert_eq!(e, event, "a wait woken by another event");
                woken_ids.push(*id);
            }
            other => panic!("unexpected wake-up: {other:?}"),
        }
    }
    for (id, (text, from)) in globs.iter() {
        let want = *from <= event.rev && reference_match(text.as_bytes(), event.path.as_bytes());
        assert_eq!(
            woken_ids.contains(id),
            want,
            "glob {text:?} and event path {:?}",
            event.path
        );
    }
    globs.retain(|id, _| !woken_ids.contains(id));
}

/// A walk of `glob` finds the files the reference matcher accepts, in
/// sorted depth-first order.
fn check_walk(head: &Snapshot, glob: &str) {
    let Ok(g) = Glob::parse(glob) else {
        return;
    };
    let all = head.walk_all(&Glob::parse("/**").expect("a constant, valid glob"));
    let want: Vec<&str> = all
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| reference_match(glob.as_bytes(), p.as_bytes()))
        .collect();
    let got: Vec<String> = head.walk_all(&g).into_iter().map(|f| f.path).collect();
    assert_eq!(got, want, "walk of {glob:?}");
}

/// Glob matching by the definition, by dynamic programming: `?` is one
/// byte other than `/`, `*` a run of them, `**` (two or more stars) any
/// run, anything else itself.
pub fn reference_match(glob: &[u8], path: &[u8]) -> bool {
    // ok[j]: the glob so far matches path[..j].
    let mut ok = vec![false; path.len() + 1];
    ok[0] = true;
    let mut i = 0;
    while i < glob.len() {
        let stars = glob[i..].iter().take_while(|&&c| c == b'*').count();
        let mut next = vec![false; path.len() + 1];
        match stars {
            0 => {
                for j in 0..path.len() {
                    let one = glob[i] == b'?' && path[j] != b'/';
                    next[j + 1] = ok[j] && (one || glob[i] == path[j]);
                }
                i += 1;
            }
            n => {
                let any = n >= 2;
                for j in 0..=path.len() {
                    next[j] = ok[j] || (j > 0 && next[j - 1] && (any || path[j - 1] != b'/'));
                }
                i += n;
            }
        }
        ok = next;
    }
    ok[path.len()]
}

#[cfg(test)]
mod tests {
    use super::reference_match as m;

    #[test]
    fn the_reference_matcher_follows_the_definition() {
        assert!(m(b"/a/*", b"/a/b"));
        assert!(!m(b"/a/*", b"/a/b/c"));
        assert!(m(b"/a/**", b"/a/b/c"));
        assert!(m(b"/**", b"/"));
        assert!(m(b"/?", b"/x"));
        assert!(!m(b"/?", b"//"));
        assert!(m(b"/a*b", b"/ab"));
        assert!(m(b"/***/c", b"/a/b/c"));
        assert!(!m(b"/a", b"/ab"));
    }
}

/// Inputs to start from: waits on a few globs, then sets, deletes, NOPs,
/// conditional writes that fail, and values that are no mutation.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut s = vec![2];
    for glob in ["/a/**", "/*", "/a/?/c", "/ctl/**", "/**/c"] {
        s.push(3);
        s.push(glob.len() as u8);
        s.extend_from_slice(glob.as_bytes());
    }
    for value in [
        "-1:/a/b/c=1",
        "-1:/a/x=2",
        "nop:",
        "0:/a/b/c=3",
        "-1:/a/b",
        "5:/a/b/c",
        "-1:/b=",
        "-1:/ctl=x",
        "-1:/b/c=y",
        "x:/a",
        "-1:/a b=1",
    ] {
        s.push(0);
        s.push(value.len() as u8);
        s.extend_from_slice(value.as_bytes());
    }
    vec![s]
}
