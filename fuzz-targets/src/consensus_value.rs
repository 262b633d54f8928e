//! Agreed values, decoded and applied to a store as a CAL applies what
//! consensus learned: [`Value::decode`] (a value that does not decode is
//! applied as the empty value, a NOP), then [`Store::apply_value`] at the
//! next seqn. Glob waits registered on the store (globs come from
//! clients, untrusted too) are checked against a plain reference
//! matcher, and so are walks.
//!
//! Input: one byte of set-up (the history kept), then operations:
//!
//! | op % 4 | what                                                          |
//! |--------|---------------------------------------------------------------|
//! | 0, 1   | a value of `n: u8` bytes, decoded and applied                 |
//! | 2      | a value of `n: u16` bytes, decoded and applied                |
//! | 3      | a glob wait on `n: u8` bytes of glob, from the next rev       |
//!
//! Invariants: a value takes one rev per change (one for none, one when
//! refused); a change that succeeded is readable at once, a failed one
//! changed nothing but `/ctl/err`; the file and byte counts are those of
//! the tree; a wait wakes exactly when the reference matcher says its
//! glob matches; a walk finds exactly the files the reference matcher
//! accepts.

use std::collections::BTreeMap;

use bytes::Bytes;

use doozerd::store::{
    Applied, Event, Glob, Mutation, Snapshot, Store, Value, WaitId, Woken, ERR_PATH,
};

use crate::input::Input;

/// The store and what the target keeps beside it.
struct Harness {
    store: Store,
    /// The registered waits: glob and first rev.
    globs: BTreeMap<WaitId, (String, i64)>,
    next_id: WaitId,
    /// The seqn of the next value.
    seqn: u64,
}

/// The `consensus_value` target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut h = Harness {
        store: Store::new(1 + u64::from(input.byte() % 8)),
        globs: BTreeMap::new(),
        next_id: 0,
        seqn: 1,
    };
    while let Some(op) = input.next_byte() {
        match op % 4 {
            0 | 1 => h.apply(input.short_bytes()),
            2 => h.apply(input.long_bytes()),
            _ => h.wait(input.short_bytes()),
        }
    }
}

impl Harness {
    /// Registers a wait on `glob` from the next rev (at most 8 at once).
    fn wait(&mut self, glob: &[u8]) {
        let text = String::from_utf8_lossy(glob).into_owned();
        let Ok(glob) = Glob::parse(&text) else {
            return;
        };
        self.next_id += 1;
        let from = self.store.rev() + 1;
        let found = self.store.wait(self.next_id, glob, from);
        assert!(
            matches!(found, Ok(None)),
            "an event from the future: {found:?}"
        );
        if self.globs.len() < 8 {
            self.globs.insert(self.next_id, (text, from));
        } else {
            self.store.cancel(self.next_id);
        }
    }

    /// Decodes and applies one value, and checks the store after it.
    fn apply(&mut self, bytes: &[u8]) {
        let value = Value::decode(bytes).unwrap_or_default();
        let before = self.store.head().clone();
        let first = self.store.rev() + 1;
        let applied = self.store.apply_value(self.seqn, &value);
        let expired = value.expires_after.is_some_and(|e| self.seqn > e);
        let guarded = value
            .guard
            .as_ref()
            .is_some_and(|g| !matches!(before.get(&g.path), Ok((_, rev)) if rev == g.rev));
        let refused = expired || guarded;
        let want = if refused {
            1
        } else {
            value.changes.len().max(1)
        };
        assert_eq!(
            applied.len(),
            want,
            "one rev per change (refused: {refused})"
        );
        if refused {
            let e = &applied[0].event;
            assert!(
                e.path.as_ref() == ERR_PATH || e.path.as_ref() == "/",
                "{e:?}"
            );
        }
        assert_eq!(self.store.rev(), first + applied.len() as i64 - 1);
        for (i, a) in applied.iter().enumerate() {
            assert_eq!(a.event.rev, first + i as i64);
            match self.store.event(a.event.rev) {
                Some(e) => assert_eq!(e, &a.event),
                // A short history drops the first changes of a long value.
                None => assert!(a.event.rev < self.store.oldest_rev(), "{:?}", a.event),
            }
            check_woken(&a.event, &a.woken, &mut self.globs);
        }
        self.seqn += 1;
        if !refused && value.changes.len() == 1 {
            check_change(&value.changes[0], &applied[0], &before, self.store.head());
        }
        let head = self.store.head().clone();
        check_counts(&head);
        for (text, _) in self.globs.values() {
            check_walk(&head, text);
        }
    }
}

/// The store after one change `m`, applied as `a` on `before`.
fn check_change(m: &Mutation, a: &Applied, before: &Snapshot, head: &Snapshot) {
    let rev = a.event.rev;
    match (m, &a.error) {
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

/// Inputs to start from: waits on a few globs, then sets, deletes, NOPs,
/// conditional writes that fail, a value of several changes, guarded and
/// expired values, and bytes that are no value.
pub fn seeds() -> Vec<Vec<u8>> {
    use doozerd::store::Guard;
    let set = |path: &str, rev: i64, body: &str| Mutation::Set {
        path: path.into(),
        rev,
        body: Bytes::from(body.to_owned()),
    };
    let del = |path: &str, rev: i64| Mutation::Del {
        path: path.into(),
        rev,
    };
    let mut s = vec![2];
    for glob in ["/a/**", "/*", "/a/?/c", "/ctl/**", "/**/c"] {
        s.push(3);
        s.push(glob.len() as u8);
        s.extend_from_slice(glob.as_bytes());
    }
    let mut values: Vec<Bytes> = [
        set("/a/b/c", -1, "1"),
        set("/a/x", -1, "2"),
        Mutation::Nop,
        set("/a/b/c", 0, "3"),
        del("/a/b", -1),
        del("/a/b/c", 5),
        set("/b", -1, ""),
        set("/ctl", -1, "x"),
        set("/b/c", -1, "y"),
        set("/a b", -1, "1"),
    ]
    .iter()
    .map(Mutation::encode)
    .collect();
    values.push(Value::of(vec![set("/m/1", -1, "a"), del("/m/1", -1), Mutation::Nop]).encode());
    values.push(
        Value {
            changes: vec![set("/g", -1, "1")],
            guard: Some(Guard {
                path: "/a/x".into(),
                rev: 2,
            }),
            ..Value::default()
        }
        .encode(),
    );
    values.push(
        Value {
            changes: vec![set("/e", -1, "1")],
            expires_after: Some(1),
            ..Value::default()
        }
        .encode(),
    );
    values.push(Mutation::tagged_nop("A.1"));
    values.push(Bytes::from_static(b"\x0a\x02\x10"));
    for v in values {
        s.push(2);
        s.extend_from_slice(&(v.len() as u16).to_be_bytes());
        s.extend_from_slice(&v);
    }
    vec![s]
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
